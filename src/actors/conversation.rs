//! ConversationActor: one per active conversation, the only writer of its conversation on this
//! node. Writes (sends, membership changes, read markers) queue here and commit one after
//! another, so `seq` order, idempotency and broadcast never differ by transport. Each commit
//! is then broadcast (encoded once, the same bytes to every member's session) and only then
//! acknowledged. The actor also owns the live state: members and their sessions, read
//! markers, who is typing and until when.
//!
//! It runs under actix's `Supervisor`: a fault (a panic in one of its handlers) stops it, and the
//! supervisor restarts it in place, from the database, with its mailbox and queued writes intact.
//! No other conversation and no session notices.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::outbox::SessionHandle;
use super::presence::{DeliverTo, MemberSessions, Presence, Unwatch, Watch};
use super::registry::Registry;
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::protocol::{ConversationKind, Event, Frame, Message as Msg, MessageKind, ReadState, Role};
use crate::store::{Appended, MembershipChange, NewMessage, Store};
use crate::types::{ConversationId, Timestamp, UserId};

/// What every conversation actor needs, shared.
#[derive(Clone)]
pub struct Deps {
    pub store: Store,
    pub presence: Addr<Presence>,
    pub limits: Arc<Limits>,
}

pub struct ConversationActor {
    id: ConversationId,
    deps: Deps,
    registry: Weak<Registry>,
    queued: Arc<AtomicUsize>,
    state: State,
    /// Writes waiting for the one in flight; they survive a restart.
    writes: VecDeque<Write>,
    /// The reply of the write being committed, if any.
    in_flight: Option<Reply>,
    unread: UnreadUpdates,
    typing_ticker: Option<SpawnHandle>,
    started_at: Timestamp,
    last_activity: (Instant, Timestamp),
    messages_handled: u64,
    restarts: u32,
    /// Set when the actor has left the registry: from then on it only refuses work.
    retired: bool,
}

enum State {
    Loading,
    /// The conversation does not exist: every request gets `not_found`.
    Missing,
    /// The database could not be read: every request gets `unavailable`.
    Unreadable,
    Live(Live),
}

struct Live {
    kind: ConversationKind,
    last_seq: i64,
    members: HashMap<UserId, MemberState>,
    /// Typists and when their typing ends by itself.
    typing: HashMap<UserId, Instant>,
}

struct MemberState {
    role: Role,
    last_read_seq: i64,
    sessions: Vec<SessionHandle>,
}

enum Write {
    Append { new: NewMessage, reply: oneshot::Sender<Result<Msg>> },
    Marker { user: UserId, seq: i64, reply: oneshot::Sender<Result<ReadState>> },
}

enum Reply {
    Append(oneshot::Sender<Result<Msg>>, Option<MembershipChange>),
    Marker(oneshot::Sender<Result<ReadState>>),
}

/// `unread:updated` to recipients after sends, coalesced: at most one totals query in flight,
/// and all the users that changed meanwhile go in the next one.
#[derive(Default)]
struct UnreadUpdates {
    dirty: HashSet<UserId>,
    querying: bool,
}

impl ConversationActor {
    pub(super) fn new(
        id: ConversationId,
        deps: Deps,
        registry: Weak<Registry>,
        queued: Arc<AtomicUsize>,
        restarts: u32,
        ctx: &mut Context<Self>,
    ) -> Self {
        // Our own count (`queued`) bounds the mailbox; actix's must not park senders before it.
        ctx.set_mailbox_capacity(deps.limits.conversation_mailbox + 64);
        let now = Timestamp::now();
        ConversationActor {
            id,
            deps,
            registry,
            queued,
            state: State::Loading,
            writes: VecDeque::new(),
            in_flight: None,
            unread: UnreadUpdates::default(),
            typing_ticker: None,
            started_at: now,
            last_activity: (Instant::now(), now),
            messages_handled: 0,
            restarts,
            retired: false,
        }
    }

