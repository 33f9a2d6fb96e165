//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the whole REST API, for the host
//! products that generate clients from it.
//!
//! The document (`docs/openapi.json`) is written by hand, not derived from the handlers: the
//! handlers' types do not say which errors each endpoint answers, and an annotation on every
//! handler would be a second route table. What keeps it honest is the test
//! `tests/it/openapi.rs`: it reads the route table in `mod.rs` and fails when a route is missing
//! from the document or the document names one that does not exist. CI also runs an OpenAPI
//! validator on it. A change to the REST API changes the document in the same commit, as it
//! changes docs/PROTOCOL.md.

use actix_web::HttpResponse;

/// Embedded at build time, so the binary serves the document of its own version.
const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// GET /api/openapi.json → 200, the document (no token: it describes, it exposes nothing)
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(DOCUMENT)
}
