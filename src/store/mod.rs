//! The database behind a small async API: users, conversations and their members, messages and
//! read markers. Two backends through diesel-async and deadpool: SQLite (the embedded default,
//! through `SyncConnectionWrapper`) and PostgreSQL. Queries are written once; `with_conn!` runs
//! the same body against whichever backend the store holds, and code forks only where the SQL
//! really differs (diesel-async has no `MultiConnection`, and functions generic over the
//! connection need a `LoadQuery` bound per statement in every caller: the macro is shorter).
//!
//! Queries are grouped by table, in `users.rs`, `conversations.rs`, `messages.rs` and
//! `attachments.rs`; sends are committed in batches by the group committer (`committer.rs`,
//! with its SQL in `batch.rs`).

mod attachments;
mod batch;
mod committer;
mod conversations;
mod messages;
mod migrate;
pub mod models;
pub mod schema;
mod users;

use std::time::Duration;

use diesel::ConnectionError;
use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

pub use attachments::{AttachmentCursor, AttachmentPage};
pub use committer::{Committer, CommitterConfig, Permits};
pub use conversations::{ConversationPage, Founding, ListCursor, ListFilter};
pub use messages::{Appended, HistoryPage, MembershipChange, NewMessage};
pub use models::{AttachmentRow, UserRow};
pub use users::ExternalProfile;

use crate::error::{Error, Result};

type SqlitePool = Pool<SyncConnectionWrapper<SqliteConnection>>;
type PgPool = Pool<AsyncPgConnection>;

/// A handle on the database; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: Backend,
}

#[derive(Clone)]
enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Which database a URL names, from its scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    /// The path of the SQLite file.
    Sqlite(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_string()))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path == ":memory:" {
                return Err(Error::bad_request("a SQLite database needs a file path, as in sqlite://parley.db"));
            }
            Ok(DatabaseUrl::Sqlite(path.to_string()))
        } else {
            Err(Error::bad_request(format!(
                "unsupported database URL {:?}: use sqlite://FILE or postgres://USER@HOST/DB",
                redact(url)
            )))
        }
    }
}

/// A URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend the store uses.
/// The body is compiled once per backend, so it may only use SQL that both understand.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Backend::Postgres(pool) => {
                let mut guard = pool.get().await?;
                let $conn = &mut *guard;
                $body
            }
            $crate::store::Backend::Sqlite(pool) => {
                let mut guard = pool.get().await?;
                let $conn = &mut *guard;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

impl Store {
    /// Connects to the database, applies pending migrations and returns the store.
    pub async fn connect(url: &DatabaseUrl, pool_size: usize, timeout: Duration) -> Result<Store> {
        migrate::run(url).await?;
        Store::open(url, pool_size, timeout)
    }

    /// A store of its own `pool_size` connections to an already migrated database: the group
    /// committer writes through one, so that sends never wait for a connection behind reads.
    pub fn open(url: &DatabaseUrl, pool_size: usize, timeout: Duration) -> Result<Store> {
        let pool = match url {
            DatabaseUrl::Postgres(url) => {
                let mut config = ManagerConfig::default();
                // A broken connection is detected by the pool (`is_broken`); a test query per
                // checkout would cost a round trip on every message.
                config.recycling_method = RecyclingMethod::Fast;
                config.custom_setup = Box::new(|url| Box::pin(open_postgres(url.to_string())));
                let manager = AsyncDieselConnectionManager::new_with_config(url, config);
                Backend::Postgres(build_pool(manager, pool_size, timeout)?)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut config = ManagerConfig::default();
                config.recycling_method = RecyclingMethod::Fast;
                config.custom_setup = Box::new(|path| Box::pin(open_sqlite(path.to_string())));
                let manager = AsyncDieselConnectionManager::new_with_config(path, config);
                Backend::Sqlite(build_pool(manager, pool_size, timeout)?)
            }
        };
        Ok(Store { pool })
    }

    /// Connections of the pool: its size, how many are idle, how many requests wait for one.
    pub fn pool_status(&self) -> deadpool::Status {
        match &self.pool {
            Backend::Postgres(pool) => pool.status(),
            Backend::Sqlite(pool) => pool.status(),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// A trivial query: is the database reachable?
    pub async fn ping(&self) -> Result<()> {
        with_conn!(self, |conn| {
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok(())
        })
    }
}

fn build_pool<C>(manager: AsyncDieselConnectionManager<C>, size: usize, timeout: Duration) -> Result<Pool<C>>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager,
{
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|err| Error::Internal(format!("database pool: {err}")))
}

/// Every PostgreSQL connection plans each prepared statement once. By default PostgreSQL plans
/// a statement with array parameters (`= ANY($1)`, `unnest($1)`) anew at every execution, and
/// for our short statements planning cost more than running them (measured: 0.4 ms of planning
/// per group commit against 0.36 ms of execution). Our statements are key lookups, which a
/// generic plan serves as well.
async fn open_postgres(url: String) -> diesel::ConnectionResult<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(&url).await?;
    conn.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Every SQLite connection: WAL so readers never wait for the writer, a busy timeout so writers
/// queue instead of failing, foreign keys on (SQLite's default is off), and full fsync on commit
/// so that an acknowledged message survives a power cut. Per connection, because SQLite keeps
/// these settings per connection, not in the file.
async fn open_sqlite(path: String) -> diesel::ConnectionResult<SyncConnectionWrapper<SqliteConnection>> {
    let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(&path).await?;
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
         PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
    )
    .await
    .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Is this database error a violation of a unique index? (A lost race with a concurrent insert.)
fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(err, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_backend() {
        assert_eq!(DatabaseUrl::parse("sqlite://parley.db").unwrap(), DatabaseUrl::Sqlite("parley.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite:///var/lib/p.db").unwrap(), DatabaseUrl::Sqlite("/var/lib/p.db".into()));
        assert!(matches!(DatabaseUrl::parse("postgres://u@h/db").unwrap(), DatabaseUrl::Postgres(_)));
        assert!(DatabaseUrl::parse("mysql://u@h/db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
