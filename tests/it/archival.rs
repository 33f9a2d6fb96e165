//! Archival and hiding (docs/PROTOCOL.md §2.4, §2.5): an archived conversation is read-only
//! (sends, typing, uploads, membership changes and system messages are 409 `archived`) while
//! history and read markers work; archiving and restoring post system messages in seq order
//! that `sync` replays, and tell the members. The service archives any conversation, a group's
//! owner his group, nobody else. The sweep archives conversations some days past their end, each
//! once, and leaves restored ones alone. Hiding takes a conversation out of one's own list until
//! its next message.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    an_archived_conversation_is_read_only,
    a_restored_conversation_takes_messages_again,
    a_group_owner_archives_and_restores_his_group,
    a_hidden_conversation_leaves_ones_list_until_its_next_message,
    the_sweep_archives_conversations_past_their_end,
    the_sweep_leaves_a_restored_conversation_alone,
);

/// `POST /api/service/conversations/{id}/{action}` (archive, restore).
async fn service_action(server: &Http, conversation: &str, action: &str) -> (u16, Value) {
    service_post(server, &format!("/api/service/conversations/{conversation}/{action}"), json!({})).await
}

/// The direct conversation of the host's users "42" and "43" about appointment `id`, which
/// ended `ended_days_ago` days ago (0: ends now).
async fn ended_appointment(server: &Http, id: &str, ended_days_ago: i64) -> String {
    let body = json!({
        "kind": "direct",
        "members": ["42", "43"],
        "context": {"type": "appointment", "id": id},
        "context_ends_at": days_from_now(-ended_days_ago),
    });
    id_of(&service_conversation(server, body).await)
}

/// The conversations `user` lists (`query`: the query string, with its `?`).
async fn listed(server: &Http, user: &TestUser, query: &str) -> Vec<Value> {
    let (status, page) = server.get(Some(user), &format!("/api/conversations{query}")).await;
    assert_eq!(status, 200, "{page}");
    page["conversations"].as_array().unwrap_or_else(|| panic!("conversations: {page}")).clone()
}

/// Checks that `message` is the system message of `template` saying `body`, from `sender`.
fn assert_system(message: &Value, template_name: &str, body: &str, sender: &str) {
    assert_eq!(message["kind"], "system", "{message}");
    assert_eq!(template(message), Some(template_name), "{message}");
    assert_eq!(message["body"], body, "{message}");
    assert_eq!(message["sender_id"], sender, "{message}");
}

