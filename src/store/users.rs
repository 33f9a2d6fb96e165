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
        let row = UserRow {
            id,
            username: id.to_string(),
            display_name: name.map_or_else(|| id.to_string(), str::to_string),
            password_hash: None,
            created_at: Timestamp::now(),
            last_seen_at: None,
        };
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

    /// Directory search: `query` anywhere in the username or display name, case-insensitive.
    pub async fn search_users(&self, query: &str, limit: i64) -> Result<Vec<UserRow>> {
        let pattern = format!("%{}%", escape_like(&query.to_lowercase()));
        with_conn!(self, |conn| {
            Ok(users::table
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
