//! Socket.IO on the wire (docs/SOCKETIO.md): where it is served, the extra namespace its
//! front-ends may use, the aliases of their event names, and Engine.IO's timing.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct SocketIoConfig {
    /// Where Engine.IO / Socket.IO is served (socket.io-client's `path` option).
    #[arg(long = "socketio-path", env = "PARLEY_SOCKETIO_PATH", default_value = "/socket.io")]
    pub path: String,

    /// A namespace served besides the main one (`/messaging`, `/chat`), for front-ends that
    /// connect to `https://host/messaging`.
    #[arg(long = "socketio-namespace", env = "PARLEY_SOCKETIO_NAMESPACE")]
    pub namespace: Option<String>,

    /// A JSON file of other names for Parley's commands and events (deploy/socketio-aliases.json
    /// has those of the products' front-ends).
    #[arg(long = "socketio-aliases", env = "PARLEY_SOCKETIO_ALIASES")]
    pub aliases: Option<PathBuf>,

    /// How long a client waits for the server's next ping beyond the ping interval (the ping
    /// interval is PARLEY_HEARTBEAT_MS), as the handshake announces it.
    #[arg(long = "socketio-ping-timeout-ms", env = "PARLEY_SOCKETIO_PING_TIMEOUT_MS", default_value_t = 20_000)]
    pub ping_timeout_ms: u64,
}

impl SocketIoConfig {
    /// The namespaces served: the main one, and the configured one (with its leading `/`).
    pub fn namespaces(&self) -> Vec<String> {
        let mut namespaces = vec!["/".to_string()];
        if let Some(extra) = self.namespace.as_deref().map(str::trim).filter(|n| !n.is_empty() && *n != "/") {
            namespaces.push(if extra.starts_with('/') { extra.to_string() } else { format!("/{extra}") });
        }
        namespaces
    }
}
