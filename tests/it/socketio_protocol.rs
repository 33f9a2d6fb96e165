//! Engine.IO v4 and Socket.IO v5 spoken by hand at `/socket.io/`, over HTTP long-polling (awc
//! GETs and POSTs) and WebSocket (awc), packet by packet: what `socketio.rs` proves with the real
//! socket.io-client, here without a library between the test and the wire.
//!
//! Each test names the behaviours of the official test suites it proves, as "EIO: describe / it"
//! for `socketio/engine.io-protocol` and "SIO: describe / it" for `socketio/socket.io-protocol`
//! (both `test-suite/test-suite.js`), and says where Parley answers otherwise on purpose
//! (docs/SOCKETIO.md, "What differs from a Node Socket.IO server"): a session needs a token, the
//! server's first event is `session:ready` (the suites' server echoes `auth`), events are
//! Parley's commands, and a bad Socket.IO packet gets `bad_request` as a bad frame does at `/ws`
//! (`frames.rs`) where the suites' server closes the connection.
//!
//! The suites' server announces `pingInterval` 300, `pingTimeout` 200 and `maxPayload`
//! 1,000,000; the tests of those numbers start Parley with the same ([`suite_timings`]). Every
//! wait is bounded: a read by a deadline [`PATIENCE`] away, a poll by the client's timeout.

use std::collections::VecDeque;
use std::time::Duration;

use actix_codec::Framed;
use awc::BoxedSocket;
use awc::http::Method;
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::common::*;

backends!(
    connect_over_polling_starts_a_session,
    refused_connects_are_connect_errors,
    a_configured_namespace_carries_its_prefix,
    events_are_commands_and_acks_carry_their_replies,
    the_polling_heartbeat_keeps_a_client_that_answers_and_closes_one_that_does_not,
    the_websocket_heartbeat_keeps_a_client_that_answers_and_closes_one_that_does_not,
    polling_upgrades_to_websocket_without_losing_a_packet,
    after_the_upgrade_a_poll_with_the_sid_is_refused,
    after_the_upgrade_a_second_websocket_with_the_sid_is_closed,
    a_websocket_from_the_start_connects_and_carries_events_and_acks,
    close_and_invalid_packets_end_a_websocket_connection,
    an_unknown_engine_io_packet_closes_the_polling_connection,
    bad_socket_io_packets_get_an_error_and_the_session_goes_on,
    binary_events_are_refused_and_the_session_goes_on,
    a_binary_event_with_an_ack_id_is_refused_through_its_ack,
    a_binary_attachment_in_a_polling_payload_does_not_close_the_connection,
    overlapping_polls_close_the_connection,
    a_close_packet_ends_the_polling_connection,
    a_disconnect_packet_ends_the_session,
    an_expiring_token_ends_the_session_with_a_disconnect,
    an_expiring_token_ends_the_connection_of_a_client_behind_on_its_polls,
);

// The wire: requests, packets, and one connection as a test drives it.

/// What the suites' server announces: `pingInterval` 300, `pingTimeout` 200, `maxPayload`
/// 1,000,000 (Parley's are PARLEY_HEARTBEAT_MS, PARLEY_SOCKETIO_PING_TIMEOUT_MS and
/// PARLEY_MAX_FRAME_BYTES).
fn suite_timings(config: &mut parley::config::Config) {
    config.limits.heartbeat_ms = 300;
    config.socketio.ping_timeout_ms = 200;
    config.limits.max_frame_bytes = 1_000_000;
}

/// The path of an Engine.IO v4 request: `/socket.io/?EIO=4&` and `query`.
fn path(query: &str) -> String {
    format!("/socket.io/?EIO=4&{query}")
}

fn polling_path(sid: &str) -> String {
    path(&format!("transport=polling&sid={sid}"))
}

/// The packets of a long-polling body, which U+001E separates.
fn packets(body: &str) -> Vec<String> {
    body.split('\u{1e}').map(str::to_string).collect()
}

/// A GET of the polling connection `sid`: its status and body.
async fn try_poll(http: &Http, sid: &str) -> (u16, String) {
    let (status, body) = http.get_text(None, &polling_path(sid)).await;
    (status, String::from_utf8(body).expect("a UTF-8 body"))
}

/// The packets of one GET of `sid`, which must be answered 200.
async fn poll(http: &Http, sid: &str) -> Vec<String> {
    let (status, body) = try_poll(http, sid).await;
    assert_eq!(status, 200, "a poll of {sid}: {body}");
    packets(&body)
}

/// A POST of `packets` (one payload) to `sid`, as socket.io-client sends it: status and body.
async fn post(http: &Http, sid: &str, packets: &[&str]) -> (u16, String) {
    let body = packets.join("\u{1e}");
    let (status, answer) = http.post_text(None, &polling_path(sid), "text/plain;charset=UTF-8", body).await;
    (status, String::from_utf8(answer).expect("a UTF-8 answer"))
}

/// Any request to `/socket.io/?{query}` (the query is given whole: some lack `EIO`).
async fn request(server: &TestServer, method: Method, query: &str) -> (u16, String) {
    let url = server.url(&format!("/socket.io/?{query}"));
    let mut response =
        server.client.request(method.clone(), url).send().await.unwrap_or_else(|err| panic!("{method} {query}: {err}"));
    let body = response.body().await.expect("the answer's body");
    (response.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

/// An Engine.IO refusal: 400 with a JSON `{code, message}`; its code.
fn refusal((status, body): (u16, String)) -> i64 {
    assert_eq!(status, 400, "a refusal was expected, got {status} {body}");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("a JSON refusal, got {body}"));
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "a refusal says why: {body}");
    body["code"].as_i64().unwrap_or_else(|| panic!("a refusal has a numeric code: {body}"))
}

/// A WebSocket to `path` (a whole path and query); `Err(status)` when the upgrade is refused.
async fn ws_connect(server: &TestServer, path: &str) -> Result<Framed<BoxedSocket, ws::Codec>, u16> {
    match server.client.ws(format!("{}{path}", server.ws_base)).connect().await {
        Ok((_, framed)) => Ok(framed),
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
        Err(err) => panic!("WebSocket to {path}: {err}"),
    }
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    keys.sort_unstable();
    keys
}

