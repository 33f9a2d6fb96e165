//! Queries on `users`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::UserRow;
use super::schema::{members, users};
use super::{Store, is_unique_violation, with_conn};
use crate::error::{Error, Result};
use crate::types::{Timestamp, UserId};

diesel::define_sql_function! {
    /// SQL `lower()`, the same on both backends (for ASCII, which is all a username holds).
    fn lower(text: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

impl Store {
    /// Inserts a new user; `Conflict` when the username is taken.
    pub async fn create_user(&self, user: &UserRow) -> Result<()> {
        with_conn!(self, |conn| {
            match diesel::insert_into(users::table).values(user).execute(conn).await {
                Ok(_) => Ok(()),
                Err(err) if is_unique_violation(&err) => Err(Error::Conflict("username is taken".into())),
                Err(err) => Err(err.into()),
            }
        })
    }

    pub async fn user(&self, id: UserId) -> Result<Option<UserRow>> {
        with_conn!(self, |conn| {
            Ok(users::table.find(id).select(UserRow::as_select()).first(conn).await.optional()?)
        })
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>> {
        with_conn!(self, |conn| {
            Ok(users::table
                .filter(users::username.eq(username))
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// The users among `ids` that exist, in no particular order.
    pub async fn users(&self, ids: &[UserId]) -> Result<Vec<UserRow>> {
        with_conn!(self, |conn| {
            Ok(users::table.filter(users::id.eq_any(ids)).select(UserRow::as_select()).load(conn).await?)
        })
    }

    /// The user of a valid token, created on first use when an identity system issued it
    /// (PROTOCOL.md §1): named from the token's `name`, with the id as username (36 characters,
    /// so it can never collide with a registered username, which has at most 32).
    pub async fn ensure_user(&self, id: UserId, name: Option<&str>) -> Result<UserRow> {
        if let Some(user) = self.user(id).await? {
            return Ok(user);
        }
        let row = UserRow::new(id, id.to_string(), name.map_or_else(|| id.to_string(), str::to_string));
        with_conn!(self, |conn| {
            // Two first requests at once: the second insert does nothing and both read the row.
            diesel::insert_into(users::table).values(&row).on_conflict_do_nothing().execute(conn).await?;
            Ok(users::table.find(id).select(UserRow::as_select()).first(conn).await?)
        })
    }

    /// The user's sign-out-everywhere time: `None` when there is no such user, `Some(None)`
    /// when none of their tokens was ever revoked.
    pub async fn tokens_valid_after(&self, id: UserId) -> Result<Option<Option<Timestamp>>> {
        with_conn!(self, |conn| {
            Ok(users::table.find(id).select(users::tokens_valid_after).first(conn).await.optional()?)
        })
    }

    /// Revokes every token of `id` issued before `at`. `NotFound` when there is no such user.
    pub async fn set_tokens_valid_after(&self, id: UserId, at: Timestamp) -> Result<()> {
        with_conn!(self, |conn| {
            let updated =
                diesel::update(users::table.find(id)).set(users::tokens_valid_after.eq(at)).execute(conn).await?;
            if updated == 0 { Err(Error::NotFound("no such user".into())) } else { Ok(()) }
        })
    }

    /// Directory search: `query` anywhere in the username or display name, case-insensitive;
    /// among `among` only, when given (the people one shares a conversation with).
    pub async fn search_users(&self, query: &str, limit: i64, among: Option<&[UserId]>) -> Result<Vec<UserRow>> {
        let pattern = format!("%{}%", escape_like(&query.to_lowercase()));
        with_conn!(self, |conn| {
            let mut found = users::table.filter(users::id.ne(UserId::SYSTEM)).into_boxed();
            if let Some(among) = among {
                found = found.filter(users::id.eq_any(among));
            }
            Ok(found
                .filter(
                    lower(users::username)
                        .like(&pattern)
                        .escape('\\')
                        .or(lower(users::display_name).like(&pattern).escape('\\')),
                )
                .order(users::username.asc())
                .limit(limit)
                .select(UserRow::as_select())
                .load(conn)
                .await?)
        })
    }

    /// The user the host knows as `external_id`.
    pub async fn user_by_external_id(&self, external_id: &str) -> Result<Option<UserRow>> {
        with_conn!(self, |conn| {
            Ok(users::table
                .filter(users::external_id.eq(external_id))
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// The users the host knows by these ids, in no particular order.
    pub async fn users_by_external_ids(&self, external_ids: &[String]) -> Result<Vec<UserRow>> {
        with_conn!(self, |conn| {
            Ok(users::table
                .filter(users::external_id.eq_any(external_ids))
                .select(UserRow::as_select())
                .load(conn)
                .await?)
        })
    }

    /// A host's token names `external_id`: its user's id and sign-out-everywhere time (one
    /// indexed lookup per request, as for Parley's own tokens), the user made on first use.
    pub async fn external_user_tokens(
        &self,
        external_id: &str,
        name: Option<&str>,
    ) -> Result<(UserId, Option<Timestamp>)> {
        let found = with_conn!(self, |conn| {
            Ok::<_, Error>(
                users::table
                    .filter(users::external_id.eq(external_id))
                    .select((users::id, users::tokens_valid_after))
                    .first(conn)
                    .await
                    .optional()?,
            )
        })?;
        match found {
            Some(found) => Ok(found),
            None => {
                let (row, _) = self.upsert_external_user(external_id, ExternalProfile::named(name)).await?;
                Ok((row.id, None))
            }
        }
    }

    /// Creates the user the host knows as `external_id`, or updates what `profile` gives of it.
    /// Says whether it was created. Safe under concurrent calls: the unique `external_id` lets
    /// one insert win.
    pub async fn upsert_external_user(&self, external_id: &str, profile: ExternalProfile) -> Result<(UserRow, bool)> {
        let id = UserId(uuid::Uuid::new_v4());
        let row = UserRow {
            external_id: Some(external_id.to_string()),
            avatar_url: profile.avatar_url.clone().flatten(),
            metadata: profile.metadata.clone().unwrap_or_else(|| "{}".into()),
            ..UserRow::new(id, id.to_string(), profile.display_name.clone().unwrap_or_else(|| external_id.to_string()))
        };
        with_conn!(self, |conn| {
            let inserted =
                diesel::insert_into(users::table).values(&row).on_conflict_do_nothing().execute(conn).await?;
            let changes = Changes {
                display_name: profile.display_name.as_deref(),
                avatar_url: profile.avatar_url.as_ref().map(Option::as_deref),
                metadata: profile.metadata.as_deref(),
            };
            let anything = changes.display_name.is_some() || changes.avatar_url.is_some() || changes.metadata.is_some();
            if inserted == 0 && anything {
                diesel::update(users::table.filter(users::external_id.eq(external_id)))
                    .set(&changes)
                    .execute(conn)
                    .await?;
            }
            let stored = users::table
                .filter(users::external_id.eq(external_id))
                .select(UserRow::as_select())
                .first(conn)
                .await?;
            Ok((stored, inserted == 1))
        })
    }

    pub async fn set_last_seen(&self, id: UserId, at: Timestamp) -> Result<()> {
        with_conn!(self, |conn| {
            diesel::update(users::table.find(id)).set(users::last_seen_at.eq(at)).execute(conn).await?;
            Ok(())
        })
    }

    /// Everyone who shares a conversation with `user`: the audience of their presence.
    pub async fn contacts(&self, user: UserId) -> Result<Vec<UserId>> {
        let (mine, theirs) = diesel::alias!(members as mine, members as theirs);
        with_conn!(self, |conn| {
            Ok(theirs
                .inner_join(mine.on(mine.field(members::conversation_id).eq(theirs.field(members::conversation_id))))
                .filter(mine.field(members::user_id).eq(user))
                .filter(theirs.field(members::user_id).ne(user))
                .select(theirs.field(members::user_id))
                .distinct()
                .load(conn)
                .await?)
        })
    }
}

/// What the host says of one of its users; `None` leaves a field as it is (`avatar_url:
/// Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct ExternalProfile {
    pub display_name: Option<String>,
    pub avatar_url: Option<Option<String>>,
    /// JSON, checked (`rules::metadata`).
    pub metadata: Option<String>,
}

/// The columns an [`ExternalProfile`] changes (`None`: left as they are).
#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct Changes<'a> {
    display_name: Option<&'a str>,
    avatar_url: Option<Option<&'a str>>,
    metadata: Option<&'a str>,
}

impl ExternalProfile {
    fn named(name: Option<&str>) -> Self {
        ExternalProfile { display_name: name.map(str::to_string), ..Default::default() }
    }
}

/// Escapes LIKE's wildcards so that a search for "50%" finds "50%".
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
