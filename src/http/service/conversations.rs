//! Conversations as the host's backend sees them: any of them, by id or by business object. It
//! opens them (get-or-create by context), changes their metadata and end, reads their history,
//! posts its system messages, adds and removes members and observers, archives and restores,
//! and pushes events to their sessions.

use std::collections::BTreeSet;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::super::conversations::{fetch, opened, set_archived};
use super::super::created;
use super::super::messages::{HistoryQuery, page};
use super::{EventBody, user};
use crate::actors::conversation::{AddMember, PostSystem, PushEvent, RemoveMember};
use crate::actors::presence::DeliverTo;
use crate::app::AppState;
use crate::auth::ServiceCaller;
use crate::error::{Error, Result};
use crate::protocol::{Context, ConversationKind, Event, Role};
use crate::rules;
use crate::store::{Founding, ListCursor, ListFilter, NewMessage, UserRow};
use crate::system_messages::host_template;
use crate::types::{ConversationId, Timestamp, UserId};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    kind: ConversationKind,
    /// External ids; for a group the first is its owner.
    members: Vec<String>,
    #[serde(default)]
    observers: Vec<String>,
    title: Option<String>,
    context: Option<Context>,
    context_ends_at: Option<Timestamp>,
    metadata: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    before: Option<String>,
    context_type: Option<String>,
    context_id: Option<String>,
    /// An external id: that user's conversations only.
    member: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    metadata: Option<serde_json::Value>,
    /// Absent: unchanged; `null`: the conversation no longer ends.
    #[serde(default, deserialize_with = "super::present")]
    context_ends_at: Option<Option<Timestamp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostBody {
    template: String,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    text: String,
    lang: Option<String>,
    client_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    user: String,
    #[serde(default = "member")]
    role: Role,
}

fn member() -> Role {
    Role::Member
}

/// POST /api/service/conversations {kind, members, observers?, title?, context?,
/// context_ends_at?, metadata?} → 201 new Conversation, or 200 the one of that context (or, for
/// a direct one without context, of that pair)
pub async fn create(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    if let Some(context) = &body.context {
        rules::context(context)?;
    }
    let founding_metadata = body.metadata.as_ref().map(rules::metadata).transpose()?;
    let members = users_named(&app, &body.members).await?;
    let observers = users_named(&app, &body.observers).await?;
    let founding = Founding {
        context: body.context,
        context_ends_at: body.context_ends_at,
        metadata: founding_metadata,
        observers: observers.iter().map(|u| u.id).filter(|id| !members.iter().any(|m| m.id == *id)).collect(),
    };
    let (id, is_new) = match body.kind {
        ConversationKind::Direct => {
            let [a, b] = members.as_slice() else {
                return Err(Error::bad_request("a direct conversation has exactly two members"));
            };
            if body.title.is_some() {
                return Err(Error::bad_request("a direct conversation has no title"));
            }
            app.store.create_direct(a.id, b.id, &founding).await?
        }
        ConversationKind::Group => {
            let title = rules::group_title(body.title.as_deref().unwrap_or_default())?;
            let Some((owner, others)) = members.split_first() else {
                return Err(Error::bad_request("a group needs members: the first is its owner"));
            };
            let others: Vec<UserId> = others.iter().map(|u| u.id).collect();
            rules::group_size(&app.limits, others.len() + 1 + founding.observers.len())?;
            app.store.create_group(owner.id, title, &others, &founding).await?
        }
    };
    opened(&app, UserId::SYSTEM, id, is_new).await
}

/// The users the host knows by `external_ids`, each once, in the order given; 400 naming those
/// it never provisioned.
async fn users_named(app: &AppState, external_ids: &[String]) -> Result<Vec<UserRow>> {
    let mut seen = BTreeSet::new();
    let wanted: Vec<String> = external_ids.iter().filter(|id| seen.insert(id.as_str())).cloned().collect();
    for id in &wanted {
        rules::external_id(id)?;
    }
    let found = app.store.users_by_external_ids(&wanted).await?;
    let by_id = |id: &String| found.iter().find(|row| row.external_id.as_ref() == Some(id)).cloned();
    let unknown: Vec<&str> = wanted.iter().filter(|id| by_id(id).is_none()).map(String::as_str).collect();
    if !unknown.is_empty() {
        return Err(Error::bad_request(format!("no user has these external ids: {}", unknown.join(", "))));
    }
    Ok(wanted.iter().filter_map(by_id).collect())
}

