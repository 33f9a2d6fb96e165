//! Conversations: creating direct and group conversations (once per pair, with their checks),
//! announcing them to their members, and showing them to their members only. (Their list is in
//! `conversation_list`.)

use serde_json::{Value, json};

use crate::common::*;

backends!(
    a_direct_conversation_is_created_once_per_pair,
    creating_a_direct_conversation_refuses_bad_requests,
    new_conversations_are_announced_to_their_members,
    a_group_is_created_with_its_owner,
    creating_a_group_checks_title_members_and_size,
    a_conversation_is_visible_to_its_members_only,
    writes_to_a_missing_conversation_are_not_found,
    both_sides_creating_their_direct_conversation_get_one,
);

/// POST with a raw body (for bodies that are not JSON at all).
async fn post_raw(server: &TestServer, user: &TestUser, path: &str, body: &'static str) -> (u16, Value) {
    let mut response = server
        .client
        .post(server.url(path))
        .bearer_auth(&user.token)
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let bytes = response.body().await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Alice opens a direct conversation with Bob: every field of the new Conversation is as the
/// protocol says; asking again, from either side, gives the same conversation with 200.
async fn a_direct_conversation_is_created_once_per_pair(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;

    let (status, created) =
        server.post(Some(&alice), "/api/conversations", json!({"kind": "direct", "user_id": bob.id})).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "the id is a UUID: {id}");
    assert_eq!(created["kind"], "direct");
    assert_eq!(created["title"], Value::Null);
    assert_eq!(created["last_seq"], 0);
    assert_eq!(created["last_message"], Value::Null);
    assert_eq!(created["unread_count"], 0);
    timestamp(&created["created_at"]);
    timestamp(&created["updated_at"]);
    assert_eq!(created["members"].as_array().map(Vec::len), Some(2), "{created}");
    for user in [&alice, &bob] {
        let m = member(&created, &user.id);
        assert_eq!(
            m,
            &json!({
                "user_id": user.id,
                "username": user.username,
                "display_name": user.username,
                "role": "member",
                "last_read_seq": 0,
            }),
            "a member of a direct conversation"
        );
    }

    // Again from the same side, then from the other: 200 and the same conversation.
    let (status, again) =
        server.post(Some(&alice), "/api/conversations", json!({"kind": "direct", "user_id": bob.id})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["created_at"], created["created_at"]);
    let (status, other_side) =
        server.post(Some(&bob), "/api/conversations", json!({"kind": "direct", "user_id": alice.id})).await;
    assert_eq!(status, 200, "{other_side}");
    assert_eq!(other_side["id"], id.as_str());
    assert_eq!(other_side["kind"], "direct");
    assert_eq!(member_ids(&other_side), sorted(&[&alice.id, &bob.id]));

    // Both see exactly one conversation.
    for user in [&alice, &bob] {
        let (status, list) = server.get(Some(user), "/api/conversations").await;
        assert_eq!(status, 200);
        assert_eq!(listed_ids(&list), vec![id.as_str()], "{}", user.username);
    }
    server.stop().await;
}

/// A direct conversation with oneself, with an unknown user, or from a body that is not a
/// proper create request, is refused.
async fn creating_a_direct_conversation_refuses_bad_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;

    let (status, body) =
        server.post(Some(&alice), "/api/conversations", json!({"kind": "direct", "user_id": alice.id})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "with oneself: {body}");

    let stranger = uuid::Uuid::new_v4().to_string();
    let (status, body) =
        server.post(Some(&alice), "/api/conversations", json!({"kind": "direct", "user_id": stranger})).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "unknown user: {body}");

    let bad_bodies = [
        json!({"kind": "channel", "user_id": bob.id}),
        json!({"user_id": bob.id}),
        json!({"kind": "direct"}),
        json!({"kind": "direct", "user_id": "not-a-uuid"}),
        json!({"kind": "direct", "user_id": 42}),
        json!("direct"),
        json!(null),
    ];
    for bad in bad_bodies {
        let (status, body) = server.post(Some(&alice), "/api/conversations", bad.clone()).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}: {body}");
    }
    let (status, body) = post_raw(&server, &alice, "/api/conversations", "{\"kind\": \"direct\", \"user_id\": ").await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "truncated JSON: {body}");

    // None of this created anything.
    let (_, list) = server.get(Some(&alice), "/api/conversations").await;
    assert_eq!(list["conversations"], json!([]));
    server.stop().await;
}

