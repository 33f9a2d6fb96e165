//! Finds or starts the actor of a conversation. Consulted once per conversation by each session
//! (which keeps the answer) and once per REST write; never on the path of every message.
//!
//! Actors are spread over one arbiter per core by the hash of their conversation id (so that
//! conversations run in parallel, and each on one thread), and run under actix's `Supervisor`.
//! The registry holds the only lasting strong address of each actor; everyone else keeps a
//! [`WeakConversationHandle`], so that an idle actor can retire: it removes itself from here
//! and stops, and the next request starts a fresh one. [`Registry::send_or_retry`] is the one
//! place where a request that met a stopped actor is sent again to its successor.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use actix::WeakAddr;
use actix::dev::ToEnvelope;
use actix::prelude::*;

use super::conversation::{ActorStats, ConversationActor, ConversationDeps, Inspect, Reload, Remote};
use crate::error::{Error, Result};
use crate::types::ConversationId;

pub struct Registry {
    actors: Mutex<HashMap<ConversationId, Entry>>,
    arbiters: Vec<ArbiterHandle>,
    hasher: RandomState,
    deps: ConversationDeps,
}

struct Entry {
    addr: Addr<ConversationActor>,
    queued: Arc<AtomicUsize>,
    restarts: u32,
}

impl Registry {
    pub fn new(arbiters: Vec<ArbiterHandle>, deps: ConversationDeps) -> Arc<Registry> {
        Arc::new(Registry { actors: Mutex::new(HashMap::new()), arbiters, hasher: RandomState::new(), deps })
    }

    /// The live actor of `id`, started if there is none (it loads itself from the database; a
    /// conversation that does not exist answers `not_found` and retires).
    pub fn get(self: &Arc<Self>, id: ConversationId) -> Result<ConversationHandle> {
        let mut actors = self.actors.lock().map_err(|_| Error::Internal("registry poisoned".into()))?;
        if let Some(entry) = actors.get(&id)
            && entry.addr.connected()
        {
            return Ok(ConversationHandle {
                addr: entry.addr.clone(),
                queued: entry.queued.clone(),
                capacity: self.deps.limits.conversation_mailbox,
            });
        }
        // An entry whose actor is gone without retiring died of a fault the supervisor could not
        // catch: start it again from the database and count the restart.
        let restarts = actors.get(&id).map_or(0, |e| e.restarts + 1);
        if restarts > 0 {
            log::warn!("conversation {id}: actor died, restarting it (restart {restarts})");
            metrics::counter!(crate::metrics::ACTOR_RESTARTS).increment(1);
        }
        let queued = Arc::new(AtomicUsize::new(0));
        let arbiter = &self.arbiters[self.hasher.hash_one(id) as usize % self.arbiters.len()];
        let deps = self.deps.clone();
        let registry = Arc::downgrade(self);
        let actor_queued = queued.clone();
        let addr = Supervisor::start_in_arbiter(arbiter, move |ctx| {
            ConversationActor::new(id, deps, registry, actor_queued, restarts, ctx)
        });
        actors.insert(id, Entry { addr: addr.clone(), queued: queued.clone(), restarts });
        Ok(ConversationHandle { addr, queued, capacity: self.deps.limits.conversation_mailbox })
    }

    /// Hands an event of another node to the actor of `id`, started if there is none (it
    /// loads, then takes the event: its sessions here must hear of it).
    pub fn remote(self: &Arc<Self>, id: ConversationId, event: crate::cluster::ClusterEvent) -> Result<()> {
        self.get(id)?.addr.do_send(Remote(event));
        Ok(())
    }

    /// The actor of `id` if one is live; never starts one.
    pub fn live(&self, id: ConversationId) -> Option<ConversationHandle> {
        let actors = self.actors.lock().ok()?;
        let entry = actors.get(&id).filter(|e| e.addr.connected())?;
        Some(ConversationHandle {
            addr: entry.addr.clone(),
            queued: entry.queued.clone(),
            capacity: self.deps.limits.conversation_mailbox,
        })
    }

    /// Sends `msg` to the actor of `id`, once more to a fresh actor if the first had stopped
    /// (retired, or restarting) before it could answer.
    pub async fn call<M, R>(self: &Arc<Self>, id: ConversationId, msg: M) -> Result<R>
    where
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        ConversationActor: Handler<M>,
        <ConversationActor as Actor>::Context: ToEnvelope<ConversationActor, M>,
    {
        self.send_or_retry(id, self.get(id), msg).await
    }

