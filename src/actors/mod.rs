//! The actors (ARCHITECTURE.md): a [`session::WsSession`] per WebSocket, a
//! [`conversation::ConversationActor`] per active conversation (found or started by the
//! [`registry::Registry`]), and one [`presence::Presence`] per node. [`outbox`] is how anything
//! reaches a session without waiting on it.

pub mod conversation;
pub mod outbox;
pub mod presence;
pub mod registry;
pub mod session;
