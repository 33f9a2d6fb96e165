//! The test harness: a real Parley server in-process on a free port, with a fresh database
//! (a temporary SQLite file, or a PostgreSQL database of its own when
//! `PARLEY_TEST_DATABASE_URL` is set), and helpers to make users and talk REST and WebSocket.
//!
//! Each scenario is written once, as `async fn name(backend: Backend)`, and the `backends!`
//! macro turns it into one test per backend.
//!
//! - [`http::Http`]: REST against any server; a [`TestServer`] derefs to one.
//! - [`Ws`]: a WebSocket client that keeps the frames it was not asked for yet.
//! - [`scene`]: the common opening of a test (two people, their sockets, a conversation).
//! - [`answers`]: checks of the protocol's JSON answers (errors, timestamps, members, seqs).
//! - [`files`]: uploads (multipart made by hand), downloads with their headers, test images.
//! - [`db`]: a fresh database per test; [`skips`]: what a bare machine did not run.
//! - [`raw`], [`process`], [`cluster`]: what a library client or an in-process server cannot do.
//! - [`s3`]: a prefix of the test bucket for each S3 test.
//! - `service`: the host's side: the service key, provisioning, host-shaped tokens.

pub mod answers;
pub mod cluster;
pub mod db;
pub mod files;
pub mod http;
pub mod process;
pub mod raw;
pub mod s3;
pub mod scene;
pub mod service;
pub mod skips;
pub mod tokens;
pub mod ws;

pub use answers::*;
pub use db::{FreshDatabase, pg_execute, postgres_for};
pub use files::*;
pub use http::{Http, admin, post_endpoints};
pub use scene::*;
pub use service::*;
pub use skips::Suite;
pub use tokens::*;
pub use ws::Ws;

use std::net::TcpListener;
use std::ops::Deref;
use std::time::Duration;

use serde_json::Value;

/// The secret test servers sign tokens with; tests sign their own tokens with it too.
pub const SECRET: &str = "parley-test-secret-0123456789";
/// The password of every test account (not a common one: those are refused).
pub const PASSWORD: &str = "orchid-lantern-42";

/// The Argon2 hash of [`PASSWORD`], for `PARLEY_ADMIN_PASSWORD_HASH` (made once: it is slow).
pub fn admin_password_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| parley::auth::password::hash(PASSWORD).expect("hash")).clone()
}
/// How long a test waits for something it expects before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test per backend: `backends!(scenario)` makes `scenario::sqlite` and `scenario::postgres`.
/// The PostgreSQL one needs `PARLEY_TEST_DATABASE_URL`; without it, it passes without running
/// and the run's last line counts it (or it fails, when `PARLEY_REQUIRE_POSTGRES` is set).
macro_rules! backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
            #[actix_web::test]
            async fn postgres() {
                if $crate::common::postgres_for($crate::common::Suite::Postgres).is_some() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            }
        }
    )+};
}

/// A running server and the database it owns.
pub struct TestServer {
    http: Http,
    pub ws_base: String,
    running: Option<parley::Running>,
    /// `None` when someone else created it and drops it (the nodes of a cluster share one).
    database: Option<FreshDatabase>,
    /// The directory of its attachments, unless the test chose a storage.
    files: Option<tempfile::TempDir>,
    pub config: parley::config::Config,
}

/// REST against this server: `server.get(..)`, `server.post(..)`, `server.user(..)`.
impl Deref for TestServer {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server after `tune` adjusts its configuration (limits, timings).
    pub async fn start_with(backend: Backend, tune: impl FnOnce(&mut parley::config::Config)) -> TestServer {
        let database = FreshDatabase::create(backend).await;
        let url = database.url.clone();
        Self::launch(Some(database), url, tune).await
    }

    /// Starts a server on `database_url`, a database that the caller created and drops.
    pub async fn start_on(database_url: &str, tune: impl FnOnce(&mut parley::config::Config)) -> TestServer {
        Self::launch(None, database_url.to_string(), tune).await
    }

    async fn launch(
        database: Option<FreshDatabase>,
        url: String,
        tune: impl FnOnce(&mut parley::config::Config),
    ) -> TestServer {
        let _ = env_logger::builder().is_test(true).try_init();
        let mut config = parley::config::Config::from_env();
        config.database_url = url;
        config.jwt_secret = Some(SECRET.into());
        config.jwt_public_key = None;
        config.admin_users = vec!["admin".into()];
        config.accounts.admin_password_hash = Some(admin_password_hash());
        // Every test user registers from 127.0.0.1; `account_limits` tests the limit itself.
        config.accounts.registrations_per_hour = 1_000_000;
        config.workers = Some(2);
        config.conversation_threads = Some(2);
        config.db_pool_size = 8;
        config.shutdown_timeout_secs = 2;
        config.fault_injection = true;
        tune(&mut config);
        // Attachments in a directory of the test's own, removed with it.
        let files = config.files.storage_url.is_none().then(|| tempfile::tempdir().expect("a temporary directory"));
        if let Some(dir) = &files {
            config.files.storage_url = Some(dir.path().display().to_string());
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let running = parley::start(listener, config.clone()).await.expect("server starts");
        let addr = running.addr;
        TestServer {
            http: Http::new(&format!("http://{addr}")),
            ws_base: format!("ws://{addr}"),
            running: Some(running),
            database,
            files,
            config,
        }
    }

    /// The files the server keeps in its attachment directory (none with another storage).
    pub fn stored_files(&self) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() { walk(&path, found) } else { found.push(path) }
            }
        }
        let mut found = Vec::new();
        if let Some(dir) = &self.files {
            walk(dir.path(), &mut found);
        }
        found
    }

    /// Stops the server (sessions get 1012) and drops its database.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("server stops");
        }
        drop(self.database.take());
    }

    /// The address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().expect("server address")
    }

    /// Opens a WebSocket as `user` and reads its `session:ready`.
    pub async fn ws(&self, user: &TestUser) -> Ws {
        Ws::open(&self.ws_base, user).await
    }

    /// Opens a WebSocket with a token in the Authorization header; `Err(status)` when refused.
    pub async fn ws_with_token(&self, token: &str) -> Result<Ws, u16> {
        self.ws_adjusted(token, |request| request).await
    }

    /// Opens a WebSocket with a token in the header, after `adjust` changed the request (to
    /// add an `Origin`, for example); `Err(status)` when refused.
    pub async fn ws_adjusted(
        &self,
        token: &str,
        adjust: impl FnOnce(awc::ws::WebsocketsRequest) -> awc::ws::WebsocketsRequest,
    ) -> Result<Ws, u16> {
        let request = self.client.ws(format!("{}/ws", self.ws_base)).bearer_auth(token).max_frame_size(16 << 20);
        Ws::connect(adjust(request)).await
    }

    /// Opens a WebSocket with the token in the query string, as browsers do.
    pub async fn ws_with_query_token(&self, token: &str) -> Result<Ws, u16> {
        let request = self.client.ws(format!("{}/ws?token={token}", self.ws_base)).max_frame_size(16 << 20);
        Ws::connect(request).await
    }
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
}

/// A signed token for `sub`, as an identity system would issue it (HS256 with the test secret).
impl TestUser {
    /// The user of a `{token, user}` answer (registration, login).
    pub fn from_session(body: &Value) -> TestUser {
        TestUser {
            id: body["user"]["id"].as_str().expect("user id").to_string(),
            username: body["user"]["username"].as_str().expect("username").to_string(),
            token: body["token"].as_str().expect("token").to_string(),
        }
    }
}

pub fn token_for(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The value of the sample line `name value` in a `/metrics` text (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}
