//! The WebSocket side of the protocol (PROTOCOL.md §3, §4) and the admin inspection (§5): bad
//! frames, replies and refs, the frame limit, join and leave, typing, several sessions per user,
//! presence, the heartbeat, slow consumers, and the conversation actors' inspection, supervision
//! and retirement.

mod common;

use std::time::{Duration, Instant};

use common::raw::{Ending, OP_CLOSE, OP_PING, OP_TEXT, StalledWs, close_code, parse_frames};
use common::*;
use serde_json::{Value, json};

backends!(
    bad_frames_get_an_error_and_the_connection_stays_open,
    a_command_with_a_ref_gets_exactly_one_reply,
    a_frame_over_the_size_limit_closes_with_1009,
    join_returns_the_conversation_its_latest_messages_and_typists,
    leave_acks_and_ends_the_leavers_typing,
    typing_reaches_the_other_members_only,
    typing_ends_by_itself_after_the_timeout,
    typing_ends_when_the_typist_sends,
    typing_ends_when_the_typists_last_session_closes,
    every_session_of_a_user_gets_the_events,
    a_contact_coming_online_is_announced_and_queryable,
    a_contact_going_offline_is_announced_after_the_grace_period,
    a_reload_within_the_grace_period_does_not_flap,
    a_silent_connection_is_closed_by_the_heartbeat,
    a_slow_consumer_is_cut_off_without_slowing_the_sender,
    admin_lists_the_live_actors,
    admin_endpoints_need_the_admin_role,
    a_faulted_conversation_actor_restarts_in_place,
    an_idle_conversation_actor_stops_and_a_fresh_one_takes_over,
);

// ---------------------------------------------------------------------------------------------
// Frames and replies

