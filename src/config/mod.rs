//! Every setting, from command-line flags or `PARLEY_*` environment variables (`parley --help`
//! lists them with their defaults). Limits are grouped in [`Limits`] because most of the program
//! only needs those.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

mod host;
mod socketio;
pub use host::{ConversationStart, Directory, HostConfig, Language, Policies, Registration};
pub use socketio::SocketIoConfig;

#[derive(Parser, Debug, Clone)]
#[command(name = "parley", version, about = "A self-hosted real-time chat server")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PARLEY_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Database: `sqlite://FILE` (embedded, the default) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "PARLEY_DATABASE_URL", default_value = "sqlite://parley.db")]
    pub database_url: String,

    /// HS256 secret for tokens. Required on PostgreSQL; on SQLite one is generated at first start
    /// and kept in a file beside the database.
    #[arg(long, env = "PARLEY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM file with the public key of an identity system whose RS256 or EdDSA tokens to accept.
    #[arg(long, env = "PARLEY_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Lifetime of the tokens that /api/auth issues, in seconds.
    #[arg(long, env = "PARLEY_TOKEN_TTL_SECS", default_value_t = 86_400)]
    pub token_ttl_secs: u64,

    /// Built-in accounts (comma-separated usernames) whose tokens carry `role: admin`.
    #[arg(long, env = "PARLEY_ADMIN_USERS", value_delimiter = ',')]
    pub admin_users: Vec<String>,

    /// Failed logins an account may have before each further attempt must wait (doubling from
    /// one second); an address may have four times as many.
    #[arg(long, env = "PARLEY_LOGIN_FAILURES", default_value_t = 5)]
    pub login_failures: u32,

    /// Origins (comma-separated, as `https://app.example.com`) whose web pages may use this
    /// server besides its own; WebSocket upgrades and CORS from any other origin are refused.
    #[arg(long, env = "PARLEY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Database connections in the pool.
    #[arg(long, env = "PARLEY_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,

    /// How long a request waits for a database connection before it gets `unavailable`.
    #[arg(long, env = "PARLEY_DB_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_timeout_ms: u64,

    /// Group-commit transactions in flight at once on PostgreSQL (SQLite has one writer, so one).
    /// Fewer lanes make bigger batches, which cost the database less CPU per message; more lanes
    /// suit a database with cores to spare (docs/BENCHMARKS.md measures 1, 2, 4 and 8).
    #[arg(long, env = "PARLEY_COMMIT_LANES", default_value_t = 2)]
    pub commit_lanes: usize,

    /// Most messages committed in one group-commit transaction.
    #[arg(long, env = "PARLEY_COMMIT_BATCH", default_value_t = 256)]
    pub commit_batch: usize,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "PARLEY_WORKERS")]
    pub workers: Option<usize>,

    /// Arbiters (threads) that conversation actors are spread over (default: one per core).
    #[arg(long, env = "PARLEY_CONVERSATION_THREADS")]
    pub conversation_threads: Option<usize>,

    /// How long shutdown waits for open connections, in seconds.
    #[arg(long, env = "PARLEY_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub cluster: ClusterConfig,

    #[command(flatten)]
    pub exposure: Exposure,

    #[command(flatten)]
    pub accounts: AccountConfig,

    #[command(flatten)]
    pub files: FileConfig,

    #[command(flatten)]
    pub host: HostConfig,

    #[command(flatten)]
    pub socketio: SocketIoConfig,

    /// Test-only fault injection (`POST /api/admin/actors/conversations/{id}/fault`). Not a flag:
    /// only code that builds a `Config` itself (the tests) can turn it on.
    #[arg(skip)]
    pub fault_injection: bool,
}

/// The explicit limits of PROTOCOL.md §4, and the timings of the actors.
#[derive(Args, Debug, Clone)]
pub struct Limits {
    /// Largest WebSocket frame accepted, in bytes (larger: close 1009).
    #[arg(long, env = "PARLEY_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Largest REST request body, in bytes (larger: 413).
    #[arg(long, env = "PARLEY_MAX_REQUEST_BYTES", default_value_t = 64 * 1024)]
    pub max_request_bytes: usize,

