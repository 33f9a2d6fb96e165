//! The messages a conversation actor answers, each with its handler. A write is checked against
//! the live state (`live.rs`), queued (`queue.rs`), and answered once committed; reads of the
//! live state answer at once.

use std::sync::atomic::Ordering;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::queue::{Write, when_committed};
use super::{ConversationActor, State};
use crate::actors::presence::MemberSessions;
use crate::error::{Error, Result};
use crate::protocol::{self, ReadState};
use crate::store::{MembershipChange, NewMessage};
use crate::types::{AttachmentId, ConversationId, Seq, Timestamp, UserId};

/// A member sends a text message (WebSocket `message:send` or REST, the same path), with the
/// files they uploaded for it, if any.
#[derive(Message, Clone)]
#[rtype(result = "Result<protocol::Message>")]
pub struct SendMessage {
    pub sender: UserId,
    pub body: String,
    pub client_id: Option<String>,
    pub attachments: Vec<AttachmentId>,
}

/// `by` removes a file sent in this conversation (its uploader, or the group's owner: checked by
/// the caller, which read the attachment); a system message, named `filename`, announces it.
#[derive(Message, Clone)]
#[rtype(result = "Result<protocol::Message>")]
pub struct RemoveAttachment {
    pub by: UserId,
    pub by_name: String,
    pub attachment: AttachmentId,
    pub filename: String,
}

/// The group's owner adds `user`; a system message announces it.
#[derive(Message, Clone)]
#[rtype(result = "Result<protocol::Message>")]
pub struct AddMember {
    pub by: UserId,
    pub user: UserId,
}

/// `user` leaves (`by == user`) or the owner removes them; a system message announces it.
#[derive(Message, Clone)]
#[rtype(result = "Result<protocol::Message>")]
pub struct RemoveMember {
    pub by: UserId,
    pub user: UserId,
}

/// Moves `user`'s read marker: forward to `seq` (default: the latest), or with `unread` back to
/// just before `seq`.
#[derive(Message, Clone)]
#[rtype(result = "Result<ReadState>")]
pub struct MarkRead {
    pub user: UserId,
    pub seq: Option<Seq>,
    pub unread: bool,
}

/// `typing:start` / `typing:stop`.
#[derive(Message, Clone)]
#[rtype(result = "Result<()>")]
pub struct Typing {
    pub user: UserId,
    pub typing: bool,
}

/// Who is typing now, for a member opening the conversation.
#[derive(Message, Clone)]
#[rtype(result = "Result<Vec<UserId>>")]
pub struct Typists {
    pub viewer: UserId,
}

/// Test-only fault injection: the handler panics (see `Config::fault_injection`).
#[derive(Message, Clone)]
#[rtype(result = "Result<()>")]
pub struct InjectFault;

/// What the actor is doing, for the admin endpoint (PROTOCOL.md §5).
#[derive(Message, Clone)]
#[rtype(result = "Result<ActorStats>")]
pub struct Inspect;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ActorStats {
    pub conversation_id: ConversationId,
    pub members: usize,
    pub sessions: usize,
    pub started_at: Timestamp,
    pub last_activity_at: Timestamp,
    pub messages_handled: u64,
    pub mailbox: usize,
    pub restarts: u32,
    pub typing: Vec<UserId>,
}

impl ConversationActor {
    /// Checks a write with `build` (which wraps it around the reply channel), queues it, and
    /// answers once it has committed; or answers the check's error at once.
    fn accept<T: Send + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        build: impl FnOnce(&mut Self, oneshot::Sender<Result<T>>) -> Result<Write>,
    ) -> ResponseFuture<Result<T>> {
        let (reply, rx) = oneshot::channel();
        let queued = self.guarded(ctx, |act, ctx| {
            let write = build(act, reply)?;
            act.touch();
            act.queue.enqueue(write, act.deps.limits.send_deadline());
            act.next_write(ctx);
            Ok(())
        });
        match queued.and_then(|checked| checked) {
            Ok(()) => when_committed(rx),
            Err(err) => Box::pin(async move { Err(err) }),
        }
    }
}

