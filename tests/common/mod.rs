//! The test harness: a real Parley server in-process on a free port, with a fresh database
//! (a temporary SQLite file, or a PostgreSQL database of its own when
//! `PARLEY_TEST_DATABASE_URL` is set), and helpers to make users and talk REST and WebSocket.
//!
//! Each scenario is written once, as `async fn name(backend: Backend)`, and the `backends!`
//! macro turns it into one test per backend.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod cluster;
pub mod http;
pub mod process;
pub mod raw;

use std::collections::VecDeque;
use std::net::TcpListener;
use std::time::Duration;

use actix_codec::Framed;
use awc::ws;
use awc::{BoxedSocket, Client};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

/// The secret test servers sign tokens with; tests sign their own tokens with it too.
pub const SECRET: &str = "parley-test-secret-0123456789";
/// How long a test waits for something it expects before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test per backend: `backends!(scenario)` makes `scenario::sqlite` and `scenario::postgres`.
/// The PostgreSQL one needs `PARLEY_TEST_DATABASE_URL`; without it, it passes only when
/// `PARLEY_REQUIRE_POSTGRES` is unset (CI sets it, so there it cannot be silently skipped).
#[macro_export]
macro_rules! backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
            #[actix_web::test]
            async fn postgres() {
                if $crate::common::postgres_url().is_some() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            }
        }
    )+};
}

/// The admin URL of the test PostgreSQL, if tests should use one.
pub fn postgres_url() -> Option<String> {
    match std::env::var("PARLEY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("PARLEY_REQUIRE_POSTGRES").is_none(),
                "PARLEY_REQUIRE_POSTGRES is set but PARLEY_TEST_DATABASE_URL is not"
            );
            None
        }
    }
}

/// A running server and the database it owns.
pub struct TestServer {
    pub base: String,
    pub ws_base: String,
    pub client: Client,
    running: Option<parley::Running>,
    database: Database,
    pub config: parley::config::Config,
}

