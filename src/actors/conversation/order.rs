//! In a cluster, a conversation's messages commit on several nodes, and each node hears of the
//! others' through the broker, so `message:new` can reach an actor out of `seq` order, or
//! never (the broker was down). [`Sequencer`] hands this node's sessions every `seq` once, in
//! order: a message ahead of a missing one is held; if the missing one has not come within
//! `PARLEY_GAP_WAIT_MS`, the actor reads the gap from the database, where every committed
//! message is, and delivers it (a gap fill). On a node alone the actor commits every message
//! itself, in order, and needs none of this.
//!
//! Where to start counting: an actor that has just loaded cannot know whether the events of
//! the last messages it read are still on their way (committed on another node a moment
//! before, published a moment after). It counts from its first message, or from one past what
//! it loaded, whichever is lower; an older event that arrives later was delivered by nobody
//! here (each event arrives once), so it is delivered then, late rather than never. Clients
//! keep messages by `seq` and id, so one arriving late takes its place.
//!
//! The sequencer is pure (no actix, no I/O, no clock): it answers the steps to take, in
//! order, and when to look at a gap; the actor runs the timer, the read and the deliveries.

use std::collections::BTreeMap;

use super::live::Leave;
use crate::protocol::Frame;
use crate::types::Seq;

/// Most messages held behind a gap before it is filled without waiting.
const MAX_HELD: usize = 1024;
/// Most messages read in one gap fill.
const FILL_PAGE: i64 = 500;

#[derive(Default)]
pub(super) struct Sequencer {
    /// `last_seq` when the actor loaded.
    loaded: Seq,
    /// The next `seq` to deliver; set by the first message after the actor loaded.
    next: Option<Seq>,
    /// The first `seq` delivered: everything from here to `next` was, nothing below.
    first: Seq,
    held: BTreeMap<Seq, Frame>,
    /// Members who left with a message still held: they go once it is delivered, so that their
    /// sessions see their leaving, and nothing after it.
    leaves: BTreeMap<Seq, Leave>,
    /// A gap timer or fill is under way.
    filling: bool,
}

/// One thing to do, in the order given.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// `message:new` to this node's sessions.
    Deliver(Frame),
    /// A member leaves the member list (their message was delivered, or will never be).
    Leave(Leave),
}

/// When the actor should look at a gap again (with [`Sequencer::gap_due`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum GapCheck {
    /// After `PARLEY_GAP_WAIT_MS`: the missing messages may still come.
    AfterWait,
    /// Now: too many messages are held behind it.
    Now,
}

/// What became deliverable, and whether a gap needs watching.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Released {
    pub(super) steps: Vec<Step>,
    pub(super) gap: Option<GapCheck>,
}

/// A gap's time is up: either it closed meanwhile, or these seqs must be read from the database.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum GapDue {
    Closed(Released),
    /// Read the messages after `after` and before `before`, at most `limit` of them.
    Missing {
        after: Seq,
        before: Seq,
        limit: i64,
    },
}

impl Sequencer {
    /// A sequencer for an actor that loaded the conversation at `loaded` (its `last_seq`).
    pub(super) fn after(loaded: Seq) -> Sequencer {
        Sequencer { loaded, ..Sequencer::default() }
    }

    /// Message `seq` committed: what can be delivered now, in order.
    pub(super) fn offer(&mut self, seq: Seq, frame: Frame) -> Released {
        let next = *self.next.get_or_insert_with(|| {
            self.first = seq.min(self.loaded.next());
            self.first
        });
        if seq < self.first {
            // Committed before this actor loaded, its event on its way meanwhile: nobody here
            // has delivered it.
            return Released { steps: vec![Step::Deliver(frame)], gap: None };
        }
        if seq < next {
            return Released::default(); // delivered already (a gap fill overtook its event)
        }
        self.held.insert(seq, frame);
        self.release()
    }

    /// A member left with message `seq`: they leave the member list once it is delivered. Says
    /// so if that is now (delivered already, or nothing was ever offered: a node alone).
    pub(super) fn leave_after(&mut self, seq: Seq, leave: Leave) -> Option<Leave> {
        match self.next {
            Some(next) if seq >= next => {
                self.leaves.insert(seq, leave);
                None
            }
            _ => Some(leave),
        }
    }

