//! The group committer: the one shared stage a message passes on its way to the database
//! (docs/ARCHITECTURE.md, rule 2). It batches sends into transactions, and takes the senders'
//! cluster-wide rate permits once per batch.
//!
//! Each conversation actor hands over the sends it has queued, in order, as one job, and waits
//! for it before handing over more, so a conversation's order is kept. A lane takes every job
//! waiting when it is free and commits them in one transaction ([`Store::append_batch`]): under
//! load, the sends of many conversations share one commit, and batches grow by themselves while
//! a commit is in flight. There is no timer: an idle server commits a lone send at once.
//!
//! Several lanes commit in parallel (a conversation always uses the same one), so a commit's
//! round trips and its fsync overlap with the next batch's.
//!
//! In a cluster, a lane also takes the senders' tokens from their shared rate buckets, once
//! per batch, so that a user's rate holds across nodes without a round trip per message. It
//! asks through [`Permits`], declared here and implemented by the cluster's broker, so that
//! the store knows nothing of Redis.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::ArbiterHandle;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::{Appended, NewMessage, Store};
use crate::error::{Error, Result};
use crate::types::{ConversationId, UserId};

/// Rate permits shared by every node, asked once per batch.
pub trait Permits: Send + Sync + 'static {
    /// One permit per message, for each message's sender: per message, `None` when taken, or
    /// the wait in milliseconds. `None` overall when they cannot be asked now (the node's own
    /// limiter, which every send passed already, is then the limit).
    fn take<'a>(&'a self, senders: &'a [UserId]) -> BoxFuture<'a, Option<Vec<Option<u64>>>>;
}

/// A handle on the lanes; cheap to clone.
#[derive(Clone)]
pub struct Committer {
    lanes: Arc<[mpsc::Sender<Job>]>,
    max_batch: usize,
}

/// The settings of the committer.
#[derive(Debug, Clone, Copy)]
pub struct CommitterConfig {
    /// Transactions in flight at once.
    pub lanes: usize,
    /// Most messages in one transaction.
    pub max_batch: usize,
    /// A job that waited longer than this for its lane is refused (`unavailable`) rather than
    /// committed late.
    pub deadline: Duration,
}

struct Job {
    messages: Vec<NewMessage>,
    /// When its oldest message was accepted.
    accepted: Instant,
    reply: oneshot::Sender<Vec<Result<Appended>>>,
}

impl Committer {
    /// Starts the lanes, spread over `arbiters` (those of the conversation actors: the lanes'
    /// work is per message, so it should not all land on one thread). `permits` is `None` on a
    /// node alone.
    pub fn start(
        store: Store,
        permits: Option<Arc<dyn Permits>>,
        config: CommitterConfig,
        arbiters: &[ArbiterHandle],
    ) -> Committer {
        let lanes: Vec<_> = (0..config.lanes.max(1))
            .map(|lane| {
                // Each conversation has at most one job in flight, so jobs waiting are bounded by
                // the live conversations; the capacity only bounds a burst of new ones.
                let (tx, rx) = mpsc::channel(4096);
                arbiters[lane % arbiters.len()].spawn(run_lane(store.clone(), permits.clone(), rx, config));
                tx
            })
            .collect();
        Committer { lanes: lanes.into(), max_batch: config.max_batch }
    }

    /// Most messages in one transaction: a conversation hands over at most this many at once.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Commits `messages` (plain sends of `conversation`, in order) together with whatever
    /// other conversations have waiting. One result per message, in order.
    pub async fn append(
        &self,
        conversation: ConversationId,
        messages: Vec<NewMessage>,
        accepted: Instant,
    ) -> Vec<Result<Appended>> {
        let count = messages.len();
        let lane = &self.lanes[(conversation.0.as_u64_pair().1 % self.lanes.len() as u64) as usize];
        let (reply, rx) = oneshot::channel();
        if lane.send(Job { messages, accepted, reply }).await.is_ok()
            && let Ok(results) = rx.await
        {
            return results;
        }
        // The lane is gone (the server is stopping): nothing of this job was committed.
        (0..count).map(|_| Err(Error::Unavailable("the server is stopping".into()))).collect()
    }
}

