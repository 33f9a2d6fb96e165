//! One Engine.IO connection (a `sid`): its transport (long-polling, then perhaps a WebSocket
//! after the upgrade, or a WebSocket from the start), the packets it receives, and the Socket.IO
//! session it carries, which is an ordinary [`WsSession`]: the CONNECT packet authenticates and
//! starts one, EVENT packets reach it as the frames of `/ws` would, and what it writes goes out
//! through an [`EngineSocket`], which turns each frame into a Socket.IO packet. Ordering,
//! acknowledgement after commit, slow consumers, rates and presence are therefore `/ws`'s own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix::{Actor, AsyncContext};
use actix_web::web::Bytes;
use actix_ws::{AggregatedMessage, CloseReason, ProtocolError};
use bytestring::ByteString;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::packets::{ClientPacket, from_frame, namespace_prefix, to_frame};
use super::{Engines, SocketIo};
use crate::actors::outgoing::{self, Outgoing, Socket, close};
use crate::actors::session::WsSession;
use crate::error::{Error, Result};
use crate::types::SessionId;

/// Packets waiting for the next poll; a client that stops polling fills this, then its
/// session's outgoing queue, and is closed as a slow consumer (1013).
const POLL_BUFFER: usize = 64;
/// Frames waiting for the session: a client that sends faster than its session reads is cut
/// off, as `/ws` cuts one that sends too many frames.
const INBOUND: usize = 64;

/// What the handshake request said, for the CONNECT packet that may come later.
pub struct Handshake {
    /// A token in the `token` query parameter or the `Authorization` header.
    pub token: Option<String>,
    pub client_ip: std::net::IpAddr,
}

pub struct Engine {
    pub sid: String,
    handshake: Handshake,
    to_poll: mpsc::Sender<String>,
    /// The one poll at a time holds this.
    polled: tokio::sync::Mutex<mpsc::Receiver<String>>,
    /// The WebSocket once there is one (from the start, or after the upgrade).
    ws: tokio::sync::Mutex<Option<actix_ws::Session>>,
    /// The session's input, once CONNECT started it.
    inbound: Mutex<Option<mpsc::Sender<AggregatedMessage>>>,
    /// The namespace the session connected to.
    namespace: Mutex<Option<String>>,
    /// On a WebSocket since the upgrade: polls of this sid are refused.
    upgraded: AtomicBool,
    /// A WebSocket came to take this connection over.
    upgrading: AtomicBool,
    closed: AtomicBool,
    /// Wakes a waiting poll when the connection ends (its buffer may be too full for `1`).
    ended: tokio::sync::Notify,
}

#[derive(Deserialize)]
struct Auth {
    token: Option<String>,
}

impl Engine {
    pub fn new(sid: String, handshake: Handshake, ws: Option<actix_ws::Session>) -> Arc<Engine> {
        let (to_poll, polled) = mpsc::channel(POLL_BUFFER);
        let upgraded = AtomicBool::new(ws.is_some());
        let upgrading = ws.is_some();
        Arc::new(Engine {
            sid,
            handshake,
            to_poll,
            polled: tokio::sync::Mutex::new(polled),
            ws: tokio::sync::Mutex::new(ws),
            inbound: Mutex::new(None),
            namespace: Mutex::new(None),
            upgrading: AtomicBool::new(upgrading),
            upgraded,
            closed: AtomicBool::new(false),
            ended: tokio::sync::Notify::new(),
        })
    }