    /// The held messages that are next in line, and whether a gap now needs watching.
    fn release(&mut self) -> Released {
        let mut released = Released::default();
        let Some(mut next) = self.next else { return released };
        while let Some(frame) = self.held.remove(&next) {
            released.steps.push(Step::Deliver(frame));
            if let Some(leave) = self.leaves.remove(&next) {
                released.steps.push(Step::Leave(leave));
            }
            next = next.next();
        }
        self.next = Some(next);
        // Leaves whose message was skipped (a gap that could not be filled) apply now.
        while let Some(entry) = self.leaves.first_entry()
            && *entry.key() < next
        {
            released.steps.push(Step::Leave(entry.remove()));
        }
        if !self.held.is_empty() && !self.filling {
            self.filling = true;
            released.gap = Some(if self.held.len() > MAX_HELD { GapCheck::Now } else { GapCheck::AfterWait });
        }
        released
    }

    /// The gap timer fired: has the gap closed, or what must be read?
    pub(super) fn gap_due(&mut self) -> GapDue {
        let (Some(next), Some(&ahead)) = (self.next, self.held.keys().next()) else {
            self.filling = false;
            return GapDue::Closed(Released::default());
        };
        if ahead <= next {
            // The missing messages came while we waited.
            self.filling = false;
            return GapDue::Closed(self.release());
        }
        GapDue::Missing { after: next.prev(), before: ahead, limit: ahead.since(next).min(FILL_PAGE) }
    }

    /// The gap up to `before` was read: `messages` (seq and frame). A page shorter than the gap
    /// leaves the rest to the next round; an empty one means the gap is not in the database
    /// (cannot happen: seqs are assigned in the committing transaction), so it is skipped.
    pub(super) fn filled(&mut self, messages: Vec<(Seq, Frame)>, before: Seq) -> Released {
        self.filling = false;
        if messages.is_empty() {
            self.skip_to(before);
        }
        for (seq, frame) in messages {
            self.held.entry(seq).or_insert(frame);
        }
        self.release()
    }

    /// The gap up to `before` could not be read: clients `sync` to fill what they missed, and
    /// the held messages are not kept back.
    pub(super) fn fill_failed(&mut self, before: Seq) -> Released {
        self.filling = false;
        self.skip_to(before);
        self.release()
    }

