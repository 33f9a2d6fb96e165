//! Socket.IO v5 over Engine.IO v4, at `PARLEY_SOCKETIO_PATH` (`/socket.io/`), for front-ends
//! written against `socket.io-client` (docs/SOCKETIO.md). Written here on actix rather than
//! taken from a crate: the Rust Socket.IO servers (`socketioxide`, `rust_socketio`'s) are built
//! on tower/hyper or are clients, and bringing one in would mean a second HTTP stack and a
//! second session type; what Parley needs of the protocol (the packets, long-polling, the
//! upgrade) is a few hundred lines, and its sessions stay the `WsSession`s of `/ws`.
//!
//! - [`packets`]: the text of Engine.IO and Socket.IO packets, and Parley frames as events.
//! - [`engine`]: one Engine.IO connection and the session it carries.
//! - [`aliases`]: other names for Parley's events.
//!
//! Here: the HTTP entry point, which answers the handshake, the polls and the posts of
//! long-polling, and the WebSocket (from the start, or as the upgrade of a polling connection);
//! and the registry of the connections of this node. Long-polling is tied to the node that
//! holds the connection: behind a load balancer, `/socket.io/` needs sticky sessions
//! (`deploy/nginx.conf`), or clients that use the WebSocket transport only.

pub mod aliases;
pub mod engine;
pub mod packets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use self::aliases::Aliases;
use self::engine::{Engine, Handshake};
use self::packets::SEPARATOR;
use super::admission::Admission;
use super::client_ip::{TrustedProxies, client_ip};
use super::origin::OriginPolicy;
use crate::actors::session::SessionDeps;
use crate::auth::{Auth, bearer_token};
use crate::config::SocketIoConfig;
use crate::error::{Error, Result};

/// What the Socket.IO side needs, shared by every connection of the node.
#[derive(Clone)]
pub struct SocketIo {
    pub deps: web::Data<SessionDeps>,
    pub auth: web::Data<Auth>,
    pub admission: web::Data<Admission>,
    pub aliases: Arc<Aliases>,
    pub engines: Arc<Engines>,
    pub namespaces: Arc<Vec<String>>,
    ping_interval: Duration,
    ping_timeout: Duration,
    max_payload: usize,
}

impl SocketIo {
    pub fn new(
        config: &SocketIoConfig,
        deps: web::Data<SessionDeps>,
        auth: web::Data<Auth>,
        admission: web::Data<Admission>,
    ) -> Result<SocketIo> {
        let aliases = match &config.aliases {
            Some(path) => Aliases::load(path)?,
            None => Aliases::default(),
        };
        let limits = deps.limits.clone();
        Ok(SocketIo {
            deps,
            auth,
            admission,
            aliases: Arc::new(aliases),
            engines: Arc::new(Engines::default()),
            namespaces: Arc::new(config.namespaces()),
            ping_interval: limits.heartbeat(),
            ping_timeout: Duration::from_millis(config.ping_timeout_ms),
            max_payload: limits.max_frame_bytes,
        })
    }

    /// Engine.IO's open packet for `sid`.
    fn open_packet(&self, sid: &str, upgrades: &[&str]) -> String {
        let open = json!({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": self.ping_interval.as_millis() as u64,
            "pingTimeout": self.ping_timeout.as_millis() as u64,
            "maxPayload": self.max_payload,
        });
        format!("0{open}")
    }

    /// A new connection `sid`; closed if no session starts on it within a ping period.
    fn open(&self, sid: String, handshake: Handshake, ws: Option<actix_ws::Session>) -> Arc<Engine> {
        let engine = Engine::new(sid, handshake, ws);
        self.engines.insert(engine.clone());
        let (io, waiting) = (self.clone(), engine.clone());
        actix_web::rt::spawn(async move {
            tokio::time::sleep(io.ping_interval + io.ping_timeout).await;
            if !waiting.has_session() {
                waiting.close(&io.engines).await;
            }
        });
        engine
    }
}

/// This node's Engine.IO connections, by `sid`.
#[derive(Default)]
pub struct Engines {
    by_sid: Mutex<HashMap<String, Arc<Engine>>>,
}

impl Engines {
    fn insert(&self, engine: Arc<Engine>) {
        if let Ok(mut by_sid) = self.by_sid.lock() {
            by_sid.insert(engine.sid.clone(), engine);
        }
    }

    fn get(&self, sid: &str) -> Option<Arc<Engine>> {
        self.by_sid.lock().ok()?.get(sid).cloned()
    }

    pub fn remove(&self, sid: &str) {
        if let Ok(mut by_sid) = self.by_sid.lock() {
            by_sid.remove(sid);
        }
    }
}

#[derive(Deserialize)]
pub struct EngineQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
    token: Option<String>,
}

/// A connection's id: random, unguessable (it is all a poll shows of its connection).
fn new_sid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An Engine.IO refusal: 400 with `{code, message}`, the codes of the Engine.IO protocol.
fn refusal(code: u8, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "code": code, "message": message }))
}

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=UTF-8").body(body)
}

