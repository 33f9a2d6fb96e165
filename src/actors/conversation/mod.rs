//! ConversationActor: one per active conversation, the only writer of its conversation on this
//! node. Writes (sends, membership changes, read markers) queue here and commit one after
//! another, so `seq` order, idempotency and broadcast never differ by transport. Each commit
//! is then broadcast (encoded once, the same bytes to every member's session) and only then
//! acknowledged.
//!
//! It runs under actix's `Supervisor`: a fault (a panic in one of its handlers) stops it, and the
//! supervisor restarts it in place, from the database, with its mailbox and queued writes intact.
//! No other conversation and no session notices.
//!
//! The actor is the wiring: its timers, spawns and sends. What it decides lives in its parts,
//! which know nothing of actix and are unit-tested on their own:
//! - `live.rs`: the live state (members, read markers, sessions, typing) and the one
//!   `apply_committed` that local and remote commits share;
//! - `queue.rs`: the write queue (batching, shedding, the replies of the write in flight);
//! - `order.rs`: the `Sequencer` (delivery in `seq` order across nodes, gap fills);
//! - `unread.rs`: `unread:updated` coalescing.
//!
//! Here: the actor, its lifecycle (load, supervision, retirement), typing and its timer, and
//! the sends to sessions. In `commits.rs`: a write from its commit to its acknowledgement. In
//! `handlers.rs`: the messages it answers; in `remote.rs`: those from the cluster.

mod commits;
mod handlers;
mod live;
mod order;
mod queue;
mod remote;
mod unread;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::outgoing::SessionHandle;
use super::presence::{Presence, Unwatch, Watch};
use super::registry::Registry;
use crate::cluster::{Broker, ClusterEvent, EventKind};
use crate::config::{Language, Limits};
use crate::error::{Error, Result};
use crate::protocol::{Event, Frame};
use crate::store::models::MemberRow;
use crate::store::{Committer, Store};
use crate::types::{ConversationId, Timestamp, UserId};

pub use handlers::{
    ActorStats, AddMember, Archive, InjectFault, Inspect, MarkRead, PostSystem, PushEvent, RemoveAttachment,
    RemoveMember, SendMessage, Typing, Typists,
};
use live::Live;
use order::Sequencer;
use queue::WriteQueue;
pub use remote::{Reload, Remote};
use unread::UnreadUpdates;

/// What every conversation actor needs, shared.
#[derive(Clone)]
pub struct ConversationDeps {
    pub store: Store,
    pub committer: Committer,
    pub presence: Addr<Presence>,
    pub broker: Broker,
    pub limits: Arc<Limits>,
    /// The language of Parley's own system messages.
    pub language: Language,
    /// With other nodes committing too (a cluster), how long a message that arrives ahead of a
    /// missing `seq` is held before the gap is read from the database; `None` on a lone node,
    /// where this actor is the only writer and commits arrive in order.
    pub gap_wait: Option<Duration>,
}

pub struct ConversationActor {
    id: ConversationId,
    deps: ConversationDeps,
    registry: Weak<Registry>,
    queued: Arc<AtomicUsize>,
    state: State,
    /// Writes waiting, and the one in flight; queued writes survive a restart.
    queue: WriteQueue,
    unread: UnreadUpdates,
    /// Delivery in `seq` order when other nodes commit too.
    order: Sequencer,
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

/// The members as the database has them, with their sessions on this node.
type Members = (Vec<MemberRow>, HashMap<UserId, Vec<SessionHandle>>);

impl ConversationActor {
    pub(in crate::actors) fn new(
        id: ConversationId,
        deps: ConversationDeps,
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
            queue: WriteQueue::default(),
            unread: UnreadUpdates::default(),
            order: Sequencer::default(),
            typing_ticker: None,
            started_at: now,
            last_activity: (Instant::now(), now),
            messages_handled: 0,
            restarts,
            retired: false,
        }
    }

