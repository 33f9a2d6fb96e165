//! The bundled web client: served with its content types and revalidation; and driven in a real
//! browser (`tests/browser/chat.mjs`: headless Chromium through playwright-core) as two people
//! who sign up, find each other, chat, lose their connection and come back.
//!
//! The browser test needs Chromium (`apt-get install chromium`) and the script's packages
//! (`npm ci --prefix tests/browser`). Without them it passes without running and the run's last
//! line says so, unless `PARLEY_REQUIRE_BROWSER` is set (CI sets it). One backend is enough:
//! the client talks to the same HTTP and WebSocket code on both.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::skips;
use crate::common::*;

backends!(the_web_client_is_served_with_types_and_revalidation,);

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

/// True when the test can run; false (counted in the run's last line) when it may be skipped;
/// fails when it may not.
fn browser_available() -> bool {
    let missing = missing();
    if missing.is_empty() {
        skips::ran(Suite::Browser);
        return true;
    }
    assert!(
        std::env::var_os("PARLEY_REQUIRE_BROWSER").is_none(),
        "PARLEY_REQUIRE_BROWSER is set but the browser tests cannot run; missing: {}",
        missing.join(", ")
    );
    skips::skipped(Suite::Browser);
    false
}

async fn the_web_client_is_served_with_types_and_revalidation(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (path, content_type) in
        [("/", "text/html"), ("/assets/parley.js", "text/javascript"), ("/assets/style.css", "text/css")]
    {
        let mut page = server.client.get(server.url(path)).send().await.expect("GET");
        assert_eq!(page.status(), 200, "{path}");
        let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert!(
            header("content-type").is_some_and(|t| t.starts_with(content_type)),
            "{path}: {:?}",
            header("content-type")
        );
        assert_eq!(header("cache-control").as_deref(), Some("no-cache"), "{path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        let etag = header("etag").expect("etag");
        assert!(!page.body().await.expect("body").is_empty());
        // Revalidation of an unchanged file costs no body.
        let again =
            server.client.get(server.url(path)).insert_header(("If-None-Match", etag.as_str())).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        let head = server.client.head(server.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "{path}: HEAD");
    }
    assert_eq!(server.client.get(server.url("/assets/nothing.js")).send().await.unwrap().status(), 404);
    assert_eq!(server.client.get(server.url("/assets/index.html")).send().await.unwrap().status(), 404);
    server.stop().await;
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
