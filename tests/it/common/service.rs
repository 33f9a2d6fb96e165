//! The host product's side of an embedded Parley (docs/PROTOCOL.md §7): its service key, the
//! users it provisions, the conversations it opens, the tokens it signs for its users (naming
//! them by its own ids), and a bounded wait for what the archival sweep does in its own time.
//!
//! Every helper takes an [`Http`], so it works on an in-process server (which derefs to one) as
//! on any node of a cluster.

use std::future::Future;
use std::time::{Duration, Instant};

use awc::http::Method;
use serde_json::{Value, json};

use super::{Http, PATIENCE, TestUser, Ws, bearer, now_secs, token_for};

/// The test host's service key (a key is at least 32 characters).
pub const SERVICE_KEY: &str = "host-service-key-7f3a9c2e5b8d1f4a6c0e";

/// The system user: the sender of the service's messages, and of Parley's own when the service
/// or the sweep acts. Never a member.
pub const SYSTEM_USER: &str = "00000000-0000-0000-0000-000000000000";

/// An embedded install: the test host's service key, every policy left to its embedded default.
pub fn embedded(config: &mut parley::config::Config) {
    config.host.service_keys = vec![SERVICE_KEY.into()];
}

/// The host of most of these tests: an embedded Parley whose host names its users by `userId`.
pub fn host(config: &mut parley::config::Config) {
    embedded(config);
    config.host.external_id_claim = Some("userId".into());
}

/// The same host, sweeping every second for conversations a day past their end.
pub fn sweeping_host(config: &mut parley::config::Config) {
    host(config);
    config.host.archive_after_days = Some(1);
    config.host.archive_sweep_secs = 1;
    config.host.archive_batch = 100;
}

/// The host's backend, as a bearer of the service key.
pub fn service() -> TestUser {
    bearer(SERVICE_KEY)
}

async fn service_call(server: &Http, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let what = format!("{method} {path}");
    server.try_request(method, path, Some(&service()), body).await.unwrap_or_else(|err| panic!("{what}: {err}"))
}

/// GET `path` with the service key.
pub async fn service_get(server: &Http, path: &str) -> (u16, Value) {
    service_call(server, Method::GET, path, None).await
}

/// POST `body` to `path` with the service key.
pub async fn service_post(server: &Http, path: &str, body: Value) -> (u16, Value) {
    service_call(server, Method::POST, path, Some(&body)).await
}

/// PUT `body` to `path` with the service key.
pub async fn service_put(server: &Http, path: &str, body: Value) -> (u16, Value) {
    service_call(server, Method::PUT, path, Some(&body)).await
}

/// PATCH `path` with `body` and the service key.
pub async fn service_patch(server: &Http, path: &str, body: Value) -> (u16, Value) {
    service_call(server, Method::PATCH, path, Some(&body)).await
}

/// DELETE `path` with the service key.
pub async fn service_delete(server: &Http, path: &str) -> (u16, Value) {
    service_call(server, Method::DELETE, path, None).await
}

/// Creates or updates the host's user `external_id` with `display_name`
/// (`PUT /api/service/users/{external_id}`); the `ServiceUser`.
pub async fn provision(server: &Http, external_id: &str, display_name: &str) -> Value {
    let path = format!("/api/service/users/{external_id}");
    let (status, user) = service_put(server, &path, json!({"display_name": display_name})).await;
    assert!(status == 201 || status == 200, "provision {external_id}: {status} {user}");
    assert_eq!(user["external_id"], external_id, "{user}");
    assert_eq!(user["display_name"], display_name, "{user}");
    user
}

/// The claims the host signs for its user `user_id` (its own id: a string or a number), in the
/// host's own shape: `userId`, an email and a role of the host's, which Parley ignores. A server
/// reads them with `config.host.external_id_claim = Some("userId".into())`.
pub fn host_claims(user_id: Value) -> Value {
    json!({
        "userId": user_id,
        "email": "someone@host.example",
        "role": "client",
        "iat": now_secs(),
        "exp": now_secs() + 3_600,
    })
}

