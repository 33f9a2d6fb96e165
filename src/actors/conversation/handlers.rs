//! The messages a conversation actor answers, each with its handler. A write is checked against
//! the live state (`live.rs`), queued (`queue.rs`), and answered once committed; reads of the
//! live state answer at once.

use std::sync::atomic::Ordering;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::queue::{Composed, Write, when_committed};
use super::{ConversationActor, State};
use crate::actors::presence::MemberSessions;
use crate::cluster::{ClusterEvent, EventKind};
use crate::error::{Error, Result};
use crate::protocol::{self, Frame, ReadState, Role};
use crate::store::{MembershipChange, NewMessage};
use crate::system_messages::Own;
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
/// the caller, which read the attachment); a system message, naming `filename`, announces it.
#[derive(Message, Clone)]
#[rtype(result = "Result<protocol::Message>")]
pub struct RemoveAttachment {
    pub by: UserId,
    pub by_name: String,
    pub attachment: AttachmentId,
    pub filename: String,
}

/// The group's owner (`by`), or the service (`None`), adds `user` as `role`; a system message
/// announces it.
#[derive(Message, Clone)]
#[rtype(result = "Result<protocol::Message>")]
pub struct AddMember {
    pub by: Option<UserId>,
    pub user: UserId,
    pub role: Role,
}

/// `user` leaves (`by == user`), or the owner or the service (`None`) removes them; a system
/// message announces it.
#[derive(Message, Clone)]
#[rtype(result = "Result<protocol::Message>")]
pub struct RemoveMember {
    pub by: Option<UserId>,
    pub user: UserId,
}

/// The group's owner (`by`), or the service (`None`), archives (`archive`) or restores the
/// conversation; a system message announces it, in `seq` order, so `sync` replays it.
#[derive(Message, Clone)]
#[rtype(result = "Result<protocol::Message>")]
pub struct Archive {
    pub by: Option<UserId>,
    pub archive: bool,
}

/// A system message of the host's (sent by the system user), in `seq` order with the rest.
#[derive(Message, Clone)]
#[rtype(result = "Result<protocol::Message>")]
pub struct PostSystem {
    pub new: NewMessage,
}

/// An event of the host's for every session of this conversation's members, on every node, in
/// order with its messages. Not stored.
#[derive(Message, Clone)]
#[rtype(result = "Result<()>")]
pub struct PushEvent {
    pub frame: Frame,
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
            act.live_for(msg.sender)?.check_post(msg.sender, "post")?;
            let new = NewMessage::text(act.id, msg.sender, msg.body, msg.client_id, msg.attachments);
            Ok(Write::send(new, reply))
        })
    }
}

impl Handler<RemoveAttachment> for ConversationActor {
    type Result = ResponseFuture<Result<protocol::Message>>;

    fn handle(&mut self, msg: RemoveAttachment, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            act.live_for(msg.by)?.check_open()?;
            let text = Own::AttachmentRemoved { by: (msg.by, &msg.by_name), filename: &msg.filename }
                .render(act.deps.language);
            let new = NewMessage { removal: Some(msg.attachment), ..NewMessage::system(act.id, msg.by, text) };
            Ok(Write::send(new, reply))
        })
    }
}

impl Handler<AddMember> for ConversationActor {
    type Result = ResponseFuture<Result<protocol::Message>>;

    fn handle(&mut self, msg: AddMember, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            let limits = act.deps.limits.clone();
            act.acting(msg.by)?.check_add(msg.by, msg.user, msg.role, &limits)?;
            Ok(Write::compose(msg.by, Composed::Membership(MembershipChange::Add(msg.user, msg.role)), reply))
        })
    }
}

impl Handler<RemoveMember> for ConversationActor {
    type Result = ResponseFuture<Result<protocol::Message>>;

    fn handle(&mut self, msg: RemoveMember, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            act.acting(msg.by)?.check_remove(msg.by, msg.user)?;
            Ok(Write::compose(msg.by, Composed::Membership(MembershipChange::Remove(msg.user)), reply))
        })
    }
}

impl Handler<Archive> for ConversationActor {
    type Result = ResponseFuture<Result<protocol::Message>>;

    fn handle(&mut self, msg: Archive, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            act.acting(msg.by)?.check_archive(msg.by)?;
            Ok(Write::compose(msg.by, Composed::Archive(msg.archive), reply))
        })
    }
}

impl Handler<PostSystem> for ConversationActor {
    type Result = ResponseFuture<Result<protocol::Message>>;

    fn handle(&mut self, msg: PostSystem, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            act.acting(None)?.check_open()?;
            Ok(Write::send(msg.new, reply))
        })
    }
}

impl Handler<PushEvent> for ConversationActor {
    type Result = Result<()>;

    fn handle(&mut self, msg: PushEvent, _: &mut Self::Context) -> Self::Result {
        self.acting(None)?;
        self.touch();
        self.broadcast(&msg.frame, None);
        self.deps.broker.publish(ClusterEvent::with_frame(EventKind::Custom { conversation: self.id }, msg.frame));
        Ok(())
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
            if msg.typing {
                act.live_for(msg.user)?.check_post(msg.user, "type")?;
            }
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
