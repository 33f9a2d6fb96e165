//! Ids, positions, counts and timestamps: the value types every layer shares.
//!
//! Each id is a newtype over a UUID so that a user id can never be passed where a conversation id
//! is wanted; for the same reason a position in a conversation is a [`Seq`], not a bare `i64`
//! beside counts and limits, and a member's two unread counts travel as one [`Unread`]. Each
//! stored type here is also a diesel type that works on both backends (diesel's own `uuid`
//! support is PostgreSQL-only, so each concept has its SQL type here): a native `uuid` /
//! `timestamptz` on PostgreSQL, a 16-byte BLOB / an integer of microseconds on SQLite (integers
//! sort correctly and compare equal after a round trip). A `Seq` is a `BIGINT` on both.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::backend::Backend;
use diesel::deserialize::FromSqlRow;
use diesel::deserialize::{self, FromSql};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::BigInt;
use diesel::sqlite::{Sqlite, SqliteValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The SQL types behind [`Timestamp`] and the id newtypes, one per concept for both backends.
pub mod sql {
    use diesel::sql_types::SqlType;

    /// `uuid` on PostgreSQL, a 16-byte `BLOB` on SQLite.
    #[derive(SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug, Default)]
    #[diesel(postgres_type(oid = 2950, array_oid = 2951))]
    #[diesel(sqlite_type(name = "Binary"))]
    pub struct Uuid;

    /// `timestamptz` on PostgreSQL, microseconds since the Unix epoch (`BIGINT`) on SQLite.
    #[derive(SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug, Default)]
    #[diesel(postgres_type(oid = 1184, array_oid = 1185))]
    #[diesel(sqlite_type(name = "Long"))]
    pub struct TimePoint;
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, AsExpression, FromSqlRow,
        )]
        #[serde(transparent)]
        #[diesel(sql_type = sql::Uuid)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl ToSql<sql::Uuid, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                std::io::Write::write_all(out, self.0.as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl FromSql<sql::Uuid, Pg> for $name {
            fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
                Ok($name(Uuid::from_slice(value.as_bytes())?))
            }
        }

        impl ToSql<sql::Uuid, Sqlite> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                out.set_value(&self.0.as_bytes()[..]);
                Ok(IsNull::No)
            }
        }

        impl FromSql<sql::Uuid, Sqlite> for $name {
            fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
                let bytes = <Vec<u8> as FromSql<diesel::sql_types::Binary, Sqlite>>::from_sql(value)?;
                Ok($name(Uuid::from_slice(&bytes)?))
            }
        }
    };
}

id_type!(
    /// A user's id: the `sub` claim of their tokens.
    UserId
);
id_type!(
    /// A conversation's id (UUID v4).
    ConversationId
);
id_type!(
    /// A message's id (UUID v7, so ids sort by creation time).
    MessageId
);
id_type!(
    /// An attachment's id (UUID v4: unguessable, though a guess alone opens nothing).
    AttachmentId
);

impl UserId {
    /// The system user: the sender of the messages the service posts, and of Parley's own
    /// system messages when the service or the archival sweep acted. Made by the migration that
    /// brought the service API; never a member of anything.
    pub const SYSTEM: UserId = UserId(Uuid::nil());
}

impl ConversationId {
    pub fn random() -> Self {
        ConversationId(Uuid::new_v4())
    }
}

impl AttachmentId {
    pub fn random() -> Self {
        AttachmentId(Uuid::new_v4())
    }
}

impl MessageId {
    /// A fresh time-ordered id.
    pub fn now() -> Self {
        MessageId(Uuid::now_v7())
    }
}

/// A WebSocket session's id. Never stored, so it needs no SQL mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl SessionId {
    pub fn random() -> Self {
        SessionId(Uuid::new_v4())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message's position in its conversation: 1 for the first message, one more for each next
/// one, assigned by the database in the committing transaction. Read markers are positions
/// too: a member has read everything up to and including theirs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AsExpression, FromSqlRow,
)]
#[serde(transparent)]
#[diesel(sql_type = BigInt)]
pub struct Seq(pub i64);

impl Seq {
    /// Before the first message: an empty conversation's last `seq`, a marker with nothing read.
    pub const ZERO: Seq = Seq(0);

    /// The position after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// The position before this one (never below [`Seq::ZERO`]).
    pub fn prev(self) -> Seq {
        Seq((self.0 - 1).max(0))
    }

    /// How many positions follow `earlier` up to this one (none if `earlier` is not before it):
    /// with the last `seq` and a read marker, the unread count.
    pub fn since(self, earlier: Seq) -> i64 {
        (self.0 - earlier.0).max(0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<DB: Backend> ToSql<BigInt, DB> for Seq
where
    i64: ToSql<BigInt, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.to_sql(out)
    }
}

impl<DB: Backend> FromSql<BigInt, DB> for Seq
where
    i64: FromSql<BigInt, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        i64::from_sql(value).map(Seq)
    }
}

/// A member's unread messages: in one conversation, and over all their conversations. The two
/// travel together and by name, so that they cannot be swapped; the wire spells them
/// `unread_count` and `total_unread`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unread {
    /// In the one conversation.
    pub count: i64,
    /// Over all the member's conversations, that one included.
    pub total: i64,
}

/// A point in time, kept to the microsecond (what both databases store) and written on the wire
/// as RFC 3339 UTC with milliseconds (PROTOCOL.md, conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = sql::TimePoint)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Now, truncated to microseconds so that a value read back from either database is equal.
    pub fn now() -> Self {
        Self::from_micros(Utc::now().timestamp_micros())
    }

    pub fn from_micros(micros: i64) -> Self {
        Timestamp(DateTime::from_timestamp_micros(micros).unwrap_or_default())
    }

    pub fn micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// This time moved back by `by` (an archival delay).
    pub fn minus(&self, by: std::time::Duration) -> Self {
        Self::from_micros(self.micros().saturating_sub(i64::try_from(by.as_micros()).unwrap_or(i64::MAX)))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text).map(|t| Timestamp(t.with_timezone(&Utc))).map_err(serde::de::Error::custom)
    }
}

impl ToSql<sql::TimePoint, Pg> for Timestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<diesel::sql_types::Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<sql::TimePoint, Pg> for Timestamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(value).map(Timestamp)
    }
}

impl ToSql<sql::TimePoint, Sqlite> for Timestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.micros());
        Ok(IsNull::No)
    }
}

impl FromSql<sql::TimePoint, Sqlite> for Timestamp {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <i64 as FromSql<diesel::sql_types::BigInt, Sqlite>>::from_sql(value).map(Timestamp::from_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_is_a_bare_number_on_the_wire() {
        assert_eq!(serde_json::to_string(&Seq(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<Seq>("7").unwrap(), Seq(7));
        assert!(serde_json::from_str::<Seq>("\"7\"").is_err());
        assert_eq!(Seq(42).to_string(), "42");
    }

    #[test]
    fn positions_step_by_one_and_count_what_follows_a_marker() {
        assert_eq!(Seq::ZERO.next(), Seq(1));
        assert_eq!(Seq(5).prev(), Seq(4));
        assert_eq!(Seq(1).prev(), Seq::ZERO);
        assert_eq!(Seq::ZERO.prev(), Seq::ZERO, "nothing comes before the start");
        assert_eq!(Seq(10).since(Seq(4)), 6);
        assert_eq!(Seq(4).since(Seq(10)), 0, "a marker past the end leaves nothing unread");
    }
}