    /// Longest message body, in characters.
    #[arg(long, env = "PARLEY_MAX_MESSAGE_CHARS", default_value_t = 4_000)]
    pub max_message_chars: usize,

    /// Most attachments on one message.
    #[arg(long, env = "PARLEY_MAX_ATTACHMENTS_PER_MESSAGE", default_value_t = 5)]
    pub max_attachments_per_message: usize,

    /// Sustained messages per second per user.
    #[arg(long, env = "PARLEY_RATE_PER_SEC", default_value_t = 20.0)]
    pub rate_per_sec: f64,

    /// Burst of messages per user above the sustained rate.
    #[arg(long, env = "PARLEY_RATE_BURST", default_value_t = 40.0)]
    pub rate_burst: f64,

    /// Frames per second one WebSocket may send, with bursts of twice as many; a connection
    /// that sends more is closed (1008).
    #[arg(long, env = "PARLEY_MAX_FRAMES_PER_SEC", default_value_t = 100.0)]
    pub max_frames_per_sec: f64,

    /// Most members in a group, its owner included.
    #[arg(long, env = "PARLEY_MAX_GROUP_MEMBERS", default_value_t = 256)]
    pub max_group_members: usize,

    /// Messages per page when the client does not say.
    #[arg(long, env = "PARLEY_PAGE_DEFAULT", default_value_t = 50)]
    pub page_default: i64,

    /// Most messages per page.
    #[arg(long, env = "PARLEY_PAGE_MAX", default_value_t = 200)]
    pub page_max: i64,

    /// Most conversations in one `sync` or one conversation-list page, and users in one
    /// `presence:query` or directory search.
    #[arg(long, env = "PARLEY_MAX_BATCH", default_value_t = 100)]
    pub max_batch: usize,

    /// Frames a session may have waiting to be written before it counts as a slow consumer and
    /// is closed with 1013.
    #[arg(long, env = "PARLEY_OUTGOING_QUEUE", default_value_t = 256)]
    pub outgoing_queue: usize,

    /// Requests waiting in one conversation actor's mailbox before new ones get `unavailable`.
    #[arg(long, env = "PARLEY_CONVERSATION_MAILBOX", default_value_t = 1024)]
    pub conversation_mailbox: usize,

    /// A send that would wait longer than this to be committed gets `unavailable` instead (it
    /// is not stored; the client retries with its client_id). Bounds latency under overload.
    #[arg(long, env = "PARLEY_SEND_DEADLINE_MS", default_value_t = 1_000)]
    pub send_deadline_ms: u64,

    /// Shortest time between two `unread:updated` of one conversation to a recipient: updates
    /// in between are coalesced into the next (which is exact).
    #[arg(long, env = "PARLEY_UNREAD_INTERVAL_MS", default_value_t = 100)]
    pub unread_interval_ms: u64,

    /// A conversation actor with no activity for this long stops (it restarts on next use).
    #[arg(long, env = "PARLEY_CONVERSATION_IDLE_SECS", default_value_t = 300)]
    pub conversation_idle_secs: u64,

    /// Interval of WebSocket pings; a connection silent for three intervals is closed.
    #[arg(long, env = "PARLEY_HEARTBEAT_MS", default_value_t = 15_000)]
    pub heartbeat_ms: u64,

    /// How long a user stays online after their last session closed (so a reload does not flap).
    #[arg(long, env = "PARLEY_PRESENCE_GRACE_MS", default_value_t = 5_000)]
    pub presence_grace_ms: u64,

    /// Typing ends by itself this long after the last `typing:start`.
    #[arg(long, env = "PARLEY_TYPING_TIMEOUT_MS", default_value_t = 5_000)]
    pub typing_timeout_ms: u64,

    /// How long a closing session may take to write its close frame before the socket is cut.
    #[arg(long, env = "PARLEY_CLOSE_TIMEOUT_MS", default_value_t = 2_000)]
    pub close_timeout_ms: u64,
}

