//! Authentication (PROTOCOL.md §1) and the auth rows of §2/§4: built-in accounts, tokens from an
//! identity system, what a bad token gets on REST and on the WebSocket upgrade, the admin role,
//! a WebSocket whose token expires, and the endpoints that need no token.

mod common;

use std::io::{Read, Write};

use common::*;
use serde_json::{Value, json};

backends!(
    register_returns_a_token_and_the_user,
    usernames_follow_the_rules,
    usernames_are_unique_regardless_of_case,
    passwords_are_8_to_256_characters,
    display_name_is_optional_and_at_most_64_characters,
    malformed_bodies_and_unknown_fields_are_bad_requests,
    login_returns_a_token_and_hides_which_part_was_wrong,
    me_needs_a_bearer_token_in_the_header,
    bad_tokens_are_refused_on_rest_and_on_the_websocket_upgrade,
    websocket_takes_the_token_in_the_query_or_the_header,
    identity_system_tokens_create_the_user_on_first_use,
    admin_role_opens_the_admin_endpoints,
    websocket_is_closed_with_4001_when_its_token_expires,
    a_token_is_expired_from_its_exp_second_on,
    info_and_health_checks_need_no_token,
);

/// `(status, body)` is the protocol's error: that status and exactly `{"error": {code, message}}`
/// with a non-empty message. Returns the message.
fn assert_error(got: &(u16, Value), status: u16, code: &str) -> String {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "expected {status} {code}, got {got_status} {body}");
    assert_eq!(body.as_object().map(|o| o.keys().collect::<Vec<_>>()), Some(vec![&"error".to_string()]), "{body}");
    let error = body["error"].as_object().unwrap_or_else(|| panic!("error object: {body}"));
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message"], "{body}");
    assert_eq!(error["code"], code, "{body}");
    let message = error["message"].as_str().expect("message is a string").to_string();
    assert!(!message.trim().is_empty(), "the message says something: {body}");
    message
}

async fn register(server: &TestServer, body: Value) -> (u16, Value) {
    server.post(None, "/api/auth/register", body).await
}

async fn login(server: &TestServer, username: &str, password: &str) -> (u16, Value) {
    server.post(None, "/api/auth/login", json!({"username": username, "password": password})).await
}

/// A user value for `token` (as the harness's helpers take one); id and username are not used.
fn bearer(token: &str) -> TestUser {
    TestUser { id: String::new(), username: String::new(), token: token.to_string() }
}

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

/// POST raw bytes as `application/json`.
async fn post_raw(server: &TestServer, path: &str, raw: &'static str) -> (u16, Value) {
    let mut response = server
        .client
        .post(server.url(path))
        .insert_header(("Content-Type", "application/json"))
        .send_body(raw)
        .await
        .expect("POST");
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

fn base64url_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url: {c}"),
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| acc | (u32::from(value(*c)) << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// The claims of a token, read without checking it.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&base64url_decode(payload)).expect("JSON claims")
}

/// A token with the given header (an HMAC algorithm), signed with `secret`.
fn signed(header: &jsonwebtoken::Header, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(header, claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).expect("sign")
}

fn fresh_sub() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn register_returns_a_token_and_the_user(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, body) =
        register(&server, json!({"username": "Alice", "password": "password123", "display_name": "Alice Liddell"}))
            .await;
    assert_eq!(status, 201, "{body}");
    let user = &body["user"];
    let id = user["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "the id is a UUID: {id}");
    assert_eq!(user["username"], "alice", "usernames are folded to lowercase");
    assert_eq!(user["display_name"], "Alice Liddell");
    let token = body["token"].as_str().expect("token");
    assert_eq!(claims_of(token)["sub"], id, "the token is the new user's");
    assert!(claims_of(token)["exp"].as_i64().expect("exp") > now_secs());

    // The token works, and /api/me answers the same user.
    let (status, me) = server.get(Some(&bearer(token)), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me, json!({"id": id, "username": "alice", "display_name": "Alice Liddell"}));
    server.stop().await;
}

async fn usernames_follow_the_rules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let too_long = "a".repeat(33);
    for bad in ["", "ab", too_long.as_str(), "a b", "émile", "semi;colon", "at@sign", "slash/y", "tab\tname", "ab\u{0}"]
    {
        let got = register(&server, json!({"username": bad, "password": "password123"})).await;
        assert_error(&got, 400, "bad_request");
    }

    // The edges of the rule are accepted: 3 and 32 characters, and every allowed symbol.
    let longest = "z".repeat(32);
    for good in ["abc", longest.as_str(), "a.b_c-9", "0-9", "..."] {
        let (status, body) = register(&server, json!({"username": good, "password": "password123"})).await;
        assert_eq!(status, 201, "{good:?}: {body}");
        assert_eq!(body["user"]["username"], good);
    }
    // Upper-case letters are folded, not refused.
    let (status, body) = register(&server, json!({"username": "MiXeD.Case", "password": "password123"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["username"], "mixed.case");
    assert_eq!(body["user"]["display_name"], "mixed.case");
    server.stop().await;
}

async fn usernames_are_unique_regardless_of_case(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    for taken in ["alice", "ALICE", "Alice"] {
        let got = register(&server, json!({"username": taken, "password": "another-password"})).await;
        assert_error(&got, 409, "conflict");
    }
    // The first account is untouched: its password still signs in, under any case.
    let (status, body) = login(&server, "ALICE", "password123").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], alice.id.as_str());
    assert_error(&login(&server, "alice", "another-password").await, 401, "unauthorized");
    server.stop().await;
}

