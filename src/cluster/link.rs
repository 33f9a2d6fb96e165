//! The node's link to the broker, a transport: connects, subscribes, renews the node's lease
//! and reaps dead nodes, hands what it receives to the node's [`Inbound`] port, and publishes
//! the publish queue. When Redis goes away it marks the broker down and reconnects with a
//! growing pause (up to two seconds); on return it has the node register its users again, since
//! Redis may have lost them.
//!
//! The link never waits on the node: registering the users runs in a task of its own, since
//! the node (Presence) calls back into the broker to do it, and the link's event loop must keep
//! reading meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::events::ClusterEvent;
use super::{Inbound, Inner, Unannounced, scripts};
use crate::types::Timestamp;

/// Most events published in one round trip.
const PUBLISH_BATCH: usize = 256;
/// The longest pause between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(super) fn start(inner: Arc<Inner>, inbound: Arc<dyn Inbound>) {
    let mut tasks = Vec::new();
    if let Some(queue) = inner.publish_rx.lock().ok().and_then(|mut rx| rx.take()) {
        tasks.push(actix_web::rt::spawn(publish(inner.clone(), queue)));
    }
    let link = inner.clone();
    tasks.push(actix_web::rt::spawn(async move {
        let inner = link;
        let first = Duration::from_millis(100);
        let mut backoff = first;
        loop {
            let Err(lost) = connected(&inner, &inbound).await;
            if inner.up.load(Ordering::Acquire) {
                log::warn!("broker: {lost}; cross-node delivery stops until it is back");
                backoff = first;
            } else if backoff == first {
                log::warn!("broker: cannot connect: {lost}");
            } else {
                log::debug!("broker: still unreachable: {lost}"); // said once above
            }
            set_down(&inner);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }));
    if let Ok(mut slot) = inner.tasks.lock() {
        slot.extend(tasks);
    }
}

pub(super) fn set_down(inner: &Inner) {
    if let Ok(mut conn) = inner.conn.write() {
        *conn = None;
    }
    if inner.up.swap(false, Ordering::AcqRel) {
        metrics::gauge!(crate::metrics::BROKER_UP).set(0.0);
    }
}

/// One connection, from connect to loss. Returns only with the reason it was lost.
async fn connected(inner: &Arc<Inner>, inbound: &Arc<dyn Inbound>) -> redis::RedisResult<std::convert::Infallible> {
    let timeout = (inner.ttl / 3).max(Duration::from_millis(100));
    let config = AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
    let mut conn = inner.client.get_multiplexed_async_connection_with_config(&config).await?;
    let mut pubsub = tokio::time::timeout(timeout, inner.client.get_async_pubsub())
        .await
        .map_err(|_| lost("timed out connecting for pub/sub"))??;
    pubsub.subscribe(&inner.channel).await?;
    if let Ok(mut slot) = inner.conn.write() {
        *slot = Some(conn.clone());
    }
    inner.skip_until_ms.store(0, Ordering::Release);
    inner.up.store(true, Ordering::Release);
    metrics::gauge!(crate::metrics::BROKER_UP).set(1.0);
    // The node's users are registered again (Redis may have lost them, or they changed
    // meanwhile), and the node reloads what other nodes may have changed while the broker was
    // away.
    heartbeat(inner, inbound, &mut conn, true).await?;
    inbound.reconnected();
    log::info!("broker: connected as node {}", inner.node);

    let mut events = pubsub.into_on_message();
    let mut beat = tokio::time::interval(inner.ttl / 3);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await; // the first tick is now: the heartbeat above was it
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(event) => receive(inner, inbound.as_ref(), event.get_payload_bytes()),
                None => return Err(lost("the subscription ended")),
            },
            _ = beat.tick() => heartbeat(inner, inbound, &mut conn, false).await?,
        }
    }
}

fn lost(why: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, why))
}

fn receive(inner: &Inner, inbound: &dyn Inbound, bytes: &[u8]) {
    match ClusterEvent::decode(bytes, inner.node) {
        Ok(Some(event)) => {
            metrics::counter!(crate::metrics::BROKER_RECEIVED).increment(1);
            inbound.event(event);
        }
        Ok(None) => {} // our own
        Err(err) => log::warn!("broker: {err}"),
    }
}

/// Renews this node's lease; has the node register its users again when asked to, when the
/// lease was gone (taken for dead, or Redis lost its data), or when a presence change could not
/// be written; takes the users of nodes whose lease ran out offline.
async fn heartbeat(
    inner: &Arc<Inner>,
    inbound: &Arc<dyn Inbound>,
    conn: &mut MultiplexedConnection,
    register: bool,
) -> redis::RedisResult<()> {
    let node = inner.node.to_string();
    let reply: Vec<redis::Value> =
        scripts::HEARTBEAT.arg(&inner.prefix).arg(&node).arg(inner.ttl.as_millis() as u64).invoke_async(conn).await?;
    let mut reply = reply.into_iter();
    let lease_was_gone = matches!(reply.next(), Some(redis::Value::Int(1)));
    let stale = inner.stale.swap(false, Ordering::AcqRel);
    if register || lease_was_gone || stale {
        let registered = inbound.register_users();
        let inner = inner.clone();
        actix_web::rt::spawn(async move {
            if !registered.await {
                inner.stale.store(true, Ordering::Release); // tried again at the next heartbeat
            }
        });
    }
    for dead in reply {
        let dead: String = redis::from_redis_value(dead)?;
        if dead == node {
            continue;
        }
        let reaped: Vec<String> = scripts::REAP.arg(&inner.prefix).arg(&dead).invoke_async(conn).await?;
        if let Some((last_beat, users)) = reaped.split_first() {
            // Online nowhere now: last seen at the dead node's last heartbeat.
            log::warn!("broker: node {dead} stopped renewing its lease; {} of its users go offline", users.len());
            let at = last_beat.parse::<i64>().map_or_else(|_| Timestamp::now(), |ms| Timestamp::from_micros(ms * 1000));
            for user in super::user_ids(users) {
                inbound.unannounced(Unannounced { user, online: false, at: Some(at) });
            }
        }
    }
    Ok(())
}

/// Publishes what the node's actors put on the publish queue, many events per round trip, in
/// order.
async fn publish(inner: Arc<Inner>, mut queue: tokio::sync::mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queue.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let count = batch.len() as u64;
        let conn = inner.conn.read().ok().and_then(|conn| conn.clone());
        let published = match conn {
            Some(mut conn) => {
                let mut pipe = redis::pipe();
                for event in batch.drain(..) {
                    pipe.cmd("PUBLISH").arg(&inner.channel).arg(event).ignore();
                }
                match pipe.query_async::<()>(&mut conn).await {
                    Ok(()) => true,
                    Err(err) => {
                        log::warn!("broker: cannot publish {count} events: {err}");
                        false
                    }
                }
            }
            None => false,
        };
        batch.clear();
        let metric = if published { crate::metrics::BROKER_PUBLISHED } else { crate::metrics::BROKER_DROPPED };
        metrics::counter!(metric).increment(count);
    }
}
