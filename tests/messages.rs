//! Messages (PROTOCOL.md §2) and their limits (§4): history pages, sending over REST and
//! WebSocket, the body and request-size limits, the per-user rate limit, read markers and unread
//! counts.

mod common;

use common::*;
use serde_json::{Value, json};

backends!(
    history_pages_backwards_and_forwards,
    a_message_carries_every_field,
    a_rest_send_is_broadcast_with_the_next_seq,
    rest_sends_respect_the_limits,
    websocket_sends_respect_the_limits_and_the_connection_stays_open,
    the_rate_limit_is_per_user_across_transports_and_sessions,
    read_markers_only_move_forward,
    unread_moves_the_marker_back_before_a_message,
    total_unread_sums_over_every_conversation,
    rest_and_websocket_messages_share_one_shape_and_one_seq,
);

/// The fields of a `Message`, exactly.
const MESSAGE_FIELDS: [&str; 8] =
    ["body", "client_id", "conversation_id", "created_at", "id", "kind", "sender_id", "seq"];

fn messages_path(conversation: &str) -> String {
    format!("/api/conversations/{conversation}/messages")
}

/// The protocol code of a REST error answer.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("an error answer, got {body}"))
}

/// The seqs of a `{messages: [...]}` page.
fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("a page, got {page}"))
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

/// Checks every field of a text `Message` (PROTOCOL.md §2 and its conventions).
fn assert_message(
    message: &Value,
    conversation: &str,
    seq: i64,
    sender: &TestUser,
    body: &str,
    client_id: Option<&str>,
) {
    let mut fields: Vec<&str> = message.as_object().expect("a Message object").keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, MESSAGE_FIELDS, "the fields of a Message: {message}");
    let id = message["id"].as_str().expect("id is a string");
    let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("id {id} is a UUID: {e}"));
    assert_eq!(uuid.get_version_num(), 7, "message ids are UUID v7: {id}");
    assert_eq!(id.as_bytes()[14], b'7', "the version nibble of {id}");
    assert_eq!(message["conversation_id"], conversation);
    assert_eq!(message["seq"], seq);
    assert_eq!(message["sender_id"], sender.id.as_str());
    assert_eq!(message["kind"], "text");
    assert_eq!(message["body"], body);
    match client_id {
        Some(client_id) => assert_eq!(message["client_id"], client_id),
        None => assert_eq!(message["client_id"], Value::Null, "client_id is null when none was sent"),
    }
    assert_rfc3339_millis_utc(message["created_at"].as_str().expect("created_at is a string"));
}

/// `2026-11-21T10:15:30.123Z`: RFC 3339, UTC, with milliseconds.
fn assert_rfc3339_millis_utc(time: &str) {
    let parsed = chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|e| panic!("{time} is RFC 3339: {e}"));
    assert_eq!(parsed.offset().local_minus_utc(), 0, "{time} is UTC");
    let bytes = time.as_bytes();
    assert_eq!(bytes.len(), 24, "{time} has the form 2026-11-21T10:15:30.123Z");
    assert_eq!((bytes[10], bytes[19], bytes[23]), (b'T', b'.', b'Z'), "{time} has the form 2026-11-21T10:15:30.123Z");
    assert!(bytes[20..23].iter().all(u8::is_ascii_digit), "{time} has three digits of milliseconds");
}

/// A raw JSON POST: the status, the `Retry-After` header if any, and the JSON body.
async fn post_raw(server: &TestServer, user: &TestUser, path: &str, body: String) -> (u16, Option<String>, Value) {
    let mut response = server
        .client
        .post(server.url(path))
        .bearer_auth(&user.token)
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("Retry-After").map(|v| v.to_str().expect("ASCII header").to_string());
    let bytes = response.body().limit(1 << 20).await.expect("body");
    let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    (status, retry_after, json)
}

/// A POST with no body at all.
async fn post_empty(server: &TestServer, user: &TestUser, path: &str) -> (u16, Value) {
    let mut response = server.client.post(server.url(path)).bearer_auth(&user.token).send().await.expect("POST");
    let status = response.status().as_u16();
    let bytes = response.body().limit(1 << 20).await.expect("body");
    let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    (status, json)
}

