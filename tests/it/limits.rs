//! Limits: the message body on REST and the WebSocket (the connection stays open), the
//! per-user rate limit across transports and sessions, request bodies over 64 KiB, and query
//! strings of 100 KB and more.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

backends!(
    rest_sends_respect_the_limits,
    websocket_sends_respect_the_limits_and_the_connection_stays_open,
    the_rate_limit_is_per_user_across_transports_and_sessions,
    request_bodies_over_64_kib_are_413,
    a_100_kb_query_string_is_refused_and_the_server_goes_on,
);

/// A raw JSON POST: the status, the `Retry-After` header if any, and the JSON body.
async fn post_raw(server: &TestServer, user: &TestUser, path: &str, body: String) -> (u16, Option<String>, Value) {
    let mut response = server
        .client
        .post(server.url(path))
        .bearer_auth(&user.token)
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("Retry-After").map(|v| v.to_str().expect("ASCII header").to_string());
    let bytes = response.body().limit(1 << 20).await.expect("body");
    let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    (status, retry_after, json)
}

/// POST with a body sent in chunks, without a Content-Length.
async fn post_chunked(server: &TestServer, token: Option<&str>, path: &str, body: String) -> (u16, Vec<u8>) {
    let chunks: Vec<Result<actix_web::web::Bytes, std::io::Error>> =
        body.into_bytes().chunks(8 * 1024).map(|c| Ok(actix_web::web::Bytes::copy_from_slice(c))).collect();
    let mut request = server.client.post(server.url(path)).insert_header(("Content-Type", "application/json"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send_stream(futures_util::stream::iter(chunks))
        .await
        .unwrap_or_else(|err| panic!("POST {path}: {err}"));
    let bytes = response.body().limit(1 << 20).await.expect("answer body");
    (response.status().as_u16(), bytes.to_vec())
}

/// GET with a raw request (the HTTP client refuses URLs as long as these): the status and the
/// body, or `None` if the server closed without an answer.
async fn raw_get(addr: SocketAddr, target: &str, token: &str) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    // The server may answer and close before reading it all: what it answered is what counts.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.expect("an answer in time");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&answer[..head_end]).to_string();
    let status = head.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|s| s.parse().ok())?;
    Some((status, answer[head_end..].to_vec()))
}

