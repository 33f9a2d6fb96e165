//! A node killed by SIGKILL takes its users offline elsewhere and loses nothing it
//! acknowledged; Redis going away degrades the cluster (each node still serves its own
//! sessions) until it returns.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::common::cluster::*;
use crate::common::*;

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
    let history = survivor.history(&alice, &conversation).await;
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

/// Redis (the test's own) is killed in the middle of a conversation across two nodes: both nodes
/// say they are degraded (still 200 on /readyz), go on committing and acknowledging sends; when
/// Redis is back, messages cross the nodes again, and `sync` returns what was sent meanwhile.
#[actix_web::test]
async fn a_redis_outage_degrades_the_cluster_and_delivery_resumes_when_it_returns() {
    if postgres_for(Suite::Cluster).is_none() {
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
