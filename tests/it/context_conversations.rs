//! Conversations about the host's objects (docs/PROTOCOL.md §2.4, §7.3): the same two people
//! have one conversation per context (an appointment), beside their plain direct one, and a
//! group is got or created by its context; users and the service list them by context; a user
//! may attach a context to their own direct pair only where anyone may start conversations, and
//! never `metadata`; the service's changes to `metadata` and `context_ends_at` reach the members.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    the_same_two_people_have_one_conversation_per_context,
    a_group_is_got_or_created_by_its_context,
    conversations_are_listed_by_context,
    users_attach_a_context_only_where_anyone_may_start_a_conversation,
    metadata_and_end_time_changes_reach_the_members,
);

/// The direct conversation of the host's users `a` and `b` about appointment `id`: the status
/// and the `Conversation`.
async fn appointment(server: &Http, a: &str, b: &str, id: &str) -> (u16, Value) {
    let context = json!({"type": "appointment", "id": id});
    service_post(server, "/api/service/conversations", json!({"kind": "direct", "members": [a, b], "context": context}))
        .await
}

/// The ids of the conversations `user` lists with `query`, sorted.
async fn listed(server: &Http, user: &TestUser, query: &str) -> Vec<String> {
    let (status, page) = server.get(Some(user), &format!("/api/conversations?{query}")).await;
    assert_eq!(status, 200, "{query}: {page}");
    let mut ids = listed_ids(&page);
    ids.sort();
    ids
}

/// The ids of the conversations the service lists with `query`, sorted (all on one page).
async fn service_listed(server: &Http, query: &str) -> Vec<String> {
    let (status, page) = service_get(server, &format!("/api/service/conversations?{query}")).await;
    assert_eq!(status, 200, "{query}: {page}");
    assert_eq!(page["next"], Value::Null, "one page: {page}");
    let mut ids = listed_ids(&page);
    ids.sort();
    ids
}

async fn the_same_two_people_have_one_conversation_per_context(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;

    // Two appointments: two conversations, each with its context and both of them as members.
    let (status, first) = appointment(&server, "42", "43", "A-1").await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = appointment(&server, "42", "43", "A-2").await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(first["id"], second["id"]);
    for (conversation, id) in [(&first, "A-1"), (&second, "A-2")] {
        assert_eq!(conversation["kind"], "direct");
        assert_eq!(conversation["context"], json!({"type": "appointment", "id": id}));
        assert_eq!(member_ids(conversation), sorted_ids(&[&ada, &bob]));
        assert_eq!(conversation["archived_at"], Value::Null, "archived_at is there, null: {conversation}");
    }

    // The first appointment again, either way round: 200, the same conversation.
    for (a, b) in [("42", "43"), ("43", "42")] {
        let (status, again) = appointment(&server, a, b, "A-1").await;
        assert_eq!((status, &again["id"]), (200, &first["id"]), "{again}");
    }

    // Without a context: their plain direct conversation, a third one, got the same way.
    let (status, plain) =
        service_post(&server, "/api/service/conversations", json!({"kind": "direct", "members": ["42", "43"]})).await;
    assert_eq!(status, 201, "{plain}");
    assert!(plain["id"] != first["id"] && plain["id"] != second["id"], "{plain}");
    assert_eq!(plain.get("context"), None, "{plain}");
    let (status, again) =
        service_post(&server, "/api/service/conversations", json!({"kind": "direct", "members": ["43", "42"]})).await;
    assert_eq!((status, &again["id"]), (200, &plain["id"]));

    // Ada has the three.
    let (status, page) = server.get(Some(&ada), "/api/conversations").await;
    assert_eq!(status, 200, "{page}");
    let mut hers = listed_ids(&page);
    hers.sort();
    assert_eq!(hers, sorted(&[&id_of(&first), &id_of(&second), &id_of(&plain)]));
    server.stop().await;
}

