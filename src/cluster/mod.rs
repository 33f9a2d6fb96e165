//! Several nodes on one PostgreSQL (docs/ARCHITECTURE.md, "Beyond one machine").
//!
//! The broker is Redis; the truth stays in PostgreSQL. Each node publishes every event it
//! commits (message, typing, read marker, presence, conversation change) on one channel, and
//! hands what the others publish to the node through the [`Inbound`] port, which the actors
//! implement (`actors/inbox.rs`): there a conversation's events go to that conversation's
//! actor, which delivers them to its members' sessions in `seq` order (filling a gap from the
//! database when an event is late or lost), and presence and conversation changes to
//! `Presence`. Presence itself lives in Redis with a lease per node, so that a node that dies
//! takes its users offline by itself. Per-user message rates are token buckets in Redis, taken
//! by the group committer once per batch through the store's [`Permits`] port.
//!
//! Redis down is not an outage: each node keeps serving its own sessions, sends commit and
//! are acknowledged, events that cannot be published are dropped (counted; clients `sync` to
//! fill the gap), presence and rates fall back to the node's own view, and the link reconnects
//! by itself.
//!
//! The cluster depends on nothing above it: not on the actors (they implement [`Inbound`]),
//! not on the committer (it asks [`Permits`], which [`Broker`] implements here).
//!
//! [`Broker`] is the handle everyone holds (a no-op on a node alone); `link.rs` keeps the
//! connection, `events.rs` is what travels, `inbound.rs` the port, `scripts.rs` the shared
//! state in Redis.

mod events;
mod inbound;
mod link;
mod scripts;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use events::{Change, ClusterEvent, EventKind};
pub use inbound::{Inbound, Unannounced};

use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::metrics::{BROKER_DROPPED, BROKER_PUBLISHED, BROKER_RECEIVED, BROKER_UP, GAP_FILLS};
use crate::store::Permits;
use crate::types::UserId;

/// The broker, as this node sees it; cheap to clone.
#[derive(Clone, Default)]
pub struct Broker(Option<Arc<Inner>>);

struct Inner {
    node: Uuid,
    prefix: String,
    channel: String,
    client: redis::Client,
    /// Set while connected; requests take a clone (the connection multiplexes).
    conn: RwLock<Option<MultiplexedConnection>>,
    up: AtomicBool,
    /// The publish queue: encoded events waiting for the link's publisher (bounded by
    /// `PARLEY_BROKER_QUEUE`; a full queue drops, never waits).
    publish_queue: mpsc::Sender<Vec<u8>>,
    /// Its other end, taken by the publisher when the link starts.
    publish_rx: Mutex<Option<mpsc::Receiver<Vec<u8>>>>,
    /// The link's tasks, stopped with the node.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    ttl: Duration,
    rate: (f64, f64),
    /// A request on the path of a send or a connect that timed out makes the others skip Redis
    /// until then (milliseconds since `born`): a hung Redis costs one timeout, not one per send.
    skip_until_ms: AtomicU64,
    born: Instant,
    /// A presence change could not be written to Redis: the link registers this node's users
    /// again at its next heartbeat.
    stale: AtomicBool,
}

