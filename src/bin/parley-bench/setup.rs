//! Users and conversations, made through the REST API before the run (docs/PROTOCOL.md §1, §2):
//! built-in accounts (`/api/auth/register`, or login when the name exists), or HS256 tokens
//! signed with the server's secret, whose users the server creates on first use.

use std::time::Duration;

use awc::Client;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use serde_json::{Value, json};

/// One user of the run.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub id: String,
    pub token: String,
}

/// One conversation and the indices of its members in the user list.
#[derive(Debug, Clone)]
pub struct BenchConversation {
    pub id: String,
    pub members: Vec<usize>,
}

/// An HTTP client with no limit on connections (awc's default pool stops at 100, and a
/// WebSocket keeps its slot for as long as it is open).
pub fn client() -> Client {
    Client::builder()
        .connector(awc::Connector::new().limit(0).timeout(Duration::from_secs(10)))
        .timeout(Duration::from_secs(30))
        .finish()
}

/// Sends one JSON request; the status and the JSON answer (`Null` when empty).
pub async fn request(
    client: &Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut req = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let sent = match body {
        Some(body) => req.send_json(body).await,
        None => req.send().await,
    };
    let mut response = sent.map_err(|err| format!("{method} {url}: {err}"))?;
    let status = response.status().as_u16();
    let bytes = response.body().limit(16 << 20).await.map_err(|err| format!("{method} {url}: {err}"))?;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|err| format!("{method} {url}: {status}, not JSON: {err}"))?
    };
    Ok((status, value))
}

fn expect(status: u16, body: &Value, ok: &[u16], what: &str) -> Result<(), String> {
    if ok.contains(&status) { Ok(()) } else { Err(format!("{what}: HTTP {status} {body}")) }
}

fn field(body: &Value, pointer: &str, what: &str) -> Result<String, String> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("{what}: no {pointer} in {body}"))
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: i64,
    iat: i64,
    name: &'a str,
}

/// A token signed like an identity system would (claims as the server's `auth::tokens`).
pub fn sign(secret: &str, sub: &str, name: &str, lifetime: Duration) -> Result<String, String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let now = i64::try_from(now).map_err(|e| e.to_string())?;
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
    let claims = Claims { sub, exp: now + lifetime, iat: now, name };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|err| format!("signing a token: {err}"))
}

/// How users come to be.
pub enum Identities<'a> {
    /// Tokens signed here; `touch` asks `/api/me` so that the server creates each user now (the
    /// message mode needs them to exist before conversations name them).
    Signed { secret: &'a str, touch: bool },
    /// Built-in accounts named `prefix_i`.
    Accounts { prefix: &'a str },
}

/// Makes `n` users, `concurrency` requests at a time.
pub async fn users(
    client: &Client,
    base: &str,
    how: &Identities<'_>,
    n: usize,
    concurrency: usize,
    lifetime: Duration,
) -> Result<Vec<BenchUser>, String> {
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let made: Vec<Result<BenchUser, String>> = stream::iter(0..n)
        .map(|i| async move {
            match how {
                Identities::Signed { secret, touch } => {
                    let id = uuid::Uuid::new_v4().to_string();
                    let token = sign(secret, &id, &format!("bench-{run}-{i}"), lifetime)?;
                    if *touch {
                        let (status, body) =
                            request(client, "GET", &format!("{base}/api/me"), Some(&token), None).await?;
                        expect(status, &body, &[200], "GET /api/me")?;
                    }
                    Ok(BenchUser { id, token })
                }
                Identities::Accounts { prefix } => account(client, base, &format!("{prefix}_{i}")).await,
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    made.into_iter().collect()
}

/// Registers `username`, or logs in when it exists (a run with the same `--user-prefix`).
async fn account(client: &Client, base: &str, username: &str) -> Result<BenchUser, String> {
    let body = json!({"username": username, "password": format!("pw-{username}-bench")});
    let (status, answer) = request(client, "POST", &format!("{base}/api/auth/register"), None, Some(&body)).await?;
    let answer = if status == 409 {
        let (status, answer) = request(client, "POST", &format!("{base}/api/auth/login"), None, Some(&body)).await?;
        expect(status, &answer, &[200], "POST /api/auth/login")?;
        answer
    } else {
        expect(status, &answer, &[201], "POST /api/auth/register")?;
        answer
    };
    Ok(BenchUser { id: field(&answer, "/user/id", "register")?, token: field(&answer, "/token", "register")? })
}

/// Conversation i has users `i*g .. i*g+g-1`: direct when `g` is 2, else a group owned by the
/// first of them.
pub async fn conversations(
    client: &Client,
    base: &str,
    users: &[BenchUser],
    count: usize,
    g: usize,
    concurrency: usize,
) -> Result<Vec<BenchConversation>, String> {
    let url = format!("{base}/api/conversations");
    let made: Vec<Result<BenchConversation, String>> = stream::iter(0..count)
        .map(|i| {
            let url = &url;
            async move {
                let members: Vec<usize> = (i * g..i * g + g).collect();
                let owner = &users[members[0]];
                let body = if g == 2 {
                    json!({"kind": "direct", "user_id": users[members[1]].id})
                } else {
                    let others: Vec<&str> = members[1..].iter().map(|&m| users[m].id.as_str()).collect();
                    json!({"kind": "group", "title": format!("bench {i}"), "member_ids": others})
                };
                let (status, answer) = request(client, "POST", url, Some(&owner.token), Some(&body)).await?;
                expect(status, &answer, &[200, 201], "POST /api/conversations")?;
                Ok(BenchConversation { id: field(&answer, "/id", "POST /api/conversations")?, members })
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    made.into_iter().collect()
}