/// GET and POST /socket.io/?EIO=4&transport=polling|websocket[&sid=…] (any other method: 400)
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<EngineQuery>,
    io: web::Data<SocketIo>,
    origins: web::Data<OriginPolicy>,
    proxies: web::Data<TrustedProxies>,
) -> Result<HttpResponse> {
    origins.check(&req)?;
    if query.eio.as_deref() != Some("4") {
        return Ok(refusal(5, "Unsupported protocol version"));
    }
    let handshake = || Handshake {
        token: bearer_token(&req).map(str::to_string).or_else(|| query.token.clone()),
        client_ip: client_ip(&req, &proxies),
    };
    match (query.transport.as_deref(), query.sid.as_deref(), req.method()) {
        (Some("polling"), None, &Method::GET) => {
            let engine = io.open(new_sid(), handshake(), None);
            Ok(text(io.open_packet(&engine.sid, &["websocket"])))
        }
        (Some("polling"), Some(sid), method) => {
            let Some(engine) = io.engines.get(sid).filter(|e| !e.is_closed()) else {
                return Ok(refusal(1, "Session ID unknown"));
            };
            if engine.is_upgraded() {
                return Ok(refusal(3, "Bad request: the connection is on a WebSocket"));
            }
            if *method == Method::GET {
                return match engine.poll(io.max_payload).await {
                    Some(body) => Ok(text(body)),
                    None => {
                        engine.close(&io.engines).await;
                        Ok(refusal(3, "Bad request: overlapping polls"))
                    }
                };
            }
            if *method != Method::POST {
                return Ok(refusal(2, "Bad handshake method"));
            }
            let body = super::read_body(payload, io.max_payload).await?;
            let body = std::str::from_utf8(&body).map_err(|_| Error::bad_request("a polling body is UTF-8 text"))?;
            for packet in body.split(SEPARATOR) {
                if let Err(err) = engine.receive(packet, &io).await {
                    engine.close(&io.engines).await;
                    return Ok(refusal(3, &err.to_string()));
                }
            }
            Ok(text("ok".into()))
        }
        (Some("polling"), None, _) => Ok(refusal(2, "Bad handshake method")),
        (Some("websocket"), sid, _) => {
            let upgrading = match sid {
                Some(sid) => match io.engines.get(sid).filter(|e| !e.is_closed()) {
                    Some(engine) if !engine.claim_upgrade() => {
                        return Ok(refusal(3, "Bad request: the connection is on a WebSocket already"));
                    }
                    Some(engine) => Some(engine),
                    None => return Ok(refusal(1, "Session ID unknown")),
                },
                None => None,
            };
            let (response, session, stream) = actix_ws::handle(&req, payload)
                .map_err(|err| Error::bad_request(format!("not a WebSocket upgrade: {err}")))?;
            let stream =
                stream.max_frame_size(io.max_payload).aggregate_continuations().max_continuation_size(io.max_payload);
            let io = io.into_inner();
            let handshake = handshake();
            actix_web::rt::spawn(async move {
                match upgrading {
                    Some(engine) => upgrade(engine, session, stream, io).await,
                    None => {
                        let mut session = session;
                        let sid = new_sid();
                        if session.text(io.open_packet(&sid, &[])).await.is_err() {
                            return;
                        }
                        let engine = io.open(sid, handshake, Some(session));
                        read(engine, stream, io).await;
                    }
                }
            });
            Ok(response)
        }
        _ => Ok(refusal(0, "Transport unknown")),
    }
}

type WsStream = actix_ws::AggregatedMessageStream;

/// The upgrade of a polling connection: `2probe` is answered `3probe` on the new WebSocket,
/// and `5` moves the connection onto it.
async fn upgrade(engine: Arc<Engine>, mut session: actix_ws::Session, mut stream: WsStream, io: Arc<SocketIo>) {
    while let Some(Ok(message)) = stream.next().await {
        let actix_ws::AggregatedMessage::Text(text) = message else { continue };
        match &*text {
            "2probe" if session.text("3probe").await.is_err() => return,
            "2probe" => engine.probed(),
            "5" => {
                if engine.upgrade_to(session).await.is_ok() {
                    read(engine, stream, io).await;
                }
                return;
            }
            // Anything else before the upgrade completes is not for this transport yet.
            _ => {}
        }
    }
}

/// Reads the WebSocket of `engine` until it closes.
async fn read(engine: Arc<Engine>, mut stream: WsStream, io: Arc<SocketIo>) {
    while let Some(message) = stream.next().await {
        let packet = match message {
            Ok(actix_ws::AggregatedMessage::Text(text)) => text,
            Ok(actix_ws::AggregatedMessage::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        if let Err(err) = engine.receive(&packet, &io).await {
            log::debug!("socket.io {}: {err}", engine.sid);
            break;
        }
        if engine.is_closed() {
            return;
        }
    }
    engine.close(&io.engines).await;
}