async fn rest_sends_respect_the_limits(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let path = messages_path(&conversation);

    // Empty and blank bodies.
    for blank in ["", " ", " \n\t "] {
        let (status, body) = server.post(Some(&alice), &path, json!({"body": blank})).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "body {blank:?}");
    }

    // 4,000 characters, not bytes: 4,000 'é' (8,000 bytes) pass, 4,001 do not.
    let (status, body) = server.post(Some(&alice), &path, json!({"body": "é".repeat(4001)})).await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"));
    let longest = "é".repeat(4000);
    let (status, sent) = server.post(Some(&alice), &path, json!({"body": longest})).await;
    assert_eq!(status, 201, "{sent}");
    assert_message(&sent, &conversation, 1, &alice, &longest, None);

    // client_id: at most 128 bytes (65 'é' are 65 characters but 130 bytes).
    let (status, body) = server.post(Some(&alice), &path, json!({"body": "x", "client_id": "k".repeat(129)})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    let (status, body) = server.post(Some(&alice), &path, json!({"body": "x", "client_id": "é".repeat(65)})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    let widest = "k".repeat(128);
    let (status, sent) = server.post(Some(&alice), &path, json!({"body": "x", "client_id": widest})).await;
    assert_eq!(status, 201, "{sent}");
    assert_message(&sent, &conversation, 2, &alice, "x", Some(&widest));

    // The request body: at most max_request_bytes (64 KiB), whatever the message inside. JSON
    // whitespace pads a short message past it.
    assert_eq!(server.config.limits.max_request_bytes, 64 * 1024);
    let padded = |pad: usize| format!("{{\"body\": \"padded\"{}}}", " ".repeat(pad));
    let (status, _, body) = post_raw(&server, &alice, &path, padded(70 * 1024)).await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"));
    let (status, _, sent) = post_raw(&server, &alice, &path, padded(60 * 1024)).await;
    assert_eq!(status, 201, "{sent}");
    assert_message(&sent, &conversation, 3, &alice, "padded", None);

    // Nothing refused was stored, and no seq was spent on it.
    let (_, page) = server.get(Some(&bob), &path).await;
    assert_eq!(seqs(&page), [1, 2, 3]);
    server.stop().await;
}

async fn websocket_sends_respect_the_limits_and_the_connection_stays_open(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let mut a = server.ws(&alice).await;
    let conversation = server.direct(&alice, &bob).await;
    let elsewhere = server.direct(&bob, &carol).await;

    let refused = [
        (json!({"conversation_id": conversation, "body": ""}), "bad_request"),
        (json!({"conversation_id": conversation, "body": "  \n\t "}), "bad_request"),
        (json!({"conversation_id": conversation, "body": "é".repeat(4001)}), "payload_too_large"),
        (json!({"conversation_id": conversation, "body": "x", "client_id": "k".repeat(129)}), "bad_request"),
        (json!({"conversation_id": conversation, "body": "x", "client_id": "é".repeat(65)}), "bad_request"),
        (json!({"conversation_id": conversation}), "bad_request"),
        (json!({"conversation_id": elsewhere, "body": "not mine"}), "not_found"),
    ];
    for (data, expected) in refused {
        let reply = a.request("message:send", data.clone()).await;
        assert_eq!(reply["type"], "error", "{data} is refused: {reply}");
        assert_eq!(reply["data"]["code"], expected, "{data}: {reply}");
        assert!(reply["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "a message for people: {reply}");
        assert_eq!(a.ack("ping", json!({})).await, json!({}), "still open after {expected}");
    }

    // The longest body and the widest client_id pass, with the first seqs.
    let longest = "é".repeat(4000);
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": longest})).await;
    assert_message(&sent["message"], &conversation, 1, &alice, &longest, None);
    let widest = "k".repeat(128);
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "x", "client_id": widest})).await;
    assert_message(&sent["message"], &conversation, 2, &alice, "x", Some(&widest));
    let (_, page) = server.get(Some(&bob), &messages_path(&conversation)).await;
    assert_eq!(seqs(&page), [1, 2]);

    let reply = a.request("message:send", json!({"conversation_id": uuid::Uuid::new_v4(), "body": "nowhere"})).await;
    assert_eq!((&reply["type"], &reply["data"]["code"]), (&json!("error"), &json!("not_found")), "{reply}");
    assert_eq!(a.ack("ping", json!({})).await, json!({}), "still open after not_found");

    // A frame over max_frame_bytes (64 KiB) is not an error reply but a close with 1009.
    assert_eq!(server.config.limits.max_frame_bytes, 64 * 1024);
    let frame = json!({"type": "message:send", "ref": "big", "data": {"conversation_id": conversation, "body": "a".repeat(70 * 1024)}});
    a.send_text(&frame.to_string()).await;
    assert_eq!(a.closed_with().await, 1009);
    server.stop().await;
}

