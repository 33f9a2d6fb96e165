//! The service API's door and its users: `/api/service/*` takes a service key and nothing else
//! (no key, a user's token or a wrong key is 401; a server without keys answers 403), every key
//! listed is accepted (rotation), and a service key opens nothing else (the user API and the
//! WebSocket refuse it as any invalid token). Provisioning creates a user (201) then updates it
//! (200), refuses bad input without changing anything, and the user's `metadata` is shown to the
//! service only.

use awc::http::Method;
use serde_json::{Value, json};

use crate::common::*;

backends!(
    the_service_api_takes_a_service_key_and_nothing_else,
    every_listed_key_is_accepted_during_a_rotation,
    a_service_key_opens_nothing_but_the_service_api,
    provisioning_creates_a_user_then_updates_it,
    bad_provisioning_is_refused_and_changes_nothing,
    a_users_metadata_is_shown_to_the_service_only,
);

/// The key that replaces [`SERVICE_KEY`] in a rotation.
const NEXT_KEY: &str = "host-service-key-next-0a1b2c3d4e5f60718293";

async fn the_service_api_takes_a_service_key_and_nothing_else(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let path = "/api/service/users/42";

    // The key opens it.
    let (status, user) = service_get(&server, path).await;
    assert_eq!((status, &user["id"]), (200, &json!(ada.id)), "{user}");

    // Without a key, and with Ada's own token (good for the user API): 401, saying what is
    // wanted. An admin's token is a user's token too.
    assert_eq!(server.get(Some(&ada), "/api/me").await.0, 200, "Ada's token is good for the user API");
    let root = admin();
    for (who, user) in [("no key", None), ("a user's token", Some(&ada)), ("an admin's token", Some(&root))] {
        let message = assert_error(&server.get(user, path).await, 401, "unauthorized");
        assert!(message.contains("service key"), "{who}: {message}");
    }
    // A wrong key, and one that differs from the key by its last character: 401, and nothing
    // they asked for is done.
    provision(&server, "43", "Bob").await;
    let almost = format!("{}x", &SERVICE_KEY[..SERVICE_KEY.len() - 1]);
    for key in ["k".repeat(40), almost] {
        let wrong = bearer(&key);
        assert_error(&server.get(Some(&wrong), path).await, 401, "unauthorized");
        let rename = json!({"display_name": "Mallory"});
        let attempt = server.try_request(Method::PUT, path, Some(&wrong), Some(&rename)).await.expect("PUT");
        assert_error(&attempt, 401, "unauthorized");
        let open = json!({"kind": "direct", "members": ["42", "43"]});
        assert_error(&server.post(Some(&wrong), "/api/service/conversations", open).await, 401, "unauthorized");
    }
    let (status, user) = service_get(&server, path).await;
    assert_eq!((status, &user["display_name"]), (200, &json!("Ada")), "{user}");
    let (status, page) = service_get(&server, "/api/service/conversations").await;
    assert_eq!((status, page["conversations"].as_array().map(Vec::len)), (200, Some(0)), "{page}");
    server.stop().await;

    // A standalone server has no keys: its service API is closed, to the key of another install
    // as to a caller without one.
    let standalone = TestServer::start(backend).await;
    for user in [Some(service()), None] {
        let message = assert_error(&standalone.get(user.as_ref(), path).await, 403, "forbidden");
        assert!(message.contains("no service keys"), "{message}");
    }
    let attempt = service_put(&standalone, path, json!({"display_name": "Ada"})).await;
    assert_error(&attempt, 403, "forbidden");
    standalone.stop().await;
}

/// Rotation: with the old and the new key listed, the host may call with either.
async fn every_listed_key_is_accepted_during_a_rotation(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        host(config);
        config.host.service_keys = vec![SERVICE_KEY.into(), NEXT_KEY.into()];
    })
    .await;
    let ada = provision(&server, "42", "Ada").await;
    let (status, seen) = server.get(Some(&bearer(NEXT_KEY)), "/api/service/users/42").await;
    assert_eq!((status, &seen), (200, &ada), "the new key reads what the old one made");
    server.stop().await;

    // Once the old key is removed, only the new one works.
    let server = TestServer::start_with(backend, |config| {
        host(config);
        config.host.service_keys = vec![NEXT_KEY.into()];
    })
    .await;
    assert_error(&service_get(&server, "/api/service/users/42").await, 401, "unauthorized");
    let (status, body) = server.get(Some(&bearer(NEXT_KEY)), "/api/service/users/42").await;
    assert_eq!(status, 404, "the new key gets through (to a user this database lacks): {body}");
    server.stop().await;
}

/// A service key is no user token: the user API and the WebSocket refuse it with 401.
async fn a_service_key_opens_nothing_but_the_service_api(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    for path in ["/api/me", "/api/conversations", "/api/users", "/api/admin/actors"] {
        assert_error(&server.get(Some(&service()), path).await, 401, "unauthorized");
    }
    assert_eq!(server.ws_with_token(SERVICE_KEY).await.err(), Some(401), "the WebSocket upgrade");
    assert_eq!(server.ws_with_query_token(SERVICE_KEY).await.err(), Some(401), "the upgrade, key in the query");
    server.stop().await;
}