/// The `Member` entry of `user` in a `Conversation`.
fn member<'a>(conversation: &'a Value, user: &TestUser) -> &'a Value {
    conversation["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["user_id"] == user.id.as_str())
        .unwrap_or_else(|| panic!("{} is a member of {conversation}", user.username))
}

async fn history_pages_backwards_and_forwards(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_per_sec = 10000.0;
        config.limits.rate_burst = 10000.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let path = messages_path(&conversation);
    for n in 1..=60 {
        let (status, sent) = server.post(Some(&alice), &path, json!({"body": format!("m{n}")})).await;
        assert_eq!((status, sent["seq"].as_i64()), (201, Some(n)), "{sent}");
    }

    // By default: the latest 50, oldest first, and there is more before them.
    let (status, page) = server.get(Some(&bob), &path).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(seqs(&page), (11..=60).collect::<Vec<_>>());
    assert_eq!(page["messages"][0]["body"], "m11");
    assert_eq!(page["messages"][49]["body"], "m60");
    assert_eq!(page["has_more"], true);

    // Backwards from the oldest seen: the rest, and nothing more.
    let (_, page) = server.get(Some(&bob), &format!("{path}?before_seq=11")).await;
    assert_eq!(seqs(&page), (1..=10).collect::<Vec<_>>());
    assert_eq!(page["has_more"], false);
    let (_, page) = server.get(Some(&bob), &format!("{path}?before_seq=41&limit=10")).await;
    assert_eq!(seqs(&page), (31..=40).collect::<Vec<_>>());
    assert_eq!(page["has_more"], true);
    let (_, page) = server.get(Some(&bob), &format!("{path}?before_seq=1")).await;
    assert_eq!((seqs(&page), &page["has_more"]), (vec![], &json!(false)));

    // Forwards from a seq: the oldest after it first.
    let (_, page) = server.get(Some(&bob), &format!("{path}?after_seq=0&limit=25")).await;
    assert_eq!(seqs(&page), (1..=25).collect::<Vec<_>>());
    assert_eq!(page["has_more"], true);
    let (_, page) = server.get(Some(&bob), &format!("{path}?after_seq=25&limit=25")).await;
    assert_eq!(seqs(&page), (26..=50).collect::<Vec<_>>());
    assert_eq!(page["has_more"], true);
    let (_, page) = server.get(Some(&bob), &format!("{path}?after_seq=50&limit=10")).await;
    assert_eq!(seqs(&page), (51..=60).collect::<Vec<_>>());
    assert_eq!(page["has_more"], false, "exactly the last page");
    let (_, page) = server.get(Some(&bob), &format!("{path}?after_seq=50")).await;
    assert_eq!((seqs(&page), &page["has_more"]), ((51..=60).collect(), &json!(false)));

    // limit: 1 to 200.
    let (status, page) = server.get(Some(&bob), &format!("{path}?limit=200")).await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&page), (1..=60).collect::<Vec<_>>());
    assert_eq!(page["has_more"], false);
    let (_, page) = server.get(Some(&bob), &format!("{path}?limit=1")).await;
    assert_eq!((seqs(&page), &page["has_more"]), (vec![60], &json!(true)));
    for bad in ["0", "201", "-1", "lots"] {
        let (status, body) = server.get(Some(&bob), &format!("{path}?limit={bad}")).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "limit={bad}");
    }

    // Outsiders and unknown conversations: the same 404.
    let (status, body) = server.get(Some(&carol), &path).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = server.get(Some(&alice), &messages_path(&uuid::Uuid::new_v4().to_string())).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    server.stop().await;
}

async fn a_message_carries_every_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let path = messages_path(&conversation);

    let (status, plain) = server.post(Some(&alice), &path, json!({"body": "hello"})).await;
    assert_eq!(status, 201, "{plain}");
    assert_message(&plain, &conversation, 1, &alice, "hello", None);
    let (status, tagged) = server.post(Some(&bob), &path, json!({"body": "hi there", "client_id": "phone-42"})).await;
    assert_eq!(status, 201, "{tagged}");
    assert_message(&tagged, &conversation, 2, &bob, "hi there", Some("phone-42"));
    assert!(tagged["id"].as_str() > plain["id"].as_str(), "v7 ids sort by creation: {plain} {tagged}");

    // History gives back the very same objects.
    let (_, page) = server.get(Some(&alice), &path).await;
    assert_eq!(page["messages"], json!([plain, tagged]));
    server.stop().await;
}