    /// Gives up the seqs below `seq`. Never moves back: the gap may have closed during the read.
    fn skip_to(&mut self, seq: Seq) {
        if let Some(next) = &mut self.next {
            *next = (*next).max(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::UserId;

    fn frame(seq: i64) -> Frame {
        Frame::from(format!("m{seq}"))
    }

    fn delivered(released: &Released) -> Vec<i64> {
        released
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::Deliver(frame) => frame[1..].parse().ok(),
                Step::Leave(_) => None,
            })
            .collect()
    }

    #[test]
    fn in_order_messages_are_delivered_at_once() {
        let mut order = Sequencer::after(Seq(5));
        for seq in 6..10 {
            let released = order.offer(Seq(seq), frame(seq));
            assert_eq!(delivered(&released), vec![seq]);
            assert_eq!(released.gap, None);
        }
    }

    #[test]
    fn a_message_ahead_of_a_missing_one_waits_for_it() {
        let mut order = Sequencer::after(Seq(5));
        order.offer(Seq(6), frame(6));
        let ahead = order.offer(Seq(8), frame(8));
        assert!(delivered(&ahead).is_empty());
        assert_eq!(ahead.gap, Some(GapCheck::AfterWait));
        assert_eq!(order.offer(Seq(9), frame(9)).gap, None, "one gap timer at a time");
        assert_eq!(delivered(&order.offer(Seq(7), frame(7))), vec![7, 8, 9]);
        // The timer fires after the gap closed: nothing to read.
        assert_eq!(order.gap_due(), GapDue::Closed(Released::default()));
    }

    #[test]
    fn duplicates_are_delivered_once() {
        let mut order = Sequencer::after(Seq(5));
        assert_eq!(delivered(&order.offer(Seq(6), frame(6))), vec![6]);
        assert!(delivered(&order.offer(Seq(6), frame(6))).is_empty());
        order.offer(Seq(8), frame(8));
        assert!(delivered(&order.offer(Seq(8), frame(8))).is_empty());
        assert_eq!(delivered(&order.offer(Seq(7), frame(7))), vec![7, 8]);
    }

    #[test]
    fn a_gap_that_times_out_is_read_from_the_database() {
        let mut order = Sequencer::after(Seq(5));
        order.offer(Seq(6), frame(6));
        order.offer(Seq(9), frame(9));
        assert_eq!(order.gap_due(), GapDue::Missing { after: Seq(6), before: Seq(9), limit: 2 });
        // Message 8's event comes during the read; the read brings 7 and 8.
        assert!(delivered(&order.offer(Seq(8), frame(8))).is_empty());
        let released = order.filled(vec![(Seq(7), frame(7)), (Seq(8), frame(8))], Seq(9));
        assert_eq!(delivered(&released), vec![7, 8, 9]);
        assert_eq!(released.gap, None);
        assert!(delivered(&order.offer(Seq(8), frame(8))).is_empty(), "the late event is a duplicate");
    }

    #[test]
    fn a_gap_missing_from_the_database_or_unreadable_is_skipped() {
        let mut order = Sequencer::after(Seq(5));
        order.offer(Seq(6), frame(6));
        order.offer(Seq(9), frame(9));
        assert!(matches!(order.gap_due(), GapDue::Missing { .. }));
        assert_eq!(delivered(&order.filled(Vec::new(), Seq(9))), vec![9]);
        order.offer(Seq(12), frame(12));
        assert!(matches!(order.gap_due(), GapDue::Missing { after: Seq(9), before: Seq(12), .. }));
        assert_eq!(delivered(&order.fill_failed(Seq(12))), vec![12]);
        assert_eq!(delivered(&order.offer(Seq(13), frame(13))), vec![13]);
    }

    #[test]
    fn a_long_gap_is_read_in_pages_and_too_many_held_fill_at_once() {
        let mut order = Sequencer::after(Seq(0));
        order.offer(Seq(1), frame(1));
        for seq in 1000..1000 + MAX_HELD as i64 {
            order.offer(Seq(seq), frame(seq));
        }
        assert_eq!(order.offer(Seq(5000), frame(5000)).gap, None, "a timer is already set");
        assert_eq!(order.gap_due(), GapDue::Missing { after: Seq(1), before: Seq(1000), limit: FILL_PAGE });
        let page = (2..2 + FILL_PAGE).map(|seq| (Seq(seq), frame(seq))).collect();
        let released = order.filled(page, Seq(1000));
        assert_eq!(delivered(&released).len(), FILL_PAGE as usize);
        assert_eq!(released.gap, Some(GapCheck::Now), "more than MAX_HELD still held");
    }

    #[test]
    fn an_event_older_than_the_first_delivery_is_delivered_late_never_dropped() {
        // Loaded at 10; the first event after loading is 11's, then 9's and 10's arrive.
        let mut order = Sequencer::after(Seq(10));
        assert_eq!(delivered(&order.offer(Seq(11), frame(11))), vec![11]);
        assert_eq!(delivered(&order.offer(Seq(9), frame(9))), vec![9]);
        assert_eq!(delivered(&order.offer(Seq(10), frame(10))), vec![10]);
        // Loaded at 10, but the first event is 8's: counting starts there, 9 and 10 awaited.
        let mut order = Sequencer::after(Seq(10));
        assert_eq!(delivered(&order.offer(Seq(8), frame(8))), vec![8]);
        let ahead = order.offer(Seq(11), frame(11));
        assert!(delivered(&ahead).is_empty());
        assert_eq!(ahead.gap, Some(GapCheck::AfterWait));
        assert_eq!(delivered(&order.offer(Seq(7), frame(7))), vec![7]);
    }

    #[test]
    fn a_leaver_goes_right_after_their_message_is_delivered() {
        let leave = Leave { user: UserId(uuid::Uuid::new_v4()), new_owner: None };
        let mut order = Sequencer::after(Seq(5));
        assert_eq!(order.leave_after(Seq(6), leave), Some(leave), "nothing offered yet: at once");
        order.offer(Seq(6), frame(6));
        order.offer(Seq(8), frame(8));
        assert_eq!(order.leave_after(Seq(8), leave), None, "held with message 8");
        assert_eq!(order.leave_after(Seq(6), leave), Some(leave), "6 is delivered already");
        let released = order.offer(Seq(7), frame(7));
        assert_eq!(
            released.steps,
            vec![Step::Deliver(frame(7)), Step::Deliver(frame(8)), Step::Leave(leave)],
            "the leaver sees their leaving"
        );
        // A leave whose message could not be read goes when the gap is skipped.
        order.offer(Seq(11), frame(11));
        assert_eq!(order.leave_after(Seq(10), leave), None);
        order.gap_due();
        assert_eq!(order.fill_failed(Seq(11)).steps, vec![Step::Deliver(frame(11)), Step::Leave(leave)]);
    }
}