async fn an_archived_conversation_is_read_only(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    provision(&server, "44", "Carol").await;
    let conversation = service_direct(&server, "42", "43").await;
    let mut a = server.ws(&ada).await;
    let mut b = server.ws(&bob).await;
    a.ack("message:send", json!({"conversation_id": conversation, "body": "see you tomorrow"})).await;

    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let (status, archived) = service_action(&server, &conversation, "archive").await;
    assert_eq!(status, 200, "{archived}");
    let archived_at = timestamp(&archived["archived_at"]);
    assert!(archived_at >= before && archived_at <= chrono::Utc::now(), "archived now: {archived}");

    // Both members are told: the system message, then the conversation as it now is.
    for ws in [&mut a, &mut b] {
        let told = ws.event_where("message:new", |d| d["message"]["seq"] == 2).await["message"].clone();
        assert_system(&told, "parley.archived", "This conversation was archived", SYSTEM_USER);
        assert_eq!(told["system"]["params"].get("by"), None, "{told}");
        let updated = ws
            .event_where("conversation:updated", |d| {
                d["conversation"]["id"] == conversation.as_str() && !d["conversation"]["archived_at"].is_null()
            })
            .await;
        assert_eq!(updated["conversation"]["archived_at"], archived["archived_at"]);
    }

    // Read-only: a send on either transport, typing, an upload, a new observer, the service's
    // own message.
    let message = json!({"conversation_id": conversation, "body": "are you there?"});
    let reply = a.request("message:send", message).await;
    assert_eq!((&reply["type"], &reply["data"]["code"]), (&json!("error"), &json!("archived")), "{reply}");
    let got = server.post(Some(&bob), &messages_path(&conversation), json!({"body": "are you there?"})).await;
    let said = assert_error(&got, 409, "archived");
    assert!(said.contains("archived"), "{said}");
    assert_eq!(b.error("typing:start", json!({"conversation_id": conversation})).await, "archived");
    assert_error(&server.upload(&ada, &conversation, "scan.png", &png(4, 4)).await, 409, "archived");
    let members = format!("/api/service/conversations/{conversation}/members");
    assert_error(&service_post(&server, &members, json!({"user": "44", "role": "observer"})).await, 409, "archived");
    let messages = format!("/api/service/conversations/{conversation}/messages");
    assert_error(&service_post(&server, &messages, json!({"template": "r", "text": "x"})).await, 409, "archived");

    // What was said can still be read, and read markers still move.
    let history = server.history(&bob, &conversation).await;
    assert_eq!(history.len(), 2, "nothing was added: {history:?}");
    assert_eq!(history[0]["body"], "see you tomorrow");
    let state = b.ack("read:mark", json!({"conversation_id": conversation})).await;
    assert_eq!(state["last_read_seq"], 2, "{state}");

    // Archiving it again is a conflict; an unknown conversation is not found.
    assert_error(&service_action(&server, &conversation, "archive").await, 409, "conflict");
    assert_error(&service_action(&server, &uuid::Uuid::new_v4().to_string(), "archive").await, 404, "not_found");
    assert_eq!(server.history(&bob, &conversation).await.len(), 2, "a refused archive posts nothing");
    server.stop().await;
}

async fn a_restored_conversation_takes_messages_again(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let conversation = service_direct(&server, "42", "43").await;
    let mut a = server.ws(&ada).await;
    a.ack("message:send", json!({"conversation_id": conversation, "body": "one"})).await;

    // An open conversation cannot be restored.
    assert_error(&service_action(&server, &conversation, "restore").await, 409, "conflict");
    assert_eq!(service_action(&server, &conversation, "archive").await.0, 200);
    let (status, restored) = service_action(&server, &conversation, "restore").await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["archived_at"], Value::Null, "archived_at is there, and null: {restored}");
    let told = a.event_where("message:new", |d| d["message"]["seq"] == 3).await["message"].clone();
    assert_system(&told, "parley.restored", "This conversation was restored", SYSTEM_USER);
    // (Ada's socket opened after the conversation was made: the archive's and the restore's are
    // the only conversation:updated it gets.)
    a.event_where("conversation:updated", |d| {
        d["conversation"]["id"] == conversation.as_str() && d["conversation"]["archived_at"].is_null()
    })
    .await;

    // Sends work again.
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "two"})).await;
    assert_eq!(sent["message"]["seq"], 4, "{sent}");

    // Bob, away all along, syncs from the first message: the archive and the restore, in order.
    let mut b = server.ws(&bob).await;
    let synced = b.ack("sync", json!({"conversations": [{"conversation_id": conversation, "after_seq": 1}]})).await;
    let messages = synced["conversations"][0]["messages"].as_array().expect("messages").clone();
    assert_eq!(seqs(&json!({"messages": messages})), [2, 3, 4]);
    assert_eq!(templates(&messages), ["parley.archived", "parley.restored"]);
    assert_eq!((template(&messages[2]), &messages[2]["body"]), (None, &json!("two")));
    server.stop().await;
}