/// The data of the open packet `0{...}`, which has exactly the five fields of Engine.IO v4.
fn open_packet(packet: &str) -> Value {
    let data = packet.strip_prefix('0').unwrap_or_else(|| panic!("an open packet, got {packet}"));
    let open: Value = serde_json::from_str(data).unwrap_or_else(|_| panic!("JSON after 0, got {packet}"));
    assert_eq!(keys(&open), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"], "{open}");
    assert!(open["sid"].as_str().is_some_and(|sid| !sid.is_empty()), "{open}");
    open
}

/// The name and data of an EVENT `42<prefix>["name",data]`.
fn as_event(packet: &str, prefix: &str) -> Option<(String, Value)> {
    let json = packet.strip_prefix("42")?.strip_prefix(prefix)?;
    let args: Vec<Value> = serde_json::from_str(json).ok()?;
    Some((args.first()?.as_str()?.to_string(), args.get(1).cloned().unwrap_or(Value::Null)))
}

/// The id and first argument of an ACK `43<prefix><id>[data]`.
fn as_ack(packet: &str, prefix: &str) -> Option<(u64, Value)> {
    let rest = packet.strip_prefix("43")?.strip_prefix(prefix)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (id, json) = rest.split_at(digits);
    let args: Vec<Value> = serde_json::from_str(json).ok()?;
    Some((id.parse().ok()?, args.into_iter().next()?))
}

/// The message of a CONNECT_ERROR `44<prefix>{"message":...}`, its only field.
fn connect_error(packet: &str, prefix: &str) -> String {
    let data = packet.strip_prefix(&format!("44{prefix}")).unwrap_or_else(|| panic!("a CONNECT_ERROR, got {packet}"));
    let data: Value = serde_json::from_str(data).unwrap_or_else(|_| panic!("JSON in {packet}"));
    assert_eq!(keys(&data), ["message"], "{packet}");
    data["message"].as_str().expect("a message").to_string()
}

/// An error (`{code, message}`) of code `code`.
fn assert_error(error: &Value, code: &str, what: &str) {
    assert_eq!(error["code"], code, "{what}: {error}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: an error says why: {error}");
}

/// Where a [`Sio`] reads and writes.
enum Wire {
    Polling { http: Http, sid: String },
    WebSocket(Box<Framed<BoxedSocket, ws::Codec>>),
}

/// What one read from the server gave.
enum Read {
    Packets,
    Ended,
    TimedOut,
}

/// One Engine.IO connection and the Socket.IO session on it. It keeps the packets it read but
/// was not asked for yet (as `Ws` keeps frames), so a test waits for the packet it means.
struct Sio {
    wire: Wire,
    /// The Engine.IO sid.
    sid: String,
    /// `/messaging,` once connected to that namespace; empty on the main one.
    prefix: String,
    kept: VecDeque<String>,
    /// Every packet read, in order.
    log: Vec<String>,
    /// Why the connection ended, once it has.
    ended: Option<String>,
    /// The last ack id [`Sio::call`] used (tests that write ack ids by hand use smaller ones).
    next_id: u64,
}

impl Sio {
    fn new(wire: Wire, sid: String) -> Sio {
        Sio { wire, sid, prefix: String::new(), kept: VecDeque::new(), log: Vec::new(), ended: None, next_id: 100 }
    }

    /// The polling connection `sid`.
    fn on_polling(server: &TestServer, sid: &str) -> Sio {
        Sio::new(Wire::Polling { http: Http::clone(server), sid: sid.to_string() }, sid.to_string())
    }

    /// A polling handshake, with `query` after `transport=polling`: the connection and its open data.
    async fn polling(server: &TestServer, query: &str) -> (Sio, Value) {
        let (status, body) = server.get_text(None, &path(&format!("transport=polling{query}"))).await;
        let body = String::from_utf8(body).expect("a UTF-8 handshake");
        assert_eq!(status, 200, "the polling handshake: {body}");
        let open = open_packet(&body);
        (Sio::on_polling(server, open["sid"].as_str().expect("sid")), open)
    }

    /// A WebSocket from the start, with `query` after `transport=websocket`: the connection and
    /// the data of its first frame, the open packet.
    async fn websocket(server: &TestServer, query: &str) -> (Sio, Value) {
        let framed = ws_connect(server, &path(&format!("transport=websocket{query}"))).await.expect("WebSocket opens");
        let mut sio = Sio::new(Wire::WebSocket(Box::new(framed)), String::new());
        let open = open_packet(&sio.packet().await);
        sio.sid = open["sid"].as_str().expect("sid").to_string();
        (sio, open)
    }

    /// One read: a poll's packets, or one WebSocket frame's.
    async fn read(&mut self, deadline: Instant) -> Read {
        if self.ended.is_some() {
            return Read::Ended;
        }
        let got = match &mut self.wire {
            Wire::Polling { http, sid } => match tokio::time::timeout_at(deadline, try_poll(http, sid)).await {
                Err(_) => return Read::TimedOut,
                Ok((200, body)) => packets(&body),
                Ok((status, body)) => {
                    self.ended = Some(format!("a poll answered {status} {body}"));
                    return Read::Ended;
                }
            },
            Wire::WebSocket(framed) => loop {
                match tokio::time::timeout_at(deadline, framed.next()).await {
                    Err(_) => return Read::TimedOut,
                    Ok(Some(Ok(ws::Frame::Text(bytes)))) => {
                        break vec![String::from_utf8(bytes.to_vec()).expect("a UTF-8 frame")];
                    }
                    Ok(Some(Ok(ws::Frame::Ping(payload)))) => {
                        let _ = framed.send(ws::Message::Pong(payload)).await;
                    }
                    Ok(Some(Ok(ws::Frame::Close(reason)))) => {
                        self.ended = Some(format!("the WebSocket closed ({reason:?})"));
                        return Read::Ended;
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(err))) => {
                        self.ended = Some(format!("the WebSocket failed: {err}"));
                        return Read::Ended;
                    }
                    Ok(None) => {
                        self.ended = Some("the WebSocket ended".into());
                        return Read::Ended;
                    }
                }
            },
        };
        for packet in got {
            self.log.push(packet.clone());
            if packet == "1" {
                self.ended = Some("the close packet 1".into());
            } else {
                self.kept.push_back(packet);
            }
        }
        Read::Packets
    }

    /// The first packet, kept or to come, that `matches`; the others stay kept.
    async fn take(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.kept.iter().position(|p| matches(p.as_str())) {
                return self.kept.remove(i).expect("a kept packet");
            }
            match self.read(deadline).await {
                Read::Packets => {}
                Read::Ended => panic!("{what}: the connection ended first ({:?}); read {:?}", self.ended, self.log),
                Read::TimedOut => panic!("{what}: nothing in time; read {:?}", self.log),
            }
        }
    }

    /// The next packet.
    async fn packet(&mut self) -> String {
        self.take("the next packet", |_| true).await
    }

    /// Reads until the connection ends (a close packet, a refused poll, the WebSocket's end);
    /// the packets that were not taken.
    async fn until_end(&mut self, what: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.read(deadline).await {
                Read::Packets => {}
                Read::Ended => return self.kept.drain(..).collect(),
                Read::TimedOut => panic!("{what}: the connection did not end in time; read {:?}", self.log),
            }
        }
    }

    /// Sends Engine.IO packets: one POST (answered `ok`), or a frame each.
    async fn send(&mut self, packets: &[&str]) {
        match &mut self.wire {
            Wire::Polling { http, sid } => {
                let answer = post(http, sid, packets).await;
                assert_eq!(answer, (200, "ok".to_string()), "POST {packets:?}");
            }
            Wire::WebSocket(framed) => {
                for packet in packets {
                    framed.send(ws::Message::Text(packet.to_string().into())).await.expect("send a frame");
                }
            }
        }
    }

    async fn send_binary(&mut self, bytes: &[u8]) {
        let Wire::WebSocket(framed) = &mut self.wire else { panic!("binary frames are for the WebSocket") };
        framed.send(ws::Message::Binary(bytes.to_vec().into())).await.expect("send a frame");
    }

    /// Sends CONNECT (`40`, to the namespace of `prefix`) with `auth`; the answer, CONNECT or
    /// CONNECT_ERROR.
    async fn connect_answer(&mut self, prefix: &str, auth: Option<Value>) -> String {
        let auth = auth.map_or(String::new(), |auth| auth.to_string());
        self.send(&[&format!("40{prefix}{auth}")]).await;
        let (accepted, refused) = (format!("40{prefix}"), format!("44{prefix}"));
        self.take("the answer to CONNECT", |p| p.starts_with(&accepted) || p.starts_with(&refused)).await
    }

    /// CONNECT as `token` (`None`: the handshake's token): the answer is `40{"sid":...}`, and
    /// the session's first event `session:ready`, whose data this returns.
    async fn connect(&mut self, prefix: &str, token: Option<&str>) -> Value {
        let answer = self.connect_answer(prefix, token.map(|token| json!({"token": token}))).await;
        let data = answer.strip_prefix(&format!("40{prefix}")).unwrap_or_else(|| panic!("CONNECT refused: {answer}"));
        let data: Value = serde_json::from_str(data).unwrap_or_else(|_| panic!("JSON in {answer}"));
        assert_eq!(keys(&data), ["sid"], "the CONNECT answer holds the Socket.IO sid: {answer}");
        assert!(data["sid"].as_str().is_some_and(|sid| !sid.is_empty()), "{answer}");
        self.prefix = prefix.to_string();
        let first = self.packet().await;
        let (name, ready) = as_event(&first, prefix).unwrap_or_else(|| panic!("an event after CONNECT, got {first}"));
        assert_eq!(name, "session:ready", "the session's first event: {first}");
        ready
    }

    /// The data of the next event `name`.
    async fn event(&mut self, name: &str) -> Value {
        self.event_where(name, |_| true).await
    }

    /// The data of the next event `name` that `matches`.
    async fn event_where(&mut self, name: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let prefix = self.prefix.clone();
        let found = |p: &str| as_event(p, &prefix).is_some_and(|(n, data)| n == name && matches(&data));
        let packet = self.take(&format!("the event {name}"), found).await;
        as_event(&packet, &self.prefix).expect("an event").1
    }

    /// The argument of the ACK `id`.
    async fn ack(&mut self, id: u64) -> Value {
        let prefix = self.prefix.clone();
        let packet = self.take(&format!("the ack {id}"), |p| as_ack(p, &prefix).is_some_and(|(i, _)| i == id)).await;
        as_ack(&packet, &self.prefix).expect("an ack").1
    }

    /// Emits `name` with `data`, asking for an ack; the ack's argument.
    async fn call(&mut self, name: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&[&format!("42{}{id}{}", self.prefix, json!([name, data]))]).await;
        self.ack(id).await
    }

    /// Moves the connection to a WebSocket as socket.io-client does (EIO: upgrade): with a poll
    /// waiting, a WebSocket with the sid sends `2probe` and gets `3probe`, the poll ends with a
    /// noop, `6`, and `5` completes the upgrade. Afterwards this reads and writes there (a ping
    /// answered on it says the server has read `5`).
    async fn upgrade(&mut self, server: &TestServer) {
        let waiting = spawn_poll(server, &self.sid);
        let framed = ws_connect(server, &path(&format!("transport=websocket&sid={}", self.sid)))
            .await
            .expect("the upgrade's WebSocket opens");
        let mut probe = Sio::new(Wire::WebSocket(Box::new(framed)), self.sid.clone());
        probe.send(&["2probe"]).await;
        assert_eq!(probe.packet().await, "3probe", "the probe is answered on the new WebSocket");
        let released = tokio::time::timeout(PATIENCE, waiting).await.expect("the waiting poll ends").expect("its task");
        assert_eq!(released, (200, "6".to_string()), "the poll waiting during the probe ends with a noop");
        probe.send(&["5"]).await;
        self.wire = probe.wire;
        // Done once the server has read `5`: the answer to a ping sent after it comes here.
        assert_eq!(self.call("ping", json!({})).await, json!({}), "the upgraded connection answers");
    }
}