/// Bob and Carol have sockets open: each new conversation they are in appears on them as
/// `conversation:updated`, direct and group alike.
async fn new_conversations_are_announced_to_their_members(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;

    let direct = server.direct(&alice, &bob).await;
    let event = b.event("conversation:updated").await;
    let conversation = &event["conversation"];
    assert_eq!(conversation["id"], direct.as_str());
    assert_eq!(conversation["kind"], "direct");
    assert_eq!(member_ids(conversation), sorted(&[&alice.id, &bob.id]));
    assert_eq!(conversation["last_seq"], 0);
    assert_eq!(conversation["unread_count"], 0);

    let group = server.group(&alice, "plans", &[&bob, &carol]).await;
    for ws in [&mut b, &mut c] {
        let event = ws.event_where("conversation:updated", |d| d["conversation"]["id"] == group.as_str()).await;
        let conversation = &event["conversation"];
        assert_eq!(conversation["kind"], "group");
        assert_eq!(conversation["title"], "plans");
        assert_eq!(member_ids(conversation), sorted(&[&alice.id, &bob.id, &carol.id]));
        assert_eq!(member(conversation, &alice.id)["role"], "owner");
    }
    // Carol is not in the direct conversation of Alice and Bob: she heard only of the group.
    assert!(
        c.drain(|f| f["type"] == "conversation:updated" && f["data"]["conversation"]["id"] == direct.as_str())
            .is_empty(),
        "a non-member heard of the direct conversation"
    );
    server.stop().await;
}

/// Alice creates a group with Bob and Carol: she is its owner, they are members.
async fn a_group_is_created_with_its_owner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;

    let (status, group) = server
        .post(
            Some(&alice),
            "/api/conversations",
            json!({"kind": "group", "title": "Weekend hike", "member_ids": [bob.id, carol.id]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    assert!(uuid::Uuid::parse_str(group["id"].as_str().expect("id")).is_ok());
    assert_eq!(group["kind"], "group");
    assert_eq!(group["title"], "Weekend hike");
    assert_eq!(group["last_seq"], 0);
    assert_eq!(group["last_message"], Value::Null);
    assert_eq!(group["unread_count"], 0);
    timestamp(&group["created_at"]);
    timestamp(&group["updated_at"]);
    assert_eq!(group["members"].as_array().map(Vec::len), Some(3), "{group}");
    for (user, role) in [(&alice, "owner"), (&bob, "member"), (&carol, "member")] {
        assert_eq!(
            member(&group, &user.id),
            &json!({
                "user_id": user.id,
                "username": user.username,
                "display_name": user.username,
                "role": role,
                "last_read_seq": 0,
            })
        );
    }

    // The members see the same group.
    let path = format!("/api/conversations/{}", group["id"].as_str().unwrap());
    let (status, seen) = server.get(Some(&carol), &path).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["title"], "Weekend hike");
    assert_eq!(member(&seen, &alice.id)["role"], "owner");
    assert_eq!(member(&seen, &carol.id)["role"], "member");
    server.stop().await;
}

/// A group needs a title of 1 to 100 characters, existing members, and at most
/// `max_group_members` people (here 3, its owner included).
async fn creating_a_group_checks_title_members_and_size(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.max_group_members = 3).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let create = |title: Value, members: Value| json!({"kind": "group", "title": title, "member_ids": members});

    for title in [json!(""), json!("   "), json!("x".repeat(101)), json!("é".repeat(101)), json!(null), json!(7)] {
        let (status, body) =
            server.post(Some(&alice), "/api/conversations", create(title.clone(), json!([bob.id]))).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "title {title}: {body}");
    }
    let (status, body) =
        server.post(Some(&alice), "/api/conversations", json!({"kind": "group", "member_ids": [bob.id]})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "no title: {body}");

    // 100 characters is fine, even when they take more bytes.
    let (status, body) =
        server.post(Some(&alice), "/api/conversations", create(json!("é".repeat(100)), json!([bob.id]))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["title"], "é".repeat(100));

    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, body) =
        server.post(Some(&alice), "/api/conversations", create(json!("team"), json!([bob.id, unknown]))).await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "unknown member: {body}");

    // Alice and three others is four people: one too many.
    let (status, body) = server
        .post(Some(&alice), "/api/conversations", create(json!("team"), json!([bob.id, carol.id, dave.id])))
        .await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "too many members: {body}");
    // Alice and two others is exactly the limit.
    let (status, body) =
        server.post(Some(&alice), "/api/conversations", create(json!("team"), json!([bob.id, carol.id]))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(member_ids(&body), sorted(&[&alice.id, &bob.id, &carol.id]));

    // The refused attempts created nothing: Alice has the two groups that were accepted.
    let (_, list) = server.get(Some(&alice), "/api/conversations").await;
    assert_eq!(list["conversations"].as_array().map(Vec::len), Some(2), "{list}");
    let (_, list) = server.get(Some(&dave), "/api/conversations").await;
    assert_eq!(list["conversations"], json!([]));
    server.stop().await;
}

