//! System messages (docs/PROTOCOL.md §2.9, §7.4): the service posts its own, from a template of
//! its own in the language it chooses, as the system user; they are stored, broadcast and
//! idempotent by `client_id` like any message, and a malformed one is refused. Parley's own
//! (a member added, removed or leaving) carry their `parley.*` template too, rendered in
//! `PARLEY_LANGUAGE`.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    the_service_posts_a_system_message_in_french,
    a_system_message_must_be_well_formed,
    parleys_own_membership_messages_read_in_french,
    parleys_own_membership_messages_read_in_english_by_default,
);

/// The same host, with Parley's own messages in French.
fn french_host(config: &mut parley::config::Config) {
    host(config);
    config.host.language = parley::config::Language::Fr;
}

/// The fields of a system `Message`: a text message's and `system`.
const SYSTEM_MESSAGE_FIELDS: [&str; 9] =
    ["body", "client_id", "conversation_id", "created_at", "id", "kind", "sender_id", "seq", "system"];

async fn the_service_posts_a_system_message_in_french(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let conversation = service_direct(&server, "42", "43").await;
    let mut a = server.ws(&ada).await;
    let mut b = server.ws(&bob).await;

    let path = format!("/api/service/conversations/{conversation}/messages");
    let params = json!({"when": "demain 10 h", "room": 3});
    let body = json!({
        "template": "appointment.reminder",
        "params": params,
        "text": "Rappel : rendez-vous demain 10 h, salle 3",
        "lang": "fr",
        "client_id": "reminder-1",
    });
    let (status, message) = service_post(&server, &path, body.clone()).await;
    assert_eq!(status, 201, "{message}");
    let mut fields: Vec<&str> = message.as_object().expect("a Message").keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, SYSTEM_MESSAGE_FIELDS, "{message}");
    assert_eq!(message["kind"], "system");
    assert_eq!(message["body"], "Rappel : rendez-vous demain 10 h, salle 3", "the body is the text");
    assert_eq!(message["system"], json!({"template": "appointment.reminder", "params": params, "lang": "fr"}));
    assert_eq!(message["sender_id"], SYSTEM_USER, "the service writes as the system user");
    assert_eq!((&message["seq"], &message["client_id"]), (&json!(1), &json!("reminder-1")));
    assert_eq!(message["conversation_id"], conversation.as_str());
    timestamp(&message["created_at"]);

    // Both members get it, as it is stored; it is in the history.
    for ws in [&mut a, &mut b] {
        assert_eq!(ws.event("message:new").await["message"], message);
    }
    assert_eq!(server.history(&bob, &conversation).await, vec![message.clone()]);

    // The same client_id again: the message stored the first time, and nothing new is sent.
    let (status, again) = service_post(&server, &path, body).await;
    assert_eq!((status, &again), (201, &message));
    for ws in [&mut a, &mut b] {
        assert_eq!(before_ping(ws, "message:new").await, Vec::<Value>::new(), "no second message:new");
    }
    assert_eq!(service_history(&server, &conversation).await, vec![message.clone()]);

    // The system user is not a member, and is no one's contact.
    let (status, seen) = server.get(Some(&ada), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(member_ids(&seen), sorted_ids(&[&ada, &bob]));
    assert_eq!(seen["last_message"], message);
    // Without a lang the message is in English; without params, it has none.
    let (status, plain) = service_post(&server, &path, json!({"template": "visit.done", "text": "Visit done"})).await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!((&plain["system"]["template"], &plain["system"]["lang"]), (&json!("visit.done"), &json!("en")));
    assert_eq!((&plain["seq"], &plain["client_id"]), (&json!(2), &Value::Null));
    server.stop().await;
}

async fn a_system_message_must_be_well_formed(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    provision(&server, "43", "Bob").await;
    let conversation = service_direct(&server, "42", "43").await;
    let mut a = server.ws(&ada).await;
    let path = format!("/api/service/conversations/{conversation}/messages");

    let long = "t".repeat(129);
    let bad = [
        ("a template with a space", json!({"template": "appointment reminder", "text": "x"})),
        ("a template with a !", json!({"template": "reminder!", "text": "x"})),
        ("an empty template", json!({"template": "", "text": "x"})),
        ("a template of 129 bytes", json!({"template": long, "text": "x"})),
        ("one of Parley's own templates", json!({"template": "parley.member_added", "text": "x"})),
        ("params that are an array", json!({"template": "reminder", "params": ["x"], "text": "x"})),
        ("params that are a string", json!({"template": "reminder", "params": "x", "text": "x"})),
        ("a param that is an object", json!({"template": "reminder", "params": {"at": {"h": 10}}, "text": "x"})),
        ("no text", json!({"template": "reminder"})),
        ("a blank text", json!({"template": "reminder", "text": "   "})),
        ("no template", json!({"text": "x"})),
        ("a lang of one letter", json!({"template": "reminder", "text": "x", "lang": "f"})),
        ("a lang with a space", json!({"template": "reminder", "text": "x", "lang": "pt BR"})),
        ("an unknown field", json!({"template": "reminder", "text": "x", "sender_id": ada.id})),
    ];
    for (what, body) in bad {
        let got = service_post(&server, &path, body).await;
        assert_eq!((got.0, code(&got.1)), (400, "bad_request"), "{what}: {}", got.1);
    }
    // A conversation that does not exist, and an id that is not one.
    let good = json!({"template": "reminder", "text": "x"});
    let nowhere = format!("/api/service/conversations/{}/messages", uuid::Uuid::new_v4());
    assert_error(&service_post(&server, &nowhere, good.clone()).await, 404, "not_found");
    assert_error(&service_post(&server, "/api/service/conversations/nope/messages", good).await, 404, "not_found");

    // Nothing was posted.
    assert_eq!(service_history(&server, &conversation).await, Vec::<Value>::new());
    assert_eq!(before_ping(&mut a, "message:new").await, Vec::<Value>::new());
    // A region subtag is a language tag.
    let (status, message) =
        service_post(&server, &path, json!({"template": "reminder", "text": "Lembrete", "lang": "pt-BR"})).await;
    assert_eq!((status, &message["system"]["lang"]), (201, &json!("pt-BR")), "{message}");
    server.stop().await;
}

