//! Random input against a real server: random REST bodies and query strings, and random
//! WebSocket frames, each get a success or a clear client error (never a 5xx, never
//! `internal`); values one database cannot store get a clear answer too. The JSON strategies
//! are shared with the decoder's fuzz (`tests/fuzz/`).

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use strategies::*;

use crate::common::*;

#[path = "../fuzz/json.rs"]
mod strategies;

backends!(
    random_rest_bodies_and_queries_get_a_success_or_a_clear_client_error,
    random_websocket_frames_get_an_ack_or_a_clear_error,
    values_a_database_cannot_store_get_a_clear_answer,
);

/// Random requests per endpoint.
const REST_CASES: usize = 100;

/// The ids a fuzzed body may name, so that some of them are valid and reach the database.
struct Known {
    users: Vec<String>,
    conversations: Vec<String>,
}

/// A value for the field `field` of a REST body: often plausible (a real id, a valid username),
/// often hostile (NUL, huge numbers, wrong types).
fn field_value(field: &str, known: &Known) -> BoxedStrategy<Value> {
    let user = prop::sample::select(known.users.clone()).prop_map(Value::String);
    let conversation = prop::sample::select(known.conversations.clone()).prop_map(Value::String);
    let plausible: BoxedStrategy<Value> = match field {
        "username" => prop_oneof![
            "[a-z0-9._-]{3,32}".prop_map(Value::String),
            Just(json!("alice")),
            Just(json!("ALICE")),
            text().prop_map(Value::String),
        ]
        .boxed(),
        "password" => prop_oneof![
            Just(json!("orchid-lantern-42")),
            "[ -~]{8,40}".prop_map(Value::String),
            text().prop_map(Value::String),
        ]
        .boxed(),
        "kind" => prop::sample::select(vec!["direct", "group", "channel", "Group", ""]).prop_map(|k| json!(k)).boxed(),
        "member_ids" => prop_oneof![
            prop::collection::vec(user.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(json_value(), 0..3).prop_map(Value::Array),
        ]
        .boxed(),
        "user_id" => prop_oneof![3 => user, 1 => uuid().prop_map(|u| json!(u))].boxed(),
        "conversation_id" => prop_oneof![3 => conversation.clone(), 1 => uuid().prop_map(|u| json!(u))].boxed(),
        "conversations" => prop::collection::vec(
            (prop_oneof![3 => conversation, 1 => uuid().prop_map(|u| json!(u))], number())
                .prop_map(|(c, after)| json!({"conversation_id": c, "after_seq": after})),
            0..4,
        )
        .prop_map(Value::Array)
        .boxed(),
        "user_ids" => prop::collection::vec(user, 0..5).prop_map(Value::Array).boxed(),
        "seq" | "limit" | "after_seq" => number(),
        _ => text().prop_map(Value::String).boxed(),
    };
    prop_oneof![3 => plausible, 1 => json_value()].boxed()
}

/// An object with `fields`, each present most of the time, plus now and then a stranger.
fn shaped_object(fields: &[&str], known: &Known) -> BoxedStrategy<Value> {
    let pairs: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .iter()
        .map(|&f| {
            let name = f.to_string();
            prop::option::weighted(0.85, field_value(f, known).prop_map(move |v| (name.clone(), v))).boxed()
        })
        .chain(std::iter::once(prop::option::weighted(0.1, (key(), json_value())).boxed()))
        .collect();
    pairs.prop_map(|pairs| Value::Object(pairs.into_iter().flatten().collect())).boxed()
}

/// A REST body: arbitrary JSON, an object with the endpoint's own fields (each present most of
/// the time, plus now and then a stranger), a truncated one, or arbitrary text; with a JSON
/// content type most of the time.
fn rest_body(fields: &[&str], known: &Known) -> BoxedStrategy<(String, String)> {
    let shaped = shaped_object(fields, known).prop_map(|object| object.to_string()).boxed();
    let body = prop_oneof![
        3 => shaped.clone(),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => (shaped, any::<prop::sample::Index>()).prop_map(|(text, cut)| {
            let end = (0..=cut.index(text.len() + 1)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text[..end].to_string()
        }),
        1 => any::<String>(),
    ];
    let content_type = prop::sample::select(vec![
        "application/json",
        "application/json",
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
    ]);
    (content_type.prop_map(String::from), body).boxed()
}

/// Percent-encodes everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query string: the endpoint's parameters (and strangers) with numbers at the edges, cursors
/// with out-of-range times, arbitrary text, and broken percent-encoding.
fn query_string(params: &[&str]) -> BoxedStrategy<String> {
    let mut keys: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    keys.extend(["x".to_string(), "token".to_string(), String::new()]);
    let value = prop_oneof![
        3 => number().prop_map(|n| percent_encode(&n.to_string())),
        2 => (any::<i64>(), uuid()).prop_map(|(micros, id)| format!("{micros}_{id}")),
        2 => text().prop_map(|t| percent_encode(&t)),
        1 => prop::sample::select(vec![
            "", "%", "%zz", "%FF%FE", "%00", "%C0%AF", "+", "1e3", "-0", "+5", "%205", "0x10", "9223372036854775808",
            "-9223372036854775809", "1.5", "null", "true", "_", "1_", "_x",
        ])
        .prop_map(String::from),
    ];
    let pair = (prop::sample::select(keys), value, any::<bool>()).prop_map(|(k, v, bare)| {
        // Now and then a key alone, as `?limit`.
        if bare && v.is_empty() { k } else { format!("{k}={v}") }
    });
    prop::collection::vec(pair, 0..5)
        .prop_map(|pairs| pairs.join("&"))
        .prop_map(|q| if q.is_empty() { q } else { format!("?{q}") })
        .boxed()
}

/// Random frames per WebSocket session.
const WS_CASES: usize = 300;

/// The fields of each command's `data`.
fn command_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "message:send" => &["conversation_id", "body", "client_id"],
        "conversation:join" => &["conversation_id", "limit"],
        "conversation:leave" | "typing:start" | "typing:stop" => &["conversation_id"],
        "read:mark" => &["conversation_id", "seq"],
        "sync" => &["conversations", "limit"],
        "presence:query" => &["user_ids"],
        _ => &[],
    }
}