async fn a_rest_send_is_broadcast_with_the_next_seq(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let conversation = server.direct(&alice, &bob).await;
    let path = messages_path(&conversation);

    let (status, first) = server.post(Some(&alice), &path, json!({"body": "over REST", "client_id": "r-1"})).await;
    assert_eq!(status, 201, "{first}");
    assert_message(&first, &conversation, 1, &alice, "over REST", Some("r-1"));
    assert_eq!(b.event("message:new").await["message"], first, "the other member gets the same message");
    assert_eq!(a.event("message:new").await["message"], first, "the sender's own sessions too");

    let (status, second) = server.post(Some(&alice), &path, json!({"body": "again"})).await;
    assert_eq!((status, second["seq"].as_i64()), (201, Some(2)));
    let (status, third) = server.post(Some(&bob), &path, json!({"body": "answer"})).await;
    assert_eq!((status, third["seq"].as_i64()), (201, Some(3)));
    assert_eq!(b.event("message:new").await["message"], second);
    assert_eq!(b.event("message:new").await["message"], third);
    assert_eq!(a.event("message:new").await["message"], second);
    assert_eq!(a.event("message:new").await["message"], third);

    // Not a member, no such conversation, not even an id: 404, and nothing stored.
    let (status, body) = server.post(Some(&carol), &path, json!({"body": "let me in"})).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = server.post(Some(&alice), &messages_path("not-an-id"), json!({"body": "anyone?"})).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    // A body without `body` is malformed.
    let (status, body) = server.post(Some(&alice), &path, json!({"client_id": "x"})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));

    let (_, page) = server.get(Some(&bob), &path).await;
    assert_eq!(seqs(&page), [1, 2, 3]);

    let unknown = messages_path(&uuid::Uuid::new_v4().to_string());
    let (status, body) = server.post(Some(&alice), &unknown, json!({"body": "anyone?"})).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    server.stop().await;
}

