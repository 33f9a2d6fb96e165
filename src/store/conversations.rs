//! Queries on `conversations` and `members`: creating conversations, loading them as the wire
//! `Conversation` for one viewer, the conversation list, unread counts and read markers.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::models::{ConversationRow, MemberRow};
use super::schema::{conversations, members, messages, users};
use super::{Store, with_conn};
use crate::error::{Error, Result};
use serde_json::value::RawValue;

use crate::protocol::{Context, Conversation, ConversationKind, Member, Message, Observer, Role};
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

/// The key that makes a direct conversation unique per pair, whoever creates it, and per
/// business object when it has one (one conversation per appointment for the same two people).
/// The context follows the fixed-length pair as JSON, so that no context can forge another's key.
fn direct_key(a: UserId, b: UserId, context: Option<&Context>) -> String {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    match context {
        None => format!("{low}:{high}"),
        Some(c) => format!("{low}:{high}/{}", serde_json::json!([c.kind, c.id])),
    }
}

/// What a new conversation may start with besides its members: its business object, when that
/// ends, the host's metadata (JSON, checked), and observers (the service's).
#[derive(Debug, Clone, Default)]
pub struct Founding {
    pub context: Option<Context>,
    pub context_ends_at: Option<Timestamp>,
    pub metadata: Option<String>,
    pub observers: Vec<UserId>,
}

impl Founding {
    /// `row` with these, and the member rows of `observers`.
    fn apply(&self, mut row: ConversationRow) -> (ConversationRow, Vec<MemberRow>) {
        if let Some(context) = &self.context {
            row.context_type = Some(context.kind.clone());
            row.context_id = Some(context.id.clone());
        }
        row.context_ends_at = self.context_ends_at;
        if let Some(metadata) = &self.metadata {
            row.metadata = metadata.clone();
        }
        let observers = self.observers.iter().map(|&user| MemberRow::new(&row, user, Role::Observer)).collect();
        (row, observers)
    }
}

/// What the host changes of a conversation (`None`: left as it is).
#[derive(AsChangeset)]
#[diesel(table_name = conversations)]
struct Changes<'a> {
    metadata: Option<&'a str>,
    context_ends_at: Option<Option<Timestamp>>,
}

/// Which of a viewer's conversations a list shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub context_type: Option<String>,
    pub context_id: Option<String>,
    /// For the service: the conversations of this user only (any, for a user's own list).
    pub member: Option<UserId>,
    pub include_hidden: bool,
}

impl Store {
    /// Gets or creates the direct conversation of `a` and `b`; `true` when it was created now.
    /// Safe under concurrent calls from both sides: the unique `direct_key` lets one insert win,
    /// and the other reads the winner's row.
    pub async fn create_direct(&self, a: UserId, b: UserId, founding: &Founding) -> Result<(ConversationId, bool)> {
        let key = direct_key(a, b, founding.context.as_ref());
        let (row, observers) = founding.apply(ConversationRow::new(ConversationKind::Direct, None, Some(key.clone())));
        let members: Vec<MemberRow> =
            [a, b].map(|user| MemberRow::new(&row, user, Role::Member)).into_iter().chain(observers).collect();
        let created = self.insert_conversation(&row, &members).await?;
        let id = with_conn!(self, |conn| {
            Ok::<_, Error>(
                conversations::table
                    .filter(conversations::direct_key.eq(&key))
                    .select(conversations::id)
                    .first(conn)
                    .await?,
            )
        })?;
        Ok((id, created))
    }

    /// Creates a group owned by `owner` with the given other members; `true` when it was created
    /// now. A group with a context is unique per context: the existing one is answered instead
    /// (a partial unique index lets one of concurrent creations win).
    pub async fn create_group(
        &self,
        owner: UserId,
        title: &str,
        others: &[UserId],
        founding: &Founding,
    ) -> Result<(ConversationId, bool)> {
        let (row, observers) =
            founding.apply(ConversationRow::new(ConversationKind::Group, Some(title.to_string()), None));
        let mut rows = vec![MemberRow::new(&row, owner, Role::Owner)];
        rows.extend(others.iter().filter(|&&u| u != owner).map(|&user| MemberRow::new(&row, user, Role::Member)));
        rows.extend(observers.into_iter().filter(|o| !rows.iter().any(|m| m.user_id == o.user_id)).collect::<Vec<_>>());
        if self.insert_conversation(&row, &rows).await? {
            return Ok((row.id, true));
        }
        with_conn!(self, |conn| {
            let id = conversations::table
                .filter(conversations::kind.eq(ConversationKind::Group))
                .filter(conversations::context_type.eq(&row.context_type))
                .filter(conversations::context_id.eq(&row.context_id))
                .select(conversations::id)
                .first(conn)
                .await?;
            Ok((id, false))
        })
    }

