//! A session's outgoing queue: the bounded queue of encoded frames every sender pushes onto
//! ([`SessionHandle`]), and the task that writes it to the socket. (Not to be confused with the
//! broker's publish queue, `cluster/mod.rs`, or the web client's pending sends.)
//!
//! Everything that sends to a session (its own replies, conversation actors, Presence) pushes
//! onto the queue without waiting. A full queue means the client is not reading fast enough: the
//! session is closed with 1013 and its queue dropped, so one slow client costs a bounded amount
//! of memory and never slows its conversation (docs/PROTOCOL.md §3).
//!
//! Closing must work even when the client has stopped reading entirely. Then the close frame
//! itself cannot be written, and actix's HTTP dispatcher waits on the socket forever (it has no
//! write timeout, and that is why the session writes through actix-ws rather than
//! actix-web-actors, whose actor would stop running there). So a close that does not go through
//! within `close_timeout` cuts the TCP connection ([`SocketGuard::abort`]).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;
use actix_ws::CloseReason;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::Frame;
use crate::types::{SessionId, UserId};

/// WebSocket close codes that Parley uses.
pub mod close {
    /// The session ended normally.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (heartbeat lost).
    pub const GOING_AWAY: u16 = 1001;
    /// A frame that is not a WebSocket frame.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// The client broke a rule of use (too many frames).
    pub const POLICY: u16 = 1008;
    /// A frame larger than the configured limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server restarts: reconnect (elsewhere).
    pub const RESTART: u16 = 1012;
    /// The client did not keep up: reconnect and `sync`.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The token expired: get a new one.
    pub const TOKEN_EXPIRED: u16 = 4001;
}

/// What the writer task puts on the socket.
pub enum Outgoing {
    Text(Frame),
    Ping,
    Pong(Bytes),
}

/// What other actors hold to reach a session: cheap to clone, never blocks.
#[derive(Clone)]
pub struct SessionHandle {
    pub id: SessionId,
    pub user: UserId,
    queue: mpsc::Sender<Outgoing>,
    closer: Arc<Closer>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "session {} of {}", self.id, self.user)
    }
}

impl SessionHandle {
    /// Queues an encoded frame (the same bytes for every recipient).
    pub fn deliver(&self, frame: &Frame) {
        self.push(Outgoing::Text(frame.clone()));
    }

    pub(super) fn push(&self, item: Outgoing) {
        match self.queue.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                log::info!("session {}: outgoing queue full, closing (slow consumer)", self.id);
                // What is queued is dropped: the client syncs it after reconnecting.
                self.closer.close(close::TRY_AGAIN_LATER, "too slow: reconnect and sync", false);
            }
            // The writer has finished: the session is closing anyway.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Asks the writer to write what is queued, then close the socket with `code`. The first
    /// call wins; later ones do nothing.
    pub fn close(&self, code: u16, reason: &str) {
        self.closer.close(code, reason, true);
    }

    /// The server is stopping: tells the session to finish what it is doing and close (1012).
    pub fn shutdown(&self) {
        self.closer.stopping.notify_one();
    }

    /// Resolves when [`SessionHandle::shutdown`] was called (for the session actor).
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + 'static {
        let closer = self.closer.clone();
        async move { closer.stopping.notified().await }
    }

    /// A handle with no socket behind it, for unit tests of what holds handles.
    #[cfg(test)]
    pub(crate) fn detached(user: UserId) -> SessionHandle {
        let (queue, _) = mpsc::channel(1);
        let (signal, _) = oneshot::channel();
        let closer = Closer { signal: Mutex::new(Some(signal)), stopping: tokio::sync::Notify::new() };
        SessionHandle { id: SessionId::random(), user, queue, closer: Arc::new(closer) }
    }
}

/// How a session's socket ends, shared by every handle.
struct Closer {
    signal: Mutex<Option<oneshot::Sender<Closing>>>,
    stopping: tokio::sync::Notify,
}

struct Closing {
    reason: CloseReason,
    /// Write the frames already queued first (not for a slow consumer: they are why it closes).
    flush: bool,
}

impl Closer {
    fn close(&self, code: u16, reason: &str, flush: bool) {
        let signal = self.signal.lock().ok().and_then(|mut signal| signal.take());
        if let Some(signal) = signal {
            let reason = CloseReason { code: code.into(), description: Some(reason.to_string()) };
            let _ = signal.send(Closing { reason, flush });
        }
    }
}

