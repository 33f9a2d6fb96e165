//! The cluster harness (issue 6): several Parley nodes on one PostgreSQL database and one Redis.
//!
//! - [`Cluster`]: one fresh PostgreSQL database and `n` in-process nodes on it, all with the same
//!   Redis and a key prefix of their own (so that tests running at once never see each other).
//! - [`NodeProcess`]: one more node, as the real `parley` binary in a child process, for what only
//!   a process can do: die by SIGKILL.
//! - [`PrivateRedis`]: a `redis-server` of the test's own, on a free port, that the test may stop
//!   and start again (the machine's shared Redis is never stopped).
//! - [`Http`]: REST against any node, in-process or not.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use awc::Client;
use awc::http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{PATIENCE, SECRET, TestServer, TestUser, now_secs, pg_execute, postgres_url, token_for, with_database};

/// The Redis the cluster tests use unless they start their own: `PARLEY_TEST_REDIS_URL`, or the
/// machine's default.
pub fn default_redis_url() -> String {
    match std::env::var("PARLEY_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => "redis://127.0.0.1:6379".to_string(),
    }
}

/// A token with `role: admin`, for `/api/admin/*` on any node.
pub fn admin() -> TestUser {
    let id = uuid::Uuid::new_v4().to_string();
    let token =
        token_for(json!({"sub": id, "exp": now_secs() + 3_600, "iat": now_secs(), "name": "root", "role": "admin"}));
    TestUser { id, username: "root".into(), token }
}

/// A port nothing listens on just now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

// ---------------------------------------------------------------------------------------------
// The database

/// A PostgreSQL database of its own, dropped with this value (even when the test panics).
pub struct SharedDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl SharedDatabase {
    pub async fn create(admin_url: &str) -> SharedDatabase {
        let name = format!("parley_c_{}", uuid::Uuid::new_v4().simple());
        pg_execute(admin_url, &format!("CREATE DATABASE {name}")).await;
        SharedDatabase { url: with_database(admin_url, &name), admin_url: admin_url.to_string(), name }
    }
}

impl Drop for SharedDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot block on a future: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(pg_execute(&admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("the test database could not be dropped");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster

/// `n` in-process nodes on one PostgreSQL database and one Redis, under one unique prefix.
pub struct Cluster {
    /// The nodes, in the order started (declared before `database`: they go first).
    pub nodes: Vec<TestServer>,
    pub redis_url: String,
    pub prefix: String,
    pub database: SharedDatabase,
}

impl Cluster {
    /// Starts `n` nodes on the default Redis after `tune` adjusted each one's configuration, and
    /// waits until each says its broker is up. `None` when no test PostgreSQL is configured (and
    /// `PARLEY_REQUIRE_POSTGRES` is unset: then it fails).
    pub async fn start(n: usize, tune: impl Fn(&mut parley::config::Config)) -> Option<Cluster> {
        Self::start_on_redis(n, &default_redis_url(), tune).await
    }

    /// Like [`Cluster::start`], on the Redis at `redis_url`.
    pub async fn start_on_redis(
        n: usize,
        redis_url: &str,
        tune: impl Fn(&mut parley::config::Config),
    ) -> Option<Cluster> {
        let admin_url = postgres_url()?;
        let database = SharedDatabase::create(&admin_url).await;
        let prefix = format!("parley-test-{}", uuid::Uuid::new_v4().simple());
        let mut cluster = Cluster { nodes: Vec::new(), redis_url: redis_url.to_string(), prefix, database };
        for _ in 0..n {
            cluster.add_node(&tune).await;
        }
        Some(cluster)
    }

    /// Starts one more in-process node and waits until its broker is up.
    pub async fn add_node(&mut self, tune: &impl Fn(&mut parley::config::Config)) -> &TestServer {
        let (redis_url, prefix) = (self.redis_url.clone(), self.prefix.clone());
        let node = TestServer::start_on(&self.database.url, |config| {
            config.cluster.redis_url = Some(redis_url);
            config.cluster.redis_prefix = prefix;
            tune(config);
        })
        .await;
        Http::of(&node)
            .wait_readyz("the new node's broker is up", |status, body| status == 200 && body["broker"] == "up")
            .await;
        self.nodes.push(node);
        self.nodes.last().expect("the node")
    }

    /// REST against node `i`.
    pub fn http(&self, i: usize) -> Http {
        Http::of(&self.nodes[i])
    }

    /// Stops every node, then drops the database and the cluster's keys in Redis.
    pub async fn stop(self) {
        let Cluster { nodes, database, redis_url, prefix } = self;
        for node in nodes {
            node.stop().await;
        }
        drop(database);
        forget_keys(&redis_url, &prefix).await;
    }
}

/// Deletes every key under `prefix`, so that the shared Redis does not collect tests' leftovers
/// (a stopped cluster has no node left to reap the others' leases).
pub async fn forget_keys(redis_url: &str, prefix: &str) {
    let Ok(mut conn) = redis::Client::open(redis_url).expect("Redis URL").get_multiplexed_async_connection().await
    else {
        return; // a Redis that is gone keeps nothing to forget
    };
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.expect("list the test's keys");
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).query_async::<()>(&mut conn).await.expect("delete the test's keys");
    }
}

