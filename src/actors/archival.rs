//! Automatic archival (`PARLEY_ARCHIVE_AFTER_DAYS`): every `PARLEY_ARCHIVE_SWEEP_SECS`, the open
//! conversations whose context ended that long ago are archived, at most
//! `PARLEY_ARCHIVE_BATCH` a sweep, oldest first, each through its own actor (so the archive is
//! a write in `seq` order, with its system message, like one the service asks for).
//!
//! Every node sweeps, and two may pick the same conversation: the archive commits only if the
//! conversation is still open under its row lock (`Store::append`), so the second finds it
//! archived and commits nothing. Each conversation is archived once, with one message.

use std::sync::Arc;
use std::time::Duration;

use super::conversation::Archive;
use super::registry::Registry;
use crate::error::Error;
use crate::store::Store;
use crate::types::Timestamp;

/// Starts sweeping on the current arbiter, for as long as the server runs.
pub fn start(store: Store, registry: Arc<Registry>, after: Duration, every: Duration, batch: i64) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sweep(&store, &registry, after, batch).await;
        }
    });
}

async fn sweep(store: &Store, registry: &Arc<Registry>, after: Duration, batch: i64) {
    let due = match store.archive_due(Timestamp::now().minus(after), batch.max(1)).await {
        Ok(due) => due,
        Err(err) => return log::warn!("archival sweep: {err} (trying again at the next sweep)"),
    };
    for id in due {
        match registry.call(id, Archive { by: None, archive: true }).await {
            Ok(_) => log::info!("conversation {id}: archived, its context ended {} days ago", after.as_secs() / 86_400),
            // Another node's sweep came first.
            Err(Error::Conflict(_)) => log::debug!("conversation {id}: archived meanwhile"),
            Err(err) => log::warn!("conversation {id}: cannot archive: {err} (trying again at the next sweep)"),
        }
    }
}
