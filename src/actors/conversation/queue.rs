//! The write queue of a conversation: writes commit one after another, and each commit is then
//! applied to the live state, broadcast, and acknowledged, in that order.
//!
//! Plain sends waiting in the queue go to the group committer together, as one job (their order
//! kept), and share a transaction with other conversations' sends. Sends with attachments,
//! attachment removals, membership changes and read markers commit on their own. A send that has waited past the send deadline is shed with
//! `unavailable`, and so is a new one while the queue's oldest has waited half of it: under
//! overload, what is accepted still commits in bounded time.
//!
//! [`WriteQueue`] holds the queued writes and the replies of the one in flight; the actor
//! starts each commit and answers with what it gives back. No actix, no I/O.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::ResponseFuture;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::protocol::{self, ReadState};
use crate::store::{MembershipChange, NewMessage};
use crate::types::{Seq, UserId};

type MessageReply = oneshot::Sender<Result<protocol::Message>>;

pub(super) enum Write {
    Send {
        new: NewMessage,
        reply: MessageReply,
        /// When the actor accepted it: the send latency counts from here.
        since: Instant,
    },
    /// A message that commits on its own, with what it changes besides (attachments it
    /// claims, or one it removes): not batched.
    Single { new: NewMessage, reply: MessageReply, since: Instant },
    /// A member added or removed, or the conversation archived or restored, by `by` (`None`:
    /// the service); its system message is written when it commits, with the names of then.
    Compose { by: Option<UserId>, what: Composed, reply: MessageReply, since: Instant },
    /// `moved` is false when the marker already is at `seq`: then only the counts are answered.
    Marker { user: UserId, seq: Seq, moved: bool, reply: oneshot::Sender<Result<ReadState>> },
}

impl Write {
    pub(super) fn send(new: NewMessage, reply: MessageReply) -> Write {
        let since = Instant::now();
        if new.is_plain() { Write::Send { new, reply, since } } else { Write::Single { new, reply, since } }
    }

    pub(super) fn compose(by: Option<UserId>, what: Composed, reply: MessageReply) -> Write {
        Write::Compose { by, what, reply, since: Instant::now() }
    }

    /// When a message write was accepted (the deadline counts for those).
    fn since(&self) -> Option<Instant> {
        match self {
            Write::Send { since, .. } | Write::Single { since, .. } | Write::Compose { since, .. } => Some(*since),
            Write::Marker { .. } => None,
        }
    }

    fn fail(self, err: Error) {
        match self {
            Write::Send { reply, .. } | Write::Single { reply, .. } | Write::Compose { reply, .. } => {
                drop(reply.send(Err(err)))
            }
            Write::Marker { reply, .. } => drop(reply.send(Err(err))),
        }
    }
}

/// What a composed system message announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Composed {
    Membership(MembershipChange),
    /// `true`: archived; `false`: restored.
    Archive(bool),
}

/// The replies of the write being committed.
pub(super) enum InFlight {
    /// Plain sends committed as one job, with when each was accepted.
    Sends(Vec<(MessageReply, Instant)>),
    /// A message committed on its own, with the membership change it announces, if any.
    Single(MessageReply, Option<MembershipChange>, Instant),
    Marker(oneshot::Sender<Result<ReadState>>),
}

/// The commit to start, the replies kept in the queue meanwhile.
pub(super) enum Started {
    /// Plain sends for the group committer; `accepted` is when the oldest was.
    Sends {
        messages: Vec<NewMessage>,
        accepted: Instant,
    },
    Single {
        new: NewMessage,
    },
    Compose {
        by: Option<UserId>,
        what: Composed,
    },
    Marker {
        user: UserId,
        seq: Seq,
        moved: bool,
    },
}

#[derive(Default)]
pub(super) struct WriteQueue {
    /// Writes waiting for the one in flight; they survive a restart.
    writes: VecDeque<Write>,
    /// The replies of the write being committed, if any.
    in_flight: Option<InFlight>,
}

impl WriteQueue {
    /// Queues `write`, unless it is a message and the queue stands (see the module doc).
    pub(super) fn enqueue(&mut self, write: Write, deadline: Duration) {
        // A standing queue: this send would likely miss the deadline, so it is refused now
        // rather than after waiting for it.
        if write.since().is_some() && self.backlogged(deadline / 2) {
            return shed(write);
        }
        self.writes.push_back(write);
    }

