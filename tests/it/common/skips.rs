//! The suites that need something a bare machine lacks (PostgreSQL, Redis, Chromium, an S3
//! server), and one line at the end of the run that says which of them did not run and what
//! enables each.
//!
//! Why this way: `cargo test` must pass on a bare machine (the README's second command), so a
//! test whose service is missing returns early and libtest reports it `ok`. Each such test says
//! so here, and when the test process exits (after libtest's own `test result:` line, which is
//! the last thing `cargo test` prints, since this is the last test binary it runs) one line
//! names the suites that were skipped, with counts. libtest's `ignored` would count them too,
//! but it is decided at compile time (a build script reading the environment) and a
//! `--include-ignored` run would then fail for want of a database; a note at exit needs neither.
//! CI sets `PARLEY_REQUIRE_POSTGRES`, `PARLEY_REQUIRE_BROWSER`, `PARLEY_REQUIRE_S3` and
//! `PARLEY_REQUIRE_SOCKETIO`, which
//! turn a skip into a failure, and checks that this line says nothing was skipped.
//!
//! A test is counted once per suite, by its name (libtest runs each test on a thread named
//! after it), however many times it asks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Mutex, Once};

/// A suite that needs a service of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suite {
    /// The `::postgres` variants (and the PostgreSQL-only tests).
    Postgres,
    /// The tests of several nodes: PostgreSQL and Redis.
    Cluster,
    /// The web client in headless Chromium.
    Browser,
    /// Attachment storage on an S3-compatible server.
    S3,
    /// The Socket.IO endpoint driven by the real socket.io-client, in Node.
    SocketIo,
}

impl Suite {
    fn what(self) -> &'static str {
        match self {
            Suite::Postgres => "PostgreSQL test(s)",
            Suite::Cluster => "cluster test(s)",
            Suite::Browser => "browser test(s)",
            Suite::S3 => "S3 test(s)",
            Suite::SocketIo => "socket.io-client test(s)",
        }
    }

    fn how(self) -> &'static str {
        match self {
            Suite::Postgres => "set PARLEY_TEST_DATABASE_URL",
            Suite::Cluster => {
                "set PARLEY_TEST_DATABASE_URL; Redis at PARLEY_TEST_REDIS_URL and redis-server on the PATH"
            }
            Suite::Browser => "apt-get install chromium, then npm ci --prefix tests/browser",
            Suite::S3 => "eval \"$(scripts/s3-server.sh)\" starts a server and sets PARLEY_TEST_S3_URL",
            Suite::SocketIo => "npm ci --prefix tests/socketio",
        }
    }
}

#[derive(Default)]
struct Tally {
    ran: BTreeSet<String>,
    skipped: BTreeSet<String>,
}

static TALLY: Mutex<BTreeMap<Suite, Tally>> = Mutex::new(BTreeMap::new());
static AT_EXIT: Once = Once::new();

/// Notes that the current test of `suite` runs.
pub fn ran(suite: Suite) {
    note(suite, true);
}

/// Notes that the current test of `suite` does not run (and passes without having run).
pub fn skipped(suite: Suite) {
    note(suite, false);
}

fn note(suite: Suite, ran: bool) {
    AT_EXIT.call_once(|| {
        // SAFETY: `summary` is an `extern "C" fn()` that does not unwind: a poisoned lock is read
        // through, and a failed write to stderr is ignored.
        let registered = unsafe { libc::atexit(summary) };
        assert_eq!(registered, 0, "atexit");
    });
    let test = std::thread::current().name().unwrap_or("an unnamed test").to_string();
    let mut tally = TALLY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let entry = tally.entry(suite).or_default();
    if ran {
        entry.ran.insert(test)
    } else {
        entry.skipped.insert(test)
    };
}

/// The one line, printed as the process exits (also after a failure: libtest exits through
/// `exit`, which runs this).
extern "C" fn summary() {
    let tally = TALLY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let skipped: Vec<String> = tally
        .iter()
        .filter(|(_, t)| !t.skipped.is_empty())
        .map(|(suite, t)| format!("{} {} ({})", t.skipped.len(), suite.what(), suite.how()))
        .collect();
    if skipped.is_empty() {
        let ran: Vec<String> = tally.iter().map(|(suite, t)| format!("{} {}", t.ran.len(), suite.what())).collect();
        let _ = writeln!(std::io::stderr(), "\nparley tests: nothing skipped ({} ran)", ran.join(", "));
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "\nparley tests: SKIPPED, reported ok above without running: {}",
            skipped.join("; ")
        );
    }
}
