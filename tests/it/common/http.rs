//! REST against any server: an in-process `TestServer` (which derefs to its `Http`), a node of
//! a cluster, or a `parley` process (the tests that kill one).

use std::time::{Duration, Instant};

use awc::Client;
use awc::http::Method;
use serde_json::{Value, json};

use super::{PATIENCE, TestUser, now_secs, token_for};

/// A token with `role: admin`, for `/api/admin/*` on any node.
pub fn admin() -> TestUser {
    let id = uuid::Uuid::new_v4().to_string();
    let token =
        token_for(json!({"sub": id, "exp": now_secs() + 3_600, "iat": now_secs(), "name": "root", "role": "admin"}));
    TestUser { id, username: "root".into(), token }
}

/// REST against one server.
#[derive(Clone)]
pub struct Http {
    /// `http://host:port`.
    pub base: String,
    /// For requests the helpers below do not make (other content types, headers).
    pub client: Client,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http { base: base.to_string(), client: Client::builder().timeout(PATIENCE).finish() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        user: Option<&TestUser>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        let mut response = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        }
        .map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.body().limit(64 << 20).await.map_err(|err| err.to_string())?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|err| format!("not JSON ({err}): {bytes:?}"))?
        };
        Ok((status, body))
    }

    pub async fn get(&self, user: Option<&TestUser>, path: &str) -> (u16, Value) {
        self.try_request(Method::GET, path, user, None).await.unwrap_or_else(|err| panic!("GET {path}: {err}"))
    }

    pub async fn post(&self, user: Option<&TestUser>, path: &str, body: Value) -> (u16, Value) {
        self.try_request(Method::POST, path, user, Some(&body)).await.unwrap_or_else(|err| panic!("POST {path}: {err}"))
    }

    pub async fn delete(&self, user: Option<&TestUser>, path: &str) -> (u16, Value) {
        self.try_request(Method::DELETE, path, user, None).await.unwrap_or_else(|err| panic!("DELETE {path}: {err}"))
    }

    /// POST `body` as it is, with `content_type`; the status and the raw answer.
    pub async fn post_text(&self, token: Option<&str>, path: &str, content_type: &str, body: String) -> (u16, Vec<u8>) {
        let mut request = self.client.post(self.url(path)).insert_header(("Content-Type", content_type));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send_body(body).await.unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let bytes = response.body().limit(1 << 20).await.expect("answer body");
        (response.status().as_u16(), bytes.to_vec())
    }

    /// GET, the status and the raw answer.
    pub async fn get_text(&self, token: Option<&str>, path: &str) -> (u16, Vec<u8>) {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let bytes = response.body().limit(16 << 20).await.expect("answer body");
        (response.status().as_u16(), bytes.to_vec())
    }

    /// Registers `username` (password "orchid-lantern-42").
    pub async fn user(&self, username: &str) -> TestUser {
        let (status, body) =
            self.post(None, "/api/auth/register", json!({"username": username, "password": super::PASSWORD})).await;
        assert_eq!(status, 201, "register {username}: {body}");
        TestUser::from_session(&body)
    }

    /// Signs in an account that exists (the admin, made at start), with the test password.
    pub async fn sign_in(&self, username: &str) -> TestUser {
        let (status, body) =
            self.post(None, "/api/auth/login", json!({"username": username, "password": super::PASSWORD})).await;
        assert_eq!(status, 200, "login {username}: {body}");
        TestUser::from_session(&body)
    }

    /// Gets or creates the direct conversation of `a` and `b`; returns its id.
    pub async fn direct(&self, a: &TestUser, b: &TestUser) -> String {
        let (status, body) = self.post(Some(a), "/api/conversations", json!({"kind": "direct", "user_id": b.id})).await;
        assert!(status == 201 || status == 200, "direct conversation: {status} {body}");
        body["id"].as_str().expect("conversation id").to_string()
    }

    /// Creates a group of `owner` with `members`; returns its id.
    pub async fn group(&self, owner: &TestUser, title: &str, members: &[&TestUser]) -> String {
        let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
        let (status, body) = self
            .post(Some(owner), "/api/conversations", json!({"kind": "group", "title": title, "member_ids": ids}))
            .await;
        assert_eq!(status, 201, "create group: {body}");
        body["id"].as_str().expect("conversation id").to_string()
    }

    /// The text of `/metrics`. An in-process server's counters are process-wide: every test of
    /// this binary adds to them (a test that counts exactly runs a server process of its own).
    pub async fn metrics(&self) -> String {
        let mut response = self.client.get(self.url("/metrics")).send().await.expect("metrics");
        assert_eq!(response.status(), 200);
        String::from_utf8(response.body().limit(16 << 20).await.expect("body").to_vec()).expect("text")
    }

    /// Polls `GET /readyz` until `done(status, body)` holds; returns that body. Fails after
    /// [`PATIENCE`], saying what it waited for.
    pub async fn wait_readyz(&self, what: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let outcome = self.try_request(Method::GET, "/readyz", None, None).await;
            if let Ok((status, body)) = &outcome
                && done(*status, body)
            {
                return body.clone();
            }
            assert!(Instant::now() < deadline, "{what}: not reached, {}/readyz says {outcome:?}", self.base);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls `GET /api/admin/actors` until `done` holds; returns that answer.
    pub async fn wait_actors(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let admin = admin();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, actors) = self.get(Some(&admin), "/api/admin/actors").await;
            assert_eq!(status, 200, "{actors}");
            if done(&actors) {
                return actors;
            }
            assert!(Instant::now() < deadline, "{what}: not reached, {}/api/admin/actors says {actors}", self.base);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The whole history of a conversation, page after page, in ascending seq.
    pub async fn history(&self, user: &TestUser, conversation: &str) -> Vec<Value> {
        let mut messages = Vec::new();
        loop {
            let after = messages.last().map_or(0, |m: &Value| m["seq"].as_i64().expect("seq"));
            let path = format!("/api/conversations/{conversation}/messages?after_seq={after}&limit=200");
            let (status, page) = self.get(Some(user), &path).await;
            assert_eq!(status, 200, "{page}");
            let batch = page["messages"].as_array().expect("messages");
            messages.extend(batch.iter().cloned());
            if batch.is_empty() || page["has_more"] != true {
                return messages;
            }
        }
    }
}

/// The POST endpoints, on `conversation`, with the token each needs.
pub fn post_endpoints<'a>(user: &'a TestUser, conversation: &str) -> Vec<(String, Option<&'a str>)> {
    let token = Some(user.token.as_str());
    vec![
        ("/api/auth/register".into(), None),
        ("/api/auth/login".into(), None),
        ("/api/conversations".into(), token),
        (format!("/api/conversations/{conversation}/members"), token),
        (format!("/api/conversations/{conversation}/messages"), token),
        (format!("/api/conversations/{conversation}/read"), token),
        (format!("/api/conversations/{conversation}/unread"), token),
    ]
}
