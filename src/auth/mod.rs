//! Who is calling: tokens ([`tokens`]), built-in account passwords ([`password`]), and the
//! [`AuthUser`] extractor that protects a handler by appearing among its arguments.

pub mod password;
pub mod throttle;
pub mod tokens;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use actix_web::{FromRequest, HttpRequest, web};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::types::UserId;

pub use tokens::{Keys, Verified};

/// How many verified user ids [`Auth`] remembers as existing before it starts over.
const KNOWN_USERS_CAP: usize = 100_000;

/// Token verification, plus the rule that a valid token's user exists (created on first use);
/// and the throttle on password guessing.
pub struct Auth {
    pub keys: Keys,
    pub throttle: throttle::LoginThrottle,
    store: Store,
    /// Users known to have a row: so that only a user's first request costs a lookup.
    known: Mutex<HashSet<UserId>>,
}

/// The caller of a request or the owner of a WebSocket, as its valid token says.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub admin: bool,
    pub expires_at: i64,
}

impl Auth {
    pub fn new(keys: Keys, store: Store, free_login_failures: u32) -> Auth {
        let throttle = throttle::LoginThrottle::new(free_login_failures);
        Auth { keys, throttle, store, known: Mutex::new(HashSet::new()) }
    }

    /// Verifies `token` and makes sure its user exists.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser> {
        let Verified { user, name, admin, expires_at } = self.keys.verify(token)?;
        if !self.is_known(user) {
            self.store.ensure_user(user, name.as_deref()).await?;
            self.remember(user);
        }
        Ok(AuthUser { id: user, admin, expires_at })
    }

    fn is_known(&self, user: UserId) -> bool {
        self.known.lock().is_ok_and(|known| known.contains(&user))
    }

    fn remember(&self, user: UserId) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= KNOWN_USERS_CAP {
                known.clear();
            }
            known.insert(user);
        }
    }
}

/// The token of `Authorization: Bearer <token>`, if the header is there.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequest for AuthUser {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<AuthUser>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let auth = req.app_data::<web::Data<Auth>>().cloned();
        let token = bearer_token(req).map(str::to_string);
        Box::pin(async move {
            let auth = auth.ok_or_else(|| Error::Internal("Auth is not registered".into()))?;
            let token = token.ok_or_else(|| Error::Unauthorized("missing Authorization: Bearer token".into()))?;
            auth.authenticate(&token).await
        })
    }
}

impl AuthUser {
    /// Admin endpoints only (PROTOCOL.md §5).
    pub fn require_admin(&self) -> Result<()> {
        if self.admin { Ok(()) } else { Err(Error::Forbidden("admin role required".into())) }
    }
}
