//! Several nodes: Parley nodes that share one PostgreSQL and one Redis behave as one server.
//! People on different nodes chat, type, read and see each other's presence ([`chat`]); a node
//! killed by SIGKILL or Redis going away costs nothing acknowledged ([`failures`]); membership
//! changes reach every node, even across an outage ([`membership`]); a file uploaded through
//! one node downloads through another ([`files`]); archives, custom events and renames of the
//! host's hold on every node, and several nodes sweep without archiving twice ([`host`]);
//! socket.io-client front-ends on two nodes ([`socketio`]); and what a node refuses to start with
//! ([`startup`]).
//!
//! These run on PostgreSQL only (SQLite is for one node; only the test that SQLite refuses a
//! cluster runs on it): with `PARLEY_TEST_DATABASE_URL` unset they pass without running and the
//! run's last line counts them, unless `PARLEY_REQUIRE_POSTGRES` is set. Redis is
//! `PARLEY_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), under a key prefix of each test's
//! own; the tests of a Redis outage start a `redis-server` of their own.

mod chat;
mod failures;
mod files;
mod host;
mod membership;
mod socketio;
mod startup;

use serde_json::Value;

use crate::common::*;

/// No message rate limit, for the tests that send fast.
pub fn unlimited(config: &mut parley::config::Config) {
    config.limits.rate_per_sec = 100_000.0;
    config.limits.rate_burst = 100_000.0;
}

/// Reads `message:new` events until `message` arrives (and checks it arrived as acked), noting
/// the seq of each in `seen`.
pub async fn until_message(ws: &mut Ws, message: &Value, seen: &mut Vec<i64>) {
    loop {
        let new = ws.event("message:new").await;
        seen.push(new["message"]["seq"].as_i64().expect("seq"));
        if new["message"]["id"] == message["id"] {
            assert_eq!(&new["message"], message);
            return;
        }
    }
}

pub fn is_presence_of(data: &Value, user: &TestUser) -> bool {
    data["user_id"] == user.id.as_str()
}
