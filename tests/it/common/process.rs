//! `parley` as a child process, for what only a process can do: be killed with SIGKILL, stop on
//! SIGTERM, show its memory. Killed when dropped; its log tail is printed if the test fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use awc::http::Method;
use serde_json::{Value, json};

use super::db::FreshDatabase;
use super::http::Http;
use super::ws::Ws;
use super::{PATIENCE, SECRET, TestUser};

/// No rate limit: for the tests that send as fast as they can.
pub const UNLIMITED: [(&str, &str); 2] = [("PARLEY_RATE_PER_SEC", "100000"), ("PARLEY_RATE_BURST", "100000")];

pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    /// The working directory, when the process has one of its own.
    _dir: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts the server on `database_url` with the test settings, then `env` (which wins), on a
    /// free port, in `dir` (its log goes there too; a temporary one of its own if `None`); waits
    /// until `/readyz` answers 200 with a body for which `ready` holds.
    pub async fn start(
        dir: Option<&Path>,
        database_url: &str,
        env: &[(&str, &str)],
        ready: impl Fn(&Value) -> bool,
    ) -> ServerProcess {
        let own = dir.is_none().then(|| tempfile::tempdir().expect("temp dir"));
        let dir = dir.or(own.as_ref().map(tempfile::TempDir::path)).expect("a directory");
        // A free port: bound by the test, then released for the server.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let log = dir.join(format!("server-{port}.log"));
        let output = std::fs::File::create(&log).expect("log file");
        let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,actix_server=warn".to_string());
        let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
        command
            .current_dir(dir)
            .env("RUST_LOG", rust_log)
            .env("PARLEY_BIND", addr.to_string())
            .env("PARLEY_DATABASE_URL", database_url)
            .env("PARLEY_JWT_SECRET", SECRET)
            .env("PARLEY_ADMIN_USERS", "admin")
            .env("PARLEY_ADMIN_PASSWORD_HASH", super::admin_password_hash())
            .env("PARLEY_REGISTRATIONS_PER_HOUR", "1000000")
            .env("PARLEY_WORKERS", "2")
            .env("PARLEY_CONVERSATION_THREADS", "2")
            .env("PARLEY_DB_POOL_SIZE", "8");
        for (key, value) in env {
            command.env(key, value);
        }
        command.stdin(Stdio::null()).stdout(output.try_clone().expect("log file")).stderr(output);
        let child = command.spawn().expect("start parley");
        let mut server = ServerProcess { child, addr, log, _dir: own };
        server.wait_ready(ready).await;
        server
    }

    /// `parley` on `db`, with the test settings and then `env`, once ready; its log goes to the
    /// database's directory.
    pub async fn on(db: &FreshDatabase, env: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::start(Some(db.dir()), &db.url, env, |_| true).await
    }

    /// Waits until `/readyz` answers 200 with a body for which `ready` holds.
    pub async fn wait_ready(&mut self, ready: impl Fn(&Value) -> bool) {
        let http = self.http();
        let deadline = Instant::now() + 2 * PATIENCE;
        loop {
            let outcome = http.try_request(Method::GET, "/readyz", None, None).await;
            if matches!(&outcome, Ok((200, body)) if ready(body)) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                panic!("the server exited before it was ready: {status}\n{}", self.log_tail());
            }
            assert!(Instant::now() < deadline, "the server is not ready: {outcome:?}\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `ws://host:port`, for [`super::Ws::open`].
    pub fn ws_base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn http(&self) -> Http {
        Http::new(&format!("http://{}", self.addr))
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet (only
        // `wait_exit` and `drop` reap it).
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill({signal}): {}", std::io::Error::last_os_error());
    }

    /// SIGKILL: the server dies at once, without telling anyone. Waits until it is gone.
    pub async fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(PATIENCE).await;
    }

    /// Waits until the process has exited, at most `bound`.
    pub async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server has not exited within {bound:?}\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let log = self.log();
        let start = log.len().saturating_sub(6_000);
        let start = (start..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(log.len());
        format!("--- server log ({}) ---\n{}", self.log.display(), &log[start..])
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// Sends `client_id` again, as its own body, the way its first try went: over Alice's socket `a`
/// when `user` is Alice, otherwise over REST. Answers the message the server acknowledged.
pub async fn resend(
    a: &mut Ws,
    http: &Http,
    alice: &TestUser,
    user: &TestUser,
    conversation: &str,
    client_id: &str,
) -> Value {
    if user.id == alice.id {
        let data = json!({"conversation_id": conversation, "body": client_id, "client_id": client_id});
        return a.ack("message:send", data).await["message"].clone();
    }
    let path = format!("/api/conversations/{conversation}/messages");
    let (status, message) = http.post(Some(user), &path, json!({"body": client_id, "client_id": client_id})).await;
    assert_eq!(status, 201, "retry of {client_id}: {message}");
    message
}
