//! Reaching sessions by user rather than by conversation: a frame for every session of some
//! users, on every node ([`DeliverTo`], for events about a conversation that has no live actor,
//! such as its creation), and the close of every session when the server stops ([`CloseAll`]).

use actix::prelude::*;

use super::Presence;
use crate::cluster::{ClusterEvent, EventKind};
use crate::protocol::Frame;
use crate::types::UserId;

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
        self.broker.publish(ClusterEvent::with_frame(EventKind::Deliver { users: msg.users }, msg.frame));
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
    pub(super) fn deliver_here(&self, users: &[UserId], frame: &Frame) {
        for user in users {
            for session in self.sessions.of(*user) {
                session.deliver(frame);
            }
        }
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
        for session in self.sessions.all() {
            session.shutdown();
        }
    }
}
