//! Coming back: a client that reconnects syncs what it missed, in order; a resend with the same
//! `client_id` (over either transport) returns the stored message instead of a second one.

use serde_json::json;

use crate::common::*;

backends!(reconnect_and_sync_what_was_missed, client_id_makes_sends_idempotent_across_transports,);

async fn reconnect_and_sync_what_was_missed(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let mut a = server.ws(&alice).await;
    a.ack("message:send", json!({"conversation_id": conversation, "body": "one"})).await;

    // Bob is away while three messages arrive, then reconnects and syncs from seq 1.
    for body in ["two", "three", "four"] {
        a.ack("message:send", json!({"conversation_id": conversation, "body": body})).await;
    }
    let mut b = server.ws(&bob).await;
    let synced = b.ack("sync", json!({"conversations": [{"conversation_id": conversation, "after_seq": 1}]})).await;
    let got = &synced["conversations"][0];
    let bodies: Vec<&str> = got["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["two", "three", "four"]);
    assert_eq!(got["has_more"], false);

    // A page smaller than what was missed says there is more.
    let partial =
        b.ack("sync", json!({"conversations": [{"conversation_id": conversation, "after_seq": 0}], "limit": 2})).await;
    assert_eq!(partial["conversations"][0]["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(partial["conversations"][0]["has_more"], true);
    server.stop().await;
}

async fn client_id_makes_sends_idempotent_across_transports(backend: Backend) {
    let Pair { server, alice, bob: _, conversation } = Pair::start(backend).await;
    let mut a = server.ws(&alice).await;
    let first =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "once", "client_id": "k-1"})).await;
    // The same client_id again over WebSocket (as after a reconnect) and over REST.
    let again =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "once", "client_id": "k-1"})).await;
    assert_eq!(again["message"], first["message"]);
    let path = format!("/api/conversations/{conversation}/messages");
    let (status, rest) = server.post(Some(&alice), &path, json!({"body": "once", "client_id": "k-1"})).await;
    assert_eq!(status, 201);
    assert_eq!(rest, first["message"]);
    let (_, history) = server.get(Some(&alice), &path).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(1), "stored once: {history}");
    server.stop().await;
}
