//! Group commit and load shedding: concurrent sends of many conversations share transactions,
//! each conversation's seqs stay gapless and in order, a client_id sent twice at once is stored
//! once, and when sends would wait past the send deadline they are refused: a send is either
//! acknowledged and stored, or refused and absent.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use serde_json::{Value, json};

backends!(
    concurrent_sends_share_commits_and_each_conversation_stays_gapless,
    a_send_past_its_deadline_is_refused_and_not_stored,
    under_a_flood_each_send_is_stored_if_acked_and_absent_if_refused,
);

/// Direct conversations of users `2i` and `2i + 1`, with a socket per user.
async fn pairs(server: &TestServer, count: usize) -> Vec<(String, Vec<(TestUser, Ws)>)> {
    let mut pairs = Vec::new();
    for i in 0..count {
        let a = server.user(&format!("ann{i}")).await;
        let b = server.user(&format!("bob{i}")).await;
        let conversation = server.direct(&a, &b).await;
        let (wa, wb) = (server.ws(&a).await, server.ws(&b).await);
        pairs.push((conversation, vec![(a, wa), (b, wb)]));
    }
    pairs
}

/// Each user sends `each` messages ("m0", "m1", … with client_ids "USERNAME-k") without waiting
/// for acks; per user, in the order of `pairs`, the (ref, client_id) of each send.
async fn send_all(pairs: &mut [(String, Vec<(TestUser, Ws)>)], each: usize) -> Vec<Vec<(String, String)>> {
    let mut refs = Vec::new();
    for (conversation, users) in pairs.iter_mut() {
        for (user, ws) in users.iter_mut() {
            let mut mine = Vec::new();
            for k in 0..each {
                let client_id = format!("{}-{k}", user.username);
                let data = json!({"conversation_id": conversation, "body": format!("m{k}"), "client_id": client_id});
                mine.push((ws.command("message:send", data).await, client_id));
            }
            refs.push(mine);
        }
    }
    refs
}

/// Every message of `conversation`, oldest first.
async fn stored(server: &TestServer, user: &TestUser, conversation: &str) -> Vec<Value> {
    let (status, page) = server.get(Some(user), &format!("/api/conversations/{conversation}/messages?limit=200")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["has_more"], false, "the test's messages fit in one page");
    page["messages"].as_array().expect("messages").clone()
}

fn assert_gapless(messages: &[Value], conversation: &str) {
    let seqs: Vec<i64> = messages.iter().map(|m| m["seq"].as_i64().expect("seq")).collect();
    let expected: Vec<i64> = (1..=messages.len() as i64).collect();
    assert_eq!(seqs, expected, "conversation {conversation}: seqs are 1..n without gaps");
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
        let messages = stored(&server, &users[0].0, conversation).await;
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

async fn a_send_past_its_deadline_is_refused_and_not_stored(backend: Backend) {
    // A deadline of zero: every send has waited too long by the time it could commit.
    let server = TestServer::start_with(backend, |c| c.limits.send_deadline_ms = 0).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let before = metric(&server.metrics().await, "parley_sends_shed_total");

    let reply =
        a.request("message:send", json!({"conversation_id": conversation, "body": "late", "client_id": "c1"})).await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["data"]["code"], "unavailable");
    assert!(reply["data"]["message"].as_str().expect("message").contains("overloaded"), "{reply}");
    let (status, body) = server
        .post(Some(&alice), &format!("/api/conversations/{conversation}/messages"), json!({"body": "late too"}))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("unavailable")), "{body}");
    assert!(stored(&server, &alice, &conversation).await.is_empty(), "nothing refused is stored");
    assert!(metric(&server.metrics().await, "parley_sends_shed_total") >= before + 2.0, "sheds are counted");

    // The session carries on, and membership changes (not sends) are not shed.
    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    let (status, group) = server
        .post(Some(&alice), "/api/conversations", json!({"kind": "group", "title": "g", "member_ids": [bob.id]}))
        .await;
    assert_eq!(status, 201, "{group}");
    let group = group["id"].as_str().expect("group id");
    let (status, body) =
        server.post(Some(&alice), &format!("/api/conversations/{group}/members"), json!({"user_id": carol.id})).await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
}

async fn under_a_flood_each_send_is_stored_if_acked_and_absent_if_refused(backend: Backend) {
    const PAIRS: usize = 6;
    const EACH: usize = 40;
    let server = TestServer::start_with(backend, |c| {
        c.limits.rate_burst = 100.0;
        c.limits.max_frames_per_sec = 1000.0;
        c.limits.send_deadline_ms = 20;
        c.commit_lanes = 1;
    })
    .await;
    let mut pairs = pairs(&server, PAIRS).await;
    let refs = send_all(&mut pairs, EACH).await;
    let (mut acked, mut refused) = (HashMap::new(), HashSet::new());
    let mut sockets = pairs.iter_mut().flat_map(|(_, users)| users.iter_mut());
    for mine in &refs {
        let (_, ws) = sockets.next().expect("a socket per user");
        for (reference, client_id) in mine {
            let reply = ws.reply_to(reference).await;
            match reply["type"].as_str() {
                Some("ack") => drop(acked.insert(client_id.clone(), reply["data"]["message"]["id"].clone())),
                _ => {
                    assert_eq!(reply["data"]["code"], "unavailable", "{client_id}: {reply}");
                    refused.insert(client_id.clone());
                }
            }
        }
    }
    assert_eq!(acked.len() + refused.len(), 2 * PAIRS * EACH, "every send is answered");
    println!("flood: {} acked, {} refused", acked.len(), refused.len());
    for (conversation, users) in &pairs {
        let messages = stored(&server, &users[0].0, conversation).await;
        assert_gapless(&messages, conversation);
        for message in &messages {
            let client_id = message["client_id"].as_str().expect("client_id");
            assert!(!refused.contains(client_id), "{client_id} was refused but is stored");
            assert_eq!(acked.get(client_id), Some(&message["id"]), "{client_id} is stored as acked");
        }
        let acked_here = acked.keys().filter(|c| users.iter().any(|(u, _)| c.starts_with(&format!("{}-", u.username))));
        assert_eq!(messages.len(), acked_here.count(), "conversation {conversation}: every ack is stored");
    }
    server.stop().await;
}