    /// Loads members and read markers, and the sessions of the members, before handling anything.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let (id, store, presence) = (self.id, self.deps.store.clone(), self.deps.presence.clone());
        let watcher = ctx.address().downgrade().recipient();
        let load = async move {
            let Some(row) = store.conversation_row(id).await? else {
                return Ok(None);
            };
            let members = store.members(id).await?;
            let users = members.iter().map(|m| m.user_id).collect();
            let sessions =
                presence.send(Watch { conversation: id, users, watcher }).await.map_err(|_| Error::ActorStopped)?;
            Ok::<_, Error>(Some((row, members, sessions)))
        };
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(Some((row, members, mut sessions))) => {
                let members = members
                    .into_iter()
                    .map(|m| {
                        let sessions = sessions.remove(&m.user_id).unwrap_or_default();
                        (m.user_id, MemberState { role: m.role, last_read_seq: m.last_read_seq, sessions })
                    })
                    .collect();
                act.state =
                    State::Live(Live { kind: row.kind, last_seq: row.last_seq, members, typing: HashMap::new() });
                act.next_write(ctx);
            }
            Ok(None) => {
                act.state = State::Missing;
                act.fail_writes(Error::no_conversation);
                act.retire_soon(ctx);
            }
            Err(err) => {
                log::warn!("conversation {}: cannot load: {err}", act.id);
                act.state = State::Unreadable;
                act.fail_writes(|| Error::Unavailable("the database is unavailable".into()));
                act.retire_soon(ctx);
            }
        }));
    }

    /// Runs `f`, turning a panic into a fault: the actor stops and its supervisor restarts it.
    fn guarded<R>(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>) -> R) -> Result<R> {
        std::panic::catch_unwind(AssertUnwindSafe(|| f(self, ctx))).map_err(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or(panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("panic");
            log::error!("conversation {}: fault ({what}); restarting from the database", self.id);
            ctx.stop();
            Error::Internal(format!("conversation {} fault: {what}", self.id))
        })
    }

    fn touch(&mut self) {
        self.last_activity = (Instant::now(), Timestamp::now());
        self.messages_handled += 1;
    }

    fn live(&mut self) -> Result<&mut Live> {
        match &mut self.state {
            State::Live(live) => Ok(live),
            State::Missing => Err(Error::no_conversation()),
            State::Unreadable => Err(Error::Unavailable("the database is unavailable".into())),
            // Messages are not handled while loading (`ctx.wait`), so this is a retired actor.
            State::Loading => Err(Error::ActorStopped),
        }
    }

    /// The live state, if `user` is a member; non-members get the same 404 as strangers.
    fn live_for(&mut self, user: UserId) -> Result<&mut Live> {
        if self.retired {
            return Err(Error::ActorStopped);
        }
        let live = self.live()?;
        if live.members.contains_key(&user) { Ok(live) } else { Err(Error::no_conversation()) }
    }

    fn fail_writes(&mut self, err: impl Fn() -> Error) {
        for write in self.writes.drain(..) {
            match write {
                Write::Append { reply, .. } => drop(reply.send(Err(err()))),
                Write::Marker { reply, .. } => drop(reply.send(Err(err()))),
            }
        }
    }

    fn enqueue(&mut self, write: Write, ctx: &mut Context<Self>) {
        self.writes.push_back(write);
        self.next_write(ctx);
    }

    /// Starts the next queued write unless one is in flight.
    fn next_write(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() || !matches!(self.state, State::Live(_)) {
            return;
        }
        let Some(write) = self.writes.pop_front() else {
            return;
        };
        let store = self.deps.store.clone();
        match write {
            Write::Append { new, reply } => {
                self.in_flight = Some(Reply::Append(reply, new.membership));
                let commit = async move { store.append(&new).await };
                ctx.spawn(AssertUnwindSafe(commit).catch_unwind().into_actor(self).map(|result, act, ctx| {
                    let Some(Reply::Append(reply, membership)) = act.in_flight.take() else {
                        return;
                    };
                    match result {
                        Ok(Ok(appended)) => {
                            // A fault here drops `reply`: the caller hears "interrupted".
                            let _ = act.guarded(ctx, |act, ctx| act.committed(appended, membership, reply, ctx));
                        }
                        Ok(Err(err)) => drop(reply.send(Err(err))),
                        Err(_) => drop(act.guarded(ctx, |_, _| panic!("the append panicked"))),
                    }
                    act.next_write(ctx);
                }));
            }
            Write::Marker { user, seq, reply } => {
                self.in_flight = Some(Reply::Marker(reply));
                let id = self.id;
                let commit = async move {
                    store.set_read_marker(id, user, seq).await?;
                    store.total_unread(user).await
                };
                ctx.spawn(commit.into_actor(self).map(move |result, act, ctx| {
                    let Some(Reply::Marker(reply)) = act.in_flight.take() else {
                        return;
                    };
                    let outcome = result.and_then(|total| act.marker_moved(user, seq, total));
                    let _ = reply.send(outcome);
                    act.next_write(ctx);
                }));
            }
        }
    }

    /// After a message committed: update the live state, broadcast, then ack.
    fn committed(
        &mut self,
        appended: Appended,
        membership: Option<MembershipChange>,
        reply: oneshot::Sender<Result<Msg>>,
        ctx: &mut Context<Self>,
    ) {
        let message = appended.message;
        if appended.duplicate {
            let _ = reply.send(Ok(message)); // stored and broadcast the first time
            return;
        }
        let (id, sender, seq) = (self.id, message.sender_id, message.seq);
        let State::Live(live) = &mut self.state else {
            return;
        };
        live.last_seq = live.last_seq.max(seq);
        if let Some(member) = live.members.get_mut(&sender) {
            member.last_read_seq = seq;
        }
        if live.typing.remove(&sender).is_some() {
            self.broadcast(
                &Event::TypingUpdated { conversation_id: id, user_id: sender, typing: false }.encode(),
                Some(sender),
            );
        }
        self.queue_unread(sender, ctx);
        let frame = Event::MessageNew { message: &message }.encode();
        match membership {
            None => {
                self.broadcast(&frame, None);
                let _ = reply.send(Ok(message));
            }
            Some(MembershipChange::Add(user)) => {
                // The newcomer's sessions must be known before the broadcast, so the actor waits
                // for Presence (nothing else of this conversation runs meanwhile).
                let watch =
                    Watch { conversation: id, users: vec![user], watcher: ctx.address().downgrade().recipient() };
                ctx.wait(self.deps.presence.send(watch).into_actor(self).map(move |sessions, act, _| {
                    if let State::Live(live) = &mut act.state {
                        let sessions = sessions.ok().and_then(|mut s| s.remove(&user)).unwrap_or_default();
                        live.members.insert(user, MemberState { role: Role::Member, last_read_seq: seq - 1, sessions });
                    }
                    act.broadcast(&frame, None);
                    act.announce_membership(MembershipChange::Add(user));
                    let _ = reply.send(Ok(message));
                }));
            }
            Some(MembershipChange::Remove(user)) => {
                self.broadcast(&frame, None); // the leaver sees their leaving too
                live_members_remove(&mut self.state, user, appended.new_owner);
                self.deps.presence.do_send(Unwatch { conversation: id, users: vec![user] });
                self.announce_membership(MembershipChange::Remove(user));
                let _ = reply.send(Ok(message));
            }
        }
    }

    /// `conversation:updated` to everyone concerned, each with their own unread count.
    fn announce_membership(&mut self, change: MembershipChange) {
        let Ok(live) = self.live() else { return };
        let mut users: Vec<UserId> = live.members.keys().copied().collect();
        if let MembershipChange::Remove(user) = change {
            users.push(user); // so that their clients drop the conversation
        }
        let (id, store, presence) = (self.id, self.deps.store.clone(), self.deps.presence.clone());
        actix::spawn(async move {
            for user in users {
                match store.conversations_for(user, &[id]).await {
                    Ok(found) => {
                        for conversation in &found {
                            let frame = Event::ConversationUpdated { conversation }.encode();
                            presence.do_send(DeliverTo { users: vec![user], frame });
                        }
                    }
                    Err(err) => {
                        log::warn!("conversation {id}: cannot announce a membership change: {err}")
                    }
                }
            }
        });
    }

    fn marker_moved(&mut self, user: UserId, seq: i64, total_unread: i64) -> Result<ReadState> {
        let id = self.id;
        let live = self.live()?;
        let last_seq = live.last_seq;
        let Some(member) = live.members.get_mut(&user) else {
            return Err(Error::no_conversation());
        };
        member.last_read_seq = seq;
        let state = ReadState { last_read_seq: seq, unread_count: (last_seq - seq).max(0), total_unread };
        let unread =
            Event::UnreadUpdated { conversation_id: id, unread_count: state.unread_count, total_unread }.encode();
        for session in &member.sessions {
            session.deliver(&unread);
        }
        self.broadcast(&Event::ReadUpdated { conversation_id: id, user_id: user, last_read_seq: seq }.encode(), None);
        Ok(state)
    }

    /// Sends `frame` to every session of every member, but those of `except`.
    fn broadcast(&self, frame: &Frame, except: Option<UserId>) {
        if let State::Live(live) = &self.state {
            for (user, member) in &live.members {
                if Some(*user) != except {
                    for session in &member.sessions {
                        session.deliver(frame);
                    }
                }
            }
        }
    }

    /// After a send: the other online members' unread counts changed.
    fn queue_unread(&mut self, sender: UserId, ctx: &mut Context<Self>) {
        if let State::Live(live) = &self.state {
            let changed = live.members.iter().filter(|(u, m)| **u != sender && !m.sessions.is_empty()).map(|(u, _)| *u);
            self.unread.dirty.extend(changed);
        }
        self.flush_unread(ctx);
    }

    fn flush_unread(&mut self, ctx: &mut Context<Self>) {
        if self.unread.querying || self.unread.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.unread.dirty);
        let State::Live(live) = &self.state else {
            return;
        };
        // Counts are taken now, before the totals query starts, so that a total is never below
        // the count it comes with; any later change is in the next round.
        let last_seq = live.last_seq;
        let counts: Vec<(UserId, i64)> = dirty
            .into_iter()
            .filter_map(|u| live.members.get(&u).map(|m| (u, (last_seq - m.last_read_seq).max(0))))
            .collect();
        let users: Vec<UserId> = counts.iter().map(|(u, _)| *u).collect();
        self.unread.querying = true;
        let store = self.deps.store.clone();
        let id = self.id;
        ctx.spawn(async move { store.unread_totals(&users).await }.into_actor(self).map(move |totals, act, ctx| {
            act.unread.querying = false;
            match totals {
                Ok(totals) => {
                    if let State::Live(live) = &act.state {
                        for (user, unread_count) in counts {
                            let total_unread = totals.get(&user).copied().unwrap_or(0).max(unread_count);
                            let frame =
                                Event::UnreadUpdated { conversation_id: id, unread_count, total_unread }.encode();
                            for session in live.members.get(&user).map_or(&[][..], |m| &m.sessions) {
                                session.deliver(&frame);
                            }
                        }
                    }
                }
                Err(err) => {
                    log::warn!("conversation {id}: cannot compute unread totals: {err}")
                }
            }
            act.flush_unread(ctx);
        }));
    }

    fn set_typing(&mut self, user: UserId, typing: bool, ctx: &mut Context<Self>) -> Result<()> {
        let timeout = self.deps.limits.typing_timeout();
        let live = self.live_for(user)?;
        let changed = if typing {
            live.typing.insert(user, Instant::now() + timeout).is_none()
        } else {
            live.typing.remove(&user).is_some()
        };
        if changed {
            self.broadcast(
                &Event::TypingUpdated { conversation_id: self.id, user_id: user, typing }.encode(),
                Some(user),
            );
        }
        if typing && self.typing_ticker.is_none() {
            // One ticker while anyone types, rather than a timer per typing:start.
            let tick = (timeout / 10).max(Duration::from_millis(50));
            self.typing_ticker = Some(ctx.run_interval(tick, |act, ctx| act.expire_typing(ctx)));
        }
        Ok(())
    }

    fn expire_typing(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let id = self.id;
        let expired: Vec<UserId> = match &mut self.state {
            State::Live(live) => {
                let expired =
                    live.typing.iter().filter(|(_, until)| **until <= now).map(|(u, _)| *u).collect::<Vec<_>>();
                for user in &expired {
                    live.typing.remove(user);
                }
                if live.typing.is_empty()
                    && let Some(ticker) = self.typing_ticker.take()
                {
                    ctx.cancel_future(ticker);
                }
                expired
            }
            _ => Vec::new(),
        };
        for user in expired {
            self.broadcast(
                &Event::TypingUpdated { conversation_id: id, user_id: user, typing: false }.encode(),
                Some(user),
            );
        }
    }

    /// Leaves the registry and stops for good (no restart: nothing else holds a strong address
    /// for long, and a restarted retired actor only refuses work).
    fn retire(&mut self, ctx: &mut Context<Self>) {
        self.retired = true;
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(self.id, &ctx.address());
        }
        if let State::Live(live) = &self.state {
            let users = live.members.keys().copied().collect();
            self.deps.presence.do_send(Unwatch { conversation: self.id, users });
        }
        ctx.stop();
    }

    /// Retires once the requests already in the mailbox have had their answer (the mailbox is
    /// handled before timers), so that they get `not_found` or `unavailable`, not a retry.
    fn retire_soon(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(Duration::ZERO, |act, ctx| act.retire(ctx));
    }

    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        let idle = Duration::from_secs(self.deps.limits.conversation_idle_secs);
        let typing = matches!(&self.state, State::Live(live) if !live.typing.is_empty());
        if self.last_activity.0.elapsed() >= idle
            && self.in_flight.is_none()
            && self.writes.is_empty()
            && !typing
            && !self.unread.querying
        {
            log::debug!("conversation {}: idle, stopping", self.id);
            self.retire(ctx);
        }
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.retired {
            return; // restarted after retiring: answer what arrives with "retry", then end
        }
        let idle = Duration::from_secs(self.deps.limits.conversation_idle_secs);
        ctx.run_interval((idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30)), |act, ctx| {
            act.check_idle(ctx)
        });
        self.load(ctx);
    }
}

