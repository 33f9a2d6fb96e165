//! Presence, one per node: which users have sessions here.
//!
//! It says when a user comes online (first session) and goes offline (last session gone for a
//! grace period, so that a reload does not flap), persists `last_seen_at`, and tells the users
//! who share a conversation. In a cluster the broker decides what "first" and "last" mean: a
//! user is online while any node holds a session of theirs, and the node that sees the change
//! announces it to every node (`crate::cluster`). It also tells live conversation actors which sessions belong to
//! their members ([`Watch`]), so that a broadcast never has to ask anyone. It is consulted on
//! connect, disconnect and actor start: never per message.

use std::collections::HashMap;
use std::time::Duration;

use actix::WeakRecipient;
use actix::prelude::*;

use super::outbox::SessionHandle;
use crate::cluster::{Broker, ClusterEvent, Found, Header};
use crate::protocol::{Event, Frame, Presence as PresenceData};
use crate::store::Store;
use crate::types::{ConversationId, SessionId, Timestamp, UserId};

pub struct Presence {
    store: Store,
    broker: Broker,
    grace: Duration,
    users: HashMap<UserId, UserEntry>,
    /// The conversation actors that want to hear about a user's sessions.
    watchers: HashMap<UserId, HashMap<ConversationId, WeakRecipient<MemberSessions>>>,
}

#[derive(Default)]
struct UserEntry {
    sessions: Vec<SessionHandle>,
    /// Set while the user has no session but is still inside the grace period.
    going_offline: Option<SpawnHandle>,
}

impl Presence {
    pub fn new(store: Store, broker: Broker, grace: Duration) -> Self {
        Presence { store, broker, grace, users: HashMap::new(), watchers: HashMap::new() }
    }

    /// A user's first session here: online, unless the broker says they already were elsewhere.
    fn came_online(&mut self, user: UserId, ctx: &mut Context<Self>) {
        if !self.broker.is_clustered() {
            return self.announce(user, true, Timestamp::now(), false, ctx);
        }
        let broker = self.broker.clone();
        ctx.spawn(async move { broker.joined(user).await }.into_actor(self).map(move |first, act, ctx| {
            // `None`: the broker is down; this node's view is all there is.
            if first != Some(false) {
                act.changed(user, true, Timestamp::now(), ctx);
            }
        }));
    }

    /// A user's last session here is gone (past the grace period): offline, unless the broker
    /// says they still have sessions elsewhere.
    fn went_offline(&mut self, user: UserId, ctx: &mut Context<Self>) {
        if !self.broker.is_clustered() {
            return self.announce(user, false, Timestamp::now(), true, ctx);
        }
        let broker = self.broker.clone();
        let at = Timestamp::now();
        ctx.spawn(async move { broker.left(user).await }.into_actor(self).map(move |last, act, ctx| {
            if last != Some(false) {
                act.changed(user, false, at, ctx);
            }
        }));
    }

    /// A change in the cluster that this node saw first: announced here and on every node. An
    /// offline user's last-seen time is stored first, so that no node's clients can read an
    /// older one after the announcement.
    fn changed(&mut self, user: UserId, online: bool, at: Timestamp, ctx: &mut Context<Self>) {
        if online {
            self.broker.publish(ClusterEvent::new(Header::Presence { user, online, at }));
            return self.announce(user, online, at, false, ctx);
        }
        let store = self.store.clone();
        ctx.spawn(async move { store.set_last_seen(user, at).await }.into_actor(self).map(move |stored, act, ctx| {
            if let Err(err) = stored {
                log::warn!("presence: cannot store last_seen_at of {user}: {err}");
            }
            act.broker.publish(ClusterEvent::new(Header::Presence { user, online, at }));
            act.announce(user, online, at, false, ctx);
        }));
    }

    fn notify_watchers(&mut self, user: UserId, change: MemberSessions) {
        if let Some(watchers) = self.watchers.get_mut(&user) {
            watchers.retain(|_, watcher| match watcher.upgrade() {
                Some(recipient) => {
                    recipient.do_send(change.clone());
                    true
                }
                None => false,
            });
            if watchers.is_empty() {
                self.watchers.remove(&user);
            }
        }
    }