// ---------------------------------------------------------------------------------------------
// A node as a process

/// The `parley` binary as a child process, a node of a [`Cluster`]; killed when dropped.
pub struct NodeProcess {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    /// Starts a node on the cluster's database, Redis and prefix, with the test settings and then
    /// `env` (which wins), on a free port; waits until `/readyz` says its broker is up.
    pub async fn start(cluster: &Cluster, env: &[(&str, &str)]) -> NodeProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let log = dir.path().join(format!("node-{port}.log"));
        let output = std::fs::File::create(&log).expect("log file");
        let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,actix_server=warn".to_string());
        let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
        command
            .current_dir(dir.path())
            .env("RUST_LOG", rust_log)
            .env("PARLEY_BIND", addr.to_string())
            .env("PARLEY_DATABASE_URL", &cluster.database.url)
            .env("PARLEY_JWT_SECRET", SECRET)
            .env("PARLEY_ADMIN_USERS", "admin")
            .env("PARLEY_REDIS_URL", &cluster.redis_url)
            .env("PARLEY_REDIS_PREFIX", &cluster.prefix)
            .env("PARLEY_WORKERS", "2")
            .env("PARLEY_CONVERSATION_THREADS", "2")
            .env("PARLEY_DB_POOL_SIZE", "8");
        for (key, value) in env {
            command.env(key, value);
        }
        command.stdin(Stdio::null()).stdout(output.try_clone().expect("log file")).stderr(output);
        let child = command.spawn().expect("start parley");
        let mut node = NodeProcess { child, addr, log, _dir: dir };
        node.wait_ready().await;
        node
    }

    async fn wait_ready(&mut self) {
        let http = self.http();
        let deadline = Instant::now() + 2 * PATIENCE;
        loop {
            let outcome = http.try_request(Method::GET, "/readyz", None, None).await;
            if matches!(&outcome, Ok((200, body)) if body["broker"] == "up") {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait for the node") {
                panic!("the node exited before it was ready: {status}\n{}", self.log_tail());
            }
            assert!(Instant::now() < deadline, "the node is not ready: {outcome:?}\n{}", self.log_tail());
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

    /// SIGKILL: the node dies at once, without telling anyone. Waits until it is gone.
    pub async fn kill(&mut self) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet (only this
        // function and `drop` reap it).
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait().expect("wait for the node").is_none() {
            assert!(Instant::now() < deadline, "the node did not die of SIGKILL");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(6_000);
        let start = (start..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(log.len());
        format!("--- node log ({}) ---\n{}", self.log.display(), &log[start..])
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A Redis of the test's own

/// `redis-server` on a free port, without persistence: stopping it loses everything, as a
/// restarted cache would. Killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let mut redis = PrivateRedis { port: free_port(), child: None, dir: tempfile::tempdir().expect("temp dir") };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and waits until it answers PING.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "this Redis is running already");
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("log file");
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while !self.pong().await {
            if let Some(status) = self.child.as_mut().expect("child").try_wait().expect("wait for redis") {
                let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                panic!("redis-server on port {} exited: {status}\n{log}", self.port);
            }
            assert!(Instant::now() < deadline, "redis-server on port {} does not answer", self.port);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILL: Redis is gone at once (its clients' connections break).
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("this Redis is not running");
        child.kill().expect("kill redis-server");
        child.wait().expect("wait for redis-server");
    }

    async fn pong(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else { return false };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut answer = [0u8; 7];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut answer)).await,
            Ok(Ok(_)) if &answer == b"+PONG\r\n"
        )
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// REST against any node

/// REST against one node (an in-process [`TestServer`] or a [`NodeProcess`]).
#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: Client,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http { base: base.to_string(), client: Client::builder().timeout(PATIENCE).finish() }
    }

    pub fn of(server: &TestServer) -> Http {
        Http::new(&server.base)
    }

    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        user: Option<&TestUser>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        let mut response = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        }
        .map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.body().limit(64 << 20).await.map_err(|err| err.to_string())?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|err| format!("not JSON ({err}): {bytes:?}"))?
        };
        Ok((status, body))
    }

    pub async fn get(&self, user: Option<&TestUser>, path: &str) -> (u16, Value) {
        self.try_request(Method::GET, path, user, None).await.unwrap_or_else(|err| panic!("GET {path}: {err}"))
    }

    pub async fn post(&self, user: Option<&TestUser>, path: &str, body: Value) -> (u16, Value) {
        self.try_request(Method::POST, path, user, Some(&body)).await.unwrap_or_else(|err| panic!("POST {path}: {err}"))
    }

    /// Registers `username` (password "password123").
    pub async fn user(&self, username: &str) -> TestUser {
        let (status, body) =
            self.post(None, "/api/auth/register", json!({"username": username, "password": "password123"})).await;
        assert_eq!(status, 201, "register {username}: {body}");
        TestUser {
            id: body["user"]["id"].as_str().expect("user id").to_string(),
            username: username.to_string(),
            token: body["token"].as_str().expect("token").to_string(),
        }
    }

    /// Gets or creates the direct conversation of `a` and `b`; returns its id.
    pub async fn direct(&self, a: &TestUser, b: &TestUser) -> String {
        let (status, body) = self.post(Some(a), "/api/conversations", json!({"kind": "direct", "user_id": b.id})).await;
        assert!(status == 201 || status == 200, "direct conversation: {status} {body}");
        body["id"].as_str().expect("conversation id").to_string()
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let mut response = self.client.get(format!("{}/metrics", self.base)).send().await.expect("metrics");
        assert_eq!(response.status(), 200);
        String::from_utf8(response.body().limit(16 << 20).await.expect("body").to_vec()).expect("text")
    }

    /// Polls `GET /readyz` until `done(status, body)` holds; returns that body. Fails after
    /// [`PATIENCE`], saying what it waited for.
    pub async fn wait_readyz(&self, what: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let outcome = self.try_request(Method::GET, "/readyz", None, None).await;
            if let Ok((status, body)) = &outcome
                && done(*status, body)
            {
                return body.clone();
            }
            assert!(Instant::now() < deadline, "{what}: not reached, {}/readyz says {outcome:?}", self.base);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls `GET /api/admin/actors` until `done` holds; returns that answer.
    pub async fn wait_actors(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let admin = admin();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, actors) = self.get(Some(&admin), "/api/admin/actors").await;
            assert_eq!(status, 200, "{actors}");
            if done(&actors) {
                return actors;
            }
            assert!(Instant::now() < deadline, "{what}: not reached, {}/api/admin/actors says {actors}", self.base);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The whole history of a conversation, page after page, in ascending seq.
    pub async fn history(&self, user: &TestUser, conversation: &str) -> Vec<Value> {
        let mut messages = Vec::new();
        loop {
            let after = messages.last().map_or(0, |m: &Value| m["seq"].as_i64().expect("seq"));
            let path = format!("/api/conversations/{conversation}/messages?after_seq={after}&limit=200");
            let (status, page) = self.get(Some(user), &path).await;
            assert_eq!(status, 200, "{page}");
            let batch = page["messages"].as_array().expect("messages");
            messages.extend(batch.iter().cloned());
            if batch.is_empty() || page["has_more"] != true {
                return messages;
            }
        }
    }
}
