//! What one address may hold open: a request body that never comes is timed out, and an address
//! over its cap of open connections is answered `rate_limited` and closed (docs/SECURITY.md,
//! "Facing the internet").

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::raw::{closed_by_server, read_answer};
use crate::common::*;

backends!(
    a_body_that_never_comes_is_timed_out,
    an_address_over_its_connection_cap_is_refused,
    a_socket_io_websocket_outlives_the_body_deadline,
);

/// The body deadline is for request bodies, not for WebSockets, which live for hours: a
/// Socket.IO WebSocket that answers its pings is open, and answers, well past
/// `PARLEY_BODY_TIMEOUT_MS` (it was cut at the deadline once, as /ws never was).
async fn a_socket_io_websocket_outlives_the_body_deadline(backend: Backend) {
    use awc::ws;
    use futures_util::{SinkExt, StreamExt};
    let server = TestServer::start_with(backend, |config| {
        config.exposure.body_timeout_ms = 300;
        config.limits.heartbeat_ms = 100;
    })
    .await;
    let alice = server.user("alice").await;
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", server.ws_base);
    let (_, mut socket) = awc::Client::new().ws(url).connect().await.expect("a WebSocket");
    let text = |t: String| ws::Message::Text(t.into());
    socket.send(text(format!("40{}", serde_json::json!({"token": alice.token})))).await.expect("send");
    // Ten pings answered: a second past the deadline, counted by the server's own heartbeat.
    let mut pings = 0;
    let started = Instant::now();
    while pings < 10 {
        let frame = tokio::time::timeout(PATIENCE, socket.next()).await.expect("in time").expect("still open");
        match frame.expect("a frame") {
            ws::Frame::Text(t) if &t[..] == b"2" => {
                pings += 1;
                socket.send(text("3".into())).await.expect("pong");
            }
            ws::Frame::Close(reason) => panic!("closed after {:?}: {reason:?}", started.elapsed()),
            _ => {}
        }
    }
    assert!(started.elapsed() > Duration::from_millis(300), "past the body deadline");
    socket.send(text(format!("421{}", serde_json::json!(["ping"])))).await.expect("send");
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next()).await.expect("in time").expect("still open");
        if let Ok(ws::Frame::Text(t)) = frame
            && &t[..] == b"431[{}]"
        {
            break;
        }
    }
    server.stop().await;
}

async fn a_body_that_never_comes_is_timed_out(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.exposure.body_timeout_ms = 300).await;
    let alice = server.user("alice").await;

    // Headers promising 100 bytes, then nothing: the answer comes once the deadline passes,
    // and the connection is closed.
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let request = format!(
        "POST /api/conversations HTTP/1.1\r\nHost: parley\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"kind\":",
        alice.token
    );
    let started = Instant::now();
    stream.write_all(request.as_bytes()).await.expect("send the head");
    let (head, body) = read_answer(&mut stream).await.expect("an answer before the body came");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let body: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(code(&body), "bad_request", "{body}");
    assert!(started.elapsed() >= Duration::from_millis(300), "answered before the deadline");
    assert!(closed_by_server(&mut stream).await, "the connection stays open");

    // A body that comes in time is read as always.
    let (status, created) = server
        .post(
            Some(&alice),
            "/api/conversations",
            serde_json::json!({
                "kind": "group", "title": "in time", "member_ids": []
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(metric(&server.metrics().await, "parley_refused_total{limit=\"body_timeout\"}") >= 1.0);
    server.stop().await;
}

async fn an_address_over_its_connection_cap_is_refused(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.exposure.max_connections_per_address = 3).await;

    // Three connections, each known to be accepted (it had an answer).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n").await.expect("send");
        let (head, _) = read_answer(&mut stream).await.expect("an answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(stream);
    }

    // A fourth: refused with the protocol's error, and closed.
    let mut fourth = TcpStream::connect(server.addr()).await.expect("connect");
    fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n").await.expect("send");
    let (head, body) = read_answer(&mut fourth).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    let body: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(code(&body), "rate_limited", "{body}");
    assert!(body["error"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{body}");
    assert!(closed_by_server(&mut fourth).await, "a refused connection stays open");

    // The held ones still work, and count the refusal.
    let mut first = held.remove(0);
    first.write_all(b"GET /metrics HTTP/1.1\r\nHost: parley\r\n\r\n").await.expect("send");
    let (head, text) = read_answer(&mut first).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let text = String::from_utf8_lossy(&text).to_string();
    assert!(metric(&text, "parley_refused_total{limit=\"connections_per_address\"}") >= 1.0, "{text}");

    // One closes: its place is given back (the server notices the close in its own time).
    drop(first);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut again = TcpStream::connect(server.addr()).await.expect("connect");
        again.write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n").await.expect("send");
        let (head, _) = read_answer(&mut again).await.expect("an answer");
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the place of a closed connection was not given back: {head}");
        tokio::task::yield_now().await;
    }
    drop(held);
    server.stop().await;
}
