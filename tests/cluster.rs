//! Several nodes (issue 6): Parley nodes that share one PostgreSQL and one Redis behave as one
//! server. People on different nodes chat, type, read and see each other's presence; concurrent
//! senders on three nodes give every session one gapless order; a node killed by SIGKILL takes
//! its users offline elsewhere and loses nothing it acknowledged; Redis going away degrades the
//! cluster (each node still serves its own sessions) until it returns; the message rate limit
//! counts a user's sends on every node together; a member added or removed on one node is added
//! or removed on every node, even if Redis was down when it happened.
//!
//! These run on PostgreSQL only (SQLite is for one node; only the test that SQLite refuses a
//! cluster runs on it): with `PARLEY_TEST_DATABASE_URL` unset they pass without running, unless
//! `PARLEY_REQUIRE_POSTGRES` is set. Redis is
//! `PARLEY_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), under a key prefix of each test's
//! own; the tests of a Redis outage start a `redis-server` of their own.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

/// No message rate limit, for the tests that send fast.
fn unlimited(config: &mut parley::config::Config) {
    config.limits.rate_per_sec = 100_000.0;
    config.limits.rate_burst = 100_000.0;
}

/// An RFC 3339 UTC time with milliseconds, as a `chrono` time.
fn timestamp(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = value.as_str().unwrap_or_else(|| panic!("a timestamp, got {value}"));
    assert!(
        text.len() == 24 && text.as_bytes()[19] == b'.' && text.ends_with('Z'),
        "a UTC time with milliseconds, got {text}"
    );
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|err| panic!("RFC 3339, got {text}: {err}")).to_utc()
}

/// Reads `message:new` events until `message` arrives (and checks it arrived as acked), noting
/// the seq of each in `seen`.
async fn until_message(ws: &mut Ws, message: &Value, seen: &mut Vec<i64>) {
    loop {
        let new = ws.event("message:new").await;
        seen.push(new["message"]["seq"].as_i64().expect("seq"));
        if new["message"]["id"] == message["id"] {
            assert_eq!(&new["message"], message);
            return;
        }
    }
}

fn is_presence_of(data: &Value, user: &TestUser) -> bool {
    data["user_id"] == user.id.as_str()
}

// ---------------------------------------------------------------------------------------------
// 1. Two people on two nodes

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
        let history = Http::of(node).history(&alice, &conversation).await;
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

// ---------------------------------------------------------------------------------------------
// 2. Concurrent senders on three nodes

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

// ---------------------------------------------------------------------------------------------
// 3. A node killed mid-conversation

