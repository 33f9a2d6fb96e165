//! `conversation:join` returns the conversation, its latest messages and who is typing;
//! `conversation:leave` acks and ends the leaver's typing.

use serde_json::{Value, json};

use crate::common::*;

backends!(join_returns_the_conversation_its_latest_messages_and_typists, leave_acks_and_ends_the_leavers_typing,);

async fn join_returns_the_conversation_its_latest_messages_and_typists(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_per_sec = 1_000.0;
        config.limits.rate_burst = 1_000.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;

    // An empty conversation.
    let joined = a.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["conversation"]["id"], conversation.as_str());
    assert_eq!(joined["conversation"]["kind"], "direct");
    assert_eq!(joined["conversation"]["last_seq"], 0);
    assert_eq!(joined["messages"], json!([]));
    assert_eq!(joined["typing"], json!([]));

    // 55 messages: a join gives the latest 50 by default, in ascending seq.
    let mut refs = Vec::new();
    for n in 1..=55 {
        refs.push(a.command("message:send", json!({"conversation_id": conversation, "body": format!("m{n}")})).await);
    }
    for reference in refs {
        let reply = a.reply_to(&reference).await;
        assert_eq!(reply["type"], "ack", "{reply}");
    }
    let seqs = |joined: &Value| -> Vec<i64> {
        joined["messages"].as_array().expect("messages").iter().map(|m| m["seq"].as_i64().expect("seq")).collect()
    };
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["conversation"]["last_seq"], 55);
    assert_eq!(joined["conversation"]["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(seqs(&joined), (6..=55).collect::<Vec<_>>());
    assert_eq!(joined["messages"][49]["body"], "m55");
    assert_eq!(joined["messages"][49]["sender_id"], alice.id.as_str());

    // `limit` asks for fewer (or more, up to the page maximum).
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation, "limit": 3})).await;
    assert_eq!(seqs(&joined), vec![53, 54, 55]);
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation, "limit": 200})).await;
    assert_eq!(seqs(&joined), (1..=55).collect::<Vec<_>>());
    // Out of range (server's choice of answer): bad_request.
    assert_eq!(b.error("conversation:join", json!({"conversation_id": conversation, "limit": 0})).await, "bad_request");
    assert_eq!(
        b.error("conversation:join", json!({"conversation_id": conversation, "limit": 201})).await,
        "bad_request"
    );

    // Who is typing now.
    b.ack("typing:start", json!({"conversation_id": conversation})).await;
    let joined = a.ack("conversation:join", json!({"conversation_id": conversation, "limit": 1})).await;
    assert_eq!(joined["typing"], json!([bob.id]));
    assert_eq!(seqs(&joined), vec![55]);

    // A non-member and a conversation that does not exist: the same not_found.
    assert_eq!(c.error("conversation:join", json!({"conversation_id": conversation})).await, "not_found");
    let nowhere = uuid::Uuid::new_v4().to_string();
    assert_eq!(a.error("conversation:join", json!({"conversation_id": nowhere})).await, "not_found");
    server.stop().await;
}

async fn leave_acks_and_ends_the_leavers_typing(backend: Backend) {
    // Typing would only end by itself after a minute: here it must end because of the leave.
    let server = TestServer::start_with(backend, |config| config.limits.typing_timeout_ms = 60_000).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;

    b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(b.ack("typing:start", json!({"conversation_id": conversation})).await, json!({}));
    let typing = a.event("typing:updated").await;
    assert_eq!(typing, json!({"conversation_id": conversation, "user_id": bob.id, "typing": true}));

    assert_eq!(b.ack("conversation:leave", json!({"conversation_id": conversation})).await, json!({}));
    let stopped = a.event("typing:updated").await;
    assert_eq!(stopped, json!({"conversation_id": conversation, "user_id": bob.id, "typing": false}));
    let joined = a.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["typing"], json!([]));

    // Leaving the view is not leaving the conversation: Bob's sessions still get its messages.
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "still there?"})).await;
    assert_eq!(sent["message"]["seq"], 1);
    assert_eq!(b.event("message:new").await["message"]["id"], sent["message"]["id"]);

    // Leaving a conversation one is not a member of: not_found.
    assert_eq!(c.error("conversation:leave", json!({"conversation_id": conversation})).await, "not_found");
    server.stop().await;
}
