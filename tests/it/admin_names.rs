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

/// Settings that would leave the admin accounts or the server's own tokens broken stop the start,
/// before the database is touched.
#[actix_web::test]
async fn bad_account_settings_refuse_to_start() {
    let refused = |tune: fn(&mut parley::config::Config)| async move {
        let mut config = parley::config::Config::from_env();
        config.database_url = "sqlite://does-not-matter.db".into();
        config.jwt_secret = Some(SECRET.into());
        config.admin_users = vec!["admin".into()];
        tune(&mut config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        parley::start(listener, config).await.err().expect("refused").to_string()
    };
    let err = refused(|config| config.accounts.admin_password_hash = Some("hunter2".into())).await;
    assert!(err.contains("PARLEY_ADMIN_PASSWORD_HASH"), "{err}");
    let err = refused(|config| {
        config.token_ttl_secs = 7_200;
        config.accounts.token_max_lifetime_secs = 3_600;
    })
    .await;
    assert!(err.contains("PARLEY_TOKEN_MAX_LIFETIME_SECS"), "{err}");
    assert!(!std::path::Path::new("does-not-matter.db").exists(), "the database was not touched");
}