    /// Has the oldest queued message waited `half` the send deadline already?
    fn backlogged(&self, half: Duration) -> bool {
        self.writes.front().and_then(Write::since).is_some_and(|since| since.elapsed() > half)
    }

    /// Nothing queued and nothing in flight.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.writes.is_empty()
    }

    /// The next commit to start, unless one is in flight: the plain sends at the head of the
    /// queue (at most `max_batch`; those past `deadline` are shed), or the write at its head.
    pub(super) fn start_next(&mut self, max_batch: usize, deadline: Duration) -> Option<Started> {
        if self.in_flight.is_some() {
            return None;
        }
        let (started, in_flight) = match self.writes.pop_front()? {
            Write::Send { new, reply, since } => {
                self.writes.push_front(Write::Send { new, reply, since });
                let (messages, replies) = self.take_sends(max_batch, deadline);
                let Some(&(_, accepted)) = replies.first() else {
                    return self.start_next(max_batch, deadline); // all shed
                };
                (Started::Sends { messages, accepted }, InFlight::Sends(replies))
            }
            Write::Single { new, reply, since } => (Started::Single { new }, InFlight::Single(reply, None, since)),
            Write::Compose { by, what, reply, since } => {
                let change = match what {
                    Composed::Membership(change) => Some(change),
                    Composed::Archive(_) => None,
                };
                (Started::Compose { by, what }, InFlight::Single(reply, change, since))
            }
            Write::Marker { user, seq, moved, reply } => {
                (Started::Marker { user, seq, moved }, InFlight::Marker(reply))
            }
        };
        self.in_flight = Some(in_flight);
        Some(started)
    }

    /// Takes the plain sends at the head of the queue, and sheds those that have waited past
    /// the deadline.
    fn take_sends(&mut self, max: usize, deadline: Duration) -> (Vec<NewMessage>, Vec<(MessageReply, Instant)>) {
        let (mut messages, mut replies) = (Vec::new(), Vec::new());
        while messages.len() < max {
            match self.writes.pop_front() {
                Some(Write::Send { reply, since, .. }) if since.elapsed() > deadline => shed_reply(reply),
                Some(Write::Send { new, reply, since }) => {
                    messages.push(new);
                    replies.push((reply, since));
                }
                Some(other) => {
                    self.writes.push_front(other);
                    break;
                }
                None => break,
            }
        }
        (messages, replies)
    }

    /// The replies of the commit that ended (none if a fault took them meanwhile).
    pub(super) fn finish(&mut self) -> Option<InFlight> {
        self.in_flight.take()
    }

    /// After a fault: the write in flight may or may not have committed. Its sender hears so, and
    /// retries with its client_id, which makes the retry safe. Queued writes run after the reload.
    pub(super) fn interrupt(&mut self) {
        match self.in_flight.take() {
            Some(InFlight::Sends(replies)) => {
                for (reply, _) in replies {
                    drop(reply.send(Err(interrupted())));
                }
            }
            Some(InFlight::Single(reply, ..)) => drop(reply.send(Err(interrupted()))),
            Some(InFlight::Marker(reply)) => drop(reply.send(Err(interrupted()))),
            None => {}
        }
    }

    /// Answers every queued write `err()` (none of them was committed).
    pub(super) fn fail_all(&mut self, err: impl Fn() -> Error) {
        for write in self.writes.drain(..) {
            write.fail(err());
        }
    }

    /// A write found the database unavailable: the queued ones would wait their turn only to
    /// fail the same way, so they get the answer now.
    pub(super) fn fail_fast(&mut self, err: &Error) {
        if let Error::Unavailable(why) = err {
            self.fail_all(|| Error::Unavailable(why.clone()));
        }
    }
}

/// Refuses a write that would miss the send deadline; it is counted.
fn shed(write: Write) {
    metrics::counter!(crate::metrics::SENDS_SHED).increment(1);
    write.fail(Error::Overloaded);
}

fn shed_reply(reply: MessageReply) {
    metrics::counter!(crate::metrics::SENDS_SHED).increment(1);
    drop(reply.send(Err(Error::Overloaded)));
}

/// What the sender of a write hears when a fault interrupted it: it may have committed.
fn interrupted() -> Error {
    Error::Unavailable("interrupted by a fault: retry with the same client_id".into())
}

