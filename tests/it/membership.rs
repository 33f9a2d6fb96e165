//! Group membership: the owner adds and removes members (with system messages), members
//! leave, and when the owner leaves the longest-standing member takes over.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    the_owner_adds_a_member_with_a_system_message,
    adding_members_is_for_the_owner_of_a_group_with_room,
    a_member_who_leaves_loses_the_conversation,
    the_owner_removes_members_and_others_cannot,
    when_the_owner_leaves_the_longest_standing_member_takes_over,
);

/// A user whose id the test chooses: an identity-system token for `id`, used once so that the
/// user exists.
async fn user_with_id(server: &TestServer, id: &str, name: &str) -> TestUser {
    let token = token_for(json!({"sub": id, "name": name, "iat": now_secs(), "exp": now_secs() + 3600}));
    let user = TestUser { id: id.to_string(), username: id.to_string(), token };
    let (status, me) = server.get(Some(&user), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], id);
    user
}

/// Alice adds Dave to her group: 201, a system message everyone sees (Dave included), in
/// history, and `conversation:updated` to every member.
async fn the_owner_adds_a_member_with_a_system_message(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let dave = server.user("dave").await;
    let group = server.group(&alice, "crew", &[&bob]).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut d = server.ws(&dave).await;
    let (status, _) =
        server.post(Some(&bob), &format!("/api/conversations/{group}/messages"), json!({"body": "hello"})).await;
    assert_eq!(status, 201);

    let (status, added) =
        server.post(Some(&alice), &format!("/api/conversations/{group}/members"), json!({"user_id": dave.id})).await;
    assert_eq!(status, 201, "{added}");
    // The server answers with the updated Conversation.
    assert_eq!(added["id"], group.as_str());
    assert_eq!(member_ids(&added), sorted(&[&alice.id, &bob.id, &dave.id]));
    assert_eq!(member(&added, &dave.id)["role"], "member");
    assert_eq!(added["last_seq"], 2);

    // Everyone, the newcomer included, gets the system message as message:new.
    let mut system = Value::Null;
    for ws in [&mut a, &mut b, &mut d] {
        let event = ws.event_where("message:new", |d| d["message"]["seq"] == 2).await;
        let message = &event["message"];
        assert_eq!(message["kind"], "system", "{message}");
        assert_eq!(message["conversation_id"], group.as_str());
        assert_eq!(message["sender_id"], alice.id.as_str());
        assert!(!message["body"].as_str().unwrap_or("").is_empty(), "a system message says something: {message}");
        system = message.clone();
    }
    // Dave gets no message:new of what was said before he came.
    assert!(d.drain(|f| f["type"] == "message:new" && f["data"]["message"]["seq"] == 1).is_empty());

    // And conversation:updated with Dave in it.
    for ws in [&mut a, &mut b, &mut d] {
        let event = ws
            .event_where("conversation:updated", |d| {
                d["conversation"]["id"] == group.as_str()
                    && d["conversation"]["members"].as_array().map(Vec::len) == Some(3)
            })
            .await;
        assert_eq!(member_ids(&event["conversation"]), sorted(&[&alice.id, &bob.id, &dave.id]));
        assert_eq!(member(&event["conversation"], &alice.id)["role"], "owner");
        assert_eq!(member(&event["conversation"], &dave.id)["role"], "member");
    }

    // The system message is in history, for the newcomer and the others.
    for user in [&alice, &dave] {
        let (status, history) = server.get(Some(user), &format!("/api/conversations/{group}/messages")).await;
        assert_eq!(status, 200, "{history}");
        let last = history["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or(Value::Null);
        assert_eq!(last, system, "{history}");
    }
    // Dave is a member now: the conversation is his to read and write in.
    let (status, seen) = server.get(Some(&dave), &format!("/api/conversations/{group}")).await;
    assert_eq!(status, 200, "{seen}");
    let sent = d.ack("message:send", json!({"conversation_id": group, "body": "thanks"})).await;
    assert_eq!(sent["message"]["seq"], 3);
    assert_eq!(b.event_where("message:new", |d| d["message"]["seq"] == 3).await["message"]["body"], "thanks");
    server.stop().await;
}

/// Only the owner adds, only to a group that is not full, only people not yet in it.
async fn adding_members_is_for_the_owner_of_a_group_with_room(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.max_group_members = 3).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let erin = server.user("erin").await;
    let group = server.group(&alice, "small", &[&bob]).await;
    let members = format!("/api/conversations/{group}/members");

    // Bob is a member, not the owner.
    let (status, body) = server.post(Some(&bob), &members, json!({"user_id": carol.id})).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    // Erin is not in the group at all.
    let (status, body) = server.post(Some(&erin), &members, json!({"user_id": carol.id})).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    // Bob is in already.
    let (status, body) = server.post(Some(&alice), &members, json!({"user_id": bob.id})).await;
    assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
    let (status, body) = server.post(Some(&alice), &members, json!({"user_id": alice.id})).await;
    assert_eq!((status, code(&body)), (409, "conflict"), "the owner is a member already: {body}");
    // A conversation that does not exist.
    let missing = uuid::Uuid::new_v4();
    let (status, body) =
        server.post(Some(&alice), &format!("/api/conversations/{missing}/members"), json!({"user_id": carol.id})).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    // A direct conversation has fixed members.
    let direct = server.direct(&alice, &bob).await;
    let (status, body) =
        server.post(Some(&alice), &format!("/api/conversations/{direct}/members"), json!({"user_id": carol.id})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "{body}");

    // Nothing of this changed the group.
    let (_, seen) = server.get(Some(&alice), &format!("/api/conversations/{group}")).await;
    assert_eq!(member_ids(&seen), sorted(&[&alice.id, &bob.id]));
    assert_eq!(seen["last_seq"], 0, "no system message for refused changes");

    // Carol makes three, the limit; Dave would be the fourth.
    let (status, body) = server.post(Some(&alice), &members, json!({"user_id": carol.id})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.post(Some(&alice), &members, json!({"user_id": dave.id})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "beyond max_group_members: {body}");
    let (_, seen) = server.get(Some(&alice), &format!("/api/conversations/{group}")).await;
    assert_eq!(member_ids(&seen), sorted(&[&alice.id, &bob.id, &carol.id]));
    assert_eq!(seen["last_seq"], 1);
    let (status, _) = server.get(Some(&dave), &format!("/api/conversations/{group}")).await;
    assert_eq!(status, 404);
    server.stop().await;
}

/// Bob leaves Alice's group: 204 and a system message; from then on the group is gone for him
/// (404 on it and its history, no more message:new, sending refused), and the others see him go.
async fn a_member_who_leaves_loses_the_conversation(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let group = server.group(&alice, "club", &[&bob, &carol]).await;
    let direct = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;
    let (status, _) =
        server.post(Some(&bob), &format!("/api/conversations/{group}/messages"), json!({"body": "bye soon"})).await;
    assert_eq!(status, 201);
    b.event_where("message:new", |d| d["message"]["seq"] == 1).await;

    let (status, body) = server.delete(Some(&bob), &format!("/api/conversations/{group}/members/{}", bob.id)).await;
    assert_eq!(status, 204, "{body}");

    // The others get the system message, and the group without Bob.
    for ws in [&mut a, &mut c] {
        let event = ws
            .event_where("message:new", |d| {
                d["message"]["conversation_id"] == group.as_str() && d["message"]["seq"] == 2
            })
            .await;
        assert_eq!(event["message"]["kind"], "system", "{event}");
        assert_eq!(event["message"]["sender_id"], bob.id.as_str());
        assert_eq!(event["message"]["conversation_id"], group.as_str());
        let update = ws
            .event_where("conversation:updated", |d| {
                d["conversation"]["id"] == group.as_str()
                    && d["conversation"]["members"].as_array().map(Vec::len) == Some(2)
            })
            .await;
        assert_eq!(member_ids(&update["conversation"]), sorted(&[&alice.id, &carol.id]));
    }
    let (status, history) = server.get(Some(&alice), &format!("/api/conversations/{group}/messages")).await;
    assert_eq!(status, 200);
    assert_eq!(history["messages"][1]["kind"], "system", "{history}");
    assert_eq!(history["messages"][1]["seq"], 2);

    // For Bob, the group is gone.
    let (status, body) = server.get(Some(&bob), &format!("/api/conversations/{group}")).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (status, body) = server.get(Some(&bob), &format!("/api/conversations/{group}/messages")).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (_, list) = server.get(Some(&bob), "/api/conversations").await;
    assert_eq!(listed_ids(&list), vec![direct.as_str()], "only the direct conversation is left to Bob");
    assert_eq!(b.error("message:send", json!({"conversation_id": group, "body": "wait"})).await, "not_found");
    let (status, body) =
        server.post(Some(&bob), &format!("/api/conversations/{group}/messages"), json!({"body": "wait"})).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (status, body) = server.delete(Some(&bob), &format!("/api/conversations/{group}/members/{}", bob.id)).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "leaving twice: {body}");

    // Alice writes in the group, then to Bob directly. Bob gets the direct message but not the
    // group's: the group's was broadcast before its send was acknowledged, so it would be ahead.
    let (status, _) =
        server.post(Some(&alice), &format!("/api/conversations/{group}/messages"), json!({"body": "he left"})).await;
    assert_eq!(status, 201);
    let (status, _) =
        server.post(Some(&alice), &format!("/api/conversations/{direct}/messages"), json!({"body": "why?"})).await;
    assert_eq!(status, 201);
    let direct_message = b.event_where("message:new", |d| d["message"]["conversation_id"] == direct.as_str()).await;
    assert_eq!(direct_message["message"]["body"], "why?");
    let leaked = b.drain(|f| {
        f["type"] == "message:new"
            && f["data"]["message"]["conversation_id"] == group.as_str()
            && f["data"]["message"]["seq"].as_i64() > Some(2)
    });
    assert!(leaked.is_empty(), "Bob still receives the group's messages: {leaked:?}");
    assert_eq!(c.event_where("message:new", |d| d["message"]["seq"] == 3).await["message"]["body"], "he left");
    server.stop().await;
}