impl Supervised for ConversationActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        if self.retired {
            return;
        }
        self.restarts += 1;
        self.state = State::Loading;
        self.typing_ticker = None;
        self.unread = UnreadUpdates::default();
        // The write in flight may or may not have committed: its sender retries with its
        // client_id, which makes the retry safe. Queued writes run after the reload.
        match self.in_flight.take() {
            Some(Reply::Append(reply, _)) => drop(
                reply.send(Err(Error::Unavailable("interrupted by a fault: retry with the same client_id".into()))),
            ),
            Some(Reply::Marker(reply)) => {
                drop(reply.send(Err(Error::Unavailable("interrupted by a fault: retry".into()))))
            }
            None => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

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

/// A reply that arrives once a queued write has committed. A reply dropped unsent means a
/// fault interrupted the write after it was taken: it may have committed, so this is not
/// `ActorStopped` (which callers retry blindly) but a plain `unavailable`.
/// `user` left; `new_owner` (chosen by the store, in the same transaction) owns the group now.
fn live_members_remove(state: &mut State, user: UserId, new_owner: Option<UserId>) {
    if let State::Live(live) = state {
        live.members.remove(&user);
        live.typing.remove(&user);
        if let Some(owner) = new_owner.and_then(|id| live.members.get_mut(&id)) {
            owner.role = Role::Owner;
        }
    }
}

fn later<T: Send + 'static>(rx: oneshot::Receiver<Result<T>>) -> ResponseFuture<Result<T>> {
    Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| Err(Error::Unavailable("interrupted by a fault: retry with the same client_id".into())))
    })
}

