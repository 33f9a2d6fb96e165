//! `unread:updated` to recipients after sends, coalesced: at most one totals query in flight and
//! one per `PARLEY_UNREAD_INTERVAL_MS`, and all the users that changed meanwhile go in the next
//! one. (A busy conversation would otherwise cost a query per message.)
//!
//! [`UnreadUpdates`] only decides when to query and for whom; the actor runs the timer and the
//! query, and delivers the frames. No actix, no I/O: the unit tests below run it as it is.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::types::{Unread, UserId};

#[derive(Default)]
pub(super) struct UnreadUpdates {
    dirty: HashSet<UserId>,
    querying: bool,
    /// A flush waits for the interval to pass.
    waiting: bool,
    /// When the last totals query started.
    last: Option<Instant>,
}

/// What to do about the queued updates now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Flush {
    /// Nothing queued, or a query or a wait is under way (it flushes again when it ends).
    Idle,
    /// Flush again after this long ([`UnreadUpdates::waited`] first).
    Wait(Duration),
    /// Query the totals of these users now ([`UnreadUpdates::answered`] once answered).
    Query(Vec<UserId>),
}

impl UnreadUpdates {
    /// The unread counts of `users` changed.
    pub(super) fn queue(&mut self, users: impl IntoIterator<Item = UserId>) {
        self.dirty.extend(users);
    }

    /// A query or a wait is under way.
    pub(super) fn busy(&self) -> bool {
        self.querying || self.waiting
    }

    /// What to do now (`now`), at most one query per `interval`.
    pub(super) fn flush(&mut self, now: Instant, interval: Duration) -> Flush {
        if self.busy() || self.dirty.is_empty() {
            return Flush::Idle;
        }
        if let Some(wait) = self.last.and_then(|last| interval.checked_sub(now.saturating_duration_since(last)))
            && !wait.is_zero()
        {
            self.waiting = true;
            return Flush::Wait(wait);
        }
        self.last = Some(now);
        self.querying = true;
        Flush::Query(self.dirty.drain().collect())
    }

    /// The wait of [`Flush::Wait`] is over.
    pub(super) fn waited(&mut self) {
        self.waiting = false;
    }

    /// The query of [`Flush::Query`] is answered (or failed).
    pub(super) fn answered(&mut self) {
        self.querying = false;
    }
}

/// A user's `count` in this conversation with their total across conversations as the query
/// found it (`queried`), the total never below the count (the count was taken before the query
/// started, so a message read meanwhile could otherwise show a total smaller than a part of it).
pub(super) fn with_total(count: i64, queried: Option<i64>) -> Unread {
    Unread { count, total: queried.unwrap_or(0).max(count) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId(uuid::Uuid::new_v4())
    }

    const INTERVAL: Duration = Duration::from_millis(100);

    #[test]
    fn nothing_queued_means_no_query() {
        let mut unread = UnreadUpdates::default();
        assert_eq!(unread.flush(Instant::now(), INTERVAL), Flush::Idle);
        assert!(!unread.busy());
    }

    #[test]
    fn updates_during_a_query_go_in_the_next_one_once() {
        let (a, b) = (user(), user());
        let mut unread = UnreadUpdates::default();
        let start = Instant::now();
        unread.queue([a]);
        assert_eq!(unread.flush(start, INTERVAL), Flush::Query(vec![a]));
        unread.queue([b]);
        unread.queue([b]);
        assert_eq!(unread.flush(start, INTERVAL), Flush::Idle, "one query in flight");
        assert!(unread.busy());
        unread.answered();
        // Answered at once: the next query waits for the rest of the interval.
        assert_eq!(unread.flush(start + INTERVAL / 4, INTERVAL), Flush::Wait(INTERVAL * 3 / 4));
        assert_eq!(unread.flush(start + INTERVAL / 2, INTERVAL), Flush::Idle, "one wait at a time");
        unread.waited();
        assert_eq!(unread.flush(start + INTERVAL, INTERVAL), Flush::Query(vec![b]));
    }

    #[test]
    fn after_a_quiet_interval_a_query_goes_at_once() {
        let mut unread = UnreadUpdates::default();
        let start = Instant::now();
        unread.queue([user()]);
        assert!(matches!(unread.flush(start, INTERVAL), Flush::Query(_)));
        unread.answered();
        unread.queue([user()]);
        assert!(matches!(unread.flush(start + 2 * INTERVAL, INTERVAL), Flush::Query(_)));
    }

    #[test]
    fn a_total_is_never_below_its_count() {
        assert_eq!(with_total(3, Some(7)), Unread { count: 3, total: 7 });
        assert_eq!(with_total(3, Some(2)), Unread { count: 3, total: 3 });
        assert_eq!(with_total(3, None), Unread { count: 3, total: 3 });
    }
}
