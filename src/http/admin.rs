//! Admin inspection of this node's actors, and signing a user out everywhere
//! (docs/PROTOCOL.md §5): admin tokens only.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::actors::conversation::{InjectFault, Inspect};
use crate::actors::presence;
use crate::app::AppState;
use crate::auth::{AuthUser, revocation};
use crate::error::{Error, Result};
use crate::types::{ConversationId, UserId};

/// GET /api/admin/actors → the live actors of this node
pub async fn actors(app: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse> {
    caller.require_admin()?;
    let presence = presence::stats(&app.presence).await?;
    let conversations = app.registry.stats().await;
    Ok(HttpResponse::Ok().json(json!({
        "node_id": app.node_id,
        "broker": { "state": app.broker.state() },
        "started_at": app.started_at,
        "sessions": { "count": presence.sessions, "users": presence.users },
        "presence": { "online_users": presence.online_users },
        "conversations": conversations,
    })))
}

/// GET /api/admin/actors/conversations/{id} → one actor, or 404 where none is live
pub async fn conversation(
    app: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    let none = || Error::NotFound("no live actor for this conversation".into());
    let actor = app.registry.live(*id).ok_or_else(none)?;
    let stats = actor.send(Inspect).await.map_err(|_| none())?;
    Ok(HttpResponse::Ok().json(stats))
}

/// POST /api/admin/actors/conversations/{id}/fault → 202: makes the actor fail, to test its
/// supervision. Only when the server was built with fault injection on (tests); 404 otherwise.
pub async fn fault(app: web::Data<AppState>, caller: AuthUser, id: web::Path<ConversationId>) -> Result<HttpResponse> {
    caller.require_admin()?;
    if !app.fault_injection {
        return Err(Error::NotFound("fault injection is off".into()));
    }
    let actor = app.registry.live(*id).ok_or_else(|| Error::NotFound("no live actor for this conversation".into()))?;
    // The answer is the fault itself (an internal error); what matters is that it happened.
    let _ = actor.send(InjectFault).await;
    Ok(HttpResponse::Accepted().json(json!({ "fault": "injected" })))
}

/// POST /api/admin/users/{id}/logout-everywhere → 204: every token of that user issued until
/// now stops working (their open WebSockets close with 4001); 404 when there is no such user
pub async fn logout_everywhere(
    app: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<UserId>,
) -> Result<HttpResponse> {
    caller.require_admin()?;
    revocation::revoke(&app.store, *id).await?;
    log::info!("admin {} signed user {} out everywhere", caller.id, *id);
    Ok(HttpResponse::NoContent().finish())
}