/// A GET of `sid` on a task of its own (a poll that waits while the test goes on).
fn spawn_poll(http: &Http, sid: &str) -> actix_web::rt::task::JoinHandle<(u16, String)> {
    let (http, sid) = (http.clone(), sid.to_string());
    actix_web::rt::spawn(async move { try_poll(&http, &sid).await })
}

/// A `message:send` EVENT with ack id `id` (none: no ack asked).
fn send_packet(id: Option<u64>, data: Value) -> String {
    format!("42{}{}", id.map(|id| id.to_string()).unwrap_or_default(), json!(["message:send", data]))
}

// The handshake.

/// EIO and SIO: handshake / HTTP long-polling / "successfully opens a session", and handshake /
/// WebSocket / "successfully opens a session". `GET ?EIO=4&transport=polling` is 200, plain
/// text, `0` and a JSON object of exactly `sid`, `upgrades: ["websocket"]`, `pingInterval`,
/// `pingTimeout` and `maxPayload`; the first frame of a WebSocket opened with
/// `transport=websocket` is the same packet with `upgrades: []`. The numbers are the server's
/// own (PARLEY_HEARTBEAT_MS, PARLEY_SOCKETIO_PING_TIMEOUT_MS, PARLEY_MAX_FRAME_BYTES), here set
/// to the suites' 300, 200 and 1,000,000; each handshake is a connection with a sid of its own.
#[actix_web::test]
async fn the_handshake_opens_a_connection_on_either_transport() {
    let server = TestServer::start_with(Backend::Sqlite, suite_timings).await;
    let timings = |open: &Value| {
        assert_eq!(open["pingInterval"], server.config.limits.heartbeat_ms, "pingInterval is the heartbeat: {open}");
        assert_eq!(open["pingTimeout"], server.config.socketio.ping_timeout_ms, "{open}");
        assert_eq!(open["maxPayload"], server.config.limits.max_frame_bytes, "maxPayload is the frame limit: {open}");
        assert_eq!(
            (&open["pingInterval"], &open["pingTimeout"], &open["maxPayload"]),
            (&json!(300), &json!(200), &json!(1_000_000))
        );
    };

    let mut response = server.client.get(server.url(&path("transport=polling"))).send().await.expect("handshake");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(content_type.starts_with("text/plain"), "the handshake is text: {content_type}");
    let body = String::from_utf8(response.body().await.expect("body").to_vec()).expect("UTF-8");
    let open = open_packet(&body);
    assert_eq!(open["upgrades"], json!(["websocket"]), "polling offers the upgrade to WebSocket: {open}");
    timings(&open);

    let (other, _) = Sio::polling(&server, "").await;
    assert_ne!(open["sid"], other.sid.as_str(), "each handshake is a new connection");

    let (socket, open) = Sio::websocket(&server, "").await;
    assert_eq!(open["upgrades"], json!([]), "a WebSocket has nothing to upgrade to: {open}");
    timings(&open);
    assert_ne!(socket.sid, other.sid);
    server.stop().await;
}

/// EIO and SIO: handshake / HTTP long-polling / "fails with an invalid 'EIO' query parameter",
/// "fails with an invalid 'transport' query parameter", "fails with an invalid request method";
/// handshake / WebSocket / the same two for the WebSocket. Parley answers each with Engine.IO's
/// 400 `{code, message}`: no or another `EIO` (3 included) code 5, no or an unknown transport
/// code 0, a sid it does not know code 1 (polling GET and POST, and the WebSocket's upgrade),
/// a POST without sid code 2 ("bad handshake method"); a WebSocket upgrade with any of these is
/// refused with 400 rather than opened. Last, a PUT handshake is 400 too (the suites ask 400).
#[actix_web::test]
async fn bad_handshakes_are_refused_with_engine_io_codes() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cases = [
        ("transport=polling", 5),
        ("EIO=abc&transport=polling", 5),
        ("EIO=3&transport=polling", 5),
        ("EIO=4", 0),
        ("EIO=4&transport=abc", 0),
        ("EIO=4&transport=foo", 0),
        ("EIO=4&transport=polling&sid=unknown", 1),
    ];
    for (query, code) in cases {
        assert_eq!(refusal(request(&server, Method::GET, query).await), code, "GET ?{query}");
    }
    assert_eq!(refusal(request(&server, Method::POST, "EIO=4&transport=polling").await), 2, "POST without sid");
    assert_eq!(refusal(request(&server, Method::POST, "EIO=4&transport=polling&sid=unknown").await), 1);
    assert_eq!(refusal(post(&server, "unknown", &["40"]).await), 1, "a POST of packets to an unknown sid");

    for query in [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=3&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
        "EIO=4&transport=websocket&sid=unknown",
    ] {
        let opened = ws_connect(&server, &format!("/socket.io/?{query}")).await;
        assert_eq!(opened.err(), Some(400), "a WebSocket to ?{query} is refused");
    }

    assert_eq!(request(&server, Method::PUT, "EIO=4&transport=polling").await.0, 400, "a PUT handshake");
    server.stop().await;
}

