//! Rows as the tables hold them, where they differ from the wire objects of
//! [`crate::protocol`] (which are loaded directly where they match a row).

use diesel::deserialize::{self, FromSql};
use diesel::sql_types::Text;
use diesel::{Insertable, Queryable, Selectable};

use super::schema::{attachments, conversations, members, messages, users};
use crate::protocol::{Attachment, Attachments, ConversationKind, Message, MessageKind, Role, Templated, User};
use crate::types::{AttachmentId, ConversationId, MessageId, Seq, Timestamp, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Option<Timestamp>,
    pub external_id: Option<String>,
    pub avatar_url: Option<String>,
    /// The host's JSON object (`{}` when none); shown on the service API only.
    pub metadata: String,
}

impl UserRow {
    /// A user without password, external id or avatar, created now.
    pub fn new(id: UserId, username: String, display_name: String) -> Self {
        UserRow {
            id,
            username,
            display_name,
            password_hash: None,
            created_at: Timestamp::now(),
            last_seen_at: None,
            external_id: None,
            avatar_url: None,
            metadata: "{}".into(),
        }
    }

    /// The wire `User`, without presence (the caller adds it where the protocol asks for it).
    pub fn to_user(&self) -> User {
        User {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            external_id: self.external_id.clone(),
            avatar_url: self.avatar_url.clone(),
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
    pub context_type: Option<String>,
    pub context_id: Option<String>,
    pub context_ends_at: Option<Timestamp>,
    /// The host's JSON object, `{}` when none.
    pub metadata: String,
    pub archived_at: Option<Timestamp>,
    /// When it was last restored: the archival sweep leaves it alone until its context ends
    /// again after that.
    pub restored_at: Option<Timestamp>,
}

impl ConversationRow {
    /// A new, empty conversation, created now, tied to no business object.
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
            context_type: None,
            context_id: None,
            context_ends_at: None,
            metadata: "{}".into(),
            archived_at: None,
            restored_at: None,
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
    /// Hidden from the member's list while the conversation's `last_seq` is at most this.
    pub hidden_seq: Option<Seq>,
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
            hidden_seq: None,
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
    /// [`Attachments::to_column`]: `''` for none.
    pub attachments: String,
    /// [`Templated::to_column`]: `''` for none.
    pub system: String,
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
        messages::attachments,
        messages::system,
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
            messages::attachments,
            messages::system,
        )
    }
}

impl<DB: diesel::backend::Backend> FromSql<Text, DB> for Attachments
where
    String: FromSql<Text, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(Attachments::from_column(&String::from_sql(value)?)?)
    }
}

impl<DB: diesel::backend::Backend> FromSql<Text, DB> for Templated
where
    String: FromSql<Text, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(Templated::from_column(&String::from_sql(value)?)?)
    }
}

/// An uploaded file, sent or not (`message_id`), being removed or not (`deleted_at`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = attachments)]
pub struct AttachmentRow {
    pub id: AttachmentId,
    pub conversation_id: ConversationId,
    pub uploader_id: UserId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_type: Option<String>,
    pub message_id: Option<MessageId>,
    pub sent_seq: Option<Seq>,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

impl AttachmentRow {
    /// As a message carries it.
    pub fn to_attachment(&self) -> Attachment {
        Attachment {
            id: self.id,
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            width: self.width.map(|w| w as u32),
            height: self.height.map(|h| h as u32),
            has_thumbnail: self.thumbnail_type.is_some(),
            removed: self.deleted_at.is_some(),
        }
    }
}
