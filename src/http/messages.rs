//! Messages over REST: history, sending (the same path as a WebSocket send), read markers.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::created;
use crate::actors::conversation::{MarkRead, SendMessage};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::rules;
use crate::types::{AttachmentId, ConversationId, Seq};

#[derive(Deserialize)]
pub struct HistoryQuery {
    before_seq: Option<Seq>,
    after_seq: Option<Seq>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    #[serde(default)]
    body: String,
    client_id: Option<String>,
    #[serde(default)]
    attachment_ids: Vec<AttachmentId>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SeqBody {
    seq: Option<Seq>,
}

/// GET /api/conversations/{id}/messages?before_seq=&after_seq=&limit= → {messages, has_more}
pub async fn history(
    app: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse> {
    if !app.store.is_member(*id, caller.id).await? {
        return Err(Error::no_conversation());
    }
    page(&app, *id, &query).await
}

/// A page of `id`'s history, for someone allowed to read it (a member, or the service).
pub(super) async fn page(app: &AppState, id: ConversationId, query: &HistoryQuery) -> Result<HttpResponse> {
    let limit = rules::messages_page(&app.limits, query.limit)?;
    let page = app.store.history(id, query.before_seq, query.after_seq, limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "messages": page.messages, "has_more": page.has_more })))
}

/// POST /api/conversations/{id}/messages {body, client_id?, attachment_ids?} → 201 Message
pub async fn send(
    app: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
    body: web::Json<SendBody>,
) -> Result<HttpResponse> {
    let SendBody { body, client_id, attachment_ids } = body.into_inner();
    rules::check_send(&app.limits, &app.rate, caller.id, &body, client_id.as_deref(), &attachment_ids)?;
    let send = SendMessage { sender: caller.id, body, client_id, attachments: attachment_ids };
    let message = app.registry.call(*id, send).await?;
    Ok(created(&message))
}

/// POST /api/conversations/{id}/read {seq?} → {last_read_seq, unread_count, total_unread}
pub async fn read(
    app: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
    body: web::Payload,
) -> Result<HttpResponse> {
    let body = super::read_body(body, app.limits.max_request_bytes).await?;
    let SeqBody { seq } = optional_json(&body)?;
    let state = app.registry.call(*id, MarkRead { user: caller.id, seq, unread: false }).await?;
    Ok(HttpResponse::Ok().json(state))
}

/// POST /api/conversations/{id}/unread {seq} → the same answer as /read
pub async fn unread(
    app: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
    body: web::Json<SeqBody>,
) -> Result<HttpResponse> {
    let state = app.registry.call(*id, MarkRead { user: caller.id, seq: body.seq, unread: true }).await?;
    Ok(HttpResponse::Ok().json(state))
}

/// A JSON body that may also be absent (`POST /read` with no body reads everything).
fn optional_json<T: Default + for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|err| Error::bad_request(format!("bad JSON body: {err}")))
}