/// The owner removes Bob (204); Carol, only a member, cannot remove anyone but herself.
async fn the_owner_removes_members_and_others_cannot(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let group = server.group(&alice, "club", &[&bob, &carol, &dave]).await;
    let mut c = server.ws(&carol).await;
    let remove = |user: &TestUser| format!("/api/conversations/{group}/members/{}", user.id);

    // Carol tries to remove Bob, and the owner: forbidden.
    let (status, body) = server.delete(Some(&carol), &remove(&bob)).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    let (status, body) = server.delete(Some(&carol), &remove(&alice)).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");

    // Alice removes Bob.
    let (status, body) = server.delete(Some(&alice), &remove(&bob)).await;
    assert_eq!(status, 204, "{body}");
    let event = c.event_where("message:new", |d| d["message"]["conversation_id"] == group.as_str()).await;
    assert_eq!(event["message"]["kind"], "system");
    assert_eq!(event["message"]["seq"], 1, "the refused attempts posted nothing");
    assert_eq!(event["message"]["sender_id"], alice.id.as_str());
    let (status, body) = server.get(Some(&bob), &format!("/api/conversations/{group}")).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (_, seen) = server.get(Some(&carol), &format!("/api/conversations/{group}")).await;
    assert_eq!(member_ids(&seen), sorted(&[&alice.id, &carol.id, &dave.id]));
    assert_eq!(seen["last_seq"], 1);

    // Bob is not a member any more: removing him again finds no one; and as an outsider he can
    // remove no one.
    let (status, body) = server.delete(Some(&alice), &remove(&bob)).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (status, body) = server.delete(Some(&bob), &remove(&dave)).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");

    // Carol may still leave herself.
    let (status, body) = server.delete(Some(&carol), &remove(&carol)).await;
    assert_eq!(status, 204, "{body}");
    let (_, seen) = server.get(Some(&alice), &format!("/api/conversations/{group}")).await;
    assert_eq!(member_ids(&seen), sorted(&[&alice.id, &dave.id]));
    assert_eq!(seen["last_seq"], 2);

    // Members of a direct conversation are fixed.
    let direct = server.direct(&alice, &bob).await;
    let (status, body) = server.delete(Some(&alice), &format!("/api/conversations/{direct}/members/{}", bob.id)).await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "{body}");
    server.stop().await;
}

