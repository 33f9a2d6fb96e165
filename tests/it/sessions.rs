//! Sessions: every session of a user gets the events, and a connection that stays silent is
//! closed by the heartbeat.

use serde_json::{Value, json};

use crate::common::raw::*;
use crate::common::*;

backends!(every_session_of_a_user_gets_the_events, a_silent_connection_is_closed_by_the_heartbeat,);

async fn every_session_of_a_user_gets_the_events(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
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
