//! Built-in accounts: `POST /api/auth/register`, `POST /api/auth/login` and
//! `POST /api/auth/logout-everywhere` (PROTOCOL.md §1).

use std::sync::LazyLock;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Auth, AuthUser, admins, display_name, password, revocation};
use crate::config::Registration;
use crate::error::{Error, Result};
use crate::http::client_ip::{TrustedProxies, client_ip};
use crate::protocol::User;
use crate::store::UserRow;
use crate::types::UserId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    username: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct Session {
    token: String,
    user: User,
}

/// POST /api/auth/register → 201 {token, user}; 403 for a name of PARLEY_ADMIN_USERS; 429 past
/// PARLEY_REGISTRATIONS_PER_HOUR from one address
pub async fn register(
    req: HttpRequest,
    app: web::Data<AppState>,
    auth: web::Data<Auth>,
    proxies: web::Data<TrustedProxies>,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse> {
    if app.policies.registration == Registration::Closed {
        return Err(Error::Forbidden("registration is closed: accounts come from the host product".into()));
    }
    let body = body.into_inner();
    let username = password::normalize_username(&body.username)?;
    if admins::is_admin_name(&app.admin_users, &username) {
        return Err(Error::Forbidden("this username is reserved: its account is made by the operator".into()));
    }
    password::check_password(&body.password, &username)?;
    let display_name = match body.display_name.as_deref().map(display_name::check).transpose()?.flatten() {
        None => username.clone(),
        Some(name) => name,
    };
    auth.registrations.take(Some(client_ip(&req, &proxies)))?;
    let hash = blocking(move || password::hash(&body.password)).await?;
    let row =
        UserRow { password_hash: Some(hash), ..UserRow::new(UserId(uuid::Uuid::new_v4()), username, display_name) };
    app.store.create_user(&row).await?;
    log::info!("registered user {}", row.id);
    Ok(HttpResponse::Created().json(session_for(&app, &auth, &row).await?))
}

/// POST /api/auth/login → 200 {token, user}; the same 401 for an unknown user and a wrong
/// password; 429 while the account or the address has failed too often (see `auth::throttle`).
pub async fn login(
    req: HttpRequest,
    app: web::Data<AppState>,
    auth: web::Data<Auth>,
    proxies: web::Data<TrustedProxies>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse> {
    // A hash to check against when there is no user, so that both failures take as long.
    static DECOY: LazyLock<String> = LazyLock::new(|| password::hash("decoy password").unwrap_or_default());
    let body = body.into_inner();
    let account = body.username.to_ascii_lowercase();
    let address = Some(client_ip(&req, &proxies));
    auth.throttle.check(&account, address)?;
    let row = match password::normalize_username(&body.username) {
        Ok(username) => app.store.user_by_username(&username).await?,
        Err(_) => None,
    };
    let hash = row.as_ref().and_then(|r| r.password_hash.clone());
    let matches = blocking(move || Ok(password::verify(&body.password, hash.as_deref().unwrap_or(&DECOY)))).await?;
    match row {
        Some(row) if matches && row.password_hash.is_some() => {
            auth.throttle.succeeded(&account, address);
            Ok(HttpResponse::Ok().json(session_for(&app, &auth, &row).await?))
        }
        _ => {
            auth.throttle.failed(&account, address);
            Err(Error::Unauthorized("wrong username or password".into()))
        }
    }
}

/// POST /api/auth/logout-everywhere → 204: every token of the caller issued until now stops
/// working, this one included (open WebSockets close with 4001).
pub async fn logout_everywhere(app: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse> {
    revocation::revoke(&app.store, caller.id).await?;
    log::info!("user {} signed out everywhere", caller.id);
    Ok(HttpResponse::NoContent().finish())
}

async fn session_for(app: &AppState, auth: &Auth, row: &UserRow) -> Result<Session> {
    let admin = admins::is_admin_name(&app.admin_users, &row.username);
    let not_before = app.store.tokens_valid_after(row.id).await?.flatten().map(revocation::as_secs);
    Ok(Session { token: auth.keys.issue(row.id, &row.display_name, admin, not_before)?, user: row.to_user() })
}

/// Runs slow, CPU-bound work (Argon2) on the blocking pool, off the threads that serve sockets.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    web::block(work).await.map_err(|err| Error::Internal(format!("blocking task: {err}")))?
}
