//! The login throttle counts exactly the failures its setting allows, and holds up the address
//! that guesses, not the account: an attacker who knows a username cannot keep its owner out.

use serde_json::json;

use crate::common::*;

backends!(a_guessing_address_cannot_lock_the_owner_out);

/// REST from another loopback address (127.0.0.2), as the account's owner elsewhere.
fn from_elsewhere(server: &TestServer) -> Http {
    let connector = awc::Connector::new().local_address("127.0.0.2".parse().expect("address"));
    Http { base: server.base.clone(), client: awc::Client::builder().connector(connector).timeout(PATIENCE).finish() }
}

async fn a_guessing_address_cannot_lock_the_owner_out(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.login_failures = 2).await;
    server.user("alice").await;
    let attempt = |http: &Http, password: &str| {
        let body = json!({"username": "alice", "password": password});
        let http = http.clone();
        async move { http.post(None, "/api/auth/login", body).await }
    };
    // Two failures are allowed (login_failures = 2): the third attempt already waits.
    for _ in 0..2 {
        assert_eq!(attempt(&server, "wrong-guess").await.0, 401);
    }
    let (status, body) = attempt(&server, "wrong-guess").await;
    assert_eq!((status, &body["error"]["code"]), (429, &json!("rate_limited")), "{body}");
    // Meanwhile the owner, from their own address, signs in.
    let (status, body) = attempt(&from_elsewhere(&server), PASSWORD).await;
    assert_eq!(status, 200, "the owner is not locked out: {body}");
    server.stop().await;
}
