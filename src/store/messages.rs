//! Queries on `messages`: appending (the one write path, which assigns `seq`) and history.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::attachments::{AttachmentSql, Refusal};
use super::models::{MemberRow, MessageInsert};
use super::schema::{conversations, members, messages};
use super::{Store, is_unique_violation, with_conn};
use crate::error::{Error, Result};
use crate::protocol::{Message, MessageKind, Role, Templated};
use crate::types::{AttachmentId, ConversationId, MessageId, Seq, Timestamp, UserId};

/// A message to append, and what it changes besides, if anything: the membership change it
/// announces, the uploads it claims, the attachment whose removal it announces, or the
/// conversation it archives or restores.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: ConversationId,
    pub sender: UserId,
    pub kind: MessageKind,
    pub body: String,
    pub client_id: Option<String>,
    /// A system message's template (PROTOCOL.md §2.9); none for text.
    pub system: Templated,
    pub membership: Option<MembershipChange>,
    /// Files of the sender's, uploaded to this conversation and not sent yet (PROTOCOL.md §2.10).
    pub attachments: Vec<AttachmentId>,
    pub removal: Option<AttachmentId>,
    /// `Some(true)` archives the conversation with this message, `Some(false)` restores it.
    pub archive: Option<bool>,
}

impl NewMessage {
    /// A text message (with its attachments, if any).
    pub fn text(
        conversation_id: ConversationId,
        sender: UserId,
        body: String,
        client_id: Option<String>,
        attachments: Vec<AttachmentId>,
    ) -> Self {
        NewMessage {
            conversation_id,
            sender,
            kind: MessageKind::Text,
            body,
            client_id,
            system: Templated::default(),
            membership: None,
            attachments,
            removal: None,
            archive: None,
        }
    }

    /// A system message written by `by` (the system user when the service acts), announcing a
    /// change, with the template it was rendered from.
    pub fn system(conversation_id: ConversationId, by: UserId, (body, system): (String, Templated)) -> Self {
        NewMessage {
            conversation_id,
            sender: by,
            kind: MessageKind::System,
            body,
            client_id: None,
            system,
            membership: None,
            attachments: Vec::new(),
            removal: None,
            archive: None,
        }
    }

    /// A plain message: the group committer may batch it (nothing besides the message changes,
    /// and it has no template: the batch writes text messages).
    pub fn is_plain(&self) -> bool {
        self.membership.is_none()
            && self.attachments.is_empty()
            && self.removal.is_none()
            && self.archive.is_none()
            && self.system.is_none()
    }

    /// Must the sender be a member? Not the system user, nor someone announcing their own
    /// leaving (their row goes in the same transaction).
    fn needs_member(&self) -> bool {
        self.sender != UserId::SYSTEM && self.membership != Some(MembershipChange::Remove(self.sender))
    }

    /// Its row, as message `seq` (the schema links each message to its predecessor).
    pub(super) fn row(&self, id: MessageId, seq: Seq, now: Timestamp, attachments: String) -> MessageInsert<'_> {
        MessageInsert {
            id,
            conversation_id: self.conversation_id,
            seq,
            prev_seq: Some(seq.prev()).filter(|prev| *prev > Seq::ZERO),
            sender_id: self.sender,
            kind: self.kind,
            body: &self.body,
            client_id: self.client_id.as_deref(),
            created_at: now,
            attachments,
            system: self.system.to_column(),
        }
    }
}

/// A change of members, committed in the same transaction as the system message announcing it:
/// someone joins as a member or an observer, or leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    Add(UserId, Role),
    Remove(UserId),
}

#[derive(Debug, Clone)]
pub struct Appended {
    pub message: Message,
    /// The sender had already sent this `client_id`: `message` is the one stored then.
    pub duplicate: bool,
    /// The member who became the group's owner because its owner left.
    pub new_owner: Option<UserId>,
    /// The message archived (`true`) or restored (`false`) the conversation.
    pub archived: Option<bool>,
}

