//! Queries on `attachments` (PROTOCOL.md §2.10): an upload's row, a conversation's files, a
//! user's stored bytes, and the two writes that happen inside a message's transaction
//! ([`Store::append`]): claiming uploads for a message, and removing a sent file.
//!
//! An upload's file is stored before its row is written, and its row is marked `deleted_at`
//! before its file is deleted: a row always has its file, so no message can point at a missing
//! one. The row goes once storage has forgotten the file ([`Store::forget_attachment`]); the
//! sweeper finishes what an outage interrupted.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::AttachmentRow;
use super::schema::{attachments, messages};
use super::{NewMessage, Store, with_conn};
use crate::error::{Error, Result};
use crate::protocol::Attachments;
use crate::types::{AttachmentId, ConversationId, MessageId, Seq, Timestamp, UserId};

/// Why a message's transaction did not commit: the database failed, or the message was refused
/// (the transaction rolled back either way).
pub(super) enum Refusal {
    Database(diesel::result::Error),
    Refused(Error),
}

impl From<diesel::result::Error> for Refusal {
    fn from(err: diesel::result::Error) -> Self {
        Refusal::Database(err)
    }
}

fn no_such_attachment(id: AttachmentId) -> Refusal {
    Refusal::Refused(Error::NotFound(format!("no such attachment: {id}")))
}

/// One page of a conversation's files, newest message first.
pub struct AttachmentPage {
    pub attachments: Vec<AttachmentRow>,
    pub next: Option<AttachmentCursor>,
}

/// Where the next page starts: after this (message position, attachment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentCursor {
    pub seq: Seq,
    pub id: AttachmentId,
}

impl AttachmentCursor {
    /// Opaque to clients: `<seq>_<id>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.seq.0, self.id)
    }

    pub fn decode(text: &str) -> Result<Self> {
        let bad = || Error::bad_request("before is not a cursor from a previous page's next");
        let (seq, id) = text.split_once('_').ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        Ok(AttachmentCursor { seq: Seq(seq), id: id.parse().map_err(|_| bad())? })
    }
}

impl Store {
    /// Records an upload whose file is stored already.
    pub async fn insert_attachment(&self, row: &AttachmentRow) -> Result<()> {
        with_conn!(self, |conn| {
            diesel::insert_into(attachments::table).values(row).execute(conn).await?;
            Ok(())
        })
    }

    /// The attachment `id`, whatever its state.
    pub async fn attachment(&self, id: AttachmentId) -> Result<Option<AttachmentRow>> {
        with_conn!(self, |conn| {
            Ok(attachments::table.find(id).select(AttachmentRow::as_select()).first(conn).await.optional()?)
        })
    }

    /// The bytes `user` has stored (the quota counts every file not removed, sent or not).
    pub async fn attachment_usage(&self, user: UserId) -> Result<i64> {
        with_conn!(self, |conn| {
            // PostgreSQL sums BIGINTs as NUMERIC: back to BIGINT on both backends.
            let sum: Option<i64> = attachments::table
                .filter(attachments::uploader_id.eq(user))
                .filter(attachments::deleted_at.is_null())
                .select(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>(
                    "CAST(SUM(size) AS BIGINT)",
                ))
                .first(conn)
                .await?;
            Ok(sum.unwrap_or(0))
        })
    }

    /// A page of the files sent in `conversation`, newest message first.
    pub async fn attachment_page(
        &self,
        conversation: ConversationId,
        limit: i64,
        before: Option<AttachmentCursor>,
    ) -> Result<AttachmentPage> {
        let mut rows: Vec<AttachmentRow> = with_conn!(self, |conn| {
            let mut query = attachments::table
                .filter(attachments::conversation_id.eq(conversation))
                .filter(attachments::sent_seq.is_not_null())
                .filter(attachments::deleted_at.is_null())
                .order((attachments::sent_seq.desc(), attachments::id.desc()))
                .select(AttachmentRow::as_select())
                .limit(limit + 1)
                .into_boxed();
            if let Some(AttachmentCursor { seq, id }) = before {
                query = query.filter(
                    attachments::sent_seq.lt(seq).or(attachments::sent_seq.eq(seq).and(attachments::id.lt(id))),
                );
            }
            Ok::<_, Error>(query.load(conn).await?)
        })?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = more
            .then(|| rows.last())
            .flatten()
            .and_then(|last| Some(AttachmentCursor { seq: last.sent_seq?, id: last.id }));
        Ok(AttachmentPage { attachments: rows, next })
    }

    /// Marks an upload of `uploader`'s that was never sent as being removed; false if it was
    /// sent meanwhile (or is not theirs, or is gone).
    pub async fn withdraw_unsent(&self, id: AttachmentId, uploader: UserId) -> Result<bool> {
        let now = Timestamp::now();
        with_conn!(self, |conn| {
            let marked = diesel::update(
                attachments::table
                    .find(id)
                    .filter(attachments::uploader_id.eq(uploader))
                    .filter(attachments::message_id.is_null())
                    .filter(attachments::deleted_at.is_null()),
            )
            .set(attachments::deleted_at.eq(Some(now)))
            .execute(conn)
            .await?;
            Ok(marked == 1)
        })
    }