/// Several nodes on one PostgreSQL (docs/DEPLOYMENT.md): the broker and its timings.
#[derive(Args, Debug, Clone)]
pub struct ClusterConfig {
    /// Redis for several nodes (`redis://HOST:6379/DB`): turns clustering on. Without it the
    /// node works alone. Needs PostgreSQL: SQLite is for one node.
    #[arg(long, env = "PARLEY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so that several clusters can share one Redis.
    #[arg(long, env = "PARLEY_REDIS_PREFIX", default_value = "parley")]
    pub redis_prefix: String,

    /// A node silent this long is dead: its users go offline on the other nodes. It renews its
    /// lease every third of this.
    #[arg(long, env = "PARLEY_NODE_TTL_MS", default_value_t = 10_000)]
    pub node_ttl_ms: u64,

    /// How long a node holds a message that arrived ahead of a missing `seq` before it fills
    /// the gap from the database.
    #[arg(long, env = "PARLEY_GAP_WAIT_MS", default_value_t = 200)]
    pub gap_wait_ms: u64,

    /// Events waiting to be published; while the broker is down or slow, newer events beyond
    /// this are dropped (counted; clients fill gaps with `sync`).
    #[arg(long, env = "PARLEY_BROKER_QUEUE", default_value_t = 65_536)]
    pub broker_queue: usize,
}

/// Facing the internet: what one address or one user may hold open or do, and which proxies are
/// believed about the client's address (docs/SECURITY.md, "Facing the internet").
#[derive(Args, Debug, Clone)]
pub struct Exposure {
    /// Proxies (comma-separated addresses or CIDR blocks, as `10.0.0.0/8`) whose
    /// `X-Forwarded-For` is believed: behind them, the per-address limits count the client's
    /// address. Empty: the TCP peer is the client.
    #[arg(long, env = "PARLEY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Open TCP connections one address may hold; a request on one more is answered
    /// `rate_limited` and the connection closed. Trusted proxies are not counted.
    #[arg(long, env = "PARLEY_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 512)]
    pub max_connections_per_address: usize,

    /// How long a request body may take to arrive once its headers have (slower: 400, and the
    /// connection is closed).
    #[arg(long, env = "PARLEY_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,

    /// How long an upload's body may take to arrive, in milliseconds (instead of
    /// PARLEY_BODY_TIMEOUT_MS: 10 MiB over a slow mobile link takes minutes).
    #[arg(long, env = "PARLEY_UPLOAD_TIMEOUT_MS", default_value_t = 300_000)]
    pub upload_timeout_ms: u64,

    /// Open WebSocket sessions per user on one node (one more: 429 at the upgrade).
    #[arg(long, env = "PARLEY_MAX_SESSIONS_PER_USER", default_value_t = 32)]
    pub max_sessions_per_user: usize,

    /// Open WebSocket sessions per client address on one node (one more: 429 at the upgrade).
    #[arg(long, env = "PARLEY_MAX_SESSIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_sessions_per_address: usize,

    /// Groups one user may add people to per minute (creating a group with members counts as
    /// one; adding more people to a group already counted this minute is free).
    #[arg(long, env = "PARLEY_GROUP_INVITES_PER_MINUTE", default_value_t = 10)]
    pub group_invites_per_minute: usize,
}

impl Exposure {
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    pub fn upload_timeout(&self) -> Duration {
        Duration::from_millis(self.upload_timeout_ms)
    }
}

/// Accounts and tokens facing the open internet (docs/SECURITY.md says why each default).
#[derive(Args, Debug, Clone)]
pub struct AccountConfig {
    /// Argon2 hash (PHC string, `$argon2id$...`) of the password of the accounts named in
    /// PARLEY_ADMIN_USERS. Those names cannot be taken by registration; at start, each one that
    /// has no account yet gets one with this password. Without it they have no account.
    #[arg(long, env = "PARLEY_ADMIN_PASSWORD_HASH", hide_env_values = true)]
    pub admin_password_hash: Option<String>,

    /// Accounts one address may register per hour (more: `rate_limited`).
    #[arg(long, env = "PARLEY_REGISTRATIONS_PER_HOUR", default_value_t = 10)]
    pub registrations_per_hour: u32,

