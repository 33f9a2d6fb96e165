//! Embedded migrations, one folder per backend, applied at start.
//!
//! diesel's migration harness is synchronous, and diesel-async's async harness uses
//! `block_in_place`, which panics on actix's single-threaded runtime (`Cannot start a
//! runtime from within a runtime`). So the
//! migrations run on a thread of their own with a synchronous connection, and the server waits
//! for that thread without blocking its runtime.

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::DatabaseUrl;
use crate::error::{Error, Result};

const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// The advisory lock that nodes starting together on one PostgreSQL take in turn, so that one
/// migrates and the others find nothing left to do (any constant, the same in every version).
const MIGRATION_LOCK: i64 = 0x7061_726c_6579; // "parley"

pub async fn run(url: &DatabaseUrl) -> Result<()> {
    let url = url.clone();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("parley-migrate".into())
        .spawn(move || {
            let _ = done.send(apply(&url));
        })
        .map_err(|err| Error::Internal(format!("cannot start the migration thread: {err}")))?;
    let applied = result.await.map_err(|_| Error::Internal("the migration thread died".into()))??;
    for version in applied {
        log::info!("applied migration {version}");
    }
    Ok(())
}

fn apply(url: &DatabaseUrl) -> Result<Vec<String>> {
    let failed =
        |err: Box<dyn std::error::Error + Send + Sync>| Error::Unavailable(format!("migrations failed: {err}"));
    let cannot_connect =
        |err: diesel::ConnectionError| Error::Unavailable(format!("cannot connect to the database: {err}"));
    let applied = match url {
        DatabaseUrl::Postgres(url) => {
            // Outside any runtime, so the wrapper builds a small runtime of its own.
            let mut conn =
                <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(url).map_err(cannot_connect)?;
            // Held by this session until it ends (the connection is dropped below).
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .map_err(|err| Error::Unavailable(format!("cannot take the migration lock: {err}")))?;
            conn.run_pending_migrations(POSTGRES).map_err(failed)?.iter().map(ToString::to_string).collect()
        }
        DatabaseUrl::Sqlite(path) => {
            let mut conn = SqliteConnection::establish(path).map_err(cannot_connect)?;
            // Wait for a lock rather than fail: the file may still be open elsewhere (a server
            // that is stopping, an operator's sqlite3 shell).
            conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;")
                .map_err(|err| Error::Unavailable(format!("cannot set up the SQLite database: {err}")))?;
            conn.run_pending_migrations(SQLITE).map_err(failed)?.iter().map(ToString::to_string).collect()
        }
    };
    Ok(applied)
}
