//! The bundled web client in a real browser: `tests/browser/chat.mjs` drives headless Chromium
//! (Debian's `chromium`, through playwright-core) against a server started here, as two people
//! who sign up, find each other, chat, lose their connection and come back (issue 3).
//!
//! It needs Chromium (`apt-get install chromium`) and the script's packages
//! (`npm ci --prefix tests/browser`). Without them the test passes with a note on stderr, so that
//! `cargo test` on a fresh machine still passes, unless `PARLEY_REQUIRE_BROWSER` is set: CI sets
//! it, so there it can never be skipped. One backend is enough: the client talks to the same
//! HTTP and WebSocket code on both, and the other tests cover the backends.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Debian's Chromium, unless `PARLEY_CHROMIUM` names another.
fn chromium() -> PathBuf {
    std::env::var_os("PARLEY_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What is missing to run the browser tests, if anything.
fn missing() -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push(format!("Chromium at {} (apt-get install chromium)", chromium().display()));
    }
    if Command::new("node").arg("--version").output().map_or(true, |o| !o.status.success()) {
        missing.push("Node.js (node)".into());
    }
    if !scripts().join("node_modules/playwright-core").exists() {
        missing.push("playwright-core (npm ci --prefix tests/browser)".into());
    }
    missing
}

/// True when the test can run; false (with a note) when it may be skipped; fails when it may not.
fn browser_available() -> bool {
    let missing = missing();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("PARLEY_REQUIRE_BROWSER").is_none(),
        "PARLEY_REQUIRE_BROWSER is set but the browser tests cannot run; missing: {}",
        missing.join(", ")
    );
    // Straight to stderr: the test harness would swallow eprintln! from a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "skipping the browser tests: they need `apt-get install chromium` and `npm ci --prefix tests/browser` \
         (missing: {})",
        missing.join(", ")
    );
    false
}

#[actix_web::test]
async fn two_people_chat_in_the_browser() {
    if !browser_available() {
        return;
    }
    let server = TestServer::start(Backend::Sqlite).await;
    let base = server.base.clone();
    // The server runs on this thread's runtime too: wait for the script without blocking it.
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new("node").arg(scripts().join("chat.mjs")).arg(base).env("PARLEY_CHROMIUM", chromium()).output()
    })
    .await
    .expect("the thread that runs node")
    .expect("node starts");
    server.stop().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the browser test failed ({}):\n{stdout}\n{stderr}", output.status);
}