#[derive(Debug)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// More messages exist in the direction the page was read (older, or newer with `after_seq`).
    pub has_more: bool,
}

impl Store {
    /// Appends a message in one transaction: the conversation's counter gives its `seq` (the row
    /// lock serialises concurrent appends, from any node), the membership change if any is
    /// applied, and the sender's read marker moves to it. A repeated `client_id` returns the
    /// message stored the first time instead.
    pub async fn append(&self, new: &NewMessage) -> Result<Appended> {
        if let Some(client_id) = &new.client_id
            && let Some(existing) = self.message_by_client_id(new.sender, client_id).await?
        {
            return duplicate_of(new, existing);
        }
        let now = Timestamp::now();
        let id = MessageId::now();
        let result = with_conn!(self, |conn| {
            conn.transaction::<_, Refusal, _>(async |conn| {
                // The write comes first, so that SQLite takes its write lock before any read. It
                // finds the conversation open (archived, for a restore) under the row lock: an
                // archived conversation takes no message, and of two archives at once (two nodes
                // sweeping) one finds it archived already and commits nothing.
                let restoring = new.archive == Some(false);
                let seq: Option<Seq> = diesel::update(
                    conversations::table
                        .find(new.conversation_id)
                        .filter(conversations::archived_at.is_null().eq(!restoring)),
                )
                .set((
                    conversations::last_seq.eq(conversations::last_seq + 1),
                    conversations::updated_at.eq(now),
                    conversations::archived_at.eq((new.archive == Some(true)).then_some(now)),
                ))
                .returning(conversations::last_seq)
                .get_result(conn)
                .await
                .optional()?;
                let Some(seq) = seq else {
                    let archived = conversations::table
                        .find(new.conversation_id)
                        .select(conversations::archived_at)
                        .first(conn)
                        .await
                        .optional()?;
                    return Err(Refusal::Refused(closed(archived, new)));
                };
                if restoring {
                    diesel::update(conversations::table.find(new.conversation_id))
                        .set(conversations::restored_at.eq(now))
                        .execute(conn)
                        .await?;
                }
                let mut new_owner = None;
                match new.membership {
                    Some(MembershipChange::Add(user_id, role)) => {
                        // The newcomer's marker sits just before the message announcing them.
                        let row = MemberRow {
                            conversation_id: new.conversation_id,
                            user_id,
                            role,
                            last_read_seq: seq.prev(),
                            joined_at: now,
                            hidden_seq: None,
                        };
                        diesel::insert_into(members::table).values(&row).execute(conn).await?;
                    }
                    Some(MembershipChange::Remove(user_id)) => {
                        let role: Role = diesel::delete(members::table.find((new.conversation_id, user_id)))
                            .returning(members::role)
                            .get_result(conn)
                            .await?;
                        if role == Role::Owner {
                            // A group keeps an owner: its longest-standing member.
                            let heir: Option<UserId> = members::table
                                .filter(members::conversation_id.eq(new.conversation_id))
                                .order((members::joined_at.asc(), members::user_id.asc()))
                                .select(members::user_id)
                                .first(conn)
                                .await
                                .optional()?;
                            if let Some(heir) = heir {
                                diesel::update(members::table.find((new.conversation_id, heir)))
                                    .set(members::role.eq(Role::Owner))
                                    .execute(conn)
                                    .await?;
                            }
                            new_owner = heir;
                        }
                    }
                    None => {}
                }
                let attachments = match new.removal {
                    Some(removed) => conn.remove_attachment(new.conversation_id, removed, now).await?,
                    None => conn.check_claims(new).await?,
                };
                let row = new.row(id, seq, now, attachments.to_column());
                diesel::insert_into(messages::table).values(&row).execute(conn).await?;
                conn.claim(new, id, seq).await?;
                // One's own messages are never unread (PROTOCOL.md §2). The sender must be a
                // member, not an observer: in a cluster another node may have removed them a
                // moment ago, which this node's actor has not heard of yet (its member list is
                // a cache).
                let marked = diesel::update(members::table.find((new.conversation_id, new.sender)))
                    .filter(members::role.ne(Role::Observer))
                    .set(members::last_read_seq.eq(seq))
                    .execute(conn)
                    .await?;
                if marked == 0 && new.needs_member() {
                    return Err(Refusal::Refused(Error::no_conversation())); // nothing of it is kept
                }
                Ok((seq, new_owner, attachments))
            })
            .await
        });
        match result {
            Ok((seq, new_owner, attachments)) => Ok(Appended {
                message: Message {
                    id,
                    conversation_id: new.conversation_id,
                    seq,
                    sender_id: new.sender,
                    kind: new.kind,
                    body: new.body.clone(),
                    client_id: new.client_id.clone(),
                    created_at: now,
                    attachments,
                    system: new.system.clone(),
                },
                duplicate: false,
                new_owner,
                archived: new.archive,
            }),
            Err(Refusal::Refused(err)) => Err(err),
            Err(Refusal::Database(diesel::result::Error::NotFound)) => Err(Error::no_conversation()),
            // The same client_id committed concurrently elsewhere (another node, or REST and
            // WebSocket at once): the unique index let one win; answer with the winner.
            Err(Refusal::Database(err)) if is_unique_violation(&err) && new.client_id.is_some() => {
                let client_id = new.client_id.as_deref().unwrap_or_default();
                match self.message_by_client_id(new.sender, client_id).await? {
                    Some(existing) => duplicate_of(new, existing),
                    None => Err(err.into()),
                }
            }
            Err(Refusal::Database(err)) => Err(err.into()),
        }
    }

