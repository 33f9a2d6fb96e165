//! Who a host's token names (docs/PROTOCOL.md §1.2): with `PARLEY_TOKEN_EXTERNAL_ID_CLAIM` set,
//! a token the host signs names its user by the host's own id (a string or a number), the user
//! the service provisioned or one created on first use (named by the name claim); its `role` is
//! the host's, not Parley's admin role; a token without the claim is refused. Parley's own
//! tokens carry `iss: "parley"` and keep working beside them. A display name the service changes
//! reaches the user's and their contacts' sockets as `user:updated`.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    a_host_token_names_the_user_by_the_hosts_own_id,
    an_unknown_host_id_is_a_user_created_on_first_use,
    a_token_without_the_claim_is_refused,
    parleys_own_tokens_keep_working_beside_the_hosts,
    a_rename_by_the_service_reaches_the_user_and_their_contacts,
);

/// The host of these tests: an embedded Parley whose host names its users by `userId` and
/// their display names by `displayName`.
fn host(config: &mut parley::config::Config) {
    crate::common::host(config);
    config.host.name_claim = "displayName".into();
}

/// A token the host signs with `claims`.
fn signed(claims: Value) -> TestUser {
    bearer(&token_for(claims))
}

async fn a_host_token_names_the_user_by_the_hosts_own_id(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = provision(&server, "42", "Ada").await;
    let bob = provision(&server, "43", "Bob").await;

    // `{userId: "42", email, role: "admin"}`: Ada, by the id the service gave her.
    let mut claims = host_claims(json!("42"));
    claims["role"] = json!("admin");
    let token = signed(claims);
    let (status, me) = server.get(Some(&token), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((&me["id"], &me["external_id"], &me["display_name"]), (&ada["id"], &json!("42"), &json!("Ada")));
    // The host's `admin` is the host's own role: Parley's admin endpoints stay closed.
    assert_error(&server.get(Some(&token), "/api/admin/actors").await, 403, "forbidden");

    // `{userId: 43}`, a number: Bob, as `"43"` would.
    let (status, me) = server.get(Some(&signed(host_claims(json!(43)))), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((&me["id"], &me["external_id"]), (&bob["id"], &json!("43")), "{me}");

    // A `sub` beside the claim is not read: the claim names the user.
    let mut claims = host_claims(json!("43"));
    claims["sub"] = ada["id"].clone();
    let (status, me) = server.get(Some(&signed(claims)), "/api/me").await;
    assert_eq!((status, &me["id"]), (200, &bob["id"]), "{me}");

    // The WebSocket takes the same token: its session is Ada's.
    let mut a = server.ws(&host_token(&ada)).await;
    assert_eq!(a.ack("ping", json!({})).await, json!({}));
    server.stop().await;
}

async fn an_unknown_host_id_is_a_user_created_on_first_use(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;

    // An id the service never provisioned: the user is made, named by the name claim (here
    // `displayName`; `name` is just another claim to this host).
    let mut claims = host_claims(json!("77"));
    claims["displayName"] = json!("Grace Hopper");
    claims["name"] = json!("not this one");
    let (grace, me) = user_of_token(&server, token_for(claims)).await;
    assert_eq!((&me["external_id"], &me["display_name"]), (&json!("77"), &json!("Grace Hopper")), "{me}");
    assert!(uuid::Uuid::parse_str(&grace.id).is_ok(), "{me}");
    assert_eq!(grace.username, grace.id, "a user made from a token has its id as username");
    // The service finds her by the host's id.
    let (status, seen) = service_get(&server, "/api/service/users/77").await;
    assert_eq!((status, &seen["id"]), (200, &json!(grace.id)), "{seen}");

    // A later token with another name names the same user, and does not rename her.
    let mut claims = host_claims(json!(77));
    claims["displayName"] = json!("Admiral Hopper");
    let (again, me) = user_of_token(&server, token_for(claims)).await;
    assert_eq!((&again.id, &me["display_name"]), (&grace.id, &json!("Grace Hopper")));

    // Without a name claim the display name is the external id.
    let (_, me) = user_of_token(&server, token_for(host_claims(json!("78")))).await;
    assert_eq!((&me["external_id"], &me["display_name"]), (&json!("78"), &json!("78")), "{me}");
    server.stop().await;
}

async fn a_token_without_the_claim_is_refused(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    provision(&server, "42", "Ada").await;

    // A v1 token (`sub` a UUID), with no `userId`: the claim is required, and the answer says so.
    let v1 = json!({"sub": fresh_sub(), "email": "ada@host.example", "iat": now_secs(), "exp": now_secs() + 3_600});
    let message = assert_error(&server.get(Some(&signed(v1.clone())), "/api/me").await, 401, "unauthorized");
    assert!(message.contains("no userId claim"), "{message}");
    assert_eq!(server.ws_with_token(&token_for(v1)).await.err(), Some(401), "the WebSocket upgrade");

    // A claim that is neither a string nor an integer, or an empty one, names nobody.
    for user_id in [json!(true), json!(null), json!(""), json!({"id": 42}), json!(4.5)] {
        let (status, body) = server.get(Some(&signed(host_claims(user_id.clone()))), "/api/me").await;
        assert_eq!(status, 401, "userId {user_id}: {body}");
    }
    // A good claim in a token that is otherwise bad is still refused (expired here).
    let mut expired = host_claims(json!("42"));
    expired["exp"] = json!(now_secs() - 10);
    assert_error(&server.get(Some(&signed(expired)), "/api/me").await, 401, "unauthorized");
    server.stop().await;
}

/// The host's tokens do not displace Parley's: an account registered on this server (when
/// registration is open) and the operator's admin account sign in, their tokens carry
/// `iss: "parley"`, name them by `sub`, and keep the admin role where Parley gave it.
async fn parleys_own_tokens_keep_working_beside_the_hosts(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        host(config);
        config.host.registration = Some(parley::config::Registration::Open);
    })
    .await;
    let alice = server.user("alice").await;
    let claims = claims_of(&alice.token);
    assert_eq!((&claims["iss"], &claims["sub"]), (&json!("parley"), &json!(alice.id)), "{claims}");
    assert_eq!(claims.get("userId"), None, "{claims}");
    let (status, me) = server.get(Some(&alice), "/api/me").await;
    assert_eq!((status, &me["id"], &me["username"]), (200, &json!(alice.id), &json!("alice")), "{me}");
    assert_eq!(me.get("external_id"), None, "a registered account has no external id: {me}");
    let mut a = server.ws(&alice).await;
    assert_eq!(a.ack("ping", json!({})).await, json!({}));

    // Login gives such a token too.
    let (status, body) = login(&server, "alice", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token");
    assert_eq!(claims_of(token)["iss"], "parley");
    assert_eq!(server.get(Some(&bearer(token)), "/api/me").await.1["id"], alice.id.as_str());

    // The operator's admin account keeps its role: the admin endpoints open to it.
    let root = server.sign_in("admin").await;
    assert_eq!((&claims_of(&root.token)["iss"], &claims_of(&root.token)["role"]), (&json!("parley"), &json!("admin")));
    let (status, actors) = server.get(Some(&root), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    server.stop().await;
}

/// The service renames Ada and gives her an avatar: her own sessions and those of Bob, who
/// shares a conversation with her, get `user:updated`; Carol, who shares nothing with her, does
/// not. What Bob reads afterwards shows the new name.
async fn a_rename_by_the_service_reaches_the_user_and_their_contacts(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let carol = host_user(&server, "44", "Carol").await;
    let conversation = service_direct(&server, "42", "43").await;
    let mut a = server.ws(&ada).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;

    let (status, renamed) = service_put(&server, "/api/service/users/42", json!({"display_name": "Ada L."})).await;
    assert_eq!(status, 200, "{renamed}");
    for (who, ws) in [("Ada", &mut a), ("Bob", &mut b)] {
        let updated = ws.event_where("user:updated", |d| d["user"]["id"] == ada.id.as_str()).await;
        assert_eq!(updated["user"]["display_name"], "Ada L.", "{who}: {updated}");
        assert_eq!(updated["user"]["external_id"], "42", "{who}: {updated}");
        assert_eq!(updated["user"].get("metadata"), None, "{who}: {updated}");
    }
    assert_eq!(before_ping(&mut c, "user:updated").await, Vec::<Value>::new(), "Carol shares nothing with Ada");

    let avatar = "https://img.host.example/ada-2.png";
    let (status, _) = service_put(&server, "/api/service/users/42", json!({"avatar_url": avatar})).await;
    assert_eq!(status, 200);
    for ws in [&mut a, &mut b] {
        let updated = ws.event_where("user:updated", |d| d["user"]["avatar_url"] == avatar).await;
        assert_eq!((&updated["user"]["id"], &updated["user"]["display_name"]), (&json!(ada.id), &json!("Ada L.")));
    }
    assert_eq!(before_ping(&mut c, "user:updated").await, Vec::<Value>::new());

    // What Bob reads now names her so.
    let (status, shared) = server.get(Some(&bob), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{shared}");
    assert_eq!(member(&shared, &ada.id)["display_name"], "Ada L.", "{shared}");
    assert_eq!(member(&shared, &ada.id)["avatar_url"], avatar, "{shared}");
    let (status, user) = server.get(Some(&bob), &format!("/api/users/{}", ada.id)).await;
    assert_eq!((status, &user["display_name"]), (200, &json!("Ada L.")), "{user}");
    server.stop().await;
}