/// EIO and SIO: heartbeat / HTTP long-polling / "closes the session upon ping timeout", and SIO:
/// connect / "should close the connection if no handshake is received" (WebSocket). A
/// connection that never sends CONNECT is closed once `pingInterval + pingTimeout` (here the
/// suites' 300 + 200 ms) has passed: the waiting poll gets the close packet and a later one
/// 400 code 1; the WebSocket is closed.
#[actix_web::test]
async fn a_connection_that_never_connects_is_closed() {
    let server = TestServer::start_with(Backend::Sqlite, suite_timings).await;
    let (mut polled, _) = Sio::polling(&server, "").await;
    let started = Instant::now();
    let rest = polled.until_end("a polling connection without CONNECT").await;
    assert!(started.elapsed() >= Duration::from_millis(300), "not closed at once: {:?}", started.elapsed());
    assert!(rest.iter().all(|p| p == "2"), "nothing but pings before the close: {rest:?}");
    assert_eq!(refusal(try_poll(&server, &polled.sid).await), 1, "the connection is gone");

    let (mut socket, _) = Sio::websocket(&server, "").await;
    let rest = socket.until_end("a WebSocket without CONNECT").await;
    assert!(rest.iter().all(|p| p == "2"), "{rest:?}");
    server.stop().await;
}

// CONNECT.

/// EIO: message / HTTP long-polling / "sends and receives a payload containing one plain text
/// packet" (a POST is answered `ok`, and what the server sends comes on the next GET), and SIO:
/// connect / "should allow connection to the main namespace with a payload": `40{"token":...}`
/// is answered `40{"sid":...}`, the answer's only field, then comes the session's first event
/// (`42["session:ready",{...}]`: the user, and the heartbeat). The token may instead be in the
/// handshake, in `?token=` or its `Authorization: Bearer`, and then a bare `40` connects (SIO:
/// "should allow connection to the main namespace").
async fn connect_over_polling_starts_a_session(backend: Backend) {
    let Pair { server, alice, bob, .. } = Pair::start(backend).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    let connect = format!("40{}", json!({"token": alice.token}));
    assert_eq!(post(&server, &a.sid, &[&connect]).await, (200, "ok".to_string()), "CONNECT is posted");
    let mut body = poll(&server, &a.sid).await;
    let answer = body.remove(0);
    let data: Value = serde_json::from_str(answer.strip_prefix("40").expect("40 first")).expect("JSON");
    assert_eq!(keys(&data), ["sid"], "{answer}");
    assert_ne!(data["sid"], a.sid.as_str(), "the Socket.IO sid is not the Engine.IO sid");
    if body.is_empty() {
        body = poll(&server, &a.sid).await; // session:ready may come in the same body, or the next
    }
    let (name, ready) = as_event(&body[0], "").unwrap_or_else(|| panic!("an event, got {body:?}"));
    assert_eq!(name, "session:ready");
    assert_eq!(ready["user"]["id"], alice.id.as_str(), "{ready}");
    assert_eq!(ready["heartbeat_ms"], server.config.limits.heartbeat_ms, "{ready}");
    a.kept.extend(body.into_iter().skip(1));
    assert_eq!(a.call("ping", json!({})).await, json!({}), "the session answers");

    let (mut by_query, _) = Sio::polling(&server, &format!("&token={}", bob.token)).await;
    let ready = by_query.connect("", None).await;
    assert_eq!(ready["user"]["id"], bob.id.as_str(), "the handshake's ?token= is the session's");

    let (status, body) = server.get_text(Some(&bob.token), &path("transport=polling")).await;
    assert_eq!(status, 200);
    let open = open_packet(std::str::from_utf8(&body).expect("UTF-8"));
    let mut by_header = Sio::on_polling(&server, open["sid"].as_str().expect("sid"));
    let ready = by_header.connect("", None).await;
    assert_eq!(ready["user"]["id"], bob.id.as_str(), "the handshake's Authorization header is the session's");
    server.stop().await;
}