/// The longest a request on the path of a send or a connect waits for Redis before the node
/// goes on without it (falling back to its own view), and how long it then leaves Redis alone.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);
const SKIP_AFTER_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` and the admin endpoint say of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    /// No broker: this node works alone.
    Off,
    Up,
    Down,
}

impl Broker {
    /// A node alone: every operation is a no-op.
    pub fn alone() -> Broker {
        Broker(None)
    }

    /// The broker of `config`, if it names one; nothing connects until [`Broker::start`].
    pub fn new(config: &ClusterConfig, node: Uuid, rate: (f64, f64)) -> Result<Broker> {
        let Some(url) = &config.redis_url else {
            return Ok(Broker::alone());
        };
        let client = redis::Client::open(url.as_str())
            .map_err(|err| Error::bad_request(format!("PARLEY_REDIS_URL is not a Redis URL: {err}")))?;
        // Registered at zero, so that alerts can be written before the first event.
        for counter in [BROKER_PUBLISHED, BROKER_RECEIVED, BROKER_DROPPED, GAP_FILLS] {
            metrics::counter!(counter).increment(0);
        }
        metrics::gauge!(BROKER_UP).set(0.0);
        let (publish_queue, publish_rx) = mpsc::channel(config.broker_queue.max(1));
        let ttl = Duration::from_millis(config.node_ttl_ms.max(300));
        Ok(Broker(Some(Arc::new(Inner {
            node,
            prefix: config.redis_prefix.clone(),
            channel: format!("{}:events", config.redis_prefix),
            client,
            conn: RwLock::new(None),
            up: AtomicBool::new(false),
            publish_queue,
            publish_rx: Mutex::new(Some(publish_rx)),
            tasks: Mutex::new(Vec::new()),
            ttl,
            rate,
            skip_until_ms: AtomicU64::new(0),
            born: Instant::now(),
            stale: AtomicBool::new(false),
        }))))
    }

    pub fn state(&self) -> BrokerState {
        match &self.0 {
            None => BrokerState::Off,
            Some(inner) if inner.up.load(Ordering::Acquire) => BrokerState::Up,
            Some(_) => BrokerState::Down,
        }
    }

    /// Connects (and keeps reconnecting) in the background; `inbound` receives what the other
    /// nodes publish and what the broker finds.
    pub fn start(&self, inbound: Arc<dyn Inbound>) {
        if let Some(inner) = &self.0 {
            link::start(inner.clone(), inbound);
        }
    }

    /// The node is stopping: its lease is given up, so that the other nodes take its users
    /// offline at their next heartbeat (those who reconnected elsewhere stay online), and the
    /// link stops.
    pub async fn stop(&self) {
        let Some(inner) = &self.0 else { return };
        if let Some((inner, mut conn)) = self.conn() {
            let mut stop = scripts::STOP.prepare_invoke();
            stop.arg(&inner.prefix).arg(inner.node.to_string());
            logged(stop.invoke_async::<i64>(&mut conn).await);
        }
        for task in inner.tasks.lock().map(|mut tasks| std::mem::take(&mut *tasks)).unwrap_or_default() {
            task.abort();
        }
        link::set_down(inner);
    }

    /// Tells the other nodes, if the broker is up; otherwise the event is dropped and counted
    /// (the clients of other nodes fill the gap with `sync`). Never waits.
    pub fn publish(&self, event: ClusterEvent) {
        let Some(inner) = &self.0 else { return };
        if !inner.up.load(Ordering::Acquire) || inner.publish_queue.try_send(event.encode(inner.node)).is_err() {
            metrics::counter!(crate::metrics::BROKER_DROPPED).increment(1);
        }
    }

    fn conn(&self) -> Option<(&Inner, MultiplexedConnection)> {
        let inner = self.0.as_deref()?;
        if inner.elapsed_ms() < inner.skip_until_ms.load(Ordering::Acquire) {
            return None;
        }
        let conn = inner.conn.read().ok()?.clone()?;
        Some((inner, conn))
    }

    /// `request` on the path of a send or a connect: given up after [`REQUEST_TIMEOUT`], and
    /// then Redis is left alone for a while; `None` on any failure (callers fall back).
    async fn request<T>(&self, request: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(result) => logged(result),
            Err(_) => {
                if let Some(inner) = &self.0 {
                    let until = inner.elapsed_ms() + SKIP_AFTER_TIMEOUT.as_millis() as u64;
                    inner.skip_until_ms.store(until, Ordering::Release);
                }
                log::warn!("broker: Redis did not answer within {REQUEST_TIMEOUT:?}; going on without it for now");
                None
            }
        }
    }

    /// After (re)connecting, or when this node's entries may be stale: its users in Redis
    /// become exactly `users`. Answers those who are online nowhere now, and those who are
    /// online and were nowhere before (their changes were not announced).
    pub async fn register(&self, users: &[UserId]) -> Option<(Vec<UserId>, Vec<UserId>)> {
        let (inner, mut conn) = self.conn()?;
        let mut resync = scripts::RESYNC.prepare_invoke();
        resync.arg(&inner.prefix).arg(inner.node.to_string());
        for user in users {
            resync.arg(user.0.to_string());
        }
        let (offline, online): (Vec<String>, Vec<String>) = logged(resync.invoke_async(&mut conn).await)?;
        Some((user_ids(&offline), user_ids(&online)))
    }

    /// A user's first session on this node: `Some(true)` if they just came online in the
    /// cluster; `None` when there is no broker to ask.
    pub async fn joined(&self, user: UserId) -> Option<bool> {
        Some(self.user_nodes(&scripts::JOIN, user).await? == 1)
    }

    /// A user's last session on this node is gone: `Some(true)` if they are online nowhere now.
    pub async fn left(&self, user: UserId) -> Option<bool> {
        Some(self.user_nodes(&scripts::LEAVE, user).await? == 0)
    }

    /// Runs a presence script for `user` on this node; the nodes that hold their sessions now.
    /// A change that could not be written marks this node's entries stale (see `link.rs`).
    async fn user_nodes(&self, script: &redis::Script, user: UserId) -> Option<i64> {
        let inner = self.0.as_deref()?;
        let nodes = match self.conn() {
            Some((_, mut conn)) => {
                let mut invocation = script.prepare_invoke();
                invocation.arg(&inner.prefix).arg(inner.node.to_string()).arg(user.0.to_string());
                self.request(invocation.invoke_async(&mut conn)).await
            }
            None => None,
        };
        if nodes.is_none() {
            inner.stale.store(true, Ordering::Release);
        }
        nodes
    }

    /// Which of `users` have a session on some node.
    pub async fn online(&self, users: &[UserId]) -> Option<Vec<bool>> {
        let (inner, mut conn) = self.conn()?;
        let mut pipe = redis::pipe();
        for user in users {
            pipe.exists(format!("{}:user:{}:nodes", inner.prefix, user.0));
        }
        self.request(pipe.query_async(&mut conn)).await
    }

    /// One token per message from each sender's bucket, shared by the cluster: per message,
    /// `None` when taken or the wait in milliseconds. `None` when there is no broker to ask
    /// (the node's own limiter, which every send passed already, is then the limit).
    async fn take_tokens(&self, senders: &[UserId]) -> Option<Vec<Option<u64>>> {
        let (inner, mut conn) = self.conn()?;
        let mut invocation = scripts::TAKE_TOKENS.prepare_invoke();
        invocation.arg(inner.rate.0).arg(inner.rate.1).arg(&inner.prefix);
        for sender in senders {
            invocation.arg(sender.0.to_string());
        }
        let waits: Vec<i64> = self.request(invocation.invoke_async(&mut conn)).await?;
        Some(waits.into_iter().map(|wait| u64::try_from(wait).ok()).collect())
    }
}

/// A failed broker request is logged and taken as "no broker": callers fall back to the
/// node's own view. The link notices the connection is gone by itself.
fn logged<T>(result: redis::RedisResult<T>) -> Option<T> {
    result.map_err(|err| log::warn!("broker: {err}")).ok()
}

/// The committer's rate permits, shared by the cluster.
impl Permits for Broker {
    fn take<'a>(&'a self, senders: &'a [UserId]) -> BoxFuture<'a, Option<Vec<Option<u64>>>> {
        Box::pin(self.take_tokens(senders))
    }
}

/// User ids as the scripts answer them; an entry that is not one is logged and left out.
fn user_ids(entries: &[String]) -> Vec<UserId> {
    entries
        .iter()
        .filter_map(|entry| match entry.parse() {
            Ok(id) => Some(UserId(id)),
            Err(_) => {
                log::warn!("broker: a presence entry is not a user id: {entry}");
                None
            }
        })
        .collect()
}

impl Inner {
    fn elapsed_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }
}
