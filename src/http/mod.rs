//! The HTTP side: one module per resource, and here the one route table (every endpoint of
//! docs/PROTOCOL.md §2 and §5, the WebSocket upgrade and the health checks) and the rules that
//! turn malformed requests into the protocol's errors. The origin policy ([`origin`]) is shared
//! with the handlers as a `web::Data` of its own.

mod admin;
pub mod admission;
mod attachments;
mod auth;
pub mod body_timeout;
mod client;
pub mod client_ip;
mod conversations;
mod health;
pub mod invitations;
mod messages;
mod openapi;
pub mod origin;
mod ranges;
mod service;
pub mod socketio;
mod users;
mod ws;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, guard, web};

use crate::config::Limits;
use crate::error::Error;

/// The route table. `cors` (see [`origin`]) wraps the REST API; the WebSocket upgrade checks
/// the origin itself, to answer a refusal as the protocol's 403.
pub fn routes(cfg: &mut web::ServiceConfig, cors: actix_cors::Cors) {
    // The client's files answer HEAD too (proxies and link checkers ask it).
    let get_or_head = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    cfg.route("/", get_or_head().to(client::index))
        .route("/assets/{name}", get_or_head().to(client::asset))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/ws", web::get().to(ws::upgrade))
        .service(
            web::scope("/api")
                .wrap(cors)
                .route("/info", web::get().to(health::info))
                .route("/openapi.json", web::get().to(openapi::document))
                .route("/auth/register", web::post().to(auth::register))
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/logout-everywhere", web::post().to(auth::logout_everywhere))
                .route("/me", web::get().to(users::me))
                .route("/users", web::get().to(users::search))
                .route("/users/{id}", web::get().to(users::get))
                .route("/conversations", web::post().to(conversations::create))
                .route("/conversations", web::get().to(conversations::list))
                .route("/conversations/{id}", web::get().to(conversations::get))
                .route("/conversations/{id}/members", web::post().to(conversations::add_member))
                .route("/conversations/{id}/members/{user_id}", web::delete().to(conversations::remove_member))
                .route("/conversations/{id}/messages", web::get().to(messages::history))
                .route("/conversations/{id}/messages", web::post().to(messages::send))
                .route("/conversations/{id}/attachments", web::post().to(attachments::upload))
                .route("/conversations/{id}/attachments", web::get().to(attachments::list))
                .route("/attachments/{id}", web::get().to(attachments::download::<false>))
                .route("/attachments/{id}", web::delete().to(attachments::remove))
                .route("/attachments/{id}/thumbnail", web::get().to(attachments::download::<true>))
                .route("/conversations/{id}/archive", web::post().to(conversations::archive))
                .route("/conversations/{id}/restore", web::post().to(conversations::restore))
                .route("/conversations/{id}/hide", web::post().to(conversations::hide))
                .route("/conversations/{id}/unhide", web::post().to(conversations::unhide))
                .route("/conversations/{id}/read", web::post().to(messages::read))
                .route("/conversations/{id}/unread", web::post().to(messages::unread))
                .route("/admin/actors", web::get().to(admin::actors))
                .route("/admin/actors/conversations/{id}", web::get().to(admin::conversation))
                .route("/admin/actors/conversations/{id}/fault", web::post().to(admin::fault))
                .route("/admin/users/{id}/logout-everywhere", web::post().to(admin::logout_everywhere))
                .service(
                    // The host's backend (docs/PROTOCOL.md §7), with a service key.
                    web::scope("/service")
                        .route("/users/{external_id}", web::put().to(service::users::put))
                        .route("/users/{external_id}", web::get().to(service::users::get))
                        .route(
                            "/users/{external_id}/logout-everywhere",
                            web::post().to(service::users::logout_everywhere),
                        )
                        .route("/users/{external_id}/events", web::post().to(service::users::event))
                        .route("/conversations", web::post().to(service::conversations::create))
                        .route("/conversations", web::get().to(service::conversations::list))
                        .route("/conversations/{id}", web::get().to(service::conversations::get))
                        .route("/conversations/{id}", web::patch().to(service::conversations::update))
                        .route("/conversations/{id}/messages", web::get().to(service::conversations::history))
                        .route("/conversations/{id}/messages", web::post().to(service::conversations::post))
                        .route("/conversations/{id}/members", web::post().to(service::conversations::add_member))
                        .route(
                            "/conversations/{id}/members/{external_id}",
                            web::delete().to(service::conversations::remove_member),
                        )
                        .route("/conversations/{id}/archive", web::post().to(service::conversations::archive))
                        .route("/conversations/{id}/restore", web::post().to(service::conversations::restore))
                        .route("/conversations/{id}/events", web::post().to(service::conversations::event)),
                ),
        )
        .default_service(web::to(not_found));
}

/// Body, query and path errors as the protocol's `bad_request` / `payload_too_large`.
pub fn extractor_configs(limits: &Limits) -> (web::JsonConfig, web::QueryConfig, web::PathConfig) {
    let max = limits.max_request_bytes;
    let json = web::JsonConfig::default().limit(max).error_handler(move |err, _| {
        match err {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                Error::PayloadTooLarge(format!("request body larger than {max} bytes"))
            }
            JsonPayloadError::ContentType => Error::bad_request("send a JSON body with Content-Type: application/json"),
            JsonPayloadError::Payload(err) => body_timeout::error(&err),
            err => Error::bad_request(format!("bad JSON body: {err}")),
        }
        .into()
    });
    let query = web::QueryConfig::default()
        .error_handler(|err: QueryPayloadError, _| Error::bad_request(format!("bad query: {err}")).into());
    let path = web::PathConfig::default()
        .error_handler(|err: PathError, _| Error::NotFound(format!("no such resource: {err}")).into());
    (json, query, path)
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, Error> {
    Err(Error::NotFound(format!("no route for {} {}", req.method(), req.path())))
}

/// A request body read by hand (where it may be empty), within the size limit.
async fn read_body(mut payload: web::Payload, max: usize) -> Result<web::BytesMut, Error> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| body_timeout::error(&err))?;
        if body.len() + chunk.len() > max {
            return Err(Error::PayloadTooLarge(format!("request body larger than {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `201 Created` with a JSON body.
fn created<T: serde::Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Created().json(body)
}