/// SIO: connect / "should disallow connection to an unknown namespace": `40/random` is answered
/// exactly `44/random,{"message":"Invalid namespace"}` (also with the comma and a payload). And
/// Parley's own refusals are CONNECT_ERRORs of the same shape (socket.io-client's
/// `connect_error`): no token (none in `auth`, the handshake or its header) says `missing
/// token…`, a bad or an expired one `invalid token: …`. The connection stays: the next CONNECT
/// with a good token starts the session, and a second CONNECT on it is refused (one namespace
/// per connection, docs/SOCKETIO.md).
async fn refused_connects_are_connect_errors(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start(backend).await;
    let (mut io, _) = Sio::polling(&server, "").await;

    let missing = connect_error(&io.connect_answer("", None).await, "");
    assert!(missing.starts_with("missing token"), "{missing}");
    let elsewhere = connect_error(&io.connect_answer("", Some(json!({"jwt": alice.token}))).await, "");
    assert!(elsewhere.starts_with("missing token"), "auth without `token`: {elsewhere}");
    let bad = connect_error(&io.connect_answer("", Some(json!({"token": "not-a-token"}))).await, "");
    assert_eq!(bad, "invalid token: malformed");
    let expired = token_for(json!({"sub": fresh_sub(), "exp": now_secs() - 60, "iat": now_secs() - 3600}));
    let expired = connect_error(&io.connect_answer("", Some(json!({"token": expired}))).await, "");
    assert_eq!(expired, "invalid token: expired");

    io.send(&["40/random"]).await;
    let unknown = io.take("the refusal of /random", |p| p.starts_with("44/random,")).await;
    assert_eq!(unknown, r#"44/random,{"message":"Invalid namespace"}"#);
    let unknown = io.connect_answer("/nope,", Some(json!({"token": alice.token}))).await;
    assert_eq!(unknown, r#"44/nope,{"message":"Invalid namespace"}"#);

    let ready = io.connect("", Some(&alice.token)).await;
    assert_eq!(ready["user"]["id"], alice.id.as_str(), "after refusals, the connection still connects");
    let again = connect_error(&io.connect_answer("", Some(json!({"token": alice.token}))).await, "");
    assert!(again.contains("already connected"), "{again}");
    assert_eq!(io.call("ping", json!({})).await, json!({}), "the session goes on");
    server.stop().await;
}

/// SIO: connect / "should allow connection to a custom namespace with a payload": with
/// PARLEY_SOCKETIO_NAMESPACE=/messaging, `40/messaging,{"token":...}` is answered
/// `40/messaging,{"sid":...}`, and every packet of that session carries the `/messaging,`
/// prefix: `session:ready`, acks (`43/messaging,1[...]`) and events. The main namespace is
/// still served beside it.
async fn a_configured_namespace_carries_its_prefix(backend: Backend) {
    let Pair { server, alice, bob, conversation } =
        Pair::start_with(backend, |config| config.socketio.namespace = Some("/messaging".into())).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    let ready = a.connect("/messaging,", Some(&alice.token)).await;
    assert_eq!(ready["user"]["id"], alice.id.as_str());

    a.send(&[&format!("42/messaging,1{}", json!(["message:send", {"conversation_id": conversation, "body": "hi"}]))])
        .await;
    let ack = a.ack(1).await;
    assert_eq!(ack["message"]["seq"], 1, "{ack}");
    let (status, sent) =
        server.post(Some(&bob), &format!("/api/conversations/{conversation}/messages"), json!({"body": "yo"})).await;
    assert_eq!(status, 201, "{sent}");
    let new = a.event_where("message:new", |d| d["message"]["seq"] == 2).await;
    assert_eq!(new["message"]["body"], "yo");
    for packet in &a.log {
        let ours = ["40/messaging,", "42/messaging,", "43/messaging,"].iter().any(|p| packet.starts_with(p));
        assert!(ours, "every packet of the session is of /messaging: {packet}");
    }

    let (mut main, _) = Sio::polling(&server, "").await;
    let ready = main.connect("", Some(&bob.token)).await;
    assert_eq!(ready["user"]["id"], bob.id.as_str(), "the main namespace is served too");
    server.stop().await;
}

// Events and acks.

/// SIO: message / "should send a plain-text packet with an ack" (`42456[...]` is answered
/// `43456[...]`), and EIO: message / HTTP long-polling / "sends and receives a payload containing
/// several plain text packets". Events are Parley's commands, answered through their acks:
/// `421["message:send",{...}]` gets `431[{"message":{...,"seq":1}}]`; camelCase fields are
/// accepted (`conversationId`, `clientId`); a refused command is answered
/// `43N[{"error":{"code":"bad_request",...}}]`, an unknown one too; without an ack id a command
/// that succeeds is answered nothing and one that fails an `error` event. Several packets in one
/// POST are each answered. The other member gets each message as `message:new`, over polling
/// and over `/ws`.
async fn events_are_commands_and_acks_carry_their_replies(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let mut bob_ws = server.ws(&bob).await;
    let (mut bob_io, _) = Sio::polling(&server, "").await;
    bob_io.connect("", Some(&bob.token)).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    a.connect("", Some(&alice.token)).await;

    a.send(&[&send_packet(Some(1), json!({"conversation_id": conversation, "body": "hi"}))]).await;
    let ack = a.ack(1).await;
    assert_eq!(keys(&ack), ["message"], "{ack}");
    let message = &ack["message"];
    assert_eq!((&message["seq"], &message["body"]), (&json!(1), &json!("hi")), "{ack}");
    assert_eq!((&message["conversation_id"], &message["sender_id"]), (&json!(conversation), &json!(alice.id)));

    let camel = json!({"conversationId": conversation, "body": "camel", "clientId": "camel-1"});
    a.send(&[&send_packet(Some(456), camel)]).await;
    let ack = a.ack(456).await;
    assert_eq!((&ack["message"]["seq"], &ack["message"]["client_id"]), (&json!(2), &json!("camel-1")), "{ack}");

    a.send(&[&send_packet(Some(3), json!({"conversation_id": conversation, "body": ""}))]).await;
    let refused = a.ack(3).await;
    assert_eq!(keys(&refused), ["error"], "{refused}");
    assert_error(&refused["error"], "bad_request", "an empty body");
    a.send(&[r#"424["no:such:command",{}]"#]).await;
    assert_error(&a.ack(4).await["error"], "bad_request", "an unknown event");

    a.send(&[&send_packet(None, json!({"conversation_id": conversation, "body": "unacked"}))]).await;
    a.send(&[&send_packet(None, json!({"conversation_id": conversation, "body": ""}))]).await;
    assert_error(&a.event("error").await, "bad_request", "a refused event without an ack id");
    let own = a.event_where("message:new", |d| d["message"]["seq"] == 3).await;
    assert_eq!(own["message"]["body"], "unacked", "the unacked send was stored (the sender's sessions hear it)");

    a.send(&[r#"4210["ping",{}]"#, r#"4211["ping",{}]"#, r#"4212["ping",{}]"#]).await;
    for id in [10, 11, 12] {
        assert_eq!(a.ack(id).await, json!({}), "the packet {id} of one payload");
    }
    let mut acked: Vec<u64> = a.log.iter().filter_map(|p| as_ack(p, "")).map(|(id, _)| id).collect();
    acked.sort_unstable();
    assert_eq!(acked, [1, 3, 4, 10, 11, 12, 456], "one ack per id, none for the events without");

    for (seq, body) in [(1, "hi"), (2, "camel"), (3, "unacked")] {
        let seen = bob_ws.event_where("message:new", |d| d["message"]["seq"] == seq).await;
        assert_eq!(seen["message"]["body"], body, "over /ws");
        let seen = bob_io.event_where("message:new", |d| d["message"]["seq"] == seq).await;
        assert_eq!(seen["message"]["body"], body, "over Socket.IO polling");
    }
    server.stop().await;
}

// The heartbeat.

/// EIO and SIO: heartbeat / HTTP long-polling / "sends ping/pong packets" and "closes the session
/// upon ping timeout". With a 300 ms heartbeat (`pingInterval`), the polls of an open session
/// bring `2` every interval; a client that answers each with `3` keeps its session well past
/// three intervals. Once it stops answering, the connection is closed (Parley: after three
/// silent intervals, as at `/ws`): the waiting poll gets the close packet (or, if none was
/// waiting, the next is 400 code 1). That is a transport close, not a DISCONNECT (no `41`):
/// socket.io-client reconnects after it.
async fn the_polling_heartbeat_keeps_a_client_that_answers_and_closes_one_that_does_not(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start_with(backend, |config| config.limits.heartbeat_ms = 300).await;
    let heartbeat = Duration::from_millis(server.config.limits.heartbeat_ms);
    let (mut a, open) = Sio::polling(&server, "").await;
    assert_eq!(open["pingInterval"], 300);
    a.connect("", Some(&alice.token)).await;

    let started = Instant::now();
    let mut pings = 0;
    while pings < 3 || started.elapsed() < 4 * heartbeat {
        assert_eq!(a.packet().await, "2", "only pings come while nothing happens");
        pings += 1;
        a.send(&["3"]).await;
    }
    assert_eq!(a.call("ping", json!({})).await, json!({}), "answered pings keep the session");

    let silent = Instant::now();
    let rest = a.until_end("a client that stops answering pings").await;
    assert!(silent.elapsed() >= 2 * heartbeat, "closed only after silent intervals: {:?}", silent.elapsed());
    assert!(rest.iter().all(|p| p == "2"), "pings, then the close; no DISCONNECT: {rest:?}");
    // The end is the close packet if a poll was waiting then, else the refusal of the next.
    assert_eq!(refusal(try_poll(&server, &a.sid).await), 1, "the connection is gone");
    server.stop().await;
}

/// EIO and SIO: heartbeat / WebSocket / "sends ping/pong packets" and "closes the session upon
/// ping timeout": the same over a WebSocket from the start: `2` frames every interval, each
/// answered `3`, keep the session; a client that stops answering is closed, without `41`.
async fn the_websocket_heartbeat_keeps_a_client_that_answers_and_closes_one_that_does_not(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start_with(backend, |config| config.limits.heartbeat_ms = 300).await;
    let heartbeat = Duration::from_millis(server.config.limits.heartbeat_ms);
    let (mut a, open) = Sio::websocket(&server, "").await;
    assert_eq!(open["pingInterval"], 300);
    a.connect("", Some(&alice.token)).await;

    let started = Instant::now();
    let mut pings = 0;
    while pings < 3 || started.elapsed() < 4 * heartbeat {
        assert_eq!(a.packet().await, "2", "only pings come while nothing happens");
        pings += 1;
        a.send(&["3"]).await;
    }
    assert_eq!(a.call("ping", json!({})).await, json!({}), "answered pings keep the session");

    let silent = Instant::now();
    let rest = a.until_end("a client that stops answering pings").await;
    assert!(silent.elapsed() >= 2 * heartbeat, "closed only after silent intervals: {:?}", silent.elapsed());
    assert!(rest.iter().all(|p| p == "2"), "pings, then the close; no DISCONNECT: {rest:?}");
    server.stop().await;
}

// The upgrade.

/// EIO: upgrade / "successfully upgrades from HTTP long-polling to WebSocket" (and SIO's): after
/// a polling handshake and CONNECT, a WebSocket with the sid sends `2probe` and gets `3probe`,
/// the GET waiting meanwhile returns `6` (noop), and `5` moves the connection. What the session
/// sent between the probe and `5`, while the client no longer polled, comes on the WebSocket
/// first; then events (the other user's `message:new`) and acks come there, in order.
async fn polling_upgrades_to_websocket_without_losing_a_packet(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let mut b = server.ws(&bob).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    a.connect("", Some(&alice.token)).await;

    let waiting = spawn_poll(&server, &a.sid);
    let framed = ws_connect(&server, &path(&format!("transport=websocket&sid={}", a.sid))).await.expect("upgrade");
    let mut ws = Sio::new(Wire::WebSocket(Box::new(framed)), a.sid.clone());
    ws.send(&["2probe"]).await;
    assert_eq!(ws.packet().await, "3probe");
    let released = tokio::time::timeout(PATIENCE, waiting).await.expect("the waiting poll ends").expect("its task");
    assert_eq!(released, (200, "6".to_string()), "the waiting GET is ended with a noop");

    b.ack("message:send", json!({"conversation_id": conversation, "body": "before 5"})).await;
    ws.send(&["5"]).await;
    b.ack("message:send", json!({"conversation_id": conversation, "body": "after 5"})).await;
    let first = ws.event("message:new").await;
    let second = ws.event("message:new").await;
    assert_eq!((&first["message"]["seq"], &first["message"]["body"]), (&json!(1), &json!("before 5")));
    assert_eq!((&second["message"]["seq"], &second["message"]["body"]), (&json!(2), &json!("after 5")));

    let ack = ws.call("message:send", json!({"conversation_id": conversation, "body": "from the WebSocket"})).await;
    assert_eq!(ack["message"]["seq"], 3, "acks come on the WebSocket: {ack}");
    let seen = b.event_where("message:new", |d| d["message"]["seq"] == 3).await;
    assert_eq!(seen["message"]["body"], "from the WebSocket");
    server.stop().await;
}

/// EIO and SIO: upgrade / "ignores HTTP requests with same sid after upgrade": once the
/// connection has moved to its WebSocket, a polling GET with its sid is refused with 400 at once,
/// and the WebSocket goes on.
async fn after_the_upgrade_a_poll_with_the_sid_is_refused(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start(backend).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    a.connect("", Some(&alice.token)).await;
    let sid = a.sid.clone();
    a.upgrade(&server).await;

    let answer = tokio::time::timeout(PATIENCE / 2, try_poll(&server, &sid)).await;
    let answer = answer.unwrap_or_else(|_| panic!("a poll of an upgraded connection is refused at once, it waited"));
    assert_eq!(answer.0, 400, "a poll of an upgraded connection: {answer:?}");
    assert_eq!(a.call("ping", json!({})).await, json!({}), "the WebSocket goes on");
    server.stop().await;
}

/// EIO and SIO: upgrade / "ignores WebSocket connection with same sid after upgrade" (and the
/// Engine.IO protocol: "A client MUST NOT open more than one WebSocket connection per session.
/// Should it happen, the server MUST close the WebSocket connection."): a second WebSocket with
/// the sid of an upgraded connection is closed (or refused), and the first goes on.
async fn after_the_upgrade_a_second_websocket_with_the_sid_is_closed(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    a.connect("", Some(&alice.token)).await;
    let sid = a.sid.clone();
    a.upgrade(&server).await;

    match ws_connect(&server, &path(&format!("transport=websocket&sid={sid}"))).await {
        Err(status) => assert_eq!(status, 400, "a second WebSocket is refused"),
        Ok(framed) => {
            let mut second = Sio::new(Wire::WebSocket(Box::new(framed)), sid.clone());
            let rest = second.until_end("a second WebSocket with the sid of an upgraded connection").await;
            assert!(rest.is_empty(), "nothing is sent on it: {rest:?}");
        }
    }
    let (status, _) =
        server.post(Some(&bob), &format!("/api/conversations/{conversation}/messages"), json!({"body": "still"})).await;
    assert_eq!(status, 201);
    assert_eq!(a.event("message:new").await["message"]["body"], "still", "the first WebSocket goes on");
    server.stop().await;
}

// A WebSocket from the start.

/// EIO: message / WebSocket / "sends and receives a plain text packet", and SIO: connect /
/// "should allow connection to the main namespace (with a payload)", over a WebSocket opened with
/// `transport=websocket` and no sid: the first frame is the open packet with no upgrades, then
/// `40{"token":...}` is answered `40{"sid":...}` and `session:ready`; an ack comes for a send and
/// the other user's message as `message:new`. With the token in the handshake's `?token=`, a
/// bare `40` connects.
async fn a_websocket_from_the_start_connects_and_carries_events_and_acks(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let mut b = server.ws(&bob).await;
    let (mut a, open) = Sio::websocket(&server, "").await;
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], server.config.limits.heartbeat_ms);
    let ready = a.connect("", Some(&alice.token)).await;
    assert_eq!(ready["user"]["id"], alice.id.as_str());

    let ack = a.call("message:send", json!({"conversationId": conversation, "body": "over a WebSocket"})).await;
    assert_eq!(ack["message"]["seq"], 1, "{ack}");
    assert_eq!(b.event("message:new").await["message"]["body"], "over a WebSocket");
    b.ack("message:send", json!({"conversation_id": conversation, "body": "back"})).await;
    let new = a.event_where("message:new", |d| d["message"]["seq"] == 2).await;
    assert_eq!(new["message"]["body"], "back");

    let (mut by_query, _) = Sio::websocket(&server, &format!("&token={}", bob.token)).await;
    let ready = by_query.connect("", None).await;
    assert_eq!(ready["user"]["id"], bob.id.as_str(), "?token= on the WebSocket handshake");
    server.stop().await;
}

/// EIO: close / WebSocket / "forcefully closes the session" and message / WebSocket / "closes the
/// session upon invalid packet format": on a WebSocket from the start, the close packet `1`
/// closes the WebSocket, before CONNECT and in a session; so does a packet of no Engine.IO type
/// (`abc`) in a session. Nothing is sent before the close.
async fn close_and_invalid_packets_end_a_websocket_connection(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start(backend).await;
    let (mut before, _) = Sio::websocket(&server, "").await;
    before.send(&["1"]).await;
    assert_eq!(before.until_end("`1` before CONNECT").await, Vec::<String>::new());

    for packet in ["1", "abc"] {
        let (mut io, _) = Sio::websocket(&server, "").await;
        io.connect("", Some(&alice.token)).await;
        io.send(&[packet]).await;
        assert_eq!(io.until_end(&format!("`{packet}` in a session")).await, Vec::<String>::new(), "{packet}");
    }
    server.stop().await;
}

// Bad packets.

/// EIO: message / HTTP long-polling / "closes the session upon invalid packet format": a POST of
/// a packet of no Engine.IO type (`abc`) is 400 code 3 and closes the connection (a later GET is
/// 400 code 1), before CONNECT and in a session, whose user then goes offline for the others.
async fn an_unknown_engine_io_packet_closes_the_polling_connection(backend: Backend) {
    let Pair { server, alice, bob, .. } =
        Pair::start_with(backend, |config| config.limits.presence_grace_ms = 100).await;
    let (before, _) = Sio::polling(&server, "").await;
    assert_eq!(refusal(post(&server, &before.sid, &["abc"]).await), 3);
    assert_eq!(refusal(try_poll(&server, &before.sid).await), 1);

    let mut b = server.ws(&bob).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    a.connect("", Some(&alice.token)).await;
    b.event_where("presence:updated", |d| d["user_id"] == alice.id.as_str() && d["online"] == true).await;
    assert_eq!(refusal(post(&server, &a.sid, &[r#"42["typing:stop",{}]"#, "abc"]).await), 3);
    assert_eq!(refusal(try_poll(&server, &a.sid).await), 1);
    assert_eq!(refusal(post(&server, &a.sid, &["3"]).await), 1);
    b.event_where("presence:updated", |d| d["user_id"] == alice.id.as_str() && d["online"] == false).await;
    server.stop().await;
}

/// SIO: connect / "should disallow connection with an invalid handshake" and message / "should
/// close the connection upon invalid format (unknown packet type / invalid payload format /
/// invalid ack id)": the suites' server closes the connection on these; Parley answers each, as
/// `/ws` answers a bad frame, with an `error` event `{"code":"bad_request",...}` (through the ack
/// when the packet has an id it could read) and the session goes on. Over polling and over a
/// WebSocket: before CONNECT (`4abc`), then in a session `42{"not":"array"}`, `4abc`,
/// `42abc[...]`, an empty packet, type 9, an event with no name or an unknown one; a client's
/// own ACK is ignored.
async fn bad_socket_io_packets_get_an_error_and_the_session_goes_on(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start(backend).await;
    let (polled, _) = Sio::polling(&server, "").await;
    let (socket, _) = Sio::websocket(&server, "").await;
    for mut io in [polled, socket] {
        io.send(&["4abc"]).await;
        assert_error(&io.event("error").await, "bad_request", "4abc before CONNECT");
        io.connect("", Some(&alice.token)).await;
        let bad =
            [r#"42{"not":"array"}"#, "4abc", r#"42abc["ping",{}]"#, "4", "49", "42[]", "42[1,2]", r#"42["nope",{}]"#];
        for packet in bad {
            io.send(&[packet]).await;
            assert_error(&io.event("error").await, "bad_request", packet);
        }
        io.send(&["427[1,2]"]).await;
        assert_error(&io.ack(7).await["error"], "bad_request", "an event with no name, with an ack id");
        io.send(&["435[{}]"]).await;
        assert_eq!(io.call("ping", json!({})).await, json!({}), "the session goes on");
        let errors = io.log.iter().filter(|p| as_event(p, "").is_some_and(|(name, _)| name == "error")).count();
        assert_eq!(errors, bad.len() + 1, "one error per bad packet, none for the client's ACK: {:?}", io.log);
    }
    server.stop().await;
}

/// SIO: message / "should send a packet with binary attachments": Parley's commands are JSON, so
/// a BINARY_EVENT (`451-[...]`) is refused with an `error` event `bad_request`, and the session
/// goes on: over polling (the header packet alone), and over a WebSocket with its attachment as
/// a binary frame, which the suites' client sends after it.
async fn binary_events_are_refused_and_the_session_goes_on(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start(backend).await;
    let binary = r#"451-["message:send",{"_placeholder":true,"num":0}]"#;
    let (mut polled, _) = Sio::polling(&server, "").await;
    polled.connect("", Some(&alice.token)).await;
    polled.send(&[binary]).await;
    assert_error(&polled.event("error").await, "bad_request", "a binary event over polling");
    assert_eq!(polled.call("ping", json!({})).await, json!({}));

    let (mut socket, _) = Sio::websocket(&server, "").await;
    socket.connect("", Some(&alice.token)).await;
    socket.send(&[binary]).await;
    socket.send_binary(&[1, 2, 3]).await;
    assert_error(&socket.event("error").await, "bad_request", "a binary event over a WebSocket");
    assert_eq!(socket.call("ping", json!({})).await, json!({}));
    server.stop().await;
}

/// SIO: message / "should send a packet with binary attachments and an ack" (`452-789[...]`,
/// answered `462-789[...]`): Parley refuses binary events, but a command emitted with a callback
/// is answered through it (docs/SOCKETIO.md, "Commands … answered through the acknowledgement
/// callback"), so `451-7[...]` is answered `437[{"error":{"code":"bad_request",...}}]`, not with
/// an `error` event the emitter's callback never sees.
async fn a_binary_event_with_an_ack_id_is_refused_through_its_ack(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start(backend).await;
    let (mut io, _) = Sio::polling(&server, "").await;
    io.connect("", Some(&alice.token)).await;
    io.send(&[r#"451-7["message:send",{"_placeholder":true,"num":0}]"#]).await;
    // The refusal is written while the POST is handled, before the ping after it is even read.
    assert_eq!(io.call("ping", json!({})).await, json!({}));
    let acked = io.log.iter().find_map(|p| as_ack(p, "").filter(|(id, _)| *id == 7));
    let (_, answer) = acked.unwrap_or_else(|| panic!("the refusal comes through ack 7; read {:?}", io.log));
    assert_error(&answer["error"], "bad_request", "a binary event with an ack id");
    server.stop().await;
}

/// EIO: message / HTTP long-polling / "sends and receives a payload containing plain text and
/// binary packets" (a POST of `4hello\x1ebAQIDBA==` is answered `ok`): a binary packet
/// (base64, prefixed `b`) is part of the long-polling encoding. socket.io-client sends a binary
/// event over polling as its header packet and such an attachment in one payload; Parley refuses
/// the event (as over a WebSocket, above) but must not take the attachment for a broken packet
/// and close the connection.
async fn a_binary_attachment_in_a_polling_payload_does_not_close_the_connection(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start(backend).await;
    let (mut io, _) = Sio::polling(&server, "").await;
    io.connect("", Some(&alice.token)).await;
    let payload = [r#"451-["message:send",{"_placeholder":true,"num":0}]"#, "bAQIDBA=="];
    assert_eq!(post(&server, &io.sid, &payload).await, (200, "ok".to_string()), "a payload with a binary packet");
    assert_error(&io.event("error").await, "bad_request", "a binary event over polling");
    assert_eq!(io.call("ping", json!({})).await, json!({}), "the session goes on");
    server.stop().await;
}

/// EIO: message / HTTP long-polling / "closes the session upon duplicate poll requests": with a
/// GET waiting, a second GET of the same sid is refused with 400 (code 3), the waiting one is
/// answered 200 with the close packet `1`, and the connection is closed (a later GET is 400
/// code 1).
async fn overlapping_polls_close_the_connection(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start(backend).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    a.connect("", Some(&alice.token)).await;
    let (first, second) = (spawn_poll(&server, &a.sid), spawn_poll(&server, &a.sid));
    let first = tokio::time::timeout(PATIENCE, first).await.expect("the first GET ends").expect("its task");
    let second = tokio::time::timeout(PATIENCE, second).await.expect("the second GET ends").expect("its task");
    // Either may reach the server first: the one that waits is answered, the other refused.
    let mut answers = [first, second];
    answers.sort();
    assert_eq!(answers[0], (200, "1".to_string()), "the waiting GET gets the close packet: {answers:?}");
    assert_eq!(refusal(answers[1].clone()), 3, "the overlapping GET is refused");
    assert_eq!(refusal(try_poll(&server, &a.sid).await), 1, "the connection is closed");
    server.stop().await;
}

/// EIO and SIO: close / HTTP long-polling / "forcefully closes the session": a POST of the close
/// packet `1` is answered `ok` and closes the connection: a GET waiting meanwhile ends at once
/// with 200 (the suites' server sends it a noop `6`, Parley the close packet `1`: either ends
/// the poll; and if the GET reached the server only after the close, it is refused with code
/// 1), and a later GET is 400 code 1.
async fn a_close_packet_ends_the_polling_connection(backend: Backend) {
    let Pair { server, alice, .. } = Pair::start(backend).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    a.connect("", Some(&alice.token)).await;
    let waiting = spawn_poll(&server, &a.sid);
    assert_eq!(post(&server, &a.sid, &["1"]).await, (200, "ok".to_string()));
    let answer = tokio::time::timeout(PATIENCE, waiting).await.expect("the waiting GET ends").expect("its task");
    match answer {
        (200, body) => assert!(body == "6" || body == "1", "the waiting GET ends with a noop or the close: {body}"),
        refused => assert_eq!(refusal(refused), 1, "a GET after the close"),
    }
    assert_eq!(refusal(try_poll(&server, &a.sid).await), 1, "the connection is closed");
    server.stop().await;
}

// The end of a session.

/// SIO: disconnect / "should disconnect from the main namespace": the client's DISCONNECT `41`
/// ends its session (its user goes offline for the others). Parley serves one namespace per
/// connection, so the Engine.IO connection ends with it (the protocol: "The low-level connection
/// MAY be kept alive if the client is connected to another namespace"; the suites' server keeps
/// it and pings on): over polling the connection closes (a later GET is 400 code 1), a WebSocket
/// is closed.
async fn a_disconnect_packet_ends_the_session(backend: Backend) {
    let Pair { server, alice, bob, .. } =
        Pair::start_with(backend, |config| config.limits.presence_grace_ms = 100).await;
    let mut b = server.ws(&bob).await;
    let online = |online: bool| {
        let id = alice.id.clone();
        move |d: &Value| d["user_id"] == id.as_str() && d["online"] == online
    };

    let (mut polled, _) = Sio::polling(&server, "").await;
    polled.connect("", Some(&alice.token)).await;
    b.event_where("presence:updated", online(true)).await;
    polled.send(&["41"]).await;
    let rest = polled.until_end("a polling connection after 41").await;
    assert!(rest.iter().all(|p| p == "41"), "nothing but perhaps the server's own DISCONNECT: {rest:?}");
    assert_eq!(refusal(try_poll(&server, &polled.sid).await), 1);
    b.event_where("presence:updated", online(false)).await;

    let (mut socket, _) = Sio::websocket(&server, "").await;
    socket.connect("", Some(&alice.token)).await;
    b.event_where("presence:updated", online(true)).await;
    socket.send(&["41"]).await;
    let rest = socket.until_end("a WebSocket after 41").await;
    assert!(rest.iter().all(|p| p == "41"), "{rest:?}");
    b.event_where("presence:updated", online(false)).await;
    server.stop().await;
}

/// The Socket.IO protocol's server-side DISCONNECT (socket.io-client: `io server disconnect`,
/// after which it does not reconnect by itself; docs/SOCKETIO.md): a token that expires on an
/// open session (as `tokens.rs` tests for `/ws`, which closes with 4001) ends it with `41`, over
/// polling and over a WebSocket, and then the connection closes. No reconnect could succeed: a
/// CONNECT with the same token is refused as expired.
async fn an_expiring_token_ends_the_session_with_a_disconnect(backend: Backend) {
    let server = TestServer::start(backend).await;
    let sub = fresh_sub();
    let token = token_for(json!({"sub": sub, "exp": now_secs() + 2, "name": "Brief"}));
    let (mut polled, _) = Sio::polling(&server, "").await;
    assert_eq!(polled.connect("", Some(&token)).await["user"]["id"], sub.as_str());
    let (mut socket, _) = Sio::websocket(&server, "").await;
    assert_eq!(socket.connect("", Some(&token)).await["user"]["id"], sub.as_str());
    assert_eq!(polled.call("ping", json!({})).await, json!({}), "the session works until then");

    let rest = polled.until_end("a polling session whose token expires").await;
    assert_eq!(rest, ["41"], "a DISCONNECT, then the end of the connection ({:?})", polled.ended);
    assert_eq!(refusal(try_poll(&server, &polled.sid).await), 1);
    let rest = socket.until_end("a WebSocket session whose token expires").await;
    assert_eq!(rest, ["41"], "a DISCONNECT, then the WebSocket closes");

    let (mut again, _) = Sio::polling(&server, "").await;
    let refused = connect_error(&again.connect_answer("", Some(json!({"token": token}))).await, "");
    assert_eq!(refused, "invalid token: expired");
    server.stop().await;
}

/// The same DISCONNECT for a client behind on its polls (a phone in the background): the
/// session's answers fill what waits for the client's next poll, then the token expires. When
/// the client polls again it still gets what waited, then `41` and the close (or, at the least,
/// its connection is gone: 400 code 1); the connection must not stay open with no session
/// behind it, its poll waiting for ever.
async fn an_expiring_token_ends_the_connection_of_a_client_behind_on_its_polls(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.close_timeout_ms = 100;
        config.limits.presence_grace_ms = 1_000;
    })
    .await;
    let bob = server.user("bob").await;
    let sub = fresh_sub();
    let token = token_for(json!({"sub": sub, "exp": now_secs() + 4, "name": "Behind"}));
    let behind = TestUser { id: sub.clone(), username: String::new(), token: token.clone() };
    let (status, me) = server.get(Some(&behind), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    let conversation = server.direct(&bob, &behind).await;
    let mut b = server.ws(&bob).await;
    let (mut a, _) = Sio::polling(&server, "").await;
    a.connect("", Some(&token)).await;

    // 50 acks and 20 messages: more than a connection holds for its next poll.
    let pings: Vec<String> = (1..=50).map(|id| format!(r#"42{id}["ping",{{}}]"#)).collect();
    a.send(&pings.iter().map(String::as_str).collect::<Vec<_>>()).await;
    for i in 0..20 {
        let path = format!("/api/conversations/{conversation}/messages");
        let (status, sent) = server.post(Some(&bob), &path, json!({"body": format!("m{i}")})).await;
        assert_eq!(status, 201, "{sent}");
    }
    // The session ends at the token's expiry; Bob hears it a grace period later.
    b.event_where("presence:updated", |d| d["user_id"] == sub.as_str() && d["online"] == false).await;

    let deadline = Instant::now() + PATIENCE;
    loop {
        match a.read(deadline).await {
            Read::Packets => {}
            Read::Ended => break,
            Read::TimedOut => panic!(
                "the connection of an expired session never ends: after {} packets its poll waits for ever",
                a.log.len()
            ),
        }
    }
    let ended = a.ended.clone().unwrap_or_default();
    assert!(a.log.contains(&"41".to_string()) || ended.contains("400"), "{ended}; read {:?}", a.log);
    server.stop().await;
}
