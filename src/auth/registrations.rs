//! Registrations per address per hour (`PARLEY_REGISTRATIONS_PER_HOUR`). Each registration
//! costs an Argon2 hash (tens of milliseconds of a core), and each account can open sessions:
//! without a limit one address could slow everybody down and make accounts by the hundred.
//!
//! The window slides: an address may register `per_hour` accounts in any hour, and the answer
//! past it says when the oldest of them leaves the window (`retry_after_ms`). Counted are the
//! attempts that reach the hash (a well-formed request), whether the name was free or not.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const WINDOW: Duration = Duration::from_secs(3600);
/// Addresses remembered at most; past it, those with nothing left in the window are dropped.
const MAX_ADDRESSES: usize = 100_000;

pub struct RegistrationLimit {
    per_hour: usize,
    recent: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl RegistrationLimit {
    pub fn new(per_hour: u32) -> Self {
        RegistrationLimit { per_hour: per_hour as usize, recent: Mutex::new(HashMap::new()) }
    }

    /// Takes one registration for `address`, or answers `rate_limited` with the wait. A request
    /// without a known address is not limited here (it has no address to blame).
    pub fn take(&self, address: Option<IpAddr>) -> Result<()> {
        let Some(address) = address else { return Ok(()) };
        let mut recent = self.recent.lock().map_err(|_| Error::Internal("registration limit poisoned".into()))?;
        let now = Instant::now();
        if recent.len() >= MAX_ADDRESSES {
            recent.retain(|_, times| times.back().is_some_and(|&t| now.duration_since(t) < WINDOW));
        }
        let times = recent.entry(address).or_default();
        while times.front().is_some_and(|&t| now.duration_since(t) >= WINDOW) {
            times.pop_front();
        }
        if times.len() >= self.per_hour {
            metrics::counter!(crate::metrics::REFUSED, "limit" => "registrations_per_address").increment(1);
            let wait = times.front().map_or(WINDOW, |&oldest| (oldest + WINDOW).saturating_duration_since(now));
            return Err(Error::RateLimited { retry_after_ms: wait.as_millis().max(1) as u64 });
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_hourly_registrations_and_then_waits() {
        let limit = RegistrationLimit::new(2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        limit.take(Some(ip)).unwrap();
        limit.take(Some(ip)).unwrap();
        match limit.take(Some(ip)) {
            Err(Error::RateLimited { retry_after_ms }) => assert!(retry_after_ms > 3_500_000, "{retry_after_ms}"),
            other => panic!("expected rate_limited, got {other:?}"),
        }
        limit.take(Some("10.0.0.2".parse().unwrap())).unwrap();
        limit.take(None).unwrap();
    }
}
