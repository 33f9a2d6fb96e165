//! The Prometheus endpoint counts what happens: a message sent and delivered, an error by its
//! code, the send latency histogram and the gauges of sessions, actors and database connections.

use serde_json::json;

use crate::common::process::ServerProcess;
use crate::common::*;

backends!(metrics_count_what_happens);

/// The counters are the process's own, so the server runs as a process of its own: no other
/// test adds to them, and each delta is exactly what this test did. Alice sends one message over
/// REST to Bob, who has one session (one delivery), and asks for a conversation that does not
/// exist (one `not_found`).
async fn metrics_count_what_happens(backend: Backend) {
    let db = FreshDatabase::create(backend).await;
    let server = ServerProcess::on(&db, &[]).await;
    let http = server.http();
    let alice = http.user("alice").await;
    let bob = http.user("bob").await;
    let conversation = http.direct(&alice, &bob).await;
    let mut b = Ws::open(&server.ws_base(), &bob).await;
    let before = http.metrics().await;
    let (status, sent) = http.post(Some(&alice), &messages_path(&conversation), json!({"body": "counted"})).await;
    assert_eq!(status, 201, "{sent}");
    b.event("message:new").await;
    let (status, _) = http.get(Some(&alice), "/api/conversations/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(status, 404);
    let after = http.metrics().await;
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    assert_eq!(delta("parley_messages_sent_total"), 1.0, "one message sent:\n{after}");
    assert_eq!(delta("parley_messages_delivered_total"), 1.0, "delivered to Bob's one session:\n{after}");
    assert_eq!(delta("parley_errors_total{code=\"not_found\"}"), 1.0, "one not_found:\n{after}");
    assert!(after.contains("parley_send_seconds_bucket"), "the send latency histogram");
    for gauge in ["parley_sessions", "parley_conversation_actors", "parley_db_connections{state=\"max\"}"] {
        assert!(after.lines().any(|l| l.starts_with(gauge)), "{gauge} missing");
    }
}
