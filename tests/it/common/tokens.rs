//! Tokens as tests handle them: a user value for a bare token, a fresh subject, the claims of a
//! token read without checking it, and logging in.

use serde_json::{Value, json};

use super::{TestServer, TestUser};

/// A user value for `token` (as the harness's helpers take one); id and username are not used.
pub fn bearer(token: &str) -> TestUser {
    TestUser { id: String::new(), username: String::new(), token: token.to_string() }
}

/// A subject no one has used yet.
pub fn fresh_sub() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `POST /api/auth/login`.
pub async fn login(server: &TestServer, username: &str, password: &str) -> (u16, Value) {
    server.post(None, "/api/auth/login", json!({"username": username, "password": password})).await
}

/// The claims of a token, read without checking it.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&base64url_decode(payload)).expect("JSON claims")
}

pub fn base64url_decode(text: &str) -> Vec<u8> {
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