async fn passwords_are_8_to_256_characters(backend: Backend) {
    let server = TestServer::start(backend).await;
    let cases = [
        ("short7", "1234567".to_string(), 400),
        ("empty", String::new(), 400),
        ("long257", "p".repeat(257), 400),
        // Characters, not bytes: four 2-byte characters are 8 bytes but only 4 characters.
        ("bytes8", "éééé".to_string(), 400),
        ("exact8", "12345678".to_string(), 201),
        ("exact256", "p".repeat(256), 201),
        ("accents8", "éééééééé".to_string(), 201),
    ];
    for (username, password, expected) in &cases {
        let got = register(&server, json!({"username": username, "password": password})).await;
        if *expected == 400 {
            assert_error(&got, 400, "bad_request");
        } else {
            assert_eq!(got.0, 201, "{username}: {}", got.1);
            let (status, body) = login(&server, username, password).await;
            assert_eq!(status, 200, "{username} signs in with that password: {body}");
        }
    }
    // A refused registration created nothing: the name is still free.
    let (status, body) = register(&server, json!({"username": "short7", "password": "long-enough"})).await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
}

async fn display_name_is_optional_and_at_most_64_characters(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, body) = register(&server, json!({"username": "Plain", "password": "password123"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["display_name"], "plain", "defaults to the (folded) username");

    let longest = "é".repeat(64);
    let (status, body) =
        register(&server, json!({"username": "longest", "password": "password123", "display_name": longest})).await;
    assert_eq!(status, 201, "64 characters (128 bytes) is allowed: {body}");
    assert_eq!(body["user"]["display_name"], longest.as_str());

    let got =
        register(&server, json!({"username": "toolong", "password": "password123", "display_name": "x".repeat(65)}))
            .await;
    assert_error(&got, 400, "bad_request");
    // Nothing was created by the refused request.
    let (status, body) = register(&server, json!({"username": "toolong", "password": "password123"})).await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
}

async fn malformed_bodies_and_unknown_fields_are_bad_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    for path in ["/api/auth/register", "/api/auth/login"] {
        for raw in ["{not json", "", "[]", "\"alice\"", "{\"username\": \"alice\", \"password\": "] {
            assert_error(&post_raw(&server, path, raw).await, 400, "bad_request");
        }
        for body in [
            json!({"username": "alice", "password": "password123", "role": "admin"}),
            json!({"username": "alice"}),
            json!({"password": "password123"}),
            json!({"username": 42, "password": "password123"}),
            json!({"username": "alice", "password": ["password123"]}),
        ] {
            assert_error(&server.post(None, path, body).await, 400, "bad_request");
        }
    }
    // None of those created an account: "alice" is free.
    let (status, body) = register(&server, json!({"username": "alice", "password": "password123"})).await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
}

async fn login_returns_a_token_and_hides_which_part_was_wrong(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;

    let (status, body) = login(&server, "alice", "password123").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], json!({"id": alice.id, "username": "alice", "display_name": "alice"}));
    let token = body["token"].as_str().expect("token");
    let (status, me) = server.get(Some(&bearer(token)), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], alice.id.as_str());

    let wrong_password = login(&server, "alice", "password124").await;
    let unknown_user = login(&server, "nobody", "password123").await;
    let message = assert_error(&wrong_password, 401, "unauthorized");
    assert_error(&unknown_user, 401, "unauthorized");
    assert_eq!(unknown_user.1, wrong_password.1, "the same answer, so that usernames cannot be probed");
    assert!(!message.to_lowercase().contains("nobody"), "the message does not echo the username: {message}");
    // A username that could never exist gets the same answer too.
    assert_eq!(login(&server, "x", "password123").await, wrong_password);
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

async fn admin_role_opens_the_admin_endpoints(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin_token = bearer(&token_for(json!({"sub": fresh_sub(), "exp": now_secs() + 3600, "role": "admin"})));
    let (status, actors) = server.get(Some(&admin_token), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    assert!(actors["node_id"].is_string(), "{actors}");
    assert!(actors["sessions"]["count"].is_u64(), "{actors}");
    assert!(actors["conversations"].is_array(), "{actors}");

    for claims in [
        json!({"sub": fresh_sub(), "exp": now_secs() + 3600}),
        json!({"sub": fresh_sub(), "exp": now_secs() + 3600, "role": "user"}),
        json!({"sub": fresh_sub(), "exp": now_secs() + 3600, "role": "Admin"}),
        json!({"sub": fresh_sub(), "exp": now_secs() + 3600, "name": "admin"}),
    ] {
        let got = server.get(Some(&bearer(&token_for(claims.clone()))), "/api/admin/actors").await;
        assert_error(&got, 403, "forbidden");
    }
    let alice = server.user("alice").await;
    assert_eq!(claims_of(&alice.token).get("role"), None, "an ordinary account has no role");
    assert_error(&server.get(Some(&alice), "/api/admin/actors").await, 403, "forbidden");
    assert_error(&server.get(None, "/api/admin/actors").await, 401, "unauthorized");

    // The built-in account named in admin_users gets an admin token, at registration and login.
    assert_eq!(server.config.admin_users, ["admin"]);
    let admin = server.user("admin").await;
    assert_eq!(claims_of(&admin.token)["role"], "admin");
    let (status, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    let (status, body) = login(&server, "admin", "password123").await;
    assert_eq!(status, 200, "{body}");
    let login_token = body["token"].as_str().expect("token");
    assert_eq!(claims_of(login_token)["role"], "admin");
    assert_eq!(server.get(Some(&bearer(login_token)), "/api/admin/actors").await.0, 200);
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
