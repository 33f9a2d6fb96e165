//! Who may do what: every conversation endpoint and command refuses an outsider and a removed
//! member exactly as if the conversation did not exist, and the admin endpoints are for the
//! admin role only.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    outsiders_removed_members_and_non_admins_are_refused_everywhere,
    admin_role_opens_the_admin_endpoints,
    admin_endpoints_need_the_admin_role,
);

/// One REST call of the table: method, path, body.
type Call = (&'static str, String, Option<Value>);

/// Every conversation endpoint of PROTOCOL.md §2, on conversation `c`, as `caller` would try
/// them: read it, its history, send, read and unread markers, add oneself or `other`, leave,
/// remove `member`.
fn conversation_calls(c: &str, caller: &TestUser, other: &TestUser, member: &TestUser) -> Vec<Call> {
    let base = format!("/api/conversations/{c}");
    vec![
        ("GET", base.clone(), None),
        ("GET", format!("{base}/messages"), None),
        ("GET", format!("{base}/messages?after_seq=0&limit=10"), None),
        ("POST", format!("{base}/messages"), Some(json!({"body": "let me in"}))),
        ("POST", format!("{base}/messages"), Some(json!({"body": "let me in", "client_id": "intruder-1"}))),
        ("POST", format!("{base}/read"), Some(json!({}))),
        ("POST", format!("{base}/read"), Some(json!({"seq": 1}))),
        ("POST", format!("{base}/unread"), Some(json!({"seq": 1}))),
        ("POST", format!("{base}/members"), Some(json!({"user_id": caller.id}))),
        ("POST", format!("{base}/members"), Some(json!({"user_id": other.id}))),
        ("DELETE", format!("{base}/members/{}", caller.id), None),
        ("DELETE", format!("{base}/members/{}", member.id), None),
    ]
}

async fn call(server: &TestServer, user: Option<&TestUser>, (method, path, body): &Call) -> (u16, Value) {
    match *method {
        "GET" => server.get(user, path).await,
        "POST" => server.post(user, path, body.clone().unwrap_or(Value::Null)).await,
        "DELETE" => server.delete(user, path).await,
        other => unreachable!("{other}"),
    }
}

/// Carol was a member of Alice's group and was removed; Eve never was a member of anything of
/// Alice's. Every conversation endpoint answers them 404 `not_found`, exactly as for a
/// conversation that does not exist, and every WebSocket command that names the conversation
/// answers `not_found` (Carol's session was open, and joined, before she was removed); `sync`
/// leaves it out; nothing they tried shows up for the members. The admin endpoints answer 403 to
/// a non-admin and 401 without a token; every call of the table answers 401 without a token.
async fn outsiders_removed_members_and_non_admins_are_refused_everywhere(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let eve = server.user("eve").await;
    let group = server.group(&alice, "inner circle", &[&bob, &carol]).await;
    let direct = server.direct(&alice, &bob).await;
    // Carol and Eve share a conversation of their own, which `sync` must keep answering.
    let theirs = server.direct(&carol, &eve).await;
    let (status, _) =
        server.post(Some(&eve), &format!("/api/conversations/{theirs}/messages"), json!({"body": "hey"})).await;
    assert_eq!(status, 201);

    // Carol is connected and in the group's view when she is removed.
    let mut c = server.ws(&carol).await;
    c.ack("conversation:join", json!({"conversation_id": group})).await;
    let sent = c.ack("message:send", json!({"conversation_id": group, "body": "glad to be here"})).await;
    assert_eq!(sent["message"]["seq"], 1);
    c.ack("typing:start", json!({"conversation_id": group})).await;
    let (status, body) = server.delete(Some(&alice), &format!("/api/conversations/{group}/members/{}", carol.id)).await;
    assert_eq!(status, 204, "{body}");
    let removed = c.event_where("conversation:updated", |d| d["conversation"]["id"] == group.as_str()).await;
    assert!(
        !removed["conversation"]["members"].as_array().expect("members").iter().any(|m| m["user_id"] == carol.id),
        "{removed}"
    );
    let (status, _) =
        server.post(Some(&alice), &format!("/api/conversations/{direct}/messages"), json!({"body": "psst"})).await;
    assert_eq!(status, 201);

    let (_, group_before) = server.get(Some(&alice), &format!("/api/conversations/{group}")).await;
    let (_, direct_before) = server.get(Some(&bob), &format!("/api/conversations/{direct}")).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut e = server.ws(&eve).await;

    // REST: (who, their session, the conversations they must not reach).
    let missing = uuid::Uuid::new_v4().to_string();
    let cases: [(&TestUser, &str, Vec<&String>); 2] =
        [(&carol, "the removed member", vec![&group]), (&eve, "the outsider", vec![&group, &direct])];
    for (who, role, conversations) in &cases {
        let other = if who.id == carol.id { &eve } else { &carol };
        for conversation in conversations {
            let calls = conversation_calls(conversation, who, other, &bob);
            let nowhere = conversation_calls(&missing, who, other, &bob);
            for (attempt, absent) in calls.iter().zip(&nowhere) {
                let (status, body) = call(&server, Some(who), attempt).await;
                assert_eq!(
                    (status, code(&body)),
                    (404, "not_found"),
                    "{role}: {} {} {:?}: {body}",
                    attempt.0,
                    attempt.1,
                    attempt.2
                );
                let (_, body_for_missing) = call(&server, Some(who), absent).await;
                assert_eq!(
                    body, body_for_missing,
                    "{role}: {} {} answers differently from a conversation that does not exist",
                    attempt.0, attempt.1
                );
                let (status, body) = call(&server, None, attempt).await;
                assert_eq!(
                    (status, code(&body)),
                    (401, "unauthorized"),
                    "no token: {} {}: {body}",
                    attempt.0,
                    attempt.1
                );
            }
        }
        // Nor does the conversation list show it.
        let (status, list) = server.get(Some(who), "/api/conversations").await;
        assert_eq!(status, 200, "{list}");
        let ids: Vec<&str> =
            list["conversations"].as_array().expect("conversations").iter().filter_map(|c| c["id"].as_str()).collect();
        assert_eq!(ids, vec![theirs.as_str()], "{role} lists only their own conversation");
    }

    // WebSocket: every command that names the conversation.
    for (who, ws) in [(&carol, &mut c), (&eve, &mut e)] {
        let role = if who.id == carol.id { "the removed member" } else { "the outsider" };
        let conversations: Vec<&String> = if who.id == carol.id { vec![&group] } else { vec![&group, &direct] };
        for conversation in conversations {
            let commands = [
                ("message:send", json!({"conversation_id": conversation, "body": "let me in"})),
                ("message:send", json!({"conversation_id": conversation, "body": "let me in", "client_id": "ws-1"})),
                ("conversation:join", json!({"conversation_id": conversation})),
                ("conversation:join", json!({"conversation_id": conversation, "limit": 5})),
                ("conversation:leave", json!({"conversation_id": conversation})),
                ("typing:start", json!({"conversation_id": conversation})),
                ("typing:stop", json!({"conversation_id": conversation})),
                ("read:mark", json!({"conversation_id": conversation})),
                ("read:mark", json!({"conversation_id": conversation, "seq": 1})),
            ];
            for (kind, data) in commands {
                let reply = ws.request(kind, data.clone()).await;
                assert_eq!(
                    (&reply["type"], &reply["data"]["code"]),
                    (&json!("error"), &json!("not_found")),
                    "{role}: {kind} {data}: {reply}"
                );
            }
            let synced = ws
                .ack(
                    "sync",
                    json!({"conversations": [
                        {"conversation_id": conversation, "after_seq": 0},
                        {"conversation_id": theirs, "after_seq": 0},
                    ]}),
                )
                .await;
            let answered: Vec<&Value> = synced["conversations"]
                .as_array()
                .expect("conversations")
                .iter()
                .map(|c| &c["conversation_id"])
                .collect();
            assert_eq!(answered, vec![&json!(theirs)], "{role}: sync leaves the conversation out: {synced}");
            assert_eq!(synced["conversations"][0]["messages"][0]["body"], "hey");
        }
    }

    // Nothing of theirs reached the members. Fences: an event from a member, after all the
    // attempts; whatever the attempts caused would have come before it.
    b.ack("typing:start", json!({"conversation_id": group})).await;
    a.event_where("typing:updated", |d| d["user_id"] == bob.id.as_str() && d["typing"] == true).await;
    a.ack("typing:start", json!({"conversation_id": direct})).await;
    b.event_where("typing:updated", |d| d["user_id"] == alice.id.as_str() && d["typing"] == true).await;
    for (member, ws) in [("alice", &mut a), ("bob", &mut b)] {
        let intruders = ws.drain(|f| {
            let data = &f["data"];
            [&carol.id, &eve.id].iter().any(|id| {
                data["user_id"] == id.as_str()
                    || data["message"]["sender_id"] == id.as_str()
                    || data["conversation"]["members"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["user_id"] == id.as_str()))
            })
        });
        assert!(intruders.is_empty(), "{member} saw the intruders: {intruders:?}");
    }
    let (_, group_after) = server.get(Some(&alice), &format!("/api/conversations/{group}")).await;
    let (_, direct_after) = server.get(Some(&bob), &format!("/api/conversations/{direct}")).await;
    for (before, after) in [(&group_before, &group_after), (&direct_before, &direct_after)] {
        assert_eq!(after["members"], before["members"], "the members (and their read markers) are unchanged");
        assert_eq!(after["last_seq"], before["last_seq"], "no message was added");
    }

    // The admin endpoints: 403 to a non-admin (Bob, a member of everything here), 401 without
    // a token; an admin gets through, so the refusals are about the role.
    let admin = admin();
    let one = format!("/api/admin/actors/conversations/{group}");
    let admin_calls: [Call; 3] = [
        ("GET", "/api/admin/actors".into(), None),
        ("GET", one.clone(), None),
        ("POST", format!("{one}/fault"), Some(json!({}))),
    ];
    for attempt in &admin_calls {
        let (status, body) = call(&server, Some(&bob), attempt).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "non-admin: {} {}: {body}", attempt.0, attempt.1);
        let (status, body) = call(&server, None, attempt).await;
        assert_eq!((status, code(&body)), (401, "unauthorized"), "no token: {} {}: {body}", attempt.0, attempt.1);
    }
    let (status, body) = call(&server, Some(&admin), &admin_calls[0]).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

