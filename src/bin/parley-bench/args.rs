//! The command line of `parley-bench` (clap, like the server's `src/config.rs`).

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "parley-bench",
    version,
    about = "Open-loop load generator for Parley (any server of docs/PROTOCOL.md): message rates and latencies, or idle connections",
    after_help = "The human table goes to stderr; the last line on stdout is always one JSON object with the figures."
)]
pub struct Args {
    /// Base URL of the server (http://HOST:PORT; no TLS). Several, comma-separated, for the
    /// nodes of a cluster: sockets go to each in turn (the two members of a direct
    /// conversation to different nodes), and setup to the first.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    pub url: Vec<String>,

    /// Users, one WebSocket connection each.
    #[arg(long, default_value_t = 200)]
    pub users: usize,

    /// Conversations (default: users / group size). Conversation i has users i*G .. i*G+G-1 (with
    /// G = 2: users 2i and 2i+1); users past the last conversation stay connected but idle.
    #[arg(long)]
    pub conversations: Option<usize>,

    /// Members per conversation: 2 makes direct conversations, more makes groups.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(2..))]
    pub group_size: u16,

    /// Messages per second offered in total, spread evenly over every member of every
    /// conversation, on a fixed schedule whatever the acks do (open loop).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,

    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,

    /// Seconds sent at the same rate before the measurement starts (not counted).
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,

    /// Seconds to wait after the last send for late acks and deliveries.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,

    /// Message body length, in characters.
    #[arg(long, default_value_t = 64)]
    pub body_size: usize,

    /// HS256 secret to sign tokens with (the server's PARLEY_JWT_SECRET): users are created by
    /// the server on first use instead of through /api/auth/register.
    #[arg(long, env = "PARLEY_BENCH_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// Built-in accounts are named PREFIX_i; an existing one is logged in (default: a fresh
    /// random prefix per run).
    #[arg(long)]
    pub user_prefix: Option<String>,

    /// The server's process id: report its CPU and memory. Several, comma-separated, for the
    /// nodes of a cluster: their sums are reported.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<i32>,

    /// Connection mode: open this many idle authenticated WebSockets (no messages), hold them,
    /// and report connect rate, failures, drops and the server's memory per connection.
    #[arg(long)]
    pub connections: Option<usize>,

    /// Connection mode: seconds to hold the connections open.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,

    /// Files mode: upload this many files at once (then download them at once), and report
    /// throughput and the server's memory (with --server-pid).
    #[arg(long)]
    pub uploads: Option<usize>,

    /// Files mode: bytes per file.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub file_size: usize,

    /// Files mode: rounds of uploads and downloads (the best round's throughput is reported;
    /// the memory peak is over all of them).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// Connections (and REST requests) being opened at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,

    /// Threads of the generator, each a single-threaded runtime with its share of the
    /// conversations. One is enough for ~10,000 msg/s and leaves the other core to the server.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,

    /// Free text copied into the JSON output.
    #[arg(long)]
    pub label: Option<String>,
}

impl Args {
    /// Checks what clap cannot; returns the number of conversations.
    pub fn conversations(&self) -> Result<usize, String> {
        let g = usize::from(self.group_size);
        let c = self.conversations.unwrap_or(self.users / g);
        if c * g > self.users {
            return Err(format!("{c} conversations of {g} need {} users, --users is {}", c * g, self.users));
        }
        if self.connections.is_none() && c == 0 {
            return Err("no conversation to send in: raise --users or --conversations".into());
        }
        if !(self.rate > 0.0 && self.duration > 0.0 && self.warmup >= 0.0 && self.drain >= 0.0 && self.hold >= 0.0) {
            return Err("--rate and --duration must be positive, --warmup, --drain and --hold not negative".into());
        }
        if self.body_size == 0 {
            return Err("--body-size must be at least 1".into());
        }
        Ok(c)
    }

    /// The WebSocket base URLs (`ws://HOST:PORT`), one per node.
    pub fn ws_bases(&self) -> Vec<String> {
        self.url
            .iter()
            .map(|url| {
                let url = url.trim_end_matches('/');
                match url.strip_prefix("http") {
                    Some(rest) => format!("ws{rest}"),
                    None => url.to_string(),
                }
            })
            .collect()
    }

    pub fn http_base(&self) -> &str {
        self.url.first().map_or("", |url| url.trim_end_matches('/'))
    }
}
