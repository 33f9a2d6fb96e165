//! Which web pages may use the server: WebSocket upgrades and CORS answers follow the Origin
//! policy.

use crate::common::*;

backends!(websocket_upgrades_follow_the_origin_policy, cors_answers_follow_the_origin_policy,);

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