/// Carol is not in Alice and Bob's conversation: to her it answers exactly like one that does
/// not exist, and so does its history.
async fn a_conversation_is_visible_to_its_members_only(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let carol = server.user("carol").await;
    let group = server.group(&alice, "pair", &[&bob]).await;

    for user in [&alice, &bob] {
        let (status, body) = server.get(Some(user), &format!("/api/conversations/{conversation}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], conversation.as_str());
        assert_eq!(body["kind"], "direct");
    }

    let missing = uuid::Uuid::new_v4();
    let (status, nowhere) = server.get(Some(&carol), &format!("/api/conversations/{missing}")).await;
    assert_eq!((status, code(&nowhere)), (404, "not_found"), "{nowhere}");
    for id in [&conversation, &group] {
        let (status, hidden) = server.get(Some(&carol), &format!("/api/conversations/{id}")).await;
        assert_eq!(status, 404, "{hidden}");
        assert_eq!(hidden, nowhere, "not a member answers exactly as does not exist");
        let (status, history) = server.get(Some(&carol), &format!("/api/conversations/{id}/messages")).await;
        assert_eq!((status, code(&history)), (404, "not_found"), "history of a stranger's conversation: {history}");
    }
    let (status, history) = server.get(Some(&carol), &format!("/api/conversations/{missing}/messages")).await;
    assert_eq!((status, code(&history)), (404, "not_found"), "{history}");

    // Writing to it answers the same way: a stranger's conversation and a missing one are 404.
    for id in [conversation.clone(), missing.to_string()] {
        let path = format!("/api/conversations/{id}/messages");
        let (status, body) = server.post(Some(&carol), &path, json!({"body": "hello?"})).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "send to {id}: {body}");
        let path = format!("/api/conversations/{id}/members/{}", carol.id);
        let (status, body) = server.delete(Some(&carol), &path).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "leave {id}: {body}");
    }

    for bad in ["not-a-uuid", "12345", "00000000-0000-0000-0000"] {
        let (status, body) = server.get(Some(&alice), &format!("/api/conversations/{bad}")).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "{bad}: {body}");
    }
    server.stop().await;
}

/// Every write to a conversation that does not exist is 404, not an invitation to retry.
async fn writes_to_a_missing_conversation_are_not_found(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut a = server.ws(&alice).await;
    for round in 0..10 {
        let missing = uuid::Uuid::new_v4();
        let base = format!("/api/conversations/{missing}");
        let (status, body) = server.post(Some(&alice), &format!("{base}/messages"), json!({"body": "hi"})).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "round {round}, send: {body}");
        let missing = uuid::Uuid::new_v4();
        let base = format!("/api/conversations/{missing}");
        let (status, body) = server.post(Some(&alice), &format!("{base}/members"), json!({"user_id": bob.id})).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "round {round}, add member: {body}");
        let missing = uuid::Uuid::new_v4();
        let base = format!("/api/conversations/{missing}");
        let (status, body) = server.delete(Some(&alice), &format!("{base}/members/{}", alice.id)).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "round {round}, leave: {body}");
        let missing = uuid::Uuid::new_v4();
        let base = format!("/api/conversations/{missing}");
        let (status, body) = server.post(Some(&alice), &format!("{base}/read"), json!({})).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "round {round}, read: {body}");
        let missing = uuid::Uuid::new_v4();
        let code = a.error("message:send", json!({"conversation_id": missing, "body": "hi"})).await;
        assert_eq!(code, "not_found", "round {round}, WebSocket send");
    }
    server.stop().await;
}

async fn both_sides_creating_their_direct_conversation_get_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    for round in 0..5 {
        let a = server.user(&format!("left{round}")).await;
        let b = server.user(&format!("right{round}")).await;
        let (x, y) = futures_util::join!(server.direct(&a, &b), server.direct(&b, &a));
        assert_eq!(x, y, "both sides got the same conversation");
        let (_, list) = server.get(Some(&a), "/api/conversations").await;
        assert_eq!(list["conversations"].as_array().map(Vec::len), Some(1));
    }
    server.stop().await;
}
