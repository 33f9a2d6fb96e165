//! One monotonic clock for every thread of the run, in microseconds since its start; the
//! schedule of sends is a function of the message index, so any thread can tell when message
//! `i` was due.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock { base: Instant::now() }
    }

    pub fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The moment `us` microseconds after the base, for tokio's timers.
    pub fn instant(&self, us: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.base + Duration::from_micros(us))
    }

    /// Blocks the calling (non-runtime) thread until `us`.
    pub fn sleep_until(&self, us: u64) {
        let now = self.now_us();
        if us > now {
            std::thread::sleep(Duration::from_micros(us - now));
        }
    }
}

/// When each message is due, and which of them are measured.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// When message 0 is due.
    pub start_us: u64,
    /// The measured window: due (latencies) or arrived (rates) in `[from_us, to_us)`.
    pub from_us: u64,
    pub to_us: u64,
    /// Messages per second, in total.
    pub rate: f64,
    /// Messages in the whole run (warm-up included).
    pub total: u64,
    /// Senders in the whole run: message `i` is sent by sender `i % senders`.
    pub senders: u64,
}

impl Schedule {
    pub fn due_us(&self, i: u64) -> u64 {
        self.start_us + (i as f64 * 1e6 / self.rate) as u64
    }

    pub fn measured(&self, us: u64) -> bool {
        us >= self.from_us && us < self.to_us
    }

    /// How many messages sender `s` sends.
    pub fn count_for(&self, s: u64) -> u64 {
        if s >= self.total { 0 } else { (self.total - s).div_ceil(self.senders) }
    }
}
