//! The bundled web client: the files under `web/`, embedded in the binary at build time, so
//! that the server and a browser are all a new user needs.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::{Error, Result};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of the client. `parley.js` is the protocol client (no view code), the
/// part integrators copy; `app.js` is the page's entry point.
const ASSETS: &[Asset] = &[
    Asset { name: "index.html", content_type: HTML, body: include_bytes!("../../web/index.html") },
    Asset { name: "style.css", content_type: CSS, body: include_bytes!("../../web/style.css") },
    Asset { name: "icon.svg", content_type: SVG, body: include_bytes!("../../web/icon.svg") },
    Asset { name: "parley.js", content_type: JS, body: include_bytes!("../../web/parley.js") },
    Asset { name: "app.js", content_type: JS, body: include_bytes!("../../web/app.js") },
    Asset { name: "dom.js", content_type: JS, body: include_bytes!("../../web/dom.js") },
    Asset { name: "store.js", content_type: JS, body: include_bytes!("../../web/store.js") },
    Asset { name: "auth.js", content_type: JS, body: include_bytes!("../../web/auth.js") },
    Asset { name: "list.js", content_type: JS, body: include_bytes!("../../web/list.js") },
    Asset { name: "conversation.js", content_type: JS, body: include_bytes!("../../web/conversation.js") },
    Asset { name: "members.js", content_type: JS, body: include_bytes!("../../web/members.js") },
    Asset { name: "composer.js", content_type: JS, body: include_bytes!("../../web/composer.js") },
    Asset { name: "people.js", content_type: JS, body: include_bytes!("../../web/people.js") },
    Asset { name: "admin.js", content_type: JS, body: include_bytes!("../../web/admin.js") },
];

/// A strong validator per file, the same for the life of the binary (the files are in it).
fn etag(asset: &Asset) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (env!("CARGO_PKG_VERSION"), asset.body).hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

/// What the browser may do with the page: scripts, styles, images and connections from this
/// server only (no inline script, so an injected `<script>` or `onerror=` does not run), no
/// plugins, and no framing by any site (clickjacking; `X-Frame-Options` for older browsers).
/// `connect-src 'self'` covers the WebSocket to the same host (CSP Level 3).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Every file is revalidated on each load (`no-cache` with an ETag, so an unchanged file costs a
/// 304 and no body): after an upgrade a browser never runs old and new modules together.
fn serve(req: &HttpRequest, name: &str) -> Result<HttpResponse> {
    let asset = ASSETS.iter().find(|a| a.name == name).ok_or_else(|| Error::NotFound(format!("no file {name}")))?;
    let tag = etag(asset);
    let unchanged = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|candidate| candidate.trim() == tag));
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((ETAG, tag))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "no-referrer"));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response.insert_header((CONTENT_TYPE, asset.content_type)).body(asset.body))
}

/// GET / → the client's page
pub async fn index(req: HttpRequest) -> Result<HttpResponse> {
    serve(&req, "index.html")
}

/// GET /assets/{name} → a script, style sheet or image of the client
pub async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse> {
    if name.as_str() == "index.html" {
        return Err(Error::NotFound("no file index.html".into()));
    }
    serve(&req, &name)
}
