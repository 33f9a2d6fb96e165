//! Conversations: create (direct get-or-create, or group), list, get, and group membership.
//! Each handler parses, makes one call (the store, or the conversation's actor for membership
//! changes, which checks them and writes their system message), and responds; the rules are in
//! [`crate::rules`].

use std::collections::BTreeSet;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::created;
use super::invitations::GroupInvites;
use crate::actors::conversation::{AddMember, Archive, RemoveMember};
use crate::actors::presence::DeliverTo;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::config::ConversationStart;
use crate::error::{Error, Result};
use crate::protocol::{Context, Conversation, Event, Role};
use crate::rules;
use crate::store::{Founding, ListCursor, ListFilter};
use crate::types::{ConversationId, UserId};

#[derive(Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum CreateBody {
    #[serde(rename = "direct")]
    Direct { user_id: UserId, context: Option<Context> },
    #[serde(rename = "group")]
    Group { title: String, member_ids: Vec<UserId> },
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    before: Option<String>,
    context_type: Option<String>,
    context_id: Option<String>,
    #[serde(default)]
    include_hidden: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberBody {
    user_id: UserId,
}

/// POST /api/conversations → 201 new Conversation, or 200 the existing direct one
pub async fn create(
    app: web::Data<AppState>,
    invites: web::Data<GroupInvites>,
    caller: AuthUser,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse> {
    if app.policies.conversation_start == ConversationStart::Service {
        return Err(Error::Forbidden("conversations are opened by the service".into()));
    }
    match body.into_inner() {
        CreateBody::Direct { user_id, context } => {
            if user_id == caller.id || user_id == UserId::SYSTEM {
                return Err(Error::bad_request("a direct conversation needs another user"));
            }
            if let Some(context) = &context {
                rules::context(context)?;
            }
            app.store.user(user_id).await?.ok_or_else(|| Error::NotFound("no such user".into()))?;
            let founding = Founding { context, ..Founding::default() };
            let (id, is_new) = app.store.create_direct(caller.id, user_id, &founding).await?;
            opened(&app, caller.id, id, is_new).await
        }
        CreateBody::Group { title, member_ids } => {
            let title = rules::group_title(&title)?;
            let others: BTreeSet<UserId> = member_ids.into_iter().filter(|u| *u != caller.id).collect();
            rules::group_size(&app.limits, others.len() + 1)?;
            let others: Vec<UserId> = others.into_iter().collect();
            let found = app.store.users(&others).await?;
            if found.len() != others.len() {
                return Err(Error::bad_request("member_ids names users that do not exist"));
            }
            if !others.is_empty() {
                invites.take(caller.id, None)?;
            }
            let (id, _) = app.store.create_group(caller.id, title, &others, &Founding::default()).await?;
            opened(&app, caller.id, id, true).await
        }
    }
}

/// The answer to a get-or-create, as `viewer` sees it: 201 when it was created now (and its
/// members told), 200 with the one that existed.
pub(super) async fn opened(app: &AppState, viewer: UserId, id: ConversationId, is_new: bool) -> Result<HttpResponse> {
    let conversation = fetch(app, viewer, id).await?;
    if !is_new {
        return Ok(HttpResponse::Ok().json(conversation));
    }
    announce(app, &conversation);
    Ok(created(&conversation))
}

/// A new conversation: `conversation:updated` to its members' sessions. Every member sees the
/// same object at creation (nothing is unread yet), so one frame serves all.
fn announce(app: &AppState, conversation: &Conversation) {
    let users = conversation.audience().collect();
    let frame = Event::ConversationUpdated { conversation }.encode();
    app.presence.do_send(DeliverTo { users, frame });
}

/// The conversation as `viewer` sees it (the system user, for the service, sees any).
pub(super) async fn fetch(app: &AppState, viewer: UserId, id: ConversationId) -> Result<Conversation> {
    let found = if viewer == UserId::SYSTEM {
        app.store.conversations_for(viewer, &[id]).await?.pop()
    } else {
        app.store.conversation_for(viewer, id).await?
    };
    found.ok_or_else(Error::no_conversation)
}

/// GET /api/conversations?limit=&before= → {conversations, total_unread, next}
pub async fn list(app: web::Data<AppState>, caller: AuthUser, query: web::Query<ListQuery>) -> Result<HttpResponse> {
    let limit = rules::conversations_page(&app.limits, query.limit)?;
    let before = query.before.as_deref().map(ListCursor::decode).transpose()?;
    let query = query.into_inner();
    let filter = ListFilter {
        context_type: query.context_type,
        context_id: query.context_id,
        member: None,
        include_hidden: query.include_hidden,
    };
    let page = app.store.list_conversations(caller.id, limit, before, &filter).await?;
    let total_unread = app.store.total_unread(caller.id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "conversations": page.conversations,
        "total_unread": total_unread,
        "next": page.next.map(|c| c.encode()),
    })))
}

