//! Group commit: plain messages of many conversations appended together, so that one commit
//! (one fsync) serves them all. [`crate::store::Committer`] gathers the batches.
//!
//! What is written is what [`Store::append`] writes, with many rows: each conversation's counter
//! moves by its number of messages (its row lock still serialises appends from any node), the
//! messages are stored with the `seq`s in between, and each sender's read marker moves to their
//! last one. On PostgreSQL that is one statement over arrays (`unnest`), whose text never
//! changes and which is prepared once per connection: a batch is one round trip whatever its
//! size, and needs no BEGIN or COMMIT. SQLite runs in process: a transaction of small
//! statements costs microseconds per row there.
//!
//! A `client_id` sent before is not looked up first: its unique index makes the batch fail, and
//! the caller then appends the messages one by one with [`Store::append`], which answers with
//! the message stored the first time. Retries are rare; a query per batch is not.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Untyped};
use diesel::sqlite::SqliteConnection;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::schema::{conversations, members, messages};
use super::{Appended, NewMessage, Store, with_conn};
use crate::error::{Error, Result};
use crate::protocol::{Message, Role};
use crate::types::{ConversationId, MessageId, Seq, Timestamp, UserId, sql};

impl Store {
    /// Appends `batch` (plain messages: no membership change, no attachment; of any conversations, each
    /// conversation's in order) in one transaction. A `client_id` already stored answers with
    /// the message stored then, as [`Store::append`] does.
    ///
    /// An error means nothing was committed, and gives the batch back: the database is
    /// unavailable, or one message made the whole transaction fail (a `client_id` stored before,
    /// a race with another node). The caller then appends the messages one by one, which answers
    /// a repeated `client_id` and isolates any culprit.
    pub async fn append_batch(&self, batch: Vec<NewMessage>) -> Result<Vec<Appended>, (Error, Vec<NewMessage>)> {
        debug_assert!(batch.iter().all(NewMessage::is_plain));
        let now = Timestamp::now();
        let ids: Vec<MessageId> = batch.iter().map(|_| MessageId::now()).collect();
        let committed = self.commit_batch(&batch, &ids, now).await;
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
                    attachments: Default::default(),
                    system: Default::default(),
                },
                duplicate: false,
                new_owner: None,
                archived: None,
            })
            .collect())
    }

    /// The writes of [`Store::append_batch`], all or nothing; answers the `seq` of each message.
    async fn commit_batch(&self, batch: &[NewMessage], ids: &[MessageId], now: Timestamp) -> Result<Vec<Seq>> {
        Ok(with_conn!(self, |conn| conn.append_rows(batch, ids, now).await)?)
    }
}

/// The `seq` of each message: each conversation's counter moved from `before` by its number of
/// messages, and its messages take the numbers after `before` in batch order.
fn number(batch: &[NewMessage], mut before: HashMap<ConversationId, Seq>) -> Vec<Seq> {
    batch
        .iter()
        .map(|m| {
            let seq = before.get_mut(&m.conversation_id).expect("every conversation was counted");
            *seq = seq.next();
            *seq
        })
        .collect()
}

/// The writes of a batch, by backend.
trait BatchSql {
    /// Stores `batch` (with these ids) and answers the `seq` of each message, or fails whole.
    async fn append_rows(&mut self, batch: &[NewMessage], ids: &[MessageId], now: Timestamp) -> QueryResult<Vec<Seq>>;
}

