//! An existing identity system signs the tokens (RS256 or EdDSA) and Parley holds its public key;
//! and the start-up rules for secrets and database URLs.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

backends!(rs256_tokens_from_an_identity_system, eddsa_tokens_from_an_identity_system);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn signed(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, key).expect("sign")
}

async fn public_key_tokens(backend: Backend, alg: Algorithm, private: &str, public: &str) {
    let public = fixture(public);
    let server = TestServer::start_with(backend, |config| config.jwt_public_key = Some(public)).await;
    let pem = std::fs::read(fixture(private)).expect("private key");
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    }
    .expect("key");
    let sub = uuid::Uuid::new_v4().to_string();
    let token = signed(alg, &key, json!({"sub": sub, "exp": now_secs() + 600, "name": "Grace"}));
    let user = TestUser { id: sub.clone(), username: sub.clone(), token };

    // The user is created on first use, named from the token.
    let (status, me) = server.get(Some(&user), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["id"].as_str(), me["display_name"].as_str()), (Some(sub.as_str()), Some("Grace")));
    // The WebSocket accepts it too.
    let mut ws = server.ws(&user).await;
    ws.ack("ping", json!({})).await;

    // HS256 tokens of built-in accounts still work beside it.
    let local = server.user("local").await;
    assert_eq!(server.get(Some(&local), "/api/me").await.0, 200);

    // A token signed with another key of the same kind, or carrying a different algorithm than
    // the configured key's, is refused.
    let forged = signed(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"not the secret"),
        json!({"sub": sub, "exp": now_secs() + 600}),
    );
    let intruder = TestUser { token: forged, ..user.clone() };
    assert_eq!(server.get(Some(&intruder), "/api/me").await.0, 401);
    let other_alg = if alg == Algorithm::RS256 { Algorithm::RS384 } else { Algorithm::ES256 };
    let (_, rest) = user.token.split_once('.').expect("jwt");
    let header = serde_json::to_vec(&json!({"alg": format!("{other_alg:?}"), "typ": "JWT"})).unwrap();
    let relabelled = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
    let intruder = TestUser { token: relabelled, ..user };
    assert_eq!(server.get(Some(&intruder), "/api/me").await.0, 401);
    server.stop().await;
}

async fn rs256_tokens_from_an_identity_system(backend: Backend) {
    public_key_tokens(backend, Algorithm::RS256, "rsa-private.pem", "rsa-public.pem").await;
}

async fn eddsa_tokens_from_an_identity_system(backend: Backend) {
    public_key_tokens(backend, Algorithm::EdDSA, "ed25519-private.pem", "ed25519-public.pem").await;
}

#[actix_web::test]
async fn postgres_without_a_secret_refuses_to_start() {
    let mut config = parley::config::Config::from_env();
    config.database_url = postgres_url().unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
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
        .send_json(&json!({"username": "keeper", "password": "password123"}))
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