async fn a_group_is_got_or_created_by_its_context(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let carol = host_user(&server, "44", "Carol").await;
    let case = json!({"type": "case", "id": "C-9"});
    let body = json!({"kind": "group", "title": "Care team", "members": ["42", "43", "44"], "context": case});
    let (status, group) = service_post(&server, "/api/service/conversations", body).await;
    assert_eq!(status, 201, "{group}");
    assert_eq!((&group["kind"], &group["title"], &group["context"]), (&json!("group"), &json!("Care team"), &case));
    assert_eq!(member_ids(&group), sorted_ids(&[&ada, &bob, &carol]));
    assert_eq!(member(&group, &ada.id)["role"], "owner", "members[0] owns the group");
    assert_eq!(member(&group, &bob.id)["role"], "member");

    // The same context again, with another title and other members: the group as it is.
    let body = json!({"kind": "group", "title": "Another team", "members": ["44"], "context": case});
    let (status, again) = service_post(&server, "/api/service/conversations", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!((&again["id"], &again["title"]), (&group["id"], &json!("Care team")));
    assert_eq!(member_ids(&again), sorted_ids(&[&ada, &bob, &carol]), "its members are not changed");

    // Another case: another group.
    let body =
        json!({"kind": "group", "title": "Care team", "members": ["42"], "context": {"type": "case", "id": "C-10"}});
    let (status, other) = service_post(&server, "/api/service/conversations", body).await;
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["id"], group["id"]);

    // What the service must say: a title for a group, two distinct members for a direct
    // conversation, known users (the unknown ones are named), a context of 1 to 128 bytes.
    let bad = [
        json!({"kind": "group", "members": ["42", "43"], "context": {"type": "case", "id": "C-11"}}),
        json!({"kind": "direct", "members": ["42", "43", "44"]}),
        json!({"kind": "direct", "members": ["42", "42"]}),
        json!({"kind": "direct", "members": ["42"]}),
        json!({"kind": "direct", "members": ["42", "43"], "context": {"type": "", "id": "A-1"}}),
        json!({"kind": "direct", "members": ["42", "43"], "context": {"type": "appointment", "id": "x".repeat(129)}}),
        json!({"kind": "direct", "members": ["42", "43"], "context": {"type": "appointment"}}),
    ];
    for body in bad {
        let got = service_post(&server, "/api/service/conversations", body).await;
        assert_error(&got, 400, "bad_request");
    }
    let got =
        service_post(&server, "/api/service/conversations", json!({"kind": "direct", "members": ["42", "nobody-1"]}))
            .await;
    let message = assert_error(&got, 400, "bad_request");
    assert!(message.contains("nobody-1"), "the unknown external id is named: {message}");
    // None of them made a conversation.
    let (status, page) = server.get(Some(&ada), "/api/conversations").await;
    assert_eq!((status, page["conversations"].as_array().map(Vec::len)), (200, Some(2)), "{page}");
    server.stop().await;
}

async fn conversations_are_listed_by_context(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    provision(&server, "44", "Carol").await;
    let ab_1 = id_of(&appointment(&server, "42", "43", "A-1").await.1);
    let ab_2 = id_of(&appointment(&server, "42", "43", "A-2").await.1);
    let ab = service_direct(&server, "42", "43").await;
    let ac_1 = id_of(&appointment(&server, "42", "44", "A-1").await.1);
    let (ab_1, ab_2, ab, ac_1) = (ab_1.as_str(), ab_2.as_str(), ab.as_str(), ac_1.as_str());

    // A user: one context, a type of context, everything.
    assert_eq!(listed(&server, &bob, "context_type=appointment&context_id=A-1").await, sorted(&[ab_1]));
    assert_eq!(listed(&server, &ada, "context_type=appointment&context_id=A-1").await, sorted(&[ab_1, ac_1]));
    assert_eq!(listed(&server, &ada, "context_type=appointment").await, sorted(&[ab_1, ab_2, ac_1]));
    assert_eq!(listed(&server, &ada, "context_type=case").await, Vec::<String>::new());
    assert_eq!(listed(&server, &ada, "").await, sorted(&[ab_1, ab_2, ab, ac_1]));

    // The service sees every conversation, and filters by member (an external id) too.
    assert_eq!(service_listed(&server, "context_type=appointment&context_id=A-1").await, sorted(&[ab_1, ac_1]));
    assert_eq!(service_listed(&server, "context_type=appointment&context_id=A-1&member=44").await, sorted(&[ac_1]));
    assert_eq!(service_listed(&server, "member=43").await, sorted(&[ab_1, ab_2, ab]));
    assert_eq!(service_listed(&server, "context_type=appointment&member=43").await, sorted(&[ab_1, ab_2]));
    assert_eq!(service_listed(&server, "").await, sorted(&[ab_1, ab_2, ab, ac_1]));
    server.stop().await;
}

