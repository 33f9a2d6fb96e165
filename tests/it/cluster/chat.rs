//! People on different nodes chat, type, read and see each other's presence; concurrent senders
//! on three nodes give every session one gapless order; the message rate limit counts a user's
//! sends on every node together; and each node's broker metrics count what crossed.

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::*;
use crate::common::cluster::*;
use crate::common::*;

/// Alice is on node A (and has a second device on B), Bob on node B (and a second device on A).
/// Everything a single server does between them happens across the nodes: the new conversation,
/// messages both ways to every session, unread counts, typing, read receipts, and presence.
#[actix_web::test]
async fn people_on_two_nodes_chat_type_read_and_see_presence() {
    let Some(cluster) = Cluster::start(2, |config| config.limits.presence_grace_ms = 200).await else { return };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let alice = node_a.user("alice").await;
    let bob = node_b.user("bob").await;
    let carol = node_a.user("carol").await;
    let mut a = node_a.ws(&alice).await;
    let mut a_on_b = node_b.ws(&alice).await;
    let mut b = node_b.ws(&bob).await;
    let mut b_on_a = node_a.ws(&bob).await;

    // Alice makes the conversation on A: Bob's sessions on both nodes see it appear, and so does
    // her own device on B.
    let conversation = node_a.direct(&alice, &bob).await;
    let is_it = |d: &Value| d["conversation"]["id"] == conversation.as_str();
    for (who, ws) in [("Bob on B", &mut b), ("Bob on A", &mut b_on_a), ("Alice on B", &mut a_on_b)] {
        let created = ws.event_where("conversation:updated", is_it).await;
        assert_eq!(created["conversation"]["kind"], "direct", "{who}: {created}");
        assert_eq!(created["conversation"]["members"].as_array().map(Vec::len), Some(2), "{who}: {created}");
    }

    // Alice sends on A: acked with seq 1; every session of both, on both nodes, gets the very
    // same message.
    let sent =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "hi Bob", "client_id": "a-1"})).await;
    let first = sent["message"].clone();
    assert_eq!(first["seq"], 1, "{sent}");
    for (who, ws) in
        [("Alice on A", &mut a), ("Alice on B", &mut a_on_b), ("Bob on B", &mut b), ("Bob on A", &mut b_on_a)]
    {
        let new = ws.event("message:new").await;
        assert_eq!(new["message"], first, "{who} got message:new");
    }
    // Bob's sessions on both nodes are told his unread count.
    for (who, ws) in [("Bob on B", &mut b), ("Bob on A", &mut b_on_a)] {
        let unread = ws.event_where("unread:updated", |d| d["conversation_id"] == conversation.as_str()).await;
        assert_eq!((unread["unread_count"].as_i64(), unread["total_unread"].as_i64()), (Some(1), Some(1)), "{who}");
    }

    // Bob types on B: Alice, on both nodes, sees it start and stop.
    b.ack("typing:start", json!({"conversation_id": conversation})).await;
    for ws in [&mut a, &mut a_on_b] {
        let typing = ws.event("typing:updated").await;
        assert_eq!(typing, json!({"conversation_id": conversation, "user_id": bob.id, "typing": true}));
    }
    b.ack("typing:stop", json!({"conversation_id": conversation})).await;
    for ws in [&mut a, &mut a_on_b] {
        let typing = ws.event("typing:updated").await;
        assert_eq!(typing, json!({"conversation_id": conversation, "user_id": bob.id, "typing": false}));
    }

    // Bob reads on B: Alice gets the receipt on A, and Bob's device on A its count of zero.
    let read = b.ack("read:mark", json!({"conversation_id": conversation})).await;
    assert_eq!(read, json!({"last_read_seq": 1, "unread_count": 0, "total_unread": 0}));
    let receipt = a.event("read:updated").await;
    assert_eq!(receipt, json!({"conversation_id": conversation, "user_id": bob.id, "last_read_seq": 1}));
    let unread = b_on_a.event_where("unread:updated", |d| d["unread_count"] == 0).await;
    assert_eq!(unread["total_unread"], 0, "{unread}");

    // Bob starts typing on his device on A...
    b_on_a.ack("typing:start", json!({"conversation_id": conversation})).await;
    for ws in [&mut a, &mut a_on_b] {
        let typing = ws.event("typing:updated").await;
        assert_eq!(typing, json!({"conversation_id": conversation, "user_id": bob.id, "typing": true}));
    }
    // ...and answers on B: seq 2, on every session; Alice is told she has one unread, and sees
    // his typing end (it is his, whichever node he typed on).
    let reply = b.ack("message:send", json!({"conversation_id": conversation, "body": "hello Alice"})).await;
    let second = reply["message"].clone();
    assert_eq!(second["seq"], 2, "{reply}");
    for (who, ws) in
        [("Alice on A", &mut a), ("Alice on B", &mut a_on_b), ("Bob on B", &mut b), ("Bob on A", &mut b_on_a)]
    {
        let new = ws.event_where("message:new", |d| d["message"]["seq"] == 2).await;
        assert_eq!(new["message"], second, "{who} got Bob's answer");
    }
    for (who, ws) in [("Alice on A", &mut a), ("Alice on B", &mut a_on_b)] {
        let unread = ws.event_where("unread:updated", |d| d["conversation_id"] == conversation.as_str()).await;
        assert_eq!((unread["unread_count"].as_i64(), unread["total_unread"].as_i64()), (Some(1), Some(1)), "{who}");
        let typing = ws.event("typing:updated").await;
        assert_eq!(typing, json!({"conversation_id": conversation, "user_id": bob.id, "typing": false}), "{who}");
    }
    // The history is the same through either node.
    for node in [node_a, node_b] {
        let history = node.history(&alice, &conversation).await;
        assert_eq!(history, vec![first.clone(), second.clone()]);
    }

    // Presence: Carol, who has a conversation with Alice, connects on B only. Alice, on A, is
    // told, and A answers that Carol is online.
    node_a.direct(&alice, &carol).await;
    let before_carol = chrono::Utc::now();
    let mut c = node_b.ws(&carol).await;
    let online = a.event_where("presence:updated", |d| is_presence_of(d, &carol)).await;
    assert_eq!(online["online"], true, "{online}");
    timestamp(&online["last_seen_at"]);
    let (status, user) = node_a.get(Some(&alice), &format!("/api/users/{}", carol.id)).await;
    assert_eq!((status, &user["online"]), (200, &json!(true)), "A says Carol (on B) is online: {user}");
    let answer = a.ack("presence:query", json!({"user_ids": [carol.id, bob.id]})).await;
    assert_eq!(answer["presence"][0]["online"], true, "{answer}");
    assert_eq!(answer["presence"][1]["online"], true, "{answer}");
    assert_eq!(c.ack("ping", json!({})).await, json!({}));

    // Carol leaves: after the grace period Alice, on A, sees her offline, with when she was last
    // seen; A says the same when asked.
    c.close().await;
    let offline = a.event_where("presence:updated", |d| is_presence_of(d, &carol) && d["online"] == false).await;
    let offline_b = a_on_b.event_where("presence:updated", |d| is_presence_of(d, &carol) && d["online"] == false).await;
    assert_eq!(offline_b, offline, "both nodes tell the same");
    let last_seen = timestamp(&offline["last_seen_at"]);
    assert!(
        last_seen >= before_carol - chrono::Duration::seconds(1) && last_seen <= chrono::Utc::now(),
        "Carol was last seen at {last_seen}, while she was connected (from {before_carol})"
    );
    let (status, user) = node_a.get(Some(&alice), &format!("/api/users/{}", carol.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!((&user["online"], &user["last_seen_at"]), (&json!(false), &offline["last_seen_at"]), "{user}");
    let answer = a.ack("presence:query", json!({"user_ids": [carol.id]})).await;
    assert_eq!(
        answer,
        json!({"presence": [{"user_id": carol.id, "online": false, "last_seen_at": offline["last_seen_at"]}]})
    );

    // Online while any node holds a session: Carol comes back on both nodes, and Dave, another
    // of Alice's contacts, on B. Carol's session on B closes, then Dave's (who serves as a clock:
    // his grace period on B begins after hers and is as long).
    let dave = node_a.user("dave").await;
    node_a.direct(&alice, &dave).await;
    let c_on_a = node_a.ws(&carol).await;
    let c_on_b = node_b.ws(&carol).await;
    for ws in [&mut a, &mut a_on_b] {
        let back = ws.event_where("presence:updated", |d| is_presence_of(d, &carol)).await;
        assert_eq!(back["online"], true, "{back}");
    }
    let d = node_b.ws(&dave).await;
    let online = a.event_where("presence:updated", |d| is_presence_of(d, &dave)).await;
    assert_eq!(online["online"], true, "{online}");
    let http_b = cluster.http(1);
    let sessions_on_b = |actors: &Value| actors["sessions"]["count"].as_i64().expect("sessions");
    let before = sessions_on_b(&http_b.wait_actors("B's sessions", |_| true).await);
    c_on_b.close().await;
    http_b.wait_actors("Carol's session on B is gone", |s| sessions_on_b(s) == before - 1).await;
    d.close().await;
    // Everything Alice sees until Dave is offline: Carol never goes offline.
    loop {
        let frame = a.next().await;
        if frame["type"] == "presence:updated" && is_presence_of(&frame["data"], &carol) {
            assert_ne!(frame["data"]["online"], false, "Carol went offline with a session on A: {frame}");
        }
        if frame["type"] == "presence:updated" && is_presence_of(&frame["data"], &dave) {
            assert_eq!(frame["data"]["online"], false, "{frame}");
            break;
        }
    }
    for ws in [&mut a, &mut a_on_b] {
        let answer = ws.ack("presence:query", json!({"user_ids": [carol.id, dave.id]})).await;
        assert_eq!(answer["presence"][0]["online"], true, "Carol is on A: {answer}");
        assert_eq!(answer["presence"][1]["online"], false, "{answer}");
    }
    // Her last session, on A, closes: now she is offline, on both nodes.
    c_on_a.close().await;
    let offline = a.event_where("presence:updated", |d| is_presence_of(d, &carol)).await;
    assert_eq!(offline["online"], false, "{offline}");
    let offline_b = a_on_b.event_where("presence:updated", |d| is_presence_of(d, &carol) && d["online"] == false).await;
    assert_eq!(offline_b["last_seen_at"], offline["last_seen_at"]);
    cluster.stop().await;
}

/// Three people, each on another node, send into one group at once, several sends in flight
/// each; a listener on every node. Every session sees seqs 1..n once each, in order, and the
/// acks carry n distinct seqs.
#[actix_web::test]
async fn concurrent_senders_on_three_nodes_give_every_session_one_gapless_order() {
    const EACH: usize = 30;
    let Some(cluster) = Cluster::start(3, unlimited).await else { return };
    let http = cluster.http(0);
    let mut senders = Vec::new();
    let mut listeners = Vec::new();
    for i in 0..3 {
        senders.push(http.user(&format!("sender{i}")).await);
        listeners.push(http.user(&format!("listener{i}")).await);
    }
    let members: Vec<&str> = senders[1..].iter().chain(&listeners).map(|u| u.id.as_str()).collect();
    let (status, group) = http
        .post(
            Some(&senders[0]),
            "/api/conversations",
            json!({"kind": "group", "title": "three", "member_ids": members}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let conversation = group["id"].as_str().expect("conversation id").to_string();
    let mut sending = Vec::new();
    let mut listening = Vec::new();
    for i in 0..3 {
        sending.push(cluster.nodes[i].ws(&senders[i]).await);
        listening.push(cluster.nodes[i].ws(&listeners[i]).await);
    }

    let total = EACH * senders.len();
    // Each sender puts all its sends on the wire, then reads the replies; meanwhile the
    // listeners read what arrives.
    let sends = sending.iter_mut().enumerate().map(|(i, ws)| {
        let conversation = conversation.clone();
        async move {
            let mut refs = Vec::new();
            for n in 0..EACH {
                let data = json!({"conversation_id": conversation, "body": format!("{i}-{n}"), "client_id": format!("{i}-{n}")});
                refs.push(ws.command("message:send", data).await);
            }
            let mut acked = Vec::new();
            for r in refs {
                let reply = ws.reply_to(&r).await;
                assert_eq!(reply["type"], "ack", "sender {i}: {reply}");
                acked.push(reply["data"]["message"]["seq"].as_i64().expect("seq"));
            }
            acked
        }
    });
    let listen = listening.iter_mut().map(|ws| async move {
        let mut seqs = Vec::new();
        while seqs.len() < total {
            seqs.push(ws.event("message:new").await["message"]["seq"].as_i64().expect("seq"));
        }
        seqs
    });
    let (acked, heard) = futures_util::join!(join_all(sends), join_all(listen));

    let expected: Vec<i64> = (1..=total as i64).collect();
    let mut all_acked: Vec<i64> = acked.into_iter().flatten().collect();
    all_acked.sort_unstable();
    assert_eq!(all_acked, expected, "the acks carry seqs 1..{total}, each once");
    for (i, seqs) in heard.iter().enumerate() {
        assert_eq!(seqs, &expected, "the listener on node {i} saw every seq once, in order");
    }
    // The senders' own sessions too.
    for (i, ws) in sending.iter_mut().enumerate() {
        let mut seqs = Vec::new();
        while seqs.len() < total {
            seqs.push(ws.event("message:new").await["message"]["seq"].as_i64().expect("seq"));
        }
        assert_eq!(seqs, expected, "sender {i}'s session saw every seq once, in order");
    }
    let history = cluster.http(2).history(&listeners[2], &conversation).await;
    let stored: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().expect("seq")).collect();
    assert_eq!(stored, expected);
    cluster.stop().await;
}

/// A burst of 4, hardly any refill: two sends on A and two on B use it up, and the next send is
/// refused on either node (a per-node limit would let it through).
#[actix_web::test]
async fn the_message_rate_limit_counts_a_users_sends_on_every_node() {
    let Some(cluster) = Cluster::start(2, |config| {
        config.limits.rate_per_sec = 0.05;
        config.limits.rate_burst = 4.0;
    })
    .await
    else {
        return;
    };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let alice = node_a.user("alice").await;
    let bob = node_a.user("bob").await;
    let conversation = node_a.direct(&alice, &bob).await;
    let mut a = node_a.ws(&alice).await;
    let mut a_on_b = node_b.ws(&alice).await;
    for n in 0..4 {
        let ws = if n < 2 { &mut a } else { &mut a_on_b };
        ws.ack("message:send", json!({"conversation_id": conversation, "body": format!("m{n}")})).await;
    }
    for (node, ws) in [("A", &mut a), ("B", &mut a_on_b)] {
        let reply = ws.request("message:send", json!({"conversation_id": conversation, "body": "one too many"})).await;
        assert_eq!(
            (&reply["type"], &reply["data"]["code"]),
            (&json!("error"), &json!("rate_limited")),
            "the fifth send, on {node}: {reply}"
        );
        assert!(reply["data"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "retry_after_ms in {reply}");
    }
    let path = format!("/api/conversations/{conversation}/messages");
    let (status, body) = node_b.post(Some(&alice), &path, json!({"body": "over REST"})).await;
    assert_eq!((status, &body["error"]["code"]), (429, &json!("rate_limited")), "{body}");
    // Bob has a bucket of his own.
    let (status, sent) = node_b.post(Some(&bob), &path, json!({"body": "my turn"})).await;
    assert_eq!((status, sent["seq"].as_i64()), (201, Some(5)), "{sent}");
    cluster.stop().await;
}

/// Two nodes as processes (each has its own metrics): after chat across them, each has published
/// and received events, and says its broker is up.
#[actix_web::test]
async fn broker_metrics_count_what_crossed_the_nodes() {
    let Some(cluster) = Cluster::start(0, |_| {}).await else { return };
    let node_a = node_process(&cluster, &[]).await;
    let node_b = node_process(&cluster, &[]).await;
    let (http_a, http_b) = (node_a.http(), node_b.http());
    let alice = http_a.user("alice").await;
    let bob = http_a.user("bob").await;
    let conversation = http_a.direct(&alice, &bob).await;
    let mut a = Ws::open(&node_a.ws_base(), &alice).await;
    let mut b = Ws::open(&node_b.ws_base(), &bob).await;
    const SENDS: usize = 5;
    for n in 0..SENDS {
        let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": format!("a{n}")})).await;
        assert_eq!(
            b.event_where("message:new", |d| d["message"]["id"] == sent["message"]["id"]).await["message"],
            sent["message"]
        );
        let sent = b.ack("message:send", json!({"conversation_id": conversation, "body": format!("b{n}")})).await;
        assert_eq!(
            a.event_where("message:new", |d| d["message"]["id"] == sent["message"]["id"]).await["message"],
            sent["message"]
        );
    }
    for (name, http) in [("A", &http_a), ("B", &http_b)] {
        let text = http.metrics().await;
        for family in ["parley_broker_published_total", "parley_broker_received_total", "parley_broker_up"] {
            assert!(text.contains(family), "node {name} has no {family} in /metrics:\n{text}");
        }
        let published = metric(&text, "parley_broker_published_total");
        let received = metric(&text, "parley_broker_received_total");
        assert!(published >= SENDS as f64, "node {name} published {published} events");
        assert!(received >= SENDS as f64, "node {name} received {received} events");
        assert_eq!(metric(&text, "parley_broker_up"), 1.0, "node {name}'s broker is up");
        assert_eq!(metric(&text, "parley_broker_dropped_total"), 0.0, "node {name} dropped nothing");
    }
    drop((a, b, node_a, node_b));
    cluster.stop().await;
}
