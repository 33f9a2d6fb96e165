//! Conversations (PROTOCOL.md §2 and the `conversation:updated` / `message:new` events of §3):
//! creating direct and group conversations, listing and reading them, and group membership.

mod common;

use common::*;
use serde_json::{Value, json};

backends!(
    a_direct_conversation_is_created_once_per_pair,
    creating_a_direct_conversation_refuses_bad_requests,
    new_conversations_are_announced_to_their_members,
    a_group_is_created_with_its_owner,
    creating_a_group_checks_title_members_and_size,
    the_list_is_newest_activity_first_and_pages_with_a_cursor,
    the_list_refuses_bad_cursors_and_limits,
    a_conversation_is_visible_to_its_members_only,
    the_owner_adds_a_member_with_a_system_message,
    adding_members_is_for_the_owner_of_a_group_with_room,
    a_member_who_leaves_loses_the_conversation,
    the_owner_removes_members_and_others_cannot,
    when_the_owner_leaves_the_longest_standing_member_takes_over,
    unread_count_follows_sends_and_the_read_marker,
    writes_to_a_missing_conversation_are_not_found,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// The error code of an error answer.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("an error body, got {body}"))
}

/// `2026-11-21T10:15:30.123Z`: RFC 3339, UTC, exactly three fraction digits.
fn assert_timestamp(value: &Value, what: &str) {
    let text = value.as_str().unwrap_or_else(|| panic!("{what} is a string, got {value}"));
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 24
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            23 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(shape_ok, "{what} should look like 2026-11-21T10:15:30.123Z, got {text}");
    assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{what} is not RFC 3339: {text}");
}

/// The member entry of `user_id` in a Conversation.
fn member<'a>(conversation: &'a Value, user_id: &str) -> &'a Value {
    conversation["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members is an array: {conversation}"))
        .iter()
        .find(|m| m["user_id"] == user_id)
        .unwrap_or_else(|| panic!("{user_id} should be a member of {conversation}"))
}