async fn bad_frames_get_an_error_and_the_connection_stays_open(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let mut a = server.ws(&alice).await;
    let nowhere = uuid::Uuid::new_v4().to_string();

    // Each bad frame: (what is sent, the ref the error must carry).
    let bad: Vec<(String, Value)> = vec![
        ("this is not JSON".into(), Value::Null),
        ("{\"type\": \"ping\", \"ref\": \"cut".into(), Value::Null),
        ("[1, 2, 3]".into(), Value::Null),
        ("\"ping\"".into(), Value::Null),
        ("42".into(), Value::Null),
        ("null".into(), Value::Null),
        (json!({"type": "message:delete", "ref": "u1", "data": {}}).to_string(), json!("u1")),
        (json!({"ref": "no-type", "data": {}}).to_string(), json!("no-type")),
        (json!({"type": "message:send", "ref": "m1", "data": {"body": "no conversation"}}).to_string(), json!("m1")),
        (
            json!({"type": "message:send", "ref": "m2", "data": {"conversation_id": nowhere, "body": 7}}).to_string(),
            json!("m2"),
        ),
        (json!({"type": "conversation:join", "ref": "j1", "data": {"conversation_id": 42}}).to_string(), json!("j1")),
        (
            json!({"type": "conversation:join", "ref": "j2", "data": {"conversation_id": "not-a-uuid"}}).to_string(),
            json!("j2"),
        ),
        (json!({"type": "typing:start", "ref": 9, "data": {}}).to_string(), json!(9)),
        (json!({"type": "presence:query", "ref": "q1", "data": {"user_ids": "everyone"}}).to_string(), json!("q1")),
        (json!({"type": "sync", "ref": "s1", "data": {"conversations": {}}}).to_string(), json!("s1")),
        (json!({"type": "ping", "ref": "p1", "data": {"unexpected": true}}).to_string(), json!("p1")),
    ];
    for (text, reference) in &bad {
        a.send_text(text).await;
        let reply = a.next().await;
        assert_eq!(reply["type"], "error", "{text} should get an error, got {reply}");
        assert_eq!(reply["data"]["code"], "bad_request", "{text}: {reply}");
        assert!(reply["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{text}: {reply}");
        match reference {
            Value::Null => assert!(reply.get("ref").is_none(), "{text}: no ref to echo, got {reply}"),
            reference => assert_eq!(&reply["ref"], reference, "{text}: the error carries the frame's ref"),
        }
    }

    // A binary frame.
    a.send_binary(&[0x00, 0x01, 0xff, 0x7b]).await;
    let reply = a.next().await;
    assert_eq!(reply["type"], "error", "a binary frame gets an error, got {reply}");
    assert_eq!(reply["data"]["code"], "bad_request");

    // After all that, the connection still works.
    assert_eq!(a.ack("ping", json!({})).await, json!({}));
    assert_eq!(a.closed, None);
    server.stop().await;
}

async fn a_command_with_a_ref_gets_exactly_one_reply(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let mut a = server.ws(&alice).await;
    let nowhere = uuid::Uuid::new_v4().to_string();

    // A good command, a failing one and a bad frame: one reply each, with the same ref.
    let frames = [
        (json!({"type": "ping", "ref": "good", "data": {}}), "good", "ack"),
        (
            json!({"type": "conversation:join", "ref": "missing", "data": {"conversation_id": nowhere}}),
            "missing",
            "error",
        ),
        (json!({"type": "nope", "ref": "unknown", "data": {}}), "unknown", "error"),
    ];
    for (fence, (frame, reference, kind)) in frames.iter().enumerate() {
        a.send_text(&frame.to_string()).await;
        let reply = a.reply_to(reference).await;
        assert_eq!(reply["type"], *kind, "{frame}: {reply}");
        // Fence: a ping sent after the reply arrived; nothing else may answer `reference` before it.
        let fence = format!("fence-{fence}");
        a.send_text(&json!({"type": "ping", "ref": fence, "data": {}}).to_string()).await;
        loop {
            let next = a.next().await;
            assert_ne!(next["ref"], *reference, "a second reply to {reference}: {next}");
            if next["ref"] == fence.as_str() {
                assert_eq!(next["type"], "ack");
                break;
            }
        }
    }

    // A numeric ref is echoed as a number, in an ack and in an error.
    a.send_text(&json!({"type": "ping", "ref": 42, "data": {}}).to_string()).await;
    let reply = a.next().await;
    assert_eq!(reply, json!({"type": "ack", "ref": 42, "data": {}}));
    a.send_text(&json!({"type": "conversation:join", "ref": 43, "data": {"conversation_id": nowhere}}).to_string())
        .await;
    let reply = a.next().await;
    assert_eq!(
        (&reply["type"], &reply["ref"], &reply["data"]["code"]),
        (&json!("error"), &json!(43), &json!("not_found"))
    );
    // A string that looks like a number stays a string.
    a.send_text(&json!({"type": "ping", "ref": "44", "data": {}}).to_string()).await;
    assert_eq!(a.next().await, json!({"type": "ack", "ref": "44", "data": {}}));

    // The server's choice where the protocol is silent: a command without a ref that succeeds
    // gets no reply (nothing to match it with), one that fails gets an error without a ref.
    a.send_text(&json!({"type": "ping", "data": {}}).to_string()).await;
    a.send_text(&json!({"type": "ping", "ref": "after-unreffed", "data": {}}).to_string()).await;
    assert_eq!(a.next().await, json!({"type": "ack", "ref": "after-unreffed", "data": {}}));
    a.send_text(&json!({"type": "conversation:join", "data": {"conversation_id": nowhere}}).to_string()).await;
    let reply = a.next().await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["data"]["code"], "not_found");
    assert!(reply.get("ref").is_none(), "{reply}");
    server.stop().await;
}

async fn a_frame_over_the_size_limit_closes_with_1009(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.max_frame_bytes = 1024).await;
    let alice = server.user("alice").await;
    let mut a = server.ws(&alice).await;

    // A frame just under the limit is fine.
    let long_ref = "u".repeat(950);
    let under = json!({"type": "ping", "ref": long_ref, "data": {}}).to_string();
    assert!(under.len() < 1024);
    a.send_text(&under).await;
    let reply = a.reply_to(&long_ref).await;
    assert_eq!(reply["type"], "ack", "{reply}");

    let over = json!({"type": "ping", "ref": "o".repeat(1970), "data": {}}).to_string();
    assert!(over.len() >= 2000);
    a.send_text(&over).await;
    assert_eq!(a.closed_with().await, 1009);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Join and leave