async fn rest_sends_respect_the_limits(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let path = messages_path(&conversation);

    // Empty and blank bodies.
    for blank in ["", " ", " \n\t "] {
        let (status, body) = server.post(Some(&alice), &path, json!({"body": blank})).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "body {blank:?}");
    }

    // 4,000 characters, not bytes: 4,000 'é' (8,000 bytes) pass, 4,001 do not.
    let (status, body) = server.post(Some(&alice), &path, json!({"body": "é".repeat(4001)})).await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"));
    let longest = "é".repeat(4000);
    let (status, sent) = server.post(Some(&alice), &path, json!({"body": longest})).await;
    assert_eq!(status, 201, "{sent}");
    assert_message(&sent, &conversation, 1, &alice, &longest, None);

    // client_id: at most 128 bytes (65 'é' are 65 characters but 130 bytes).
    let (status, body) = server.post(Some(&alice), &path, json!({"body": "x", "client_id": "k".repeat(129)})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    let (status, body) = server.post(Some(&alice), &path, json!({"body": "x", "client_id": "é".repeat(65)})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    let widest = "k".repeat(128);
    let (status, sent) = server.post(Some(&alice), &path, json!({"body": "x", "client_id": widest})).await;
    assert_eq!(status, 201, "{sent}");
    assert_message(&sent, &conversation, 2, &alice, "x", Some(&widest));

    // The request body: at most max_request_bytes (64 KiB), whatever the message inside. JSON
    // whitespace pads a short message past it.
    assert_eq!(server.config.limits.max_request_bytes, 64 * 1024);
    let padded = |pad: usize| format!("{{\"body\": \"padded\"{}}}", " ".repeat(pad));
    let (status, _, body) = post_raw(&server, &alice, &path, padded(70 * 1024)).await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"));
    let (status, _, sent) = post_raw(&server, &alice, &path, padded(60 * 1024)).await;
    assert_eq!(status, 201, "{sent}");
    assert_message(&sent, &conversation, 3, &alice, "padded", None);

    // Nothing refused was stored, and no seq was spent on it.
    let (_, page) = server.get(Some(&bob), &path).await;
    assert_eq!(seqs(&page), [1, 2, 3]);
    server.stop().await;
}

async fn websocket_sends_respect_the_limits_and_the_connection_stays_open(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let mut a = server.ws(&alice).await;
    let conversation = server.direct(&alice, &bob).await;
    let elsewhere = server.direct(&bob, &carol).await;

    let refused = [
        (json!({"conversation_id": conversation, "body": ""}), "bad_request"),
        (json!({"conversation_id": conversation, "body": "  \n\t "}), "bad_request"),
        (json!({"conversation_id": conversation, "body": "é".repeat(4001)}), "payload_too_large"),
        (json!({"conversation_id": conversation, "body": "x", "client_id": "k".repeat(129)}), "bad_request"),
        (json!({"conversation_id": conversation, "body": "x", "client_id": "é".repeat(65)}), "bad_request"),
        (json!({"conversation_id": conversation}), "bad_request"),
        (json!({"conversation_id": elsewhere, "body": "not mine"}), "not_found"),
    ];
    for (data, expected) in refused {
        let reply = a.request("message:send", data.clone()).await;
        assert_eq!(reply["type"], "error", "{data} is refused: {reply}");
        assert_eq!(reply["data"]["code"], expected, "{data}: {reply}");
        assert!(reply["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "a message for people: {reply}");
        assert_eq!(a.ack("ping", json!({})).await, json!({}), "still open after {expected}");
    }

    // The longest body and the widest client_id pass, with the first seqs.
    let longest = "é".repeat(4000);
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": longest})).await;
    assert_message(&sent["message"], &conversation, 1, &alice, &longest, None);
    let widest = "k".repeat(128);
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "x", "client_id": widest})).await;
    assert_message(&sent["message"], &conversation, 2, &alice, "x", Some(&widest));
    let (_, page) = server.get(Some(&bob), &messages_path(&conversation)).await;
    assert_eq!(seqs(&page), [1, 2]);

    let reply = a.request("message:send", json!({"conversation_id": uuid::Uuid::new_v4(), "body": "nowhere"})).await;
    assert_eq!((&reply["type"], &reply["data"]["code"]), (&json!("error"), &json!("not_found")), "{reply}");
    assert_eq!(a.ack("ping", json!({})).await, json!({}), "still open after not_found");

    // A frame over max_frame_bytes (64 KiB) is not an error reply but a close with 1009.
    assert_eq!(server.config.limits.max_frame_bytes, 64 * 1024);
    let frame = json!({"type": "message:send", "ref": "big", "data": {"conversation_id": conversation, "body": "a".repeat(70 * 1024)}});
    a.send_text(&frame.to_string()).await;
    assert_eq!(a.closed_with().await, 1009);
    server.stop().await;
}