/// The user ids of a Conversation's members, sorted.
fn member_ids(conversation: &Value) -> Vec<String> {
    let mut ids: Vec<String> = conversation["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members is an array: {conversation}"))
        .iter()
        .map(|m| m["user_id"].as_str().expect("user_id").to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

/// The ids of a list page, in order.
fn listed_ids(page: &Value) -> Vec<String> {
    page["conversations"]
        .as_array()
        .unwrap_or_else(|| panic!("conversations is an array: {page}"))
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

async fn create_group(server: &TestServer, owner: &TestUser, title: &str, members: &[&TestUser]) -> String {
    let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
    let (status, body) = server
        .post(Some(owner), "/api/conversations", json!({"kind": "group", "title": title, "member_ids": ids}))
        .await;
    assert_eq!(status, 201, "create group: {body}");
    body["id"].as_str().expect("conversation id").to_string()
}

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

// ---------------------------------------------------------------------------------------------
// Creating conversations

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
    assert_timestamp(&created["created_at"], "created_at");
    assert_timestamp(&created["updated_at"], "updated_at");
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

    let group = create_group(&server, &alice, "plans", &[&bob, &carol]).await;
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
    assert_timestamp(&group["created_at"], "created_at");
    assert_timestamp(&group["updated_at"], "updated_at");
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

// ---------------------------------------------------------------------------------------------
// Listing and reading

/// Alice has three conversations: the list shows the most recently active first, a new message
/// moves its conversation to the top, `total_unread` adds up, and `limit=1` pages through all
/// three with the `next` cursor.
async fn the_list_is_newest_activity_first_and_pages_with_a_cursor(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let first = server.direct(&alice, &bob).await;
    let second = server.direct(&alice, &carol).await;
    let third = create_group(&server, &alice, "all of us", &[&bob, &carol, &dave]).await;

    let (status, list) = server.get(Some(&alice), "/api/conversations").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(listed_ids(&list), [third.clone(), second.clone(), first.clone()]);
    assert_eq!(list["total_unread"], 0);
    assert_eq!(list["next"], Value::Null, "everything fits in one page");

    // Bob writes in the oldest one: it moves to the top, with one unread for Alice.
    let (status, sent) =
        server.post(Some(&bob), &format!("/api/conversations/{first}/messages"), json!({"body": "still there?"})).await;
    assert_eq!(status, 201, "{sent}");
    let (_, list) = server.get(Some(&alice), "/api/conversations").await;
    assert_eq!(listed_ids(&list), [first.clone(), third.clone(), second.clone()]);
    assert_eq!(list["total_unread"], 1);
    assert_eq!(list["conversations"][0]["unread_count"], 1);
    assert_eq!(list["conversations"][0]["last_seq"], 1);
    assert_eq!(list["conversations"][0]["last_message"]["body"], "still there?");
    assert_eq!(list["conversations"][0]["last_message"]["seq"], 1);

    // Carol writes twice in the second.
    for body in ["one", "two"] {
        let (status, _) =
            server.post(Some(&carol), &format!("/api/conversations/{second}/messages"), json!({"body": body})).await;
        assert_eq!(status, 201);
    }
    let (_, list) = server.get(Some(&alice), "/api/conversations").await;
    let expected = [second.clone(), first.clone(), third.clone()];
    assert_eq!(listed_ids(&list), expected);
    assert_eq!(list["total_unread"], 3);
    assert_eq!(list["conversations"][0]["unread_count"], 2);

    // Page by page, one at a time: three pages, the last one without a next cursor.
    let mut paged = Vec::new();
    let mut path = "/api/conversations?limit=1".to_string();
    for page in 1..=3 {
        let (status, body) = server.get(Some(&alice), &path).await;
        assert_eq!(status, 200, "page {page}: {body}");
        assert_eq!(body["conversations"].as_array().map(Vec::len), Some(1), "page {page}: {body}");
        assert_eq!(body["total_unread"], 3, "total_unread counts every conversation, not the page");
        paged.extend(listed_ids(&body));
        if page < 3 {
            let next = body["next"].as_str().unwrap_or_else(|| panic!("page {page} has a next cursor: {body}"));
            path = format!("/api/conversations?limit=1&before={next}");
        } else {
            assert_eq!(body["next"], Value::Null, "the last page has no next: {body}");
        }
    }
    assert_eq!(paged, expected);

    // Two at a time: two pages.
    let (_, page) = server.get(Some(&alice), "/api/conversations?limit=2").await;
    assert_eq!(listed_ids(&page), expected[..2]);
    let next = page["next"].as_str().expect("a next cursor").to_string();
    let (_, page) = server.get(Some(&alice), &format!("/api/conversations?limit=2&before={next}")).await;
    assert_eq!(listed_ids(&page), expected[2..]);
    assert_eq!(page["next"], Value::Null);

    // Dave sees only the group.
    let (_, list) = server.get(Some(&dave), "/api/conversations").await;
    assert_eq!(listed_ids(&list), [third]);
    server.stop().await;
}

/// A cursor that did not come from `next`, and a limit of 0 or above the maximum, are refused.
async fn the_list_refuses_bad_cursors_and_limits(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.direct(&alice, &bob).await;
    let max = server.config.limits.max_batch;

    let bad = [
        "/api/conversations?before=nonsense".to_string(),
        "/api/conversations?before=123_not-a-uuid".to_string(),
        format!("/api/conversations?before=soon_{}", uuid::Uuid::new_v4()),
        "/api/conversations?limit=0".to_string(),
        "/api/conversations?limit=-1".to_string(),
        format!("/api/conversations?limit={}", max + 1),
        "/api/conversations?limit=many".to_string(),
    ];
    for path in &bad {
        let (status, body) = server.get(Some(&alice), path).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{path}: {body}");
    }
    let (status, body) = server.get(Some(&alice), &format!("/api/conversations?limit={max}")).await;
    assert_eq!(status, 200, "limit={max} is the maximum: {body}");
    assert_eq!(body["conversations"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

/// Carol is not in Alice and Bob's conversation: to her it answers exactly like one that does
/// not exist, and so does its history.
async fn a_conversation_is_visible_to_its_members_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let group = create_group(&server, &alice, "pair", &[&bob]).await;

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

// ---------------------------------------------------------------------------------------------
// Membership

/// Alice adds Dave to her group: 201, a system message everyone sees (Dave included), in
/// history, and `conversation:updated` to every member.
async fn the_owner_adds_a_member_with_a_system_message(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let dave = server.user("dave").await;
    let group = create_group(&server, &alice, "crew", &[&bob]).await;
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
    let group = create_group(&server, &alice, "small", &[&bob]).await;
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
    let group = create_group(&server, &alice, "club", &[&bob, &carol]).await;
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
    let group = create_group(&server, &alice, "club", &[&bob, &carol, &dave]).await;
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
    let group = create_group(&server, &alice, "relay", &[&bob]).await;
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

// ---------------------------------------------------------------------------------------------
// Unread counts

/// Bob's `unread_count` for his conversation with Alice counts her messages after his read
/// marker; his own messages are never unread.
async fn unread_count_follows_sends_and_the_read_marker(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let path = format!("/api/conversations/{conversation}");

    for body in ["one", "two", "three"] {
        let (status, _) = server.post(Some(&alice), &format!("{path}/messages"), json!({"body": body})).await;
        assert_eq!(status, 201);
    }
    let (_, seen) = server.get(Some(&bob), &path).await;
    assert_eq!(seen["unread_count"], 3, "{seen}");
    assert_eq!(seen["last_seq"], 3);
    assert_eq!(seen["last_message"]["body"], "three");
    assert_eq!(seen["last_message"]["seq"], 3);
    assert_eq!(seen["last_message"]["kind"], "text");
    assert_eq!(seen["last_message"]["sender_id"], alice.id.as_str());
    assert_timestamp(&seen["last_message"]["created_at"], "last_message.created_at");
    assert_eq!(member(&seen, &bob.id)["last_read_seq"], 0);
    assert_eq!(member(&seen, &alice.id)["last_read_seq"], 3, "the sender's marker moves to her message");
    let (_, seen) = server.get(Some(&alice), &path).await;
    assert_eq!(seen["unread_count"], 0, "one's own messages are never unread: {seen}");

    // Bob reads up to 2.
    let (status, read) = server.post(Some(&bob), &format!("{path}/read"), json!({"seq": 2})).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read, json!({"last_read_seq": 2, "unread_count": 1, "total_unread": 1}));
    let (_, seen) = server.get(Some(&bob), &path).await;
    assert_eq!(seen["unread_count"], 1);
    assert_eq!(member(&seen, &bob.id)["last_read_seq"], 2);
    let (_, list) = server.get(Some(&bob), "/api/conversations").await;
    assert_eq!((list["total_unread"].as_i64(), list["conversations"][0]["unread_count"].as_i64()), (Some(1), Some(1)));
    // Alice sees Bob's marker too.
    let (_, seen) = server.get(Some(&alice), &path).await;
    assert_eq!(member(&seen, &bob.id)["last_read_seq"], 2);

    // Bob answers: his marker moves to his message, so nothing is unread for him; Alice has one.
    let (status, _) = server.post(Some(&bob), &format!("{path}/messages"), json!({"body": "four"})).await;
    assert_eq!(status, 201);
    let (_, seen) = server.get(Some(&bob), &path).await;
    assert_eq!(seen["unread_count"], 0, "{seen}");
    assert_eq!(member(&seen, &bob.id)["last_read_seq"], 4);
    let (_, seen) = server.get(Some(&alice), &path).await;
    assert_eq!(seen["unread_count"], 1, "{seen}");

    // Alice reads everything (no seq: the latest).
    let (status, read) = server.post(Some(&alice), &format!("{path}/read"), json!({})).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read, json!({"last_read_seq": 4, "unread_count": 0, "total_unread": 0}));
    let (_, seen) = server.get(Some(&alice), &path).await;
    assert_eq!(seen["unread_count"], 0);

    // Bob marks as unread from message 2 on: three unread again.
    let (status, unread) = server.post(Some(&bob), &format!("{path}/unread"), json!({"seq": 2})).await;
    assert_eq!(status, 200, "{unread}");
    assert_eq!(unread["last_read_seq"], 1);
    assert_eq!(unread["unread_count"], 3);
    let (_, seen) = server.get(Some(&bob), &path).await;
    assert_eq!(seen["unread_count"], 3, "{seen}");
    let (_, list) = server.get(Some(&bob), "/api/conversations").await;
    assert_eq!(list["total_unread"], 3);
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