    /// Storage has forgotten the file: its row goes.
    pub async fn forget_attachment(&self, id: AttachmentId) -> Result<()> {
        with_conn!(self, |conn| {
            diesel::delete(attachments::table.find(id).filter(attachments::deleted_at.is_not_null()))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    /// For the sweeper: marks uploads older than `unsent_before` that were never sent as being
    /// removed, and answers every file being removed for longer than `stuck_before` or marked
    /// now (at most `limit`), whose files are then deleted.
    pub async fn attachments_to_sweep(
        &self,
        unsent_before: Timestamp,
        stuck_before: Timestamp,
        limit: i64,
    ) -> Result<Vec<AttachmentRow>> {
        let now = Timestamp::now();
        with_conn!(self, |conn| {
            diesel::update(
                attachments::table
                    .filter(attachments::message_id.is_null())
                    .filter(attachments::deleted_at.is_null())
                    .filter(attachments::created_at.lt(unsent_before)),
            )
            .set(attachments::deleted_at.eq(Some(now)))
            .execute(conn)
            .await?;
            Ok(attachments::table
                .filter(attachments::deleted_at.eq(Some(now)).or(attachments::deleted_at.lt(stuck_before)))
                .select(AttachmentRow::as_select())
                .limit(limit)
                .load(conn)
                .await?)
        })
    }
}

/// The writes on `attachments` inside a message's transaction, by backend (the same SQL).
pub(super) trait AttachmentSql {
    /// Checks that `new` may send its attachments (uploaded by its sender to its conversation,
    /// not sent nor removed), and answers them as the message will carry them.
    async fn check_claims(&mut self, new: &NewMessage) -> Result<Attachments, Refusal>;

    /// Makes the checked attachments of `new` part of message `id` (once the message's row is
    /// written: the attachments point at it).
    async fn claim(&mut self, new: &NewMessage, id: MessageId, seq: Seq) -> Result<(), Refusal>;

    /// Marks the sent attachment `removed` of `conversation` as being removed, and its entry in
    /// the message that carried it; answers the entry for the message announcing it.
    async fn remove_attachment(
        &mut self,
        conversation: ConversationId,
        removed: AttachmentId,
        now: Timestamp,
    ) -> Result<Attachments, Refusal>;
}

macro_rules! attachment_sql {
    ($($conn:ty),+) => {$(
        impl AttachmentSql for $conn {
            async fn check_claims(&mut self, new: &NewMessage) -> Result<Attachments, Refusal> {
                if new.attachments.is_empty() {
                    return Ok(Attachments::default());
                }
                let rows: Vec<AttachmentRow> = attachments::table
                    .filter(attachments::id.eq_any(&new.attachments))
                    .select(AttachmentRow::as_select())
                    .load(self)
                    .await?;
                let mut claimed = Vec::with_capacity(new.attachments.len());
                for id in &new.attachments {
                    // Someone else's file, or another conversation's: as if it did not exist.
                    let row = rows
                        .iter()
                        .find(|row| row.id == *id)
                        .filter(|row| row.conversation_id == new.conversation_id && row.uploader_id == new.sender)
                        .filter(|row| row.deleted_at.is_none())
                        .ok_or_else(|| no_such_attachment(*id))?;
                    if row.message_id.is_some() {
                        return Err(Refusal::Refused(Error::Conflict(format!("attachment {id} was already sent"))));
                    }
                    claimed.push(row.to_attachment());
                }
                Ok(Attachments(claimed))
            }

            async fn claim(&mut self, new: &NewMessage, id: MessageId, seq: Seq) -> Result<(), Refusal> {
                if new.attachments.is_empty() {
                    return Ok(());
                }
                // The conditions again: on PostgreSQL a concurrent removal may have committed
                // since the check (this update then waits for its row lock and sees it).
                let claimed = diesel::update(
                    attachments::table
                        .filter(attachments::id.eq_any(&new.attachments))
                        .filter(attachments::message_id.is_null())
                        .filter(attachments::deleted_at.is_null()),
                )
                .set((attachments::message_id.eq(Some(id)), attachments::sent_seq.eq(Some(seq))))
                .execute(self)
                .await?;
                if claimed != new.attachments.len() {
                    return Err(Refusal::Refused(Error::Conflict(
                        "an attachment was sent or removed meanwhile".into(),
                    )));
                }
                Ok(())
            }

            async fn remove_attachment(
                &mut self,
                conversation: ConversationId,
                removed: AttachmentId,
                now: Timestamp,
            ) -> Result<Attachments, Refusal> {
                let row: AttachmentRow = attachments::table
                    .find(removed)
                    .filter(attachments::conversation_id.eq(conversation))
                    .filter(attachments::deleted_at.is_null())
                    .select(AttachmentRow::as_select())
                    .first(self)
                    .await
                    .optional()?
                    .ok_or_else(|| no_such_attachment(removed))?;
                let Some(message) = row.message_id else {
                    return Err(no_such_attachment(removed)); // unsent: withdrawn without a message
                };
                diesel::update(attachments::table.find(removed))
                    .set(attachments::deleted_at.eq(Some(now)))
                    .execute(self)
                    .await?;
                let mut carried: Attachments = messages::table
                    .find(message)
                    .select(messages::attachments)
                    .first::<Attachments>(self)
                    .await?;
                for entry in carried.0.iter_mut().filter(|entry| entry.id == removed) {
                    entry.removed = true;
                }
                diesel::update(messages::table.find(message))
                    .set(messages::attachments.eq(carried.to_column()))
                    .execute(self)
                    .await?;
                let mut entry = row.to_attachment();
                entry.removed = true;
                Ok(Attachments(vec![entry]))
            }
        }
    )+};
}

attachment_sql!(AsyncPgConnection, SyncConnectionWrapper<SqliteConnection>);
