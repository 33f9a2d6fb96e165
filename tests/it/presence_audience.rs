//! Who may see whom online: presence (online, last seen) is answered only about people who
//! share a conversation with the caller, on `presence:query` and on `GET /api/users/{id}`, as
//! `presence:updated` is only sent to them. A stranger's answer leaves the user out.

use serde_json::{Value, json};

use crate::common::*;

backends!(presence_is_answered_only_to_people_who_share_a_conversation);

async fn presence_is_answered_only_to_people_who_share_a_conversation(backend: Backend) {
    let (Pair { server, alice, bob, .. }, mut a, _b) = Pair::connected(backend).await;
    let mallory = server.user("mallory").await;
    let mut m = server.ws(&mallory).await;

    // Alice shares a conversation with Bob: she sees him, and herself.
    let answer = a.ack("presence:query", json!({"user_ids": [bob.id, alice.id]})).await;
    let seen: Vec<&Value> = answer["presence"].as_array().expect("presence").iter().map(|p| &p["user_id"]).collect();
    assert_eq!(seen, vec![&json!(bob.id), &json!(alice.id)], "{answer}");
    let (status, user) = server.get(Some(&alice), &format!("/api/users/{}", bob.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["online"], true, "{user}");

    // Mallory shares nothing with them: both are left out, herself is not.
    let answer = m.ack("presence:query", json!({"user_ids": [bob.id, alice.id, mallory.id]})).await;
    assert_eq!(answer["presence"].as_array().map(Vec::len), Some(1), "{answer}");
    assert_eq!(answer["presence"][0]["user_id"], json!(mallory.id));
    let (status, user) = server.get(Some(&mallory), &format!("/api/users/{}", bob.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["username"], "bob");
    assert!(user.get("online").is_none() && user.get("last_seen_at").is_none(), "presence told a stranger: {user}");

    // Once they share a conversation, she sees him.
    server.direct(&mallory, &bob).await;
    let answer = m.ack("presence:query", json!({"user_ids": [bob.id]})).await;
    assert_eq!(answer["presence"][0]["online"], true, "{answer}");
    server.stop().await;
}