impl Handler<SendMessage> for ConversationActor {
    type Result = ResponseFuture<Result<protocol::Message>>;

    fn handle(&mut self, msg: SendMessage, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            act.live_for(msg.sender)?;
            let new = NewMessage::text(act.id, msg.sender, msg.body, msg.client_id, msg.attachments);
            Ok(Write::send(new, reply))
        })
    }
}

impl Handler<RemoveAttachment> for ConversationActor {
    type Result = ResponseFuture<Result<protocol::Message>>;

    fn handle(&mut self, msg: RemoveAttachment, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            act.live_for(msg.by)?;
            let body = crate::rules::removal_text(&msg.by_name, &msg.filename);
            let new = NewMessage { removal: Some(msg.attachment), ..NewMessage::system(act.id, msg.by, body) };
            Ok(Write::send(new, reply))
        })
    }
}

impl Handler<AddMember> for ConversationActor {
    type Result = ResponseFuture<Result<protocol::Message>>;

    fn handle(&mut self, msg: AddMember, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            let limits = act.deps.limits.clone();
            act.live_for(msg.by)?.check_add(msg.by, msg.user, &limits)?;
            Ok(Write::membership(msg.by, MembershipChange::Add(msg.user), reply))
        })
    }
}

impl Handler<RemoveMember> for ConversationActor {
    type Result = ResponseFuture<Result<protocol::Message>>;

    fn handle(&mut self, msg: RemoveMember, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            act.live_for(msg.by)?.check_remove(msg.by, msg.user)?;
            Ok(Write::membership(msg.by, MembershipChange::Remove(msg.user), reply))
        })
    }
}

impl Handler<MarkRead> for ConversationActor {
    type Result = ResponseFuture<Result<ReadState>>;

    fn handle(&mut self, msg: MarkRead, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            let (seq, moved) = act.live_for(msg.user)?.marker_target(msg.user, msg.seq, msg.unread)?;
            Ok(Write::Marker { user: msg.user, seq, moved, reply })
        })
    }
}

impl Handler<Typing> for ConversationActor {
    type Result = Result<()>;

    fn handle(&mut self, msg: Typing, ctx: &mut Self::Context) -> Self::Result {
        self.guarded(ctx, |act, ctx| {
            act.touch();
            act.set_typing(msg.user, msg.typing, ctx)
        })?
    }
}

impl Handler<Typists> for ConversationActor {
    type Result = Result<Vec<UserId>>;

    fn handle(&mut self, msg: Typists, _: &mut Self::Context) -> Self::Result {
        Ok(self.live_for(msg.viewer)?.typists())
    }
}

impl Handler<InjectFault> for ConversationActor {
    type Result = Result<()>;

    fn handle(&mut self, _: InjectFault, ctx: &mut Self::Context) -> Self::Result {
        self.guarded(ctx, |_, _| panic!("injected fault"))
    }
}

impl Handler<MemberSessions> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: MemberSessions, ctx: &mut Self::Context) {
        let Ok(live) = self.live() else { return };
        match msg {
            MemberSessions::Joined(session) => live.session_joined(session),
            MemberSessions::Left { user, session } => {
                // Typing ends when the typist's last session closes (PROTOCOL.md §3).
                if live.session_left(user, session) && live.is_typing(user) {
                    let _ = self.set_typing(user, false, ctx);
                }
            }
        }
    }
}

impl Handler<Inspect> for ConversationActor {
    type Result = Result<ActorStats>;

    fn handle(&mut self, _: Inspect, _: &mut Self::Context) -> Self::Result {
        let State::Live(live) = &self.state else {
            return Err(Error::ActorStopped);
        };
        Ok(ActorStats {
            conversation_id: self.id,
            members: live.member_count(),
            sessions: live.session_count(),
            started_at: self.started_at,
            last_activity_at: self.last_activity.1,
            messages_handled: self.messages_handled,
            mailbox: self.queued.load(Ordering::Acquire),
            restarts: self.restarts,
            typing: live.typists(),
        })
    }
}
