//! The names of PARLEY_ADMIN_USERS cannot be claimed by registering them first, in any case;
//! their accounts come from PARLEY_ADMIN_PASSWORD_HASH, made when the server starts.

use serde_json::json;

use crate::common::*;

backends!(admin_names_cannot_be_registered, admin_accounts_come_from_the_password_hash);

async fn admin_names_cannot_be_registered(backend: Backend) {
    // A fresh server with an admin name and no admin account yet.
    let server = TestServer::start_with(backend, |config| config.accounts.admin_password_hash = None).await;
    for name in ["admin", "ADMIN", "Admin"] {
        let got = server.post(None, "/api/auth/register", json!({"username": name, "password": PASSWORD})).await;
        assert_error(&got, 403, "forbidden");
    }
    // No account holds the name, so nobody signs in with it.
    let got = server.post(None, "/api/auth/login", json!({"username": "admin", "password": PASSWORD})).await;
    assert_error(&got, 401, "unauthorized");
    server.stop().await;
}

async fn admin_accounts_come_from_the_password_hash(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.sign_in("admin").await;
    assert_eq!(claims_of(&admin.token)["role"], "admin");
    assert_eq!(server.get(Some(&admin), "/api/admin/actors").await.0, 200);
    // The name is still not open to registration, now that its account exists.
    let got = server.post(None, "/api/auth/register", json!({"username": "ADMIN", "password": PASSWORD})).await;
    assert_error(&got, 403, "forbidden");
    server.stop().await;
}
