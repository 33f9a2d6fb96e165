//! Counted places: at most so many open things per holder at once (TCP connections per address,
//! WebSocket sessions per user and per address). A [`Slot`] is taken when the thing opens and
//! gives its place back when it is dropped, so the count cannot drift from what is open: the
//! connection's or the session's own end releases it, whatever ended it.
//!
//! One mutex per [`Slots`], held for a hash-map update: taken once per connection or session,
//! never per message.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::types::UserId;

/// Who holds places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    User(UserId),
    Address(IpAddr),
}

type Counts = Arc<Mutex<HashMap<Holder, usize>>>;

/// At most `max` places per holder.
pub struct Slots {
    max: usize,
    counts: Counts,
}

/// One place, given back on drop.
#[derive(Debug)]
pub struct Slot {
    holder: Holder,
    counts: Counts,
}

impl Slots {
    pub fn new(max: usize) -> Self {
        Slots { max, counts: Counts::default() }
    }

    /// A place for `holder`, or `None` when it holds `max` already.
    pub fn take(&self, holder: Holder) -> Option<Slot> {
        // A panic while the lock was held cannot leave a count half-updated (one integer
        // store), so a poisoned lock is still right.
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let held = counts.entry(holder).or_default();
        if *held >= self.max {
            return None;
        }
        *held += 1;
        Some(Slot { holder, counts: self.counts.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = counts.get_mut(&self.holder) {
            *held = held.saturating_sub(1);
            // Holders with nothing open are forgotten: memory follows what is open.
            if *held == 0 {
                counts.remove(&self.holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_holder_and_given_back_on_drop() {
        let slots = Slots::new(2);
        let a = Holder::Address("192.0.2.1".parse().unwrap());
        let b = Holder::Address("192.0.2.2".parse().unwrap());
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "a third place for one holder");
        assert!(slots.take(b).is_some(), "another holder has places of its own");
        drop(first);
        assert_eq!(slots.counts.lock().unwrap().get(&a), Some(&1));
        assert!(slots.take(a).is_some(), "a place given back can be taken again");
    }

    #[test]
    fn a_holder_with_nothing_open_is_forgotten() {
        let slots = Slots::new(1);
        let user = Holder::User(UserId(uuid::Uuid::new_v4()));
        drop(slots.take(user));
        assert!(slots.counts.lock().unwrap().is_empty());
    }
}
