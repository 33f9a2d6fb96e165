//! `parley-bench`, the real binary against a real server at a rate well under the limits:
//! every message is acked, delivered in order and nothing is refused; and idle connections all
//! open and stay open. Its figures are what operators will size deployments with, so its own
//! accounting is tested here, not only that it runs.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

backends!(
    direct_conversations_of_built_in_accounts_are_all_acked_and_delivered,
    groups_of_signed_token_users_are_all_acked_and_delivered,
    idle_connections_all_open_and_stay_open,
);

/// Runs the bench against `server` with `args`; its JSON line (the last one on stdout).
async fn bench(server: &TestServer, args: &[&str]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley-bench"));
    command.arg("--url").arg(&server.base).args(args);
    // The server runs on this test's runtime: wait for the child on another thread.
    let output = actix_web::rt::task::spawn_blocking(move || command.output()).await.expect("join").expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "parley-bench failed: {}\n{stderr}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| panic!("no output; stderr:\n{stderr}"));
    serde_json::from_str(last).unwrap_or_else(|err| panic!("last line is not JSON ({err}): {last}\n{stderr}"))
}

/// What every clean message run shows: all `sent` acked, delivered, in order, nothing refused.
fn assert_clean(r: &Value, sent: u64) {
    assert_eq!(r["mode"], "messages", "{r}");
    assert_eq!(r["sent"], sent, "every scheduled message is offered: {r}");
    assert_eq!(r["acked"], sent, "every message is acked: {r}");
    assert_eq!(r["error_codes"], json!({}), "no errors: {r}");
    assert_eq!(r["refused"], 0, "{r}");
    assert_eq!(r["unacked"], 0, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["order_violations"], 0, "{r}");
    assert_eq!(r["disconnects"], 0, "{r}");
    for key in ["ack_ms", "delivery_ms", "send_lag_ms"] {
        assert!(r[key]["n"].as_u64().unwrap_or(0) > 0, "{key} has samples: {r}");
        assert!(r[key]["p50"].as_f64().unwrap_or(-1.0) >= 0.0, "{key}: {r}");
    }
}

/// 200 msg/s for 2 s after half a second of warm-up, then up to 5 s for the last deliveries.
const SHORT_RUN: &[&str] = &["--rate", "200", "--warmup", "0.5", "--duration", "2", "--drain", "5"];

/// 20 built-in accounts in 10 direct conversations, 200 msg/s (10/s per user, under the
/// default 20): 2.5 s of sends, every one acked and delivered to the other member.
async fn direct_conversations_of_built_in_accounts_are_all_acked_and_delivered(backend: Backend) {
    let server = TestServer::start_with(backend, patient).await;
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let r = bench(
        &server,
        &["--users", "20", "--user-prefix", &prefix].iter().chain(SHORT_RUN).copied().collect::<Vec<_>>(),
    )
    .await;
    assert_clean(&r, 500);
    assert_eq!(r["conversations"], 10, "{r}");
    // Direct conversations: one delivery (to the other member) per measured message.
    assert_eq!(r["delivery_ms"]["n"], r["ack_ms"]["n"], "{r}");

    // The accounts exist, and the first conversation holds its members' 2 × 25 messages.
    let (status, login) = server
        .post(
            None,
            "/api/auth/login",
            json!({"username": format!("{prefix}_0"), "password": format!("pw-{prefix}_0-bench")}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let user = TestUser {
        id: login["user"]["id"].as_str().expect("id").into(),
        username: login["user"]["username"].as_str().expect("username").into(),
        token: login["token"].as_str().expect("token").into(),
    };
    let (status, list) = server.get(Some(&user), "/api/conversations").await;
    assert_eq!(status, 200, "{list}");
    let conversations = list["conversations"].as_array().expect("conversations");
    assert_eq!(conversations.len(), 1, "{list}");
    assert_eq!(conversations[0]["last_seq"], 50, "{list}");
    server.stop().await;
}

/// 20 users with signed tokens (created on first use) in 4 groups of 5: each message is
/// delivered to the 4 other members.
async fn groups_of_signed_token_users_are_all_acked_and_delivered(backend: Backend) {
    let server = TestServer::start_with(backend, patient).await;
    let r = bench(
        &server,
        &["--users", "20", "--group-size", "5", "--token-secret", SECRET]
            .iter()
            .chain(SHORT_RUN)
            .copied()
            .collect::<Vec<_>>(),
    )
    .await;
    assert_clean(&r, 500);
    assert_eq!(r["conversations"], 4, "{r}");
    assert_eq!(r["delivery_ms"]["n"].as_u64(), r["ack_ms"]["n"].as_u64().map(|n| 4 * n), "{r}");
    server.stop().await;
}

/// 200 idle WebSockets: all open, none dropped while held.
async fn idle_connections_all_open_and_stay_open(backend: Backend) {
    let server = TestServer::start_with(backend, patient).await;
    let r = bench(&server, &["--connections", "200", "--hold", "1", "--token-secret", SECRET]).await;
    assert_eq!(r["mode"], "connections", "{r}");
    assert_eq!(r["connected"], 200, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["connect_errors"], json!({}), "{r}");
    assert_eq!(r["disconnects_while_held"], 0, "{r}");
    assert!(r["connect_rate"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    server.stop().await;
}

/// These tests check the bench's accounting, not the server's speed: a machine busy with the
/// rest of the suite must not turn a slow commit into a shed send (`PARLEY_SEND_DEADLINE_MS`).
fn patient(config: &mut parley::config::Config) {
    config.limits.send_deadline_ms = 30_000;
}
