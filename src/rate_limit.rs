//! Messages per second per user (PROTOCOL.md §4): a token bucket per user, shared by every
//! session and by REST, since the limit is the user's and not the connection's.
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
    shards: Vec<Mutex<HashMap<UserId, Bucket>>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
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
        let now = Instant::now();
        if buckets.len() > SHARD_SOFT_CAP {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec < self.burst);
        }
        let bucket = buckets.entry(user).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * self.per_sec).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_sec;
            Err(Error::RateLimited { retry_after_ms: (wait * 1000.0).ceil() as u64 })
        }
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
