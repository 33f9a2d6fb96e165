//! Prometheus metrics, served at `GET /metrics`. Counters and the send-latency histogram are
//! recorded where things happen (through the `metrics` facade); gauges (sessions, live actors,
//! database connections) are read from their owners when the endpoint is scraped, so that
//! nothing on a hot path keeps them.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Messages committed (text and system).
pub const MESSAGES_SENT: &str = "parley_messages_sent_total";
/// `message:new` frames queued to sessions.
pub const MESSAGES_DELIVERED: &str = "parley_messages_delivered_total";
/// From a send being accepted by its conversation actor to its commit (queueing included).
pub const SEND_SECONDS: &str = "parley_send_seconds";
/// Messages per group-commit transaction.
pub const COMMIT_BATCH: &str = "parley_commit_batch_messages";
/// Sends refused with `unavailable` because they would have waited past the send deadline.
pub const SENDS_SHED: &str = "parley_sends_shed_total";
/// Errors answered, by protocol code (label `code`).
pub const ERRORS: &str = "parley_errors_total";
/// Conversation actors restarted after a fault.
pub const ACTOR_RESTARTS: &str = "parley_actor_restarts_total";
/// TCP connections accepted.
pub const CONNECTIONS: &str = "parley_connections_total";
/// Connections, sessions, requests and invitations refused by a limit of their client (label
/// `limit`: `connections_per_address`, `body_timeout`, `sessions_per_user`,
/// `sessions_per_address`, `group_invites`, `registrations_per_address`).
pub const REFUSED: &str = "parley_refused_total";
/// Requests and sessions refused because their token was revoked (sign-out everywhere).
pub const TOKENS_REVOKED: &str = "parley_tokens_revoked_total";
/// Uploads stored (counted once their row is written), and their bytes.
pub const ATTACHMENTS_STORED: &str = "parley_attachments_stored_total";
pub const ATTACHMENT_BYTES: &str = "parley_attachment_bytes_total";
/// Service API calls accepted, by the fingerprint of their key (label `key`): before a key is
/// removed, its count shows whether anything still uses it.
pub const SERVICE_CALLS: &str = "parley_service_calls_total";
/// WebSocket sessions opened.
pub const SESSIONS_OPENED: &str = "parley_sessions_opened_total";
/// Cluster events published to the broker, received from other nodes, and dropped unpublished
/// (broker down or its queue full).
pub const BROKER_PUBLISHED: &str = "parley_broker_published_total";
pub const BROKER_RECEIVED: &str = "parley_broker_received_total";
pub const BROKER_DROPPED: &str = "parley_broker_dropped_total";
/// Gaps in a conversation's `seq` filled from the database (an event of another node was late
/// or lost).
pub const GAP_FILLS: &str = "parley_gap_fills_total";
/// 1 while the broker is connected; 0 while it is down (absent on a node alone).
pub const BROKER_UP: &str = "parley_broker_up";
/// Gauges set at scrape time.
pub const SESSIONS: &str = "parley_sessions";
pub const ONLINE_USERS: &str = "parley_online_users";
pub const CONVERSATION_ACTORS: &str = "parley_conversation_actors";
pub const DB_CONNECTIONS: &str = "parley_db_connections";
pub const DB_WAITING: &str = "parley_db_waiting";

/// The process-wide recorder, installed on first use (several servers in one test process
/// share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(SEND_SECONDS.into()),
                &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(COMMIT_BATCH.into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
                )
            })
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|err| {
                log::warn!("metrics: {err}; using the default buckets");
                PrometheusBuilder::new().build_recorder()
            });
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            log::warn!("metrics: another recorder is installed; /metrics will be empty");
        }
        handle
    })
}
