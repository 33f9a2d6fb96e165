//! The WebSocket's frames: a bad frame gets an error and the connection stays open, a command
//! with a `ref` gets exactly one reply, and what closes a connection: a frame over the size limit
//! (1009, also when it comes in fragments), text that is not UTF-8 (1007), a flood of frames (1008). Deeply nested JSON is a bad
//! request on REST and on the WebSocket.

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::raw::*;
use crate::common::*;

backends!(
    bad_frames_get_an_error_and_the_connection_stays_open,
    a_command_with_a_ref_gets_exactly_one_reply,
    a_frame_over_the_size_limit_closes_with_1009,
    a_fragmented_message_over_the_size_limit_closes_with_1009,
    deeply_nested_json_is_a_bad_request_and_the_websocket_stays_open,
    a_text_frame_that_is_not_utf8_closes_with_1007,
    a_frame_flood_is_closed_with_1008_and_a_burst_is_not,
);

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

/// A message sent in fragments, each small, whose whole is over the limit: the same limit as
/// one big frame, so the same close (1009), not a protocol error (1002).
async fn a_fragmented_message_over_the_size_limit_closes_with_1009(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.limits.max_frame_bytes = 1024).await;
    let alice = server.user("alice").await;
    let mut raw = RawWs::ready(server.addr(), &alice.token).await;
    let part = [b' '; 600];
    raw.send(OP_TEXT, false, b"{\"type\":\"ping\",\"data\":{}").await;
    raw.send(OP_CONTINUATION, false, &part).await;
    raw.send(OP_CONTINUATION, true, &part).await;
    let (texts, close) = raw.until_close().await;
    assert_eq!(close.as_ref().map(|(code, _)| *code), Some(1009), "answered {texts:?} then {close:?}");
    server.stop().await;
}

/// JSON nested 10,000 deep (arrays, and objects) in a REST body is 400 `bad_request` on every
/// POST endpoint; in a WebSocket frame it gets an `error` (with the frame's `ref` where it can be
/// read) and the connection stays open.
async fn deeply_nested_json_is_a_bad_request_and_the_websocket_stays_open(backend: Backend) {
    let Pair { server, alice, bob: _, conversation } = Pair::start(backend).await;
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert!(objects.len() < 64 * 1024);

    for (path, token) in post_endpoints(&alice, &conversation) {
        let bodies = [
            arrays.clone(),
            objects.clone(),
            // Inside a tagged body (decoded through an intermediate tree) and a field.
            format!("{{\"kind\": \"group\", \"title\": {arrays}, \"member_ids\": []}}"),
            format!("{{\"seq\": {objects}}}"),
        ];
        for body in bodies {
            let (status, answer) = server.post_text(token, &path, "application/json", body.clone()).await;
            assert_raw_error(&format!("POST {path} {}…", &body[..30]), status, &answer, (400, "bad_request"));
        }
    }

    let mut a = server.ws(&alice).await;
    let frames = [
        (arrays.clone(), Value::Null),
        (objects.clone(), Value::Null),
        (format!("{{\"type\":\"ping\",\"ref\":\"deep-data\",\"data\":{arrays}}}"), json!("deep-data")),
        (format!("{{\"type\":\"message:send\",\"ref\":\"deep-objects\",\"data\":{objects}}}"), json!("deep-objects")),
        (
            format!("{{\"type\":\"sync\",\"ref\":\"deep-sync\",\"data\":{{\"conversations\":{arrays}}}}}"),
            json!("deep-sync"),
        ),
        (format!("{{\"type\":\"ping\",\"ref\":{arrays},\"data\":{{}}}}"), Value::Null),
        (format!("{{\"type\":{objects},\"ref\":\"deep-type\"}}"), json!("deep-type")),
    ];
    for (text, reference) in &frames {
        a.send_text(text).await;
        let reply = a.next().await;
        assert_eq!(
            (&reply["type"], &reply["data"]["code"]),
            (&json!("error"), &json!("bad_request")),
            "{}…: {reply}",
            &text[..40]
        );
        assert_eq!(reply.get("ref").unwrap_or(&Value::Null), reference, "{}…", &text[..40]);
    }
    assert_eq!(a.ack("ping", json!({})).await, json!({}));
    assert_eq!(a.closed, None);
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "still fine"})).await;
    assert_eq!(sent["message"]["seq"], 1);
    server.stop().await;
}

