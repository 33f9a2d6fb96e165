//! A graceful stop: what is in flight is answered, then sessions are closed with 1012; the
//! same for the real binary on SIGTERM, which exits within its shutdown timeout.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::process::{ServerProcess, UNLIMITED, resend};
use crate::common::*;

backends!(
    a_graceful_stop_answers_what_is_in_flight_then_closes_with_1012,
    sigterm_answers_every_send_in_flight_closes_sessions_with_1012_and_exits,
);

const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// Whether a fresh connection to `addr` is served: the status of `GET /readyz`, or `None` when
/// the connection is refused or closed without an answer.
async fn answers(addr: SocketAddr) -> Option<u16> {
    let stream = tokio::time::timeout(PATIENCE, TcpStream::connect(addr)).await.expect("connect in time").ok()?;
    let mut http = RawHttp { stream, buffer: Vec::new() };
    http.send("GET", "/readyz", None, None).await;
    http.response().await.map(|(status, _)| status)
}

/// HTTP/1.1 by hand on one kept-alive connection, to know that a request is on the wire (and
/// its connection accepted) before the server is stopped.
struct RawHttp {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawHttp {
    async fn connect(addr: SocketAddr) -> RawHttp {
        RawHttp { stream: TcpStream::connect(addr).await.expect("connect"), buffer: Vec::new() }
    }

    async fn send(&mut self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: parley\r\nContent-Length: {}\r\n", body.len());
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        // A connection the server already closed shows in `response`.
        let _ = self.stream.write_all(request.as_bytes()).await;
    }

    /// The next response (status, JSON body); `None` if the connection ends before a whole one.
    async fn response(&mut self) -> Option<(u16, Value)> {
        let head_end = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_string();
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
            .map_or(0, |v| v.parse().expect("content-length"));
        while self.buffer.len() < head_end + length {
            if !self.fill().await {
                return None;
            }
        }
        let body: Vec<u8> = self.buffer.drain(..head_end + length).skip(head_end).collect();
        let body = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("JSON body") };
        Some((status, body))
    }

