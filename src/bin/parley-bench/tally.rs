//! The accounting of the message mode: what each message became ([`Rec`]), the figures of one
//! thread ([`Tally`]) and the state its tasks share ([`State`]), and what each sender sends
//! ([`Sends`]). Used by the orchestration (`run.rs`) and by each connection's tasks
//! (`traffic.rs`), which therefore do not depend on each other.

use std::collections::BTreeMap;

use crate::clock::{Clock, Schedule};

/// What one message became.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rec {
    pub(crate) offered: bool,
    pub(crate) acked: bool,
    /// Refused by the server (an `error` reply) or never written (the connection was gone).
    pub(crate) refused: bool,
    /// Deliveries to the other members' sessions, and how many there should be.
    pub(crate) deliveries: u16,
    pub(crate) expected: u16,
}

/// The figures of one thread, merged into the run's at the end.
#[derive(Debug, Default)]
pub struct Tally {
    pub offered: u64,
    pub acked: u64,
    pub refused: u64,
    pub acks_measured: u64,
    /// `message:new` events received (the senders' own echoes included), and within the window.
    pub news: u64,
    pub news_measured: u64,
    pub order_violations: u64,
    pub disconnects: u64,
    pub disconnect_codes: BTreeMap<u16, u64>,
    pub errors: BTreeMap<String, u64>,
    pub lost: u64,
    pub unacked: u64,
    /// Microseconds.
    pub ack_lat: Vec<u32>,
    pub delivery_lat: Vec<u32>,
    pub send_lag: Vec<u32>,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.offered += other.offered;
        self.acked += other.acked;
        self.refused += other.refused;
        self.acks_measured += other.acks_measured;
        self.news += other.news;
        self.news_measured += other.news_measured;
        self.order_violations += other.order_violations;
        self.disconnects += other.disconnects;
        self.lost += other.lost;
        self.unacked += other.unacked;
        for (code, n) in other.disconnect_codes {
            *self.disconnect_codes.entry(code).or_default() += n;
        }
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.ack_lat.extend(other.ack_lat);
        self.delivery_lat.extend(other.delivery_lat);
        self.send_lag.extend(other.send_lag);
    }
}

/// The state of one thread, shared by its tasks (one thread: `Rc<RefCell>`, borrowed briefly
/// and never across an await).
pub(crate) struct State {
    pub(crate) schedule: Schedule,
    pub(crate) clock: Clock,
    pub(crate) run_id: String,
    pub(crate) recs: Vec<Rec>,
    /// Messages acked whose every delivery has arrived.
    pub(crate) complete: u64,
    pub(crate) tally: Tally,
}

/// Microseconds from `from` to `to` (clock readings), as a latency sample.
pub(crate) fn micros_between(from: u64, to: u64) -> u32 {
    u32::try_from(to.saturating_sub(from)).unwrap_or(u32::MAX)
}

impl State {
    pub(crate) fn error(&mut self, code: &str) {
        match self.tally.errors.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                self.tally.errors.insert(code.to_string(), 1);
            }
        }
    }

    pub(crate) fn on_ack(&mut self, i: usize, now: u64) {
        let due = self.schedule.due_us(i as u64);
        let Some(rec) = self.recs.get_mut(i) else { return };
        if !rec.offered || rec.acked || rec.refused {
            return;
        }
        rec.acked = true;
        if rec.deliveries >= rec.expected {
            self.complete += 1;
        }
        self.tally.acked += 1;
        if self.schedule.measured(now) {
            self.tally.acks_measured += 1;
        }
        if self.schedule.measured(due) {
            self.tally.ack_lat.push(micros_between(due, now));
        }
    }

    pub(crate) fn on_error(&mut self, reference: Option<&str>, code: &str) {
        self.error(code);
        let Some(i) = reference.and_then(|r| r.parse::<usize>().ok()) else { return };
        if let Some(rec) = self.recs.get_mut(i)
            && rec.offered
            && !rec.acked
            && !rec.refused
        {
            rec.refused = true;
            self.tally.refused += 1;
        }
    }

    pub(crate) fn on_delivery(&mut self, client_id: &str, now: u64) {
        let Some(i) = client_id
            .strip_prefix(self.run_id.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return;
        };
        let due = self.schedule.due_us(i as u64);
        let Some(rec) = self.recs.get_mut(i) else { return };
        rec.deliveries = rec.deliveries.saturating_add(1);
        if rec.acked && rec.deliveries == rec.expected {
            self.complete += 1;
        }
        if self.schedule.measured(due) {
            self.tally.delivery_lat.push(micros_between(due, now));
        }
    }
}

/// Sender `first` of the run: it sends messages `first`, `first + senders`, ... to `conversation`.
pub(crate) struct Sends {
    pub(crate) first: u64,
    pub(crate) conversation: String,
    /// The other members, who should each get every message.
    pub(crate) others: u16,
}
