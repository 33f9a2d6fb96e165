//! Socket.IO front-ends, with the real `socket.io-client` (4.x, in Node: `tests/socketio/`):
//! a refused token, a connection that upgrades from polling to WebSocket, one that stays on
//! long-polling, sends acknowledged through the emitter's callback, messages in order, typing
//! and presence, an idempotent resend, and a dropped connection that reconnects by itself and
//! syncs with nothing lost; once with Parley's own event names on the main namespace, once as a
//! NestJS front-end of the products would connect (the namespace `/messaging`, the aliases of
//! `deploy/socketio-aliases.json`, camelCase fields).
//!
//! It needs Node.js and the script's package (`npm ci --prefix tests/socketio`). Without them it
//! passes without running and the run's last line says so, unless `PARLEY_REQUIRE_SOCKETIO` is
//! set (CI sets it). Both backends: the sessions behind it write to the database as `/ws`'s do.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::common::skips;
use crate::common::*;

backends!(socket_io_client_front_ends_chat_through_parley, a_nestjs_front_end_connects_with_its_own_names);

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/socketio")
}

/// True when the test can run; false (counted in the run's last line) when it may be skipped;
/// fails when it may not.
pub fn socket_io_available() -> bool {
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if node && scripts().join("node_modules/socket.io-client").exists() {
        skips::ran(Suite::SocketIo);
        return true;
    }
    assert!(
        std::env::var_os("PARLEY_REQUIRE_SOCKETIO").is_none(),
        "PARLEY_REQUIRE_SOCKETIO is set but Node.js or socket.io-client (npm ci --prefix tests/socketio) is missing"
    );
    skips::skipped(Suite::SocketIo);
    false
}

/// Alice and Bob on a server tuned by `tune`, their conversation, and `client.mjs` run against
/// it with `extra` in its setup; fails with the script's output when it does.
async fn run_client(backend: Backend, tune: impl FnOnce(&mut parley::config::Config), extra: serde_json::Value) {
    let Pair { server, alice, bob, conversation } = Pair::start_with(backend, tune).await;
    let mut setup =
        json!({ "base": server.base, "alice": alice.token, "bob": bob.token, "conversation": conversation });
    if let (Some(setup), Some(extra)) = (setup.as_object_mut(), extra.as_object()) {
        setup.extend(extra.clone());
    }
    drive(setup).await;
    check_history(&server.history(&alice, &conversation).await);
    server.stop().await;
}

/// Runs `client.mjs` with `setup`; fails with its output when it does.
pub async fn drive(setup: serde_json::Value) {
    // The server runs on this thread's runtime too: wait for the script without blocking it.
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new("node").arg(scripts().join("client.mjs")).arg(setup.to_string()).output()
    })
    .await
    .expect("the thread that runs node")
    .expect("node starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the socket.io-client run failed ({}):\n{stdout}\n{stderr}", output.status);
}

/// What the script's clients were acknowledged is in the database: 1 + 20 + 1 messages, once each.
pub fn check_history(history: &[serde_json::Value]) {
    let bodies: Vec<&str> = history.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies.len(), 22, "{bodies:?}");
    assert_eq!(bodies.iter().filter(|b| **b == "hello over socket.io").count(), 1, "resent once, stored once");
}

/// Parley's own event names, on the main namespace.
async fn socket_io_client_front_ends_chat_through_parley(backend: Backend) {
    if !socket_io_available() {
        return;
    }
    run_client(backend, |_| {}, json!({})).await;
}

/// A front-end written for its own NestJS gateway: `/messaging`, `sendMessage`, `new-message`.
async fn a_nestjs_front_end_connects_with_its_own_names(backend: Backend) {
    if !socket_io_available() {
        return;
    }
    let aliases = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/socketio-aliases.json");
    let tune = move |config: &mut parley::config::Config| {
        config.socketio.namespace = Some("/messaging".into());
        config.socketio.aliases = Some(aliases);
    };
    run_client(backend, tune, json!({ "namespace": "/messaging", "aliased": true })).await;
}