    /// Tells everyone who shares a conversation with `user` (and has a session here); with
    /// `persist`, first stores `last_seen_at`.
    fn announce(
        &mut self,
        user: UserId,
        online: bool,
        last_seen_at: Timestamp,
        persist: bool,
        ctx: &mut Context<Self>,
    ) {
        let frame: Frame =
            Event::PresenceUpdated(&PresenceData { user_id: user, online, last_seen_at: Some(last_seen_at) }).encode();
        let store = self.store.clone();
        ctx.spawn(
            async move {
                if persist && let Err(err) = store.set_last_seen(user, last_seen_at).await {
                    log::warn!("presence: cannot store last_seen_at of {user}: {err}");
                }
                store.contacts(user).await
            }
            .into_actor(self)
            .map(move |contacts, act, _| match contacts {
                Ok(contacts) => {
                    for contact in contacts {
                        for session in act.users.get(&contact).map_or(&[][..], |e| &e.sessions) {
                            session.deliver(&frame);
                        }
                    }
                }
                Err(err) => log::warn!("presence: cannot load the contacts of {user}: {err}"),
            }),
        );
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
        let came_online = !self.users.contains_key(&user);
        let entry = self.users.entry(user).or_default();
        if let Some(timer) = entry.going_offline.take() {
            ctx.cancel_future(timer); // back within the grace period: no flap
        }
        // Most users have one session: room for exactly that, not the four slots a first push
        // would make (per-connection memory, issue: 19,000 idle connections at 8 KiB each).
        entry.sessions.reserve_exact(1);
        entry.sessions.push(msg.session.clone());
        self.notify_watchers(user, MemberSessions::Joined(msg.session));
        if came_online {
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
        let Some(entry) = self.users.get_mut(&msg.user) else {
            return;
        };
        entry.sessions.retain(|s| s.id != msg.session);
        let last_gone = entry.sessions.is_empty() && entry.going_offline.is_none();
        if last_gone {
            let user = msg.user;
            entry.going_offline = Some(ctx.run_later(self.grace, move |act, ctx| {
                if act.users.get(&user).is_some_and(|e| e.sessions.is_empty()) {
                    act.users.remove(&user);
                    act.went_offline(user, ctx);
                }
            }));
        }
        self.notify_watchers(msg.user, MemberSessions::Left { user: msg.user, session: msg.session });
    }
}

/// Sent to conversation actors when a session of one of their members opens or closes.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum MemberSessions {
    Joined(SessionHandle),
    Left { user: UserId, session: SessionId },
}

/// A conversation actor asks to follow the sessions of `users`; the answer is their sessions now.
#[derive(Message)]
#[rtype(result = "HashMap<UserId, Vec<SessionHandle>>")]
pub struct Watch {
    pub conversation: ConversationId,
    pub users: Vec<UserId>,
    pub watcher: WeakRecipient<MemberSessions>,
}

impl Handler<Watch> for Presence {
    type Result = MessageResult<Watch>;

    fn handle(&mut self, msg: Watch, _: &mut Self::Context) -> Self::Result {
        let mut sessions = HashMap::new();
        for user in msg.users {
            self.watchers.entry(user).or_default().insert(msg.conversation, msg.watcher.clone());
            if let Some(entry) = self.users.get(&user) {
                sessions.insert(user, entry.sessions.clone());
            }
        }
        MessageResult(sessions)
    }
}

/// A conversation actor stops following `users` (they left, or the actor stops).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub conversation: ConversationId,
    pub users: Vec<UserId>,
}

impl Handler<Unwatch> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Unwatch, _: &mut Self::Context) {
        for user in msg.users {
            if let Some(watchers) = self.watchers.get_mut(&user) {
                watchers.remove(&msg.conversation);
                if watchers.is_empty() {
                    self.watchers.remove(&user);
                }
            }
        }
    }
}

/// Which of `users` are online on this node (a user in the grace period still is).
#[derive(Message)]
#[rtype(result = "Vec<bool>")]
pub struct Online {
    pub users: Vec<UserId>,
}

impl Handler<Online> for Presence {
    type Result = MessageResult<Online>;

    fn handle(&mut self, msg: Online, _: &mut Self::Context) -> Self::Result {
        MessageResult(msg.users.iter().map(|u| self.users.contains_key(u)).collect())
    }
}

/// Delivers one frame to every session of `users`, on every node (events about a conversation
/// that has no live actor, such as its creation).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliverTo {
    pub users: Vec<UserId>,
    pub frame: Frame,
}

impl Handler<DeliverTo> for Presence {
    type Result = ();

    fn handle(&mut self, msg: DeliverTo, _: &mut Self::Context) {
        self.deliver_here(&msg.users, &msg.frame);
        self.broker.publish(ClusterEvent::with_frame(Header::Deliver { users: msg.users }, msg.frame));
    }
}

