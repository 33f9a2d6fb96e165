//! Typing indicators: they reach the other members only, and end by themselves after the
//! timeout, when the typist sends, or when the typist's last session closes.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    typing_reaches_the_other_members_only,
    typing_ends_by_itself_after_the_timeout,
    typing_ends_when_the_typist_sends,
    typing_ends_when_the_typists_last_session_closes,
);

async fn typing_reaches_the_other_members_only(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.typing_timeout_ms = 60_000).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let (status, group) = server
        .post(
            Some(&alice),
            "/api/conversations",
            json!({"kind": "group", "title": "team", "member_ids": [bob.id, carol.id]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let conversation = group["id"].as_str().expect("id").to_string();
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;
    let mut d = server.ws(&dave).await;

    assert_eq!(a.ack("typing:start", json!({"conversation_id": conversation})).await, json!({}));
    // The actor broadcasts before it answers: had Alice's own session been sent a typing:updated,
    // it would have been queued before the ack she just read.
    assert_eq!(a.drain(|f| f["type"] == "typing:updated"), Vec::<Value>::new());
    let started = json!({"conversation_id": conversation, "user_id": alice.id, "typing": true});
    assert_eq!(b.event("typing:updated").await, started);
    assert_eq!(c.event("typing:updated").await, started);

    assert_eq!(a.ack("typing:stop", json!({"conversation_id": conversation})).await, json!({}));
    assert_eq!(a.drain(|f| f["type"] == "typing:updated"), Vec::<Value>::new());
    let stopped = json!({"conversation_id": conversation, "user_id": alice.id, "typing": false});
    assert_eq!(b.event("typing:updated").await, stopped);
    assert_eq!(c.event("typing:updated").await, stopped);

    // Someone else's conversation, and one that does not exist.
    assert_eq!(d.error("typing:start", json!({"conversation_id": conversation})).await, "not_found");
    assert_eq!(d.error("typing:stop", json!({"conversation_id": conversation})).await, "not_found");
    let nowhere = uuid::Uuid::new_v4().to_string();
    assert_eq!(a.error("typing:start", json!({"conversation_id": nowhere})).await, "not_found");
    // Dave's attempt showed nobody typing.
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["typing"], json!([]));
    server.stop().await;
}

async fn typing_ends_by_itself_after_the_timeout(backend: Backend) {
    let (Pair { server, alice, bob: _, conversation }, mut a, mut b) =
        Pair::connected_with(backend, |config| config.limits.typing_timeout_ms = 300).await;

    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    let started = b.event("typing:updated").await;
    assert_eq!(started, json!({"conversation_id": conversation, "user_id": alice.id, "typing": true}));
    // Alice sends nothing more: her typing ends by itself.
    let ended = b.event("typing:updated").await;
    assert_eq!(ended, json!({"conversation_id": conversation, "user_id": alice.id, "typing": false}));
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["typing"], json!([]));

    // It can start again afterwards.
    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    assert_eq!(b.event("typing:updated").await["typing"], true);
    server.stop().await;
}

async fn typing_ends_when_the_typist_sends(backend: Backend) {
    let (Pair { server, alice, bob: _, conversation }, mut a, mut b) =
        Pair::connected_with(backend, |config| config.limits.typing_timeout_ms = 60_000).await;

    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    assert_eq!(b.event("typing:updated").await["typing"], true);
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "done typing"})).await;
    let ended = b.event("typing:updated").await;
    assert_eq!(ended, json!({"conversation_id": conversation, "user_id": alice.id, "typing": false}));
    assert_eq!(b.event("message:new").await["message"]["id"], sent["message"]["id"]);
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["typing"], json!([]));
    server.stop().await;
}

async fn typing_ends_when_the_typists_last_session_closes(backend: Backend) {
    let Pair { server, alice, bob, conversation } =
        Pair::start_with(backend, |config| config.limits.typing_timeout_ms = 60_000).await;
    let admin = admin();
    let mut a1 = server.ws(&alice).await;
    let a2 = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;

    a1.ack("typing:start", json!({"conversation_id": conversation})).await;
    assert_eq!(b.event("typing:updated").await["typing"], true);

    // One of Alice's two sessions closes: she is still typing.
    a1.close().await;
    server.wait_actors("the first session is gone", |s| s["sessions"]["count"] == 2).await;
    let (status, actor) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{actor}");
    assert_eq!(actor["sessions"], 2, "{actor}");
    assert_eq!(actor["typing"], json!([alice.id]), "{actor}");

    // Her last session closes: typing ends.
    a2.close().await;
    let ended = b.event("typing:updated").await;
    assert_eq!(ended, json!({"conversation_id": conversation, "user_id": alice.id, "typing": false}));
    server.stop().await;
}
