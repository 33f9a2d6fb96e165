//! Finishes removals and forgets uploads never sent: every quarter of
//! PARLEY_UNSENT_ATTACHMENT_TTL_SECS (at least every second, at most every ten minutes), it
//! marks the uploads older than that lifetime which no message claimed, and deletes the files of
//! every marked row, then the rows. A removal that an outage interrupted (its row marked, its
//! file maybe still there) is finished the same way once it is a minute old. Every node of a
//! cluster sweeps; deleting twice is harmless.

use std::time::Duration;

use super::Files;
use crate::error::Result;
use crate::types::Timestamp;

/// Rows handled per round trip.
const BATCH: i64 = 100;
/// A removal younger than this may still be under way in a request: left to it.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// Starts sweeping on the current arbiter, for as long as the server runs.
pub fn start_sweeper(files: Files) {
    let lifetime = Duration::from_secs(files.config().unsent_ttl_secs);
    let every = (lifetime / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = sweep(&files, lifetime).await {
                log::warn!("attachment sweeper: {err} (trying again in {every:?})");
            }
        }
    });
}

async fn sweep(files: &Files, lifetime: Duration) -> Result<()> {
    let now = Timestamp::now().micros();
    let unsent_before = Timestamp::from_micros(now - lifetime.as_micros() as i64);
    let stuck_before = Timestamp::from_micros(now - STUCK_AFTER.as_micros() as i64);
    loop {
        let rows = files.store().attachments_to_sweep(unsent_before, stuck_before, BATCH).await?;
        for row in &rows {
            files.purge(row).await?;
        }
        if rows.len() < BATCH as usize {
            return Ok(());
        }
    }
}