impl BatchSql for AsyncPgConnection {
    async fn append_rows(&mut self, batch: &[NewMessage], ids: &[MessageId], now: Timestamp) -> QueryResult<Vec<Seq>> {
        // `locked` emits its rows in id order and locks each as it goes, and the counters can be
        // updated only once `locked` has reached them: concurrent batches (from any node) take
        // their locks in the same order, so they cannot deadlock. Messages are numbered in batch
        // order within their conversation, after the counter's old value.
        let rows: Vec<Numbered> = prepared::<AppendRows, _>(diesel::sql_query(
            "WITH batch AS (\
                 SELECT * FROM unnest($1, $2, $3, $4, $5, $6) WITH ORDINALITY \
                 AS b(id, conversation_id, sender_id, kind, body, client_id, n)), \
             steps AS (SELECT conversation_id, count(*) AS step FROM batch GROUP BY conversation_id), \
             locked AS MATERIALIZED (\
                 SELECT id FROM conversations WHERE id IN (SELECT conversation_id FROM steps) ORDER BY id FOR UPDATE), \
             counters AS (\
                 UPDATE conversations AS c SET last_seq = c.last_seq + s.step, updated_at = $7 \
                 FROM steps AS s JOIN locked ON locked.id = s.conversation_id \
                 WHERE c.id = s.conversation_id AND c.archived_at IS NULL RETURNING c.id, c.last_seq, s.step), \
             numbered AS (\
                 SELECT b.*, c.last_seq - c.step + row_number() OVER (PARTITION BY b.conversation_id ORDER BY b.n) AS seq \
                 FROM batch AS b JOIN counters AS c ON c.id = b.conversation_id), \
             inserted AS (\
                 INSERT INTO messages (id, conversation_id, seq, prev_seq, sender_id, kind, body, client_id, created_at) \
                 SELECT id, conversation_id, seq, NULLIF(seq - 1, 0), sender_id, kind, body, client_id, $7 \
                 FROM numbered RETURNING id, seq), \
             marked AS (\
                 UPDATE members AS m SET last_read_seq = x.seq \
                 FROM (SELECT conversation_id, sender_id, max(seq) AS seq FROM numbered GROUP BY 1, 2) AS x \
                 WHERE m.conversation_id = x.conversation_id AND m.user_id = x.sender_id \
                     AND m.role <> 'observer' RETURNING 1) \
             SELECT id, seq, CASE WHEN (SELECT count(*) FROM marked) = $8 THEN 0 \
                 ELSE ('a sender is not a member: ' || (SELECT count(*) FROM marked))::int END AS checked \
             FROM inserted",
        )
        .bind::<Array<sql::Uuid>, _>(ids)
        .bind::<Array<sql::Uuid>, _>(batch.iter().map(|m| m.conversation_id).collect::<Vec<_>>())
        .bind::<Array<sql::Uuid>, _>(batch.iter().map(|m| m.sender).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(batch.iter().map(|m| m.kind).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(batch.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(batch.iter().map(|m| m.client_id.as_deref()).collect::<Vec<_>>())
        .bind::<sql::TimePoint, _>(now)
        .bind::<BigInt, _>(senders(batch)))
        .load(self)
        .await?;
        let seqs: HashMap<MessageId, Seq> = rows.into_iter().map(|r| (r.id, r.seq)).collect();
        // A message of a conversation that is gone (or archived on another node a moment ago) has
        // no counter and was not stored: the batch
        // fails (nothing of it is committed) and is retried one by one. So does a batch with a
        // sender who is no longer a member (removed on another node a moment ago) or an observer: the statement
        // fails on the cast in its last line (not a constant, so that PostgreSQL cannot fold it
        // at planning), so that nothing of it is kept, and the one-by-one
        // appends refuse exactly that sender.
        ids.iter().map(|id| seqs.get(id).copied().ok_or(diesel::result::Error::NotFound)).collect()
    }
}

/// How many (conversation, sender) pairs `batch` has: the member rows its read markers move.
fn senders(batch: &[NewMessage]) -> i64 {
    batch.iter().map(|m| (m.conversation_id, m.sender)).collect::<std::collections::HashSet<_>>().len() as i64
}

#[derive(QueryableByName)]
struct Numbered {
    #[diesel(sql_type = sql::Uuid)]
    id: MessageId,
    #[diesel(sql_type = BigInt)]
    seq: Seq,
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

enum AppendRows {}

impl BatchSql for SyncConnectionWrapper<SqliteConnection> {
    async fn append_rows(&mut self, batch: &[NewMessage], ids: &[MessageId], now: Timestamp) -> QueryResult<Vec<Seq>> {
        let mut counts: BTreeMap<ConversationId, i64> = BTreeMap::new();
        for message in batch {
            *counts.entry(message.conversation_id).or_default() += 1;
        }
        self.transaction(async |conn| {
            let mut before = HashMap::with_capacity(counts.len());
            for (id, step) in &counts {
                let old: Seq =
                    diesel::update(conversations::table.find(id).filter(conversations::archived_at.is_null()))
                        .set((
                            conversations::last_seq.eq(conversations::last_seq + step),
                            conversations::updated_at.eq(now),
                        ))
                        .returning(conversations::last_seq - step)
                        .get_result(conn)
                        .await?;
                before.insert(*id, old);
            }
            let seqs = number(batch, before);
            let mut markers: BTreeMap<(ConversationId, UserId), Seq> = BTreeMap::new();
            for ((m, id), seq) in batch.iter().zip(ids).zip(&seqs) {
                diesel::insert_into(messages::table).values(m.row(*id, *seq, now, String::new())).execute(conn).await?;
                markers.insert((m.conversation_id, m.sender), *seq);
            }
            // One's own messages are never unread (PROTOCOL.md §2).
            for ((conversation, user), seq) in markers {
                let marked = diesel::update(members::table.find((conversation, user)))
                    .filter(members::role.ne(Role::Observer))
                    .set(members::last_read_seq.eq(seq))
                    .execute(conn)
                    .await?;
                if marked == 0 {
                    return Err(diesel::result::Error::NotFound); // a sender is not a member
                }
            }
            Ok(seqs)
        })
        .await
    }
}
