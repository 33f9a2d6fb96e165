//! The messages a conversation actor answers, each with its handler. Writes are checked against
//! the live state here, then queued (`writes.rs`); reads of live state answer at once.

use std::sync::atomic::Ordering;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::writes::{Write, later};
use super::{ConversationActor, State};
use crate::actors::presence::MemberSessions;
use crate::error::{Error, Result};
use crate::protocol::{ConversationKind, Message as Msg, MessageKind, ReadState, Role};
use crate::store::{MembershipChange, NewMessage};
use crate::types::{ConversationId, Timestamp, UserId};

/// A member sends a text message (WebSocket `message:send` or REST, the same path).
#[derive(Message, Clone)]
#[rtype(result = "Result<Msg>")]
pub struct SendMessage {
    pub sender: UserId,
    pub body: String,
    pub client_id: Option<String>,
}

/// The group's owner adds `user`; `body` is the system message announcing it.
#[derive(Message, Clone)]
#[rtype(result = "Result<Msg>")]
pub struct AddMember {
    pub by: UserId,
    pub user: UserId,
    pub body: String,
}

/// `user` leaves (`by == user`) or the owner removes them; `body` announces it.
#[derive(Message, Clone)]
#[rtype(result = "Result<Msg>")]
pub struct RemoveMember {
    pub by: UserId,
    pub user: UserId,
    pub body: String,
}

/// Moves `user`'s read marker: forward to `seq` (default: the latest), or with `unread` back to
/// just before `seq`.
#[derive(Message, Clone)]
#[rtype(result = "Result<ReadState>")]
pub struct MarkRead {
    pub user: UserId,
    pub seq: Option<i64>,
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
pub struct Stats;

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
            act.enqueue(write, ctx);
            Ok(())
        });
        match queued.and_then(|checked| checked) {
            Ok(()) => later(rx),
            Err(err) => Box::pin(async move { Err(err) }),
        }
    }

    /// The check common to adding and removing members: a group, `by` a member of it. Says
    /// whether `by` owns it.
    fn group_owned_by(&mut self, by: UserId) -> Result<bool> {
        let live = self.live_for(by)?;
        if live.kind != ConversationKind::Group {
            return Err(Error::bad_request("a direct conversation has fixed members"));
        }
        Ok(live.members.get(&by).map(|m| m.role) == Some(Role::Owner))
    }

    /// The system message announcing `change`, made by `by`.
    fn system_message(&self, by: UserId, body: String, change: MembershipChange) -> NewMessage {
        NewMessage {
            conversation_id: self.id,
            sender: by,
            kind: MessageKind::System,
            body,
            client_id: None,
            membership: Some(change),
        }
    }
}

impl Handler<SendMessage> for ConversationActor {
    type Result = ResponseFuture<Result<Msg>>;

    fn handle(&mut self, msg: SendMessage, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            act.live_for(msg.sender)?;
            let new = NewMessage {
                conversation_id: act.id,
                sender: msg.sender,
                kind: MessageKind::Text,
                body: msg.body,
                client_id: msg.client_id,
                membership: None,
            };
            Ok(Write::append(new, reply))
        })
    }
}

impl Handler<AddMember> for ConversationActor {
    type Result = ResponseFuture<Result<Msg>>;

    fn handle(&mut self, msg: AddMember, ctx: &mut Self::Context) -> Self::Result {
        let max = self.deps.limits.max_group_members;
        self.accept(ctx, |act, reply| {
            if !act.group_owned_by(msg.by)? {
                return Err(Error::Forbidden("only the group's owner adds members".into()));
            }
            let live = act.live()?;
            if live.members.contains_key(&msg.user) {
                return Err(Error::Conflict("already a member".into()));
            }
            if live.members.len() >= max {
                return Err(Error::bad_request(format!("a group has at most {max} members")));
            }
            Ok(Write::append(act.system_message(msg.by, msg.body, MembershipChange::Add(msg.user)), reply))
        })
    }
}

impl Handler<RemoveMember> for ConversationActor {
    type Result = ResponseFuture<Result<Msg>>;

    fn handle(&mut self, msg: RemoveMember, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            if !act.group_owned_by(msg.by)? && msg.by != msg.user {
                return Err(Error::Forbidden("only the group's owner removes other members".into()));
            }
            if !act.live()?.members.contains_key(&msg.user) {
                return Err(Error::NotFound("not a member".into()));
            }
            Ok(Write::append(act.system_message(msg.by, msg.body, MembershipChange::Remove(msg.user)), reply))
        })
    }
}

impl Handler<MarkRead> for ConversationActor {
    type Result = ResponseFuture<Result<ReadState>>;

    fn handle(&mut self, msg: MarkRead, ctx: &mut Self::Context) -> Self::Result {
        self.accept(ctx, |act, reply| {
            let live = act.live_for(msg.user)?;
            let last_seq = live.last_seq;
            let current = live.members.get(&msg.user).map_or(0, |m| m.last_read_seq);
            let seq = match (msg.unread, msg.seq) {
                (false, None) => last_seq,
                // Forward only: an older seq leaves the marker where it is.
                (false, Some(seq)) if (0..=last_seq).contains(&seq) => seq.max(current),
                (true, Some(seq)) if (1..=last_seq).contains(&seq) => seq - 1,
                (true, None) => return Err(Error::bad_request("seq is required")),
                (_, Some(_)) => {
                    return Err(Error::bad_request(format!(
                        "seq must be a message of this conversation (1 to {last_seq})"
                    )));
                }
            };
            Ok(Write::Marker { user: msg.user, seq, moved: seq != current, reply })
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
        Ok(self.live_for(msg.viewer)?.typing.keys().copied().collect())
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
            MemberSessions::Joined(session) => {
                if let Some(member) = live.members.get_mut(&session.user) {
                    member.sessions.push(session);
                }
            }
            MemberSessions::Left { user, session } => {
                let Some(member) = live.members.get_mut(&user) else {
                    return;
                };
                member.sessions.retain(|s| s.id != session);
                // Typing ends when the typist's last session closes (PROTOCOL.md §3).
                if member.sessions.is_empty() && live.typing.contains_key(&user) {
                    let _ = self.set_typing(user, false, ctx);
                }
            }
        }
    }
}

impl Handler<Stats> for ConversationActor {
    type Result = Result<ActorStats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        let State::Live(live) = &self.state else {
            return Err(Error::ActorStopped);
        };
        Ok(ActorStats {
            conversation_id: self.id,
            members: live.members.len(),
            sessions: live.members.values().map(|m| m.sessions.len()).sum(),
            started_at: self.started_at,
            last_activity_at: self.last_activity.1,
            messages_handled: self.messages_handled,
            mailbox: self.queued.load(Ordering::Acquire),
            restarts: self.restarts,
            typing: live.typing.keys().copied().collect(),
        })
    }
}