async fn the_rate_limit_is_per_user_across_transports_and_sessions(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_per_sec = 1.0;
        config.limits.rate_burst = 3.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut phone = server.ws(&alice).await;
    let mut laptop = server.ws(&alice).await;
    let conversation = server.direct(&alice, &bob).await;
    let path = messages_path(&conversation);

    // The burst: three sends at once from one session.
    let refs = [
        phone.command("message:send", json!({"conversation_id": conversation, "body": "one"})).await,
        phone.command("message:send", json!({"conversation_id": conversation, "body": "two"})).await,
        phone.command("message:send", json!({"conversation_id": conversation, "body": "three"})).await,
    ];
    for (i, reference) in refs.iter().enumerate() {
        let reply = phone.reply_to(reference).await;
        assert_eq!(reply["type"], "ack", "send {} of the burst: {reply}", i + 1);
        assert_eq!(reply["data"]["message"]["seq"], i as i64 + 1);
    }

    // The fourth, over REST: 429 with retry_after_ms and a Retry-After header in seconds.
    let (status, retry_after, body) = post_raw(&server, &alice, &path, json!({"body": "four"}).to_string()).await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
    let wait_ms = body["error"]["retry_after_ms"].as_u64().unwrap_or_else(|| panic!("retry_after_ms in {body}"));
    assert!(wait_ms > 0 && wait_ms <= 1000, "a token comes within a second at 1 per second: {wait_ms}");
    let retry_after: u64 = retry_after.expect("a Retry-After header").parse().expect("Retry-After in whole seconds");
    assert_eq!(retry_after, wait_ms.div_ceil(1000), "Retry-After rounds retry_after_ms up");

    // The same user's sessions share the bucket: the first and another one are limited too.
    for ws in [&mut phone, &mut laptop] {
        let reply = ws.request("message:send", json!({"conversation_id": conversation, "body": "five"})).await;
        assert_eq!((&reply["type"], &reply["data"]["code"]), (&json!("error"), &json!("rate_limited")), "{reply}");
        assert!(reply["data"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "retry_after_ms in {reply}");
        assert_eq!(ws.ack("ping", json!({})).await, json!({}), "still open");
    }

    // Another user has a bucket of their own.
    let (status, sent) = server.post(Some(&bob), &path, json!({"body": "my turn"})).await;
    assert_eq!((status, sent["seq"].as_i64()), (201, Some(4)), "{sent}");
    let (_, page) = server.get(Some(&bob), &path).await;
    assert_eq!(seqs(&page), [1, 2, 3, 4], "nothing refused was stored");
    server.stop().await;
}

async fn read_markers_only_move_forward(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let conversation = server.direct(&alice, &bob).await;
    let path = messages_path(&conversation);
    let read = format!("/api/conversations/{conversation}/read");
    for n in 1..=5 {
        let (status, _) = server.post(Some(&alice), &path, json!({"body": format!("m{n}")})).await;
        assert_eq!(status, 201);
    }
    // Bob's counts followed the sends; forget those events.
    let unread = b.event_where("unread:updated", |d| d["unread_count"] == 5).await;
    assert_eq!(unread, json!({"conversation_id": conversation, "unread_count": 5, "total_unread": 5}));
    b.drain(|f| f["type"] == "unread:updated");

    // Alice's own messages are never unread to her; all five are to Bob.
    let (_, mine) = server.get(Some(&alice), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(mine["unread_count"], 0);
    assert_eq!(member(&mine, &alice)["last_read_seq"], 5);
    assert_eq!(member(&mine, &bob)["last_read_seq"], 0);
    let (_, his) = server.get(Some(&bob), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(his["unread_count"], 5);

    // Bob reads up to 2: Alice gets the receipt, Bob's sessions the new counts.
    let (status, state) = server.post(Some(&bob), &read, json!({"seq": 2})).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state, json!({"last_read_seq": 2, "unread_count": 3, "total_unread": 3}));
    let receipt = a.event("read:updated").await;
    assert_eq!(receipt, json!({"conversation_id": conversation, "user_id": bob.id, "last_read_seq": 2}));
    let unread = b.event("unread:updated").await;
    assert_eq!(unread, json!({"conversation_id": conversation, "unread_count": 3, "total_unread": 3}));

    // An older seq does not move the marker back.
    let (status, state) = server.post(Some(&bob), &read, json!({"seq": 1})).await;
    assert_eq!((status, state), (200, json!({"last_read_seq": 2, "unread_count": 3, "total_unread": 3})));
    let (_, seen) = server.get(Some(&alice), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(member(&seen, &bob)["last_read_seq"], 2);

    // A seq past the last message is refused.
    for bad in [json!({"seq": 6}), json!({"seq": -1}), json!({"seq": "3"})] {
        let (status, body) = server.post(Some(&bob), &read, bad.clone()).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}");
    }

    // No seq (no body at all): everything is read.
    let (status, state) = post_empty(&server, &bob, &read).await;
    assert_eq!((status, state), (200, json!({"last_read_seq": 5, "unread_count": 0, "total_unread": 0})));
    let receipt = a.event_where("read:updated", |d| d["last_read_seq"] == 5).await;
    assert_eq!(receipt["user_id"], bob.id.as_str());
    let own = b.event_where("read:updated", |d| d["last_read_seq"] == 5).await;
    assert_eq!(own["user_id"], bob.id.as_str(), "read:updated goes to every member, the reader included");
    let unread = b.event_where("unread:updated", |d| d["unread_count"] == 0).await;
    assert_eq!(unread, json!({"conversation_id": conversation, "unread_count": 0, "total_unread": 0}));

    // Bob answers: his marker moves to his message, Alice has one unread.
    let (status, _) = server.post(Some(&bob), &path, json!({"body": "got them"})).await;
    assert_eq!(status, 201);
    let (_, his) = server.get(Some(&bob), &format!("/api/conversations/{conversation}")).await;
    assert_eq!((his["unread_count"].as_i64(), member(&his, &bob)["last_read_seq"].as_i64()), (Some(0), Some(6)));
    let (_, mine) = server.get(Some(&alice), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(mine["unread_count"], 1);
    let (status, state) = server.post(Some(&alice), &read, json!({})).await;
    assert_eq!((status, state), (200, json!({"last_read_seq": 6, "unread_count": 0, "total_unread": 0})));

    // Outsiders and unknown conversations.
    let (status, body) = server.post(Some(&carol), &read, json!({})).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let unknown = format!("/api/conversations/{}/read", uuid::Uuid::new_v4());
    let (status, body) = server.post(Some(&bob), &unknown, json!({})).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    server.stop().await;
}

async fn unread_moves_the_marker_back_before_a_message(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let conversation = server.direct(&alice, &bob).await;
    let path = messages_path(&conversation);
    let read = format!("/api/conversations/{conversation}/read");
    let unread_path = format!("/api/conversations/{conversation}/unread");
    for n in 1..=5 {
        let (status, _) = server.post(Some(&alice), &path, json!({"body": format!("m{n}")})).await;
        assert_eq!(status, 201);
    }
    b.event_where("unread:updated", |d| d["unread_count"] == 5).await;
    b.drain(|f| f["type"] == "unread:updated");
    let (status, state) = server.post(Some(&bob), &read, json!({})).await;
    assert_eq!((status, state), (200, json!({"last_read_seq": 5, "unread_count": 0, "total_unread": 0})));
    b.event_where("unread:updated", |d| d["unread_count"] == 0).await;
    a.event_where("read:updated", |d| d["last_read_seq"] == 5).await;

    // Bob marks messages 3 and after as unread: the marker goes to 2.
    let (status, state) = server.post(Some(&bob), &unread_path, json!({"seq": 3})).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state, json!({"last_read_seq": 2, "unread_count": 3, "total_unread": 3}));
    let unread = b.event("unread:updated").await;
    assert_eq!(unread, json!({"conversation_id": conversation, "unread_count": 3, "total_unread": 3}));
    let receipt = a.event("read:updated").await;
    assert_eq!(receipt, json!({"conversation_id": conversation, "user_id": bob.id, "last_read_seq": 2}));
    let (_, his) = server.get(Some(&bob), &format!("/api/conversations/{conversation}")).await;
    assert_eq!((his["unread_count"].as_i64(), member(&his, &bob)["last_read_seq"].as_i64()), (Some(3), Some(2)));

    // From the first message: all unread.
    let (status, state) = server.post(Some(&bob), &unread_path, json!({"seq": 1})).await;
    assert_eq!((status, state), (200, json!({"last_read_seq": 0, "unread_count": 5, "total_unread": 5})));

    // seq is required, and must be a message of the conversation.
    for bad in [json!({}), json!({"seq": null}), json!({"seq": 0}), json!({"seq": 6}), json!({"seq": -2})] {
        let (status, body) = server.post(Some(&bob), &unread_path, bad.clone()).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}");
    }
    let (status, body) = post_empty(&server, &bob, &unread_path).await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "no body");

    let (status, body) = server.post(Some(&carol), &unread_path, json!({"seq": 1})).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (_, his) = server.get(Some(&bob), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(member(&his, &bob)["last_read_seq"], 0, "refused calls changed nothing");
    server.stop().await;
}

async fn total_unread_sums_over_every_conversation(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let mut a = server.ws(&alice).await;
    let with_bob = server.direct(&alice, &bob).await;
    let with_carol = server.direct(&carol, &alice).await;
    for n in 1..=2 {
        let (status, _) = server.post(Some(&bob), &messages_path(&with_bob), json!({"body": format!("b{n}")})).await;
        assert_eq!(status, 201);
    }
    for n in 1..=3 {
        let (status, _) =
            server.post(Some(&carol), &messages_path(&with_carol), json!({"body": format!("c{n}")})).await;
        assert_eq!(status, 201);
    }

    // Alice's live count for the last conversation carries the total over both.
    let unread = a
        .event_where("unread:updated", |d| d["conversation_id"] == with_carol.as_str() && d["unread_count"] == 3)
        .await;
    assert_eq!(unread["total_unread"], 5);
    a.event_where("unread:updated", |d| d["conversation_id"] == with_bob.as_str() && d["unread_count"] == 2).await;
    a.drain(|f| f["type"] == "unread:updated");
    let (_, list) = server.get(Some(&alice), "/api/conversations").await;
    assert_eq!(list["total_unread"], 5);
    let counts: Vec<(&str, i64)> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["unread_count"].as_i64().unwrap()))
        .collect();
    assert_eq!(counts, [(with_carol.as_str(), 3), (with_bob.as_str(), 2)], "newest activity first");

    // Reading one conversation leaves the other's unread in the total.
    let (status, state) = server.post(Some(&alice), &format!("/api/conversations/{with_bob}/read"), json!({})).await;
    assert_eq!((status, state), (200, json!({"last_read_seq": 2, "unread_count": 0, "total_unread": 3})));
    let (_, state) =
        server.post(Some(&alice), &format!("/api/conversations/{with_carol}/read"), json!({"seq": 1})).await;
    assert_eq!(state, json!({"last_read_seq": 1, "unread_count": 2, "total_unread": 2}));
    let (_, state) =
        server.post(Some(&alice), &format!("/api/conversations/{with_bob}/unread"), json!({"seq": 2})).await;
    assert_eq!(state, json!({"last_read_seq": 1, "unread_count": 1, "total_unread": 3}));
    // Alice's sessions heard each change, in order.
    for (conversation, unread_count, total_unread) in [(&with_bob, 0, 3), (&with_carol, 2, 2), (&with_bob, 1, 3)] {
        let unread = a.event("unread:updated").await;
        let expected =
            json!({"conversation_id": conversation, "unread_count": unread_count, "total_unread": total_unread});
        assert_eq!(unread, expected);
    }

    // A new message in one conversation: its count and the total, live.
    let (status, _) = server.post(Some(&bob), &messages_path(&with_bob), json!({"body": "b3"})).await;
    assert_eq!(status, 201);
    let unread =
        a.event_where("unread:updated", |d| d["conversation_id"] == with_bob.as_str() && d["unread_count"] == 2).await;
    assert_eq!(unread["total_unread"], 4);
    let (_, list) = server.get(Some(&alice), "/api/conversations").await;
    assert_eq!(list["total_unread"], 4);
    // Bob's total knows nothing of Alice and Carol's conversation.
    let (_, list) = server.get(Some(&bob), "/api/conversations").await;
    assert_eq!(list["total_unread"], 0);
    server.stop().await;
}

