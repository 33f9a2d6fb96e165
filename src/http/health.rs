//! `GET /api/info`, and the health checks for load balancers and orchestrators.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::actors::presence;
use crate::app::AppState;
use crate::cluster::BrokerState;
use crate::error::Result;
use crate::protocol::PROTOCOL_VERSION;

/// What a client can rely on: checked by clients before they connect.
const FEATURES: &[&str] = &[
    "accounts",
    "direct",
    "group",
    "history",
    "unread",
    "read_receipts",
    "typing",
    "presence",
    "sync",
    "idempotent_send",
    "admin",
    "service_api",
    "context",
    "observers",
    "archival",
    "system_templates",
];

/// GET /api/info
pub async fn info() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "parley",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": PROTOCOL_VERSION,
        "features": FEATURES,
    }))
}

/// GET /healthz: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// GET /metrics: Prometheus text format. Meant for the internal network, like /readyz.
pub async fn metrics(app: web::Data<AppState>) -> Result<HttpResponse> {
    use crate::metrics::*;
    let presence = presence::stats(&app.presence).await?;
    ::metrics::gauge!(SESSIONS).set(presence.sessions as f64);
    ::metrics::gauge!(ONLINE_USERS).set(presence.online_users as f64);
    ::metrics::gauge!(CONVERSATION_ACTORS).set(app.registry.live_count() as f64);
    let pool = app.store.pool_status();
    ::metrics::gauge!(DB_CONNECTIONS, "state" => "idle").set(pool.available as f64);
    ::metrics::gauge!(DB_CONNECTIONS, "state" => "in_use").set(pool.size.saturating_sub(pool.available) as f64);
    ::metrics::gauge!(DB_CONNECTIONS, "state" => "max").set(pool.max_size as f64);
    ::metrics::gauge!(DB_WAITING).set(pool.waiting as f64);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(handle().render()))
}

/// GET /readyz: the database answers (migrations ran before the server started listening).
/// In a cluster it also says whether the broker is up; a node whose broker is down still
/// serves its own sessions, so it answers 200 ("degraded"): a 503 would take every node out of
/// the balancer at once.
pub async fn readyz(app: web::Data<AppState>) -> Result<HttpResponse> {
    app.store.ping().await?;
    let broker = app.broker.state();
    let status = if broker == BrokerState::Down { "degraded" } else { "ready" };
    Ok(HttpResponse::Ok().json(json!({
        "status": status,
        "database": app.store.backend_name(),
        "broker": broker,
        "node_id": app.node_id,
    })))
}
