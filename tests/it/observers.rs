//! Observers (docs/PROTOCOL.md §2.5): the service adds a reader to a conversation, a direct one
//! included. The observer reads it and its history, is listed apart from the members, receives
//! its events, but cannot post, type or upload; its read marker is its own business (told to its
//! sessions, never to the members); and the members are told who can now read.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    the_service_adds_an_observer_who_reads_but_is_not_a_member,
    an_observer_cannot_post_type_or_upload,
    an_observers_reading_is_told_to_itself_only,
);

/// Ada and Bob's direct conversation, with something said, and Olga (the host's user "90")
/// added to it as an observer; the conversation's id and the users.
async fn observed(server: &TestServer) -> (String, TestUser, TestUser, TestUser) {
    let ada = host_user(server, "42", "Ada").await;
    let bob = host_user(server, "43", "Bob").await;
    let olga = host_user(server, "90", "Olga").await;
    let conversation = service_direct(server, "42", "43").await;
    let (status, _) = server.post(Some(&ada), &messages_path(&conversation), json!({"body": "hello"})).await;
    assert_eq!(status, 201);
    let path = format!("/api/service/conversations/{conversation}/members");
    let (status, added) = service_post(server, &path, json!({"user": "90", "role": "observer"})).await;
    assert_eq!(status, 201, "{added}");
    (conversation, ada, bob, olga)
}

fn observer_ids(conversation: &Value) -> Vec<&str> {
    conversation["observers"]
        .as_array()
        .unwrap_or_else(|| panic!("observers is an array: {conversation}"))
        .iter()
        .map(|o| o["user_id"].as_str().expect("user_id"))
        .collect()
}

async fn the_service_adds_an_observer_who_reads_but_is_not_a_member(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let olga = host_user(&server, "90", "Olga").await;
    provision(&server, "91", "Max").await;
    let conversation = service_direct(&server, "42", "43").await;
    let mut a = server.ws(&ada).await;
    let mut b = server.ws(&bob).await;
    a.ack("message:send", json!({"conversation_id": conversation, "body": "hello"})).await;

    // A direct conversation takes observers only.
    let path = format!("/api/service/conversations/{conversation}/members");
    assert_error(&service_post(&server, &path, json!({"user": "91", "role": "member"})).await, 400, "bad_request");
    assert_error(&service_post(&server, &path, json!({"user": "91", "role": "owner"})).await, 400, "bad_request");
    let (status, added) = service_post(&server, &path, json!({"user": "90", "role": "observer"})).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(member_ids(&added), sorted_ids(&[&ada, &bob]), "an observer is not a member");
    assert_eq!(observer_ids(&added), [olga.id.as_str()]);
    assert_eq!(added["observers"][0]["role"], "observer");
    assert_eq!(added["observers"][0]["display_name"], "Olga");

    // The members are told who can now read, by the system user, in their history.
    for ws in [&mut a, &mut b] {
        let told = ws.event_where("message:new", |d| d["message"]["seq"] == 2).await["message"].clone();
        assert_eq!((&told["kind"], &told["sender_id"]), (&json!("system"), &json!(SYSTEM_USER)), "{told}");
        assert_eq!(told["body"], "Olga can now read this conversation");
        assert_eq!(told["system"]["template"], "parley.observer_added");
        assert_eq!(told["system"]["params"], json!({"user": "Olga", "user_id": olga.id}));
    }

    // Olga reads the conversation, as the members do, and its whole history.
    let (status, seen) = server.get(Some(&olga), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(member_ids(&seen), sorted_ids(&[&ada, &bob]));
    assert_eq!(observer_ids(&seen), [olga.id.as_str()]);
    let history = server.history(&olga, &conversation).await;
    assert_eq!(history, server.history(&ada, &conversation).await);
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!((history[0]["body"].as_str(), template(&history[1])), (Some("hello"), Some("parley.observer_added")));
    let (status, seen_by_bob) = server.get(Some(&bob), &format!("/api/conversations/{conversation}")).await;
    assert_eq!((status, observer_ids(&seen_by_bob)), (200, vec![olga.id.as_str()]), "members see who observes");

    // Her socket gets what is said, and the others' typing.
    let mut o = server.ws(&olga).await;
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "second"})).await;
    assert_eq!(o.event("message:new").await["message"], sent["message"]);
    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    let typing = o.event("typing:updated").await;
    assert_eq!(typing, json!({"conversation_id": conversation, "user_id": ada.id, "typing": true}));
    server.stop().await;
}

