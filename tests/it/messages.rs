//! Messages: two people chatting live, a send over REST broadcast like one over the WebSocket
//! (one shape, one seq), every field of a message, and history pages in both directions.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    two_people_chat_live,
    history_pages_backwards_and_forwards,
    a_message_carries_every_field,
    a_rest_send_is_broadcast_with_the_next_seq,
    rest_and_websocket_messages_share_one_shape_and_one_seq,
);

async fn two_people_chat_live(backend: Backend) {
    let (Pair { server, alice, bob, conversation }, mut a, mut b) = Pair::online_first(backend).await;

    // Bob sees the conversation appear.
    let created = b.event("conversation:updated").await;
    assert_eq!(created["conversation"]["id"], conversation.as_str());

    // Alice types; Bob sees it.
    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    let typing = b.event("typing:updated").await;
    assert_eq!((typing["user_id"].as_str(), typing["typing"].as_bool()), (Some(alice.id.as_str()), Some(true)));

    // Alice sends: acked with seq 1, both receive message:new, and her typing ends.
    let sent =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "hi Bob", "client_id": "c1"})).await;
    let message = &sent["message"];
    assert_eq!(message["seq"], 1);
    assert_eq!(message["body"], "hi Bob");
    assert_eq!(message["kind"], "text");
    assert_eq!(message["sender_id"], alice.id.as_str());
    assert_eq!(b.event("message:new").await["message"]["id"], message["id"]);
    assert_eq!(a.event("message:new").await["message"]["id"], message["id"], "the sender's own sessions get it too");
    let stopped = b.event_where("typing:updated", |d| d["typing"] == false).await;
    assert_eq!(stopped["user_id"], alice.id.as_str());

    // Bob has one unread message.
    let unread = b.event("unread:updated").await;
    assert_eq!((unread["unread_count"].as_i64(), unread["total_unread"].as_i64()), (Some(1), Some(1)));
    let (_, listed) = server.get(Some(&bob), "/api/conversations").await;
    assert_eq!(listed["total_unread"], 1);
    assert_eq!(listed["conversations"][0]["unread_count"], 1);
    assert_eq!(listed["conversations"][0]["last_message"]["body"], "hi Bob");

    // Bob reads it: Alice gets the read receipt, Bob's counts drop to zero.
    let read = b.ack("read:mark", json!({"conversation_id": conversation})).await;
    assert_eq!(read, json!({"last_read_seq": 1, "unread_count": 0, "total_unread": 0}));
    let receipt = a.event("read:updated").await;
    assert_eq!((receipt["user_id"].as_str(), receipt["last_read_seq"].as_i64()), (Some(bob.id.as_str()), Some(1)));
    let unread = b.event_where("unread:updated", |d| d["unread_count"] == 0).await;
    assert_eq!(unread["total_unread"], 0);

    // Bob answers; seqs go on without gaps.
    let reply = b.ack("message:send", json!({"conversation_id": conversation, "body": "hello Alice"})).await;
    assert_eq!(reply["message"]["seq"], 2);
    assert_eq!(a.event_where("message:new", |d| d["message"]["seq"] == 2).await["message"]["body"], "hello Alice");

    // Presence: each sees the other online.
    let presence = a.ack("presence:query", json!({"user_ids": [bob.id]})).await;
    assert_eq!(presence["presence"][0]["online"], true);

    // Joining returns the conversation, the history and who types.
    let joined = a.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["conversation"]["last_seq"], 2);
    assert_eq!(joined["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(joined["typing"], json!([]));

    server.stop().await;
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
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
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
    let (Pair { server, alice, bob, conversation }, mut a, mut b) = Pair::online_first(backend).await;
    let carol = server.user("carol").await;
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

async fn rest_and_websocket_messages_share_one_shape_and_one_seq(backend: Backend) {
    let (Pair { server, alice, bob, conversation }, mut a, mut b) = Pair::online_first(backend).await;
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