/// The answer to a queued write, once it has committed. A reply dropped unsent means a fault
/// interrupted the write after it was taken: it may have committed, so this is not
/// `ActorStopped` (which callers retry blindly) but a plain `unavailable`.
pub(super) fn when_committed<T: Send + 'static>(rx: oneshot::Receiver<Result<T>>) -> ResponseFuture<Result<T>> {
    Box::pin(async move { rx.await.unwrap_or_else(|_| Err(interrupted())) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ConversationId;

    const DEADLINE: Duration = Duration::from_secs(60);

    fn user() -> UserId {
        UserId(uuid::Uuid::new_v4())
    }

    fn send_since(since: Instant) -> (Write, oneshot::Receiver<Result<protocol::Message>>) {
        let new = NewMessage::text(ConversationId(uuid::Uuid::new_v4()), user(), "hi".into(), None, Vec::new());
        let (reply, rx) = oneshot::channel();
        (Write::Send { new, reply, since }, rx)
    }

    fn marker() -> (Write, oneshot::Receiver<Result<ReadState>>) {
        let (reply, rx) = oneshot::channel();
        (Write::Marker { user: user(), seq: Seq(1), moved: true, reply }, rx)
    }

    fn overloaded<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<Result<T>>) -> bool {
        matches!(rx.try_recv(), Ok(Err(Error::Overloaded)))
    }

    #[test]
    fn sends_go_together_up_to_a_batch_and_stop_at_another_write() {
        let mut queue = WriteQueue::default();
        for _ in 0..3 {
            queue.enqueue(send_since(Instant::now()).0, DEADLINE);
        }
        queue.enqueue(marker().0, DEADLINE);
        queue.enqueue(send_since(Instant::now()).0, DEADLINE);
        assert!(matches!(queue.start_next(2, DEADLINE), Some(Started::Sends { messages, .. }) if messages.len() == 2));
        assert!(queue.start_next(2, DEADLINE).is_none(), "one commit in flight");
        assert!(matches!(queue.finish(), Some(InFlight::Sends(replies)) if replies.len() == 2));
        assert!(matches!(queue.start_next(2, DEADLINE), Some(Started::Sends { messages, .. }) if messages.len() == 1));
        queue.finish();
        assert!(matches!(queue.start_next(2, DEADLINE), Some(Started::Marker { .. })));
        queue.finish();
        assert!(matches!(queue.start_next(2, DEADLINE), Some(Started::Sends { .. })));
        queue.finish();
        assert!(queue.is_idle());
    }

    #[test]
    fn sends_past_the_deadline_are_shed_and_a_standing_queue_refuses_new_ones() {
        let mut queue = WriteQueue::default();
        let old = Instant::now() - 2 * DEADLINE;
        let (stale, mut stale_rx) = send_since(old);
        queue.writes.push_back(stale);
        let (fresh, mut fresh_rx) = send_since(Instant::now());
        queue.enqueue(fresh, DEADLINE);
        assert!(overloaded(&mut fresh_rx), "the oldest has waited over half the deadline");
        let (mark, _mark_rx) = marker();
        queue.enqueue(mark, DEADLINE);
        assert_eq!(queue.writes.len(), 2, "a marker is not shed");
        // The stale send is shed when its turn comes; the marker goes next.
        assert!(matches!(queue.start_next(8, DEADLINE), Some(Started::Marker { .. })));
        assert!(overloaded(&mut stale_rx));
    }

    #[test]
    fn a_fault_interrupts_the_write_in_flight_and_an_outage_fails_the_queue() {
        let mut queue = WriteQueue::default();
        let (first, mut first_rx) = send_since(Instant::now());
        let (second, mut second_rx) = marker();
        queue.enqueue(first, DEADLINE);
        queue.enqueue(second, DEADLINE);
        queue.start_next(8, DEADLINE);
        queue.interrupt();
        assert!(matches!(first_rx.try_recv(), Ok(Err(Error::Unavailable(why))) if why.contains("client_id")));
        assert!(second_rx.try_recv().is_err(), "queued writes wait for the reload");
        queue.fail_fast(&Error::Conflict("not an outage".into()));
        assert!(second_rx.try_recv().is_err());
        queue.fail_fast(&Error::database_unavailable());
        assert!(matches!(second_rx.try_recv(), Ok(Err(Error::Unavailable(_)))));
        assert!(queue.is_idle());
    }
}