async fn the_rate_limit_is_per_user_across_transports_and_sessions(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_per_sec = 1.0;
        config.limits.rate_burst = 3.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut phone = server.ws(&alice).await;
    let mut laptop = server.ws(&alice).await;
    let conversation = server.direct(&alice, &bob).await;
    let path = messages_path(&conversation);

    // The burst: three sends at once from one session.
    let refs = [
        phone.command("message:send", json!({"conversation_id": conversation, "body": "one"})).await,
        phone.command("message:send", json!({"conversation_id": conversation, "body": "two"})).await,
        phone.command("message:send", json!({"conversation_id": conversation, "body": "three"})).await,
    ];
    for (i, reference) in refs.iter().enumerate() {
        let reply = phone.reply_to(reference).await;
        assert_eq!(reply["type"], "ack", "send {} of the burst: {reply}", i + 1);
        assert_eq!(reply["data"]["message"]["seq"], i as i64 + 1);
    }

    // The fourth, over REST: 429 with retry_after_ms and a Retry-After header in seconds.
    let (status, retry_after, body) = post_raw(&server, &alice, &path, json!({"body": "four"}).to_string()).await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
    let wait_ms = body["error"]["retry_after_ms"].as_u64().unwrap_or_else(|| panic!("retry_after_ms in {body}"));
    assert!(wait_ms > 0 && wait_ms <= 1000, "a token comes within a second at 1 per second: {wait_ms}");
    let retry_after: u64 = retry_after.expect("a Retry-After header").parse().expect("Retry-After in whole seconds");
    assert_eq!(retry_after, wait_ms.div_ceil(1000), "Retry-After rounds retry_after_ms up");

    // The same user's sessions share the bucket: the first and another one are limited too.
    for ws in [&mut phone, &mut laptop] {
        let reply = ws.request("message:send", json!({"conversation_id": conversation, "body": "five"})).await;
        assert_eq!((&reply["type"], &reply["data"]["code"]), (&json!("error"), &json!("rate_limited")), "{reply}");
        assert!(reply["data"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "retry_after_ms in {reply}");
        assert_eq!(ws.ack("ping", json!({})).await, json!({}), "still open");
    }

    // Another user has a bucket of their own.
    let (status, sent) = server.post(Some(&bob), &path, json!({"body": "my turn"})).await;
    assert_eq!((status, sent["seq"].as_i64()), (201, Some(4)), "{sent}");
    let (_, page) = server.get(Some(&bob), &path).await;
    assert_eq!(seqs(&page), [1, 2, 3, 4], "nothing refused was stored");
    server.stop().await;
}

/// A body over 64 KiB to each POST endpoint is 413 `payload_too_large`, with a Content-Length
/// or sent in chunks; a body just under the limit goes through.
async fn request_bodies_over_64_kib_are_413(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.group(&alice, "big", &[&bob]).await;
    let (status, _) =
        server.post(Some(&bob), &format!("/api/conversations/{conversation}/messages"), json!({"body": "hi"})).await;
    assert_eq!(status, 201);

    let over = format!("{{\"body\": \"{}\"}}", "x".repeat(70_000));
    assert!(over.len() > 64 * 1024);
    for (path, token) in post_endpoints(&alice, &conversation) {
        let (status, body) = server.post_text(token, &path, "application/json", over.clone()).await;
        assert_raw_error(&format!("POST {path}, {} bytes", over.len()), status, &body, (413, "payload_too_large"));
        let (status, body) = post_chunked(&server, token, &path, over.clone()).await;
        assert_raw_error(
            &format!("POST {path}, {} bytes in chunks", over.len()),
            status,
            &body,
            (413, "payload_too_large"),
        );
    }

    // Just under the limit (white space is JSON too): accepted.
    let pad = " ".repeat(64 * 1024 - 100);
    let path = format!("/api/conversations/{conversation}/messages");
    let (status, body) =
        server.post_text(Some(&alice.token), &path, "application/json", format!("{{\"body\": \"under\"}}{pad}")).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let path = format!("/api/conversations/{conversation}/read");
    let (status, body) =
        server.post_text(Some(&bob.token), &path, "application/json", format!("{{\"seq\": 2}}{pad}")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("JSON")["last_read_seq"], 2);
    let (status, _) = server.get_text(None, "/healthz").await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// Query strings of 60 KB, 100 KB and 200 KB on each GET endpoint with parameters, and on the
/// WebSocket upgrade. 60 KB reaches the handlers: a 2xx or a clear 4xx. 100 KB is past what the
/// HTTP layer parses as a URI, 200 KB past its buffer for a request head: a 4xx. The server goes
/// on.
async fn a_100_kb_query_string_is_refused_and_the_server_goes_on(backend: Backend) {
    let Pair { server, alice, bob: _, conversation } = Pair::start(backend).await;
    let addr = server.addr();

    for size in [60_000, 100_000, 200_000] {
        let long = "a".repeat(size);
        let targets = [
            format!("/api/users?q={long}"),
            format!("/api/users?q=al&x={long}"),
            format!("/api/conversations?before={long}"),
            format!("/api/conversations/{conversation}/messages?limit={long}"),
            format!("/api/conversations/{conversation}/messages?after_seq=0&pad={long}"),
            format!("/ws?token={long}"),
        ];
        for target in &targets {
            let shown = &target[..target.len().min(50)];
            let (status, body) =
                raw_get(addr, target, &alice.token).await.unwrap_or_else(|| panic!("GET {shown}…: no answer"));
            if size < 64 * 1024 {
                if let Err(problem) = check_answer(status, &body) {
                    panic!("GET {shown}… ({size} bytes): {problem}");
                }
            } else {
                assert!((400..500).contains(&status), "GET {shown}… ({size} bytes): {status}, expected a 4xx");
            }
        }
    }
    let (status, _) = server.get_text(None, "/healthz").await;
    assert_eq!(status, 200);
    let (status, found) = server.get(Some(&alice), "/api/users?q=bo").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["users"][0]["username"], "bob");
    server.stop().await;
}
