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
//!
//! Here: the actor, its state and its lifecycle (load, supervision, retirement). In
//! `writes.rs`: the write queue and what follows a commit. In `requests.rs`: the messages it
//! answers.

mod order;
mod remote;
mod requests;
mod writes;

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::outgoing::SessionHandle;
use super::presence::{Presence, Unwatch, Watch};
use super::registry::Registry;
use crate::cluster::{Broker, ClusterEvent, EventKind};
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::protocol::{ConversationKind, Event, Frame, Role};
use crate::store::{Committer, Store};
use crate::types::{ConversationId, Timestamp, UserId};

pub use remote::{Reload, Remote};
pub use requests::{ActorStats, AddMember, InjectFault, MarkRead, RemoveMember, SendMessage, Stats, Typing, Typists};
use writes::{Reply, UnreadUpdates, Write};

/// What every conversation actor needs, shared.
#[derive(Clone)]
pub struct Deps {
    pub store: Store,
    pub committer: Committer,
    pub presence: Addr<Presence>,
    pub broker: Broker,
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
    /// Delivery in `seq` order when other nodes commit too.
    order: order::Sequencer,
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
    /// `last_seq` when the actor loaded.
    loaded_seq: i64,
    members: HashMap<UserId, MemberState>,
    /// Typists and when their typing ends by itself.
    typing: HashMap<UserId, Instant>,
}

struct MemberState {
    role: Role,
    last_read_seq: i64,
    sessions: Vec<SessionHandle>,
}

impl ConversationActor {
    pub(in crate::actors) fn new(
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
            order: order::Sequencer::default(),
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
                act.state = State::Live(Live {
                    kind: row.kind,
                    last_seq: row.last_seq,
                    loaded_seq: row.last_seq,
                    members,
                    typing: HashMap::new(),
                });
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

    /// Sends `frame` to every session of every member, but those of `except`; says to how many.
    fn broadcast(&self, frame: &Frame, except: Option<UserId>) -> usize {
        let State::Live(live) = &self.state else { return 0 };
        let mut sessions = 0;
        for (user, member) in &live.members {
            if Some(*user) != except {
                for session in &member.sessions {
                    session.deliver(frame);
                }
                sessions += member.sessions.len();
            }
        }
        sessions
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
        changed
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
            && !self.unread.busy()
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
        metrics::counter!(crate::metrics::ACTOR_RESTARTS).increment(1);
        self.state = State::Loading;
        self.typing_ticker = None;
        self.unread = UnreadUpdates::default();
        self.order = order::Sequencer::default();
        self.interrupt_write();
    }
}