/// Parley writes its own system messages in `PARLEY_LANGUAGE`, each with its template: Ada, the
/// owner, adds Carol ("Ada a ajouté Carol", from Ada); the service adds Dave ("Dave a été
/// ajouté·e", from the system user).
async fn parleys_own_membership_messages_read_in_french(backend: Backend) {
    let server = TestServer::start_with(backend, french_host).await;
    let ada = host_user(&server, "42", "Ada").await;
    host_user(&server, "43", "Bob").await;
    let carol = host_user(&server, "44", "Carol").await;
    let dave = host_user(&server, "45", "Dave").await;
    let group = id_of(
        &service_conversation(&server, json!({"kind": "group", "title": "Soins", "members": ["42", "43"]})).await,
    );
    let mut a = server.ws(&ada).await;

    let (status, added) =
        server.post(Some(&ada), &format!("/api/conversations/{group}/members"), json!({"user_id": carol.id})).await;
    assert_eq!(status, 201, "{added}");
    let message = a.event_where("message:new", |d| d["message"]["seq"] == 1).await["message"].clone();
    assert_eq!((&message["kind"], &message["body"]), (&json!("system"), &json!("Ada a ajouté Carol")), "{message}");
    assert_eq!(message["sender_id"], ada.id.as_str(), "a member's change is written as theirs");
    let system = &message["system"];
    assert_eq!((&system["template"], &system["lang"]), (&json!("parley.member_added"), &json!("fr")), "{message}");
    assert_eq!(
        system["params"],
        json!({"by": "Ada", "by_id": ada.id, "user": "Carol", "user_id": carol.id}),
        "the names and ids, for a client that renders the template itself"
    );

    let path = format!("/api/service/conversations/{group}/members");
    let (status, added) = service_post(&server, &path, json!({"user": "45"})).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(member(&added, &dave.id)["role"], "member");
    let message = a.event_where("message:new", |d| d["message"]["seq"] == 2).await["message"].clone();
    assert_eq!(message["body"], "Dave a été ajouté·e", "{message}");
    assert_eq!(message["sender_id"], SYSTEM_USER, "the service's change is the system user's");
    assert_eq!(template(&message), Some("parley.member_added"));
    assert_eq!(
        (&message["system"]["params"]["user"], &message["system"]["params"]["user_id"]),
        (&json!("Dave"), &json!(dave.id))
    );
    assert_eq!(message["system"]["params"].get("by"), None, "{message}");

    // The history keeps them as they were sent.
    let history = server.history(&ada, &group).await;
    assert_eq!(templates(&history), ["parley.member_added", "parley.member_added"]);
    server.stop().await;
}

/// Without `PARLEY_LANGUAGE`, English: removing, leaving, and the service removing.
async fn parleys_own_membership_messages_read_in_english_by_default(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let carol = host_user(&server, "44", "Carol").await;
    let dave = host_user(&server, "45", "Dave").await;
    let body = json!({"kind": "group", "title": "Care", "members": ["42", "43", "44", "45"]});
    let group = id_of(&service_conversation(&server, body).await);
    let members = format!("/api/conversations/{group}/members");

    assert_eq!(server.delete(Some(&ada), &format!("{members}/{}", carol.id)).await.0, 204, "Ada removes Carol");
    assert_eq!(server.delete(Some(&dave), &format!("{members}/{}", dave.id)).await.0, 204, "Dave leaves");
    let (status, _) = service_delete(&server, &format!("/api/service/conversations/{group}/members/43")).await;
    assert_eq!(status, 204, "the service removes Bob");

    let history = server.history(&ada, &group).await;
    let said: Vec<(&str, &str, &str, &str)> = history
        .iter()
        .map(|m| {
            let text = move |pointer: &str| m.pointer(pointer).and_then(Value::as_str).unwrap_or("?");
            (text("/system/template"), text("/body"), text("/sender_id"), text("/system/lang"))
        })
        .collect();
    assert_eq!(
        said,
        [
            ("parley.member_removed", "Ada removed Carol", ada.id.as_str(), "en"),
            ("parley.member_left", "Dave left", dave.id.as_str(), "en"),
            ("parley.member_removed", "Bob was removed", SYSTEM_USER, "en"),
        ]
    );
    assert_eq!(history[1]["system"]["params"], json!({"user": "Dave", "user_id": dave.id}));
    assert_eq!(history[2]["system"]["params"]["user_id"], bob.id.as_str());
    server.stop().await;
}