    /// Inserts `row` with its members, unless a conversation with its unique key (a direct
    /// pair's, or a group's context) exists: says whether it did.
    async fn insert_conversation(&self, row: &ConversationRow, members: &[MemberRow]) -> Result<bool> {
        with_conn!(self, |conn| {
            conn.transaction::<_, Error, _>(async |conn| {
                let inserted = diesel::insert_into(conversations::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                // One statement per row: diesel-async cannot batch-insert on SQLite.
                if inserted == 1 {
                    for member in members {
                        diesel::insert_into(members::table).values(member).execute(conn).await?;
                    }
                }
                Ok(inserted == 1)
            })
            .await
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

    /// May `user` add to `id` (upload a file for it)? A member, not an observer, of an open
    /// conversation; else the error a send would get.
    pub async fn may_post(&self, id: ConversationId, user: UserId) -> Result<()> {
        let found: Option<(Role, Option<Timestamp>)> = with_conn!(self, |conn| {
            Ok::<_, Error>(
                members::table
                    .inner_join(conversations::table)
                    .filter(members::conversation_id.eq(id))
                    .filter(members::user_id.eq(user))
                    .select((members::role, conversations::archived_at))
                    .first(conn)
                    .await
                    .optional()?,
            )
        })?;
        match found {
            None => Err(Error::no_conversation()),
            Some((Role::Observer, _)) => Err(Error::Forbidden("observers cannot post".into())),
            Some((_, Some(_))) => Err(Error::archived()),
            Some(_) => Ok(()),
        }
    }

    /// The conversation as `viewer` sees it, or `None` when it does not exist or `viewer` is not
    /// a member (the two are the same answer to a client).
    pub async fn conversation_for(&self, viewer: UserId, id: ConversationId) -> Result<Option<Conversation>> {
        let mut found = self.conversations_for(viewer, &[id]).await?;
        Ok(found.pop().filter(|c| c.audience().any(|user| user == viewer)))
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
            let member_rows: Vec<(ConversationId, Member, Option<Seq>)> = members::table
                .inner_join(users::table)
                .filter(members::conversation_id.eq_any(ids))
                .order((members::joined_at.asc(), members::user_id.asc()))
                .select((
                    members::conversation_id,
                    (members::user_id, users::username, users::display_name, members::role, members::last_read_seq),
                    users::avatar_url,
                    members::hidden_seq,
                ))
                .load::<(ConversationId, (UserId, String, String, Role, Seq), Option<String>, Option<Seq>)>(conn)
                .await?
                .into_iter()
                .map(|(conversation, (user_id, username, display_name, role, last_read_seq), avatar_url, hidden)| {
                    (conversation, Member { user_id, username, display_name, role, last_read_seq, avatar_url }, hidden)
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
        let mut hidden_at: HashMap<ConversationId, Seq> = HashMap::new();
        for (conversation, member, hidden) in member_rows {
            if let Some(hidden) = hidden.filter(|_| member.user_id == viewer) {
                hidden_at.insert(conversation, hidden);
            }
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
                let hidden = hidden_at.get(&row.id).is_some_and(|hidden| row.last_seq <= *hidden);
                assemble(row, members, last_message, viewer, hidden)
            })
            .collect())
    }

    /// A page of `viewer`'s conversations, newest activity first, after `before` if given.
    /// (`viewer` is the system user for the service, which sees every conversation.)
    pub async fn list_conversations(
        &self,
        viewer: UserId,
        limit: i64,
        before: Option<ListCursor>,
        filter: &ListFilter,
    ) -> Result<ConversationPage> {
        let member = if viewer == UserId::SYSTEM { filter.member } else { Some(viewer) };
        let mut keys: Vec<(ConversationId, Timestamp)> = with_conn!(self, |conn| {
            // Joined to the member's row, if the list is one member's (the service may list
            // every conversation: then nobody's row is there to join).
            let joined = members::conversation_id
                .eq(conversations::id)
                .and(members::user_id.eq(member.unwrap_or(UserId::SYSTEM)));
            let mut query = conversations::table
                .left_join(members::table.on(joined))
                .select((conversations::id, conversations::updated_at))
                .order((conversations::updated_at.desc(), conversations::id.desc()))
                .limit(limit + 1)
                .into_boxed();
            if member.is_some() {
                query = query.filter(members::user_id.is_not_null());
                if !filter.include_hidden {
                    // Hidden until a message after the one it was hidden at.
                    query = query.filter(
                        members::hidden_seq.is_null().or(members::hidden_seq.lt(conversations::last_seq.nullable())),
                    );
                }
            }
            if let Some(kind) = &filter.context_type {
                query = query.filter(conversations::context_type.eq(kind));
            }
            if let Some(id) = &filter.context_id {
                query = query.filter(conversations::context_id.eq(id));
            }
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

    /// Hides the conversation from `user`'s list until its next message, or shows it again.
    /// `false` when `user` is not a member.
    pub async fn set_hidden(&self, id: ConversationId, user: UserId, hidden: bool) -> Result<bool> {
        with_conn!(self, |conn| {
            let at = conversations::table.find(id).select(conversations::last_seq).single_value();
            let target = members::table.find((id, user));
            let updated = if hidden {
                diesel::update(target).set(members::hidden_seq.eq(at)).execute(conn).await?
            } else {
                diesel::update(target).set(members::hidden_seq.eq(None::<Seq>)).execute(conn).await?
            };
            Ok(updated == 1)
        })
    }

    /// The host changes a conversation's metadata (checked JSON) and when its context ends;
    /// `None` leaves each as it is. `false` when there is no such conversation.
    pub async fn update_conversation(
        &self,
        id: ConversationId,
        metadata: Option<&str>,
        context_ends_at: Option<Option<Timestamp>>,
    ) -> Result<bool> {
        let changes = Changes { metadata, context_ends_at };
        with_conn!(self, |conn| {
            let target = conversations::table.find(id);
            if metadata.is_none() && context_ends_at.is_none() {
                let found: Option<ConversationId> = target.select(conversations::id).first(conn).await.optional()?;
                return Ok(found.is_some());
            }
            Ok(diesel::update(target).set(&changes).execute(conn).await? == 1)
        })
    }

    /// Open conversations whose context ended before `ended_before`, oldest first, at most
    /// `limit`; a conversation restored since its context ended is left alone.
    pub async fn archive_due(&self, ended_before: Timestamp, limit: i64) -> Result<Vec<ConversationId>> {
        with_conn!(self, |conn| {
            Ok(conversations::table
                .filter(conversations::archived_at.is_null())
                .filter(conversations::context_ends_at.le(ended_before))
                .filter(
                    conversations::restored_at
                        .is_null()
                        .or(conversations::restored_at.nullable().lt(conversations::context_ends_at)),
                )
                .order(conversations::context_ends_at.asc())
                .limit(limit)
                .select(conversations::id)
                .load(conn)
                .await?)
        })
    }

    /// Sets a member's read marker (forwards or backwards: the caller decides which is allowed).
    pub async fn set_read_marker(&self, id: ConversationId, user: UserId, seq: Seq) -> Result<()> {
        with_conn!(self, |conn| {
            diesel::update(members::table.find((id, user))).set(members::last_read_seq.eq(seq)).execute(conn).await?;
            Ok(())
        })
    }
}

fn assemble(
    row: ConversationRow,
    everyone: Vec<Member>,
    last_message: Option<Message>,
    viewer: UserId,
    hidden: bool,
) -> Conversation {
    let read = everyone.iter().find(|m| m.user_id == viewer).map_or(row.last_seq, |m| m.last_read_seq);
    // Observers read without taking part: apart, without their read marker, so that no client
    // counts them in receipts.
    let (observers, members): (Vec<Member>, Vec<Member>) = everyone.into_iter().partition(|m| m.role == Role::Observer);
    let observers = observers
        .into_iter()
        .map(|m| Observer {
            user_id: m.user_id,
            username: m.username,
            display_name: m.display_name,
            role: m.role,
            avatar_url: m.avatar_url,
        })
        .collect();
    let context = match (row.context_type, row.context_id) {
        (Some(kind), Some(id)) => Some(Context { kind, id }),
        _ => None,
    };
    let metadata = (row.metadata != "{}").then(|| RawValue::from_string(row.metadata).ok()).flatten();
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
        context,
        context_ends_at: row.context_ends_at,
        metadata,
        archived_at: row.archived_at,
        observers,
        hidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_key_is_the_same_from_both_sides() {
        let a = UserId(uuid::Uuid::new_v4());
        let b = UserId(uuid::Uuid::new_v4());
        assert_eq!(direct_key(a, b, None), direct_key(b, a, None));
        let visit = Context { kind: "appointment".into(), id: "A-1".into() };
        let other = Context { kind: "appointment".into(), id: "A-2".into() };
        assert_eq!(direct_key(a, b, Some(&visit)), direct_key(b, a, Some(&visit)));
        assert_ne!(direct_key(a, b, Some(&visit)), direct_key(a, b, Some(&other)));
        assert_ne!(direct_key(a, b, Some(&visit)), direct_key(a, b, None));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = ListCursor { updated_at: Timestamp::now(), id: ConversationId::random() };
        assert_eq!(ListCursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(ListCursor::decode("nonsense").is_err());
    }
}