async fn a_group_owner_archives_and_restores_his_group(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let carol = host_user(&server, "44", "Carol").await;
    let body = json!({"kind": "group", "title": "Care team", "members": ["42", "43"]});
    let group = id_of(&service_conversation(&server, body).await);
    let direct = service_direct(&server, "42", "43").await;
    let path = |id: &str, action: &str| format!("/api/conversations/{id}/{action}");

    // Bob is a member, not the owner; Carol is not even a member.
    assert_error(&server.post(Some(&bob), &path(&group, "archive"), json!({})).await, 403, "forbidden");
    assert_error(&server.post(Some(&carol), &path(&group, "archive"), json!({})).await, 404, "not_found");
    let (status, archived) = server.post(Some(&ada), &path(&group, "archive"), json!({})).await;
    assert_eq!(status, 200, "{archived}");
    timestamp(&archived["archived_at"]);
    let history = server.history(&bob, &group).await;
    let told = history.last().expect("the archive's message");
    assert_system(told, "parley.archived", "Ada archived this conversation", &ada.id);
    assert_eq!(told["system"]["params"], json!({"by": "Ada", "by_id": ada.id}));

    assert_error(&server.post(Some(&bob), &path(&group, "restore"), json!({})).await, 403, "forbidden");
    let (status, restored) = server.post(Some(&ada), &path(&group, "restore"), json!({})).await;
    assert_eq!((status, &restored["archived_at"]), (200, &Value::Null), "{restored}");
    let history = server.history(&bob, &group).await;
    assert_system(history.last().expect("a message"), "parley.restored", "Ada restored this conversation", &ada.id);

    // A direct conversation is the service's to archive.
    for user in [&ada, &bob] {
        let message =
            assert_error(&server.post(Some(user), &path(&direct, "archive"), json!({})).await, 403, "forbidden");
        assert!(message.contains("only the service"), "{message}");
    }
    server.stop().await;
}

async fn a_hidden_conversation_leaves_ones_list_until_its_next_message(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    provision(&server, "44", "Carol").await;
    let with_bob = service_direct(&server, "42", "43").await;
    let with_carol = service_direct(&server, "42", "44").await;
    let mut a = server.ws(&ada).await;
    let mut b = server.ws(&bob).await;
    a.ack("message:send", json!({"conversation_id": with_bob, "body": "hi Bob"})).await;
    let has = |page: &[Value], id: &str| page.iter().any(|c| c["id"] == id);

    // Ada hides her conversation with Bob: 200, hidden; her own sessions are told, Bob's are not.
    let hide = format!("/api/conversations/{with_bob}/hide");
    let (status, hidden) = server.post(Some(&ada), &hide, json!({})).await;
    assert_eq!((status, &hidden["hidden"]), (200, &json!(true)), "{hidden}");
    let updated = a.event_where("conversation:updated", |d| d["conversation"]["id"] == with_bob.as_str()).await;
    assert_eq!(updated["conversation"]["hidden"], true, "{updated}");
    let told: Vec<Value> = before_ping(&mut b, "conversation:updated").await;
    assert_eq!(told, Vec::<Value>::new(), "hiding is Ada's own business");

    // It is gone from her list, not from the one that includes hidden ones, nor from Bob's.
    let mine = listed(&server, &ada, "").await;
    assert!(!has(&mine, &with_bob) && has(&mine, &with_carol), "{mine:?}");
    let everything = listed(&server, &ada, "?include_hidden=true").await;
    let entry = everything.iter().find(|c| c["id"] == with_bob.as_str()).expect("listed with the hidden ones");
    assert_eq!(entry["hidden"], true, "{entry}");
    let (status, seen) = server.get(Some(&ada), &format!("/api/conversations/{with_bob}")).await;
    assert_eq!((status, &seen["hidden"]), (200, &json!(true)), "still hers to open: {seen}");
    let his = listed(&server, &bob, "").await;
    let entry = his.iter().find(|c| c["id"] == with_bob.as_str()).expect("Bob still lists it");
    assert_eq!(entry.get("hidden"), None, "{entry}");

    // Bob writes: it is back in her list.
    let (status, _) = server.post(Some(&bob), &messages_path(&with_bob), json!({"body": "still there?"})).await;
    assert_eq!(status, 201);
    let mine = listed(&server, &ada, "").await;
    let entry = mine.iter().find(|c| c["id"] == with_bob.as_str()).expect("back in Ada's list");
    assert_eq!(entry.get("hidden"), None, "{entry}");

    // Hidden again, then unhidden at once.
    assert_eq!(server.post(Some(&ada), &hide, json!({})).await.0, 200);
    assert!(!has(&listed(&server, &ada, "").await, &with_bob));
    let (status, shown) = server.post(Some(&ada), &format!("/api/conversations/{with_bob}/unhide"), json!({})).await;
    assert_eq!((status, shown.get("hidden")), (200, None), "{shown}");
    assert!(has(&listed(&server, &ada, "").await, &with_bob));

    // An archived conversation may be hidden too.
    assert_eq!(service_action(&server, &with_carol, "archive").await.0, 200);
    let (status, hidden) = server.post(Some(&ada), &format!("/api/conversations/{with_carol}/hide"), json!({})).await;
    assert_eq!((status, &hidden["hidden"]), (200, &json!(true)), "{hidden}");
    assert!(!has(&listed(&server, &ada, "").await, &with_carol));
    server.stop().await;
}

