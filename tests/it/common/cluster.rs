//! The cluster harness: several Parley nodes on one PostgreSQL database and one Redis.
//!
//! - [`Cluster`]: one fresh PostgreSQL database and `n` in-process nodes on it, all with the same
//!   Redis and a key prefix of their own (so that tests running at once never see each other).
//! - [`node_process`]: one more node, as the real `parley` binary in a child process, for what
//!   only a process can do: die by SIGKILL.
//! - [`PrivateRedis`]: a `redis-server` of the test's own, on a free port, that the test may stop
//!   and start again (the machine's shared Redis is never stopped).
//! - [`Http`]: REST against any node, in-process or not.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::db::{FreshDatabase, postgres_for};
pub use super::http::Http;
use super::process::ServerProcess;
use super::skips::Suite;
use super::{Backend, PATIENCE, TestServer};

/// The Redis the cluster tests use unless they start their own: `PARLEY_TEST_REDIS_URL`, or the
/// machine's default.
pub fn default_redis_url() -> String {
    match std::env::var("PARLEY_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => "redis://127.0.0.1:6379".to_string(),
    }
}

/// A port nothing listens on just now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

// ---------------------------------------------------------------------------------------------
// The cluster

/// `n` in-process nodes on one PostgreSQL database and one Redis, under one unique prefix.
pub struct Cluster {
    /// The nodes, in the order started (declared before `database`: they go first).
    pub nodes: Vec<TestServer>,
    pub redis_url: String,
    pub prefix: String,
    pub database: FreshDatabase,
}

impl Cluster {
    /// Starts `n` nodes on the default Redis after `tune` adjusted each one's configuration, and
    /// waits until each says its broker is up. `None` when no test PostgreSQL is configured: the
    /// test is counted as skipped (or fails, when `PARLEY_REQUIRE_POSTGRES` is set).
    pub async fn start(n: usize, tune: impl Fn(&mut parley::config::Config)) -> Option<Cluster> {
        Self::start_on_redis(n, &default_redis_url(), tune).await
    }

    /// Like [`Cluster::start`], on the Redis at `redis_url`.
    pub async fn start_on_redis(
        n: usize,
        redis_url: &str,
        tune: impl Fn(&mut parley::config::Config),
    ) -> Option<Cluster> {
        postgres_for(Suite::Cluster)?;
        let database = FreshDatabase::create(Backend::Postgres).await;
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
        node.wait_readyz("the new node's broker is up", |status, body| status == 200 && body["broker"] == "up").await;
        self.nodes.push(node);
        self.nodes.last().expect("the node")
    }

    /// REST against node `i`.
    pub fn http(&self, i: usize) -> Http {
        Http::clone(&self.nodes[i])
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

/// One more node of `cluster`, as the `parley` binary in a child process (for what only a
/// process can do: die by SIGKILL), with the cluster's database, Redis and prefix, then `env`
/// (which wins); ready once its broker is up.
pub async fn node_process(cluster: &Cluster, env: &[(&str, &str)]) -> ServerProcess {
    let mut settings =
        vec![("PARLEY_REDIS_URL", cluster.redis_url.as_str()), ("PARLEY_REDIS_PREFIX", cluster.prefix.as_str())];
    settings.extend_from_slice(env);
    ServerProcess::start(None, &cluster.database.url, &settings, |body| body["broker"] == "up").await
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
