//! The policies of an embedded install (docs/PROTOCOL.md §1.1, §2.3, §2.4): registration is
//! closed, the directory shows only one's contacts (or nothing, when off), and only the service
//! opens conversations; each is a default that a setting overrides, and a standalone server
//! keeps all of them open.

use serde_json::json;

use crate::common::*;

backends!(
    registration_is_closed_when_embedded,
    the_contacts_directory_shows_only_the_people_one_shares_a_conversation_with,
    a_directory_that_is_off_answers_no_search,
    only_the_service_opens_conversations_when_embedded,
    a_standalone_server_keeps_every_policy_open,
);

/// The ids of the users `user` finds in the directory with `q`, sorted.
async fn found(server: &TestServer, user: &TestUser, q: &str) -> Vec<String> {
    let (status, page) = server.get(Some(user), &format!("/api/users?q={q}")).await;
    assert_eq!(status, 200, "search {q:?}: {page}");
    let mut ids: Vec<String> = page["users"]
        .as_array()
        .unwrap_or_else(|| panic!("users: {page}"))
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

async fn register(server: &TestServer, username: &str) -> (u16, serde_json::Value) {
    server.post(None, "/api/auth/register", json!({"username": username, "password": PASSWORD})).await
}

async fn registration_is_closed_when_embedded(backend: Backend) {
    // Embedded, by default: closed, and the answer says so; the operator's accounts still sign in.
    let server = TestServer::start_with(backend, host).await;
    let message = assert_error(&register(&server, "alice").await, 403, "forbidden");
    assert!(message.contains("registration is closed"), "{message}");
    assert_error(&login(&server, "alice", PASSWORD).await, 401, "unauthorized");
    server.sign_in("admin").await;
    server.stop().await;

    // Embedded with registration opened explicitly.
    let server = TestServer::start_with(backend, |config| {
        host(config);
        config.host.registration = Some(parley::config::Registration::Open);
    })
    .await;
    let (status, body) = register(&server, "alice").await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;

    // Standalone with registration closed explicitly.
    let server =
        TestServer::start_with(backend, |config| config.host.registration = Some(parley::config::Registration::Closed))
            .await;
    assert_error(&register(&server, "alice").await, 403, "forbidden");
    server.stop().await;
}

/// Mallory, a stranger to Ada and Bob, finds only herself, and Ada's profile is 404 to her as an
/// unknown id would be. Once the service opens a conversation of Mallory and Ada, she finds Ada
/// (not Bob, who is still a stranger).
async fn the_contacts_directory_shows_only_the_people_one_shares_a_conversation_with(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    // Searched for by "Lovelace": no UUID (so no username here) contains those letters.
    let ada = host_user(&server, "42", "Ada Lovelace").await;
    let bob = host_user(&server, "43", "Bob").await;
    let mallory = host_user(&server, "66", "Mallory").await;
    service_direct(&server, "42", "43").await;

    assert_eq!(found(&server, &mallory, "").await, sorted_ids(&[&mallory]), "everyone, to a stranger: herself");
    assert_eq!(found(&server, &mallory, "Lovelace").await, Vec::<String>::new());
    assert_eq!(found(&server, &ada, "").await, sorted_ids(&[&ada, &bob]), "Ada finds her contact and herself");
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [ada.id.as_str(), bob.id.as_str(), unknown.as_str()] {
        assert_error(&server.get(Some(&mallory), &format!("/api/users/{id}")).await, 404, "not_found");
    }
    assert_error(&server.get(Some(&ada), &format!("/api/users/{}", mallory.id)).await, 404, "not_found");
    let (status, herself) = server.get(Some(&mallory), &format!("/api/users/{}", mallory.id)).await;
    assert_eq!((status, &herself["display_name"]), (200, &json!("Mallory")), "{herself}");
    let (status, me) = server.get(Some(&mallory), "/api/me").await;
    assert_eq!((status, &me["id"]), (200, &json!(mallory.id)), "{me}");

    service_direct(&server, "66", "42").await;
    assert_eq!(found(&server, &mallory, "").await, sorted_ids(&[&mallory, &ada]));
    assert_eq!(found(&server, &mallory, "Lovelace").await, sorted_ids(&[&ada]));
    let (status, user) = server.get(Some(&mallory), &format!("/api/users/{}", ada.id)).await;
    assert_eq!((status, &user["display_name"]), (200, &json!("Ada Lovelace")), "{user}");
    assert_error(&server.get(Some(&mallory), &format!("/api/users/{}", bob.id)).await, 404, "not_found");
    server.stop().await;
}

async fn a_directory_that_is_off_answers_no_search(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        host(config);
        config.host.directory = Some(parley::config::Directory::Off);
    })
    .await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let mallory = host_user(&server, "66", "Mallory").await;
    service_direct(&server, "42", "43").await;

    for q in ["", "Bob"] {
        let message = assert_error(&server.get(Some(&ada), &format!("/api/users?q={q}")).await, 403, "forbidden");
        assert!(message.contains("directory is off"), "{message}");
    }
    // A profile is shown as under `contacts`: one's contacts and oneself, no one else.
    let (status, user) = server.get(Some(&ada), &format!("/api/users/{}", bob.id)).await;
    assert_eq!((status, &user["display_name"]), (200, &json!("Bob")), "{user}");
    assert_eq!(server.get(Some(&ada), &format!("/api/users/{}", ada.id)).await.0, 200);
    assert_error(&server.get(Some(&ada), &format!("/api/users/{}", mallory.id)).await, 404, "not_found");
    server.stop().await;
}

