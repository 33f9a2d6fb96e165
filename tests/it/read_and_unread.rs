//! Read markers and unread counts: markers only move forward, `unread` moves one back before a
//! message, counts follow sends and markers, and the total sums every conversation.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    read_markers_only_move_forward,
    unread_moves_the_marker_back_before_a_message,
    total_unread_sums_over_every_conversation,
    unread_count_follows_sends_and_the_read_marker,
);

/// A POST with no body at all.
async fn post_empty(server: &TestServer, user: &TestUser, path: &str) -> (u16, Value) {
    let mut response = server.client.post(server.url(path)).bearer_auth(&user.token).send().await.expect("POST");
    let status = response.status().as_u16();
    let bytes = response.body().limit(1 << 20).await.expect("body");
    let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    (status, json)
}

async fn read_markers_only_move_forward(backend: Backend) {
    let (Pair { server, alice, bob, conversation }, mut a, mut b) = Pair::online_first(backend).await;
    let carol = server.user("carol").await;
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
    assert_eq!(member(&mine, &alice.id)["last_read_seq"], 5);
    assert_eq!(member(&mine, &bob.id)["last_read_seq"], 0);
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
    assert_eq!(member(&seen, &bob.id)["last_read_seq"], 2);

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
    assert_eq!((his["unread_count"].as_i64(), member(&his, &bob.id)["last_read_seq"].as_i64()), (Some(0), Some(6)));
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
    let (Pair { server, alice, bob, conversation }, mut a, mut b) = Pair::online_first(backend).await;
    let carol = server.user("carol").await;
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
    assert_eq!((his["unread_count"].as_i64(), member(&his, &bob.id)["last_read_seq"].as_i64()), (Some(3), Some(2)));

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
    assert_eq!(member(&his, &bob.id)["last_read_seq"], 0, "refused calls changed nothing");
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

/// Bob's `unread_count` for his conversation with Alice counts her messages after his read
/// marker; his own messages are never unread.
async fn unread_count_follows_sends_and_the_read_marker(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let path = format!("/api/conversations/{conversation}");

    for body in ["one", "two", "three"] {
        let (status, _) = server.post(Some(&alice), &format!("{path}/messages"), json!({"body": body})).await;
        assert_eq!(status, 201);
    }
    let (_, seen) = server.get(Some(&bob), &path).await;
    assert_eq!(seen["unread_count"], 3, "{seen}");
    assert_eq!(seen["last_seq"], 3);
    assert_eq!(seen["last_message"]["body"], "three");
    assert_eq!(seen["last_message"]["seq"], 3);
    assert_eq!(seen["last_message"]["kind"], "text");
    assert_eq!(seen["last_message"]["sender_id"], alice.id.as_str());
    timestamp(&seen["last_message"]["created_at"]);
    assert_eq!(member(&seen, &bob.id)["last_read_seq"], 0);
    assert_eq!(member(&seen, &alice.id)["last_read_seq"], 3, "the sender's marker moves to her message");
    let (_, seen) = server.get(Some(&alice), &path).await;
    assert_eq!(seen["unread_count"], 0, "one's own messages are never unread: {seen}");

    // Bob reads up to 2.
    let (status, read) = server.post(Some(&bob), &format!("{path}/read"), json!({"seq": 2})).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read, json!({"last_read_seq": 2, "unread_count": 1, "total_unread": 1}));
    let (_, seen) = server.get(Some(&bob), &path).await;
    assert_eq!(seen["unread_count"], 1);
    assert_eq!(member(&seen, &bob.id)["last_read_seq"], 2);
    let (_, list) = server.get(Some(&bob), "/api/conversations").await;
    assert_eq!((list["total_unread"].as_i64(), list["conversations"][0]["unread_count"].as_i64()), (Some(1), Some(1)));
    // Alice sees Bob's marker too.
    let (_, seen) = server.get(Some(&alice), &path).await;
    assert_eq!(member(&seen, &bob.id)["last_read_seq"], 2);

    // Bob answers: his marker moves to his message, so nothing is unread for him; Alice has one.
    let (status, _) = server.post(Some(&bob), &format!("{path}/messages"), json!({"body": "four"})).await;
    assert_eq!(status, 201);
    let (_, seen) = server.get(Some(&bob), &path).await;
    assert_eq!(seen["unread_count"], 0, "{seen}");
    assert_eq!(member(&seen, &bob.id)["last_read_seq"], 4);
    let (_, seen) = server.get(Some(&alice), &path).await;
    assert_eq!(seen["unread_count"], 1, "{seen}");

    // Alice reads everything (no seq: the latest).
    let (status, read) = server.post(Some(&alice), &format!("{path}/read"), json!({})).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read, json!({"last_read_seq": 4, "unread_count": 0, "total_unread": 0}));
    let (_, seen) = server.get(Some(&alice), &path).await;
    assert_eq!(seen["unread_count"], 0);

    // Bob marks as unread from message 2 on: three unread again.
    let (status, unread) = server.post(Some(&bob), &format!("{path}/unread"), json!({"seq": 2})).await;
    assert_eq!(status, 200, "{unread}");
    assert_eq!(unread["last_read_seq"], 1);
    assert_eq!(unread["unread_count"], 3);
    let (_, seen) = server.get(Some(&bob), &path).await;
    assert_eq!(seen["unread_count"], 3, "{seen}");
    let (_, list) = server.get(Some(&bob), "/api/conversations").await;
    assert_eq!(list["total_unread"], 3);
    server.stop().await;
}
