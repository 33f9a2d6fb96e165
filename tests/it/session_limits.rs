//! Caps on WebSocket sessions: per user and per client address, refused at the upgrade with
//! 429 `rate_limited`; behind a trusted proxy the address is the client's from
//! `X-Forwarded-For`, and from anyone else that header is ignored.

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::raw::read_answer;
use crate::common::*;

backends!(
    a_user_over_the_session_cap_is_refused_at_the_upgrade,
    an_address_over_the_session_cap_is_refused_at_the_upgrade,
    behind_a_trusted_proxy_sessions_count_by_forwarded_address,
);

/// The upgrade request for `token`, with an `X-Forwarded-For` when given; the answer's head and
/// body when refused.
async fn refused_upgrade(server: &TestServer, token: &str, forwarded_for: Option<&str>) -> (String, Value) {
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let forwarded = forwarded_for.map(|ip| format!("X-Forwarded-For: {ip}\r\n")).unwrap_or_default();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: parley\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n{forwarded}\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send the upgrade");
    let (head, body) = read_answer(&mut stream).await.expect("an answer");
    assert!(!head.starts_with("HTTP/1.1 101"), "upgraded: {head}");
    (head, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn assert_rate_limited((head, body): &(String, Value)) {
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert_eq!(code(body), "rate_limited", "{body}");
    assert!(body["error"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{body}");
}

/// Opens a session for `user`, with `X-Forwarded-For: forwarded_for` when given.
async fn session(server: &TestServer, user: &TestUser, forwarded_for: Option<&str>) -> Result<Ws, u16> {
    server
        .ws_adjusted(&user.token, |request| match forwarded_for {
            Some(ip) => request.header("X-Forwarded-For", ip),
            None => request,
        })
        .await
}

async fn a_user_over_the_session_cap_is_refused_at_the_upgrade(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.exposure.max_sessions_per_user = 2).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let first = server.ws(&alice).await;
    let _second = server.ws(&alice).await;

    assert_rate_limited(&refused_upgrade(&server, &alice.token, None).await);
    // Another user has places of their own.
    let _b = server.ws(&bob).await;
    // A session that ends gives its place back.
    first.close().await;
    let deadline = std::time::Instant::now() + PATIENCE;
    while session(&server, &alice, None).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the place of a closed session was not given back");
        tokio::task::yield_now().await;
    }
    assert!(metric(&server.metrics().await, "parley_refused_total{limit=\"sessions_per_user\"}") >= 1.0);
    server.stop().await;
}

async fn an_address_over_the_session_cap_is_refused_at_the_upgrade(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.exposure.max_sessions_per_address = 2).await;
    let users = [server.user("ann").await, server.user("ben").await, server.user("cat").await];
    let _a = server.ws(&users[0]).await;
    let _b = server.ws(&users[1]).await;
    assert_rate_limited(&refused_upgrade(&server, &users[2].token, None).await);
    // No proxy is trusted: a forwarded address the client wrote itself changes nothing.
    assert_rate_limited(&refused_upgrade(&server, &users[2].token, Some("203.0.113.7")).await);
    assert!(metric(&server.metrics().await, "parley_refused_total{limit=\"sessions_per_address\"}") >= 1.0);
    server.stop().await;
}

async fn behind_a_trusted_proxy_sessions_count_by_forwarded_address(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.exposure.max_sessions_per_address = 2;
        config.exposure.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let users = [server.user("ann").await, server.user("ben").await, server.user("cat").await];
    // Two clients behind the proxy (the test plays it): each has its own two places.
    let _a1 = session(&server, &users[0], Some("203.0.113.7")).await.expect("first of .7");
    let _a2 = session(&server, &users[1], Some("203.0.113.7")).await.expect("second of .7");
    assert_rate_limited(&refused_upgrade(&server, &users[2].token, Some("203.0.113.7")).await);
    let _b1 = session(&server, &users[2], Some("203.0.113.8")).await.expect("first of .8");
    // The chain is read from the right: what the client wrote on the left proves nothing.
    assert_rate_limited(&refused_upgrade(&server, &users[2].token, Some("198.51.100.1, 203.0.113.7")).await);
    server.stop().await;
}