    /// Has a CONNECT started a session on it?
    pub fn has_session(&self) -> bool {
        self.namespace.lock().map(|n| n.is_some()).unwrap_or(false)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes the one upgrade a connection may have (a second WebSocket with its sid is refused).
    pub fn claim_upgrade(&self) -> bool {
        !self.upgrading.swap(true, Ordering::AcqRel)
    }

    /// On a WebSocket, from the start or since the upgrade.
    pub fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    /// Writes one Engine.IO packet on the transport of the moment.
    pub async fn write(&self, packet: String) -> Result<(), actix_ws::Closed> {
        if self.is_closed() {
            return Err(actix_ws::Closed); // nothing follows the close packet
        }
        let mut ws = self.ws.lock().await;
        match ws.as_mut() {
            Some(ws) => ws.text(packet).await,
            None => self.to_poll.send(packet).await.map_err(|_| actix_ws::Closed),
        }
    }

    /// A long-polling GET: the packets waiting (at least one: it waits for the next), up to
    /// `max_bytes`. `None` when another poll is under way (the protocol allows one).
    pub async fn poll(&self, max_bytes: usize) -> Option<String> {
        let mut polled = self.polled.try_lock().ok()?;
        // Registered before the check, so that an end between the two still wakes this poll.
        let ended = self.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        let first = if self.is_closed() {
            polled.try_recv().ok()
        } else {
            tokio::select! {
                first = polled.recv() => first,
                () = ended => None,
            }
        };
        let Some(mut body) = first.or_else(|| polled.try_recv().ok()) else { return Some("1".into()) };
        while body.len() < max_bytes
            && let Ok(next) = polled.try_recv()
        {
            body.push(super::packets::SEPARATOR);
            body.push_str(&next);
        }
        // Ended meanwhile, with everything delivered: the client learns it now.
        if self.is_closed() && polled.is_empty() && !body.ends_with('1') {
            body.push(super::packets::SEPARATOR);
            body.push('1');
        }
        Some(body)
    }

    /// A probe came on a new WebSocket: the pending poll, if any, ends now with a noop, so that
    /// the client can pause polling and finish the upgrade without waiting for a ping.
    pub fn probed(&self) {
        let _ = self.to_poll.try_send("6".into());
    }

    /// The client moved to `socket` (after `2probe` / `3probe`, then `5`): what still waits for
    /// a poll goes out on the WebSocket first, then everything after it. (A noop releases the
    /// last poll, which lets go of the queue.)
    pub async fn upgrade_to(&self, mut socket: actix_ws::Session) -> Result<(), actix_ws::Closed> {
        let mut ws = self.ws.lock().await;
        self.probed(); // a poll still waiting returns (the writer, held here, could not wake it)
        let mut polled = self.polled.lock().await;
        while let Ok(waiting) = polled.try_recv() {
            if waiting != "6" {
                socket.text(waiting).await?;
            }
        }
        *ws = Some(socket);
        self.upgraded.store(true, Ordering::Release);
        Ok(())
    }

    /// Ends the connection: the WebSocket closes, a poll gets the close packet, and the session
    /// (if any) hears its input end.
    pub async fn close(&self, engines: &Engines) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        log::debug!("socket.io {}: closed", self.sid);
        engines.remove(&self.sid);
        self.inbound.lock().map(|mut inbound| inbound.take()).ok();
        match self.ws.lock().await.take() {
            Some(ws) => drop(ws.close(None).await),
            None => drop(self.to_poll.try_send("1".into())),
        }
        self.ended.notify_waiters();
    }

    /// One Engine.IO packet from the client (a WebSocket frame, or one of a POST's).
    pub async fn receive(self: &Arc<Self>, packet: &str, io: &SocketIo) -> Result<()> {
        let (kind, data) = packet.split_at_checked(1).ok_or_else(|| Error::bad_request("empty Engine.IO packet"))?;
        match kind {
            "1" => self.close(&io.engines).await,
            // The binary attachment of a binary event, which was refused already.
            "b" => {}
            "3" => self.to_session(AggregatedMessage::Pong(Bytes::new())),
            "4" => self.message(data, io).await?,
            "6" => {}
            _ => return Err(Error::bad_request(format!("unexpected Engine.IO packet of type {kind}"))),
        }
        Ok(())
    }

    /// A Socket.IO packet.
    async fn message(self: &Arc<Self>, text: &str, io: &SocketIo) -> Result<()> {
        match ClientPacket::parse(text) {
            Ok(ClientPacket::Connect { namespace, auth }) => self.connect(namespace, auth, io).await,
            Ok(ClientPacket::Disconnect { .. }) => {
                self.to_session(AggregatedMessage::Close(None));
                Ok(())
            }
            Ok(ClientPacket::Event { id, args, .. }) => {
                match to_frame(args, id, &io.aliases) {
                    Ok(frame) => self.to_session(AggregatedMessage::Text(ByteString::from(frame))),
                    Err(err) => self.refuse(id, &err).await,
                }
                Ok(())
            }
            Ok(ClientPacket::Ack) => Ok(()),
            Ok(ClientPacket::Binary { id }) => {
                let err = Error::bad_request("binary packets are not supported: Parley's commands are JSON");
                self.refuse(id, &err).await;
                Ok(())
            }
            Err(err) => {
                self.refuse(None, &err).await;
                Ok(())
            }
        }
    }

    /// An event the session never saw, answered with its error (through its ack, if it asked).
    async fn refuse(&self, id: Option<u64>, err: &Error) {
        let frame = crate::protocol::encode_error(id.map(|id| crate::protocol::Ref::Number(id.into())).as_ref(), err);
        let namespace = self.namespace.lock().ok().and_then(|n| n.clone()).unwrap_or_else(|| "/".into());
        if let Some(packet) = from_frame(&frame, &namespace, &super::aliases::Aliases::default()) {
            let _ = self.write(format!("4{packet}")).await;
        }
    }

