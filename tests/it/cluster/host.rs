//! Parley inside a host product, on several nodes: what the service does through one node holds
//! on the others. An archive through A refuses sends through B; a custom event and a rename
//! posted to A reach sockets on B; and two nodes sweeping at once archive each due conversation
//! once, with one system message.

use serde_json::{Value, json};

use crate::common::cluster::*;
use crate::common::*;

/// The direct conversation of the host's users "42" and "43" about appointment `id`, which
/// ended two days ago: due for the sweep.
async fn due(node: &Http, id: &str) -> String {
    let body = json!({
        "kind": "direct",
        "members": ["42", "43"],
        "context": {"type": "appointment", "id": id},
        "context_ends_at": days_from_now(-2),
    });
    id_of(&service_conversation(node, body).await)
}

/// Bob talks through node B; the service archives the conversation through node A. Once Bob's
/// socket on B has been told, B refuses his sends, on the WebSocket and on REST, with
/// `archived`; the history through B ends with the archive.
#[actix_web::test]
async fn an_archive_through_one_node_refuses_sends_through_the_other() {
    let Some(cluster) = Cluster::start(2, host).await else { return };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let ada = host_user(node_a, "42", "Ada").await;
    let bob = host_user(node_a, "43", "Bob").await;
    let conversation = service_direct(node_a, "42", "43").await;
    let mut a = node_a.ws(&ada).await;
    let mut b = node_b.ws(&bob).await;
    // Both nodes serve the conversation now.
    let sent = b.ack("message:send", json!({"conversation_id": conversation, "body": "on my way"})).await;
    assert_eq!(sent["message"]["seq"], 1, "{sent}");
    a.event_where("message:new", |d| d["message"]["seq"] == 1).await;

    let path = format!("/api/service/conversations/{conversation}/archive");
    let (status, archived) = service_post(node_a, &path, json!({})).await;
    assert_eq!(status, 200, "{archived}");
    // At once, before B may have heard of it: the database refuses what B's actor would let by.
    assert_error(
        &node_b.post(Some(&bob), &messages_path(&conversation), json!({"body": "too soon?"})).await,
        409,
        "archived",
    );
    let told = b.event_where("message:new", |d| d["message"]["seq"] == 2).await;
    assert_eq!(template(&told["message"]), Some("parley.archived"), "{told}");
    b.event_where("conversation:updated", |d| !d["conversation"]["archived_at"].is_null()).await;

    let reply = b.request("message:send", json!({"conversation_id": conversation, "body": "hello?"})).await;
    assert_eq!((&reply["type"], &reply["data"]["code"]), (&json!("error"), &json!("archived")), "{reply}");
    assert_error(
        &node_b.post(Some(&bob), &messages_path(&conversation), json!({"body": "hello?"})).await,
        409,
        "archived",
    );
    assert_eq!(b.error("typing:start", json!({"conversation_id": conversation})).await, "archived");
    let history = node_b.history(&bob, &conversation).await;
    assert_eq!(templates(&history), ["parley.archived"]);
    assert_eq!(history.len(), 2, "nothing after the archive: {history:?}");
    // Through A too.
    let reply = a.request("message:send", json!({"conversation_id": conversation, "body": "hello?"})).await;
    assert_eq!(reply["data"]["code"], "archived", "{reply}");
    cluster.stop().await;
}

/// Custom events posted to node A: to the conversation (Ada on A and Bob on B get it), and to
/// Bob alone (his sessions on both nodes get it, Ada's none).
#[actix_web::test]
async fn custom_events_posted_to_one_node_reach_sockets_on_the_other() {
    let Some(cluster) = Cluster::start(2, host).await else { return };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let ada = host_user(node_a, "42", "Ada").await;
    let bob = host_user(node_a, "43", "Bob").await;
    let conversation = service_direct(node_a, "42", "43").await;
    let mut a = node_a.ws(&ada).await;
    let mut b = node_b.ws(&bob).await;
    let mut b_on_a = node_a.ws(&bob).await;

    let path = format!("/api/service/conversations/{conversation}/events");
    let (status, _) = service_post(node_a, &path, json!({"name": "visit.started", "payload": {"room": "3B"}})).await;
    assert_eq!(status, 204);
    let expected = json!({"name": "visit.started", "payload": {"room": "3B"}, "conversation_id": conversation});
    for (who, ws) in [("Ada on A", &mut a), ("Bob on B", &mut b), ("Bob on A", &mut b_on_a)] {
        assert_eq!(ws.event("custom").await, expected, "{who}");
    }

    let (status, _) =
        service_post(node_a, "/api/service/users/43/events", json!({"name": "profile.refresh", "payload": 7})).await;
    assert_eq!(status, 204);
    for (who, ws) in [("Bob on B", &mut b), ("Bob on A", &mut b_on_a)] {
        assert_eq!(ws.event("custom").await, json!({"name": "profile.refresh", "payload": 7}), "{who}");
    }
    assert_eq!(before_ping(&mut a, "custom").await, Vec::<Value>::new(), "Ada on A got Bob's event");
    cluster.stop().await;
}

/// The service renames Ada through node A: Bob's socket on B and Ada's own on B are told.
#[actix_web::test]
async fn a_rename_through_one_node_reaches_sockets_on_the_other() {
    let Some(cluster) = Cluster::start(2, host).await else { return };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let ada = host_user(node_a, "42", "Ada").await;
    let bob = host_user(node_a, "43", "Bob").await;
    service_direct(node_a, "42", "43").await;
    let mut b = node_b.ws(&bob).await;
    let mut a_on_b = node_b.ws(&ada).await;

    let (status, renamed) = service_put(node_a, "/api/service/users/42", json!({"display_name": "Ada L."})).await;
    assert_eq!(status, 200, "{renamed}");
    for (who, ws) in [("Bob on B", &mut b), ("Ada on B", &mut a_on_b)] {
        let updated = ws.event_where("user:updated", |d| d["user"]["id"] == ada.id.as_str()).await;
        assert_eq!(updated["user"]["display_name"], "Ada L.", "{who}: {updated}");
    }
    let (status, user) = node_b.get(Some(&bob), &format!("/api/users/{}", ada.id)).await;
    assert_eq!((status, &user["display_name"]), (200, &json!("Ada L.")), "{user}");
    cluster.stop().await;
}

/// Both nodes sweep every second over the same five due conversations: each ends archived, with
/// exactly one `parley.archived` message, however the nodes' sweeps met.
#[actix_web::test]
async fn two_sweeping_nodes_archive_each_due_conversation_once() {
    let Some(cluster) = Cluster::start(2, sweeping_host).await else { return };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    provision(node_a, "42", "Ada").await;
    provision(node_a, "43", "Bob").await;
    let mut conversations = Vec::new();
    for i in 0..5 {
        conversations.push(due(node_a, &format!("A-{i}")).await);
    }
    for conversation in &conversations {
        archived_eventually(node_b, conversation).await;
    }
    // One more sweep after them (it archived a conversation made afterwards), so that a second
    // archive of any of the five would have had time to land.
    let last = due(node_a, "A-5").await;
    archived_eventually(node_a, &last).await;

    for conversation in conversations.iter().chain([&last]) {
        let history = service_history(node_a, conversation).await;
        assert_eq!(templates(&history), ["parley.archived"], "{conversation}: {history:?}");
        assert_eq!(history.len(), 1, "{conversation}: {history:?}");
        assert_eq!(history[0]["sender_id"], SYSTEM_USER);
    }
    cluster.stop().await;
}
