//! Group commit: plain messages of many conversations appended in one transaction, so that one
//! commit (one fsync) serves them all. [`crate::store::Committer`] gathers the batches.
//!
//! The statements are those of [`Store::append`] with many rows each: each conversation's
//! counter moves by its number of messages (its row lock still serialises appends from any
//! node), one INSERT stores the messages, and each sender's read marker moves to their last one.
//! On PostgreSQL each of these is one statement over arrays (`unnest`) whose text never changes,
//! prepared once per connection, so a batch costs the same few round trips whatever its size.
//! SQLite runs in process, where a statement per row costs microseconds.
//!
//! A `client_id` sent before is not looked up first: its unique index makes the transaction
//! fail, and the caller then appends the messages one by one with [`Store::append`], which
//! answers with the message stored the first time. Retries are rare; a query per batch is not.

use std::collections::{BTreeMap, HashMap};

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Untyped};
use diesel::sqlite::SqliteConnection;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::models::MessageInsert;
use super::schema::{conversations, members, messages};
use super::{Appended, NewMessage, Store, with_conn};
use crate::error::{Error, Result};
use crate::protocol::Message;
use crate::types::{ConversationId, MessageId, Timestamp, UserId, sql};

impl Store {
    /// Appends `batch` (messages without membership changes, of any conversations, each
    /// conversation's in order) in one transaction. A `client_id` already stored answers with
    /// the message stored then, as [`Store::append`] does.
    ///
    /// An error means nothing was committed, and gives the batch back: the database is
    /// unavailable, or one message made the whole transaction fail (a `client_id` stored before,
    /// a race with another node). The caller then appends the messages one by one, which answers
    /// a repeated `client_id` and isolates any culprit.
    pub async fn append_batch(&self, batch: Vec<NewMessage>) -> Result<Vec<Appended>, (Error, Vec<NewMessage>)> {
        debug_assert!(batch.iter().all(|m| m.membership.is_none()));
        let now = Timestamp::now();
        let ids: Vec<MessageId> = batch.iter().map(|_| MessageId::now()).collect();
        let mut counts: BTreeMap<ConversationId, i64> = BTreeMap::new();
        for message in &batch {
            *counts.entry(message.conversation_id).or_default() += 1;
        }
        let counts: Vec<(ConversationId, i64)> = counts.into_iter().collect();
        let committed = self.commit_batch(&batch, &ids, &counts, now).await;
        let seqs = match committed {
            Ok(seqs) => seqs,
            Err(err) => return Err((err, batch)),
        };
        // The bodies move into the answers: a message is not copied on its way.
        Ok(batch
            .into_iter()
            .zip(ids.into_iter().zip(seqs))
            .map(|(m, (id, seq))| Appended {
                message: Message {
                    id,
                    conversation_id: m.conversation_id,
                    seq,
                    sender_id: m.sender,
                    kind: m.kind,
                    body: m.body,
                    client_id: m.client_id,
                    created_at: now,
                },
                duplicate: false,
                new_owner: None,
            })
            .collect())
    }

    /// The transaction of [`Store::append_batch`]; answers the `seq` of each message.
    async fn commit_batch(
        &self,
        batch: &[NewMessage],
        ids: &[MessageId],
        counts: &[(ConversationId, i64)],
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        Ok(with_conn!(self, |conn| {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                let last = conn.advance_counters(counts, now).await?;
                let seqs = number(batch, counts, &last)?;
                let rows: Vec<MessageInsert> = batch
                    .iter()
                    .zip(ids.iter().zip(&seqs))
                    .map(|(m, (id, seq))| insert_row(m, *id, *seq, now))
                    .collect();
                conn.insert_messages(&rows).await?;
                // One's own messages are never unread (PROTOCOL.md §2): each sender's marker
                // moves to their last message of the batch.
                let markers: BTreeMap<(ConversationId, UserId), i64> =
                    batch.iter().zip(&seqs).map(|(m, seq)| ((m.conversation_id, m.sender), *seq)).collect();
                let markers: Vec<_> = markers.into_iter().map(|((c, u), s)| (c, u, s)).collect();
                conn.move_markers(&markers).await?;
                Ok(seqs)
            })
            .await
        })?)
    }
}

