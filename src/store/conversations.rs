//! Queries on `conversations` and `members`: creating conversations, loading them as the wire
//! `Conversation` for one viewer, the conversation list, unread counts and read markers.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::models::{ConversationRow, MemberRow};
use super::schema::{conversations, members, messages, users};
use super::{Store, with_conn};
use crate::error::{Error, Result};
use crate::protocol::{Conversation, ConversationKind, Member, Message, Role};
use crate::types::{ConversationId, Seq, Timestamp, UserId};

/// One page of a user's conversation list, newest activity first.
pub struct ConversationPage {
    pub conversations: Vec<Conversation>,
    pub next: Option<ListCursor>,
}

/// Where the next page of a conversation list starts: after this (activity time, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub updated_at: Timestamp,
    pub id: ConversationId,
}

impl ListCursor {
    /// Opaque to clients: `<microseconds>_<id>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.updated_at.micros(), self.id)
    }

    pub fn decode(text: &str) -> Result<Self> {
        let bad = || Error::bad_request("before is not a cursor from a previous page's next");
        let (micros, id) = text.split_once('_').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        // Within what both databases can store (years 1970 to 9999), like every real cursor.
        if !(0..=253_402_300_799_999_999).contains(&micros) {
            return Err(bad());
        }
        Ok(ListCursor { updated_at: Timestamp::from_micros(micros), id: id.parse().map_err(|_| bad())? })
    }
}