async fn only_the_service_opens_conversations_when_embedded(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    for body in [
        json!({"kind": "direct", "user_id": bob.id}),
        json!({"kind": "group", "title": "Lunch", "member_ids": [bob.id]}),
    ] {
        let message = assert_error(&server.post(Some(&ada), "/api/conversations", body).await, 403, "forbidden");
        assert!(message.contains("opened by the service"), "{message}");
    }
    let (status, page) = server.get(Some(&bob), "/api/conversations").await;
    assert_eq!((status, page["conversations"].as_array().map(Vec::len)), (200, Some(0)), "nothing was made: {page}");
    // The service opens it, and then it is theirs to use.
    let conversation = service_direct(&server, "42", "43").await;
    let (status, sent) = server.post(Some(&ada), &messages_path(&conversation), json!({"body": "Hello Bob"})).await;
    assert_eq!(status, 201, "{sent}");
    server.stop().await;

    // Embedded with the start policy set to `anyone`: users open conversations again.
    let server = TestServer::start_with(backend, |config| {
        host(config);
        config.host.conversation_start = Some(parley::config::ConversationStart::Anyone);
    })
    .await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let (status, direct) =
        server.post(Some(&ada), "/api/conversations", json!({"kind": "direct", "user_id": bob.id})).await;
    assert_eq!(status, 201, "{direct}");
    server.group(&ada, "Lunch", &[&bob]).await;
    server.stop().await;
}

/// Without service keys nothing is closed: people register, find everyone, see any profile and
/// open conversations with anyone.
async fn a_standalone_server_keeps_every_policy_open(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    server.direct(&alice, &bob).await;

    let everyone = found(&server, &carol, "").await;
    for user in [&alice, &bob, &carol] {
        assert!(everyone.contains(&user.id), "Carol, a stranger, finds {}: {everyone:?}", user.username);
    }
    assert_eq!(found(&server, &carol, "alice").await, sorted_ids(&[&alice]));
    let (status, user) = server.get(Some(&carol), &format!("/api/users/{}", alice.id)).await;
    assert_eq!((status, &user["username"]), (200, &json!("alice")), "{user}");
    server.direct(&carol, &alice).await;
    server.group(&carol, "Book club", &[&alice, &bob]).await;
    server.stop().await;
}
