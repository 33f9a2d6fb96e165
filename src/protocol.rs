//! The wire types of docs/PROTOCOL.md: the objects (§2.9), the WebSocket commands and events
//! (§3), and the frames that carry them. This file and docs/PROTOCOL.md mirror each other: a
//! change to one is a change to the other.

use bytestring::ByteString;
use diesel::Queryable;
use diesel::deserialize::FromSqlRow;
use diesel::deserialize::{self, FromSql};
use diesel::expression::AsExpression;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, ErrorBody};
use crate::files::urls::{Variant, link};
use crate::types::{AttachmentId, ConversationId, MessageId, Seq, SessionId, Timestamp, Unread, UserId};

/// Protocol version, as `/api/info` reports it.
pub const PROTOCOL_VERSION: u32 = 1;

// ---------------------------------------------------------------------------------------------
// Objects (PROTOCOL.md §2)

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    /// The host product's own id of this user (docs/PROTOCOL.md §7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub members: Vec<Member>,
    pub last_seq: Seq,
    pub last_message: Option<Message>,
    pub unread_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The host's business object this conversation is about (an appointment, a claim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_ends_at: Option<Timestamp>,
    /// The host's free JSON object, as it was given; absent when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Box<RawValue>>,
    /// Read-only since then (`null`: open).
    pub archived_at: Option<Timestamp>,
    /// Members who read without taking part: never in `members`, and shown without a read
    /// marker, so never in read receipts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observers: Vec<Observer>,
    /// The viewer hid it from their list (until the next message).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

impl Conversation {
    /// Everyone who sees it: its members and its observers.
    pub fn audience(&self) -> impl Iterator<Item = UserId> + '_ {
        self.members.iter().map(|m| m.user_id).chain(self.observers.iter().map(|o| o.user_id))
    }
}

/// Someone who reads a conversation without taking part (a claims manager, say).
#[derive(Debug, Clone, Serialize)]
pub struct Observer {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    /// Always `observer`: the same field as a [`Member`]'s, for clients that list both.
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// A business object of the host's: `{type: "appointment", id: "A-1029"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub last_read_seq: Seq,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// Loaded straight from its row (`Queryable` reads the columns by position; the selection, in
/// the order of these fields, is in `store/models.rs`, beside the schema).
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub sender_id: UserId,
    pub kind: MessageKind,
    pub body: String,
    pub client_id: Option<String>,
    pub created_at: Timestamp,
    /// Stored with the message as JSON (`store/models.rs`); absent on the wire when empty.
    #[serde(skip_serializing_if = "Attachments::is_empty")]
    pub attachments: Attachments,
    /// What a `system` message says as data: its template, parameters and language (the body is
    /// its text). Stored with the message as JSON; absent on text messages.
    #[serde(skip_serializing_if = "Templated::is_none")]
    pub system: Templated,
}

/// A system message's template: clients may render `template` with `params` in their own
/// language, or show `body`, rendered in `lang`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemTemplate {
    pub template: String,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    pub lang: String,
}

/// The `system` of a message: a template, or none (a text message).
#[derive(Debug, Clone, Default, PartialEq, FromSqlRow)]
pub struct Templated(pub Option<SystemTemplate>);

impl Templated {
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// As the `system` column holds it: `''` for none, else JSON.
    pub fn to_column(&self) -> String {
        self.0.as_ref().and_then(|t| serde_json::to_string(t).ok()).unwrap_or_default()
    }

    pub fn from_column(text: &str) -> Result<Self, serde_json::Error> {
        if text.is_empty() {
            return Ok(Templated(None));
        }
        serde_json::from_str(text).map(|t| Templated(Some(t)))
    }
}