/// Alice created the group with Bob and added Carol later; when Alice leaves, Bob (the
/// longest-standing) owns the group and can act as its owner. Ids are chosen so that Carol's
/// sorts first: seniority, not id order, decides.
async fn when_the_owner_leaves_the_longest_standing_member_takes_over(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = user_with_id(&server, "ffffffff-ffff-4fff-bfff-ffffffffffff", "Bob").await;
    let carol = user_with_id(&server, "00000000-0000-4000-8000-000000000001", "Carol").await;
    let dave = server.user("dave").await;
    let group = server.group(&alice, "relay", &[&bob]).await;
    let (status, body) =
        server.post(Some(&alice), &format!("/api/conversations/{group}/members"), json!({"user_id": carol.id})).await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = server.delete(Some(&alice), &format!("/api/conversations/{group}/members/{}", alice.id)).await;
    assert_eq!(status, 204, "{body}");

    let (status, seen) = server.get(Some(&carol), &format!("/api/conversations/{group}")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(member_ids(&seen), sorted(&[&bob.id, &carol.id]));
    assert_eq!(member(&seen, &bob.id)["role"], "owner", "{seen}");
    assert_eq!(member(&seen, &carol.id)["role"], "member", "{seen}");
    let (status, body) = server.get(Some(&alice), &format!("/api/conversations/{group}")).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");

    // The new owner's powers are real: Carol still cannot add, Bob can.
    let members = format!("/api/conversations/{group}/members");
    let (status, body) = server.post(Some(&carol), &members, json!({"user_id": dave.id})).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    let (status, body) = server.post(Some(&bob), &members, json!({"user_id": dave.id})).await;
    assert_eq!(status, 201, "the new owner adds a member: {body}");
    let (_, seen) = server.get(Some(&dave), &format!("/api/conversations/{group}")).await;
    assert_eq!(member_ids(&seen), sorted(&[&bob.id, &carol.id, &dave.id]));
    assert_eq!(member(&seen, &bob.id)["role"], "owner");
    server.stop().await;
}