async fn join_returns_the_conversation_its_latest_messages_and_typists(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_per_sec = 1_000.0;
        config.limits.rate_burst = 1_000.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;

    // An empty conversation.
    let joined = a.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["conversation"]["id"], conversation.as_str());
    assert_eq!(joined["conversation"]["kind"], "direct");
    assert_eq!(joined["conversation"]["last_seq"], 0);
    assert_eq!(joined["messages"], json!([]));
    assert_eq!(joined["typing"], json!([]));

    // 55 messages: a join gives the latest 50 by default, in ascending seq.
    let mut refs = Vec::new();
    for n in 1..=55 {
        refs.push(a.command("message:send", json!({"conversation_id": conversation, "body": format!("m{n}")})).await);
    }
    for reference in refs {
        let reply = a.reply_to(&reference).await;
        assert_eq!(reply["type"], "ack", "{reply}");
    }
    let seqs = |joined: &Value| -> Vec<i64> {
        joined["messages"].as_array().expect("messages").iter().map(|m| m["seq"].as_i64().expect("seq")).collect()
    };
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["conversation"]["last_seq"], 55);
    assert_eq!(joined["conversation"]["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(seqs(&joined), (6..=55).collect::<Vec<_>>());
    assert_eq!(joined["messages"][49]["body"], "m55");
    assert_eq!(joined["messages"][49]["sender_id"], alice.id.as_str());

    // `limit` asks for fewer (or more, up to the page maximum).
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation, "limit": 3})).await;
    assert_eq!(seqs(&joined), vec![53, 54, 55]);
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation, "limit": 200})).await;
    assert_eq!(seqs(&joined), (1..=55).collect::<Vec<_>>());
    // Out of range (server's choice of answer): bad_request.
    assert_eq!(b.error("conversation:join", json!({"conversation_id": conversation, "limit": 0})).await, "bad_request");
    assert_eq!(
        b.error("conversation:join", json!({"conversation_id": conversation, "limit": 201})).await,
        "bad_request"
    );

    // Who is typing now.
    b.ack("typing:start", json!({"conversation_id": conversation})).await;
    let joined = a.ack("conversation:join", json!({"conversation_id": conversation, "limit": 1})).await;
    assert_eq!(joined["typing"], json!([bob.id]));
    assert_eq!(seqs(&joined), vec![55]);

    // A non-member and a conversation that does not exist: the same not_found.
    assert_eq!(c.error("conversation:join", json!({"conversation_id": conversation})).await, "not_found");
    let nowhere = uuid::Uuid::new_v4().to_string();
    assert_eq!(a.error("conversation:join", json!({"conversation_id": nowhere})).await, "not_found");
    server.stop().await;
}

async fn leave_acks_and_ends_the_leavers_typing(backend: Backend) {
    // Typing would only end by itself after a minute: here it must end because of the leave.
    let server = TestServer::start_with(backend, |config| config.limits.typing_timeout_ms = 60_000).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;

    b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(b.ack("typing:start", json!({"conversation_id": conversation})).await, json!({}));
    let typing = a.event("typing:updated").await;
    assert_eq!(typing, json!({"conversation_id": conversation, "user_id": bob.id, "typing": true}));

    assert_eq!(b.ack("conversation:leave", json!({"conversation_id": conversation})).await, json!({}));
    let stopped = a.event("typing:updated").await;
    assert_eq!(stopped, json!({"conversation_id": conversation, "user_id": bob.id, "typing": false}));
    let joined = a.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["typing"], json!([]));

    // Leaving the view is not leaving the conversation: Bob's sessions still get its messages.
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "still there?"})).await;
    assert_eq!(sent["message"]["seq"], 1);
    assert_eq!(b.event("message:new").await["message"]["id"], sent["message"]["id"]);

    // Leaving a conversation one is not a member of: not_found.
    assert_eq!(c.error("conversation:leave", json!({"conversation_id": conversation})).await, "not_found");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Typing

async fn typing_reaches_the_other_members_only(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.typing_timeout_ms = 60_000).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let (status, group) = server
        .post(
            Some(&alice),
            "/api/conversations",
            json!({"kind": "group", "title": "team", "member_ids": [bob.id, carol.id]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let conversation = group["id"].as_str().expect("id").to_string();
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;
    let mut d = server.ws(&dave).await;

    assert_eq!(a.ack("typing:start", json!({"conversation_id": conversation})).await, json!({}));
    // The actor broadcasts before it answers: had Alice's own session been sent a typing:updated,
    // it would have been queued before the ack she just read.
    assert_eq!(a.drain(|f| f["type"] == "typing:updated"), Vec::<Value>::new());
    let started = json!({"conversation_id": conversation, "user_id": alice.id, "typing": true});
    assert_eq!(b.event("typing:updated").await, started);
    assert_eq!(c.event("typing:updated").await, started);

    assert_eq!(a.ack("typing:stop", json!({"conversation_id": conversation})).await, json!({}));
    assert_eq!(a.drain(|f| f["type"] == "typing:updated"), Vec::<Value>::new());
    let stopped = json!({"conversation_id": conversation, "user_id": alice.id, "typing": false});
    assert_eq!(b.event("typing:updated").await, stopped);
    assert_eq!(c.event("typing:updated").await, stopped);

    // Someone else's conversation, and one that does not exist.
    assert_eq!(d.error("typing:start", json!({"conversation_id": conversation})).await, "not_found");
    assert_eq!(d.error("typing:stop", json!({"conversation_id": conversation})).await, "not_found");
    let nowhere = uuid::Uuid::new_v4().to_string();
    assert_eq!(a.error("typing:start", json!({"conversation_id": nowhere})).await, "not_found");
    // Dave's attempt showed nobody typing.
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["typing"], json!([]));
    server.stop().await;
}

async fn typing_ends_by_itself_after_the_timeout(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.typing_timeout_ms = 300).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;

    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    let started = b.event("typing:updated").await;
    assert_eq!(started, json!({"conversation_id": conversation, "user_id": alice.id, "typing": true}));
    // Alice sends nothing more: her typing ends by itself.
    let ended = b.event("typing:updated").await;
    assert_eq!(ended, json!({"conversation_id": conversation, "user_id": alice.id, "typing": false}));
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["typing"], json!([]));

    // It can start again afterwards.
    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    assert_eq!(b.event("typing:updated").await["typing"], true);
    server.stop().await;
}

