//! The conversation actors, through the admin inspection: the live actors are listed, a
//! faulted actor restarts in place, and an idle one stops and a fresh one takes over.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

backends!(
    admin_lists_the_live_actors,
    a_faulted_conversation_actor_restarts_in_place,
    an_idle_conversation_actor_stops_and_a_fresh_one_takes_over,
);

async fn admin_lists_the_live_actors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = admin();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let unused = server.direct(&alice, &carol).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;

    // No message yet: no live actor.
    let (status, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    assert_eq!(actors["conversations"], json!([]));

    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "hi"})).await;
    assert_eq!(b.event("message:new").await["message"]["id"], sent["message"]["id"]);

    let (status, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    assert!(actors["node_id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()), "{actors}");
    timestamp(&actors["started_at"]);
    assert_eq!(actors["sessions"], json!({"count": 2, "users": 2}));
    assert_eq!(actors["presence"], json!({"online_users": 2}));
    let listed = actors["conversations"].as_array().expect("conversations");
    assert_eq!(listed.len(), 1, "{actors}");
    let actor = &listed[0];
    assert_eq!(actor["conversation_id"], conversation.as_str());
    assert_eq!(actor["members"], 2);
    assert_eq!(actor["sessions"], 2);
    assert_eq!(actor["messages_handled"], 1);
    assert_eq!(actor["mailbox"], 0);
    assert_eq!(actor["restarts"], 0);
    assert_eq!(actor["typing"], json!([]));
    timestamp(&actor["started_at"]);
    timestamp(&actor["last_activity_at"]);

    // One actor, with who is typing.
    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    let (status, one) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["conversation_id"], conversation.as_str());
    assert_eq!(one["typing"], json!([alice.id]));
    assert_eq!(one["messages_handled"], 2);
    assert_eq!(one["started_at"], actor["started_at"]);

    // None live for a conversation nobody used, nor for one that does not exist.
    let (status, body) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{unused}")).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "{body}");
    let nowhere = uuid::Uuid::new_v4();
    let (status, body) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{nowhere}")).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "{body}");
    server.stop().await;
}

async fn a_faulted_conversation_actor_restarts_in_place(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = admin();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let faulty = server.direct(&alice, &bob).await;
    let other = server.direct(&alice, &carol).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;

    a.ack("message:send", json!({"conversation_id": faulty, "body": "one"})).await;
    a.ack("message:send", json!({"conversation_id": other, "body": "one"})).await;
    assert_eq!(b.event("message:new").await["message"]["seq"], 1);
    assert_eq!(c.event("message:new").await["message"]["seq"], 1);
    let (_, other_before) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{other}")).await;

    let (status, body) =
        server.post(Some(&admin), &format!("/api/admin/actors/conversations/{faulty}/fault"), json!({})).await;
    assert_eq!(status, 202, "{body}");

    // The same sockets carry on: sends go through, seq continues, everyone gets the message.
    let sent = a.ack("message:send", json!({"conversation_id": faulty, "body": "two"})).await;
    assert_eq!(sent["message"]["seq"], 2);
    assert_eq!(b.event("message:new").await["message"]["id"], sent["message"]["id"]);
    let reply = b.ack("message:send", json!({"conversation_id": faulty, "body": "three"})).await;
    assert_eq!(reply["message"]["seq"], 3);
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let event = a.event_where("message:new", |d| d["message"]["conversation_id"] == faulty.as_str()).await;
        seqs.push(event["message"]["seq"].as_i64().expect("seq"));
    }
    assert_eq!(seqs, vec![1, 2, 3], "Alice's session saw every seq once, in order");
    let (_, history) = server.get(Some(&alice), &format!("/api/conversations/{faulty}/messages")).await;
    let stored: Vec<i64> =
        history["messages"].as_array().expect("messages").iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(stored, vec![1, 2, 3]);

    // The other conversation did not notice.
    let sent = a.ack("message:send", json!({"conversation_id": other, "body": "two"})).await;
    assert_eq!(sent["message"]["seq"], 2);
    assert_eq!(c.event("message:new").await["message"]["id"], sent["message"]["id"]);
    let (_, other_after) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{other}")).await;
    assert_eq!(other_after["restarts"], 0);
    assert_eq!(other_after["started_at"], other_before["started_at"]);

    // The faulted one counts its restart.
    let (status, actor) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{faulty}")).await;
    assert_eq!(status, 200, "{actor}");
    assert_eq!(actor["restarts"], 1);
    assert_eq!(actor["sessions"], 2);
    assert_eq!((a.closed, b.closed, c.closed), (None, None, None));
    server.stop().await;
}

async fn an_idle_conversation_actor_stops_and_a_fresh_one_takes_over(backend: Backend) {
    let (Pair { server, alice: _, bob: _, conversation }, mut a, mut b) =
        Pair::connected_with(backend, |config| config.limits.conversation_idle_secs = 1).await;
    let admin = admin();
    let path = format!("/api/admin/actors/conversations/{conversation}");

    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "one"})).await;
    assert_eq!(sent["message"]["seq"], 1);
    let (status, first) = server.get(Some(&admin), &path).await;
    assert_eq!(status, 200, "{first}");

    // Nothing happens in the conversation: its actor stops.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = server.get(Some(&admin), &path).await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the idle actor is still live: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(actors["conversations"], json!([]), "{actors}");

    // The next send starts a fresh one: seq continues, both sessions get the message.
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "two"})).await;
    assert_eq!(sent["message"]["seq"], 2);
    assert_eq!(
        b.event_where("message:new", |d| d["message"]["seq"] == 2).await["message"]["id"],
        sent["message"]["id"]
    );
    assert_eq!(
        a.event_where("message:new", |d| d["message"]["seq"] == 2).await["message"]["id"],
        sent["message"]["id"]
    );
    let (status, fresh) = server.get(Some(&admin), &path).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["messages_handled"], 1);
    assert_eq!(fresh["restarts"], 0);
    assert_eq!(fresh["sessions"], 2);
    assert_ne!(fresh["started_at"], first["started_at"]);
    server.stop().await;
}
