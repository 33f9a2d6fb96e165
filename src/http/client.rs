//! The bundled web client: the files under `web/`, embedded in the binary at build time, so
//! that the server and a browser are all a new user needs.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

use crate::error::{Error, Result};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file of the client. The page itself is revalidated on each load; the other files are
/// named in the page and cached briefly.
const ASSETS: &[Asset] = &[Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../web/index.html"),
}];

fn serve(name: &str, cache: &'static str) -> Result<HttpResponse> {
    let asset = ASSETS.iter().find(|a| a.name == name).ok_or_else(|| Error::NotFound(format!("no file {name}")))?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, asset.content_type))
        .insert_header((CACHE_CONTROL, cache))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(asset.body))
}

/// GET / → the client's page
pub async fn index() -> Result<HttpResponse> {
    serve("index.html", "no-cache")
}

/// GET /assets/{name} → a script, style sheet or image of the client
pub async fn asset(name: web::Path<String>) -> Result<HttpResponse> {
    if name.as_str() == "index.html" {
        return Err(Error::NotFound("no file index.html".into()));
    }
    serve(&name, "public, max-age=300")
}
