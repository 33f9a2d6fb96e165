//! Defences of issue 4 that need a server: which web pages may use it (Origin and CORS), the
//! throttle on password guessing, the Prometheus endpoint, and a graceful stop.

mod common;

use common::*;
use serde_json::json;

backends!(
    websocket_upgrades_follow_the_origin_policy,
    cors_answers_follow_the_origin_policy,
    repeated_failed_logins_are_slowed_down,
    metrics_count_what_happens,
    a_graceful_stop_answers_what_is_in_flight_then_closes_with_1012,
    the_web_client_is_served_with_types_and_revalidation,
);

async fn websocket_upgrades_follow_the_origin_policy(backend: Backend) {
    let server =
        TestServer::start_with(backend, |config| config.allowed_origins = vec!["https://app.example.com".into()]).await;
    let alice = server.user("alice").await;
    let own = server.base.clone();
    // No Origin (apps, bots), the server's own origin, and a listed one are let in.
    assert!(server.ws_adjusted(&alice.token, |r| r).await.is_ok());
    assert!(server.ws_adjusted(&alice.token, |r| r.origin(own.as_str())).await.is_ok());
    assert!(server.ws_adjusted(&alice.token, |r| r.origin("https://app.example.com")).await.is_ok());
    // A page of any other origin is refused before anything else (403), even with a valid token.
    for foreign in ["https://evil.example", "http://127.0.0.1:1", "null"] {
        assert_eq!(server.ws_adjusted(&alice.token, |r| r.origin(foreign)).await.err(), Some(403), "{foreign}");
    }
    server.stop().await;
}

async fn cors_answers_follow_the_origin_policy(backend: Backend) {
    let server =
        TestServer::start_with(backend, |config| config.allowed_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        server
            .client
            .request(actix_web::http::Method::OPTIONS, server.url("/api/conversations"))
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .insert_header(("Access-Control-Request-Headers", "authorization, content-type"))
            .send()
    };
    let allowed = preflight("https://app.example.com").await.expect("preflight");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );
    let refused = preflight("https://evil.example").await.expect("preflight");
    assert!(refused.headers().get("access-control-allow-origin").is_none(), "a foreign origin gets no CORS grant");
    assert!(!refused.status().is_success());
    server.stop().await;
}

async fn repeated_failed_logins_are_slowed_down(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.login_failures = 3).await;
    server.user("alice").await;
    let login = |password: &'static str| {
        server.post(None, "/api/auth/login", json!({"username": "alice", "password": password}))
    };
    for _ in 0..3 {
        assert_eq!(login("wrong-password").await.0, 401);
    }
    // The fourth failure makes the account wait; meanwhile even the right password waits.
    assert_eq!(login("wrong-password").await.0, 401);
    let (status, body) = login("password123").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let wait = body["error"]["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!((1..=1000).contains(&wait), "{wait}");
    // Another account is not held up by it.
    server.user("bob").await;
    let (status, _) = server.post(None, "/api/auth/login", json!({"username": "bob", "password": "password123"})).await;
    assert_eq!(status, 200);
    // After the wait, the right password gets in and clears the record.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = login("password123").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(std::time::Instant::now() < deadline, "still blocked");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(
            body["error"]["retry_after_ms"].as_u64().unwrap_or(100),
        ))
        .await;
    }
    assert_eq!(login("wrong-password").await.0, 401, "a fresh record: one failure is free again");
    server.stop().await;
}

async fn metrics_count_what_happens(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut b = server.ws(&bob).await;
    let before = server.metrics().await;
    server.post(Some(&alice), &format!("/api/conversations/{conversation}/messages"), json!({"body": "counted"})).await;
    b.event("message:new").await;
    server.get(Some(&alice), "/api/conversations/00000000-0000-0000-0000-000000000000").await;
    let after = server.metrics().await;
    // Counters are process-wide (other tests run beside this one): they only grow.
    assert!(metric(&after, "parley_messages_sent_total") >= metric(&before, "parley_messages_sent_total") + 1.0);
    assert!(
        metric(&after, "parley_messages_delivered_total") >= metric(&before, "parley_messages_delivered_total") + 1.0
    );
    assert!(metric(&after, "parley_errors_total{code=\"not_found\"}") >= 1.0);
    assert!(after.contains("parley_send_seconds_bucket"), "the send latency histogram");
    for gauge in ["parley_sessions", "parley_conversation_actors", "parley_db_connections{state=\"max\"}"] {
        assert!(after.lines().any(|l| l.starts_with(gauge)), "{gauge} missing");
    }
    server.stop().await;
}

async fn a_graceful_stop_answers_what_is_in_flight_then_closes_with_1012(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
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

async fn the_web_client_is_served_with_types_and_revalidation(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (path, content_type) in
        [("/", "text/html"), ("/assets/parley.js", "text/javascript"), ("/assets/style.css", "text/css")]
    {
        let mut page = server.client.get(server.url(path)).send().await.expect("GET");
        assert_eq!(page.status(), 200, "{path}");
        let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert!(
            header("content-type").is_some_and(|t| t.starts_with(content_type)),
            "{path}: {:?}",
            header("content-type")
        );
        assert_eq!(header("cache-control").as_deref(), Some("no-cache"), "{path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        let etag = header("etag").expect("etag");
        assert!(!page.body().await.expect("body").is_empty());
        // Revalidation of an unchanged file costs no body.
        let again =
            server.client.get(server.url(path)).insert_header(("If-None-Match", etag.as_str())).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        let head = server.client.head(server.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "{path}: HEAD");
    }
    assert_eq!(server.client.get(server.url("/assets/nothing.js")).send().await.unwrap().status(), 404);
    assert_eq!(server.client.get(server.url("/assets/index.html")).send().await.unwrap().status(), 404);
    server.stop().await;
}
