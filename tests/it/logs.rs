//! Logs never carry a token, a password or a message body (the real binary at debug level).

use serde_json::{Value, json};

use crate::common::process::ServerProcess;
use crate::common::raw::*;
use crate::common::*;

backends!(logs_never_contain_a_token_a_password_or_a_message_body,);

/// The server binary at `RUST_LOG=debug`: a user registers and logs in (and fails once) with
/// distinctive passwords, opens a WebSocket with the token in the query string, sends distinctive
/// message bodies over REST and WebSocket, and makes errors (a bad token on REST and on the
/// upgrade, bad frames carrying a body). After SIGTERM the log holds none of the passwords, the
/// tokens (nor their signatures), the bodies or the token secret; and it does hold the start-up
/// line and the debug lines of the session, so it was really capturing.
async fn logs_never_contain_a_token_a_password_or_a_message_body(backend: Backend) {
    let db = FreshDatabase::create(backend).await;
    let secret = "log-test-secret-4b8e1d77a0c3f9e2";
    let password = "Tr0ub4dor&3-hostile-pw-5d1e";
    let other_password = "correct-horse-battery-f00d-91";
    let wrong_password = "wrong-guess-e81c0f77";
    let rest_body = "rest body 7f3a never log me";
    let ws_body = "websocket body 9c4e never log me";
    let bad_frame_body = "bad-frame body 31d7 never log me";
    let garbage_token = "garbage-token-a1b2c3d4e5f6";

    let mut server = ServerProcess::on(
        &db,
        &[("RUST_LOG", "debug"), ("PARLEY_JWT_SECRET", secret), ("PARLEY_SHUTDOWN_TIMEOUT_SECS", "2")],
    )
    .await;
    let addr = server.addr;
    let http = awc::Client::builder().timeout(PATIENCE).finish();
    let base = format!("http://{addr}");

    let req = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = http.request(method.parse().expect("method"), format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let mut response = match body {
                Some(body) => request.send_json(&body).await,
                None => request.send().await,
            }
            .expect("request");
            let bytes = response.body().await.expect("body");
            (response.status().as_u16(), serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };
    let (status, registered) =
        req("POST", "/api/auth/register", None, Some(json!({"username": "logwatcher", "password": password}))).await;
    assert_eq!(status, 201, "{registered}");
    let (status, other) =
        req("POST", "/api/auth/register", None, Some(json!({"username": "other", "password": other_password}))).await;
    assert_eq!(status, 201, "{other}");
    let (status, wrong) =
        req("POST", "/api/auth/login", None, Some(json!({"username": "logwatcher", "password": wrong_password}))).await;
    assert_eq!(status, 401, "{wrong}");
    let (status, logged_in) =
        req("POST", "/api/auth/login", None, Some(json!({"username": "logwatcher", "password": password}))).await;
    assert_eq!(status, 200, "{logged_in}");
    let token = logged_in["token"].as_str().expect("token").to_string();
    let tokens = [
        registered["token"].as_str().expect("token").to_string(),
        token.clone(),
        other["token"].as_str().expect("token").to_string(),
    ];
    let other_id = other["user"]["id"].as_str().expect("id");

    let (status, conversation) =
        req("POST", "/api/conversations", Some(&token), Some(json!({"kind": "direct", "user_id": other_id}))).await;
    assert_eq!(status, 201, "{conversation}");
    let conversation = conversation["id"].as_str().expect("id").to_string();
    let path = format!("/api/conversations/{conversation}/messages");
    let (status, sent) = req("POST", &path, Some(&token), Some(json!({"body": rest_body}))).await;
    assert_eq!(status, 201, "{sent}");

    // Errors: a garbage token, a token with another's signature, on REST and on the upgrade.
    let (status, _) = req("GET", "/api/me", Some(garbage_token), None).await;
    assert_eq!(status, 401);
    let (head, _) = token.rsplit_once('.').expect("a JWT");
    let forged = format!("{head}.{}", tokens[2].rsplit_once('.').expect("a JWT").1);
    let (status, _) = req("GET", "/api/me", Some(&forged), None).await;
    assert_eq!(status, 401);
    let refused = RawWs::try_connect(addr, &format!("/ws?token={garbage_token}"), None).await;
    assert_eq!(refused.err().as_deref().map(|h| &h[..12]), Some("HTTP/1.1 401"));

    // The WebSocket, with the token in the query string as browsers send it.
    let mut ws = RawWs::try_connect(addr, &format!("/ws?token={token}"), None).await.expect("upgrade");
    assert_eq!(ws.text().await["type"], "session:ready");
    let send = json!({"type": "message:send", "ref": "s", "data": {"conversation_id": conversation, "body": ws_body}});
    ws.send(OP_TEXT, true, send.to_string().as_bytes()).await;
    let ack = ws.reply_to(&json!("s")).await;
    assert_eq!((&ack["type"], &ack["data"]["message"]["body"]), (&json!("ack"), &json!(ws_body)), "{ack}");
    let bad = [
        json!({"type": "message:send", "ref": "b1", "data": {"conversation_id": "nope", "body": bad_frame_body}}),
        json!({"type": bad_frame_body, "ref": "b2"}),
        json!({
            "type": "message:send",
            "ref": "b3",
            "data": {"conversation_id": conversation, "body": bad_frame_body, "x": 1},
        }),
    ];
    for frame in &bad {
        ws.send(OP_TEXT, true, frame.to_string().as_bytes()).await;
        let reply = ws.reply_to(&frame["ref"]).await;
        assert_eq!(reply["type"], "error", "{reply}");
    }
    ws.send(OP_TEXT, true, b"not json at all").await;
    let reply = loop {
        let frame = ws.text().await;
        if frame["type"] == "error" {
            break frame;
        }
    };
    assert_eq!(reply["data"]["code"], "bad_request");

    // Stop the server, and read what it wrote.
    server.signal(libc::SIGTERM);
    server.wait_exit(PATIENCE).await;
    let text = server.log();
    drop(db);

    // It was capturing, at debug level: the start-up line, and the session's own debug lines.
    assert!(text.contains("listening on"), "no start-up line in the log:\n{text}");
    assert!(text.contains("opened for user"), "no debug line of the session in the log:\n{text}");
    let mut secrets: Vec<(&str, String)> = vec![
        ("the password", password.into()),
        ("the other password", other_password.into()),
        ("the wrong password", wrong_password.into()),
        ("the REST message body", rest_body.into()),
        ("the WebSocket message body", ws_body.into()),
        ("the body in a bad frame", bad_frame_body.into()),
        ("the garbage token", garbage_token.into()),
        ("the forged token", forged.clone()),
        ("the token secret", secret.into()),
    ];
    for token in &tokens {
        secrets.push(("a token", token.clone()));
        secrets.push(("a token's signature", token.rsplit_once('.').expect("a JWT").1.to_string()));
    }
    for (what, secret) in &secrets {
        let leaks: Vec<&str> = text.lines().filter(|line| line.contains(secret.as_str())).take(3).collect();
        assert!(leaks.is_empty(), "the log contains {what}:\n{}", leaks.join("\n"));
    }
}