async fn run_lane(
    store: Store,
    permits: Option<Arc<dyn Permits>>,
    mut jobs: mpsc::Receiver<Job>,
    config: CommitterConfig,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        let mut size = batch[0].messages.len();
        while size < config.max_batch {
            match jobs.try_recv() {
                Ok(job) => {
                    size += job.messages.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let (late, mut batch): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(|job| job.accepted.elapsed() > config.deadline);
        for job in late {
            metrics::counter!(crate::metrics::SENDS_SHED).increment(job.messages.len() as u64);
            let results = job.messages.iter().map(|_| Err(Error::Overloaded)).collect();
            let _ = job.reply.send(results);
        }
        if batch.is_empty() {
            continue;
        }
        let counts: Vec<usize> = batch.iter().map(|job| job.messages.len()).collect();
        let messages: Vec<NewMessage> = batch.iter_mut().flat_map(|job| std::mem::take(&mut job.messages)).collect();
        let size = messages.len();
        metrics::histogram!(crate::metrics::COMMIT_BATCH).record(size as f64);
        // A panic must not take the lane down with it: every later job would hang.
        let results =
            match AssertUnwindSafe(commit_permitted(&store, permits.as_deref(), messages)).catch_unwind().await {
                Ok(results) => results,
                Err(_) => {
                    log::error!("the committer panicked on a batch of {size} messages");
                    (0..size).map(|_| Err(Error::Internal("the committer panicked".into()))).collect()
                }
            };
        let mut results = results.into_iter();
        for (job, count) in batch.into_iter().zip(counts) {
            let _ = job.reply.send(results.by_ref().take(count).collect());
        }
    }
}

/// Commits the messages whose senders are within their rate across the cluster; the others
/// are refused (`rate_limited`). On a node alone, or when the permits cannot be asked (the
/// broker is down), the node's own limiter (which every send passed before it was queued) is
/// the only one.
async fn commit_permitted(
    store: &Store,
    permits: Option<&dyn Permits>,
    messages: Vec<NewMessage>,
) -> Vec<Result<Appended>> {
    let Some(permits) = permits else {
        return commit(store, messages).await;
    };
    let senders: Vec<_> = messages.iter().map(|m| m.sender).collect();
    let Some(waits) = permits.take(&senders).await else {
        return commit(store, messages).await;
    };
    let permitted: Vec<_> =
        messages.into_iter().zip(&waits).filter(|(_, wait)| wait.is_none()).map(|(m, _)| m).collect();
    let mut committed = if permitted.is_empty() { Vec::new() } else { commit(store, permitted).await }.into_iter();
    waits
        .into_iter()
        .map(|wait| match wait {
            Some(retry_after_ms) => Err(Error::RateLimited { retry_after_ms }),
            None => committed.next().unwrap_or_else(|| Err(Error::Internal("a commit result is missing".into()))),
        })
        .collect()
}

/// One transaction for the batch; if it fails for a reason other than the database being
/// unavailable, each message on its own, so that only the culprit fails.
async fn commit(store: &Store, messages: Vec<NewMessage>) -> Vec<Result<Appended>> {
    match store.append_batch(messages).await {
        Ok(appended) => appended.into_iter().map(Ok).collect(),
        Err((Error::Unavailable(why), messages)) => {
            messages.iter().map(|_| Err(Error::Unavailable(why.clone()))).collect()
        }
        Err((err, messages)) => {
            log::debug!("a batch of {} messages failed ({err}); committing them one by one", messages.len());
            let mut results = Vec::with_capacity(messages.len());
            for message in &messages {
                results.push(store.append(message).await);
            }
            results
        }
    }
}