/// The `seq` of each message: each conversation's counter moved from `last - count` to `last`,
/// and its messages take the numbers in between in batch order.
fn number(
    batch: &[NewMessage],
    counts: &[(ConversationId, i64)],
    last: &HashMap<ConversationId, i64>,
) -> QueryResult<Vec<i64>> {
    let mut next: HashMap<ConversationId, i64> = HashMap::with_capacity(counts.len());
    for (id, count) in counts {
        // A conversation that is gone has no counter: the batch fails and is retried one by one.
        let last = last.get(id).ok_or(diesel::result::Error::NotFound)?;
        next.insert(*id, last - count + 1);
    }
    Ok(batch
        .iter()
        .map(|m| {
            let seq = next.get_mut(&m.conversation_id).expect("every conversation was counted");
            *seq += 1;
            *seq - 1
        })
        .collect())
}

fn insert_row(m: &NewMessage, id: MessageId, seq: i64, now: Timestamp) -> MessageInsert<'_> {
    MessageInsert {
        id,
        conversation_id: m.conversation_id,
        seq,
        prev_seq: (seq > 1).then(|| seq - 1),
        sender_id: m.sender,
        kind: m.kind,
        body: &m.body,
        client_id: m.client_id.as_deref(),
        created_at: now,
    }
}

/// The two statements of a batch whose SQL differs by backend.
trait BatchSql {
    /// Moves each conversation's `last_seq` on by its count; answers the new values. Rows are
    /// locked in id order (`counts` is sorted), so concurrent batches cannot deadlock.
    async fn advance_counters(
        &mut self,
        counts: &[(ConversationId, i64)],
        now: Timestamp,
    ) -> QueryResult<HashMap<ConversationId, i64>>;

