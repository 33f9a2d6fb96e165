//! The node's session index: which users have sessions here, and who is inside the grace
//! period after their last session closed. Plain bookkeeping, no actor: the actor
//! (`presence/mod.rs`) owns the timers and asks this index what a connect or a disconnect means.

use std::collections::HashMap;

use actix::SpawnHandle;

use crate::actors::outgoing::SessionHandle;
use crate::types::{SessionId, UserId};

/// Every session on this node, by user.
#[derive(Default)]
pub(super) struct Sessions {
    /// A user is online here while they have an entry: with sessions, or without any but inside
    /// the grace period.
    users: HashMap<UserId, UserEntry>,
}

#[derive(Default)]
struct UserEntry {
    sessions: Vec<SessionHandle>,
    /// Set while the user has no session but is still inside the grace period.
    going_offline: Option<SpawnHandle>,
}

/// What a new session means.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Opened {
    /// The user had no session here and was not inside a grace period: online now.
    pub came_online: bool,
    /// The grace timer to cancel: the user came back in time (no flap).
    pub cancel: Option<SpawnHandle>,
}

impl Sessions {
    /// A session opened.
    pub fn open(&mut self, session: SessionHandle) -> Opened {
        let came_online = !self.users.contains_key(&session.user);
        let entry = self.users.entry(session.user).or_default();
        let cancel = entry.going_offline.take();
        // Most users have one session: room for exactly that, not the four slots a first push
        // would make (per-connection memory, issue: 19,000 idle connections at 8 KiB each).
        entry.sessions.reserve_exact(1);
        entry.sessions.push(session);
        Opened { came_online, cancel }
    }

    /// A session closed. `true` when it was the user's last and no grace period runs yet: the
    /// caller starts one and hands its timer to [`Sessions::grace_started`].
    pub fn close(&mut self, user: UserId, session: SessionId) -> bool {
        let Some(entry) = self.users.get_mut(&user) else {
            return false;
        };
        entry.sessions.retain(|s| s.id != session);
        entry.sessions.is_empty() && entry.going_offline.is_none()
    }

    pub fn grace_started(&mut self, user: UserId, timer: SpawnHandle) {
        if let Some(entry) = self.users.get_mut(&user) {
            entry.going_offline = Some(timer);
        }
    }

    /// The grace period of `user` ran out: `true` if they are still without a session, and so
    /// offline now (forgotten here).
    pub fn grace_over(&mut self, user: UserId) -> bool {
        let gone = self.users.get(&user).is_some_and(|e| e.sessions.is_empty());
        if gone {
            self.users.remove(&user);
        }
        gone
    }

    /// Online here (a user in the grace period still is).
    pub fn is_online(&self, user: UserId) -> bool {
        self.users.contains_key(&user)
    }

    /// The open sessions of `user`.
    pub fn of(&self, user: UserId) -> &[SessionHandle] {
        self.users.get(&user).map_or(&[][..], |e| &e.sessions)
    }

    /// The users online here.
    pub fn users(&self) -> impl Iterator<Item = UserId> + '_ {
        self.users.keys().copied()
    }

    /// Every open session.
    pub fn all(&self) -> impl Iterator<Item = &SessionHandle> {
        self.users.values().flat_map(|e| &e.sessions)
    }

    /// Open sessions, users with at least one, users shown as online.
    pub fn counts(&self) -> (usize, usize, usize) {
        let sessions = self.users.values().map(|e| e.sessions.len()).sum();
        let with_sessions = self.users.values().filter(|e| !e.sessions.is_empty()).count();
        (sessions, with_sessions, self.users.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId(uuid::Uuid::new_v4())
    }

    #[test]
    fn the_first_session_brings_a_user_online_and_the_second_does_not() {
        let mut index = Sessions::default();
        let alice = user();
        assert_eq!(index.open(SessionHandle::detached(alice)), Opened { came_online: true, cancel: None });
        assert_eq!(index.open(SessionHandle::detached(alice)), Opened { came_online: false, cancel: None });
        assert!(index.is_online(alice));
        assert_eq!(index.of(alice).len(), 2);
        assert_eq!(index.counts(), (2, 1, 1));
    }

    #[test]
    fn only_the_last_session_starts_the_grace_period() {
        let mut index = Sessions::default();
        let alice = user();
        let (one, two) = (SessionHandle::detached(alice), SessionHandle::detached(alice));
        let (first, second) = (one.id, two.id);
        index.open(one);
        index.open(two);
        assert!(!index.close(alice, first));
        assert!(index.close(alice, second));
        index.grace_started(alice, SpawnHandle::default());
        // A second close of the same session (or a stray one) starts no second timer.
        assert!(!index.close(alice, second));
        assert!(!index.close(user(), second));
        // Inside the grace period: online still, with no session.
        assert!(index.is_online(alice));
        assert_eq!(index.counts(), (0, 0, 1));
    }

    #[test]
    fn back_within_the_grace_period_cancels_it_and_stays_online() {
        let mut index = Sessions::default();
        let alice = user();
        let session = SessionHandle::detached(alice);
        let id = session.id;
        index.open(session);
        assert!(index.close(alice, id));
        let timer = SpawnHandle::default().next();
        index.grace_started(alice, timer);
        assert_eq!(index.open(SessionHandle::detached(alice)), Opened { came_online: false, cancel: Some(timer) });
        // Had the timer fired anyway, the user has a session: not offline.
        assert!(!index.grace_over(alice));
        assert!(index.is_online(alice));
    }

    #[test]
    fn past_the_grace_period_a_user_without_sessions_is_offline() {
        let mut index = Sessions::default();
        let alice = user();
        let session = SessionHandle::detached(alice);
        let id = session.id;
        index.open(session);
        assert!(index.close(alice, id));
        index.grace_started(alice, SpawnHandle::default());
        assert!(index.grace_over(alice));
        assert!(!index.is_online(alice));
        assert_eq!(index.users().count(), 0);
        // Coming back later is coming online again.
        assert!(index.open(SessionHandle::detached(alice)).came_online);
    }
}
