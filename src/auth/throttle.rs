//! Slows down password guessing. After a few failed logins for one account *from one address*,
//! or more from one address over all accounts, each further attempt must wait, twice as long
//! each time up to a cap; the wait is answered at once as `rate_limited` with `retry_after_ms`,
//! without checking the password. A successful login clears the record of that account at that
//! address; records of quiet keys are forgotten.
//!
//! There is no record of an account over all addresses on purpose: with one, anybody who knows
//! a username could keep its owner locked out with one wrong guess per wait. An attacker's
//! failures only hold up the attacker's address; the owner, from theirs, gets in.
//!
//! The address is the client's (`http::client_ip`: the TCP peer, or behind a trusted proxy the
//! address it forwards). Behind a proxy that is not trusted every client shares its address,
//! which is why the address allows several times more failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The first wait, doubled with each further failure.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait.
const LONGEST_WAIT: Duration = Duration::from_secs(300);
/// An address may fail this many times more than an account before it waits.
const ADDRESS_FACTOR: u32 = 4;
/// Records are kept at most this many; past it, quiet ones are dropped.
const MAX_RECORDS: usize = 100_000;

pub struct LoginThrottle {
    free_failures: u32,
    records: Mutex<HashMap<Key, Record>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// One account, tried from one address (or from an unknown one).
    AccountAt(String, Option<IpAddr>),
    /// One address, over every account.
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    blocked_until: Instant,
}

impl LoginThrottle {
    /// `free_failures` failed logins per account and address go unpunished (four times as many
    /// per address); the next attempt waits.
    pub fn new(free_failures: u32) -> Self {
        LoginThrottle { free_failures, records: Mutex::new(HashMap::new()) }
    }

    /// May this attempt proceed? `rate_limited` while the account or the address must wait.
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> Result<()> {
        let records = self.records.lock().map_err(|_| Error::Internal("login throttle poisoned".into()))?;
        let now = Instant::now();
        let wait = keys(account, address)
            .filter_map(|key| records.get(&key))
            .map(|r| r.blocked_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() { Ok(()) } else { Err(Error::RateLimited { retry_after_ms: wait.as_millis().max(1) as u64 }) }
    }

    pub fn failed(&self, account: &str, address: Option<IpAddr>) {
        let Ok(mut records) = self.records.lock() else { return };
        let now = Instant::now();
        if records.len() >= MAX_RECORDS {
            records.retain(|_, r| r.blocked_until + LONGEST_WAIT > now);
        }
        for key in keys(account, address) {
            let free = match key {
                Key::AccountAt(..) => self.free_failures,
                Key::Address(_) => self.free_failures * ADDRESS_FACTOR,
            };
            let record = records.entry(key).or_insert(Record { failures: 0, blocked_until: now });
            // A key quiet for the longest wait starts over.
            if record.blocked_until + LONGEST_WAIT <= now {
                record.failures = 0;
            }
            record.failures += 1;
            // `free` failures are allowed; the attempt after the last of them waits.
            if record.failures >= free {
                let doublings = (record.failures - free).min(16);
                record.blocked_until = now + (FIRST_WAIT * 2u32.pow(doublings)).min(LONGEST_WAIT);
            }
        }
    }

    pub fn succeeded(&self, account: &str, address: Option<IpAddr>) {
        if let Ok(mut records) = self.records.lock() {
            records.remove(&Key::AccountAt(account.to_string(), address));
        }
    }
}

fn keys(account: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
    std::iter::once(Key::AccountAt(account.to_string(), address)).chain(address.map(Key::Address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_waits_after_its_free_failures_and_success_clears_it() {
        let throttle = LoginThrottle::new(2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..2 {
            throttle.check("ada", Some(ip)).unwrap();
            throttle.failed("ada", Some(ip));
        }
        // Two failures allowed, so the third attempt waits.
        match throttle.check("ada", Some(ip)) {
            Err(Error::RateLimited { retry_after_ms }) => assert!((1..=1000).contains(&retry_after_ms)),
            other => panic!("expected rate_limited, got {other:?}"),
        }
        // Another account from the same address is not blocked yet (the address allows more).
        throttle.check("bob", Some(ip)).unwrap();
        // Nor is the same account from another address.
        throttle.check("ada", Some("10.0.0.9".parse().unwrap())).unwrap();
        throttle.succeeded("ada", Some(ip));
        throttle.check("ada", Some(ip)).unwrap();
    }

    #[test]
    fn an_address_that_tries_many_accounts_waits() {
        let throttle = LoginThrottle::new(1);
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        for n in 0..ADDRESS_FACTOR {
            throttle.failed(&format!("user{n}"), Some(ip));
        }
        assert!(throttle.check("someone-else", Some(ip)).is_err());
        assert!(throttle.check("someone-else", None).is_ok());
    }
}
