//! The actors (docs/ARCHITECTURE.md): a [`session::WsSession`] per WebSocket, a
//! [`conversation::ConversationActor`] per active conversation (found or started by the
//! [`registry::Registry`]), and one [`presence::Presence`] per node. [`outgoing`] is each
//! session's bounded outgoing queue, how anything reaches a session without waiting on it.
//! [`inbox`] is the actors' side of the cluster port: it routes what other nodes publish.
//! [`archival`] archives the conversations whose business object ended long enough ago.

pub mod archival;
pub mod conversation;
pub mod inbox;
pub mod outgoing;
pub mod presence;
pub mod registry;
pub mod session;
