//! What the server refuses to start with (PostgreSQL without a secret, an unknown database
//! scheme), and the secret SQLite generates once and keeps across restarts.

use std::net::TcpListener;

use serde_json::json;

#[actix_web::test]
async fn postgres_without_a_secret_refuses_to_start() {
    let mut config = parley::config::Config::from_env();
    // The refusal comes before any connection: the URL need not name a live server.
    config.database_url = std::env::var("PARLEY_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    config.jwt_secret = None;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = parley::start(listener, config).await.err().expect("refused");
    assert!(err.to_string().contains("PARLEY_JWT_SECRET"), "{err}");
}

#[actix_web::test]
async fn unknown_database_schemes_refuse_to_start() {
    let mut config = parley::config::Config::from_env();
    config.database_url = "mysql://root@localhost/parley".into();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = parley::start(listener, config).await.err().expect("refused");
    assert!(err.to_string().contains("unsupported database URL"), "{err}");
}

#[actix_web::test]
async fn sqlite_keeps_its_generated_secret_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let start = || {
        let mut config = parley::config::Config::from_env();
        config.database_url = format!("sqlite://{}", db.display());
        config.jwt_secret = None;
        config.shutdown_timeout_secs = 1;
        config
    };
    let first = parley::start(TcpListener::bind("127.0.0.1:0").unwrap(), start()).await.expect("starts");
    let client = awc::Client::default();
    let url = |addr: std::net::SocketAddr, path: &str| format!("http://{addr}{path}");
    let mut registered = client
        .post(url(first.addr, "/api/auth/register"))
        .send_json(&json!({"username": "keeper", "password": "orchid-lantern-42"}))
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let token = registered.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    first.stop().await.unwrap();

    let secret_file = dir.path().join("chat.db.jwt-secret");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the secret is readable by its owner only");

    // After a restart, the token issued before still works: the same secret was read back.
    let second = parley::start(TcpListener::bind("127.0.0.1:0").unwrap(), start()).await.expect("restarts");
    let me = client.get(url(second.addr, "/api/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    second.stop().await.unwrap();
}