/// The key that makes a direct conversation unique per pair, whoever creates it.
fn direct_key(a: UserId, b: UserId) -> String {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

impl Store {
    /// Gets or creates the direct conversation of `a` and `b`; `true` when it was created now.
    /// Safe under concurrent calls from both sides: the unique `direct_key` lets one insert win,
    /// and the other reads the winner's row.
    pub async fn create_direct(&self, a: UserId, b: UserId) -> Result<(ConversationId, bool)> {
        let key = direct_key(a, b);
        let row = ConversationRow::new(ConversationKind::Direct, None, Some(key.clone()));
        let members = [a, b].map(|user| MemberRow::new(&row, user, Role::Member));
        with_conn!(self, |conn| {
            let created = conn
                .transaction::<_, Error, _>(async |conn| {
                    let inserted = diesel::insert_into(conversations::table)
                        .values(&row)
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                    if inserted == 1 {
                        for member in &members {
                            diesel::insert_into(members::table).values(member).execute(conn).await?;
                        }
                    }
                    Ok(inserted == 1)
                })
                .await?;
            let id = conversations::table
                .filter(conversations::direct_key.eq(&key))
                .select(conversations::id)
                .first(conn)
                .await?;
            Ok((id, created))
        })
    }

    /// Creates a group owned by `owner` with the given other members.
    pub async fn create_group(&self, owner: UserId, title: &str, others: &[UserId]) -> Result<ConversationId> {
        let row = ConversationRow::new(ConversationKind::Group, Some(title.to_string()), None);
        let mut rows = vec![MemberRow::new(&row, owner, Role::Owner)];
        rows.extend(others.iter().filter(|&&u| u != owner).map(|&user| MemberRow::new(&row, user, Role::Member)));
        with_conn!(self, |conn| {
            conn.transaction::<_, Error, _>(async |conn| {
                diesel::insert_into(conversations::table).values(&row).execute(conn).await?;
                // One statement per row: diesel-async cannot batch-insert on SQLite.
                for member in &rows {
                    diesel::insert_into(members::table).values(member).execute(conn).await?;
                }
                Ok(())
            })
            .await?;
            Ok(row.id)
        })
    }

    pub async fn conversation_row(&self, id: ConversationId) -> Result<Option<ConversationRow>> {
        with_conn!(self, |conn| {
            Ok(conversations::table.find(id).select(ConversationRow::as_select()).first(conn).await.optional()?)
        })
    }

    /// The members of a conversation, in the order they joined.
    pub async fn members(&self, id: ConversationId) -> Result<Vec<MemberRow>> {
        with_conn!(self, |conn| {
            Ok(members::table
                .filter(members::conversation_id.eq(id))
                .order((members::joined_at.asc(), members::user_id.asc()))
                .select(MemberRow::as_select())
                .load(conn)
                .await?)
        })
    }

    pub async fn is_member(&self, id: ConversationId, user: UserId) -> Result<bool> {
        with_conn!(self, |conn| {
            let found: Option<UserId> =
                members::table.find((id, user)).select(members::user_id).first(conn).await.optional()?;
            Ok(found.is_some())
        })
    }

    /// The conversation as `viewer` sees it, or `None` when it does not exist or `viewer` is not
    /// a member (the two are the same answer to a client).
    pub async fn conversation_for(&self, viewer: UserId, id: ConversationId) -> Result<Option<Conversation>> {
        let mut found = self.conversations_for(viewer, &[id]).await?;
        Ok(found.pop().filter(|c| c.members.iter().any(|m| m.user_id == viewer)))
    }

    /// Several conversations as `viewer` sees them (unread counts are the viewer's), in the
    /// order of `ids`; ids that do not exist are left out. Three queries whatever the count.
    pub async fn conversations_for(&self, viewer: UserId, ids: &[ConversationId]) -> Result<Vec<Conversation>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (rows, member_rows, last_messages) = with_conn!(self, |conn| {
            let rows: Vec<ConversationRow> = conversations::table
                .filter(conversations::id.eq_any(ids))
                .select(ConversationRow::as_select())
                .load(conn)
                .await?;
            let member_rows: Vec<(ConversationId, Member)> = members::table
                .inner_join(users::table)
                .filter(members::conversation_id.eq_any(ids))
                .order((members::joined_at.asc(), members::user_id.asc()))
                .select((
                    members::conversation_id,
                    (members::user_id, users::username, users::display_name, members::role, members::last_read_seq),
                ))
                .load::<(ConversationId, (UserId, String, String, Role, Seq))>(conn)
                .await?
                .into_iter()
                .map(|(conversation, (user_id, username, display_name, role, last_read_seq))| {
                    (conversation, Member { user_id, username, display_name, role, last_read_seq })
                })
                .collect();
            let last_messages: Vec<Message> =
                messages::table
                    .inner_join(conversations::table.on(
                        messages::conversation_id.eq(conversations::id).and(messages::seq.eq(conversations::last_seq)),
                    ))
                    .filter(conversations::id.eq_any(ids))
                    .select(Message::as_select())
                    .load(conn)
                    .await?;
            Ok::<_, Error>((rows, member_rows, last_messages))
        })?;

        let mut members_of: HashMap<ConversationId, Vec<Member>> = HashMap::new();
        for (conversation, member) in member_rows {
            members_of.entry(conversation).or_default().push(member);
        }
        let mut last_of: HashMap<ConversationId, Message> =
            last_messages.into_iter().map(|m| (m.conversation_id, m)).collect();
        let mut by_id: HashMap<ConversationId, ConversationRow> = rows.into_iter().map(|r| (r.id, r)).collect();
        Ok(ids
            .iter()
            .filter_map(|id| by_id.remove(id))
            .map(|row| {
                let members = members_of.remove(&row.id).unwrap_or_default();
                let last_message = last_of.remove(&row.id);
                assemble(row, members, last_message, viewer)
            })
            .collect())
    }

    /// A page of `viewer`'s conversations, newest activity first, after `before` if given.
    pub async fn list_conversations(
        &self,
        viewer: UserId,
        limit: i64,
        before: Option<ListCursor>,
    ) -> Result<ConversationPage> {
        let mut keys: Vec<(ConversationId, Timestamp)> = with_conn!(self, |conn| {
            let mut query = conversations::table
                .inner_join(members::table)
                .filter(members::user_id.eq(viewer))
                .select((conversations::id, conversations::updated_at))
                .order((conversations::updated_at.desc(), conversations::id.desc()))
                .limit(limit + 1)
                .into_boxed();
            if let Some(cursor) = before {
                query = query.filter(
                    conversations::updated_at
                        .lt(cursor.updated_at)
                        .or(conversations::updated_at.eq(cursor.updated_at).and(conversations::id.lt(cursor.id))),
                );
            }
            Ok::<_, Error>(query.load(conn).await?)
        })?;
        let has_more = keys.len() as i64 > limit;
        keys.truncate(limit as usize);
        let next = if has_more { keys.last().map(|&(id, updated_at)| ListCursor { updated_at, id }) } else { None };
        let ids: Vec<ConversationId> = keys.into_iter().map(|(id, _)| id).collect();
        let conversations = self.conversations_for(viewer, &ids).await?;
        Ok(ConversationPage { conversations, next })
    }

    /// The number of unread messages over all of `user`'s conversations.
    pub async fn total_unread(&self, user: UserId) -> Result<i64> {
        Ok(self.unread_totals(&[user]).await?.get(&user).copied().unwrap_or(0))
    }

    /// Total unread counts for several users at once (one query, whatever the count). Users
    /// with nothing unread are absent from the map.
    pub async fn unread_totals(&self, users: &[UserId]) -> Result<HashMap<UserId, i64>> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        // Summed here rather than in SQL: PostgreSQL's SUM(bigint) is NUMERIC, and only
        // conversations with something unread come back.
        let rows: Vec<(UserId, i64)> = with_conn!(self, |conn| {
            Ok::<_, Error>(
                members::table
                    .inner_join(conversations::table)
                    .filter(members::user_id.eq_any(users))
                    .filter(conversations::last_seq.gt(members::last_read_seq))
                    .select((members::user_id, conversations::last_seq - members::last_read_seq))
                    .load(conn)
                    .await?,
            )
        })?;
        let mut totals = HashMap::new();
        for (user, unread) in rows {
            *totals.entry(user).or_insert(0) += unread;
        }
        Ok(totals)
    }

    /// Sets a member's read marker (forwards or backwards: the caller decides which is allowed).
    pub async fn set_read_marker(&self, id: ConversationId, user: UserId, seq: Seq) -> Result<()> {
        with_conn!(self, |conn| {
            diesel::update(members::table.find((id, user))).set(members::last_read_seq.eq(seq)).execute(conn).await?;
            Ok(())
        })
    }
}

fn assemble(row: ConversationRow, members: Vec<Member>, last_message: Option<Message>, viewer: UserId) -> Conversation {
    let read = members.iter().find(|m| m.user_id == viewer).map_or(row.last_seq, |m| m.last_read_seq);
    Conversation {
        id: row.id,
        kind: row.kind,
        title: row.title,
        members,
        last_seq: row.last_seq,
        last_message,
        unread_count: row.last_seq.since(read),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_key_is_the_same_from_both_sides() {
        let a = UserId(uuid::Uuid::new_v4());
        let b = UserId(uuid::Uuid::new_v4());
        assert_eq!(direct_key(a, b), direct_key(b, a));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = ListCursor { updated_at: Timestamp::now(), id: ConversationId::random() };
        assert_eq!(ListCursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(ListCursor::decode("nonsense").is_err());
    }
}
