//! What request handlers and sessions share: handles on the store, the actors and the broker,
//! and the settings they read. Built once in [`crate::start`] and handed to handlers (and to
//! each `WsSession`) through `web::Data`. What the server does lives behind these handles, not
//! here: presence is answered by `actors::presence`, the origin policy is a `web::Data` of
//! its own for the HTTP side only.

use std::sync::Arc;

use actix::Addr;

use crate::actors::presence::Presence;
use crate::actors::registry::Registry;
use crate::cluster::Broker;
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::protocol;
use crate::rate_limit::RateLimiter;
use crate::store::Store;
use crate::types::{Timestamp, UserId};

/// The longest `client_id` accepted.
const MAX_CLIENT_ID: usize = 128;

pub struct AppState {
    pub store: Store,
    pub presence: Addr<Presence>,
    pub registry: Arc<Registry>,
    pub limits: Arc<Limits>,
    pub rate: RateLimiter,
    pub broker: Broker,
    pub node_id: uuid::Uuid,
    pub started_at: Timestamp,
    pub admin_users: Vec<String>,
    pub fault_injection: bool,
}

impl AppState {
    /// The checks of a send that need no actor: body and client_id sizes, then the sender's
    /// rate (PROTOCOL.md §4). Same for REST and WebSocket.
    pub fn check_message(&self, sender: UserId, body: &str, client_id: Option<&str>) -> Result<()> {
        let max = self.limits.max_message_chars;
        protocol::check_text("body", body)?;
        if let Some(client_id) = client_id {
            protocol::check_text("client_id", client_id)?;
        }
        if body.trim().is_empty() {
            return Err(Error::bad_request("body must not be empty"));
        }
        if body.chars().count() > max {
            return Err(Error::PayloadTooLarge(format!("body is longer than {max} characters")));
        }
        if let Some(client_id) = client_id
            && (client_id.is_empty() || client_id.len() > MAX_CLIENT_ID)
        {
            return Err(Error::bad_request(format!("client_id must be 1 to {MAX_CLIENT_ID} bytes")));
        }
        self.rate.check(sender)
    }
}
