//! The port through which the link hands over what it learns: the node implements [`Inbound`]
//! (`actors/inbox.rs`), and the cluster knows nothing of the actors behind it. So the link stays
//! a transport: it decodes, counts and passes on; which actor hears of what is the node's
//! business.

use futures_util::future::BoxFuture;

use super::events::ClusterEvent;
use crate::types::{Timestamp, UserId};

/// What the node does with what the broker brings.
pub trait Inbound: Send + Sync + 'static {
    /// An event another node published.
    fn event(&self, event: ClusterEvent);

    /// A presence change the broker found that no node announced.
    fn unannounced(&self, change: Unannounced);

    /// Registers this node's users in Redis again (the link connected, the node's lease was
    /// gone, or a presence change could not be written). Resolves to whether it worked; the link
    /// does not wait for it, it only tries again at its next heartbeat when it did not.
    fn register_users(&self) -> BoxFuture<'static, bool>;

    /// The link is connected (again): changes other nodes published meanwhile may be lost.
    fn reconnected(&self);
}

/// What the broker found of a user's presence in the cluster on its own: online nowhere any
/// more (their node died: `at` is its last heartbeat, their last-seen time; or they left while
/// the broker was away: `at` is `None`, their last-seen time is stored already), or online and
/// unannounced (they came while it was away).
#[derive(Debug, Clone, Copy)]
pub struct Unannounced {
    pub user: UserId,
    pub online: bool,
    pub at: Option<Timestamp>,
}
