//! What a token's header and lifetime must be: a `crit` header is refused (RFC 7515 §4.1.11:
//! this server understands no extension), and so is a token that lives longer than
//! PARLEY_TOKEN_MAX_LIFETIME_SECS, by `exp - iat` or, without `iat`, by `exp - now`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::*;

backends!(a_crit_header_is_refused, tokens_longer_than_the_maximum_lifetime_are_refused);

fn with_header(header: &Header, claims: &Value) -> TestUser {
    bearer(&jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign"))
}

async fn a_crit_header_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let claims = json!({"sub": fresh_sub(), "exp": now_secs() + 600, "iat": now_secs()});
    let plain = Header::new(Algorithm::HS256);
    assert_eq!(server.get(Some(&with_header(&plain, &claims)), "/api/me").await.0, 200, "the same token without crit");
    for crit in [vec!["exp".to_string()], vec!["http://example.com/unknown".to_string()], vec![]] {
        let header = Header { crit: Some(crit.clone()), ..Header::new(Algorithm::HS256) };
        let got = server.get(Some(&with_header(&header, &claims)), "/api/me").await;
        assert_error(&got, 401, "unauthorized");
        let refused = server.ws_with_token(&with_header(&header, &claims).token).await.err();
        assert_eq!(refused, Some(401), "crit {crit:?} on the WebSocket upgrade");
    }
    server.stop().await;
}

async fn tokens_longer_than_the_maximum_lifetime_are_refused(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.token_ttl_secs = 600;
        config.accounts.token_max_lifetime_secs = 3_600;
    })
    .await;
    let now = now_secs();
    let me = |claims: Value| {
        let user = bearer(&token_for(claims));
        let server = &server;
        async move { server.get(Some(&user), "/api/me").await }
    };
    assert_eq!(me(json!({"sub": fresh_sub(), "exp": now + 3_000, "iat": now})).await.0, 200);
    assert_eq!(me(json!({"sub": fresh_sub(), "exp": now + 3_000})).await.0, 200, "no iat: exp - now counts");
    for claims in [
        json!({"sub": fresh_sub(), "exp": now + 7_200, "iat": now}),
        json!({"sub": fresh_sub(), "exp": now + 7_200}),
        // Issued long ago, with little left: its whole life is what counts.
        json!({"sub": fresh_sub(), "exp": now + 60, "iat": now - 7_200}),
    ] {
        assert_error(&me(claims.clone()).await, 401, "unauthorized");
    }
    // The server's own tokens (PARLEY_TOKEN_TTL_SECS) are within it.
    let alice = server.user("alice").await;
    assert_eq!(server.get(Some(&alice), "/api/me").await.0, 200);
    server.stop().await;
}