/// GET /api/service/conversations?context_type=&context_id=&member=&limit=&before= →
/// {conversations, next}
pub async fn list(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let limit = rules::conversations_page(&app.limits, query.limit)?;
    let before = query.before.as_deref().map(ListCursor::decode).transpose()?;
    let query = query.into_inner();
    let member = match &query.member {
        Some(external_id) => Some(user(&app.store, external_id).await?.id),
        None => None,
    };
    let filter =
        ListFilter { context_type: query.context_type, context_id: query.context_id, member, include_hidden: true };
    let page = app.store.list_conversations(UserId::SYSTEM, limit, before, &filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "conversations": page.conversations, "next": page.next.map(|c| c.encode()) })))
}

/// GET /api/service/conversations/{id} → Conversation
pub async fn get(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    id: web::Path<ConversationId>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(fetch(&app, UserId::SYSTEM, *id).await?))
}

/// PATCH /api/service/conversations/{id} {metadata?, context_ends_at?} → Conversation; members
/// get `conversation:updated`
pub async fn update(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    id: web::Path<ConversationId>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let metadata = body.metadata.as_ref().map(rules::metadata).transpose()?;
    if !app.store.update_conversation(*id, metadata.as_deref(), body.context_ends_at).await? {
        return Err(Error::no_conversation());
    }
    let conversation = fetch(&app, UserId::SYSTEM, *id).await?;
    // Each member's view differs only by their unread count: one frame per member.
    for user in conversation.audience() {
        if let Some(theirs) = app.store.conversation_for(user, *id).await? {
            let frame = Event::ConversationUpdated { conversation: &theirs }.encode();
            app.presence.do_send(DeliverTo { users: vec![user], frame });
        }
    }
    Ok(HttpResponse::Ok().json(conversation))
}

/// GET /api/service/conversations/{id}/messages?before_seq=&after_seq=&limit= → {messages,
/// has_more}
pub async fn history(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    id: web::Path<ConversationId>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse> {
    fetch(&app, UserId::SYSTEM, *id).await?;
    page(&app, *id, &query).await
}

/// POST /api/service/conversations/{id}/messages {template, params?, text, lang?, client_id?} →
/// 201 the system Message (idempotent by client_id)
pub async fn post(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    id: web::Path<ConversationId>,
    body: web::Json<PostBody>,
) -> Result<HttpResponse> {
    let PostBody { template, params, text, lang, client_id } = body.into_inner();
    // The service is not rate-limited as a user: a host announces for many conversations.
    rules::check_message(&app.limits, &text, client_id.as_deref(), &[])?;
    let system = host_template(template, params, lang, app.language)?;
    let new = NewMessage { client_id, ..NewMessage::system(*id, UserId::SYSTEM, (text, system)) };
    Ok(created(&app.registry.call(*id, PostSystem { new }).await?))
}

/// POST /api/service/conversations/{id}/members {user, role?} → 201 Conversation
pub async fn add_member(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    id: web::Path<ConversationId>,
    body: web::Json<MemberBody>,
) -> Result<HttpResponse> {
    let MemberBody { user: external_id, role } = body.into_inner();
    if role == Role::Owner {
        return Err(Error::bad_request("role is member or observer"));
    }
    let row = user(&app.store, &external_id).await?;
    app.registry.call(*id, AddMember { by: None, user: row.id, role }).await?;
    Ok(created(&fetch(&app, UserId::SYSTEM, *id).await?))
}

/// DELETE /api/service/conversations/{id}/members/{external_id} → 204
pub async fn remove_member(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    path: web::Path<(ConversationId, String)>,
) -> Result<HttpResponse> {
    let (id, external_id) = path.into_inner();
    let row = user(&app.store, &external_id).await?;
    app.registry.call(id, RemoveMember { by: None, user: row.id }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// POST /api/service/conversations/{id}/archive → Conversation (read-only from now on)
pub async fn archive(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    id: web::Path<ConversationId>,
) -> Result<HttpResponse> {
    set_archived(&app, None, *id, true).await
}

/// POST /api/service/conversations/{id}/restore → Conversation
pub async fn restore(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    id: web::Path<ConversationId>,
) -> Result<HttpResponse> {
    set_archived(&app, None, *id, false).await
}

/// POST /api/service/conversations/{id}/events {name, payload} → 204 once the event is on its way
/// to every member's sessions, in order with the conversation's messages, on every node
pub async fn event(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    id: web::Path<ConversationId>,
    body: web::Json<EventBody>,
) -> Result<HttpResponse> {
    let frame = body.frame(Some(*id))?;
    app.registry.call(*id, PushEvent { frame }).await?;
    Ok(HttpResponse::NoContent().finish())
}