/// Where a session's writer puts what it writes: a WebSocket (`/ws`), or an Engine.IO
/// connection (`/socket.io/`, which encodes each frame as a Socket.IO packet and carries it over
/// a WebSocket or long-polling).
pub trait Socket: 'static {
    fn send(&mut self, item: Outgoing) -> impl std::future::Future<Output = Result<(), actix_ws::Closed>>;
    fn close(self, reason: Option<CloseReason>) -> impl std::future::Future<Output = Result<(), actix_ws::Closed>>;
}

impl Socket for actix_ws::Session {
    async fn send(&mut self, item: Outgoing) -> Result<(), actix_ws::Closed> {
        match item {
            Outgoing::Text(frame) => self.text(frame).await,
            Outgoing::Ping => self.ping(b"").await,
            Outgoing::Pong(payload) => self.pong(&payload).await,
        }
    }

    async fn close(self, reason: Option<CloseReason>) -> Result<(), actix_ws::Closed> {
        actix_ws::Session::close(self, reason).await
    }
}

/// Starts the writer of one socket and returns the handle that feeds it.
pub fn start(
    id: SessionId,
    user: UserId,
    ws: impl Socket,
    socket: Option<SocketGuard>,
    capacity: usize,
    close_timeout: Duration,
) -> SessionHandle {
    let (queue, items) = mpsc::channel(capacity.max(1));
    let (signal, close_signal) = oneshot::channel();
    actix_web::rt::spawn(write(id, ws, items, close_signal, socket, close_timeout));
    let closer = Closer { signal: Mutex::new(Some(signal)), stopping: tokio::sync::Notify::new() };
    SessionHandle { id, user, queue, closer: Arc::new(closer) }
}

async fn write(
    id: SessionId,
    mut ws: impl Socket,
    mut items: mpsc::Receiver<Outgoing>,
    mut close_signal: oneshot::Receiver<Closing>,
    socket: Option<SocketGuard>,
    close_timeout: Duration,
) {
    // A close request is seen at once, also while a write is stuck on a full socket.
    let closing = loop {
        let item = tokio::select! {
            biased;
            closing = &mut close_signal => break closing.ok(),
            item = items.recv() => item,
        };
        let Some(item) = item else { break None };
        let written = tokio::select! {
            biased;
            closing = &mut close_signal => break closing.ok(),
            written = ws.send(item) => written,
        };
        if written.is_err() {
            return; // the connection is gone
        }
    };
    let (reason, flush) = closing.map_or((None, false), |c| (Some(c.reason), c.flush));
    let finish = async move {
        while flush && let Ok(item) = items.try_recv() {
            ws.send(item).await?;
        }
        ws.close(reason).await
    };
    // Bounded: a client that reads nothing lets neither the queue nor the close frame through.
    if tokio::time::timeout(close_timeout, finish).await.is_err() {
        log::info!("session {id}: close frame not written in {close_timeout:?}, cutting the connection");
        if let Some(socket) = socket {
            socket.abort();
        }
    }
}

/// The TCP connection under a WebSocket, to cut it when a close cannot be written.
///
/// Recorded when the connection is accepted (`HttpServer::on_connect`). It keeps the raw
/// descriptor, not a duplicate, so that a held connection costs one file descriptor, not two
/// (a process here may hold 20,000). A raw descriptor can be closed and reused by another
/// connection before it is aborted, so [`SocketGuard::abort`] first checks that the descriptor
/// still has both addresses of this connection: a TCP 4-tuple is not reused while its previous
/// connection is in TIME_WAIT, so a match is this connection.
#[derive(Debug, Clone, Copy)]
pub struct SocketGuard {
    fd: RawFd,
    local: SocketAddr,
    peer: SocketAddr,
}

impl SocketGuard {
    pub fn of(stream: &tokio::net::TcpStream) -> Option<SocketGuard> {
        Some(SocketGuard { fd: stream.as_raw_fd(), local: stream.local_addr().ok()?, peer: stream.peer_addr().ok()? })
    }

    /// Shuts the connection down in both directions, if it is still this connection.
    pub fn abort(&self) {
        if address_of(self.fd, libc::getpeername) == Some(self.peer)
            && address_of(self.fd, libc::getsockname) == Some(self.local)
        {
            // SAFETY: shutdown takes any integer; on a descriptor that is not this socket it
            // would fail with EBADF or act on another socket, which the check above rules out.
            unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        }
    }
}

type AddressCall = unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

fn address_of(fd: RawFd, call: AddressCall) -> Option<SocketAddr> {
    // SAFETY: `try_init` hands `call` zeroed storage of the right size and its length, which is
    // the contract of getpeername and getsockname; they fail cleanly on a bad descriptor.
    let result = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            if call(fd, storage.cast(), len) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        })
    };
    result.ok().and_then(|(_, addr)| addr.as_socket())
}
