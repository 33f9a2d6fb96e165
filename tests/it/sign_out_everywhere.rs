//! Revocation: `POST /api/auth/logout-everywhere` (the user) and
//! `POST /api/admin/users/{id}/logout-everywhere` (an admin) make every token of the user
//! issued until then fail on REST and close their open WebSockets with 4001, as at expiry;
//! signing in again works at once.

use serde_json::json;

use crate::common::*;

backends!(signing_out_everywhere_revokes_every_token_of_the_user, an_admin_signs_any_user_out_everywhere);

async fn signing_out_everywhere_revokes_every_token_of_the_user(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.accounts.revocation_check_ms = 50).await;
    let alice = server.user("alice").await;
    let other_device = server.sign_in("alice").await;
    let bob = server.user("bob").await;
    let mut socket = server.ws(&other_device).await;

    let (status, body) = server.post(Some(&alice), "/api/auth/logout-everywhere", json!({})).await;
    assert_eq!(status, 204, "{body}");
    for token in [&alice, &other_device] {
        assert_error(&server.get(Some(token), "/api/me").await, 401, "unauthorized");
    }
    assert_eq!(socket.closed_with().await, 4001, "the open socket closes as at expiry");
    assert_eq!(server.ws_with_token(&alice.token).await.err(), Some(401));
    assert_eq!(server.get(Some(&bob), "/api/me").await.0, 200, "other users are not touched");

    // A new sign-in, even within the same second, works.
    let again = server.sign_in("alice").await;
    assert_eq!(server.get(Some(&again), "/api/me").await.0, 200);
    server.ws(&again).await.close().await;
    server.stop().await;
}

async fn an_admin_signs_any_user_out_everywhere(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let path = format!("/api/admin/users/{}/logout-everywhere", alice.id);
    assert_error(&server.post(Some(&bob), &path, json!({})).await, 403, "forbidden");
    assert_eq!(server.get(Some(&alice), "/api/me").await.0, 200, "a refused request revokes nothing");

    let root = server.sign_in("admin").await;
    let (status, body) = server.post(Some(&root), &path, json!({})).await;
    assert_eq!(status, 204, "{body}");
    assert_error(&server.get(Some(&alice), "/api/me").await, 401, "unauthorized");
    assert_eq!(server.get(Some(&bob), "/api/me").await.0, 200);
    let nobody = format!("/api/admin/users/{}/logout-everywhere", fresh_sub());
    assert_error(&server.post(Some(&root), &nobody, json!({})).await, 404, "not_found");
    server.stop().await;
}
