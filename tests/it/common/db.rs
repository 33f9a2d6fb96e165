//! A fresh database for each test, the one helper every kind of server uses (in-process, a
//! child process, the nodes of a cluster): a SQLite file in a temporary directory, or a
//! PostgreSQL database of its own on `PARLEY_TEST_DATABASE_URL`'s server, dropped with the value
//! (also when the test fails).

use std::path::Path;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::Backend;
use super::skips::{self, Suite};

/// The admin URL of the test PostgreSQL, for a test of `suite`; `None` (and the test is noted
/// as skipped) when `PARLEY_TEST_DATABASE_URL` is unset, which fails instead when
/// `PARLEY_REQUIRE_POSTGRES` is set (CI sets it, so there nothing is silently skipped).
pub fn postgres_for(suite: Suite) -> Option<String> {
    match std::env::var("PARLEY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            skips::ran(suite);
            Some(url)
        }
        _ => {
            assert!(
                std::env::var_os("PARLEY_REQUIRE_POSTGRES").is_none(),
                "PARLEY_REQUIRE_POSTGRES is set but PARLEY_TEST_DATABASE_URL is not"
            );
            skips::skipped(suite);
            None
        }
    }
}

/// A database of the test's own. Its directory also holds what servers on it write (logs).
pub struct FreshDatabase {
    pub url: String,
    dir: tempfile::TempDir,
    /// The admin URL and the name, on PostgreSQL.
    postgres: Option<(String, String)>,
}

impl FreshDatabase {
    /// A new database on `backend`. On PostgreSQL, the caller has checked that there is one
    /// ([`postgres_for`], or the `backends!` macro).
    pub async fn create(backend: Backend) -> FreshDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("parley.db").display());
                FreshDatabase { url, dir, postgres: None }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("PARLEY_TEST_DATABASE_URL").expect("PARLEY_TEST_DATABASE_URL");
                let name = format!("parley_t_{}", uuid::Uuid::new_v4().simple());
                pg_execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
                let url = pg_url(&admin_url, &host_port(&admin_url), &name);
                FreshDatabase { url, dir, postgres: Some((admin_url, name)) }
            }
        }
    }

    /// The temporary directory (the SQLite file, servers' logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PostgreSQL database's name.
    pub fn pg_name(&self) -> &str {
        &self.postgres.as_ref().expect("a PostgreSQL database").1
    }
}

impl Drop for FreshDatabase {
    /// Drops the PostgreSQL database. This runs inside the test's runtime, which cannot block
    /// on a future, so on a thread of its own. Fails the test if it cannot (unless it fails
    /// already).
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else { return };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(pg_execute(&admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("the test database could not be dropped");
        }
    }
}

/// Runs one statement on a PostgreSQL (as its admin: databases are created and dropped).
pub async fn pg_execute(url: &str, sql: &str) {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect to the test PostgreSQL");
    diesel::sql_query(sql).execute(&mut conn).await.unwrap_or_else(|err| panic!("{sql}: {err}"));
}

/// The `host:port` of a PostgreSQL URL (port 5432 when it names none).
pub fn host_port(url: &str) -> String {
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}

/// `admin_url` with its host and port replaced by `host_port` and its database by `name`.
pub fn pg_url(admin_url: &str, host_port: &str, name: &str) -> String {
    let scheme_end = admin_url.find("://").map_or(0, |i| i + 3);
    let rest = &admin_url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let userinfo = rest[..authority_end].rsplit_once('@').map_or("", |(user, _)| user);
    let query = rest.split_once('?').map_or(String::new(), |(_, q)| format!("?{q}"));
    let at = if userinfo.is_empty() { "" } else { "@" };
    format!("{}{userinfo}{at}{host_port}/{name}{query}", &admin_url[..scheme_end])
}