async fn users_attach_a_context_only_where_anyone_may_start_a_conversation(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        host(config);
        config.host.conversation_start = Some(parley::config::ConversationStart::Anyone);
    })
    .await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let context = json!({"type": "appointment", "id": "A-1"});

    // Ada opens the conversation of her appointment with Bob, then finds it again.
    let body = json!({"kind": "direct", "user_id": bob.id, "context": context});
    let (status, opened) = server.post(Some(&ada), "/api/conversations", body).await;
    assert_eq!(status, 201, "{opened}");
    assert_eq!(opened["context"], context);
    assert_eq!(member_ids(&opened), sorted_ids(&[&ada, &bob]));
    let (status, again) = server
        .post(Some(&bob), "/api/conversations", json!({"kind": "direct", "user_id": ada.id, "context": context}))
        .await;
    assert_eq!((status, &again["id"]), (200, &opened["id"]), "{again}");
    // It is the service's too: the same conversation for that context.
    let (status, seen) = appointment(&server, "42", "43", "A-1").await;
    assert_eq!((status, &seen["id"]), (200, &opened["id"]), "{seen}");
    // Their plain direct conversation is another one.
    let (status, plain) =
        server.post(Some(&ada), "/api/conversations", json!({"kind": "direct", "user_id": bob.id})).await;
    assert_eq!(status, 201, "{plain}");
    assert_ne!(plain["id"], opened["id"]);

    // What is the service's alone, in a user's body: 400.
    let case = json!({"type": "case", "id": "C-9"});
    for body in [
        json!({"kind": "direct", "user_id": bob.id, "metadata": {"room": "3B"}}),
        json!({"kind": "direct", "user_id": bob.id, "context": context, "context_ends_at": days_from_now(1)}),
        json!({"kind": "group", "title": "Care team", "member_ids": [bob.id], "context": case}),
    ] {
        assert_error(&server.post(Some(&ada), "/api/conversations", body).await, 400, "bad_request");
    }
    server.stop().await;

    // Where only the service opens conversations, a context does not open the door.
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let got = server
        .post(Some(&ada), "/api/conversations", json!({"kind": "direct", "user_id": bob.id, "context": context}))
        .await;
    let message = assert_error(&got, 403, "forbidden");
    assert!(message.contains("opened by the service"), "{message}");
    let (status, page) = server.get(Some(&ada), "/api/conversations").await;
    assert_eq!((status, page["conversations"].as_array().map(Vec::len)), (200, Some(0)), "{page}");
    server.stop().await;
}

async fn metadata_and_end_time_changes_reach_the_members(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let ends = days_from_now(3);
    let body = json!({
        "kind": "direct",
        "members": ["42", "43"],
        "context": {"type": "appointment", "id": "A-1"},
        "context_ends_at": ends,
        "metadata": {"room": "3B"},
    });
    let created = service_conversation(&server, body).await;
    let conversation = id_of(&created);
    assert_eq!((&created["metadata"], &created["context_ends_at"]), (&json!({"room": "3B"}), &json!(ends)));
    timestamp(&created["context_ends_at"]);
    let mut a = server.ws(&ada).await;
    let mut b = server.ws(&bob).await;

    // The appointment moves to another room and ends later.
    let later = days_from_now(4);
    let path = format!("/api/service/conversations/{conversation}");
    let (status, patched) = service_patch(
        &server,
        &path,
        json!({"metadata": {"room": "4C", "doctor": "Dr Who"}, "context_ends_at": later}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let metadata = json!({"room": "4C", "doctor": "Dr Who"});
    assert_eq!((&patched["metadata"], &patched["context_ends_at"]), (&metadata, &json!(later)), "{patched}");
    assert_eq!(patched["context"], created["context"], "the context is not changed");
    for (who, ws) in [("Ada", &mut a), ("Bob", &mut b)] {
        let updated = ws
            .event_where("conversation:updated", |d| {
                d["conversation"]["id"] == conversation.as_str() && d["conversation"]["metadata"] == metadata
            })
            .await;
        assert_eq!(updated["conversation"]["context_ends_at"], later, "{who}: {updated}");
    }
    let (status, seen) = server.get(Some(&bob), &path.replace("/service", "")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!((&seen["metadata"], &seen["context_ends_at"]), (&metadata, &json!(later)), "{seen}");

    // A PATCH of only one field keeps the other.
    let (status, patched) = service_patch(&server, &path, json!({"context_ends_at": ends})).await;
    assert_eq!((status, &patched["metadata"], &patched["context_ends_at"]), (200, &metadata, &json!(ends)));

    // Bad changes are refused, and an unknown conversation is 404.
    for body in [json!({"metadata": ["room"]}), json!({"context_ends_at": "tomorrow"}), json!({"title": "x"})] {
        assert_error(&service_patch(&server, &path, body).await, 400, "bad_request");
    }
    let nowhere = format!("/api/service/conversations/{}", uuid::Uuid::new_v4());
    assert_error(&service_patch(&server, &nowhere, json!({"metadata": {}})).await, 404, "not_found");
    let (status, unchanged) = service_get(&server, &path).await;
    assert_eq!((status, &unchanged["metadata"], &unchanged["context_ends_at"]), (200, &metadata, &json!(ends)));
    server.stop().await;
}
