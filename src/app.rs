//! What the HTTP handlers share: handles on the store, the actors and the broker, and the
//! settings they read. Built once in [`crate::start`] and handed to handlers through
//! `web::Data`. What the server does lives behind these handles, not here: presence is answered
//! by `actors::presence`, the origin policy is a `web::Data` of its own, and WebSocket sessions
//! get their own, smaller set of handles (`actors::session::SessionDeps`), so that nothing in
//! `actors` depends on this layer above it.

use std::sync::Arc;

use actix::Addr;

use crate::actors::presence::Presence;
use crate::actors::registry::Registry;
use crate::cluster::Broker;
use crate::config::{Language, Limits, Policies};
use crate::rate_limit::RateLimiter;
use crate::store::Store;
use crate::types::Timestamp;

pub struct AppState {
    pub store: Store,
    pub presence: Addr<Presence>,
    pub registry: Arc<Registry>,
    pub limits: Arc<Limits>,
    /// The same limiter as the sessions' ([`crate::actors::session::SessionDeps`]): a user's
    /// rate is one, whichever door their sends take.
    pub rate: Arc<RateLimiter>,
    pub broker: Broker,
    pub node_id: uuid::Uuid,
    pub started_at: Timestamp,
    pub admin_users: Vec<String>,
    /// Who may register, find whom, and open conversations (`PARLEY_REGISTRATION`, …).
    pub policies: Policies,
    /// The language of system messages that do not say theirs.
    pub language: Language,
    pub fault_injection: bool,
}