async fn typing_ends_when_the_typist_sends(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.typing_timeout_ms = 60_000).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;

    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    assert_eq!(b.event("typing:updated").await["typing"], true);
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "done typing"})).await;
    let ended = b.event("typing:updated").await;
    assert_eq!(ended, json!({"conversation_id": conversation, "user_id": alice.id, "typing": false}));
    assert_eq!(b.event("message:new").await["message"]["id"], sent["message"]["id"]);
    let joined = b.ack("conversation:join", json!({"conversation_id": conversation})).await;
    assert_eq!(joined["typing"], json!([]));
    server.stop().await;
}

async fn typing_ends_when_the_typists_last_session_closes(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.typing_timeout_ms = 60_000).await;
    let admin = admin();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a1 = server.ws(&alice).await;
    let a2 = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;

    a1.ack("typing:start", json!({"conversation_id": conversation})).await;
    assert_eq!(b.event("typing:updated").await["typing"], true);

    // One of Alice's two sessions closes: she is still typing.
    a1.close().await;
    wait_for_actors(&server, &admin, "the first session is gone", |s| s["sessions"]["count"] == 2).await;
    let (status, actor) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{actor}");
    assert_eq!(actor["sessions"], 2, "{actor}");
    assert_eq!(actor["typing"], json!([alice.id]), "{actor}");

    // Her last session closes: typing ends.
    a2.close().await;
    let ended = b.event("typing:updated").await;
    assert_eq!(ended, json!({"conversation_id": conversation, "user_id": alice.id, "typing": false}));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Several sessions of one user

async fn every_session_of_a_user_gets_the_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a1 = server.ws(&alice).await;
    let mut a2 = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;

    // Bob sends: both of Alice's sessions get the message and the unread count.
    let sent = b.ack("message:send", json!({"conversation_id": conversation, "body": "hi"})).await;
    for a in [&mut a1, &mut a2] {
        assert_eq!(a.event("message:new").await["message"], sent["message"]);
        let unread = a.event("unread:updated").await;
        assert_eq!(unread, json!({"conversation_id": conversation, "unread_count": 1, "total_unread": 1}));
    }

    // Alice reads on one: the other hears of it too, and Bob gets the receipt.
    let read = a1.ack("read:mark", json!({"conversation_id": conversation})).await;
    assert_eq!(read, json!({"last_read_seq": 1, "unread_count": 0, "total_unread": 0}));
    let receipt = json!({"conversation_id": conversation, "user_id": alice.id, "last_read_seq": 1});
    assert_eq!(
        a2.event("unread:updated").await,
        json!({"conversation_id": conversation, "unread_count": 0, "total_unread": 0})
    );
    assert_eq!(a2.event("read:updated").await, receipt);
    assert_eq!(a1.event("read:updated").await, receipt);
    assert_eq!(b.event("read:updated").await, receipt);

    // Alice answers from one: both of her sessions get her own message.
    let reply = a1.ack("message:send", json!({"conversation_id": conversation, "body": "hello"})).await;
    assert_eq!(reply["message"]["seq"], 2);
    for session in [&mut a1, &mut a2, &mut b] {
        assert_eq!(session.event_where("message:new", |d| d["message"]["seq"] == 2).await["message"], reply["message"]);
    }
    let unread = b.event("unread:updated").await;
    assert_eq!(unread, json!({"conversation_id": conversation, "unread_count": 1, "total_unread": 1}));

    // One session closes; the other carries on.
    a1.close().await;
    let third = b.ack("message:send", json!({"conversation_id": conversation, "body": "still here?"})).await;
    assert_eq!(a2.event_where("message:new", |d| d["message"]["seq"] == 3).await["message"], third["message"]);
    assert_eq!(a2.ack("ping", json!({})).await, json!({}));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Presence

