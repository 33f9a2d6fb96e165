//! The actors' side of the cluster port: [`ClusterInbox`] implements [`cluster::Inbound`], so
//! the node decides here which actor hears of what the broker brings, and the cluster's link
//! stays a transport. Also here, for the other direction, how a committed membership change is
//! told to the other nodes ([`Change::new`]): the store's type meets the cluster's on the
//! actors' side, so that neither of those two imports the other.

use std::sync::Arc;

use actix::Addr;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::presence::{Announce, DeliverHere, Presence, Reconcile, Register};
use super::registry::Registry;
use crate::cluster::{self, Change, ClusterEvent, EventKind, Unannounced};
use crate::store::MembershipChange;
use crate::types::UserId;

/// Where what the broker brings goes: a conversation's events to its actor (started if there is
/// none: its sessions here must hear of them), the rest to Presence.
pub struct ClusterInbox {
    pub registry: Arc<Registry>,
    pub presence: Addr<Presence>,
}

impl cluster::Inbound for ClusterInbox {
    fn event(&self, event: ClusterEvent) {
        match event.kind {
            EventKind::Message { conversation, .. }
            | EventKind::Typing { conversation, .. }
            | EventKind::Read { conversation, .. }
            | EventKind::Custom { conversation } => {
                if let Err(err) = self.registry.remote(conversation, event) {
                    log::warn!("conversation {conversation}: cannot take an event of another node: {err}");
                }
            }
            EventKind::Deliver { users } => {
                if let Some(frame) = event.frame {
                    self.presence.do_send(DeliverHere { users, frame });
                }
            }
            EventKind::Presence { user, online, at } => self.presence.do_send(Announce { user, online, at }),
        }
    }

    fn unannounced(&self, change: Unannounced) {
        self.presence.do_send(Reconcile { change });
    }

    fn register_users(&self) -> BoxFuture<'static, bool> {
        self.presence.send(Register).map(|registered| registered.unwrap_or(false)).boxed()
    }

    fn reconnected(&self) {
        // The actors read their members again: changes of other nodes may have been lost while
        // the broker was away.
        self.registry.reload_all();
    }
}

impl Change {
    /// A committed membership change as the other nodes apply it (`new_owner`: the group's new
    /// owner when its owner left).
    pub fn new(change: MembershipChange, new_owner: Option<UserId>) -> Change {
        match change {
            MembershipChange::Add(user, role) => Change::Add(user, role),
            MembershipChange::Remove(user) => Change::Remove { user, new_owner },
        }
    }
}