async fn admin_role_opens_the_admin_endpoints(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin_token = bearer(&token_for(json!({"sub": fresh_sub(), "exp": now_secs() + 3600, "role": "admin"})));
    let (status, actors) = server.get(Some(&admin_token), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    assert!(actors["node_id"].is_string(), "{actors}");
    assert!(actors["sessions"]["count"].is_u64(), "{actors}");
    assert!(actors["conversations"].is_array(), "{actors}");

    for claims in [
        json!({"sub": fresh_sub(), "exp": now_secs() + 3600}),
        json!({"sub": fresh_sub(), "exp": now_secs() + 3600, "role": "user"}),
        json!({"sub": fresh_sub(), "exp": now_secs() + 3600, "role": "Admin"}),
        json!({"sub": fresh_sub(), "exp": now_secs() + 3600, "name": "admin"}),
    ] {
        let got = server.get(Some(&bearer(&token_for(claims.clone()))), "/api/admin/actors").await;
        assert_error(&got, 403, "forbidden");
    }
    let alice = server.user("alice").await;
    assert_eq!(claims_of(&alice.token).get("role"), None, "an ordinary account has no role");
    assert_error(&server.get(Some(&alice), "/api/admin/actors").await, 403, "forbidden");
    assert_error(&server.get(None, "/api/admin/actors").await, 401, "unauthorized");

    // The built-in account named in admin_users (made at start) gets an admin token.
    assert_eq!(server.config.admin_users, ["admin"]);
    let admin = server.sign_in("admin").await;
    assert_eq!(claims_of(&admin.token)["role"], "admin");
    let (status, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    let (status, body) = login(&server, "admin", "orchid-lantern-42").await;
    assert_eq!(status, 200, "{body}");
    let login_token = body["token"].as_str().expect("token");
    assert_eq!(claims_of(login_token)["role"], "admin");
    assert_eq!(server.get(Some(&bearer(login_token)), "/api/admin/actors").await.0, 200);
    server.stop().await;
}

async fn admin_endpoints_need_the_admin_role(backend: Backend) {
    let Pair { server, alice, bob: _, conversation } = Pair::start(backend).await;
    let mut a = server.ws(&alice).await;
    a.ack("message:send", json!({"conversation_id": conversation, "body": "hi"})).await;

    let one = format!("/api/admin/actors/conversations/{conversation}");
    for path in ["/api/admin/actors", one.as_str()] {
        let (status, body) = server.get(Some(&alice), path).await;
        assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")), "{path}: {body}");
        let (status, body) = server.get(None, path).await;
        assert_eq!((status, &body["error"]["code"]), (401, &json!("unauthorized")), "{path}: {body}");
    }
    let (status, body) = server.post(Some(&alice), &format!("{one}/fault"), json!({})).await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")), "{body}");

    // An admin token from the identity system, and a built-in admin account.
    let (status, _) = server.get(Some(&admin()), one.as_str()).await;
    assert_eq!(status, 200);
    let root = server.sign_in("admin").await;
    let (status, _) = server.get(Some(&root), "/api/admin/actors").await;
    assert_eq!(status, 200);
    server.stop().await;
}