/// A text frame that is not UTF-8 (a stray byte, an overlong encoding, an encoded surrogate, a
/// sequence cut short) closes the connection with 1007, sent as raw frames since no well-behaved
/// client library would send them. Text split inside a character across two fragments is valid
/// and is answered. Other connections are not affected.
async fn a_text_frame_that_is_not_utf8_closes_with_1007(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let addr = server.addr();
    let mut bystander = server.ws(&alice).await;

    let broken: [&[u8]; 4] = [
        b"{\"type\":\"ping\",\"ref\":\"\xff\"}",
        b"{\"type\":\"ping\",\"ref\":\"\xc0\xaf\"}",
        b"{\"type\":\"ping\",\"ref\":\"\xed\xa0\x80\"}",
        b"{\"type\":\"ping\",\"ref\":\"\xe2\x82",
    ];
    for payload in broken {
        let mut raw = RawWs::ready(addr, &alice.token).await;
        raw.send(OP_TEXT, true, payload).await;
        let (texts, close) = raw.until_close().await;
        assert_eq!(close.as_ref().map(|(code, _)| *code), Some(1007), "{payload:?}: answered {texts:?} then {close:?}");
        assert!(texts.is_empty(), "{payload:?}: no reply before the close, got {texts:?}");
    }

    // "é" is 0xC3 0xA9: the first fragment ends between the two bytes.
    let whole = "{\"type\":\"ping\",\"ref\":\"caf\u{e9}\",\"data\":{}}".as_bytes();
    let split = whole.iter().position(|&b| b == 0xc3).expect("é") + 1;
    let mut raw = RawWs::ready(addr, &alice.token).await;
    raw.send(OP_TEXT, false, &whole[..split]).await;
    raw.send(OP_CONTINUATION, true, &whole[split..]).await;
    assert_eq!(raw.text().await, json!({"type": "ack", "ref": "caf\u{e9}", "data": {}}));

    assert_eq!(bystander.ack("ping", json!({})).await, json!({}));
    server.stop().await;
}

/// A client that sends a few thousand pings as fast as it can is closed with 1008 (the default
/// limit: 100 frames a second, bursts of 200); another connection of the same user is not
/// affected; a client that sends 150 pings in a burst gets all 150 answered and stays open.
async fn a_frame_flood_is_closed_with_1008_and_a_burst_is_not(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let addr = server.addr();
    let mut calm = server.ws(&alice).await;

    let mut flood = RawWs::ready(addr, &alice.token).await;
    let ping = RawWs::frame(OP_TEXT, true, br#"{"type":"ping","data":{}}"#);
    let batch: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 100).collect();
    let RawWs { reader, writer } = &mut flood;
    let write = async {
        // 3,000 pings, unless the server has closed first.
        for _ in 0..30 {
            if writer.write_all(&batch).await.is_err() {
                break;
            }
        }
        // Then nothing more; the reader decides when this test moves on.
        std::future::pending::<()>().await
    };
    let (texts, close) = tokio::select! {
        () = write => unreachable!(),
        closed = reader.until_close() => closed,
    };
    assert_eq!(close, Some((1008, "too many frames".to_string())), "after {texts:?}");
    assert!(texts.is_empty(), "pings without a ref get no reply: {texts:?}");

    assert_eq!(calm.ack("ping", json!({})).await, json!({}));
    let mut burst = server.ws(&alice).await;
    let mut refs = Vec::new();
    for _ in 0..150 {
        refs.push(burst.command("ping", json!({})).await);
    }
    for reference in &refs {
        let reply = burst.reply_to(reference).await;
        assert_eq!(reply["type"], "ack", "{reply}");
    }
    assert_eq!(burst.ack("ping", json!({})).await, json!({}));
    assert_eq!(burst.closed, None);
    assert_eq!(calm.closed, None);
    server.stop().await;
}