impl Handler<SendMessage> for ConversationActor {
    type Result = ResponseFuture<Result<Msg>>;

    fn handle(&mut self, msg: SendMessage, ctx: &mut Self::Context) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        let queued = self.guarded(ctx, |act, ctx| {
            act.live_for(msg.sender)?;
            act.touch();
            let new = NewMessage {
                conversation_id: act.id,
                sender: msg.sender,
                kind: MessageKind::Text,
                body: msg.body,
                client_id: msg.client_id,
                membership: None,
            };
            act.enqueue(Write::Append { new, reply }, ctx);
            Ok(())
        });
        match queued.and_then(|r| r) {
            Ok(()) => later(rx),
            Err(err) => Box::pin(async move { Err(err) }),
        }
    }
}

impl Handler<AddMember> for ConversationActor {
    type Result = ResponseFuture<Result<Msg>>;

    fn handle(&mut self, msg: AddMember, ctx: &mut Self::Context) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        let max = self.deps.limits.max_group_members;
        let queued = self.guarded(ctx, |act, ctx| {
            let live = act.live_for(msg.by)?;
            if live.kind != ConversationKind::Group {
                return Err(Error::bad_request("a direct conversation has fixed members"));
            }
            if live.members.get(&msg.by).map(|m| m.role) != Some(Role::Owner) {
                return Err(Error::Forbidden("only the group's owner adds members".into()));
            }
            if live.members.contains_key(&msg.user) {
                return Err(Error::Conflict("already a member".into()));
            }
            if live.members.len() >= max {
                return Err(Error::bad_request(format!("a group has at most {max} members")));
            }
            act.touch();
            let new = NewMessage {
                conversation_id: act.id,
                sender: msg.by,
                kind: MessageKind::System,
                body: msg.body,
                client_id: None,
                membership: Some(MembershipChange::Add(msg.user)),
            };
            act.enqueue(Write::Append { new, reply }, ctx);
            Ok(())
        });
        match queued.and_then(|r| r) {
            Ok(()) => later(rx),
            Err(err) => Box::pin(async move { Err(err) }),
        }
    }
}

