//! Rates: messages per second per user (docs/PROTOCOL.md §4), a token bucket per user shared by
//! every session and by REST, since the limit is the user's and not the connection's; and the
//! [`TokenBucket`] itself, which sessions also use to bound the frames of one connection.
//!
//! The buckets are split over shards, each behind its own mutex held for a few arithmetic
//! operations, so senders on different threads rarely meet. A shard forgets buckets that have
//! refilled (their users are idle) when it grows, so memory follows active senders only.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::types::UserId;

const SHARDS: usize = 16;
/// A shard with more buckets than this drops the full ones.
const SHARD_SOFT_CAP: usize = 4_096;

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<UserId, TokenBucket>>>,
}

/// `per_sec` tokens flow in each second, up to `burst`; each event takes one.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn full(burst: f64) -> Self {
        TokenBucket { tokens: burst, at: Instant::now() }
    }

    /// Takes a token, or says how long until there is one.
    pub fn take(&mut self, per_sec: f64, burst: f64) -> Result<(), std::time::Duration> {
        self.refill(per_sec, burst, Instant::now());
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(std::time::Duration::from_secs_f64((1.0 - self.tokens) / per_sec))
        }
    }

    fn refill(&mut self, per_sec: f64, burst: f64, now: Instant) {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * per_sec).min(burst);
        self.at = now;
    }

    /// Back to full: its owner has been idle long enough to be forgotten.
    fn is_full(&self, per_sec: f64, burst: f64, now: Instant) -> bool {
        let mut probe = *self;
        probe.refill(per_sec, burst, now);
        probe.tokens >= burst
    }
}

impl RateLimiter {
    /// `per_sec` tokens flow in each second, up to `burst` in the bucket.
    pub fn new(per_sec: f64, burst: f64) -> Self {
        RateLimiter {
            per_sec: per_sec.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token for `user`, or says how long until one is there.
    pub fn check(&self, user: UserId) -> Result<()> {
        let shard = &self.shards[self.hasher.hash_one(user) as usize % SHARDS];
        let mut buckets = shard.lock().map_err(|_| Error::Internal("rate limiter poisoned".into()))?;
        if buckets.len() > SHARD_SOFT_CAP {
            let now = Instant::now();
            buckets.retain(|_, b| !b.is_full(self.per_sec, self.burst, now));
        }
        let bucket = buckets.entry(user).or_insert_with(|| TokenBucket::full(self.burst));
        bucket
            .take(self.per_sec, self.burst)
            .map_err(|wait| Error::RateLimited { retry_after_ms: (wait.as_secs_f64() * 1000.0).ceil().max(1.0) as u64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = RateLimiter::new(1.0, 3.0);
        let user = UserId(uuid::Uuid::new_v4());
        for _ in 0..3 {
            limiter.check(user).unwrap();
        }
        match limiter.check(user) {
            Err(Error::RateLimited { retry_after_ms }) => {
                assert!(retry_after_ms > 0 && retry_after_ms <= 1000)
            }
            other => panic!("expected rate_limited, got {other:?}"),
        }
        // Another user has a bucket of their own.
        limiter.check(UserId(uuid::Uuid::new_v4())).unwrap();
    }
}
