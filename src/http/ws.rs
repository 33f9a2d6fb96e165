//! `GET /ws`: checks the token during the HTTP upgrade (401 and no WebSocket when it is missing
//! or invalid) and the caps on sessions per user and per address (429, [`Admission::session`]),
//! then hands the socket to a new [`WsSession`].

use actix::{Actor, AsyncContext};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::actors::outgoing::{self, SocketGuard};
use crate::actors::session::{SessionDeps, WsSession};
use crate::auth::{Auth, bearer_token};
use crate::error::{Error, Result};
use crate::http::admission::Admission;
use crate::http::origin::OriginPolicy;
use crate::types::SessionId;

#[derive(Deserialize)]
pub struct TokenQuery {
    /// Browsers cannot set headers on a WebSocket, so the token may come in the query.
    token: Option<String>,
}

/// GET /ws (header `Authorization: Bearer …` or `?token=…`)
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    deps: web::Data<SessionDeps>,
    auth: web::Data<Auth>,
    origins: web::Data<OriginPolicy>,
    admission: web::Data<Admission>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse> {
    origins.check(&req)?;
    let token = bearer_token(&req)
        .or(query.token.as_deref())
        .ok_or_else(|| Error::Unauthorized("missing token: send Authorization: Bearer or ?token=".into()))?;
    let caller = auth.authenticate(token).await?;
    let user = deps.store.user(caller.id).await?.ok_or_else(|| Error::Unauthorized("unknown user".into()))?.to_user();
    let slots = admission.session(&req, user.id)?;

    let (response, ws, stream) =
        actix_ws::handle(&req, body).map_err(|err| Error::bad_request(format!("not a WebSocket upgrade: {err}")))?;
    let limits = &deps.limits;
    let out = outgoing::start(
        SessionId::random(),
        user.id,
        ws,
        req.conn_data::<SocketGuard>().copied(),
        limits.outgoing_queue,
        std::time::Duration::from_millis(limits.close_timeout_ms),
    );
    let stream = stream
        .max_frame_size(limits.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(limits.max_frame_bytes);
    let deps = deps.clone();
    WsSession::create(move |ctx| {
        ctx.add_stream(stream);
        WsSession::new(user, &caller, out, deps, slots)
    });
    Ok(response)
}