/// A hundred random bodies to each POST endpoint and a hundred random query strings to each GET
/// endpoint with parameters: every answer is a 2xx or a clear 4xx, never a 5xx, and afterwards
/// the server still answers and still works.
async fn random_rest_bodies_and_queries_get_a_success_or_a_clear_client_error(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        // Let valid sends reach the database rather than the rate limit.
        config.limits.rate_per_sec = 100_000.0;
        config.limits.rate_burst = 100_000.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let direct = server.direct(&alice, &bob).await;
    let group = server.group(&alice, "fuzz", &[&bob]).await;
    for body in ["one", "two", "three"] {
        for conversation in [&direct, &group] {
            let path = format!("/api/conversations/{conversation}/messages");
            let (status, sent) = server.post(Some(&bob), &path, json!({"body": body})).await;
            assert_eq!(status, 201, "{sent}");
        }
    }
    let known = Known {
        users: vec![alice.id.clone(), bob.id.clone(), carol.id.clone(), uuid::Uuid::new_v4().to_string()],
        conversations: vec![direct.clone(), group.clone(), uuid::Uuid::new_v4().to_string()],
    };

    let posts: Vec<(String, Option<&str>, &[&str])> = vec![
        ("/api/auth/register".into(), None, &["username", "password", "display_name"]),
        ("/api/auth/login".into(), None, &["username", "password"]),
        ("/api/conversations".into(), Some(&alice.token), &["kind", "user_id", "title", "member_ids"]),
        (format!("/api/conversations/{group}/members"), Some(&alice.token), &["user_id"]),
        (format!("/api/conversations/{direct}/messages"), Some(&alice.token), &["body", "client_id"]),
        (format!("/api/conversations/{direct}/read"), Some(&alice.token), &["seq"]),
        (format!("/api/conversations/{group}/unread"), Some(&alice.token), &["seq"]),
    ];
    let gets: Vec<(String, &[&str])> = vec![
        ("/api/users".into(), &["q", "limit"]),
        ("/api/conversations".into(), &["limit", "before"]),
        (format!("/api/conversations/{direct}/messages"), &["before_seq", "after_seq", "limit"]),
    ];

    // A fixed seed: a failure names its case and happens again on the next run.
    let mut runner = TestRunner::deterministic();
    let mut failures: Vec<String> = Vec::new();
    let mut successes = 0;
    for (path, token, fields) in &posts {
        let strategy = rest_body(fields, &known);
        for case in 0..REST_CASES {
            let (content_type, body) = strategy.new_tree(&mut runner).expect("a body").current();
            let (status, answer) = server.post_text(*token, path, &content_type, body.clone()).await;
            successes += usize::from((200..300).contains(&status));
            if let Err(problem) = check_answer(status, &answer) {
                let shown: String = body.chars().take(300).collect();
                failures.push(format!("POST {path} #{case} ({content_type}) {shown:?}: {problem}"));
            }
        }
    }
    for (path, params) in &gets {
        let strategy = query_string(params);
        for case in 0..REST_CASES {
            let query = strategy.new_tree(&mut runner).expect("a query").current();
            let target = format!("{path}{query}");
            let (status, answer) = server.get_text(Some(&alice.token), &target).await;
            successes += usize::from((200..300).contains(&status));
            if let Err(problem) = check_answer(status, &answer) {
                failures.push(format!("GET {target} #{case}: {problem}"));
            }
        }
    }

    // Still alive, and still working.
    let (status, _) = server.get_text(None, "/healthz").await;
    assert_eq!(status, 200, "the server stopped answering");
    let (status, sent) =
        server.post(Some(&bob), &format!("/api/conversations/{direct}/messages"), json!({"body": "still here"})).await;
    assert_eq!(status, 201, "{sent}");
    assert!(
        failures.is_empty(),
        "{} of {} random requests got an answer outside the protocol:\n{}",
        failures.len(),
        REST_CASES * (posts.len() + gets.len()),
        failures.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
    // The generator is not only producing garbage: a good share of requests went through.
    assert!(successes >= REST_CASES, "only {successes} random requests succeeded");
    server.stop().await;
}

/// Three hundred frames of random commands (known types, and now and then an unknown one) with
/// random `data` (mostly the command's own fields, naming real conversations and users) on one
/// live session: each gets exactly its reply, an `ack` or an `error` with a protocol code that
/// is not `internal`, and the session stays open.
async fn random_websocket_frames_get_an_ack_or_a_clear_error(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_per_sec = 100_000.0;
        config.limits.rate_burst = 100_000.0;
        config.limits.max_frames_per_sec = 100_000.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let direct = server.direct(&alice, &bob).await;
    let group = server.group(&alice, "fuzz", &[&bob]).await;
    let outside = server.direct(&bob, &carol).await;
    let known = Known {
        users: vec![alice.id.clone(), bob.id.clone(), carol.id.clone(), uuid::Uuid::new_v4().to_string()],
        // Alice's own conversations twice as often as the others.
        conversations: vec![
            direct.clone(),
            group.clone(),
            direct.clone(),
            group.clone(),
            outside,
            uuid::Uuid::new_v4().to_string(),
        ],
    };
    // Sends more often than the rest: they go the longest way (actor, database, broadcast).
    let kind = prop_oneof![
        3 => Just("message:send".to_string()),
        9 => prop::sample::select(COMMANDS).prop_map(String::from),
        1 => text(),
    ];
    let strategy = kind.prop_flat_map(move |kind| {
        let fields = command_fields(&kind);
        let data = prop_oneof![4 => shaped_object(fields, &known), 1 => json_value()];
        (Just(kind), prop::option::weighted(0.95, data))
    });
    let mut a = server.ws(&alice).await;
    let mut runner = TestRunner::deterministic();
    let mut failures = Vec::new();
    let mut acks = 0;
    for case in 0..WS_CASES {
        let (kind, data) = strategy.new_tree(&mut runner).expect("a frame").current();
        let reference = format!("f{case}");
        let mut frame = json!({"type": kind, "ref": reference});
        if let Some(data) = data {
            frame["data"] = data;
        }
        let frame = frame.to_string();
        a.send_text(&frame).await;
        let reply = a.reply_to(&reference).await;
        match (reply["type"].as_str(), reply["data"]["code"].as_str()) {
            (Some("ack"), _) => acks += 1,
            (Some("error"), Some(code)) => {
                let known_code = ["bad_request", "forbidden", "not_found", "conflict", "payload_too_large"];
                let message = reply["data"]["message"].as_str().unwrap_or_default();
                if !known_code.contains(&code) || message.trim().is_empty() {
                    let shown: String = frame.chars().take(300).collect();
                    failures.push(format!("#{case} {shown}: {reply}"));
                }
            }
            _ => failures.push(format!("#{case} {frame}: {reply}")),
        }
        // Events (messages sent, markers moved) are not what this test reads.
        a.drain(|f| f["type"] != "ack" && f["type"] != "error");
    }
    assert_eq!(a.ack("ping", json!({})).await, json!({}));
    assert_eq!(a.closed, None);
    assert!(
        failures.is_empty(),
        "{} of {WS_CASES} random frames got a reply outside the protocol:\n{}",
        failures.len(),
        failures.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(acks >= WS_CASES / 10, "only {acks} random frames were acked");
    server.stop().await;
}

/// Text with NUL characters, and a list cursor at a time long before any calendar the database
/// keeps: what one backend stores and the other cannot. Either way the answer is a success or a
/// clear 4xx, never a 500; what is stored reads back as it was sent.
async fn values_a_database_cannot_store_get_a_clear_answer(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let direct = server.direct(&alice, &bob).await;
    let nul = "before\0after";
    let messages = format!("/api/conversations/{direct}/messages");
    let posts = [
        (
            None,
            "/api/auth/register",
            json!({"username": "nul-name", "password": "orchid-lantern-42", "display_name": nul}),
        ),
        (None, "/api/auth/register", json!({"username": "nul-pass", "password": "pass\0word123"})),
        (Some(&alice), "/api/conversations", json!({"kind": "group", "title": nul, "member_ids": [bob.id]})),
        (Some(&alice), messages.as_str(), json!({"body": nul})),
        (Some(&alice), messages.as_str(), json!({"body": "fine", "client_id": nul})),
    ];
    for (user, path, body) in &posts {
        let token = user.map(|u| u.token.as_str());
        let (status, answer) = server.post_text(token, path, "application/json", body.to_string()).await;
        if let Err(problem) = check_answer(status, &answer) {
            panic!("POST {path} {body}: {problem}");
        }
    }
    let long_ago = format!("-1000000000000000000_{}", uuid::Uuid::new_v4());
    for path in ["/api/users?q=%00".to_string(), format!("/api/conversations?before={long_ago}")] {
        let (status, answer) = server.get_text(Some(&alice.token), &path).await;
        if let Err(problem) = check_answer(status, &answer) {
            panic!("GET {path}: {problem}");
        }
    }
    let mut a = server.ws(&alice).await;
    let reply = a.request("message:send", json!({"conversation_id": direct, "body": nul})).await;
    assert!(
        reply["type"] == "ack" || reply["data"]["code"] == "bad_request",
        "a body with NUL over the WebSocket: {reply}"
    );
    let (status, history) = server.get(Some(&bob), &messages).await;
    assert_eq!(status, 200, "{history}");
    for message in history["messages"].as_array().expect("messages") {
        assert!(message["body"] == nul || message["body"] == "fine", "stored as sent: {message}");
    }
    server.stop().await;
}