impl Serialize for Templated {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A file in a message (PROTOCOL.md §2.10). `url` and `thumbnail_url` are not stored: they are
/// signed when the message is serialised (`files::urls`), so that every copy of a message, live
/// or from history, carries links that work for a while and then stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: AttachmentId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Has a thumbnail (stored; on the wire it is `thumbnail_url`).
    #[serde(default, rename = "thumbnail", skip_serializing)]
    pub has_thumbnail: bool,
    /// Deleted by its uploader or the group's owner: the file is gone, the entry stays.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// The attachments of a message, in the order they were sent.
#[derive(Debug, Clone, Default, PartialEq, FromSqlRow)]
pub struct Attachments(pub Vec<Attachment>);

impl Attachments {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As the `attachments` column holds them: `''` for none, else JSON with `thumbnail` flags.
    pub fn to_column(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        #[derive(Serialize)]
        struct Stored<'a> {
            #[serde(flatten)]
            attachment: &'a Attachment,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            thumbnail: bool,
        }
        let stored: Vec<_> = self.0.iter().map(|a| Stored { attachment: a, thumbnail: a.has_thumbnail }).collect();
        serde_json::to_string(&stored).unwrap_or_default()
    }

    pub fn from_column(text: &str) -> Result<Self, serde_json::Error> {
        if text.is_empty() {
            return Ok(Attachments::default());
        }
        serde_json::from_str(text).map(Attachments)
    }
}

impl Serialize for Attachments {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(Attachment::linked))
    }
}

impl Attachment {
    /// As the wire shows it: with its signed links (none once removed).
    pub fn linked(&self) -> LinkedAttachment<'_> {
        let live = !self.removed;
        LinkedAttachment {
            attachment: self,
            url: live.then(|| link(self.id, Variant::Original)),
            thumbnail_url: (live && self.has_thumbnail).then(|| link(self.id, Variant::Thumbnail)),
        }
    }
}

/// An [`Attachment`] with its links, made when it is serialised.
#[derive(Serialize)]
pub struct LinkedAttachment<'a> {
    #[serde(flatten)]
    attachment: &'a Attachment,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_url: Option<String>,
}

/// Enums stored as `TEXT` on both backends, spelled as on the wire.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AsExpression, FromSqlRow)]
        #[diesel(sql_type = Text)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ToSql<Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> serialize::Result {
                std::io::Write::write_all(out, self.as_str().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl ToSql<Text, diesel::sqlite::Sqlite> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::sqlite::Sqlite>) -> serialize::Result {
                out.set_value(self.as_str());
                Ok(IsNull::No)
            }
        }

        impl<DB: diesel::backend::Backend> FromSql<Text, DB> for $name
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
                match String::from_sql(value)?.as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unexpected {} {other:?}", stringify!($name)).into()),
                }
            }
        }
    };
}

text_enum!(
    /// `direct` (exactly two members, at most one per pair) or `group`.
    ConversationKind { Direct = "direct", Group = "group" }
);
text_enum!(
    /// A member's role; the owner may add and remove members of a group; an observer reads and
    /// never posts.
    Role { Owner = "owner", Member = "member", Observer = "observer" }
);
text_enum!(
    /// `text` from a user, or `system` (membership changes) from the server.
    MessageKind { Text = "text", System = "system" }
);

#[derive(Debug, Clone, Serialize)]
pub struct Presence {
    pub user_id: UserId,
    pub online: bool,
    pub last_seen_at: Option<Timestamp>,
}

/// `{last_read_seq, unread_count, total_unread}`: the answer to `read:mark` and its REST twins.
#[derive(Debug, Clone, Serialize)]
pub struct ReadState {
    pub last_read_seq: Seq,
    pub unread_count: i64,
    pub total_unread: i64,
}

// ---------------------------------------------------------------------------------------------
// Client → server (PROTOCOL.md §3)

/// A command's `ref`: chosen by the client (a string or a number), echoed verbatim in the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ref {
    Text(String),
    Number(serde_json::Number),
}