/// Bob's node is a process, killed by SIGKILL while he sends. Alice, on the surviving node, sees
/// him go offline within about a node TTL (plus a third of it and the presence grace), with a
/// `last_seen_at`; every message that node acknowledged is in the history through the survivor.
#[actix_web::test]
async fn a_killed_node_takes_its_users_offline_and_loses_nothing_it_acked() {
    const TTL_MS: u64 = 1_500;
    const GRACE_MS: u64 = 200;
    let Some(cluster) = Cluster::start(1, |config| {
        unlimited(config);
        config.cluster.node_ttl_ms = TTL_MS;
        config.limits.presence_grace_ms = GRACE_MS;
    })
    .await
    else {
        return;
    };
    let survivor = &cluster.nodes[0];
    let (ttl, grace) = (TTL_MS.to_string(), GRACE_MS.to_string());
    let mut doomed = node_process(
        &cluster,
        &[
            ("PARLEY_NODE_TTL_MS", &ttl),
            ("PARLEY_PRESENCE_GRACE_MS", &grace),
            ("PARLEY_RATE_PER_SEC", "100000"),
            ("PARLEY_RATE_BURST", "100000"),
        ],
    )
    .await;
    let alice = survivor.user("alice").await;
    let bob = survivor.user("bob").await;
    let conversation = survivor.direct(&alice, &bob).await;
    let mut a = survivor.ws(&alice).await;
    let bob_connects = chrono::Utc::now();
    let mut b = Ws::open(&doomed.ws_base(), &bob).await;
    let online = a.event_where("presence:updated", |d| is_presence_of(d, &bob)).await;
    assert_eq!(online["online"], true, "{online}");

    // They chat across the two nodes.
    let mut acked: Vec<Value> = Vec::new();
    for n in 0..3 {
        let sent = b.ack("message:send", json!({"conversation_id": conversation, "body": format!("bob {n}")})).await;
        let got = a.event_where("message:new", |d| d["message"]["id"] == sent["message"]["id"]).await;
        assert_eq!(got["message"], sent["message"]);
        acked.push(sent["message"].clone());
    }
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "alice"})).await;
    let got = b.event_where("message:new", |d| d["message"]["id"] == sent["message"]["id"]).await;
    assert_eq!(got["message"], sent["message"]);

    // Bob puts 30 sends on the wire; once 10 are acked, his node is killed.
    let mut refs = Vec::new();
    for n in 0..30 {
        let data =
            json!({"conversation_id": conversation, "body": format!("burst {n}"), "client_id": format!("b-{n}")});
        refs.push(b.command("message:send", data).await);
    }
    for r in &refs[..10] {
        let reply = b.reply_to(r).await;
        assert_eq!(reply["type"], "ack", "{reply}");
        acked.push(reply["data"]["message"].clone());
    }
    let killed_at = Instant::now();
    doomed.kill().await;
    // Replies that were already on their way before the kill count as acked too.
    let pending: HashSet<&str> = refs[10..].iter().map(String::as_str).collect();
    while let Some(frame) = b.try_next().await {
        if frame["type"] == "ack" && frame["ref"].as_str().is_some_and(|r| pending.contains(r)) {
            acked.push(frame["data"]["message"].clone());
        }
    }

    // Alice sees Bob go offline, within a bound.
    let offline = tokio::time::timeout(
        PATIENCE,
        a.event_where("presence:updated", |d| is_presence_of(d, &bob) && d["online"] == false),
    )
    .await
    .unwrap_or_else(|_| panic!("Bob is not offline on the surviving node {PATIENCE:?} after his node was killed"));
    let took = killed_at.elapsed();
    eprintln!(
        "a_killed_node: Bob went offline on the survivor {took:?} after the kill \
         (node TTL {TTL_MS} ms + a third + grace {GRACE_MS} ms = {} ms)",
        TTL_MS + TTL_MS / 3 + GRACE_MS
    );
    const SLACK_MS: u64 = 3_000;
    let bound = Duration::from_millis(TTL_MS + TTL_MS / 3 + GRACE_MS + SLACK_MS);
    assert!(
        took <= bound,
        "Bob went offline on the survivor {took:?} after his node was killed; the bound is {bound:?} \
         (node TTL {TTL_MS} ms + a third {} ms + grace {GRACE_MS} ms + slack {SLACK_MS} ms)",
        TTL_MS / 3
    );
    let last_seen = timestamp(&offline["last_seen_at"]);
    assert!(
        last_seen >= bob_connects - chrono::Duration::seconds(1) && last_seen <= chrono::Utc::now(),
        "Bob's last_seen_at {last_seen} is while he was connected (from {bob_connects}) or at his node's death"
    );
    let (status, user) = survivor.get(Some(&alice), &format!("/api/users/{}", bob.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!((&user["online"], &user["last_seen_at"]), (&json!(false), &offline["last_seen_at"]), "{user}");

    // Every message the killed node acknowledged is there, as acknowledged; seqs have no gaps.
    let history = Http::of(survivor).history(&alice, &conversation).await;
    let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, (1..=history.len() as i64).collect::<Vec<_>>(), "seqs run 1..n");
    let stored: HashMap<&str, &Value> = history.iter().map(|m| (m["id"].as_str().expect("id"), m)).collect();
    assert!(acked.len() >= 13, "{} acked", acked.len());
    for message in &acked {
        let id = message["id"].as_str().expect("message id");
        assert_eq!(stored.get(id), Some(&message), "acked by the killed node, but not in the history as acked");
    }
    // The survivor goes on serving Alice.
    a.ack("message:send", json!({"conversation_id": conversation, "body": "still here"})).await;
    drop(doomed);
    cluster.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Redis restarted mid-conversation

/// Redis (the test's own) is killed in the middle of a conversation across two nodes: both nodes
/// say they are degraded (still 200 on /readyz), go on committing and acknowledging sends; when
/// Redis is back, messages cross the nodes again, and `sync` returns what was sent meanwhile.
#[actix_web::test]
async fn a_redis_outage_degrades_the_cluster_and_delivery_resumes_when_it_returns() {
    if postgres_url().is_none() {
        return;
    }
    let mut redis = PrivateRedis::start().await;
    let Some(cluster) = Cluster::start_on_redis(2, &redis.url(), |config| {
        config.cluster.node_ttl_ms = 3_000;
    })
    .await
    else {
        return;
    };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (http_a, http_b) = (cluster.http(0), cluster.http(1));
    let alice = node_a.user("alice").await;
    let bob = node_a.user("bob").await;
    let carol = node_a.user("carol").await;
    let conversation = node_a.direct(&alice, &bob).await;
    node_a.direct(&alice, &carol).await;
    let mut a = node_a.ws(&alice).await;
    let mut b = node_b.ws(&bob).await;
    for http in [&http_a, &http_b] {
        let ready = http.wait_readyz("up", |status, _| status == 200).await;
        assert_eq!((&ready["status"], &ready["broker"]), (&json!("ready"), &json!("up")), "{ready}");
    }

    // Across the nodes, both ways. Every message:new each session gets is noted, in order.
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "before"})).await;
    until_message(&mut a, &sent["message"], &mut seen_a).await;
    until_message(&mut b, &sent["message"], &mut seen_b).await;
    let answer = b.ack("message:send", json!({"conversation_id": conversation, "body": "before too"})).await;
    until_message(&mut b, &answer["message"], &mut seen_b).await;
    until_message(&mut a, &answer["message"], &mut seen_a).await;
    let last_before = 2;
    assert_eq!((&seen_a[..], &seen_b[..]), (&[1, 2][..], &[1, 2][..]));

    // Redis dies: both nodes say so, and stay in the balancer.
    redis.kill().await;
    let mut node_ids = HashSet::new();
    for http in [&http_a, &http_b] {
        let ready = http.wait_readyz("the broker is down", |_, body| body["broker"] == "down").await;
        assert_eq!(ready["status"], "degraded", "{ready}");
        let (status, _) = http.get(None, "/readyz").await;
        assert_eq!(status, 200, "a node without Redis still serves its own sessions");
        let actors = http.wait_actors("admin says the broker is down", |s| s["broker"]["state"] == "down").await;
        node_ids.insert(actors["node_id"].as_str().unwrap_or_else(|| panic!("node_id in {actors}")).to_string());
    }
    assert_eq!(node_ids.len(), 2, "each node has its own node_id");

    // Sends still commit and ack, on either node; each node still delivers to its own sessions.
    let mut during = Vec::new();
    for n in 0..3 {
        let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": format!("during {n}")})).await;
        until_message(&mut a, &sent["message"], &mut seen_a).await;
        during.push(sent["message"].clone());
    }
    let sent = b.ack("message:send", json!({"conversation_id": conversation, "body": "during from B"})).await;
    until_message(&mut b, &sent["message"], &mut seen_b).await;
    during.push(sent["message"].clone());
    let history = http_b.history(&bob, &conversation).await;
    assert_eq!(history[last_before..], during[..], "what was sent while Redis was down is stored");
    // Carol comes online on B meanwhile: only B can know, for now.
    let _carol_b = node_b.ws(&carol).await;

    // Redis returns (empty: it kept nothing). Both nodes say so.
    redis.restart().await;
    for http in [&http_a, &http_b] {
        let ready = http.wait_readyz("the broker is up again", |_, body| body["broker"] == "up").await;
        assert_eq!(ready["status"], "ready", "{ready}");
        http.wait_actors("admin says the broker is up", |s| s["broker"]["state"] == "up").await;
    }
    // B registers its users again, and announces Carol, who came while Redis was away.
    let carol_online = a.event_where("presence:updated", |d| is_presence_of(d, &carol) && d["online"] == true).await;
    assert_eq!(carol_online["user_id"], carol.id.as_str());

    // Messages cross the nodes again, both ways; each session saw what it saw in seq order.
    let after = a.ack("message:send", json!({"conversation_id": conversation, "body": "after"})).await;
    until_message(&mut b, &after["message"], &mut seen_b).await;
    let back = b.ack("message:send", json!({"conversation_id": conversation, "body": "after too"})).await;
    until_message(&mut a, &back["message"], &mut seen_a).await;
    until_message(&mut b, &back["message"], &mut seen_b).await;
    eprintln!("a_redis_outage: Alice's session saw seqs {seen_a:?}, Bob's {seen_b:?}");
    // What a node missed while Redis was away it reads from the database (a gap fill) as soon
    // as a later message of the conversation reaches it: here, its own send during the outage
    // (Bob) or the first after (Alice). So neither session has a gap, let alone disorder.
    let all: Vec<i64> = (1..=back["message"]["seq"].as_i64().expect("seq")).collect();
    for (who, seen) in [("Alice", &seen_a), ("Bob", &seen_b)] {
        assert_eq!(seen, &all, "{who}'s session saw these seqs");
    }

    // Bob syncs from the last message he saw before the outage: everything since, in order.
    let synced =
        b.ack("sync", json!({"conversations": [{"conversation_id": conversation, "after_seq": last_before}]})).await;
    let got = &synced["conversations"][0];
    let mut expected = during.clone();
    expected.push(after["message"].clone());
    expected.push(back["message"].clone());
    assert_eq!(got["messages"].as_array().expect("messages"), &expected, "{synced}");
    assert_eq!(got["has_more"], false);

    // Presence is cluster-wide again: A knows that Bob, connected on B only, is online.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = a.ack("presence:query", json!({"user_ids": [bob.id]})).await;
        if answer["presence"][0]["online"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "after Redis returned, A still says Bob is offline: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.stop().await;
    drop(redis);
}