async fn provisioning_creates_a_user_then_updates_it(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let path = "/api/service/users/p-7";

    // Created: 201, the ServiceUser, with the id Parley gave it as its username.
    let body = json!({
        "display_name": "Ada Lovelace",
        "avatar_url": "https://img.host.example/ada.png",
        "metadata": {"plan": "gold", "visits": 3},
    });
    let (status, created) = service_put(&server, path, body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{created}");
    assert_eq!(created["username"], id, "a provisioned user's username is its id");
    assert_eq!(created["external_id"], "p-7");
    assert_eq!(created["display_name"], "Ada Lovelace");
    assert_eq!(created["avatar_url"], "https://img.host.example/ada.png");
    assert_eq!(created["metadata"], json!({"plan": "gold", "visits": 3}));

    // Updated: 200, the same user; what the body leaves out is kept.
    let (status, renamed) = service_put(&server, path, json!({"display_name": "Ada King"})).await;
    assert_eq!(status, 200, "{renamed}");
    let mut expected = created.clone();
    expected["display_name"] = json!("Ada King");
    assert_eq!(renamed, expected, "only the display name changed");

    // `null` clears the avatar.
    let (status, cleared) = service_put(&server, path, json!({"avatar_url": null})).await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared.get("avatar_url"), None, "{cleared}");
    assert_eq!((&cleared["display_name"], &cleared["metadata"]), (&json!("Ada King"), &created["metadata"]));
    let (status, read) = service_get(&server, path).await;
    assert_eq!((status, &read), (200, &cleared));

    // Her token names her by that id, and the user API shows what the service set.
    let ada = host_token(&read);
    let (status, me) = server.get(Some(&ada), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((&me["id"], &me["display_name"], &me["external_id"]), (&json!(id), &json!("Ada King"), &json!("p-7")));

    // A user created without a display name is called by its external id.
    let (status, plain) = service_put(&server, "/api/service/users/p-8", json!({})).await;
    assert_eq!((status, &plain["display_name"]), (201, &json!("p-8")), "{plain}");
    assert_error(&service_get(&server, "/api/service/users/p-9").await, 404, "not_found");
    server.stop().await;
}

async fn bad_provisioning_is_refused_and_changes_nothing(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let path = "/api/service/users/p-7";
    let (status, before) =
        service_put(&server, path, json!({"display_name": "Ada", "metadata": {"plan": "gold"}})).await;
    assert_eq!(status, 201, "{before}");

    let bad: [(&str, Value); 7] = [
        ("a display name with a bidi override", json!({"display_name": "\u{202E}adA"})),
        ("a display name of invisible characters", json!({"display_name": "\u{200B}\u{200B}"})),
        ("an avatar that is a script", json!({"avatar_url": "javascript:x"})),
        ("an avatar that is no URL", json!({"avatar_url": "ada.png"})),
        ("metadata that is an array", json!({"metadata": ["gold"]})),
        ("metadata that is a string", json!({"metadata": "gold"})),
        ("an unknown field", json!({"nickname": "Ada"})),
    ];
    for (what, body) in bad {
        assert_error(&service_put(&server, path, body.clone()).await, 400, "bad_request");
        let (status, now) = service_get(&server, path).await;
        assert_eq!((status, &now), (200, &before), "{what} ({body}) changed nothing");
        // Nor does it create a user.
        assert_error(&service_put(&server, "/api/service/users/p-9", body).await, 400, "bad_request");
        assert_error(&service_get(&server, "/api/service/users/p-9").await, 404, "not_found");
    }

    // An external id of 300 bytes is too long (at most 255), to make and to read.
    let long = format!("/api/service/users/{}", "x".repeat(300));
    assert_error(&service_put(&server, &long, json!({"display_name": "Long"})).await, 400, "bad_request");
    let (status, _) = service_get(&server, &long).await;
    assert!(status == 400 || status == 404, "reading it finds nothing: {status}");
    // 255 bytes is still an id.
    let longest = format!("/api/service/users/{}", "x".repeat(255));
    assert_eq!(service_put(&server, &longest, json!({"display_name": "Long"})).await.0, 201);
    server.stop().await;
}

/// The service keeps what it likes in a user's `metadata`; other users never see it (in the
/// directory, `GET /api/me`, or a conversation), though they see the external id and avatar.
async fn a_users_metadata_is_shown_to_the_service_only(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let secret = json!({"insurance": "AXA-0042", "notes": "allergic to penicillin"});
    let (status, provisioned) = service_put(
        &server,
        "/api/service/users/42",
        json!({"display_name": "Ada", "avatar_url": "https://img.host.example/ada.png", "metadata": secret}),
    )
    .await;
    assert_eq!(status, 201, "{provisioned}");
    let ada = host_token(&provisioned);
    let bob = host_user(&server, "43", "Bob").await;
    let conversation = service_direct(&server, "42", "43").await;

    let (status, seen) = service_get(&server, "/api/service/users/42").await;
    assert_eq!((status, &seen["metadata"]), (200, &secret), "{seen}");

    let (status, me) = server.get(Some(&ada), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me.get("metadata"), None, "{me}");
    let (status, user) = server.get(Some(&bob), &format!("/api/users/{}", ada.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user.get("metadata"), None, "{user}");
    assert_eq!((&user["external_id"], &user["avatar_url"]), (&json!("42"), &json!("https://img.host.example/ada.png")));
    let (status, users) = server.get(Some(&bob), "/api/users?q=Ada").await;
    assert_eq!(status, 200, "{users}");
    let found = users["users"].as_array().expect("users");
    assert!(found.iter().any(|u| u["id"] == ada.id.as_str()), "Bob finds Ada: {users}");
    assert!(found.iter().all(|u| u.get("metadata").is_none()), "{users}");
    let (status, shared) = server.get(Some(&bob), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{shared}");
    assert_eq!(member(&shared, &ada.id).get("metadata"), None, "{shared}");
    assert_eq!(member(&shared, &ada.id)["avatar_url"], "https://img.host.example/ada.png");
    assert!(!shared.to_string().contains("penicillin"), "metadata leaked into a conversation: {shared}");
    server.stop().await;
}
