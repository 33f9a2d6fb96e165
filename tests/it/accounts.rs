//! Built-in accounts: registration and the rules for usernames, passwords and display names,
//! malformed bodies, login (which never says which part was wrong), and the throttle that
//! slows down password guessing.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    register_returns_a_token_and_the_user,
    usernames_follow_the_rules,
    usernames_are_unique_regardless_of_case,
    passwords_are_8_to_256_characters,
    display_name_is_optional_and_at_most_64_characters,
    malformed_bodies_and_unknown_fields_are_bad_requests,
    login_returns_a_token_and_hides_which_part_was_wrong,
    repeated_failed_logins_are_slowed_down,
);

async fn register(server: &TestServer, body: Value) -> (u16, Value) {
    server.post(None, "/api/auth/register", body).await
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

async fn register_returns_a_token_and_the_user(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, body) = register(
        &server,
        json!({"username": "Alice", "password": "orchid-lantern-42", "display_name": "Alice Liddell"}),
    )
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
        let got = register(&server, json!({"username": bad, "password": "orchid-lantern-42"})).await;
        assert_error(&got, 400, "bad_request");
    }

    // The edges of the rule are accepted: 3 and 32 characters, and every allowed symbol.
    let longest = "z".repeat(32);
    for good in ["abc", longest.as_str(), "a.b_c-9", "0-9", "..."] {
        let (status, body) = register(&server, json!({"username": good, "password": "orchid-lantern-42"})).await;
        assert_eq!(status, 201, "{good:?}: {body}");
        assert_eq!(body["user"]["username"], good);
    }
    // Upper-case letters are folded, not refused.
    let (status, body) = register(&server, json!({"username": "MiXeD.Case", "password": "orchid-lantern-42"})).await;
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
    let (status, body) = login(&server, "ALICE", "orchid-lantern-42").await;
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
        // (Not common ones: `weak_passwords` tests those.)
        ("exact8", "k7#Vq2!x".to_string(), 201),
        ("exact256", format!("{}{}", "orchid-lantern-42-".repeat(13), "x".repeat(22)), 201),
        ("accents8", "éàüöçñîô".to_string(), 201),
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
    let (status, body) = register(&server, json!({"username": "Plain", "password": "orchid-lantern-42"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["display_name"], "plain", "defaults to the (folded) username");

    let longest = "é".repeat(64);
    let (status, body) =
        register(&server, json!({"username": "longest", "password": "orchid-lantern-42", "display_name": longest}))
            .await;
    assert_eq!(status, 201, "64 characters (128 bytes) is allowed: {body}");
    assert_eq!(body["user"]["display_name"], longest.as_str());

    let got = register(
        &server,
        json!({"username": "toolong", "password": "orchid-lantern-42", "display_name": "x".repeat(65)}),
    )
    .await;
    assert_error(&got, 400, "bad_request");
    // Nothing was created by the refused request.
    let (status, body) = register(&server, json!({"username": "toolong", "password": "orchid-lantern-42"})).await;
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
            json!({"username": "alice", "password": "orchid-lantern-42", "role": "admin"}),
            json!({"username": "alice"}),
            json!({"password": "orchid-lantern-42"}),
            json!({"username": 42, "password": "orchid-lantern-42"}),
            json!({"username": "alice", "password": ["orchid-lantern-42"]}),
        ] {
            assert_error(&server.post(None, path, body).await, 400, "bad_request");
        }
    }
    // None of those created an account: "alice" is free.
    let (status, body) = register(&server, json!({"username": "alice", "password": "orchid-lantern-42"})).await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
}

async fn login_returns_a_token_and_hides_which_part_was_wrong(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;

    let (status, body) = login(&server, "alice", "orchid-lantern-42").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], json!({"id": alice.id, "username": "alice", "display_name": "alice"}));
    let token = body["token"].as_str().expect("token");
    let (status, me) = server.get(Some(&bearer(token)), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], alice.id.as_str());

    let wrong_password = login(&server, "alice", "password124").await;
    let unknown_user = login(&server, "nobody", "orchid-lantern-42").await;
    let message = assert_error(&wrong_password, 401, "unauthorized");
    assert_error(&unknown_user, 401, "unauthorized");
    assert_eq!(unknown_user.1, wrong_password.1, "the same answer, so that usernames cannot be probed");
    assert!(!message.to_lowercase().contains("nobody"), "the message does not echo the username: {message}");
    // A username that could never exist gets the same answer too.
    assert_eq!(login(&server, "x", "orchid-lantern-42").await, wrong_password);
    server.stop().await;
}

async fn repeated_failed_logins_are_slowed_down(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.login_failures = 3).await;
    server.user("alice").await;
    let login = |password: &'static str| {
        server.post(None, "/api/auth/login", json!({"username": "alice", "password": password}))
    };
    // Three failures are free (login_failures = 3); the fourth attempt waits, even with the
    // right password.
    for _ in 0..3 {
        assert_eq!(login("wrong-password").await.0, 401);
    }
    let (status, body) = login("orchid-lantern-42").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let wait = body["error"]["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!((1..=1000).contains(&wait), "{wait}");
    // Another account is not held up by it.
    server.user("bob").await;
    let (status, _) =
        server.post(None, "/api/auth/login", json!({"username": "bob", "password": "orchid-lantern-42"})).await;
    assert_eq!(status, 200);
    // After the wait, the right password gets in and clears the record.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = login("orchid-lantern-42").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(std::time::Instant::now() < deadline, "still blocked");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(
            body["error"]["retry_after_ms"].as_u64().unwrap_or(100),
        ))
        .await;
    }
    assert_eq!(login("wrong-password").await.0, 401, "a fresh record: one failure is free again");
    server.stop().await;
}