    /// Loads the conversation, its members and read markers, and the sessions of the members,
    /// before handling anything.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let (id, store) = (self.id, self.deps.store.clone());
        let members = self.members(ctx);
        let load = async move {
            let Some(row) = store.conversation_row(id).await? else {
                return Ok(None);
            };
            Ok::<_, Error>(Some((row, members.await?)))
        };
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(Some((row, (rows, sessions)))) => {
                let mut live = Live::new(row.kind, row.last_seq, row.archived_at.is_some());
                live.reload(rows, sessions);
                act.state = State::Live(live);
                act.order = Sequencer::after(row.last_seq);
                act.next_write(ctx);
            }
            Ok(None) => {
                act.state = State::Missing;
                act.queue.fail_all(Error::no_conversation);
                act.retire_soon(ctx);
            }
            Err(err) => {
                log::warn!("conversation {}: cannot load: {err}", act.id);
                act.state = State::Unreadable;
                act.queue.fail_all(Error::database_unavailable);
                act.retire_soon(ctx);
            }
        }));
    }

    /// Reads the members again from the database (the truth), when this node may have missed
    /// a change made on another: the broker was away, a gap fill read a membership message, or
    /// the store refused a sender this actor took for a member. Members who left are dropped
    /// (with their typing), newcomers are watched, and everyone's role and read marker follow.
    fn reload_members(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.state, State::Live(_)) {
            return;
        }
        let id = self.id;
        let members = self.members(ctx);
        ctx.spawn(members.into_actor(self).map(move |reloaded, act, _| {
            let (rows, sessions) = match reloaded {
                Ok(reloaded) => reloaded,
                Err(err) => return log::warn!("conversation {id}: cannot reload the members: {err}"),
            };
            let State::Live(live) = &mut act.state else { return };
            let gone = live.reload(rows, sessions);
            if !gone.is_empty() {
                log::info!("conversation {id}: {} member(s) left on another node meanwhile", gone.len());
                act.deps.presence.do_send(Unwatch { conversation: id, users: gone });
            }
        }));
    }

    /// The members from the database, and their sessions from Presence, which from then on
    /// tells this actor of their sessions opening and closing (`MemberSessions`).
    fn members(&self, ctx: &Context<Self>) -> impl Future<Output = Result<Members>> + 'static {
        let (id, store, presence) = (self.id, self.deps.store.clone(), self.deps.presence.clone());
        let watcher = ctx.address().downgrade().recipient();
        async move {
            let rows = store.members(id).await?;
            let users = rows.iter().map(|m| m.user_id).collect();
            let sessions =
                presence.send(Watch { conversation: id, users, watcher }).await.map_err(|_| Error::ActorStopped)?;
            Ok((rows, sessions))
        }
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
            State::Unreadable => Err(Error::database_unavailable()),
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
        if live.is_member(user) { Ok(live) } else { Err(Error::no_conversation()) }
    }

    /// The live state for a change made by `by`, a member, or by the service (`None`), which
    /// may act on any conversation.
    fn acting(&mut self, by: Option<UserId>) -> Result<&mut Live> {
        match by {
            Some(user) => self.live_for(user),
            None if self.retired => Err(Error::ActorStopped),
            None => self.live(),
        }
    }

    /// Sends `frame` to every session of every member, but those of `except`; says to how many.
    fn broadcast(&self, frame: &Frame, except: Option<UserId>) -> usize {
        let State::Live(live) = &self.state else { return 0 };
        let mut sessions = 0;
        for session in live.sessions_except(except) {
            session.deliver(frame);
            sessions += 1;
        }
        sessions
    }

    /// `typing:updated` about `user` to everyone else here.
    fn typing_updated(&self, user: UserId, typing: bool) {
        self.broadcast(&Event::TypingUpdated { conversation_id: self.id, user_id: user, typing }.encode(), Some(user));
    }

    /// A member of this node starts or stops typing: shown here and on every node.
    fn set_typing(&mut self, user: UserId, typing: bool, ctx: &mut Context<Self>) -> Result<()> {
        self.live_for(user)?;
        // Every start is passed on, not only changes: it renews the other nodes' timeout too.
        if self.apply_typing(user, typing, ctx) || typing {
            self.deps.broker.publish(ClusterEvent::new(EventKind::Typing { conversation: self.id, user, typing }));
        }
        Ok(())
    }

    /// Records that `user` types or stopped, and tells the sessions here; says whether that
    /// changed anything.
    fn apply_typing(&mut self, user: UserId, typing: bool, ctx: &mut Context<Self>) -> bool {
        let timeout = self.deps.limits.typing_timeout();
        let State::Live(live) = &mut self.state else { return false };
        let changed = if typing { live.start_typing(user, Instant::now() + timeout) } else { live.stop_typing(user) };
        if changed {
            self.typing_updated(user, typing);
        }
        if typing && self.typing_ticker.is_none() {
            // One ticker while anyone types, rather than a timer per typing:start.
            let tick = (timeout / 10).max(Duration::from_millis(50));
            self.typing_ticker = Some(ctx.run_interval(tick, |act, ctx| act.expire_typing(ctx)));
        }
        changed
    }

    fn expire_typing(&mut self, ctx: &mut Context<Self>) {
        let State::Live(live) = &mut self.state else { return };
        let expired = live.expire_typing(Instant::now());
        if !live.anyone_typing()
            && let Some(ticker) = self.typing_ticker.take()
        {
            ctx.cancel_future(ticker);
        }
        for user in expired {
            self.typing_updated(user, false);
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
            self.deps.presence.do_send(Unwatch { conversation: self.id, users: live.users() });
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
        let typing = matches!(&self.state, State::Live(live) if live.anyone_typing());
        if self.last_activity.0.elapsed() >= idle && self.queue.is_idle() && !typing && !self.unread.busy() {
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
        metrics::counter!(crate::metrics::ACTOR_RESTARTS).increment(1);
        self.state = State::Loading;
        self.typing_ticker = None;
        self.unread = UnreadUpdates::default();
        self.order = Sequencer::default();
        self.queue.interrupt();
    }
}
