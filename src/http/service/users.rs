//! The host's users, by the host's own ids: provisioning (`PUT`), reading, signing out
//! everywhere, and events for one user's sessions.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{EventBody, user};
use crate::actors::presence::DeliverTo;
use crate::app::AppState;
use crate::auth::{ServiceCaller, display_name, revocation};
use crate::error::{Error, Result};
use crate::protocol::{Event, User};
use crate::rules;
use crate::store::{ExternalProfile, UserRow};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    display_name: Option<String>,
    /// Absent: unchanged; `null`: removed.
    #[serde(default, deserialize_with = "super::present")]
    avatar_url: Option<Option<String>>,
    /// Absent: unchanged; `null`: emptied (`{}`).
    #[serde(default, deserialize_with = "super::present")]
    metadata: Option<Option<serde_json::Value>>,
}

/// A user as the service sees them: with the host's metadata.
#[derive(Serialize)]
struct ServiceUser {
    #[serde(flatten)]
    user: User,
    metadata: Box<RawValue>,
}

impl ServiceUser {
    fn of(row: &UserRow) -> Result<ServiceUser> {
        let metadata = RawValue::from_string(row.metadata.clone())
            .map_err(|err| Error::Internal(format!("stored metadata of {}: {err}", row.id)))?;
        Ok(ServiceUser { user: row.to_user(), metadata })
    }
}

/// PUT /api/service/users/{external_id} {display_name?, avatar_url?, metadata?} → 201 created,
/// or 200 updated; a new name or avatar reaches the sessions of the user and their contacts
pub async fn put(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    external_id: web::Path<String>,
    body: web::Json<ProfileBody>,
) -> Result<HttpResponse> {
    let external_id = rules::external_id(&external_id)?;
    let ProfileBody { display_name, avatar_url, metadata } = body.into_inner();
    let avatar_url = match avatar_url {
        Some(Some(url)) => Some(Some(rules::avatar_url(&url)?.to_string())),
        cleared_or_kept => cleared_or_kept,
    };
    let display_name = match display_name.as_deref().map(display_name::check).transpose()? {
        Some(None) => return Err(Error::bad_request("display_name must not be blank")),
        given => given.flatten(),
    };
    let metadata = match metadata {
        Some(Some(value)) => Some(rules::metadata(&value)?),
        Some(None) => Some("{}".to_string()),
        None => None,
    };
    let profile = ExternalProfile { display_name, avatar_url, metadata };
    let before = app.store.user_by_external_id(external_id).await?;
    let (row, created) = app.store.upsert_external_user(external_id, profile).await?;
    if let Some(before) = before
        && (before.display_name != row.display_name || before.avatar_url != row.avatar_url)
    {
        announce(&app, &row).await?;
    }
    let answer = ServiceUser::of(&row)?;
    Ok(if created { HttpResponse::Created().json(answer) } else { HttpResponse::Ok().json(answer) })
}

/// `user:updated` to the user's sessions and to everyone who shares a conversation with them.
async fn announce(app: &AppState, row: &UserRow) -> Result<()> {
    let mut users = app.store.contacts(row.id).await?;
    users.push(row.id);
    let frame = Event::UserUpdated { user: &row.to_user() }.encode();
    app.presence.do_send(DeliverTo { users, frame });
    Ok(())
}

/// GET /api/service/users/{external_id} → the user, with their metadata
pub async fn get(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    external_id: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(ServiceUser::of(&user(&app.store, &external_id).await?)?))
}

/// POST /api/service/users/{external_id}/logout-everywhere → 204: their tokens issued until now
/// stop working and their sockets close (4001)
pub async fn logout_everywhere(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    external_id: web::Path<String>,
) -> Result<HttpResponse> {
    let row = user(&app.store, &external_id).await?;
    revocation::revoke(&app.store, row.id).await?;
    log::info!("user {} signed out everywhere by the service", row.id);
    Ok(HttpResponse::NoContent().finish())
}

/// POST /api/service/users/{external_id}/events {name, payload} → 204 once the event is on its
/// way to every session of the user, on every node
pub async fn event(
    app: web::Data<AppState>,
    _service: ServiceCaller,
    external_id: web::Path<String>,
    body: web::Json<EventBody>,
) -> Result<HttpResponse> {
    let frame = body.frame(None)?;
    let row = user(&app.store, &external_id).await?;
    app.presence.send(DeliverTo { users: vec![row.id], frame }).await.map_err(|_| Error::presence_restarting())?;
    Ok(HttpResponse::NoContent().finish())
}