    /// Queues `msg` now with `first` (a handle the caller kept, or [`Registry::get`]'s answer),
    /// so that one caller's messages keep their order; if that actor had stopped before it
    /// could answer, sends it once more to a fresh actor.
    pub fn send_or_retry<M, R>(
        self: &Arc<Self>,
        id: ConversationId,
        first: Result<ConversationHandle>,
        msg: M,
    ) -> impl Future<Output = Result<R>> + use<M, R>
    where
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        ConversationActor: Handler<M>,
        <ConversationActor as Actor>::Context: ToEnvelope<ConversationActor, M>,
    {
        let first = first.map(|actor| actor.send(msg.clone()));
        let registry = self.clone();
        async move {
            match first?.await {
                Err(Error::ActorStopped) => registry.get(id)?.send(msg).await,
                other => other,
            }
        }
    }

    /// Called by an actor that retires: forget it, unless a newer actor already took its place.
    pub(super) fn remove(&self, id: ConversationId, addr: &Addr<ConversationActor>) {
        if let Ok(mut actors) = self.actors.lock()
            && actors.get(&id).is_some_and(|e| e.addr == *addr)
        {
            actors.remove(&id);
        }
    }

    /// Tells every live actor to read its members again (the broker is back after an outage,
    /// in which membership changes of other nodes may have been lost).
    pub fn reload_all(&self) {
        if let Ok(actors) = self.actors.lock() {
            for entry in actors.values().filter(|e| e.addr.connected()) {
                entry.addr.do_send(Reload);
            }
        }
    }

    /// How many conversation actors are live.
    pub fn live_count(&self) -> usize {
        self.actors.lock().map_or(0, |actors| actors.values().filter(|e| e.addr.connected()).count())
    }

    /// What every live actor says about itself (admin inspection).
    pub async fn stats(&self) -> Vec<ActorStats> {
        let addrs: Vec<_> = match self.actors.lock() {
            Ok(actors) => actors.values().filter(|e| e.addr.connected()).map(|e| e.addr.clone()).collect(),
            Err(_) => return Vec::new(),
        };
        let mut stats = Vec::with_capacity(addrs.len());
        for addr in addrs {
            if let Ok(Ok(s)) = addr.send(Inspect).await {
                stats.push(s);
            }
        }
        stats
    }
}

/// A way to one conversation actor, with the count of requests waiting in its mailbox.
#[derive(Clone)]
pub struct ConversationHandle {
    addr: Addr<ConversationActor>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl ConversationHandle {
    /// Queues `msg` now (so two sends from one session keep their order) and waits for the
    /// answer. A full mailbox is a prompt `unavailable`, not a wait: a busy conversation
    /// must not make its callers (sessions, HTTP workers) hang.
    pub fn send<M, R>(&self, msg: M) -> impl Future<Output = Result<R>> + use<M, R>
    where
        M: Message<Result = Result<R>> + Send + 'static,
        R: Send + 'static,
        ConversationActor: Handler<M>,
        <ConversationActor as Actor>::Context: ToEnvelope<ConversationActor, M>,
    {
        let ticket = Ticket::take(&self.queued, self.capacity);
        let request = ticket.is_some().then(|| self.addr.send(msg));
        async move {
            let Some(request) = request else {
                return Err(Error::Unavailable("this conversation is too busy: retry shortly".into()));
            };
            let answer = request.await;
            drop(ticket);
            answer.map_err(|_| Error::ActorStopped)?
        }
    }

    pub fn downgrade(&self) -> WeakConversationHandle {
        WeakConversationHandle {
            addr: self.addr.downgrade(),
            queued: Arc::downgrade(&self.queued),
            capacity: self.capacity,
        }
    }
}

/// What a session keeps: does not keep the actor alive.
#[derive(Clone)]
pub struct WeakConversationHandle {
    addr: WeakAddr<ConversationActor>,
    queued: Weak<AtomicUsize>,
    capacity: usize,
}

impl WeakConversationHandle {
    pub fn upgrade(&self) -> Option<ConversationHandle> {
        let addr = self.addr.upgrade().filter(Addr::connected)?;
        Some(ConversationHandle { addr, queued: self.queued.upgrade()?, capacity: self.capacity })
    }
}

/// One place in a conversation's mailbox, given back when the request has been answered.
struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    fn take(queued: &Arc<AtomicUsize>, capacity: usize) -> Option<Ticket> {
        let before = queued.fetch_add(1, Ordering::AcqRel);
        let ticket = Ticket(queued.clone());
        (before < capacity).then_some(ticket)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
