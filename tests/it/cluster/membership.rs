//! A member added or removed on one node is added or removed on every node, even when Redis was
//! down as it happened.

use serde_json::{Value, json};

use super::*;
use crate::common::cluster::*;
use crate::common::*;

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
    if postgres_for(Suite::Cluster).is_none() {
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
