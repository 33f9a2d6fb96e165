//! The README's walk-through as a test: two people chat over WebSockets and see everything
//! change live; and the concurrency cases of ordering and idempotency.

mod common;

use common::*;
use futures_util::future::join_all;
use serde_json::json;

backends!(
    two_people_chat_live,
    reconnect_and_sync_what_was_missed,
    client_id_makes_sends_idempotent_across_transports,
    concurrent_senders_see_gapless_ordered_seqs,
    both_sides_creating_their_direct_conversation_get_one,
);

async fn two_people_chat_live(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let conversation = server.direct(&alice, &bob).await;

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

async fn reconnect_and_sync_what_was_missed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    a.ack("message:send", json!({"conversation_id": conversation, "body": "one"})).await;

    // Bob is away while three messages arrive, then reconnects and syncs from seq 1.
    for body in ["two", "three", "four"] {
        a.ack("message:send", json!({"conversation_id": conversation, "body": body})).await;
    }
    let mut b = server.ws(&bob).await;
    let synced = b.ack("sync", json!({"conversations": [{"conversation_id": conversation, "after_seq": 1}]})).await;
    let got = &synced["conversations"][0];
    let bodies: Vec<&str> = got["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["two", "three", "four"]);
    assert_eq!(got["has_more"], false);

    // A page smaller than what was missed says there is more.
    let partial =
        b.ack("sync", json!({"conversations": [{"conversation_id": conversation, "after_seq": 0}], "limit": 2})).await;
    assert_eq!(partial["conversations"][0]["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(partial["conversations"][0]["has_more"], true);
    server.stop().await;
}

async fn client_id_makes_sends_idempotent_across_transports(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let first =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "once", "client_id": "k-1"})).await;
    // The same client_id again over WebSocket (as after a reconnect) and over REST.
    let again =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "once", "client_id": "k-1"})).await;
    assert_eq!(again["message"], first["message"]);
    let path = format!("/api/conversations/{conversation}/messages");
    let (status, rest) = server.post(Some(&alice), &path, json!({"body": "once", "client_id": "k-1"})).await;
    assert_eq!(status, 201);
    assert_eq!(rest, first["message"]);
    let (_, history) = server.get(Some(&alice), &path).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(1), "stored once: {history}");
    server.stop().await;
}

async fn concurrent_senders_see_gapless_ordered_seqs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let names = ["ann", "ben", "cat", "dan"];
    let mut users = Vec::new();
    for name in names {
        users.push(server.user(name).await);
    }
    let ids: Vec<&str> = users[1..].iter().map(|u| u.id.as_str()).collect();
    let (status, group) = server
        .post(Some(&users[0]), "/api/conversations", json!({"kind": "group", "title": "team", "member_ids": ids}))
        .await;
    assert_eq!(status, 201, "{group}");
    let conversation = group["id"].as_str().unwrap().to_string();
    let mut sockets = Vec::new();
    for user in &users {
        sockets.push(server.ws(user).await);
    }

    // Every member sends 10 messages at once, half over WebSocket, half over REST.
    const EACH: usize = 10;
    let sends = users.iter().enumerate().map(|(i, user)| {
        let server = &server;
        let conversation = conversation.clone();
        async move {
            for n in 0..EACH {
                let (status, body) = server
                    .post(
                        Some(user),
                        &format!("/api/conversations/{conversation}/messages"),
                        json!({"body": format!("{i}-{n}")}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
            }
        }
    });
    let ws_sends = sockets.iter_mut().map(|ws| {
        let conversation = conversation.clone();
        async move {
            let mut refs = Vec::new();
            for n in 0..EACH {
                refs.push(
                    ws.command("message:send", json!({"conversation_id": conversation, "body": format!("ws-{n}")}))
                        .await,
                );
            }
            for r in refs {
                assert_eq!(ws.reply_to(&r).await["type"], "ack");
            }
        }
    });
    let (_, _) = futures_util::join!(join_all(sends), join_all(ws_sends));

    // Every session saw seqs 1..=n exactly once, in order.
    let total = 2 * EACH * users.len();
    for ws in &mut sockets {
        let mut seqs = Vec::new();
        while seqs.len() < total {
            seqs.push(ws.event("message:new").await["message"]["seq"].as_i64().unwrap());
        }
        assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
    }
    server.stop().await;
}

async fn both_sides_creating_their_direct_conversation_get_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    for round in 0..5 {
        let a = server.user(&format!("left{round}")).await;
        let b = server.user(&format!("right{round}")).await;
        let (x, y) = futures_util::join!(server.direct(&a, &b), server.direct(&b, &a));
        assert_eq!(x, y, "both sides got the same conversation");
        let (_, list) = server.get(Some(&a), "/api/conversations").await;
        assert_eq!(list["conversations"].as_array().map(Vec::len), Some(1));
    }
    server.stop().await;
}