    /// Longest lifetime (`exp - iat`, and `exp - now`) of a token this server accepts, in seconds;
    /// a longer one is refused. Must be at least PARLEY_TOKEN_TTL_SECS.
    #[arg(long, env = "PARLEY_TOKEN_MAX_LIFETIME_SECS", default_value_t = 7 * 86_400)]
    pub token_max_lifetime_secs: u64,

    /// How often an open WebSocket checks that its token has not been revoked (sign-out
    /// everywhere), in milliseconds. REST checks on every request.
    #[arg(long, env = "PARLEY_REVOCATION_CHECK_MS", default_value_t = 30_000)]
    pub revocation_check_ms: u64,
}

/// Attachments (docs/PROTOCOL.md §2.10; docs/SECURITY.md, "Files"): where files are kept, and
/// what an upload may be.
#[derive(Args, Debug, Clone)]
pub struct FileConfig {
    /// Where files are kept: a directory (`./files`, `file:///var/lib/parley/files`) or an
    /// S3-compatible bucket (`s3://BUCKET[/PREFIX][?endpoint=URL&region=R]`, credentials from the
    /// AWS_* variables). Default: a directory beside the SQLite file (`parley.db.files`); on
    /// PostgreSQL, `parley-files` in the working directory (use S3 for several nodes).
    #[arg(long, env = "PARLEY_STORAGE_URL")]
    pub storage_url: Option<String>,

    /// Largest file, in bytes (more: 413 `payload_too_large`).
    #[arg(long, env = "PARLEY_MAX_ATTACHMENT_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_attachment_bytes: u64,

    /// Bytes of files one user may keep (sent or waiting to be sent; more: 413 `quota_exceeded`).
    #[arg(long, env = "PARLEY_ATTACHMENT_QUOTA_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub quota_bytes: u64,

    /// Types accepted, decided from the bytes: families (`image`, `pdf`, `office`, `text`) and/or
    /// MIME types, comma-separated. HTML and SVG are never accepted.
    #[arg(long, env = "PARLEY_ATTACHMENT_TYPES", default_value = "image,pdf,office,text")]
    pub types: String,

    /// Remove location and camera metadata (Exif, XMP, IPTC) from JPEG, PNG and WebP originals.
    /// Off: originals are kept byte for byte (thumbnails never carry metadata).
    #[arg(long, env = "PARLEY_STRIP_IMAGE_METADATA", default_value_t = false)]
    pub strip_image_metadata: bool,

    /// Largest image (width × height) that gets a thumbnail; larger ones are refused, as a
    /// decompression bomb would be. Decoding costs 3 to 4 bytes per pixel.
    #[arg(long, env = "PARLEY_MAX_IMAGE_PIXELS", default_value_t = 40_000_000)]
    pub max_image_pixels: u64,

    /// Images decoded at once for thumbnails (each holds its pixels in memory while it lasts).
    #[arg(long, env = "PARLEY_IMAGE_WORKERS", default_value_t = 1)]
    pub image_workers: usize,

    /// Lifetime of the signed links in messages, in seconds (a link works for one to one and a
    /// quarter lifetimes).
    #[arg(long, env = "PARLEY_ATTACHMENT_URL_TTL_SECS", default_value_t = 3_600)]
    pub url_ttl_secs: u64,

    /// Uploads not sent within this many seconds are removed.
    #[arg(long, env = "PARLEY_UNSENT_ATTACHMENT_TTL_SECS", default_value_t = 86_400)]
    pub unsent_ttl_secs: u64,
}

impl Limits {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub fn send_deadline(&self) -> Duration {
        Duration::from_millis(self.send_deadline_ms)
    }

    pub fn unread_interval(&self) -> Duration {
        Duration::from_millis(self.unread_interval_ms)
    }

    pub fn typing_timeout(&self) -> Duration {
        Duration::from_millis(self.typing_timeout_ms)
    }
}

impl Config {
    /// The defaults, as `parley` with no flags would have them (environment included).
    pub fn from_env() -> Self {
        Config::parse_from(["parley"])
    }

    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}
