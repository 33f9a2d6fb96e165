//! The user directory: `/api/me`, `/api/users` and `/api/users/{id}`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::config::Directory;
use crate::error::{Error, Result};
use crate::rules;
use crate::types::UserId;

/// The longest search text (longer ones cannot match a username or a display name anyway).
const MAX_QUERY: usize = 100;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    limit: Option<i64>,
}

/// GET /api/me → the caller's User
pub async fn me(app: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse> {
    let row = app.store.user(caller.id).await?.ok_or_else(|| Error::NotFound("no such user".into()))?;
    Ok(HttpResponse::Ok().json(row.to_user()))
}

/// GET /api/users?q=&limit= → {users}: search on username and display name, among everyone or
/// among the caller's contacts (PARLEY_DIRECTORY)
pub async fn search(
    app: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse> {
    let limit = rules::users_page(&app.limits, query.limit)?;
    let q = query.q.trim();
    crate::protocol::check_text("q", q)?;
    if q.chars().count() > MAX_QUERY {
        return Err(Error::bad_request(format!("q is at most {MAX_QUERY} characters")));
    }
    let among = match app.policies.directory {
        Directory::Open => None,
        Directory::Contacts => Some(contacts_and_self(&app, caller.id).await?),
        Directory::Off => return Err(Error::Forbidden("the directory is off".into())),
    };
    let rows = app.store.search_users(q, limit, among.as_deref()).await?;
    let users: Vec<_> = rows.iter().map(|r| r.to_user()).collect();
    Ok(HttpResponse::Ok().json(json!({ "users": users })))
}

/// GET /api/users/{id} → User, with online and last_seen_at when the caller shares a
/// conversation with them (or is them)
pub async fn get(app: web::Data<AppState>, caller: AuthUser, id: web::Path<UserId>) -> Result<HttpResponse> {
    let no_such_user = || Error::NotFound("no such user".into());
    // With a closed directory a stranger is as unknown as an id that names nobody.
    if app.policies.directory != Directory::Open && !contacts_and_self(&app, caller.id).await?.contains(&id) {
        return Err(no_such_user());
    }
    let row = app.store.user(*id).await?.ok_or_else(no_such_user)?;
    Ok(HttpResponse::Ok().json(crate::actors::presence::user_with_presence(&app.presence, caller.id, &row).await?))
}

/// The people `user` shares a conversation with, and `user`.
async fn contacts_and_self(app: &AppState, user: UserId) -> Result<Vec<UserId>> {
    let mut people = app.store.contacts(user).await?;
    people.push(user);
    Ok(people)
}
