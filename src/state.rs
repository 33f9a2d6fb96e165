//! What request handlers and sessions share: the store, the actors, the limits. Built once in
//! [`crate::run`] and handed to handlers through `web::Data`.

use std::sync::Arc;

use actix::Addr;

use crate::actors::presence::{Online, Presence};
use crate::actors::registry::Registry;
use crate::cluster::Broker;
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::protocol;
use crate::rate_limit::RateLimiter;
use crate::store::Store;
use crate::types::{Timestamp, UserId};

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
    pub origins: crate::http::origin::OriginPolicy,
    pub fault_injection: bool,
}

impl AppState {
    /// Online state and last-seen time of `users` (unknown ids are left out).
    pub async fn presence_of(&self, users: &[UserId]) -> Result<Vec<protocol::Presence>> {
        if users.len() > self.limits.max_batch {
            return Err(Error::bad_request(format!("ask about at most {} users at once", self.limits.max_batch)));
        }
        let here = self
            .presence
            .send(Online { users: users.to_vec() })
            .await
            .map_err(|_| Error::Unavailable("presence is restarting".into()))?;
        // In a cluster the broker knows every node's users; while it is down, this node's view.
        let online = match self.broker.online(users).await {
            Some(anywhere) => here.iter().zip(anywhere).map(|(here, anywhere)| *here || anywhere).collect(),
            None => here,
        };
        let rows = self.store.users(users).await?;
        let now = Timestamp::now();
        Ok(users
            .iter()
            .zip(online)
            .filter_map(|(id, online)| {
                let row = rows.iter().find(|r| r.id == *id)?;
                // An online user is seen now; an offline one when their last session went away.
                let last_seen_at = if online { Some(now) } else { row.last_seen_at };
                Some(protocol::Presence { user_id: *id, online, last_seen_at })
            })
            .collect())
    }

    /// The wire `User` with presence, for `GET /api/users/{id}`.
    pub async fn user_with_presence(&self, row: &crate::store::UserRow) -> Result<protocol::User> {
        let mut user = row.to_user();
        if let Some(p) = self.presence_of(&[row.id]).await?.pop() {
            user.online = Some(p.online);
            user.last_seen_at = p.last_seen_at;
        }
        Ok(user)
    }
}