async fn an_observer_cannot_post_type_or_upload(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let (conversation, _ada, bob, olga) = observed(&server).await;
    let mut o = server.ws(&olga).await;
    let mut b = server.ws(&bob).await;
    let before = server.history(&bob, &conversation).await;

    let reply = o.request("message:send", json!({"conversation_id": conversation, "body": "may I?"})).await;
    assert_eq!((&reply["type"], &reply["data"]["code"]), (&json!("error"), &json!("forbidden")), "{reply}");
    assert!(reply["data"]["message"].as_str().unwrap_or("").contains("observers cannot post"), "{reply}");
    let got = server.post(Some(&olga), &messages_path(&conversation), json!({"body": "may I?"})).await;
    let message = assert_error(&got, 403, "forbidden");
    assert!(message.contains("observers cannot post"), "{message}");
    let reply = o.request("typing:start", json!({"conversation_id": conversation})).await;
    assert_eq!((&reply["type"], &reply["data"]["code"]), (&json!("error"), &json!("forbidden")), "{reply}");
    assert!(reply["data"]["message"].as_str().unwrap_or("").contains("observers cannot type"), "{reply}");
    assert_error(&server.upload(&olga, &conversation, "scan.png", &png(4, 4)).await, 403, "forbidden");

    // Nothing of it reached Bob, nor the history.
    assert_eq!(before_ping(&mut b, "typing:updated").await, Vec::<Value>::new());
    assert_eq!(b.drain(|f| f["type"] == "message:new"), Vec::<Value>::new());
    assert_eq!(server.history(&bob, &conversation).await, before);
    // Nor can she add herself as a member, or anyone else, by the user API.
    let members = format!("/api/conversations/{conversation}/members");
    let (status, body) = server.post(Some(&olga), &members, json!({"user_id": olga.id})).await;
    assert!(status == 400 || status == 403, "a direct conversation's members are fixed: {status} {body}");
    server.stop().await;
}

/// Olga reads up to the latest message: her own sessions get `unread:updated` and the receipt;
/// Ada and Bob get no `read:updated` (her marker is nobody's business), and she never appears
/// among the members' markers.
async fn an_observers_reading_is_told_to_itself_only(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let (conversation, ada, bob, olga) = observed(&server).await;
    let mut a = server.ws(&ada).await;
    let mut b = server.ws(&bob).await;
    let mut o = server.ws(&olga).await;
    let mut o2 = server.ws(&olga).await;
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "third"})).await;
    let last = sent["message"]["seq"].as_i64().expect("seq");
    for ws in [&mut a, &mut b, &mut o, &mut o2] {
        ws.event_where("message:new", |d| d["message"]["seq"] == last).await;
    }
    let (status, seen) = server.get(Some(&olga), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{seen}");
    assert!(seen["unread_count"].as_i64().is_some_and(|n| n > 0), "Olga has unread messages: {seen}");

    let state = o.ack("read:mark", json!({"conversation_id": conversation})).await;
    assert_eq!((&state["last_read_seq"], &state["unread_count"]), (&json!(last), &json!(0)), "{state}");
    for ws in [&mut o, &mut o2] {
        let unread = ws
            .event_where("unread:updated", |d| d["conversation_id"] == conversation.as_str() && d["unread_count"] == 0)
            .await;
        assert_eq!(unread["total_unread"], 0, "{unread}");
        let receipt = ws.event("read:updated").await;
        assert_eq!(receipt, json!({"conversation_id": conversation, "user_id": olga.id, "last_read_seq": last}));
    }
    // The read went through the conversation before Olga's ack came back, so a receipt to Ada or
    // Bob would be queued ahead of the answer to a ping sent now.
    for (who, ws) in [("Ada", &mut a), ("Bob", &mut b)] {
        assert_eq!(before_ping(ws, "read:updated").await, Vec::<Value>::new(), "{who} was told of Olga's reading");
    }
    let (status, seen) = server.get(Some(&ada), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(member_ids(&seen), sorted_ids(&[&ada, &bob]), "Olga is in no member's receipts");
    let (status, mine) = server.get(Some(&olga), &format!("/api/conversations/{conversation}")).await;
    assert_eq!((status, &mine["unread_count"]), (200, &json!(0)), "{mine}");
    server.stop().await;
}
