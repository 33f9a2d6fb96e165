//! Ids and timestamps: the value types every layer shares.
//!
//! Each id is a newtype over a UUID so that a user id can never be passed where a conversation id
//! is wanted. Each type here is also a diesel type that works on both backends (diesel's
//! own `uuid` support is PostgreSQL-only, so each concept has its SQL type here):
//! a native `uuid` / `timestamptz` on PostgreSQL, a 16-byte BLOB / an integer of microseconds on
//! SQLite (integers sort correctly and compare equal after a round trip).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::deserialize::FromSqlRow;
use diesel::deserialize::{self, FromSql};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
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

impl ConversationId {
    pub fn random() -> Self {
        ConversationId(Uuid::new_v4())
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