    /// CONNECT: the token (the packet's `auth.token`, else the handshake's) is checked as at
    /// `/ws`; then a session starts. A refusal is a CONNECT_ERROR, which the client surfaces.
    async fn connect(self: &Arc<Self>, namespace: &str, auth: Option<&str>, io: &SocketIo) -> Result<()> {
        let prefix = namespace_prefix(namespace).into_owned();
        let refused = |message: String| format!("44{prefix}{}", serde_json::json!({ "message": message }));
        if !io.namespaces.iter().any(|n| n == namespace) {
            let _ = self.write(refused("Invalid namespace".into())).await;
            return Ok(());
        }
        if self.namespace.lock().map(|n| n.is_some()).unwrap_or(true) {
            let _ = self.write(refused("already connected: one namespace per connection".into())).await;
            return Ok(());
        }
        let token = auth.and_then(|a| serde_json::from_str::<Auth>(a).ok()).and_then(|a| a.token);
        let Some(token) = token.or_else(|| self.handshake.token.clone()) else {
            let _ = self.write(refused("missing token: auth.token, ?token= or Authorization: Bearer".into())).await;
            return Ok(());
        };
        match self.start_session(namespace, &token, io).await {
            Ok(()) => Ok(()),
            Err(err) => {
                let _ = self.write(refused(err.to_string())).await;
                Ok(())
            }
        }
    }

    async fn start_session(self: &Arc<Self>, namespace: &str, token: &str, io: &SocketIo) -> Result<()> {
        let caller = io.auth.authenticate(token).await?;
        let deps = io.deps.clone();
        let user = deps.store.user(caller.id).await?.ok_or_else(|| Error::Unauthorized("unknown user".into()))?;
        let user = user.to_user();
        let slots = io.admission.session_at(self.handshake.client_ip, user.id)?;
        let id = SessionId::random();
        // The CONNECT answer goes out before anything of the session's.
        let prefix = namespace_prefix(namespace);
        self.write(format!("40{prefix}{}", serde_json::json!({ "sid": id.0.to_string() })))
            .await
            .map_err(|_| Error::Unavailable("the connection closed".into()))?;
        let (input, received) = mpsc::channel(INBOUND);
        if let Ok(mut namespace_slot) = self.namespace.lock() {
            *namespace_slot = Some(namespace.to_string());
        }
        if let Ok(mut inbound) = self.inbound.lock() {
            *inbound = Some(input);
        }
        let socket = EngineSocket { engine: self.clone(), namespace: namespace.to_string(), io: io.clone() };
        let limits = &deps.limits;
        let out = outgoing::start(
            id,
            user.id,
            socket,
            None,
            limits.outgoing_queue,
            std::time::Duration::from_millis(limits.close_timeout_ms),
        );
        let stream = futures_util::stream::unfold(received, |mut received| async move {
            received.recv().await.map(|message| (Ok::<_, ProtocolError>(message), received))
        });
        WsSession::create(move |ctx| {
            ctx.add_stream(stream);
            WsSession::new(user, &caller, out, deps, slots)
        });
        Ok(())
    }

    /// Hands the session a frame; a session that cannot take it (its input is full: the client
    /// floods) is ended.
    fn to_session(&self, message: AggregatedMessage) {
        let Ok(mut inbound) = self.inbound.lock() else { return };
        if let Some(input) = inbound.as_ref()
            && input.try_send(message).is_err()
        {
            inbound.take(); // the session sees its input end, and stops
        }
    }
}

/// What a session's writer writes to, for a Socket.IO client: each frame as a Socket.IO packet
/// of the session's namespace, pings as Engine.IO pings; a close as the DISCONNECT that tells
/// the client not to come back (an expired token, a normal end), or else as the transport
/// closing, after which socket.io-client reconnects by itself (a restart, a slow consumer).
pub struct EngineSocket {
    engine: Arc<Engine>,
    namespace: String,
    io: SocketIo,
}

impl Socket for EngineSocket {
    async fn send(&mut self, item: Outgoing) -> Result<(), actix_ws::Closed> {
        match item {
            Outgoing::Text(frame) => match from_frame(&frame, &self.namespace, &self.io.aliases) {
                Some(packet) => self.engine.write(format!("4{packet}")).await,
                None => Ok(()),
            },
            Outgoing::Ping => self.engine.write("2".into()).await,
            Outgoing::Pong(_) => Ok(()),
        }
    }

    async fn close(self, reason: Option<CloseReason>) -> Result<(), actix_ws::Closed> {
        let code = reason.map_or(close::NORMAL, |r| u16::from(r.code));
        if matches!(code, close::NORMAL | close::TOKEN_EXPIRED) {
            let _ = self.engine.write(format!("41{}", namespace_prefix(&self.namespace))).await;
        }
        self.engine.close(&self.io.engines).await;
        Ok(())
    }
}

/// A writer that gives up (its close did not go through in time: the client reads nothing)
/// drops its socket: the connection ends then too, so that a waiting poll is answered `1`.
impl Drop for EngineSocket {
    fn drop(&mut self) {
        if !self.engine.is_closed() {
            let (engine, engines) = (self.engine.clone(), self.io.engines.clone());
            actix_web::rt::spawn(async move { engine.close(&engines).await });
        }
    }
}
