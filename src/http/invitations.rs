//! How many groups one user may add people to: `PARLEY_GROUP_INVITES_PER_MINUTE`. Without it,
//! anyone could put anyone into a hundred groups in a tenth of a second, each one a
//! `conversation:updated` on the victim's screens and a row in their list. Creating a group with
//! members counts one group; adding people to a group already counted within the minute is
//! free, so an owner filling one group never meets the limit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::types::{ConversationId, UserId};

/// The window the limit counts over.
const WINDOW: Duration = Duration::from_secs(60);
/// Past this many users with recent invitations, those with none left in the window are
/// forgotten (memory follows the users who invite).
const SOFT_CAP: usize = 10_000;

pub struct GroupInvites {
    per_window: usize,
    recent: Mutex<HashMap<UserId, Recent>>,
}

/// The groups one user added people to within the window and when, oldest first (`None`: a
/// group being created, which has no id yet).
type Recent = VecDeque<(Option<ConversationId>, Instant)>;

impl GroupInvites {
    pub fn new(per_minute: usize) -> Self {
        GroupInvites { per_window: per_minute, recent: Mutex::new(HashMap::new()) }
    }

    /// `user` adds people to `group` (`None`: a new group): `rate_limited` when it would be one
    /// group more than the limit within the window.
    pub fn take(&self, user: UserId, group: Option<ConversationId>) -> Result<()> {
        // Each update is a whole push or pop: a poisoned lock holds no half-made state.
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if recent.len() > SOFT_CAP {
            recent.retain(|_, groups| groups.back().is_some_and(|(_, at)| now.duration_since(*at) < WINDOW));
        }
        let groups = recent.entry(user).or_default();
        while groups.front().is_some_and(|(_, at)| now.duration_since(*at) >= WINDOW) {
            groups.pop_front();
        }
        if group.is_some() && groups.iter().any(|(counted, _)| *counted == group) {
            return Ok(());
        }
        if groups.len() >= self.per_window {
            metrics::counter!(crate::metrics::REFUSED, "limit" => "group_invites").increment(1);
            let wait = groups.front().map_or(WINDOW, |(_, at)| WINDOW.saturating_sub(now.duration_since(*at)));
            return Err(Error::RateLimited { retry_after_ms: (wait.as_millis() as u64).max(1) });
        }
        groups.push_back((group, now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> uuid::Uuid {
        uuid::Uuid::new_v4()
    }

    #[test]
    fn a_user_may_add_people_to_so_many_groups_a_minute() {
        let invites = GroupInvites::new(2);
        let (alice, bob) = (UserId(id()), UserId(id()));
        let (first, second, third) = (ConversationId(id()), ConversationId(id()), ConversationId(id()));
        invites.take(alice, Some(first)).unwrap();
        invites.take(alice, None).unwrap();
        // More people into a group already counted: free.
        invites.take(alice, Some(first)).unwrap();
        for refused in [Some(second), Some(third), None] {
            match invites.take(alice, refused) {
                Err(Error::RateLimited { retry_after_ms }) => assert!(retry_after_ms > 0 && retry_after_ms <= 60_000),
                other => panic!("expected rate_limited, got {other:?}"),
            }
        }
        // Another user counts their own.
        invites.take(bob, Some(second)).unwrap();
    }
}