async fn a_contact_coming_online_is_announced_and_queryable(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let dave = server.user("dave").await;
    server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut d = server.ws(&dave).await;

    // Bob has not connected yet.
    let (status, user) = server.get(Some(&alice), &format!("/api/users/{}", bob.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["online"], false);
    assert_eq!(user["last_seen_at"], Value::Null);

    let mut b = server.ws(&bob).await;
    let online = a.event_where("presence:updated", |d| d["user_id"] == bob.id.as_str()).await;
    assert_eq!(online["online"], true, "{online}");
    assert_timestamp(&online["last_seen_at"]);
    // Dave shares no conversation with Bob: he is not told (his reply comes after the moment
    // Presence told Bob's contacts, so an event to him would be queued before it).
    assert_eq!(d.ack("ping", json!({})).await, json!({}));
    assert_eq!(d.drain(|f| f["type"] == "presence:updated"), Vec::<Value>::new());

    // presence:query: known users in the order asked, unknown ones left out (server's choice).
    let unknown = uuid::Uuid::new_v4().to_string();
    let answer = a.ack("presence:query", json!({"user_ids": [bob.id, unknown, alice.id]})).await;
    let presence = answer["presence"].as_array().expect("presence");
    assert_eq!(presence.len(), 2, "{answer}");
    assert_eq!((&presence[0]["user_id"], &presence[0]["online"]), (&json!(bob.id), &json!(true)));
    assert_timestamp(&presence[0]["last_seen_at"]);
    assert_eq!((&presence[1]["user_id"], &presence[1]["online"]), (&json!(alice.id), &json!(true)));
    let answer = b.ack("presence:query", json!({"user_ids": []})).await;
    assert_eq!(answer, json!({"presence": []}));

    let (status, user) = server.get(Some(&alice), &format!("/api/users/{}", bob.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!((&user["id"], &user["username"], &user["online"]), (&json!(bob.id), &json!("bob"), &json!(true)));
    assert_timestamp(&user["last_seen_at"]);
    server.stop().await;
}

async fn a_contact_going_offline_is_announced_after_the_grace_period(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.presence_grace_ms = 300).await;
    let admin = admin();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let b1 = server.ws(&bob).await;
    let b2 = server.ws(&bob).await;
    let online = a.event_where("presence:updated", |d| d["user_id"] == bob.id.as_str()).await;
    assert_eq!(online["online"], true);

    // Both of Bob's sessions close; after the grace period he is offline.
    b1.close().await;
    b2.close().await;
    let offline = a.event_where("presence:updated", |d| d["user_id"] == bob.id.as_str()).await;
    assert_eq!(offline["online"], false, "{offline}");
    assert_timestamp(&offline["last_seen_at"]);

    // Asking says the same, with the same last_seen_at.
    let (status, user) = server.get(Some(&alice), &format!("/api/users/{}", bob.id)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["online"], false);
    assert_eq!(user["last_seen_at"], offline["last_seen_at"]);
    let answer = a.ack("presence:query", json!({"user_ids": [bob.id]})).await;
    assert_eq!(
        answer,
        json!({"presence": [{"user_id": bob.id, "online": false, "last_seen_at": offline["last_seen_at"]}]})
    );
    let (_, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(actors["sessions"], json!({"count": 1, "users": 1}), "{actors}");
    assert_eq!(actors["presence"], json!({"online_users": 1}), "{actors}");

    // Coming back is announced again.
    let _b3 = server.ws(&bob).await;
    let back = a.event_where("presence:updated", |d| d["user_id"] == bob.id.as_str()).await;
    assert_eq!(back["online"], true, "{back}");
    server.stop().await;
}

async fn a_reload_within_the_grace_period_does_not_flap(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.presence_grace_ms = 3_000).await;
    let admin = admin();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    server.direct(&alice, &carol).await;
    let mut a = server.ws(&alice).await;
    let c = server.ws(&carol).await;
    let b1 = server.ws(&bob).await;
    for user in [&carol, &bob] {
        let online = a.event_where("presence:updated", |d| d["user_id"] == user.id.as_str()).await;
        assert_eq!(online["online"], true);
    }

    // Bob reloads: his only session closes...
    b1.close().await;
    wait_for_actors(&server, &admin, "Bob's session is gone", |s| s["sessions"]["count"] == 2).await;
    // ...(Carol, who will serve as a clock, leaves for good just after him)...
    c.close().await;
    let between = wait_for_actors(&server, &admin, "Carol's session is gone", |s| s["sessions"]["count"] == 1).await;
    // ...Bob and Carol have no session but are still shown online, inside the grace period...
    assert_eq!(between["sessions"]["users"], 1, "{between}");
    assert_eq!(between["presence"]["online_users"], 3, "{between}");
    // ...and Bob's new session opens.
    let mut b2 = server.ws(&bob).await;
    let sent = b2.ack("message:send", json!({"conversation_id": conversation, "body": "back"})).await;

    // Everything Alice sees, up to Bob's message and until Carol's grace period (which began
    // after Bob's, and is as long) has run out: Bob never goes offline.
    let (mut got_message, mut carol_offline) = (false, false);
    while !(got_message && carol_offline) {
        let frame = a.next().await;
        if frame["type"] == "presence:updated" && frame["data"]["user_id"] == bob.id.as_str() {
            assert_ne!(frame["data"]["online"], false, "a reload made Bob flap offline: {frame}");
        }
        if frame["type"] == "presence:updated" && frame["data"]["user_id"] == carol.id.as_str() {
            assert_eq!(frame["data"]["online"], false, "{frame}");
            carol_offline = true;
        }
        if frame["type"] == "message:new" && frame["data"]["message"]["id"] == sent["message"]["id"] {
            got_message = true;
        }
    }
    let answer = a.ack("presence:query", json!({"user_ids": [bob.id, carol.id]})).await;
    assert_eq!(answer["presence"][0]["online"], true, "{answer}");
    assert_eq!(answer["presence"][1]["online"], false, "{answer}");
    let (_, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(actors["presence"]["online_users"], 2, "Alice and Bob: {actors}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Heartbeat and slow consumers

async fn a_silent_connection_is_closed_by_the_heartbeat(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.heartbeat_ms = 200;
        config.limits.presence_grace_ms = 200;
    })
    .await;
    let alice = server.user("alice").await;
    let carol = server.user("carol").await;
    server.direct(&alice, &carol).await;
    let mut a = server.ws(&alice).await;

    // Carol's client upgrades, then never sends anything, not even a pong.
    let mut silent = StalledWs::connect(server.addr(), &carol.token, None).await;
    let online = a.event_where("presence:updated", |d| d["user_id"] == carol.id.as_str()).await;
    assert_eq!(online["online"], true);

    // Alice only reads (her client answers pings) while Carol's connection goes silent, is cut,
    // and Carol's grace period passes.
    let offline = a.event_where("presence:updated", |d| d["user_id"] == carol.id.as_str()).await;
    assert_eq!(offline["online"], false, "{offline}");
    // Alice, silent but answering pings all that time (more than three intervals), is still
    // connected.
    assert_eq!(a.ack("ping", json!({})).await, json!({}));

    // What Carol's connection got: session:ready, pings, then a close, then the end.
    let (ending, bytes) = silent.read_to_end().await;
    assert_eq!(ending, Ending::Eof, "the server closes the connection");
    let frames = parse_frames(&bytes);
    let first = frames.first().expect("a first frame");
    assert_eq!(first.0, OP_TEXT);
    assert_eq!(serde_json::from_slice::<Value>(&first.1).expect("JSON")["type"], "session:ready");
    assert!(frames.iter().any(|(op, _)| *op == OP_PING), "the server pinged");
    let close = frames.last().expect("a last frame");
    assert_eq!(close.0, OP_CLOSE, "the last frame is a close");
    assert_eq!(close_code(&close.1), Some(1001), "server's choice: 1001 going away");
    server.stop().await;
}

async fn a_slow_consumer_is_cut_off_without_slowing_the_sender(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_per_sec = 100_000.0;
        config.limits.rate_burst = 100_000.0;
        // Alice sends as fast as acks come back, which is faster than a person's frame limit.
        config.limits.max_frames_per_sec = 100_000.0;
        config.limits.outgoing_queue = 16;
        config.limits.close_timeout_ms = 500;
    })
    .await;
    let admin = admin();
    let alice = server.user("alice").await;
    let slow = server.user("slow").await;
    let conversation = server.direct(&alice, &slow).await;
    let mut a = server.ws(&alice).await;
    let mut reader = StalledWs::connect(server.addr(), &slow.token, Some(4096)).await;
    wait_for_actors(&server, &admin, "both sessions are open", |s| s["sessions"]["count"] == 2).await;

    // Alice sends large messages (4,000 characters of 4 bytes each); the slow client never reads.
    // Every send is acked, in order.
    const MOST: i64 = 2_000;
    let body = "\u{1F600}".repeat(4_000);
    let mut sent = 0;
    let mut cut_off = false;
    while sent < MOST {
        sent += 1;
        let ack = a.ack("message:send", json!({"conversation_id": conversation, "body": body})).await;
        assert_eq!(ack["message"]["seq"], sent);
        a.drain(|_| true);
        if sent % 8 == 0 {
            let (status, actors) = server.get(Some(&admin), "/api/admin/actors").await;
            assert_eq!(status, 200, "{actors}");
            if actors["sessions"]["count"] == 1 {
                cut_off = true;
                break;
            }
        }
    }
    assert!(cut_off, "the slow session was still open after {MOST} messages of 4,000 characters");
    assert_eq!(a.closed, None, "Alice kept up and stayed connected");

    // Sending goes on, for Alice and in the conversation.
    let after = a.ack("message:send", json!({"conversation_id": conversation, "body": "and on"})).await;
    assert_eq!(after["message"]["seq"], sent + 1);

    // When the slow client finally reads, its connection has been closed: it got part of what
    // was sent, then the end.
    let (ending, bytes) = reader.read_to_end().await;
    assert!(matches!(ending, Ending::Eof | Ending::Reset), "{ending:?}");
    let delivered = parse_frames(&bytes)
        .iter()
        .filter(|(op, payload)| {
            *op == OP_TEXT && serde_json::from_slice::<Value>(payload).is_ok_and(|f| f["type"] == "message:new")
        })
        .count() as i64;
    assert!(delivered < sent, "the slow client got {delivered} of the {sent} messages");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Admin inspection, supervision, retirement

async fn admin_lists_the_live_actors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = admin();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let unused = server.direct(&alice, &carol).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;

    // No message yet: no live actor.
    let (status, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    assert_eq!(actors["conversations"], json!([]));

    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "hi"})).await;
    assert_eq!(b.event("message:new").await["message"]["id"], sent["message"]["id"]);

    let (status, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    assert!(actors["node_id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()), "{actors}");
    assert_timestamp(&actors["started_at"]);
    assert_eq!(actors["sessions"], json!({"count": 2, "users": 2}));
    assert_eq!(actors["presence"], json!({"online_users": 2}));
    let listed = actors["conversations"].as_array().expect("conversations");
    assert_eq!(listed.len(), 1, "{actors}");
    let actor = &listed[0];
    assert_eq!(actor["conversation_id"], conversation.as_str());
    assert_eq!(actor["members"], 2);
    assert_eq!(actor["sessions"], 2);
    assert_eq!(actor["messages_handled"], 1);
    assert_eq!(actor["mailbox"], 0);
    assert_eq!(actor["restarts"], 0);
    assert_eq!(actor["typing"], json!([]));
    assert_timestamp(&actor["started_at"]);
    assert_timestamp(&actor["last_activity_at"]);

    // One actor, with who is typing.
    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    let (status, one) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{conversation}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["conversation_id"], conversation.as_str());
    assert_eq!(one["typing"], json!([alice.id]));
    assert_eq!(one["messages_handled"], 2);
    assert_eq!(one["started_at"], actor["started_at"]);

    // None live for a conversation nobody used, nor for one that does not exist.
    let (status, body) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{unused}")).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "{body}");
    let nowhere = uuid::Uuid::new_v4();
    let (status, body) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{nowhere}")).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "{body}");
    server.stop().await;
}

async fn admin_endpoints_need_the_admin_role(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
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
    let root = server.user("admin").await;
    let (status, _) = server.get(Some(&root), "/api/admin/actors").await;
    assert_eq!(status, 200);
    server.stop().await;
}

async fn a_faulted_conversation_actor_restarts_in_place(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = admin();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let faulty = server.direct(&alice, &bob).await;
    let other = server.direct(&alice, &carol).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;

    a.ack("message:send", json!({"conversation_id": faulty, "body": "one"})).await;
    a.ack("message:send", json!({"conversation_id": other, "body": "one"})).await;
    assert_eq!(b.event("message:new").await["message"]["seq"], 1);
    assert_eq!(c.event("message:new").await["message"]["seq"], 1);
    let (_, other_before) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{other}")).await;

    let (status, body) =
        server.post(Some(&admin), &format!("/api/admin/actors/conversations/{faulty}/fault"), json!({})).await;
    assert_eq!(status, 202, "{body}");

    // The same sockets carry on: sends go through, seq continues, everyone gets the message.
    let sent = a.ack("message:send", json!({"conversation_id": faulty, "body": "two"})).await;
    assert_eq!(sent["message"]["seq"], 2);
    assert_eq!(b.event("message:new").await["message"]["id"], sent["message"]["id"]);
    let reply = b.ack("message:send", json!({"conversation_id": faulty, "body": "three"})).await;
    assert_eq!(reply["message"]["seq"], 3);
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let event = a.event_where("message:new", |d| d["message"]["conversation_id"] == faulty.as_str()).await;
        seqs.push(event["message"]["seq"].as_i64().expect("seq"));
    }
    assert_eq!(seqs, vec![1, 2, 3], "Alice's session saw every seq once, in order");
    let (_, history) = server.get(Some(&alice), &format!("/api/conversations/{faulty}/messages")).await;
    let stored: Vec<i64> =
        history["messages"].as_array().expect("messages").iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(stored, vec![1, 2, 3]);

    // The other conversation did not notice.
    let sent = a.ack("message:send", json!({"conversation_id": other, "body": "two"})).await;
    assert_eq!(sent["message"]["seq"], 2);
    assert_eq!(c.event("message:new").await["message"]["id"], sent["message"]["id"]);
    let (_, other_after) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{other}")).await;
    assert_eq!(other_after["restarts"], 0);
    assert_eq!(other_after["started_at"], other_before["started_at"]);

    // The faulted one counts its restart.
    let (status, actor) = server.get(Some(&admin), &format!("/api/admin/actors/conversations/{faulty}")).await;
    assert_eq!(status, 200, "{actor}");
    assert_eq!(actor["restarts"], 1);
    assert_eq!(actor["sessions"], 2);
    assert_eq!((a.closed, b.closed, c.closed), (None, None, None));
    server.stop().await;
}