/// A token the host signs for the user it provisioned (`provisioned`, a `ServiceUser`), as a
/// [`TestUser`] with the user's Parley id.
pub fn host_token(provisioned: &Value) -> TestUser {
    let external_id = provisioned["external_id"].as_str().unwrap_or_else(|| panic!("external_id: {provisioned}"));
    TestUser {
        id: provisioned["id"].as_str().unwrap_or_else(|| panic!("id: {provisioned}")).to_string(),
        username: provisioned["username"].as_str().unwrap_or_else(|| panic!("username: {provisioned}")).to_string(),
        token: token_for(host_claims(json!(external_id))),
    }
}

/// The host's user `external_id`, provisioned with `display_name`, with a token the host signed.
pub async fn host_user(server: &Http, external_id: &str, display_name: &str) -> TestUser {
    host_token(&provision(server, external_id, display_name).await)
}

/// The user `token` signs in as, as `GET /api/me` tells (for a user created on first use); with
/// that `User`.
pub async fn user_of_token(server: &Http, token: String) -> (TestUser, Value) {
    let (status, me) = server.get(Some(&bearer(&token)), "/api/me").await;
    assert_eq!(status, 200, "GET /api/me: {me}");
    let user = TestUser {
        id: me["id"].as_str().expect("id").to_string(),
        username: me["username"].as_str().expect("username").to_string(),
        token,
    };
    (user, me)
}

/// Gets or creates a conversation through the service (`POST /api/service/conversations`);
/// asserts 201 or 200 and returns the `Conversation`.
pub async fn service_conversation(server: &Http, body: Value) -> Value {
    let (status, conversation) = service_post(server, "/api/service/conversations", body.clone()).await;
    assert!(status == 201 || status == 200, "service conversation {body}: {status} {conversation}");
    conversation
}

/// The id of the plain direct conversation the service opens for its users `a` and `b`
/// (external ids).
pub async fn service_direct(server: &Http, a: &str, b: &str) -> String {
    id_of(&service_conversation(server, json!({"kind": "direct", "members": [a, b]})).await)
}

/// The id of a Conversation.
pub fn id_of(conversation: &Value) -> String {
    conversation["id"].as_str().unwrap_or_else(|| panic!("a Conversation, got {conversation}")).to_string()
}

/// The whole history of a conversation as the service reads it, in ascending seq.
pub async fn service_history(server: &Http, conversation: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    loop {
        let after = messages.last().map_or(0, |m: &Value| m["seq"].as_i64().expect("seq"));
        let path = format!("/api/service/conversations/{conversation}/messages?after_seq={after}&limit=200");
        let (status, page) = service_get(server, &path).await;
        assert_eq!(status, 200, "{page}");
        let batch = page["messages"].as_array().unwrap_or_else(|| panic!("a page, got {page}"));
        messages.extend(batch.iter().cloned());
        if batch.is_empty() || page["has_more"] != true {
            return messages;
        }
    }
}

/// The template of a system message; `None` for a text message.
pub fn template(message: &Value) -> Option<&str> {
    message["system"]["template"].as_str()
}

/// The templates of the system messages of `history`, in order.
pub fn templates(history: &[Value]) -> Vec<&str> {
    history.iter().filter_map(template).collect()
}

/// A time `days` from now (negative: in the past), as the protocol writes times.
pub fn days_from_now(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The frames of type `kind` that reached `ws` before the answer to a `ping` sent now, removed
/// from its buffer. Whatever was sent to the session before the ping is queued ahead of the
/// answer, so an empty list says that nothing of the kind had been sent to it.
pub async fn before_ping(ws: &mut Ws, kind: &str) -> Vec<Value> {
    assert_eq!(ws.ack("ping", json!({})).await, json!({}));
    ws.drain(|f| f["type"] == kind)
}

/// Polls `check` until it gives a value, and returns it: for what happens in its own time (the
/// archival sweep). Fails after [`PATIENCE`], saying what it waited for.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not reached within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the service sees the conversation `id` archived; that `Conversation`.
pub async fn archived_eventually(server: &Http, id: &str) -> Value {
    let path = format!("/api/service/conversations/{id}");
    let path = &path;
    eventually(&format!("conversation {id} archived"), move || async move {
        let (status, conversation) = service_get(server, path).await;
        assert_eq!(status, 200, "{conversation}");
        (!conversation["archived_at"].is_null()).then_some(conversation)
    })
    .await
}