async fn rest_and_websocket_messages_share_one_shape_and_one_seq(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let conversation = server.direct(&alice, &bob).await;
    let path = messages_path(&conversation);

    let mut sent = Vec::new();
    let over_ws =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "ws", "client_id": "w-1"})).await;
    sent.push(over_ws["message"].clone());
    let (status, over_rest) = server.post(Some(&alice), &path, json!({"body": "rest", "client_id": "r-1"})).await;
    assert_eq!(status, 201);
    sent.push(over_rest);
    let over_ws = b.ack("message:send", json!({"conversation_id": conversation, "body": "ws again"})).await;
    sent.push(over_ws["message"].clone());
    let (status, over_rest) = server.post(Some(&bob), &path, json!({"body": "rest again"})).await;
    assert_eq!(status, 201);
    sent.push(over_rest);

    assert_message(&sent[0], &conversation, 1, &alice, "ws", Some("w-1"));
    assert_message(&sent[1], &conversation, 2, &alice, "rest", Some("r-1"));
    assert_message(&sent[2], &conversation, 3, &bob, "ws again", None);
    assert_message(&sent[3], &conversation, 4, &bob, "rest again", None);

    // Both members saw the four in order, as stored.
    for ws in [&mut a, &mut b] {
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(ws.event("message:new").await["message"].clone());
        }
        assert_eq!(seen, sent);
    }
    let (_, page) = server.get(Some(&bob), &path).await;
    assert_eq!(page["messages"], Value::Array(sent));
    server.stop().await;
}
