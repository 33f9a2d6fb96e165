//! Bearer tokens: where they are taken (the header on REST; the header or the query on the
//! WebSocket upgrade), what a bad or expired one gets, a WebSocket whose token expires (4001),
//! tokens signed by an identity system (HS256 with the shared secret, RS256 and EdDSA with its
//! public key), and the endpoints that need no token.

use std::io::{Read, Write};
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::*;

backends!(
    me_needs_a_bearer_token_in_the_header,
    bad_tokens_are_refused_on_rest_and_on_the_websocket_upgrade,
    websocket_takes_the_token_in_the_query_or_the_header,
    identity_system_tokens_create_the_user_on_first_use,
    websocket_is_closed_with_4001_when_its_token_expires,
    a_token_is_expired_from_its_exp_second_on,
    info_and_health_checks_need_no_token,
    rs256_tokens_from_an_identity_system,
    eddsa_tokens_from_an_identity_system,
);

/// GET `path` with exactly the given `Authorization` header value (or none).
async fn get_with_header(server: &TestServer, path: &str, authorization: Option<&str>) -> (u16, Value) {
    let mut req = server.client.get(server.url(path));
    if let Some(value) = authorization {
        req = req.insert_header(("Authorization", value));
    }
    let mut response = req.send().await.expect("GET");
    let status = response.status().as_u16();
    let bytes = response.body().await.expect("body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    (status, body)
}

/// A WebSocket upgrade over a raw TCP connection, to see exactly what the server answers:
/// the status, whether it switched protocols, and the JSON body (Null when there is none).
async fn raw_upgrade(server: &TestServer, target: &str, authorization: Option<&str>) -> (u16, bool, Value) {
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(value) = authorization {
        request.push_str(&format!("Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    // Blocking I/O on the blocking pool, so the server's actors on this runtime keep running.
    let raw = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream.write_all(request.as_bytes()).expect("send upgrade");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).expect("read the answer in time");
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                if head.starts_with("http/1.1 101") {
                    break;
                }
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().expect("content-length"));
                if let Some(length) = length
                    && raw.len() >= end + 4 + length
                {
                    raw.truncate(end + 4 + length);
                    break;
                }
            }
        }
        raw
    })
    .await
    .expect("raw upgrade");
    let end = find(&raw, b"\r\n\r\n").expect("a complete HTTP head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status: {head}"));
    let upgraded = status == 101 || head.to_ascii_lowercase().contains("upgrade: websocket");
    let body_bytes = &raw[end + 4..];
    let body = if status == 101 || body_bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body_bytes)
            .unwrap_or_else(|_| panic!("JSON body: {}", String::from_utf8_lossy(body_bytes)))
    };
    (status, upgraded, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A token with the given header (an HMAC algorithm), signed with `secret`.
fn signed(header: &jsonwebtoken::Header, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(header, claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).expect("sign")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn signed_with_key(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
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
    let token = signed_with_key(alg, &key, json!({"sub": sub, "exp": now_secs() + 600, "name": "Grace"}));
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
    let forged = signed_with_key(
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

async fn me_needs_a_bearer_token_in_the_header(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    assert_error(&server.get(None, "/api/me").await, 401, "unauthorized");
    // On REST a token in the query string is in the wrong place.
    assert_error(&server.get(None, &format!("/api/me?token={}", alice.token)).await, 401, "unauthorized");
    // So is a token under another scheme, or a bare token.
    assert_error(
        &get_with_header(&server, "/api/me", Some(&format!("Token {}", alice.token))).await,
        401,
        "unauthorized",
    );
    assert_error(&get_with_header(&server, "/api/me", Some(&alice.token)).await, 401, "unauthorized");
    assert_error(&get_with_header(&server, "/api/me", Some("Bearer ")).await, 401, "unauthorized");

    let (status, me) = server.get(Some(&alice), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], alice.id.as_str());
    assert_eq!(me["username"], "alice");
    // Every other authenticated route refuses the anonymous too.
    assert_error(&server.get(None, "/api/conversations").await, 401, "unauthorized");
    assert_error(&server.get(None, &format!("/api/users/{}", alice.id)).await, 401, "unauthorized");
    server.stop().await;
}

async fn bad_tokens_are_refused_on_rest_and_on_the_websocket_upgrade(backend: Backend) {
    let server = TestServer::start(backend).await;
    let now = now_secs();
    let exp = now + 3600;
    let sub = fresh_sub();
    let hs256 = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let valid = token_for(json!({"sub": sub, "exp": exp, "iat": now, "name": "Val"}));

    // A payload with `role: admin` spliced into a valid token: the signature no longer matches.
    let mut parts = valid.split('.');
    let (head, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    let forged_payload = base64url(json!({"sub": sub, "exp": exp, "role": "admin"}).to_string().as_bytes());
    let alg_none_header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = base64url(json!({"sub": fresh_sub(), "exp": exp, "iat": now}).to_string().as_bytes());

    let cases: Vec<(&str, String)> = vec![
        ("garbage", "not-a-token".to_string()),
        ("three garbage parts", "abc.def.ghi".to_string()),
        ("wrong secret", signed(&hs256, &json!({"sub": fresh_sub(), "exp": exp}), "another-secret-entirely")),
        ("expired", token_for(json!({"sub": fresh_sub(), "exp": now - 60, "iat": now - 3600}))),
        ("not yet valid", token_for(json!({"sub": fresh_sub(), "exp": exp, "nbf": now + 3600}))),
        ("no sub", token_for(json!({"exp": exp, "iat": now}))),
        ("no exp", token_for(json!({"sub": fresh_sub(), "iat": now}))),
        ("sub not a UUID", token_for(json!({"sub": "alice", "exp": exp}))),
        ("alg none", format!("{alg_none_header}.{claims}.")),
        (
            "HS512 with the same secret",
            signed(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
                &json!({"sub": fresh_sub(), "exp": exp}),
                SECRET,
            ),
        ),
        ("tampered payload", format!("{head}.{forged_payload}.{signature}")),
        ("valid token cut short", valid[..valid.len() - 4].to_string()),
    ];

    for (what, token) in &cases {
        let rest = get_with_header(&server, "/api/me", Some(&format!("Bearer {token}"))).await;
        assert_eq!(rest.0, 401, "{what}: REST answers 401, got {:?}", rest);
        assert_error(&rest, 401, "unauthorized");
        assert_eq!(server.ws_with_token(token).await.err(), Some(401), "{what}: WebSocket (header) refused with 401");
        assert_eq!(
            server.ws_with_query_token(token).await.err(),
            Some(401),
            "{what}: WebSocket (query) refused with 401"
        );
        let (status, upgraded, body) = raw_upgrade(&server, "/ws", Some(&format!("Bearer {token}"))).await;
        assert_eq!((status, upgraded), (401, false), "{what}: 401 and no WebSocket");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
    }

    // No token at all.
    let (status, upgraded, body) = raw_upgrade(&server, "/ws", None).await;
    assert_eq!((status, upgraded), (401, false), "no token: 401 and no WebSocket");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let (status, upgraded, _) = raw_upgrade(&server, "/ws?token=", None).await;
    assert_eq!((status, upgraded), (401, false), "an empty query token: 401 and no WebSocket");

    // None of the refused tokens created a user; the valid one still works (so the refusals
    // were about the tokens, not the server).
    let (status, me) = server.get(Some(&bearer(&valid)), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["display_name"], "Val");
    let (status, upgraded, _) = raw_upgrade(&server, "/ws", Some(&format!("Bearer {valid}"))).await;
    assert_eq!((status, upgraded), (101, true), "the raw client can upgrade with a valid token");
    server.stop().await;
}

async fn websocket_takes_the_token_in_the_query_or_the_header(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;

    let mut by_query = server.ws_with_query_token(&alice.token).await.expect("?token= is accepted");
    let ready = by_query.event("session:ready").await;
    assert_eq!(ready["user"]["id"], alice.id.as_str());
    assert_eq!(ready["user"]["username"], "alice");
    assert_eq!(ready["heartbeat_ms"], server.config.limits.heartbeat_ms);
    assert!(ready["session_id"].as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()), "{ready}");

    let mut by_header = server.ws_with_token(&alice.token).await.expect("the Authorization header is accepted");
    let ready_too = by_header.event("session:ready").await;
    assert_eq!(ready_too["user"]["id"], alice.id.as_str());
    assert_ne!(ready_too["session_id"], ready["session_id"], "two sessions");

    // Both sessions work.
    assert_eq!(by_query.ack("ping", json!({})).await, json!({}));
    assert_eq!(by_header.ack("ping", json!({})).await, json!({}));
    by_query.close().await;
    by_header.close().await;
    server.stop().await;
}

async fn identity_system_tokens_create_the_user_on_first_use(backend: Backend) {
    let server = TestServer::start(backend).await;
    let zoe_id = fresh_sub();
    let zoe = bearer(&token_for(json!({"sub": zoe_id, "exp": now_secs() + 3600, "name": "Zoe"})));
    let (status, me) = server.get(Some(&zoe), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], zoe_id.as_str());
    assert_eq!(me["display_name"], "Zoe");
    // The second use finds the same user.
    let (status, again) = server.get(Some(&zoe), "/api/me").await;
    assert_eq!((status, &again), (200, &me));

    // Without a name, the id is the display name.
    let anon_id = fresh_sub();
    let anon = bearer(&token_for(json!({"sub": anon_id, "exp": now_secs() + 3600})));
    let (status, me) = server.get(Some(&anon), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], anon_id.as_str());
    assert_eq!(me["display_name"], anon_id.as_str());

    // A user's first use may be a WebSocket.
    let ws_id = fresh_sub();
    let mut ws = server
        .ws_with_token(&token_for(json!({"sub": ws_id, "exp": now_secs() + 3600, "name": "Wes"})))
        .await
        .expect("a first use over WebSocket is accepted");
    let ready = ws.event("session:ready").await;
    assert_eq!(ready["user"]["id"], ws_id.as_str());
    assert_eq!(ready["user"]["display_name"], "Wes");

    // Those users are real: others can find them and talk to them.
    let alice = server.user("alice").await;
    let (status, found) = server.get(Some(&alice), &format!("/api/users/{zoe_id}")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["display_name"], "Zoe");
    let zoe_user = TestUser { id: zoe_id.clone(), username: String::new(), token: zoe.token.clone() };
    let conversation = server.direct(&alice, &zoe_user).await;
    let (status, seen) = server.get(Some(&zoe_user), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["id"], conversation.as_str());
    ws.close().await;
    server.stop().await;
}

async fn websocket_is_closed_with_4001_when_its_token_expires(backend: Backend) {
    let server = TestServer::start(backend).await;
    let sub = fresh_sub();
    let token = token_for(json!({"sub": sub, "exp": now_secs() + 2, "name": "Brief"}));
    let mut ws = server.ws_with_token(&token).await.expect("the token is valid for now");
    let ready = ws.event("session:ready").await;
    assert_eq!(ready["user"]["id"], sub.as_str());
    assert_eq!(ws.ack("ping", json!({})).await, json!({}), "the session works until then");

    assert_eq!(ws.closed_with().await, 4001, "closed with token expired");
    // The same token can no longer open a session, nor call REST.
    assert_eq!(server.ws_with_token(&token).await.err(), Some(401));
    assert_error(&server.get(Some(&bearer(&token)), "/api/me").await, 401, "unauthorized");
    server.stop().await;
}

/// RFC 7519 §4.1.4: a token may be accepted only while the current time is *before* `exp`; in the
/// second `exp` itself it has expired (the server's own 4001 timer closes sessions then, too).
async fn a_token_is_expired_from_its_exp_second_on(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = token_for(json!({"sub": fresh_sub(), "exp": now_secs(), "name": "Last Second"}));
    assert_error(&server.get(Some(&bearer(&token)), "/api/me").await, 401, "unauthorized");
    assert_eq!(server.ws_with_token(&token).await.err(), Some(401), "no WebSocket with a token that has expired");
    server.stop().await;
}

async fn info_and_health_checks_need_no_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, info) = server.get(None, "/api/info").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["name"], "parley");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["protocol"], 1);
    let features = info["features"].as_array().expect("features is a list");
    assert!(!features.is_empty() && features.iter().all(Value::is_string), "{info}");
    assert!(features.contains(&json!("accounts")), "built-in accounts are a feature: {info}");

    let (status, _) = server.get(None, "/healthz").await;
    assert_eq!(status, 200);
    let (status, _) = server.get(None, "/readyz").await;
    assert_eq!(status, 200);
    // A bad token does not get in the way of the open endpoints either.
    for path in ["/api/info", "/healthz", "/readyz"] {
        assert_eq!(get_with_header(&server, path, Some("Bearer garbage")).await.0, 200, "{path}");
    }
    server.stop().await;
}

async fn rs256_tokens_from_an_identity_system(backend: Backend) {
    public_key_tokens(backend, Algorithm::RS256, "rsa-private.pem", "rsa-public.pem").await;
}

async fn eddsa_tokens_from_an_identity_system(backend: Backend) {
    public_key_tokens(backend, Algorithm::EdDSA, "ed25519-private.pem", "ed25519-public.pem").await;
}