    /// Stores the messages.
    async fn insert_messages(&mut self, rows: &[MessageInsert<'_>]) -> QueryResult<()>;

    /// Sets each (conversation, user)'s read marker to the given `seq`.
    async fn move_markers(&mut self, markers: &[(ConversationId, UserId, i64)]) -> QueryResult<()>;
}

#[derive(QueryableByName)]
struct Counter {
    #[diesel(sql_type = sql::Uuid)]
    id: ConversationId,
    #[diesel(sql_type = BigInt)]
    last_seq: i64,
}

/// A `sql_query` that diesel prepares once per connection and reuses. Diesel never caches a
/// `sql_query` (it cannot know that its text is fixed) and keys its cache by a query's type, so
/// this wrapper vouches for a fixed text and gives each statement a type of its own (`Tag`).
struct Prepared<Tag, Q>(Q, PhantomData<Tag>);

fn prepared<Tag, Q>(query: Q) -> Prepared<Tag, Q> {
    Prepared(query, PhantomData)
}

impl<Tag, Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Tag, Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Tag: 'static, Q> QueryId for Prepared<Tag, Q> {
    type QueryId = Tag;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Tag, Q> Query for Prepared<Tag, Q> {
    type SqlType = Untyped;
}

enum AdvanceCounters {}
enum InsertMessages {}
enum MoveMarkers {}

impl BatchSql for AsyncPgConnection {
    async fn advance_counters(
        &mut self,
        counts: &[(ConversationId, i64)],
        now: Timestamp,
    ) -> QueryResult<HashMap<ConversationId, i64>> {
        let (ids, steps): (Vec<ConversationId>, Vec<i64>) = counts.iter().copied().unzip();
        // `locked` emits its rows in id order and locks each as it goes; the update can reach a
        // row only once `locked` has, so the locks are taken in id order whatever the plan.
        let rows: Vec<Counter> = prepared::<AdvanceCounters, _>(
            diesel::sql_query(
                "WITH locked AS MATERIALIZED (SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE) \
             UPDATE conversations AS c SET last_seq = c.last_seq + v.step, updated_at = $3 \
             FROM unnest($1, $2) AS v(id, step) JOIN locked ON locked.id = v.id \
             WHERE c.id = v.id RETURNING c.id, c.last_seq",
            )
            .bind::<Array<sql::Uuid>, _>(&ids)
            .bind::<Array<BigInt>, _>(&steps)
            .bind::<sql::TimePoint, _>(now),
        )
        .load(self)
        .await?;
        Ok(rows.into_iter().map(|r| (r.id, r.last_seq)).collect())
    }

    async fn insert_messages(&mut self, rows: &[MessageInsert<'_>]) -> QueryResult<()> {
        // A multi-row VALUES has a different text for each size; columns as arrays do not.
        prepared::<InsertMessages, _>(diesel::sql_query(
            "INSERT INTO messages (id, conversation_id, seq, prev_seq, sender_id, kind, body, client_id, created_at) \
             SELECT v.*, $9 FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) \
             AS v(id, conversation_id, seq, prev_seq, sender_id, kind, body, client_id)",
        )
        .bind::<Array<sql::Uuid>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind::<Array<sql::Uuid>, _>(rows.iter().map(|r| r.conversation_id).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.prev_seq).collect::<Vec<_>>())
        .bind::<Array<sql::Uuid>, _>(rows.iter().map(|r| r.sender_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.body).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.client_id).collect::<Vec<_>>())
        // One batch, one timestamp.
        .bind::<sql::TimePoint, _>(rows.first().map_or_else(Timestamp::now, |r| r.created_at)))
        .execute(self)
        .await?;
        Ok(())
    }

    async fn move_markers(&mut self, markers: &[(ConversationId, UserId, i64)]) -> QueryResult<()> {
        let conversations: Vec<ConversationId> = markers.iter().map(|m| m.0).collect();
        let users: Vec<UserId> = markers.iter().map(|m| m.1).collect();
        let seqs: Vec<i64> = markers.iter().map(|m| m.2).collect();
        prepared::<MoveMarkers, _>(
            diesel::sql_query(
                "UPDATE members AS m SET last_read_seq = v.seq \
             FROM unnest($1, $2, $3) AS v(conversation_id, user_id, seq) \
             WHERE m.conversation_id = v.conversation_id AND m.user_id = v.user_id",
            )
            .bind::<Array<sql::Uuid>, _>(&conversations)
            .bind::<Array<sql::Uuid>, _>(&users)
            .bind::<Array<BigInt>, _>(&seqs),
        )
        .execute(self)
        .await?;
        Ok(())
    }
}

impl BatchSql for SyncConnectionWrapper<SqliteConnection> {
    async fn advance_counters(
        &mut self,
        counts: &[(ConversationId, i64)],
        now: Timestamp,
    ) -> QueryResult<HashMap<ConversationId, i64>> {
        let mut last = HashMap::with_capacity(counts.len());
        for (id, step) in counts {
            let seq: Option<i64> = diesel::update(conversations::table.find(id))
                .set((conversations::last_seq.eq(conversations::last_seq + step), conversations::updated_at.eq(now)))
                .returning(conversations::last_seq)
                .get_result(self)
                .await
                .optional()?;
            if let Some(seq) = seq {
                last.insert(*id, seq);
            }
        }
        Ok(last)
    }

    async fn insert_messages(&mut self, rows: &[MessageInsert<'_>]) -> QueryResult<()> {
        // SQLite has no DEFAULT keyword for a multi-row insert with NULLs; one statement per row
        // costs microseconds here.
        for row in rows {
            diesel::insert_into(messages::table).values(row).execute(self).await?;
        }
        Ok(())
    }

    async fn move_markers(&mut self, markers: &[(ConversationId, UserId, i64)]) -> QueryResult<()> {
        for (conversation, user, seq) in markers {
            diesel::update(members::table.find((conversation, user)))
                .set(members::last_read_seq.eq(seq))
                .execute(self)
                .await?;
        }
        Ok(())
    }
}