// ---------------------------------------------------------------------------------------------
// 5. The rate limit across the cluster

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

// ---------------------------------------------------------------------------------------------
// 6. Alone

/// SQLite is for one node: with a Redis URL the server does not start, and says why. A node
/// without Redis says its broker is off.
#[actix_web::test]
async fn sqlite_with_redis_does_not_start_and_a_lone_node_has_no_broker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = parley::config::Config::from_env();
    config.database_url = format!("sqlite://{}", dir.path().join("parley.db").display());
    config.jwt_secret = Some(SECRET.into());
    config.cluster.redis_url = Some(default_redis_url());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let error = match parley::start(listener, config).await {
        Ok(_) => panic!("a SQLite node with a Redis URL started"),
        Err(err) => err.to_string(),
    };
    let lower = error.to_lowercase();
    assert!(lower.contains("redis") && (lower.contains("sqlite") || lower.contains("postgres")), "{error}");
    // The command says so too, and exits with a failure.
    let log_path = dir.path().join("parley.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env("PARLEY_BIND", "127.0.0.1:0")
        .env("PARLEY_DATABASE_URL", format!("sqlite://{}", dir.path().join("parley.db").display()))
        .env("PARLEY_REDIS_URL", default_redis_url())
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("run parley");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for parley") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("parley runs on SQLite with a Redis URL");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = std::fs::read_to_string(&log_path).expect("log").to_lowercase();
    assert!(!status.success(), "parley ran on SQLite with a Redis URL: {log}");
    assert!(log.contains("redis") && log.contains("sqlite"), "the start-up error is not clear: {log}");

    let server = TestServer::start_with(Backend::Sqlite, |config| config.cluster.redis_url = None).await;
    let (status, ready) = server.get(None, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!((&ready["status"], &ready["broker"]), (&json!("ready"), &json!("off")), "{ready}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Metrics

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

// ---------------------------------------------------------------------------------------------
// 8. Group membership across nodes

/// The user ids of a `Conversation`'s members, sorted.
fn member_ids(conversation: &Value) -> Vec<String> {
    let members = conversation["members"].as_array().unwrap_or_else(|| panic!("members in {conversation}"));
    let mut ids: Vec<String> =
        members.iter().map(|m| m["user_id"].as_str().expect("member user_id").to_string()).collect();
    ids.sort();
    ids
}

fn sorted_ids(users: &[&TestUser]) -> Vec<String> {
    let mut ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    ids.sort();
    ids
}

/// Olivia, on node A, owns a group with Mia, on node B; she has a second device on B. She adds
/// Zed, on node C: his session there is told of the group and gets the system message that
/// announces him (and nothing said before he came); what Zed then says from C reaches every
/// member session on every node in seq order. Olivia removes Mia on A: Mia's session on B gets
/// the system message of her removal, then no more of the group (a later message to her in
/// another conversation shows that nothing of the group was ahead of it); sending there is
/// refused on B (WebSocket) and on C (REST). The history is the same through every node.
#[actix_web::test]
async fn group_membership_changes_on_one_node_reach_the_others() {
    let Some(cluster) = Cluster::start(3, unlimited).await else { return };
    let (node_a, node_b, node_c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    let olivia = node_a.user("olivia").await;
    let mia = node_b.user("mia").await;
    let zed = node_c.user("zed").await;
    let direct = node_a.direct(&olivia, &mia).await;
    let mut o = node_a.ws(&olivia).await;
    let mut o_on_b = node_b.ws(&olivia).await;
    let mut m = node_b.ws(&mia).await;
    let mut z = node_c.ws(&zed).await;

    let (status, created) = node_a
        .post(Some(&olivia), "/api/conversations", json!({"kind": "group", "title": "crew", "member_ids": [mia.id]}))
        .await;
    assert_eq!(status, 201, "{created}");
    let group = created["id"].as_str().expect("conversation id").to_string();
    let in_group = |d: &Value| d["message"]["conversation_id"] == group.as_str();
    let update = m.event_where("conversation:updated", |d| d["conversation"]["id"] == group.as_str()).await;
    assert_eq!(member_ids(&update["conversation"]), sorted_ids(&[&olivia, &mia]), "Mia on B: {update}");

    // Every message:new of the group each session gets, in the order it got them.
    let (mut seen_o, mut seen_o_on_b, mut seen_m, mut seen_z) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut messages = Vec::new();
    // Mia speaks on B before Zed comes: seq 1.
    let hello = m.ack("message:send", json!({"conversation_id": group, "body": "before Zed"})).await["message"].clone();
    assert_eq!(hello["seq"], 1, "{hello}");
    for (ws, seen) in [(&mut o, &mut seen_o), (&mut o_on_b, &mut seen_o_on_b), (&mut m, &mut seen_m)] {
        until_message(ws, &hello, seen).await;
    }
    messages.push(hello);

    // Olivia adds Zed, on A.
    let (status, added) =
        node_a.post(Some(&olivia), &format!("/api/conversations/{group}/members"), json!({"user_id": zed.id})).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(member_ids(&added), sorted_ids(&[&olivia, &mia, &zed]), "{added}");
    assert_eq!(added["last_seq"], 2, "{added}");
    // Zed, on C, is told of the group with him in it...
    let update = z
        .event_where("conversation:updated", |d| {
            d["conversation"]["id"] == group.as_str()
                && d["conversation"]["members"].as_array().map(Vec::len) == Some(3)
        })
        .await;
    assert_eq!(member_ids(&update["conversation"]), sorted_ids(&[&olivia, &mia, &zed]), "Zed on C: {update}");
    // ...and his first message:new of the group is the system message that announces him: he
    // gets none of what was said before he came.
    let first = z.event_where("message:new", in_group).await["message"].clone();
    assert_eq!((&first["seq"], &first["kind"]), (&json!(2), &json!("system")), "Zed's first message on C: {first}");
    assert_eq!(first["sender_id"], olivia.id.as_str(), "{first}");
    seen_z.push(2);
    // Everyone else gets the very same system message, on every node.
    for (ws, seen) in [(&mut o, &mut seen_o), (&mut o_on_b, &mut seen_o_on_b), (&mut m, &mut seen_m)] {
        until_message(ws, &first, seen).await;
    }
    messages.push(first);

    // Zed speaks from C: seq 3, to every member session on every node.
    let from_zed =
        z.ack("message:send", json!({"conversation_id": group, "body": "hi from C"})).await["message"].clone();
    assert_eq!(from_zed["seq"], 3, "{from_zed}");
    for (ws, seen) in
        [(&mut o, &mut seen_o), (&mut o_on_b, &mut seen_o_on_b), (&mut m, &mut seen_m), (&mut z, &mut seen_z)]
    {
        until_message(ws, &from_zed, seen).await;
    }
    messages.push(from_zed);

    // Olivia removes Mia, on A. Mia's session on B gets the system message of her removal.
    let (status, body) = node_a.delete(Some(&olivia), &format!("/api/conversations/{group}/members/{}", mia.id)).await;
    assert_eq!(status, 204, "{body}");
    let removal = m.event_where("message:new", in_group).await["message"].clone();
    assert_eq!((&removal["seq"], &removal["kind"]), (&json!(4), &json!("system")), "Mia's removal on B: {removal}");
    assert_eq!(removal["sender_id"], olivia.id.as_str(), "{removal}");
    seen_m.push(4);
    for (ws, seen) in [(&mut o, &mut seen_o), (&mut o_on_b, &mut seen_o_on_b), (&mut z, &mut seen_z)] {
        until_message(ws, &removal, seen).await;
    }
    messages.push(removal);
    // The others, on B and C, are told the group is without her.
    for (who, ws) in [("Olivia on B", &mut o_on_b), ("Zed on C", &mut z)] {
        let update = ws
            .event_where("conversation:updated", |d| {
                d["conversation"]["id"] == group.as_str() && !member_ids(&d["conversation"]).contains(&mia.id)
            })
            .await;
        assert_eq!(member_ids(&update["conversation"]), sorted_ids(&[&olivia, &zed]), "{who}: {update}");
    }

    // Olivia writes in the group (seq 5): her device on B has it, so B has delivered it to
    // whoever it still counts as a member. Then she writes to Mia directly: Mia gets that, and
    // nothing of the group was ahead of it.
    let after =
        o.ack("message:send", json!({"conversation_id": group, "body": "Mia is gone"})).await["message"].clone();
    assert_eq!(after["seq"], 5, "{after}");
    for (ws, seen) in [(&mut o, &mut seen_o), (&mut o_on_b, &mut seen_o_on_b), (&mut z, &mut seen_z)] {
        until_message(ws, &after, seen).await;
    }
    messages.push(after);
    let barrier =
        o.ack("message:send", json!({"conversation_id": direct, "body": "sorry, Mia"})).await["message"].clone();
    let got = m.event_where("message:new", |d| d["message"]["conversation_id"] == direct.as_str()).await;
    assert_eq!(got["message"], barrier);
    let leaked: Vec<Value> = m.drain(|f| f["type"] == "message:new" && in_group(&f["data"]));
    assert!(leaked.is_empty(), "Mia, removed, still receives the group's messages on B: {leaked:?}");

    // Mia cannot write there any more: on B over WebSocket, on C over REST.
    assert_eq!(m.error("message:send", json!({"conversation_id": group, "body": "wait"})).await, "not_found");
    let (status, body) =
        node_c.post(Some(&mia), &format!("/api/conversations/{group}/messages"), json!({"body": "wait"})).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "Mia sends through C: {body}");

    // Each session saw the group's seqs in order, each once; the history is the same through
    // every node, and is what was delivered.
    assert_eq!(seen_o, vec![1, 2, 3, 4, 5], "Olivia on A");
    assert_eq!(seen_o_on_b, vec![1, 2, 3, 4, 5], "Olivia on B");
    assert_eq!(seen_m, vec![1, 2, 3, 4], "Mia on B");
    assert_eq!(seen_z, vec![2, 3, 4, 5], "Zed on C");
    for i in 0..3 {
        let history = cluster.http(i).history(&olivia, &group).await;
        assert_eq!(history, messages, "the history through node {i}");
    }
    cluster.stop().await;
}

/// Xavier and Yara, on node A, are in Olga's group; Olga is on node B. Xavier has spoken there
/// (so A's actor of the group is live and counts him a member). Redis dies; Olga removes Xavier
/// on B, which A cannot hear of. Xavier's send through A is refused (`not_found`) and not stored.
/// When Redis is back, Olga's next message reaches Yara on A, but not Xavier (a later message to
/// him in another conversation shows that nothing of the group was ahead of it).
#[actix_web::test]
async fn a_member_removed_while_redis_is_down_cannot_post_through_another_node() {
    if postgres_url().is_none() {
        return;
    }
    let mut redis = PrivateRedis::start().await;
    let Some(cluster) = Cluster::start_on_redis(2, &redis.url(), unlimited).await else { return };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (http_a, http_b) = (cluster.http(0), cluster.http(1));
    let olga = node_b.user("olga").await;
    let xavier = node_a.user("xavier").await;
    let yara = node_a.user("yara").await;
    let (status, created) = node_b
        .post(
            Some(&olga),
            "/api/conversations",
            json!({"kind": "group", "title": "club", "member_ids": [xavier.id, yara.id]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let group = created["id"].as_str().expect("conversation id").to_string();
    let in_group = |d: &Value| d["message"]["conversation_id"] == group.as_str();
    let direct = node_b.direct(&olga, &xavier).await;
    let mut o = node_b.ws(&olga).await;
    let mut x = node_a.ws(&xavier).await;
    let mut y = node_a.ws(&yara).await;

    // Xavier speaks from A while Redis is up: everyone has it, and A's actor knows him.
    let (mut seen_o, mut seen_x, mut seen_y) = (Vec::new(), Vec::new(), Vec::new());
    let hello = x.ack("message:send", json!({"conversation_id": group, "body": "hello"})).await["message"].clone();
    assert_eq!(hello["seq"], 1, "{hello}");
    for (ws, seen) in [(&mut o, &mut seen_o), (&mut x, &mut seen_x), (&mut y, &mut seen_y)] {
        until_message(ws, &hello, seen).await;
    }
    let actors = http_a
        .wait_actors("A's actor of the group is live", |s| {
            s["conversations"].as_array().is_some_and(|c| c.iter().any(|c| c["conversation_id"] == group.as_str()))
        })
        .await;
    let actor = actors["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|c| c["conversation_id"] == group.as_str())
        .cloned();
    assert_eq!(actor.as_ref().map(|a| &a["members"]), Some(&json!(3)), "A's actor of the group: {actor:?}");

    // Redis dies; both nodes say so.
    redis.kill().await;
    for http in [&http_a, &http_b] {
        http.wait_readyz("the broker is down", |_, body| body["broker"] == "down").await;
    }

    // Olga removes Xavier on B: B commits it (seq 2), A cannot hear of it.
    let (status, body) = node_b.delete(Some(&olga), &format!("/api/conversations/{group}/members/{}", xavier.id)).await;
    assert_eq!(status, 204, "{body}");
    let removal = o.event_where("message:new", in_group).await["message"].clone();
    assert_eq!((&removal["seq"], &removal["kind"]), (&json!(2), &json!("system")), "{removal}");
    seen_o.push(2);

    // Xavier sends through A: refused as a non-member's send is, and not stored.
    const REFUSED: &str = "sent after my removal";
    let reply = x.request("message:send", json!({"conversation_id": group, "body": REFUSED})).await;
    assert_eq!(
        (&reply["type"], &reply["data"]["code"]),
        (&json!("error"), &json!("not_found")),
        "Xavier, removed on B, sends through A: {reply}"
    );
    for (name, http) in [("B", &http_b), ("A", &http_a)] {
        let history = http.history(&olga, &group).await;
        let stored: Vec<&Value> = history.iter().filter(|m| m["body"] == REFUSED).collect();
        assert!(stored.is_empty(), "the refused send is in the history through {name}: {stored:?}");
        assert_eq!(history.last().map(|m| &m["seq"]), Some(&json!(2)), "the history through {name}: {history:?}");
    }

    // Redis returns; both nodes say so.
    redis.restart().await;
    for http in [&http_a, &http_b] {
        http.wait_readyz("the broker is up again", |_, body| body["broker"] == "up").await;
    }

    // Olga writes in the group (seq 3): Yara, on A, gets it, so A has delivered it to whoever
    // it still counts as a member. Then Olga writes to Xavier directly: he gets that, and
    // nothing of the group after his removal was ahead of it.
    let after = o.ack("message:send", json!({"conversation_id": group, "body": "after"})).await["message"].clone();
    assert_eq!(after["seq"], 3, "{after}");
    until_message(&mut y, &after, &mut seen_y).await;
    until_message(&mut o, &after, &mut seen_o).await;
    let barrier =
        o.ack("message:send", json!({"conversation_id": direct, "body": "you were removed"})).await["message"].clone();
    let got = x.event_where("message:new", |d| d["message"]["conversation_id"] == direct.as_str()).await;
    assert_eq!(got["message"], barrier);
    let leaked: Vec<Value> = x.drain(|f| {
        f["type"] == "message:new" && in_group(&f["data"]) && f["data"]["message"]["seq"].as_i64() > Some(2)
    });
    assert!(leaked.is_empty(), "Xavier, removed, still receives the group's messages on A: {leaked:?}");
    eprintln!("a_member_removed_while_redis_is_down: Olga saw {seen_o:?}, Xavier {seen_x:?}, Yara {seen_y:?}");
    assert_eq!(seen_y, vec![1, 2, 3], "Yara on A saw these seqs of the group");
    assert_eq!(seen_o, vec![1, 2, 3], "Olga on B saw these seqs of the group");
    cluster.stop().await;
    drop(redis);
}

/// A Redis URL that is not one stops the start with a message that names the setting, before
/// the database is touched: nothing is migrated into a database the node will not serve.
#[actix_web::test]
async fn a_bad_redis_url_stops_the_start_before_the_database_is_migrated() {
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let database = SharedDatabase::create(&admin_url).await;
    let mut config = parley::config::Config::from_env();
    config.database_url = database.url.clone();
    config.jwt_secret = Some(SECRET.into());
    config.cluster.redis_url = Some("http://not-redis".into());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let error = match parley::start(listener, config).await {
        Ok(_) => panic!("a node with a bad Redis URL started"),
        Err(err) => err.to_string(),
    };
    assert!(error.contains("PARLEY_REDIS_URL"), "the error names the setting: {error}");
    // Migrations would have made `users`: creating it succeeds only on an untouched database.
    pg_execute(&database.url, "CREATE TABLE users (id int)").await;
}
