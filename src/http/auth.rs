//! Built-in accounts: `POST /api/auth/register` and `POST /api/auth/login` (PROTOCOL.md §1).

use std::sync::LazyLock;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Auth, password};
use crate::error::{Error, Result};
use crate::protocol::User;
use crate::store::UserRow;
use crate::types::{Timestamp, UserId};

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

/// The longest display name, in characters.
const MAX_DISPLAY_NAME: usize = 64;

/// POST /api/auth/register → 201 {token, user}
pub async fn register(
    app: web::Data<AppState>,
    auth: web::Data<Auth>,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let username = password::normalize_username(&body.username)?;
    password::check_password(&body.password)?;
    let display_name = match body.display_name.as_deref().map(str::trim) {
        None | Some("") => username.clone(),
        Some(name) if name.chars().count() > MAX_DISPLAY_NAME => {
            return Err(Error::bad_request(format!("a display name is at most {MAX_DISPLAY_NAME} characters")));
        }
        Some(name) => {
            crate::protocol::check_text("display_name", name)?;
            name.to_string()
        }
    };
    let hash = blocking(move || password::hash(&body.password)).await?;
    let row = UserRow {
        id: UserId(uuid::Uuid::new_v4()),
        username,
        display_name,
        password_hash: Some(hash),
        created_at: Timestamp::now(),
        last_seen_at: None,
    };
    app.store.create_user(&row).await?;
    log::info!("registered user {}", row.id);
    Ok(HttpResponse::Created().json(session_for(&app, &auth, &row)?))
}

/// POST /api/auth/login → 200 {token, user}; the same 401 for an unknown user and a wrong
/// password; 429 while the account or the address has failed too often (see `auth::throttle`).
pub async fn login(
    req: HttpRequest,
    app: web::Data<AppState>,
    auth: web::Data<Auth>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse> {
    // A hash to check against when there is no user, so that both failures take as long.
    static DECOY: LazyLock<String> = LazyLock::new(|| password::hash("decoy password").unwrap_or_default());
    let body = body.into_inner();
    let account = body.username.to_ascii_lowercase();
    let address = req.peer_addr().map(|a| a.ip());
    auth.throttle.check(&account, address)?;
    let row = match password::normalize_username(&body.username) {
        Ok(username) => app.store.user_by_username(&username).await?,
        Err(_) => None,
    };
    let hash = row.as_ref().and_then(|r| r.password_hash.clone());
    let matches = blocking(move || Ok(password::verify(&body.password, hash.as_deref().unwrap_or(&DECOY)))).await?;
    match row {
        Some(row) if matches && row.password_hash.is_some() => {
            auth.throttle.succeeded(&account);
            Ok(HttpResponse::Ok().json(session_for(&app, &auth, &row)?))
        }
        _ => {
            auth.throttle.failed(&account, address);
            Err(Error::Unauthorized("wrong username or password".into()))
        }
    }
}

fn session_for(app: &AppState, auth: &Auth, row: &UserRow) -> Result<Session> {
    let admin = app.admin_users.iter().any(|a| a.eq_ignore_ascii_case(&row.username));
    Ok(Session { token: auth.keys.issue(row.id, &row.display_name, admin)?, user: row.to_user() })
}

/// Runs slow, CPU-bound work (Argon2) on the blocking pool, off the threads that serve sockets.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    web::block(work).await.map_err(|err| Error::Internal(format!("blocking task: {err}")))?
}
