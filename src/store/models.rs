//! Rows as the tables hold them, where they differ from the wire objects of
//! [`crate::protocol`] (which are loaded directly where they match a row).

use diesel::{Insertable, Queryable, Selectable};

use super::schema::{conversations, members, messages, users};
use crate::protocol::{ConversationKind, Message, MessageKind, Role, User};
use crate::types::{ConversationId, MessageId, Seq, Timestamp, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Option<Timestamp>,
}

impl UserRow {
    /// The wire `User`, without presence (the caller adds it where the protocol asks for it).
    pub fn to_user(&self) -> User {
        User {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            online: None,
            last_seen_at: None,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = conversations)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub direct_key: Option<String>,
    pub last_seq: Seq,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ConversationRow {
    /// A new, empty conversation, created now.
    pub fn new(kind: ConversationKind, title: Option<String>, direct_key: Option<String>) -> Self {
        let now = Timestamp::now();
        ConversationRow {
            id: ConversationId::random(),
            kind,
            title,
            direct_key,
            last_seq: Seq::ZERO,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = members)]
pub struct MemberRow {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub role: Role,
    pub last_read_seq: Seq,
    pub joined_at: Timestamp,
}

impl MemberRow {
    /// A founding member of `conversation`, with nothing read yet.
    pub fn new(conversation: &ConversationRow, user_id: UserId, role: Role) -> Self {
        MemberRow {
            conversation_id: conversation.id,
            user_id,
            role,
            last_read_seq: Seq::ZERO,
            joined_at: conversation.created_at,
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = messages)]
pub struct MessageInsert<'a> {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub prev_seq: Option<Seq>,
    pub sender_id: UserId,
    pub kind: MessageKind,
    pub body: &'a str,
    pub client_id: Option<&'a str>,
    pub created_at: Timestamp,
}

/// The wire `Message` is read straight from its row, without a copy: these are its columns, in
/// the order of its fields. It lives here rather than as a derive on the wire type, so that
/// `protocol` knows no table (docs/ARCHITECTURE.md, "Layers").
impl<DB: diesel::backend::Backend> Selectable<DB> for Message {
    type SelectExpression = (
        messages::id,
        messages::conversation_id,
        messages::seq,
        messages::sender_id,
        messages::kind,
        messages::body,
        messages::client_id,
        messages::created_at,
    );

    fn construct_selection() -> Self::SelectExpression {
        (
            messages::id,
            messages::conversation_id,
            messages::seq,
            messages::sender_id,
            messages::kind,
            messages::body,
            messages::client_id,
            messages::created_at,
        )
    }
}
