//! Load shedding: a send that would wait past its deadline is refused and not stored; under a
//! flood each send is stored if it was acknowledged and absent if it was refused.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use crate::common::process::ServerProcess;
use crate::common::*;

backends!(
    a_send_past_its_deadline_is_refused_and_not_stored,
    under_a_flood_each_send_is_stored_if_acked_and_absent_if_refused,
);

async fn a_send_past_its_deadline_is_refused_and_not_stored(backend: Backend) {
    // A deadline of zero: every send has waited too long by the time it could commit. The server
    // is a process of its own, so that its shed counter counts this test's sends only.
    let db = FreshDatabase::create(backend).await;
    let process = ServerProcess::on(&db, &[("PARLEY_SEND_DEADLINE_MS", "0")]).await;
    let server = process.http();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let conversation = server.direct(&alice, &bob).await;
    let mut a = Ws::open(&process.ws_base(), &alice).await;
    let before = metric(&server.metrics().await, "parley_sends_shed_total");

    let reply =
        a.request("message:send", json!({"conversation_id": conversation, "body": "late", "client_id": "c1"})).await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["data"]["code"], "unavailable");
    assert!(reply["data"]["message"].as_str().expect("message").contains("overloaded"), "{reply}");
    let (status, body) = server
        .post(Some(&alice), &format!("/api/conversations/{conversation}/messages"), json!({"body": "late too"}))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("unavailable")), "{body}");
    assert!(server.history(&alice, &conversation).await.is_empty(), "nothing refused is stored");
    let shed = metric(&server.metrics().await, "parley_sends_shed_total") - before;
    assert_eq!(shed, 2.0, "both sheds are counted");

    // The session carries on, and membership changes (not sends) are not shed.
    a.ack("typing:start", json!({"conversation_id": conversation})).await;
    let (status, group) = server
        .post(Some(&alice), "/api/conversations", json!({"kind": "group", "title": "g", "member_ids": [bob.id]}))
        .await;
    assert_eq!(status, 201, "{group}");
    let group = group["id"].as_str().expect("group id");
    let (status, body) =
        server.post(Some(&alice), &format!("/api/conversations/{group}/members"), json!({"user_id": carol.id})).await;
    assert_eq!(status, 201, "{body}");
}

async fn under_a_flood_each_send_is_stored_if_acked_and_absent_if_refused(backend: Backend) {
    const PAIRS: usize = 6;
    const EACH: usize = 40;
    let server = TestServer::start_with(backend, |c| {
        c.limits.rate_burst = 100.0;
        c.limits.max_frames_per_sec = 1000.0;
        c.limits.send_deadline_ms = 20;
        c.commit_lanes = 1;
    })
    .await;
    let mut pairs = pairs(&server, PAIRS).await;
    let refs = send_all(&mut pairs, EACH).await;
    let (mut acked, mut refused) = (HashMap::new(), HashSet::new());
    let mut sockets = pairs.iter_mut().flat_map(|(_, users)| users.iter_mut());
    for mine in &refs {
        let (_, ws) = sockets.next().expect("a socket per user");
        for (reference, client_id) in mine {
            let reply = ws.reply_to(reference).await;
            match reply["type"].as_str() {
                Some("ack") => drop(acked.insert(client_id.clone(), reply["data"]["message"]["id"].clone())),
                _ => {
                    assert_eq!(reply["data"]["code"], "unavailable", "{client_id}: {reply}");
                    refused.insert(client_id.clone());
                }
            }
        }
    }
    assert_eq!(acked.len() + refused.len(), 2 * PAIRS * EACH, "every send is answered");
    println!("flood: {} acked, {} refused", acked.len(), refused.len());
    for (conversation, users) in &pairs {
        let messages = server.history(&users[0].0, conversation).await;
        assert_gapless(&messages, conversation);
        for message in &messages {
            let client_id = message["client_id"].as_str().expect("client_id");
            assert!(!refused.contains(client_id), "{client_id} was refused but is stored");
            assert_eq!(acked.get(client_id), Some(&message["id"]), "{client_id} is stored as acked");
        }
        let acked_here = acked.keys().filter(|c| users.iter().any(|(u, _)| c.starts_with(&format!("{}-", u.username))));
        assert_eq!(messages.len(), acked_here.count(), "conversation {conversation}: every ack is stored");
    }
    server.stop().await;
}