async fn an_idle_conversation_actor_stops_and_a_fresh_one_takes_over(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.conversation_idle_secs = 1).await;
    let admin = admin();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let path = format!("/api/admin/actors/conversations/{conversation}");

    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "one"})).await;
    assert_eq!(sent["message"]["seq"], 1);
    let (status, first) = server.get(Some(&admin), &path).await;
    assert_eq!(status, 200, "{first}");

    // Nothing happens in the conversation: its actor stops.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = server.get(Some(&admin), &path).await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the idle actor is still live: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, actors) = server.get(Some(&admin), "/api/admin/actors").await;
    assert_eq!(actors["conversations"], json!([]), "{actors}");

    // The next send starts a fresh one: seq continues, both sessions get the message.
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "two"})).await;
    assert_eq!(sent["message"]["seq"], 2);
    assert_eq!(
        b.event_where("message:new", |d| d["message"]["seq"] == 2).await["message"]["id"],
        sent["message"]["id"]
    );
    assert_eq!(
        a.event_where("message:new", |d| d["message"]["seq"] == 2).await["message"]["id"],
        sent["message"]["id"]
    );
    let (status, fresh) = server.get(Some(&admin), &path).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["messages_handled"], 1);
    assert_eq!(fresh["restarts"], 0);
    assert_eq!(fresh["sessions"], 2);
    assert_ne!(fresh["started_at"], first["started_at"]);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A user with an admin token, as an identity system would issue it.
fn admin() -> TestUser {
    let id = uuid::Uuid::new_v4().to_string();
    let token =
        token_for(json!({"sub": id, "exp": now_secs() + 3_600, "iat": now_secs(), "name": "root", "role": "admin"}));
    TestUser { id, username: "root".into(), token }
}

/// Polls `GET /api/admin/actors` until `done` says so (a state to reach, not a fixed wait).
async fn wait_for_actors(server: &TestServer, admin: &TestUser, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, actors) = server.get(Some(admin), "/api/admin/actors").await;
        assert_eq!(status, 200, "{actors}");
        if done(&actors) {
            return actors;
        }
        assert!(Instant::now() < deadline, "{what}: not reached, the admin endpoint says {actors}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An RFC 3339 UTC time with milliseconds: `2026-11-21T10:15:30.123Z`.
fn assert_timestamp(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("a timestamp, got {value}"));
    assert!(
        text.len() == 24 && text.as_bytes()[19] == b'.' && text.ends_with('Z'),
        "a UTC time with milliseconds, got {text}"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "RFC 3339, got {text}");
}
