//! Who is calling: tokens ([`tokens`]) and their revocation ([`revocation`]), built-in account
//! passwords ([`password`]) and display names ([`display_name`]), the limits on guessing and
//! registering ([`throttle`], [`registrations`]), and the [`AuthUser`] extractor that protects
//! a handler by appearing among its arguments.

pub mod admins;
pub mod display_name;
pub mod password;
pub mod registrations;
pub mod revocation;
pub mod service;
pub mod throttle;
pub mod tokens;

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, web};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::types::UserId;

pub use service::{ServiceCaller, ServiceKeys};
pub use tokens::{ClaimNames, Keys, Subject, Verified};

/// Token verification, plus the rules that a valid token's user exists (created on first use)
/// and has not signed out everywhere since; the throttle on password guessing and the limit on
/// registrations.
pub struct Auth {
    pub keys: Keys,
    pub throttle: throttle::LoginThrottle,
    pub registrations: registrations::RegistrationLimit,
    store: Store,
}

/// The caller of a request or the owner of a WebSocket, as its valid token says.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub admin: bool,
    pub expires_at: i64,
    /// The token's `iat`, for the revocation checks of an open WebSocket.
    pub issued_at: Option<i64>,
}

impl Auth {
    pub fn new(keys: Keys, store: Store, free_login_failures: u32, registrations_per_hour: u32) -> Auth {
        let throttle = throttle::LoginThrottle::new(free_login_failures);
        let registrations = registrations::RegistrationLimit::new(registrations_per_hour);
        Auth { keys, throttle, registrations, store }
    }

    /// Verifies `token`, makes sure its user exists, and that the token was not revoked.
    ///
    /// One primary-key lookup per request: the revocation time is read each time (not cached),
    /// so that a sign-out everywhere on any node holds on every node at once.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser> {
        let Verified { subject, name, admin, expires_at, issued_at } = self.keys.verify(token)?;
        let (user, valid_after) = match subject {
            Subject::Id(user) => match self.store.tokens_valid_after(user).await? {
                Some(valid_after) => (user, valid_after),
                None => (user, self.store.ensure_user(user, name.as_deref()).await.map(|_| None)?),
            },
            Subject::External(id) => self.store.external_user_tokens(&id, name.as_deref()).await?,
        };
        if user == UserId::SYSTEM {
            return Err(Error::Unauthorized("invalid token: the system user does not sign in".into()));
        }
        if revocation::is_revoked(valid_after, issued_at) {
            return Err(revocation::revoked());
        }
        Ok(AuthUser { id: user, admin, expires_at, issued_at })
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
            // In a task of its own, so that its database read always runs to the end: actix-web
            // drops this future when another extractor of the handler fails first (a bad body),
            // and diesel-async's SQLite connection cannot be dropped in the middle of a query
            // (it blocks the thread to finish it, which panics on actix's runtime).
            actix_web::rt::spawn(async move { auth.authenticate(&token).await })
                .await
                .map_err(|err| Error::Internal(format!("authentication task: {err}")))?
        })
    }
}

impl AuthUser {
    /// Admin endpoints only (PROTOCOL.md §5).
    pub fn require_admin(&self) -> Result<()> {
        if self.admin { Ok(()) } else { Err(Error::Forbidden("admin role required".into())) }
    }
}
