//! Which web pages may use this server from a browser: its own origin, and those listed in
//! `PARLEY_ALLOWED_ORIGINS`. A WebSocket upgrade from any other origin is refused (cross-site
//! WebSocket hijacking: a page elsewhere would otherwise reach the API with the user's
//! credentials), and CORS answers follow the same rule. Clients that send no `Origin` (apps,
//! bots, load generators) are not affected.

use actix_cors::Cors;
use actix_web::http::header::{HOST, HeaderValue, ORIGIN};
use actix_web::{HttpRequest, dev::RequestHead};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Exact origins (`scheme://host[:port]`), besides the server's own.
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(allowed: &[String]) -> Self {
        OriginPolicy { allowed: allowed.iter().map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase()).collect() }
    }

    /// May a page of `origin` talk to this server, reached as `host`?
    fn allows(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        let Ok(origin) = origin.to_str() else { return false };
        let origin = origin.to_ascii_lowercase();
        if self.allowed.contains(&origin) {
            return true;
        }
        // The server's own origin: the authority of the Origin is the Host the browser asked.
        // Schemes are not compared, as a proxy in front may end TLS.
        let authority = origin.split_once("://").map(|(_, authority)| authority);
        match (authority, host.and_then(|h| h.to_str().ok())) {
            (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host),
            _ => false,
        }
    }

    fn allows_head(&self, head: &RequestHead) -> bool {
        head.headers().get(ORIGIN).is_none_or(|origin| self.allows(origin, head.headers().get(HOST)))
    }

    /// Refuses a request from a page of a foreign origin (the WebSocket upgrade).
    pub fn check(&self, req: &HttpRequest) -> Result<()> {
        if self.allows_head(req.head()) {
            Ok(())
        } else {
            Err(Error::Forbidden("this origin may not open a WebSocket here (PARLEY_ALLOWED_ORIGINS)".into()))
        }
    }

    /// CORS for the REST API, by the same rule.
    pub fn cors(&self) -> Cors {
        let policy = self.clone();
        Cors::default()
            .allowed_origin_fn(move |origin, head| policy.allows(origin, head.headers().get(HOST)))
            .allow_any_method()
            .allow_any_header()
            .max_age(3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(policy: &OriginPolicy, origin: &str, host: &str) -> bool {
        policy.allows(&HeaderValue::from_str(origin).unwrap(), Some(&HeaderValue::from_str(host).unwrap()))
    }

    #[test]
    fn own_origin_and_listed_ones_only() {
        let policy = OriginPolicy::new(&["https://app.example.com/".to_string()]);
        assert!(allows(&policy, "http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(allows(&policy, "https://chat.example.com", "chat.example.com"));
        assert!(allows(&policy, "https://APP.example.com", "chat.example.com"));
        assert!(!allows(&policy, "https://evil.example", "chat.example.com"));
        assert!(!allows(&policy, "http://127.0.0.1:9999", "127.0.0.1:8080"));
        assert!(!allows(&policy, "null", "127.0.0.1:8080"));
    }
}
