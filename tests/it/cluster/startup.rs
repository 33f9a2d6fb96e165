//! What a cluster node refuses: SQLite with Redis, and a bad Redis URL (before the database is
//! migrated); a lone node has no broker.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::cluster::*;
use crate::common::*;

/// SQLite is for one node: with a Redis URL the server does not start, and says why. A node
/// without Redis says its broker is off.
#[actix_web::test]
async fn sqlite_with_redis_does_not_start_and_a_lone_node_has_no_broker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = parley::config::Config::from_env();
    config.database_url = format!("sqlite://{}", dir.path().join("parley.db").display());
    config.jwt_secret = Some(SECRET.into());
    config.cluster.redis_url = Some(default_redis_url());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let error = match parley::start(listener, config).await {
        Ok(_) => panic!("a SQLite node with a Redis URL started"),
        Err(err) => err.to_string(),
    };
    let lower = error.to_lowercase();
    assert!(lower.contains("redis") && (lower.contains("sqlite") || lower.contains("postgres")), "{error}");
    // The command says so too, and exits with a failure.
    let log_path = dir.path().join("parley.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env("PARLEY_BIND", "127.0.0.1:0")
        .env("PARLEY_DATABASE_URL", format!("sqlite://{}", dir.path().join("parley.db").display()))
        .env("PARLEY_REDIS_URL", default_redis_url())
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("run parley");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for parley") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("parley runs on SQLite with a Redis URL");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = std::fs::read_to_string(&log_path).expect("log").to_lowercase();
    assert!(!status.success(), "parley ran on SQLite with a Redis URL: {log}");
    assert!(log.contains("redis") && log.contains("sqlite"), "the start-up error is not clear: {log}");

    let server = TestServer::start_with(Backend::Sqlite, |config| config.cluster.redis_url = None).await;
    let (status, ready) = server.get(None, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!((&ready["status"], &ready["broker"]), (&json!("ready"), &json!("off")), "{ready}");
    server.stop().await;
}

/// A Redis URL that is not one stops the start with a message that names the setting, before
/// the database is touched: nothing is migrated into a database the node will not serve.
#[actix_web::test]
async fn a_bad_redis_url_stops_the_start_before_the_database_is_migrated() {
    let Some(_) = postgres_for(Suite::Cluster) else {
        return;
    };
    let database = FreshDatabase::create(Backend::Postgres).await;
    let mut config = parley::config::Config::from_env();
    config.database_url = database.url.clone();
    config.jwt_secret = Some(SECRET.into());
    config.cluster.redis_url = Some("http://not-redis".into());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let error = match parley::start(listener, config).await {
        Ok(_) => panic!("a node with a bad Redis URL started"),
        Err(err) => err.to_string(),
    };
    assert!(error.contains("PARLEY_REDIS_URL"), "the error names the setting: {error}");
    // Migrations would have made `users`: creating it succeeds only on an untouched database.
    pg_execute(&database.url, "CREATE TABLE users (id int)").await;
}