impl Handler<RemoveMember> for ConversationActor {
    type Result = ResponseFuture<Result<Msg>>;

    fn handle(&mut self, msg: RemoveMember, ctx: &mut Self::Context) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        let queued = self.guarded(ctx, |act, ctx| {
            let live = act.live_for(msg.by)?;
            if live.kind != ConversationKind::Group {
                return Err(Error::bad_request("a direct conversation has fixed members"));
            }
            if msg.by != msg.user && live.members.get(&msg.by).map(|m| m.role) != Some(Role::Owner) {
                return Err(Error::Forbidden("only the group's owner removes other members".into()));
            }
            if !live.members.contains_key(&msg.user) {
                return Err(Error::NotFound("not a member".into()));
            }
            act.touch();
            let new = NewMessage {
                conversation_id: act.id,
                sender: msg.by,
                kind: MessageKind::System,
                body: msg.body,
                client_id: None,
                membership: Some(MembershipChange::Remove(msg.user)),
            };
            act.enqueue(Write::Append { new, reply }, ctx);
            Ok(())
        });
        match queued.and_then(|r| r) {
            Ok(()) => later(rx),
            Err(err) => Box::pin(async move { Err(err) }),
        }
    }
}

impl Handler<MarkRead> for ConversationActor {
    type Result = ResponseFuture<Result<ReadState>>;

    fn handle(&mut self, msg: MarkRead, ctx: &mut Self::Context) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        let queued = self.guarded(ctx, |act, ctx| {
            let live = act.live_for(msg.user)?;
            let last_seq = live.last_seq;
            let current = live.members.get(&msg.user).map_or(0, |m| m.last_read_seq);
            let target = match (msg.unread, msg.seq) {
                (false, None) => last_seq,
                (false, Some(seq)) if (0..=last_seq).contains(&seq) => seq.max(current),
                (true, Some(seq)) if (1..=last_seq).contains(&seq) => seq - 1,
                (true, None) => return Err(Error::bad_request("seq is required")),
                (_, Some(_)) => {
                    return Err(Error::bad_request(format!(
                        "seq must be a message of this conversation (1 to {last_seq})"
                    )));
                }
            };
            act.touch();
            act.enqueue(Write::Marker { user: msg.user, seq: target, reply }, ctx);
            Ok(())
        });
        match queued.and_then(|r| r) {
            Ok(()) => later(rx),
            Err(err) => Box::pin(async move { Err(err) }),
        }
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