/// GET /api/conversations/{id} → Conversation
pub async fn get(app: web::Data<AppState>, caller: AuthUser, id: web::Path<ConversationId>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(fetch(&app, caller.id, *id).await?))
}

/// POST /api/conversations/{id}/members {user_id} → 201 Conversation (group owner only)
pub async fn add_member(
    app: web::Data<AppState>,
    invites: web::Data<GroupInvites>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
    body: web::Json<AddMemberBody>,
) -> Result<HttpResponse> {
    let id = *id;
    invites.take(caller.id, Some(id))?;
    app.registry.call(id, AddMember { by: Some(caller.id), user: body.user_id, role: Role::Member }).await?;
    Ok(created(&fetch(&app, caller.id, id).await?))
}

/// DELETE /api/conversations/{id}/members/{user_id} → 204: leave (oneself) or remove (owner)
pub async fn remove_member(
    app: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(ConversationId, UserId)>,
) -> Result<HttpResponse> {
    let (id, user) = path.into_inner();
    app.registry.call(id, RemoveMember { by: Some(caller.id), user }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// POST /api/conversations/{id}/archive → Conversation (the group's owner; direct ones are the
/// service's)
pub async fn archive(
    app: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
) -> Result<HttpResponse> {
    set_archived(&app, Some(caller.id), *id, true).await
}

/// POST /api/conversations/{id}/restore → Conversation (the group's owner)
pub async fn restore(
    app: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
) -> Result<HttpResponse> {
    set_archived(&app, Some(caller.id), *id, false).await
}

/// Archives (or restores) `id` through its actor, as `by` (a group's owner) or the service
/// (`None`); the answer is the conversation as the actor sees it now.
pub(super) async fn set_archived(
    app: &AppState,
    by: Option<UserId>,
    id: ConversationId,
    archive: bool,
) -> Result<HttpResponse> {
    app.registry.call(id, Archive { by, archive }).await?;
    Ok(HttpResponse::Ok().json(fetch(app, by.unwrap_or(UserId::SYSTEM), id).await?))
}

/// POST /api/conversations/{id}/hide → Conversation: out of the caller's list until its next
/// message
pub async fn hide(app: web::Data<AppState>, caller: AuthUser, id: web::Path<ConversationId>) -> Result<HttpResponse> {
    set_hidden(&app, caller.id, *id, true).await
}

/// POST /api/conversations/{id}/unhide → Conversation
pub async fn unhide(app: web::Data<AppState>, caller: AuthUser, id: web::Path<ConversationId>) -> Result<HttpResponse> {
    set_hidden(&app, caller.id, *id, false).await
}

/// Hides or shows again; the caller's other devices get `conversation:updated`, to follow.
async fn set_hidden(app: &AppState, user: UserId, id: ConversationId, hidden: bool) -> Result<HttpResponse> {
    if !app.store.set_hidden(id, user, hidden).await? {
        return Err(Error::no_conversation());
    }
    let conversation = fetch(app, user, id).await?;
    let frame = Event::ConversationUpdated { conversation: &conversation }.encode();
    app.presence.do_send(DeliverTo { users: vec![user], frame });
    Ok(HttpResponse::Ok().json(conversation))
}
