//! The host's own live events (docs/PROTOCOL.md §7.4): the service pushes a `custom` event to a
//! conversation (every session of its members and observers gets it, in order with its
//! messages, and nothing is stored) or to one user (only that user's sessions); an event too
//! large, badly named or for nobody is refused and reaches no one.

use serde_json::{Value, json};

use crate::common::*;

backends!(
    a_conversation_event_reaches_every_session_of_its_people,
    a_user_event_reaches_only_that_user,
    bad_events_are_refused_and_reach_no_one,
);

fn events_path(conversation: &str) -> String {
    format!("/api/service/conversations/{conversation}/events")
}

/// Ada (two devices) and Bob talk, Olga observes, Carol is elsewhere. The service tells their
/// conversation the visit has started: each of those five sessions but Carol's gets it.
async fn a_conversation_event_reaches_every_session_of_its_people(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    let olga = host_user(&server, "90", "Olga").await;
    let carol = host_user(&server, "44", "Carol").await;
    let conversation = service_direct(&server, "42", "43").await;
    let members = format!("/api/service/conversations/{conversation}/members");
    assert_eq!(service_post(&server, &members, json!({"user": "90", "role": "observer"})).await.0, 201);
    service_direct(&server, "44", "42").await;
    let mut a1 = server.ws(&ada).await;
    let mut a2 = server.ws(&ada).await;
    let mut b = server.ws(&bob).await;
    let mut o = server.ws(&olga).await;
    let mut c = server.ws(&carol).await;

    let payload = json!({"room": "3B", "video": true, "started_at": 1_764_000_000});
    let (status, answer) =
        service_post(&server, &events_path(&conversation), json!({"name": "visit.started", "payload": payload})).await;
    assert_eq!((status, &answer), (204, &Value::Null));
    let expected = json!({"name": "visit.started", "payload": payload, "conversation_id": conversation});
    for (who, ws) in [("Ada", &mut a1), ("Ada's other device", &mut a2), ("Bob", &mut b), ("Olga", &mut o)] {
        assert_eq!(ws.event("custom").await, expected, "{who}");
    }
    assert_eq!(before_ping(&mut c, "custom").await, Vec::<Value>::new(), "Carol is not in that conversation");

    // It is not stored: the history has only the observer's announcement, and sync replays no more.
    let history = service_history(&server, &conversation).await;
    assert_eq!(templates(&history), ["parley.observer_added"], "{history:?}");
    let synced = a1.ack("sync", json!({"conversations": [{"conversation_id": conversation, "after_seq": 0}]})).await;
    assert_eq!(synced["conversations"][0]["messages"].as_array().map(Vec::len), Some(1), "{synced}");

    // It goes through the conversation, in order with its messages: a message, an event, a
    // message arrive so at every session.
    let messages = format!("/api/service/conversations/{conversation}/messages");
    let (status, _) =
        service_post(&server, &messages, json!({"template": "visit.note", "text": "Dr Who joined"})).await;
    assert_eq!(status, 201);
    let (status, _) =
        service_post(&server, &events_path(&conversation), json!({"name": "visit.ended", "payload": {"minutes": 25}}))
            .await;
    assert_eq!(status, 204);
    let (status, _) = service_post(&server, &messages, json!({"template": "visit.note", "text": "Visit over"})).await;
    assert_eq!(status, 201);
    for (who, ws) in [("Ada", &mut a1), ("Bob", &mut b), ("Olga", &mut o)] {
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let frame = ws.next().await;
            match frame["type"].as_str() {
                Some("message:new") if frame["data"]["message"]["conversation_id"] == conversation.as_str() => {
                    seen.push(frame["data"]["message"]["body"].as_str().unwrap_or("?").to_string())
                }
                Some("custom") => seen.push(format!("custom {}", frame["data"]["name"].as_str().unwrap_or("?"))),
                _ => {}
            }
        }
        assert_eq!(seen, ["Dr Who joined", "custom visit.ended", "Visit over"], "{who}");
    }
    server.stop().await;
}

/// The service tells Ada's sessions, and hers only, to refresh her profile.
async fn a_user_event_reaches_only_that_user(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    let bob = host_user(&server, "43", "Bob").await;
    service_direct(&server, "42", "43").await;
    let mut a1 = server.ws(&ada).await;
    let mut a2 = server.ws(&ada).await;
    let mut b = server.ws(&bob).await;

    let body = json!({"name": "profile.refresh", "payload": [1, 2, 3]});
    let (status, answer) = service_post(&server, "/api/service/users/42/events", body).await;
    assert_eq!((status, &answer), (204, &Value::Null));
    for ws in [&mut a1, &mut a2] {
        let event = ws.event("custom").await;
        assert_eq!(event, json!({"name": "profile.refresh", "payload": [1, 2, 3]}), "no conversation_id");
    }
    assert_eq!(before_ping(&mut b, "custom").await, Vec::<Value>::new(), "Bob shares a conversation, not the event");

    // Nobody is behind an unknown external id.
    let (status, body) =
        service_post(&server, "/api/service/users/nobody/events", json!({"name": "x", "payload": 1})).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    server.stop().await;
}

async fn bad_events_are_refused_and_reach_no_one(backend: Backend) {
    let server = TestServer::start_with(backend, host).await;
    let ada = host_user(&server, "42", "Ada").await;
    provision(&server, "43", "Bob").await;
    let conversation = service_direct(&server, "42", "43").await;
    let mut a = server.ws(&ada).await;

    // A payload over 16 KiB (the request itself is well under the body limit).
    let big = json!({"name": "big", "payload": "x".repeat(17 * 1024)});
    for path in [events_path(&conversation), "/api/service/users/42/events".into()] {
        let got = service_post(&server, &path, big.clone()).await;
        let expected = match got.0 {
            400 => "bad_request",
            413 => "payload_too_large",
            _ => panic!("{path}: a payload over 16 KiB is 400 or 413, got {} {}", got.0, got.1),
        };
        assert_error(&got, got.0, expected);
    }
    // A name that is not one, and no name.
    for body in [
        json!({"name": "visit started", "payload": {}}),
        json!({"name": "", "payload": {}}),
        json!({"name": "n".repeat(129), "payload": {}}),
        json!({"payload": {}}),
        json!({"name": "visit.started", "payload": {}, "to": "everyone"}),
    ] {
        assert_error(&service_post(&server, &events_path(&conversation), body).await, 400, "bad_request");
    }
    // A conversation that does not exist.
    let nowhere = events_path(&uuid::Uuid::new_v4().to_string());
    assert_error(&service_post(&server, &nowhere, json!({"name": "x", "payload": 1})).await, 404, "not_found");

    assert_eq!(before_ping(&mut a, "custom").await, Vec::<Value>::new(), "none of them reached Ada");
    // Just under the limit is fine.
    let fits = json!({"name": "fits", "payload": "x".repeat(15 * 1024)});
    assert_eq!(service_post(&server, &events_path(&conversation), fits).await.0, 204);
    assert_eq!(a.event("custom").await["name"], "fits");
    server.stop().await;
}