/// With `archive_after_days = 1`: a conversation whose appointment ended two days ago (set at
/// creation, or later by PATCH) is archived by the sweep, once, by the system user; one that
/// ends just now is not due.
async fn the_sweep_archives_conversations_past_their_end(backend: Backend) {
    let server = TestServer::start_with(backend, sweeping_host).await;
    let ada = host_user(&server, "42", "Ada").await;
    provision(&server, "43", "Bob").await;
    let mut a = server.ws(&ada).await;
    let recent = ended_appointment(&server, "A-0", 0).await;
    let ended = ended_appointment(&server, "A-1", 2).await;
    let patched = id_of(
        &service_conversation(
            &server,
            json!({"kind": "direct", "members": ["42", "43"], "context": {"type": "appointment", "id": "A-2"}}),
        )
        .await,
    );
    let path = format!("/api/service/conversations/{patched}");
    let (status, body) = service_patch(&server, &path, json!({"context_ends_at": days_from_now(-2)})).await;
    assert_eq!(status, 200, "{body}");

    for conversation in [&ended, &patched] {
        let archived = archived_eventually(&server, conversation).await;
        timestamp(&archived["archived_at"]);
        let history = service_history(&server, conversation).await;
        assert_eq!(history.len(), 1, "archived once, with one message: {history:?}");
        assert_system(&history[0], "parley.archived", "This conversation was archived", SYSTEM_USER);
        let told = a.event_where("message:new", |d| d["message"]["conversation_id"] == conversation.as_str()).await;
        assert_eq!(told["message"], history[0], "Ada was told");
    }
    let (status, open) = service_get(&server, &format!("/api/service/conversations/{recent}")).await;
    assert_eq!(
        (status, &open["archived_at"], &open["last_seq"]),
        (200, &Value::Null, &json!(0)),
        "not due yet: {open}"
    );
    server.stop().await;
}

/// The service restores a conversation the sweep archived: the sweeps after it (two of them,
/// known to have run because each archived a conversation created after the restore) leave it
/// open, since its end has not moved past the restore.
async fn the_sweep_leaves_a_restored_conversation_alone(backend: Backend) {
    let server = TestServer::start_with(backend, sweeping_host).await;
    provision(&server, "42", "Ada").await;
    provision(&server, "43", "Bob").await;
    let restored = ended_appointment(&server, "A-1", 2).await;
    archived_eventually(&server, &restored).await;
    let (status, body) = service_action(&server, &restored, "restore").await;
    assert_eq!((status, &body["archived_at"]), (200, &Value::Null), "{body}");

    for id in ["A-2", "A-3"] {
        let later = ended_appointment(&server, id, 2).await;
        archived_eventually(&server, &later).await;
    }
    let (status, still) = service_get(&server, &format!("/api/service/conversations/{restored}")).await;
    assert_eq!((status, &still["archived_at"]), (200, &Value::Null), "the sweep left it open: {still}");
    let history = service_history(&server, &restored).await;
    assert_eq!(templates(&history), ["parley.archived", "parley.restored"], "archived once: {history:?}");
    server.stop().await;
}