/// [`DeliverTo`] from another node: this node's sessions only.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliverHere {
    pub users: Vec<UserId>,
    pub frame: Frame,
}

impl Handler<DeliverHere> for Presence {
    type Result = ();

    fn handle(&mut self, msg: DeliverHere, _: &mut Self::Context) {
        self.deliver_here(&msg.users, &msg.frame);
    }
}

impl Presence {
    fn deliver_here(&self, users: &[UserId], frame: &Frame) {
        for user in users {
            for session in self.users.get(user).map_or(&[][..], |e| &e.sessions) {
                session.deliver(frame);
            }
        }
    }
}

/// Another node saw a user come online or go offline in the cluster: tell their contacts here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Announce {
    pub user: UserId,
    pub online: bool,
    pub at: Timestamp,
}

impl Handler<Announce> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Announce, ctx: &mut Self::Context) {
        self.announce(msg.user, msg.online, msg.at, false, ctx);
    }
}

/// The broker found a change nobody announced (a user of a dead node is online nowhere; a user
/// came or went while the broker was away): this node announces it for the whole cluster,
/// unless its own sessions say otherwise by now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settle(pub Found);

impl Handler<Settle> for Presence {
    type Result = ();

    fn handle(&mut self, Settle(found): Settle, ctx: &mut Self::Context) {
        self.settle(found, ctx);
    }
}

impl Presence {
    fn settle(&mut self, found: Found, ctx: &mut Context<Self>) {
        let user = found.user;
        if found.online != self.users.contains_key(&user) {
            return;
        }
        match (found.online, found.at) {
            (true, _) => self.changed(user, true, Timestamp::now(), ctx),
            (false, Some(at)) => self.changed(user, false, at, ctx),
            // Stored when they left (the broker was away then): announced with that time.
            (false, None) => {
                let store = self.store.clone();
                let stored = async move { store.users(&[user]).await };
                ctx.spawn(stored.into_actor(self).map(move |rows, act, ctx| {
                    let at = rows.ok().and_then(|rows| rows.first()?.last_seen_at).unwrap_or_else(Timestamp::now);
                    act.broker.publish(ClusterEvent::new(Header::Presence { user, online: false, at }));
                    act.announce(user, false, at, false, ctx);
                }));
            }
        }
    }
}

/// The broker is connected again, or this node's entries in it may be stale: the node's users
/// are registered again. Nothing else happens meanwhile (`ctx.wait`), so that no session that
/// opens or closes now can be lost between the list and Redis. Answers whether it worked.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Register;

impl Handler<Register> for Presence {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: Register, ctx: &mut Self::Context) -> Self::Result {
        let (done, answer) = tokio::sync::oneshot::channel();
        let users: Vec<UserId> = self.users.keys().copied().collect();
        let broker = self.broker.clone();
        ctx.wait(async move { broker.register(&users).await }.into_actor(self).map(move |found, act, ctx| {
            let registered = found.is_some();
            let (offline, online) = found.unwrap_or_default();
            for user in offline {
                act.settle(Found { user, online: false, at: None }, ctx);
            }
            for user in online {
                act.settle(Found { user, online: true, at: None }, ctx);
            }
            let _ = done.send(registered);
        }));
        Box::pin(async move { answer.await.unwrap_or(false) })
    }
}

/// Counts for the admin endpoint.
#[derive(Message)]
#[rtype(result = "PresenceStats")]
pub struct Stats;

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PresenceStats {
    pub sessions: usize,
    /// Users with at least one open session.
    pub users: usize,
    /// Users shown as online (including those inside the grace period).
    pub online_users: usize,
}

impl Handler<Stats> for Presence {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        MessageResult(PresenceStats {
            sessions: self.users.values().map(|e| e.sessions.len()).sum(),
            users: self.users.values().filter(|e| !e.sessions.is_empty()).count(),
            online_users: self.users.len(),
        })
    }
}

/// The server is stopping: every session finishes the commands it has in flight and closes
/// with 1012, so that clients reconnect (to another node, or to this one when it is back) and
/// `sync`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll;

impl Handler<CloseAll> for Presence {
    type Result = ();

    fn handle(&mut self, _: CloseAll, _: &mut Self::Context) {
        for entry in self.users.values() {
            for session in &entry.sessions {
                session.shutdown();
            }
        }
    }
}