enum Database {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
    Shared, // created and dropped by someone else (the nodes of a cluster share one)
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server after `tune` adjusts its configuration (limits, timings).
    pub async fn start_with(backend: Backend, tune: impl FnOnce(&mut parley::config::Config)) -> TestServer {
        let (database, url) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("parley.db").display());
                (Database::Sqlite(dir), url)
            }
            Backend::Postgres => {
                let admin_url = postgres_url().expect("PARLEY_TEST_DATABASE_URL");
                let name = format!("parley_t_{}", uuid::Uuid::new_v4().simple());
                pg_execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
                let url = with_database(&admin_url, &name);
                (Database::Postgres { admin_url, name }, url)
            }
        };
        Self::launch(database, url, tune).await
    }

    /// Starts a server on `database_url`, a database that the caller created and drops.
    pub async fn start_on(database_url: &str, tune: impl FnOnce(&mut parley::config::Config)) -> TestServer {
        Self::launch(Database::Shared, database_url.to_string(), tune).await
    }

    async fn launch(database: Database, url: String, tune: impl FnOnce(&mut parley::config::Config)) -> TestServer {
        let _ = env_logger::builder().is_test(true).try_init();
        let mut config = parley::config::Config::from_env();
        config.database_url = url;
        config.jwt_secret = Some(SECRET.into());
        config.jwt_public_key = None;
        config.admin_users = vec!["admin".into()];
        config.workers = Some(2);
        config.conversation_threads = Some(2);
        config.db_pool_size = 8;
        config.shutdown_timeout_secs = 2;
        config.fault_injection = true;
        tune(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let running = parley::start(listener, config.clone()).await.expect("server starts");
        let addr = running.addr;
        TestServer {
            base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
            client: Client::builder().timeout(PATIENCE).finish(),
            running: Some(running),
            database,
            config,
        }
    }

    /// Stops the server (sessions get 1012) and drops its database.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("server stops");
        }
        if let Database::Postgres { admin_url, name } = &self.database {
            pg_execute(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().expect("server address")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers `username` (password "password123") and returns the user with their token.
    pub async fn user(&self, username: &str) -> TestUser {
        http::Http::of(self).user(username).await
    }

    pub async fn get(&self, user: Option<&TestUser>, path: &str) -> (u16, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(user) = user {
            req = req.bearer_auth(&user.token);
        }
        read(req.send().await.expect("GET")).await
    }

    pub async fn post(&self, user: Option<&TestUser>, path: &str, body: Value) -> (u16, Value) {
        let mut req = self.client.post(self.url(path));
        if let Some(user) = user {
            req = req.bearer_auth(&user.token);
        }
        read(req.send_json(&body).await.expect("POST")).await
    }

    pub async fn delete(&self, user: Option<&TestUser>, path: &str) -> (u16, Value) {
        let mut req = self.client.delete(self.url(path));
        if let Some(user) = user {
            req = req.bearer_auth(&user.token);
        }
        read(req.send().await.expect("DELETE")).await
    }

    /// The text of `/metrics`. Its counters are process-wide: other tests of the same binary add
    /// to them too.
    pub async fn metrics(&self) -> String {
        let mut response = self.client.get(self.url("/metrics")).send().await.expect("metrics");
        assert_eq!(response.status(), 200);
        String::from_utf8(response.body().await.expect("body").to_vec()).expect("text")
    }

    /// Gets or creates the direct conversation of `a` and `b`; returns its id.
    pub async fn direct(&self, a: &TestUser, b: &TestUser) -> String {
        let (status, body) = self.post(Some(a), "/api/conversations", json!({"kind": "direct", "user_id": b.id})).await;
        assert!(status == 201 || status == 200, "direct conversation: {status} {body}");
        body["id"].as_str().expect("conversation id").to_string()
    }

    /// Opens a WebSocket as `user` and reads its `session:ready`.
    pub async fn ws(&self, user: &TestUser) -> Ws {
        Ws::open(&self.ws_base, user).await
    }

    /// Opens a WebSocket with a token in the Authorization header; `Err(status)` when refused.
    pub async fn ws_with_token(&self, token: &str) -> Result<Ws, u16> {
        let request = self.client.ws(format!("{}/ws", self.ws_base)).bearer_auth(token).max_frame_size(16 << 20);
        Ws::connect(request).await
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

async fn read(
    mut response: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.body().limit(64 << 20).await.expect("body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    (status, body)
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
}

/// A signed token for `sub`, as an identity system would issue it (HS256 with the test secret).
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

/// A WebSocket client that keeps the frames it read but was not asked for yet.
pub struct Ws {
    framed: Framed<BoxedSocket, ws::Codec>,
    pending: VecDeque<Value>,
    next_ref: u64,
    /// The close code, once the server closed.
    pub closed: Option<u16>,
}

impl Ws {
    /// Opens a WebSocket as `user` on the server at `ws_base` (`ws://host:port`, also a server
    /// running as a separate process) and reads its `session:ready`.
    pub async fn open(ws_base: &str, user: &TestUser) -> Ws {
        let client = Client::builder().timeout(PATIENCE).finish();
        let request = client.ws(format!("{ws_base}/ws")).bearer_auth(&user.token).max_frame_size(16 << 20);
        let mut ws = Ws::connect(request).await.expect("WebSocket opens");
        let ready = ws.event("session:ready").await;
        assert_eq!(ready["user"]["id"], user.id.as_str(), "session:ready names the user");
        ws
    }

    async fn connect(request: awc::ws::WebsocketsRequest) -> Result<Ws, u16> {
        match request.connect().await {
            Ok((_, framed)) => Ok(Ws { framed, pending: VecDeque::new(), next_ref: 0, closed: None }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(err) => panic!("WebSocket connect failed: {err}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.framed.send(ws::Message::Text(text.to_string().into())).await.expect("send frame");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.framed.send(ws::Message::Binary(bytes.to_vec().into())).await.expect("send frame");
    }

    /// Sends a command with a fresh `ref` and returns the ref.
    pub async fn command(&mut self, kind: &str, data: Value) -> String {
        self.try_command(kind, data).await.expect("send frame")
    }

    /// Like [`Ws::command`], but `None` when the connection is gone.
    pub async fn try_command(&mut self, kind: &str, data: Value) -> Option<String> {
        self.next_ref += 1;
        let reference = format!("r{}", self.next_ref);
        let text = json!({"type": kind, "ref": reference, "data": data}).to_string();
        self.framed.send(ws::Message::Text(text.into())).await.ok().map(|()| reference)
    }

    /// Sends a command and returns its reply frame (`ack` or `error`), keeping other frames.
    pub async fn request(&mut self, kind: &str, data: Value) -> Value {
        let reference = self.command(kind, data).await;
        self.reply_to(&reference).await
    }

    /// The reply to `reference`.
    pub async fn reply_to(&mut self, reference: &str) -> Value {
        self.take(|f| f["ref"] == reference && (f["type"] == "ack" || f["type"] == "error")).await
    }

    /// Sends a command that must succeed and returns the ack's data.
    pub async fn ack(&mut self, kind: &str, data: Value) -> Value {
        let reply = self.request(kind, data.clone()).await;
        assert_eq!(reply["type"], "ack", "{kind} {data} should be acked, got {reply}");
        reply["data"].clone()
    }

    /// Sends a command that must fail and returns the error code.
    pub async fn error(&mut self, kind: &str, data: Value) -> String {
        let reply = self.request(kind, data.clone()).await;
        assert_eq!(reply["type"], "error", "{kind} {data} should fail, got {reply}");
        reply["data"]["code"].as_str().expect("error code").to_string()
    }

    /// The data of the next event of type `kind` (frames of other types are kept).
    pub async fn event(&mut self, kind: &str) -> Value {
        self.take(|f| f["type"] == kind).await["data"].clone()
    }

    /// The next event of type `kind` whose data satisfies `matches`.
    pub async fn event_where(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.take(|f| f["type"] == kind && matches(&f["data"])).await["data"].clone()
    }

    /// The next frame of any kind (kept frames first).
    pub async fn next(&mut self) -> Value {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        self.read().await.unwrap_or_else(|| panic!("connection closed ({:?}) while a frame was expected", self.closed))
    }

    /// The next frame of any kind (kept frames first); `None` once the server closed.
    pub async fn try_next(&mut self) -> Option<Value> {
        match self.pending.pop_front() {
            Some(frame) => Some(frame),
            None => self.read().await,
        }
    }

    /// Frames kept so far that match, removed from the buffer.
    pub fn drain(&mut self, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        let (taken, kept): (Vec<Value>, Vec<Value>) = self.pending.drain(..).partition(|f| matches(f));
        self.pending = kept.into();
        taken
    }

    async fn take(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&matches) {
            return self.pending.remove(i).expect("frame");
        }
        loop {
            let frame = self
                .read()
                .await
                .unwrap_or_else(|| panic!("connection closed ({:?}) before the expected frame", self.closed));
            if matches(&frame) {
                return frame;
            }
            self.pending.push_back(frame);
        }
    }

    /// Reads one JSON frame; `None` once the server closed. Fails after [`PATIENCE`].
    async fn read(&mut self) -> Option<Value> {
        if self.closed.is_some() {
            return None;
        }
        loop {
            let frame =
                tokio::time::timeout(PATIENCE, self.framed.next()).await.expect("no frame from the server in time");
            match frame {
                Some(Ok(ws::Frame::Text(bytes))) => return Some(serde_json::from_slice(&bytes).expect("JSON frame")),
                Some(Ok(ws::Frame::Ping(payload))) => {
                    let _ = self.framed.send(ws::Message::Pong(payload)).await;
                }
                Some(Ok(ws::Frame::Close(reason))) => {
                    self.closed = Some(reason.map_or(1005, |r| r.code.into()));
                    return None;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    self.closed.get_or_insert(1006);
                    return None;
                }
            }
        }
    }

    /// Waits until the server closes the connection and returns the close code.
    pub async fn closed_with(&mut self) -> u16 {
        while self.read().await.is_some() {}
        self.closed.expect("close code")
    }

    pub async fn close(mut self) {
        let _ = self.framed.send(ws::Message::Close(None)).await;
    }
}

/// Runs one statement on the test PostgreSQL (as its admin: databases are created and dropped).
/// Drops a database from a `Drop` impl: that runs inside the test's runtime, which cannot block
/// on a future, so on a thread of its own. Fails the test if it cannot (unless it fails already).
pub fn drop_database_now(admin_url: String, name: String) {
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(pg_execute(&admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
    })
    .join();
    if dropped.is_err() && !std::thread::panicking() {
        panic!("the test database could not be dropped");
    }
}

pub async fn pg_execute(admin_url: &str, sql: &str) {
    let mut conn = AsyncPgConnection::establish(admin_url).await.expect("connect to the test PostgreSQL");
    diesel::sql_query(sql).execute(&mut conn).await.unwrap_or_else(|err| panic!("{sql}: {err}"));
}

/// `admin_url` with its database name replaced by `name`.
pub fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}
