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
use crate::actors::conversation::{AddMember, RemoveMember};
use crate::actors::presence::DeliverTo;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::protocol::{Conversation, Event};
use crate::rules;
use crate::store::ListCursor;
use crate::types::{ConversationId, UserId};

#[derive(Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum CreateBody {
    #[serde(rename = "direct")]
    Direct { user_id: UserId },
    #[serde(rename = "group")]
    Group { title: String, member_ids: Vec<UserId> },
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    before: Option<String>,
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
    match body.into_inner() {
        CreateBody::Direct { user_id } => {
            if user_id == caller.id {
                return Err(Error::bad_request("a direct conversation needs another user"));
            }
            app.store.user(user_id).await?.ok_or_else(|| Error::NotFound("no such user".into()))?;
            let (id, is_new) = app.store.create_direct(caller.id, user_id).await?;
            let conversation = fetch(&app, caller.id, id).await?;
            if is_new {
                announce(&app, &conversation);
                Ok(created(&conversation))
            } else {
                Ok(HttpResponse::Ok().json(conversation))
            }
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
            let id = app.store.create_group(caller.id, title, &others).await?;
            let conversation = fetch(&app, caller.id, id).await?;
            announce(&app, &conversation);
            Ok(created(&conversation))
        }
    }
}

/// A new conversation: `conversation:updated` to its members' sessions. Every member sees the
/// same object at creation (nothing is unread yet), so one frame serves all.
fn announce(app: &AppState, conversation: &Conversation) {
    let users = conversation.members.iter().map(|m| m.user_id).collect();
    let frame = Event::ConversationUpdated { conversation }.encode();
    app.presence.do_send(DeliverTo { users, frame });
}

async fn fetch(app: &AppState, viewer: UserId, id: ConversationId) -> Result<Conversation> {
    app.store.conversation_for(viewer, id).await?.ok_or_else(Error::no_conversation)
}

/// GET /api/conversations?limit=&before= → {conversations, total_unread, next}
pub async fn list(app: web::Data<AppState>, caller: AuthUser, query: web::Query<ListQuery>) -> Result<HttpResponse> {
    let limit = rules::conversations_page(&app.limits, query.limit)?;
    let before = query.before.as_deref().map(ListCursor::decode).transpose()?;
    let page = app.store.list_conversations(caller.id, limit, before).await?;
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
    app.registry.call(id, AddMember { by: caller.id, user: body.user_id }).await?;
    Ok(created(&fetch(&app, caller.id, id).await?))
}

/// DELETE /api/conversations/{id}/members/{user_id} → 204: leave (oneself) or remove (owner)
pub async fn remove_member(
    app: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(ConversationId, UserId)>,
) -> Result<HttpResponse> {
    let (id, user) = path.into_inner();
    app.registry.call(id, RemoveMember { by: caller.id, user }).await?;
    Ok(HttpResponse::NoContent().finish())
}
