//! What Presence answers about who is online: `presence:query` and the presence in
//! `GET /api/users/{id}` ([`query`], [`user_with_presence`]), and the counts of the admin
//! endpoint and `/metrics` ([`stats`]).
//!
//! Presence is told only to people who share a conversation with the user, as the
//! `presence:updated` events are: a stranger learns nothing of when someone is online or was
//! last seen (the users they may not see are left out of the answer).

use actix::prelude::*;

use super::Presence;
use crate::error::{Error, Result};
use crate::protocol;
use crate::store::UserRow;
use crate::types::{Timestamp, UserId};

/// Online state and last-seen time of `users`, in the whole cluster, as `viewer` may see them:
/// unknown ids, and users who share no conversation with `viewer`, are left out.
#[derive(Message)]
#[rtype(result = "Result<Vec<protocol::Presence>>")]
pub struct Query {
    pub viewer: UserId,
    pub users: Vec<UserId>,
}

impl Handler<Query> for Presence {
    type Result = ResponseFuture<Result<Vec<protocol::Presence>>>;

    fn handle(&mut self, Query { viewer, users }: Query, _: &mut Self::Context) -> Self::Result {
        if users.len() > self.max_query {
            let max = self.max_query;
            return Box::pin(async move { Err(Error::bad_request(format!("ask about at most {max} users at once"))) });
        }
        let here: Vec<bool> = users.iter().map(|user| self.sessions.is_online(*user)).collect();
        let (broker, store) = (self.broker.clone(), self.store.clone());
        // The rest runs outside the actor: it waits for Redis and the database.
        Box::pin(async move {
            // In a cluster the broker knows every node's users; while it is down, this node's view.
            let online = match broker.online(&users).await {
                Some(anywhere) => here.iter().zip(anywhere).map(|(here, anywhere)| *here || anywhere).collect(),
                None => here,
            };
            let rows = store.users(&users).await?;
            let contacts = store.contacts(viewer).await?;
            let visible = |id: &UserId| *id == viewer || contacts.contains(id);
            let now = Timestamp::now();
            Ok(users
                .iter()
                .zip(online)
                .filter_map(|(id, online)| {
                    let row = rows.iter().find(|r| r.id == *id && visible(id))?;
                    // An online user is seen now; an offline one when their last session went away.
                    let last_seen_at = if online { Some(now) } else { row.last_seen_at };
                    Some(protocol::Presence { user_id: *id, online, last_seen_at })
                })
                .collect())
        })
    }
}

/// `presence:query`: asks `presence` about `users`, for `viewer`.
pub async fn query(presence: &Addr<Presence>, viewer: UserId, users: Vec<UserId>) -> Result<Vec<protocol::Presence>> {
    presence.send(Query { viewer, users }).await.map_err(|_| Error::presence_restarting())?
}

/// The wire `User`, for `GET /api/users/{id}`: with presence when `viewer` may see it.
pub async fn user_with_presence(presence: &Addr<Presence>, viewer: UserId, row: &UserRow) -> Result<protocol::User> {
    let mut user = row.to_user();
    if let Some(found) = query(presence, viewer, vec![row.id]).await?.pop() {
        user.online = Some(found.online);
        user.last_seen_at = found.last_seen_at;
    }
    Ok(user)
}

/// Counts for the admin endpoint and `/metrics`.
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
        let (sessions, users, online_users) = self.sessions.counts();
        MessageResult(PresenceStats { sessions, users, online_users })
    }
}

/// Asks `presence` for its counts.
pub async fn stats(presence: &Addr<Presence>) -> Result<PresenceStats> {
    presence.send(Stats).await.map_err(|_| Error::presence_restarting())
}
