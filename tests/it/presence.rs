//! Presence: a contact coming online is announced and can be queried; going offline is
//! announced after the grace period; a reload within it does not flap.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    a_contact_coming_online_is_announced_and_queryable,
    a_contact_going_offline_is_announced_after_the_grace_period,
    a_reload_within_the_grace_period_does_not_flap,
);

async fn a_contact_coming_online_is_announced_and_queryable(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let dave = server.user("dave").await;
    server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut d = server.ws(&dave).await;

    // Bob has not connected yet.
    let (status, user) = server.get(Some(&alice), &format!("/api/users/{}", bob.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["online"], false);
    assert_eq!(user["last_seen_at"], Value::Null);

    let mut b = server.ws(&bob).await;
    let online = a.event_where("presence:updated", |d| d["user_id"] == bob.id.as_str()).await;
    assert_eq!(online["online"], true, "{online}");
    timestamp(&online["last_seen_at"]);
    // Dave shares no conversation with Bob: he is not told (his reply comes after the moment
    // Presence told Bob's contacts, so an event to him would be queued before it).
    assert_eq!(d.ack("ping", json!({})).await, json!({}));
    assert_eq!(d.drain(|f| f["type"] == "presence:updated"), Vec::<Value>::new());

    // presence:query: known users in the order asked, unknown ones left out (server's choice).
    let unknown = uuid::Uuid::new_v4().to_string();
    let answer = a.ack("presence:query", json!({"user_ids": [bob.id, unknown, alice.id]})).await;
    let presence = answer["presence"].as_array().expect("presence");
    assert_eq!(presence.len(), 2, "{answer}");
    assert_eq!((&presence[0]["user_id"], &presence[0]["online"]), (&json!(bob.id), &json!(true)));
    timestamp(&presence[0]["last_seen_at"]);
    assert_eq!((&presence[1]["user_id"], &presence[1]["online"]), (&json!(alice.id), &json!(true)));
    let answer = b.ack("presence:query", json!({"user_ids": []})).await;
    assert_eq!(answer, json!({"presence": []}));

    let (status, user) = server.get(Some(&alice), &format!("/api/users/{}", bob.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!((&user["id"], &user["username"], &user["online"]), (&json!(bob.id), &json!("bob"), &json!(true)));
    timestamp(&user["last_seen_at"]);
    server.stop().await;
}

async fn a_contact_going_offline_is_announced_after_the_grace_period(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.presence_grace_ms = 300).await;
    let admin = admin();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let b1 = server.ws(&bob).await;
    let b2 = server.ws(&bob).await;
    let online = a.event_where("presence:updated", |d| d["user_id"] == bob.id.as_str()).await;
    assert_eq!(online["online"], true);

    // Both of Bob's sessions close; after the grace period he is offline.
    b1.close().await;
    b2.close().await;
    let offline = a.event_where("presence:updated", |d| d["user_id"] == bob.id.as_str()).await;
    assert_eq!(offline["online"], false, "{offline}");
    timestamp(&offline["last_seen_at"]);

    // Asking says the same, with the same last_seen_at.
    let (status, user) = server.get(Some(&alice), &format!("/api/users/{}", bob.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["online"], false);
    assert_eq!(user["last_seen_at"], offline["last_seen_at"]);
    let answer = a.ack("presence:query", json!({"user_ids": [bob.id]})).await;
    assert_eq!(
        answer,
        json!({"presence": [{"user_id": bob.id, "online": false, "last_seen_at": offline["last_seen_at"]}]})
    );
    let (_, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(actors["sessions"], json!({"count": 1, "users": 1}), "{actors}");
    assert_eq!(actors["presence"], json!({"online_users": 1}), "{actors}");

    // Coming back is announced again.
    let _b3 = server.ws(&bob).await;
    let back = a.event_where("presence:updated", |d| d["user_id"] == bob.id.as_str()).await;
    assert_eq!(back["online"], true, "{back}");
    server.stop().await;
}

async fn a_reload_within_the_grace_period_does_not_flap(backend: Backend) {
    let Pair { server, alice, bob, conversation } =
        Pair::start_with(backend, |config| config.limits.presence_grace_ms = 3_000).await;
    let admin = admin();
    let carol = server.user("carol").await;
    server.direct(&alice, &carol).await;
    let mut a = server.ws(&alice).await;
    let c = server.ws(&carol).await;
    let b1 = server.ws(&bob).await;
    for user in [&carol, &bob] {
        let online = a.event_where("presence:updated", |d| d["user_id"] == user.id.as_str()).await;
        assert_eq!(online["online"], true);
    }

    // Bob reloads: his only session closes...
    b1.close().await;
    server.wait_actors("Bob's session is gone", |s| s["sessions"]["count"] == 2).await;
    // ...(Carol, who will serve as a clock, leaves for good just after him)...
    c.close().await;
    let between = server.wait_actors("Carol's session is gone", |s| s["sessions"]["count"] == 1).await;
    // ...Bob and Carol have no session but are still shown online, inside the grace period...
    assert_eq!(between["sessions"]["users"], 1, "{between}");
    assert_eq!(between["presence"]["online_users"], 3, "{between}");
    // ...and Bob's new session opens.
    let mut b2 = server.ws(&bob).await;
    let sent = b2.ack("message:send", json!({"conversation_id": conversation, "body": "back"})).await;

    // Everything Alice sees, up to Bob's message and until Carol's grace period (which began
    // after Bob's, and is as long) has run out: Bob never goes offline.
    let (mut got_message, mut carol_offline) = (false, false);
    while !(got_message && carol_offline) {
        let frame = a.next().await;
        if frame["type"] == "presence:updated" && frame["data"]["user_id"] == bob.id.as_str() {
            assert_ne!(frame["data"]["online"], false, "a reload made Bob flap offline: {frame}");
        }
        if frame["type"] == "presence:updated" && frame["data"]["user_id"] == carol.id.as_str() {
            assert_eq!(frame["data"]["online"], false, "{frame}");
            carol_offline = true;
        }
        if frame["type"] == "message:new" && frame["data"]["message"]["id"] == sent["message"]["id"] {
            got_message = true;
        }
    }
    let answer = a.ack("presence:query", json!({"user_ids": [bob.id, carol.id]})).await;
    assert_eq!(answer["presence"][0]["online"], true, "{answer}");
    assert_eq!(answer["presence"][1]["online"], false, "{answer}");
    let (_, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(actors["presence"]["online_users"], 2, "Alice and Bob: {actors}");
    server.stop().await;
}
