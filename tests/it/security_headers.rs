//! The headers that tell a browser what it may do: the web page gets a Content-Security-Policy
//! (scripts from this server only, no framing), `X-Frame-Options` and `Referrer-Policy`; every
//! answer, errors included, `X-Content-Type-Options: nosniff`.

use crate::common::*;

backends!(the_page_and_the_api_send_the_security_headers);

async fn the_page_and_the_api_send_the_security_headers(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;

    let page = server.client.get(server.url("/")).send().await.expect("GET /");
    assert_eq!(page.status().as_u16(), 200);
    let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let policy = header("content-security-policy");
    for part in ["script-src 'self'", "frame-ancestors 'none'", "default-src 'none'", "connect-src 'self'"] {
        assert!(policy.split(';').any(|p| p.trim() == part), "{part:?} missing from {policy:?}");
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-content-type-options"), "nosniff");

    // Every API answer: success, client errors, an unknown route.
    let me = format!("Bearer {}", alice.token);
    for (path, auth, status) in [
        ("/api/me", Some(me.as_str()), 200),
        ("/api/me", None, 401),
        ("/api/nothing", None, 404),
        ("/healthz", None, 200),
    ] {
        let mut request = server.client.get(server.url(path));
        if let Some(auth) = auth {
            request = request.insert_header(("Authorization", auth));
        }
        let answer = request.send().await.expect("a request");
        assert_eq!(answer.status().as_u16(), status, "{path}");
        let nosniff = answer.headers().get("x-content-type-options").and_then(|v| v.to_str().ok());
        assert_eq!(nosniff, Some("nosniff"), "{path} ({status})");
    }
    server.stop().await;
}
