//! Presence, one per node: which users have sessions here, and what follows from it.
//!
//! It says when a user comes online (first session) and goes offline (last session gone for a
//! grace period, so that a reload does not flap), persists `last_seen_at`, and tells the users
//! who share a conversation. In a cluster the broker decides what "first" and "last" mean: a
//! user is online while any node holds a session of theirs, and the node that sees the change
//! announces it to every node (`crate::cluster`). It is consulted on connect, disconnect and
//! actor start: never per message.
//!
//! The actor is here, with online/offline and the announcement; its other roles have a file
//! each:
//! - `sessions.rs`: the node's session index and grace bookkeeping, plain and unit-tested;
//! - `watch.rs`: conversation actors following their members' sessions ([`Watch`]);
//! - `deliver.rs`: frames addressed to users ([`DeliverTo`]), and closing every session when the
//!   server stops ([`CloseAll`]);
//! - `cluster.rs`: what the broker reports ([`Announce`], [`Reconcile`], [`Register`]);
//! - `query.rs`: who is online ([`query`], `presence:query`) and the counts ([`stats`]).
//!
//! The wire object of the same name is `crate::protocol::Presence`; it is always written
//! qualified next to this actor.

mod cluster;
mod deliver;
mod query;
mod sessions;
mod watch;

use std::time::Duration;

use actix::prelude::*;

pub use cluster::{Announce, Reconcile, Register};
pub use deliver::{CloseAll, DeliverHere, DeliverTo};
pub use query::{PresenceStats, Query, Stats, query, stats, user_with_presence};
use sessions::Sessions;
use watch::Watchers;
pub use watch::{MemberSessions, Unwatch, Watch};

use super::outgoing::SessionHandle;
use crate::cluster::{Broker, ClusterEvent, EventKind};
use crate::config::Limits;
use crate::protocol::{self, Event, Frame};
use crate::store::Store;
use crate::types::{SessionId, Timestamp, UserId};

pub struct Presence {
    store: Store,
    broker: Broker,
    grace: Duration,
    /// Most users one query may ask about.
    max_query: usize,
    sessions: Sessions,
    watchers: Watchers,
}

impl Presence {
    pub fn new(store: Store, broker: Broker, limits: &Limits) -> Self {
        Presence {
            store,
            broker,
            grace: Duration::from_millis(limits.presence_grace_ms),
            max_query: limits.max_batch,
            sessions: Sessions::default(),
            watchers: Watchers::default(),
        }
    }

    /// A user's first session here: online, unless the broker says they already were elsewhere.
    fn came_online(&mut self, user: UserId, ctx: &mut Context<Self>) {
        let broker = self.broker.clone();
        ctx.spawn(async move { broker.joined(user).await }.into_actor(self).map(move |first, act, ctx| {
            // `None`: no broker, or it is down; this node's view is all there is.
            if first != Some(false) {
                act.changed(user, true, Timestamp::now(), ctx);
            }
        }));
    }

    /// A user's last session here is gone (past the grace period): offline, unless the broker
    /// says they still have sessions elsewhere.
    fn went_offline(&mut self, user: UserId, ctx: &mut Context<Self>) {
        let broker = self.broker.clone();
        let at = Timestamp::now();
        ctx.spawn(async move { broker.left(user).await }.into_actor(self).map(move |last, act, ctx| {
            if last != Some(false) {
                act.changed(user, false, at, ctx);
            }
        }));
    }

    /// A change that this node saw first. An offline user's last-seen time is stored first (the
    /// one place that stores it), so that no node's clients can read an older one after the
    /// announcement.
    fn changed(&mut self, user: UserId, online: bool, at: Timestamp, ctx: &mut Context<Self>) {
        if online {
            return self.announce_everywhere(user, online, at, ctx);
        }
        let store = self.store.clone();
        ctx.spawn(async move { store.set_last_seen(user, at).await }.into_actor(self).map(move |stored, act, ctx| {
            if let Err(err) = stored {
                log::warn!("presence: cannot store last_seen_at of {user}: {err}");
            }
            act.announce_everywhere(user, online, at, ctx);
        }));
    }

    /// Announced on every node: published for the others, and told here.
    fn announce_everywhere(&mut self, user: UserId, online: bool, at: Timestamp, ctx: &mut Context<Self>) {
        self.broker.publish(ClusterEvent::new(EventKind::Presence { user, online, at }));
        self.announce_here(user, online, at, ctx);
    }

    /// Tells everyone who shares a conversation with `user` and has a session here.
    fn announce_here(&mut self, user: UserId, online: bool, last_seen_at: Timestamp, ctx: &mut Context<Self>) {
        let presence = protocol::Presence { user_id: user, online, last_seen_at: Some(last_seen_at) };
        let frame: Frame = Event::PresenceUpdated(&presence).encode();
        let store = self.store.clone();
        ctx.spawn(async move { store.contacts(user).await }.into_actor(self).map(
            move |contacts, act, _| match contacts {
                Ok(contacts) => act.deliver_here(&contacts, &frame),
                Err(err) => log::warn!("presence: cannot load the contacts of {user}: {err}"),
            },
        ));
    }
}

impl Actor for Presence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Connects and disconnects of a whole node's users come through here.
        ctx.set_mailbox_capacity(4096);
    }
}

/// A session opened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub session: SessionHandle,
}

impl Handler<Connect> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) {
        let user = msg.session.user;
        let opened = self.sessions.open(msg.session.clone());
        if let Some(timer) = opened.cancel {
            ctx.cancel_future(timer); // back within the grace period: no flap
        }
        self.watchers.notify(user, MemberSessions::Joined(msg.session));
        if opened.came_online {
            self.came_online(user, ctx);
        }
    }
}

/// A session closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub session: SessionId,
    pub user: UserId,
}

impl Handler<Disconnect> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        let user = msg.user;
        if !self.sessions.is_online(user) {
            return;
        }
        if self.sessions.close(user, msg.session) {
            let timer = ctx.run_later(self.grace, move |act, ctx| {
                if act.sessions.grace_over(user) {
                    act.went_offline(user, ctx);
                }
            });
            self.sessions.grace_started(user, timer);
        }
        self.watchers.notify(user, MemberSessions::Left { user, session: msg.session });
    }
}