    async fn message_by_client_id(&self, sender: UserId, client_id: &str) -> Result<Option<Message>> {
        with_conn!(self, |conn| {
            Ok(messages::table
                .filter(messages::sender_id.eq(sender))
                .filter(messages::client_id.eq(client_id))
                .select(Message::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// A page of history in ascending `seq`: the latest `limit` messages before `before_seq`
    /// (or the latest of all), or with `after_seq` the first `limit` messages after it.
    pub async fn history(
        &self,
        id: ConversationId,
        before_seq: Option<Seq>,
        after_seq: Option<Seq>,
        limit: i64,
    ) -> Result<HistoryPage> {
        let mut page: Vec<Message> = with_conn!(self, |conn| {
            let mut query = messages::table
                .filter(messages::conversation_id.eq(id))
                .select(Message::as_select())
                .limit(limit + 1)
                .into_boxed();
            if let Some(before) = before_seq {
                query = query.filter(messages::seq.lt(before));
            }
            query = match after_seq {
                Some(after) => query.filter(messages::seq.gt(after)).order(messages::seq.asc()),
                None => query.order(messages::seq.desc()),
            };
            Ok::<_, Error>(query.load(conn).await?)
        })?;
        let has_more = page.len() as i64 > limit;
        page.truncate(limit as usize);
        if after_seq.is_none() {
            page.reverse();
        }
        Ok(HistoryPage { messages: page, has_more })
    }
}

fn duplicate_of(new: &NewMessage, existing: Message) -> Result<Appended> {
    if existing.conversation_id != new.conversation_id {
        return Err(Error::Conflict("client_id was already used for a message in another conversation".into()));
    }
    Ok(Appended { message: existing, duplicate: true, new_owner: None, archived: None })
}

/// Why `new` found its conversation closed to it, from its `archived_at` (`None`: gone).
fn closed(archived: Option<Option<Timestamp>>, new: &NewMessage) -> Error {
    match (archived, new.archive) {
        (None, _) => Error::no_conversation(),
        (Some(_), Some(true)) => Error::Conflict("the conversation is archived already".into()),
        (Some(_), Some(false)) => Error::Conflict("the conversation is not archived".into()),
        (Some(_), None) => Error::archived(),
    }
}