    /// Reads more; false once the connection ended.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk)).await.expect("an HTTP answer in time") {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}

async fn a_graceful_stop_answers_what_is_in_flight_then_closes_with_1012(backend: Backend) {
    let (Pair { server, alice: _, bob: _, conversation }, mut a, mut b) = Pair::connected(backend).await;
    // Sends in flight as the stop begins: every command the server has read gets its one reply
    // before the close. (The ping's ack proves the sends before it were read: frames are
    // handled in order. A frame still unread when the close comes gets no reply; the client
    // resends it after reconnecting, with its client_id.)
    let mut refs = Vec::new();
    for n in 0..5 {
        refs.push(
            a.command("message:send", json!({"conversation_id": conversation, "body": format!("last {n}")})).await,
        );
    }
    let ping = a.command("ping", json!({})).await;
    a.reply_to(&ping).await;
    let stopping = actix_web::rt::spawn(server.stop());
    let mut acked = Vec::new();
    for reference in &refs {
        let reply = a.reply_to(reference).await;
        match reply["type"].as_str() {
            Some("ack") => acked.push(reply["data"]["message"]["seq"].as_i64().unwrap()),
            Some("error") => assert_eq!(reply["data"]["code"], "unavailable", "{reply}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(a.closed_with().await, 1012);
    assert_eq!(b.closed_with().await, 1012);
    stopping.await.expect("stopped");
    // What was acked has seqs 1..=n, in order.
    assert_eq!(acked, (1..=acked.len() as i64).collect::<Vec<_>>());
}

async fn sigterm_answers_every_send_in_flight_closes_sessions_with_1012_and_exits(backend: Backend) {
    let db = FreshDatabase::create(backend).await;
    let timeout = SHUTDOWN_TIMEOUT_SECS.to_string();
    let settings = [UNLIMITED[0], UNLIMITED[1], ("PARLEY_SHUTDOWN_TIMEOUT_SECS", timeout.as_str())];
    let mut server = ServerProcess::on(&db, &settings).await;
    let http = server.http();
    let alice = http.user("alice").await;
    let bob = http.user("bob").await;
    let conversation = http.direct(&alice, &bob).await;
    let messages = format!("/api/conversations/{conversation}/messages");
    let mut a = Ws::open(&server.ws_base(), &alice).await;
    let mut b = Ws::open(&server.ws_base(), &bob).await;
    let first =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "first", "client_id": "first"})).await;
    assert_eq!(first["message"]["seq"], 1);
    // Bob's REST client holds a connection the server has accepted (one request answered on it).
    let mut rest = RawHttp::connect(server.addr).await;
    rest.send("GET", "/healthz", None, None).await;
    assert_eq!(rest.response().await.map(|(status, _)| status), Some(200));

    // Ten WebSocket sends and one REST send are in flight when SIGTERM comes.
    let mut in_flight = Vec::new();
    for n in 0..10 {
        let client_id = format!("ws-{n}");
        let data = json!({"conversation_id": conversation, "body": client_id, "client_id": client_id});
        in_flight.push((a.command("message:send", data).await, client_id));
    }
    rest.send("POST", &messages, Some(&bob.token), Some(&json!({"body": "rest-0", "client_id": "rest-0"}))).await;
    server.signal(libc::SIGTERM);

    // Each WebSocket send gets its ack or an error before the session closes, with 1012.
    let mut frames = Vec::new();
    while let Some(frame) = a.try_next().await {
        frames.push(frame);
    }
    assert_eq!(a.closed, Some(1012), "Alice's session is closed with 1012 (service restart)");
    let mut acked: Vec<Value> = vec![first["message"].clone()];
    let mut retry: Vec<(String, &TestUser)> = Vec::new();
    let mut silent = Vec::new();
    for (reference, client_id) in &in_flight {
        let replies: Vec<&Value> = frames.iter().filter(|f| f["ref"] == reference.as_str()).collect();
        match replies[..] {
            [reply] if reply["type"] == "ack" => acked.push(reply["data"]["message"].clone()),
            [reply] => {
                assert_eq!(
                    (&reply["type"], &reply["data"]["code"]),
                    (&json!("error"), &json!("unavailable")),
                    "{client_id}"
                );
                retry.push((client_id.clone(), &alice));
            }
            [] => silent.push(client_id.as_str()),
            _ => panic!("{client_id} got {} replies: {replies:?}", replies.len()),
        }
    }
    assert_eq!(
        silent,
        Vec::<&str>::new(),
        "sends in flight that got no reply before the 1012 ({} acked, {} errors)",
        acked.len() - 1,
        retry.len()
    );
    assert_eq!(b.closed_with().await, 1012, "Bob's session is closed with 1012 (service restart)");
    // The REST send gets its answer too: 201 once committed, or 503. Rarely (seen under heavy
    // load), actix's graceful stop closes a kept-alive connection without an answer: the client
    // sees the request fail, not succeed, and retries it with its client_id (checked below: the
    // retry stores it once).
    match rest.response().await {
        Some((201, message)) => acked.push(message),
        Some((503, body)) => {
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
            retry.push(("rest-0".into(), &bob));
        }
        None => retry.push(("rest-0".into(), &bob)),
        Some(other) => panic!("the REST send in flight got {other:?}, not 201 nor 503"),
    }
    // Sessions were told to reconnect elsewhere: this server takes no new connection.
    assert_eq!(answers(server.addr).await, None, "a new connection was served after the sessions closed");
    // It exits, cleanly, within the shutdown timeout.
    let status = server.wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 3)).await;
    assert!(status.success(), "exit status {status}");
    drop(server);
    println!("shutdown: {} of the 11 sends in flight acked, {} got an error", acked.len() - 1, retry.len());

    // Restarted on the same database: every ack is there, once, as acked; seqs run 1..n.
    let server = ServerProcess::on(&db, &settings).await;
    let http = server.http();
    let history = http.history(&alice, &conversation).await;
    let stored = check_history(&history);
    for message in &acked {
        let client_id = message["client_id"].as_str().expect("client_id");
        assert_eq!(stored.get(client_id), Some(message), "acked {client_id} is stored as acked");
    }
    // The clients retry what got an error, with the same client_id: each is stored once.
    let mut a = Ws::open(&server.ws_base(), &alice).await;
    for (client_id, user) in &retry {
        let message = resend(&mut a, &http, &alice, user, &conversation, client_id).await;
        if let Some(first) = stored.get(client_id) {
            assert_eq!(&message, first, "{client_id} had been stored: the retry returns it");
        }
    }
    let after = http.history(&alice, &conversation).await;
    let after_by_client = check_history(&after);
    let mut ids: Vec<&str> = after_by_client.keys().map(String::as_str).collect();
    ids.sort_unstable();
    let mut expected = vec!["first", "rest-0"];
    expected.extend(in_flight.iter().map(|(_, c)| c.as_str()));
    expected.sort_unstable();
    assert_eq!(ids, expected, "each send is stored exactly once");
    a.close().await;
}