/// The `type` of a client frame. Kept apart from [`ClientCommand`] so that a frame whose `data`
/// is wrong still yields its `ref`, and the client gets its one reply.
#[derive(Debug, Clone, Copy, Deserialize)]
enum CommandType {
    #[serde(rename = "message:send")]
    MessageSend,
    #[serde(rename = "conversation:join")]
    ConversationJoin,
    #[serde(rename = "conversation:leave")]
    ConversationLeave,
    #[serde(rename = "typing:start")]
    TypingStart,
    #[serde(rename = "typing:stop")]
    TypingStop,
    #[serde(rename = "read:mark")]
    ReadMark,
    #[serde(rename = "sync")]
    Sync,
    #[serde(rename = "presence:query")]
    PresenceQuery,
    #[serde(rename = "ping")]
    Ping,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type")]
    kind: CommandType,
    #[serde(rename = "ref")]
    reference: Option<Ref>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RefOnly {
    #[serde(rename = "ref")]
    reference: Option<Ref>,
}

#[derive(Debug, Clone)]
pub enum ClientCommand {
    MessageSend(SendData),
    ConversationJoin(JoinData),
    ConversationLeave(ConversationRef),
    TypingStart(ConversationRef),
    TypingStop(ConversationRef),
    ReadMark(ReadMarkData),
    Sync(SyncData),
    PresenceQuery(PresenceQueryData),
    Ping,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendData {
    pub conversation_id: ConversationId,
    #[serde(default)]
    pub body: String,
    pub client_id: Option<String>,
    /// Files uploaded beforehand (PROTOCOL.md §2.10), sent with this message.
    #[serde(default)]
    pub attachment_ids: Vec<AttachmentId>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinData {
    pub conversation_id: ConversationId,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationRef {
    pub conversation_id: ConversationId,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadMarkData {
    pub conversation_id: ConversationId,
    pub seq: Option<Seq>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncData {
    pub conversations: Vec<SyncCursor>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SyncCursor {
    pub conversation_id: ConversationId,
    pub after_seq: Seq,
}

impl<'de> Deserialize<'de> for SyncCursor {
    /// Objects only: serde's derive would also read a struct from an array of its fields.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            conversation_id: ConversationId,
            after_seq: Seq,
        }
        let object = serde_json::Map::deserialize(deserializer)?;
        let Fields { conversation_id, after_seq } =
            serde_json::from_value(serde_json::Value::Object(object)).map_err(serde::de::Error::custom)?;
        Ok(SyncCursor { conversation_id, after_seq })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceQueryData {
    pub user_ids: Vec<UserId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoData {}

/// One parsed client frame: the command, or why it is not one, with the `ref` either way.
pub struct ClientFrame {
    pub reference: Option<Ref>,
    pub command: Result<ClientCommand, Error>,
}

impl ClientFrame {
    pub fn parse(text: &str) -> ClientFrame {
        // A frame is a JSON object; serde would also read one from an array of its fields.
        let raw: RawFrame = match is_object(text).then(|| serde_json::from_str(text)) {
            None => {
                return ClientFrame { reference: None, command: Err(Error::bad_request("a frame is a JSON object")) };
            }
            Some(parsed) => match parsed {
                Ok(raw) => raw,
                Err(err) => {
                    // Recover the ref if the frame is JSON at all, so the error reaches its caller.
                    let reference = serde_json::from_str::<RefOnly>(text).ok().and_then(|r| r.reference);
                    return ClientFrame { reference, command: Err(Error::bad_request(format!("bad frame: {err}"))) };
                }
            },
        };
        ClientFrame { reference: raw.reference, command: ClientCommand::from_parts(raw.kind, raw.data) }
    }
}

impl ClientCommand {
    fn from_parts(kind: CommandType, data: Option<&RawValue>) -> Result<ClientCommand, Error> {
        fn data_of<'a, T: Deserialize<'a>>(data: Option<&'a RawValue>) -> Result<T, Error> {
            let text = data.map_or("{}", RawValue::get);
            let text = if text.trim() == "null" { "{}" } else { text };
            if !is_object(text) {
                return Err(Error::bad_request("data is a JSON object"));
            }
            serde_json::from_str(text).map_err(|err| Error::bad_request(format!("bad data: {err}")))
        }
        Ok(match kind {
            CommandType::MessageSend => ClientCommand::MessageSend(data_of(data)?),
            CommandType::ConversationJoin => ClientCommand::ConversationJoin(data_of(data)?),
            CommandType::ConversationLeave => ClientCommand::ConversationLeave(data_of(data)?),
            CommandType::TypingStart => ClientCommand::TypingStart(data_of(data)?),
            CommandType::TypingStop => ClientCommand::TypingStop(data_of(data)?),
            CommandType::ReadMark => ClientCommand::ReadMark(data_of(data)?),
            CommandType::Sync => ClientCommand::Sync(data_of(data)?),
            CommandType::PresenceQuery => ClientCommand::PresenceQuery(data_of(data)?),
            CommandType::Ping => {
                data_of::<NoData>(data)?;
                ClientCommand::Ping
            }
        })
    }
}

/// Text that goes into the database may not hold NUL, which PostgreSQL cannot store (and which
/// no person types): refused alike on both backends.
pub fn check_text(field: &str, text: &str) -> Result<(), Error> {
    if text.contains('\0') {
        return Err(Error::bad_request(format!("{field} must not contain NUL characters")));
    }
    Ok(())
}

/// A host's id of a user: 1 to 255 bytes, no control characters. (Here rather than in `rules`
/// because token verification, below it, reads one from a claim.)
pub fn check_external_id(id: &str) -> Result<&str, Error> {
    const MAX: usize = 255;
    if id.is_empty() || id.len() > MAX || id.chars().any(char::is_control) {
        return Err(Error::bad_request(format!("external_id is 1 to {MAX} bytes without control characters")));
    }
    Ok(id)
}

fn is_object(json: &str) -> bool {
    json.trim_start().starts_with('{')
}

// ---------------------------------------------------------------------------------------------
// Server → client (PROTOCOL.md §3)

#[derive(Debug, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum Event<'a> {
    #[serde(rename = "session:ready")]
    SessionReady { session_id: SessionId, user: &'a User, heartbeat_ms: u64 },
    #[serde(rename = "message:new")]
    MessageNew { message: &'a Message },
    #[serde(rename = "typing:updated")]
    TypingUpdated { conversation_id: ConversationId, user_id: UserId, typing: bool },
    #[serde(rename = "read:updated")]
    ReadUpdated { conversation_id: ConversationId, user_id: UserId, last_read_seq: Seq },
    #[serde(rename = "unread:updated")]
    UnreadUpdated { conversation_id: ConversationId, unread_count: i64, total_unread: i64 },
    #[serde(rename = "presence:updated")]
    PresenceUpdated(&'a Presence),
    #[serde(rename = "conversation:updated")]
    ConversationUpdated { conversation: &'a Conversation },
    #[serde(rename = "user:updated")]
    UserUpdated { user: &'a User },
    /// An event of the host's (docs/PROTOCOL.md §7): not stored, so not replayed by `sync`.
    #[serde(rename = "custom")]
    Custom {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation_id: Option<ConversationId>,
        payload: &'a RawValue,
    },
}

/// An encoded frame: serialised once, shared by every session it goes to (cloning is a
/// reference-count increment).
pub type Frame = ByteString;

impl Event<'_> {
    pub fn encode(&self) -> Frame {
        encode(self)
    }

    /// `unread:updated` of `conversation_id`, with the member's `unread`.
    pub fn unread_updated(conversation_id: ConversationId, unread: Unread) -> Self {
        Event::UnreadUpdated { conversation_id, unread_count: unread.count, total_unread: unread.total }
    }
}

#[derive(Serialize)]
struct Reply<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a Ref>,
    data: T,
}

/// The one reply to a command: `ack` with its data, or `error`.
pub fn encode_reply<T: Serialize>(reference: Option<&Ref>, result: &Result<T, Error>) -> Frame {
    match result {
        Ok(data) => encode(&Reply { kind: "ack", reference, data }),
        Err(err) => encode_error(reference, err),
    }
}

pub fn encode_error(reference: Option<&Ref>, err: &Error) -> Frame {
    let data: ErrorBody = err.report();
    encode(&Reply { kind: "error", reference, data })
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Frame {
    // Serialising these types cannot fail: every map key is a string and no Serialize impl
    // returns an error. An empty frame would still be safer than a panic on the hot path.
    serde_json::to_string(value).map(Frame::from).unwrap_or_default()
}

/// `{}`: the ack data of commands that return nothing.
#[derive(Serialize)]
pub struct Empty {}

/// The decoder's property-based fuzz: a unit test of [`ClientFrame::parse`], kept beside the
/// JSON strategies it shares with the server fuzz of the integration tests.
#[cfg(test)]
#[path = "../tests/fuzz/decoder.rs"]
mod decoder_fuzz;
