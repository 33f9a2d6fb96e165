//! `GET /api/info`, and the health checks for load balancers and orchestrators.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::Result;
use crate::protocol::PROTOCOL_VERSION;
use crate::state::AppState;

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

/// GET /readyz: the database answers (migrations ran before the server started listening).
pub async fn readyz(app: web::Data<AppState>) -> Result<HttpResponse> {
    app.store.ping().await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "database": app.store.backend_name() })))
}
