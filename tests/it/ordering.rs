//! Ordering: concurrent senders in one conversation see gapless seqs in one order, and the
//! sends of many conversations share commits while each conversation stays gapless.

use std::collections::HashMap;

use futures_util::future::join_all;
use serde_json::json;

use crate::common::*;

backends!(
    concurrent_senders_see_gapless_ordered_seqs,
    concurrent_sends_share_commits_and_each_conversation_stays_gapless,
);

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

async fn concurrent_sends_share_commits_and_each_conversation_stays_gapless(backend: Backend) {
    const PAIRS: usize = 10;
    const EACH: usize = 15;
    let server = TestServer::start_with(backend, |c| c.limits.rate_burst = 100.0).await;
    let mut pairs = pairs(&server, PAIRS).await;
    let before = server.metrics().await;

    // Every user sends all their messages without waiting for acks, and sends their first one
    // a second time at once (as a client resending after a reconnect would).
    let mut refs = send_all(&mut pairs, EACH).await;
    let mut mine = refs.iter_mut();
    for (conversation, users) in &mut pairs {
        for (user, ws) in users.iter_mut() {
            let first = format!("{}-0", user.username);
            let data = json!({"conversation_id": conversation, "body": "m0", "client_id": first});
            let reference = ws.command("message:send", data).await;
            mine.next().expect("refs per user").push((reference, first));
        }
    }

    let mut acked: HashMap<String, String> = HashMap::new(); // client_id → message id
    let mut sockets = pairs.iter_mut().flat_map(|(_, users)| users.iter_mut());
    for mine in &refs {
        let (_, ws) = sockets.next().expect("a socket per user");
        for (reference, client_id) in mine {
            let reply = ws.reply_to(reference).await;
            assert_eq!(reply["type"], "ack", "{client_id}: {reply}");
            let id = reply["data"]["message"]["id"].as_str().expect("message id").to_string();
            if let Some(first) = acked.insert(client_id.clone(), id.clone()) {
                assert_eq!(first, id, "{client_id} sent twice is acked twice with the same message");
            }
        }
    }

    for (conversation, users) in &pairs {
        let messages = server.history(&users[0].0, conversation).await;
        assert_eq!(messages.len(), 2 * EACH, "conversation {conversation}: each message stored once");
        assert_gapless(&messages, conversation);
        for (user, _) in users {
            // Each sender's own messages are in the order they were sent.
            let bodies: Vec<&str> = messages
                .iter()
                .filter(|m| m["sender_id"] == user.id.as_str())
                .map(|m| m["body"].as_str().expect("body"))
                .collect();
            let sent: Vec<String> = (0..EACH).map(|k| format!("m{k}")).collect();
            assert_eq!(bodies, sent, "{}'s messages keep their order", user.username);
        }
        for message in &messages {
            let client_id = message["client_id"].as_str().expect("client_id");
            assert_eq!(acked.get(client_id), message["id"].as_str().map(str::to_string).as_ref(), "acked as stored");
        }
    }

    // Some transaction carried more than one message.
    let after = server.metrics().await;
    let batches =
        metric(&after, "parley_commit_batch_messages_count") - metric(&before, "parley_commit_batch_messages_count");
    let committed =
        metric(&after, "parley_commit_batch_messages_sum") - metric(&before, "parley_commit_batch_messages_sum");
    assert!(committed >= (2 * EACH * PAIRS) as f64, "every send went through the committer: {committed}");
    assert!(batches < committed, "{committed} messages in {batches} transactions: some were grouped");
    server.stop().await;
}
