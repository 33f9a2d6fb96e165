//! Presence across the cluster, as the broker reports it: what another node announced
//! ([`Announce`]), what nobody announced ([`Reconcile`]: a dead node's users, or changes made
//! while the broker was away), and registering this node's users again ([`Register`]).

use actix::prelude::*;

use super::Presence;
use crate::cluster::Unannounced;
use crate::types::{Timestamp, UserId};

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
        self.announce_here(msg.user, msg.online, msg.at, ctx);
    }
}

/// The broker found a change nobody announced (a user of a dead node is online nowhere; a user
/// came or went while the broker was away): this node announces it for the whole cluster,
/// unless its own sessions say otherwise by now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconcile {
    pub change: Unannounced,
}

impl Handler<Reconcile> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Reconcile, ctx: &mut Self::Context) {
        self.reconcile(msg.change, ctx);
    }
}

impl Presence {
    fn reconcile(&mut self, change: Unannounced, ctx: &mut Context<Self>) {
        let user = change.user;
        if change.online != self.sessions.is_online(user) {
            return;
        }
        match (change.online, change.at) {
            (true, _) => self.changed(user, true, Timestamp::now(), ctx),
            (false, Some(at)) => self.changed(user, false, at, ctx),
            // Stored when they left (the broker was away then): announced with that time.
            (false, None) => {
                let store = self.store.clone();
                let stored = async move { store.users(&[user]).await };
                ctx.spawn(stored.into_actor(self).map(move |rows, act, ctx| {
                    let stored = match rows {
                        Ok(rows) => rows.first().and_then(|row| row.last_seen_at),
                        Err(err) => {
                            log::warn!("presence: cannot read last_seen_at of {user}, announcing now: {err}");
                            None
                        }
                    };
                    act.announce_everywhere(user, false, stored.unwrap_or_else(Timestamp::now), ctx);
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
        let users: Vec<UserId> = self.sessions.users().collect();
        let broker = self.broker.clone();
        ctx.wait(async move { broker.register(&users).await }.into_actor(self).map(move |found, act, ctx| {
            let registered = found.is_some();
            let (offline, online) = found.unwrap_or_default();
            for user in offline {
                act.reconcile(Unannounced { user, online: false, at: None }, ctx);
            }
            for user in online {
                act.reconcile(Unannounced { user, online: true, at: None }, ctx);
            }
            let _ = done.send(registered);
        }));
        Box::pin(async move { answer.await.unwrap_or(false) })
    }
}
