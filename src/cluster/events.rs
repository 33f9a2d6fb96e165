//! What nodes tell each other through the broker: one envelope per committed event.
//!
//! An envelope is the publishing node's id (16 bytes, so that a node skips its own events
//! without parsing them), a JSON header (the [`EventKind`]), a newline, and for events that carry one, the frame
//! exactly as the publishing node sent it to its own sessions: a message is serialised once in
//! the whole cluster, not once per node.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::protocol::{Frame, Role};
use crate::types::{ConversationId, Seq, Timestamp, UserId};

/// What happened: the JSON header of an envelope, and how a receiving node routes the event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A message committed; the frame is its `message:new`.
    Message {
        conversation: ConversationId,
        seq: Seq,
        sender: UserId,
        change: Option<Change>,
        /// The message archived (`true`) or restored (`false`) the conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        archived: Option<bool>,
    },
    /// A host's event for a conversation's sessions; the frame follows.
    Custom {
        conversation: ConversationId,
    },
    Typing {
        conversation: ConversationId,
        user: UserId,
        typing: bool,
    },
    /// A read marker moved; the reader's other sessions get their counts from here.
    Read {
        conversation: ConversationId,
        user: UserId,
        seq: Seq,
        unread_count: i64,
        total_unread: i64,
    },
    /// A frame for every session of `users` (conversation created or changed); the frame
    /// follows.
    Deliver {
        users: Vec<UserId>,
    },
    /// A user came online in the cluster, or went offline (`at` is their last-seen time).
    Presence {
        user: UserId,
        online: bool,
        at: Timestamp,
    },
}

/// A membership change, as the other nodes' actors apply it to their member lists. (It is
/// made from the store's `MembershipChange` on the actors' side, `actors/inbox.rs`, so that the
/// cluster does not depend on the store.)
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Joined, as a member or an observer.
    Add(UserId, Role),
    Remove {
        user: UserId,
        new_owner: Option<UserId>,
    },
}

/// One event as it travels: its kind, and the frame of events that carry one.
#[derive(Debug, Clone)]
pub struct ClusterEvent {
    pub kind: EventKind,
    pub frame: Option<Frame>,
}

impl ClusterEvent {
    pub fn new(kind: EventKind) -> Self {
        ClusterEvent { kind, frame: None }
    }

    pub fn with_frame(kind: EventKind, frame: Frame) -> Self {
        ClusterEvent { kind, frame: Some(frame) }
    }

    /// The envelope published by `node`.
    pub fn encode(&self, node: Uuid) -> Vec<u8> {
        let frame = self.frame.as_deref().unwrap_or_default();
        let mut bytes = Vec::with_capacity(16 + 160 + frame.len());
        bytes.extend_from_slice(node.as_bytes());
        // Serialising the header cannot fail: it has no maps and no fallible Serialize impl.
        let _ = serde_json::to_writer(&mut bytes, &self.kind);
        bytes.push(b'\n');
        bytes.extend_from_slice(frame.as_bytes());
        bytes
    }

    /// The event in an envelope, unless `node` published it itself (`Ok(None)`).
    pub fn decode(bytes: &[u8], node: Uuid) -> Result<Option<ClusterEvent>> {
        let malformed = |why: &str| Error::Internal(format!("malformed cluster event: {why}"));
        let (from, rest) = bytes.split_at_checked(16).ok_or_else(|| malformed("too short"))?;
        if from == node.as_bytes() {
            return Ok(None);
        }
        let newline = rest.iter().position(|b| *b == b'\n').ok_or_else(|| malformed("no header"))?;
        let kind: EventKind = serde_json::from_slice(&rest[..newline]).map_err(|err| malformed(&err.to_string()))?;
        let frame = match &kind {
            EventKind::Message { .. } | EventKind::Deliver { .. } | EventKind::Custom { .. } => {
                let text = std::str::from_utf8(&rest[newline + 1..]).map_err(|_| malformed("frame is not UTF-8"))?;
                Some(Frame::from(text))
            }
            _ => None,
        };
        Ok(Some(ClusterEvent { kind, frame }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_and_a_node_skips_its_own() {
        let (me, other) = (Uuid::new_v4(), Uuid::new_v4());
        let event = ClusterEvent::with_frame(
            EventKind::Message {
                conversation: ConversationId(Uuid::new_v4()),
                seq: Seq(7),
                sender: UserId(Uuid::new_v4()),
                change: None,
                archived: Some(true),
            },
            Frame::from(r#"{"type":"message:new","data":{}}"#),
        );
        let bytes = event.encode(other);
        assert!(ClusterEvent::decode(&bytes, other).unwrap().is_none());
        let decoded = ClusterEvent::decode(&bytes, me).unwrap().unwrap();
        assert!(matches!(decoded.kind, EventKind::Message { seq: Seq(7), .. }));
        assert_eq!(decoded.frame, event.frame);
        assert!(ClusterEvent::decode(b"short", me).is_err());
    }
}
