//! The host's backend on `/api/service` (docs/PROTOCOL.md §7, docs/SECURITY.md "The service
//! credential"): a handler is for the service when it takes a [`ServiceCaller`].
//!
//! A service key is a long random secret from `PARLEY_SERVICE_KEYS`, sent as a Bearer token.
//! Only its SHA-256 digest is kept and compared: the time a comparison takes then tells nothing
//! about the key. A key is named in logs by its fingerprint (the first 8 hex digits of that
//! digest), so that an operator rotating keys sees which one is still in use, and the key itself
//! is never written anywhere; `parley_service_calls_total{key=…}` counts the calls of each. A user's token is never a service key, and a service key is never
//! a token: the WebSocket and the user API verify JWTs only.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};

use super::bearer_token;
use crate::error::{Error, Result};

/// The shortest key accepted at start: 32 characters of hex are 128 bits.
const MIN_KEY: usize = 32;

/// The digests of the configured keys.
pub struct ServiceKeys {
    digests: Vec<[u8; 32]>,
}

/// A request from the host's backend, authenticated by one of the service keys.
#[derive(Debug, Clone, Copy)]
pub struct ServiceCaller;

impl ServiceKeys {
    /// From `PARLEY_SERVICE_KEYS`; a key shorter than 32 characters stops the start.
    pub fn new(keys: &[String]) -> Result<ServiceKeys> {
        let mut digests = Vec::with_capacity(keys.len());
        for key in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
            if key.len() < MIN_KEY {
                return Err(Error::bad_request(format!(
                    "a service key in PARLEY_SERVICE_KEYS is shorter than {MIN_KEY} characters (fingerprint {})",
                    fingerprint(&digest(key))
                )));
            }
            digests.push(digest(key));
        }
        Ok(ServiceKeys { digests })
    }

    /// Refuses every call when no key is configured: the install is not embedded.
    fn configured(&self) -> Result<()> {
        if self.digests.is_empty() {
            return Err(Error::Forbidden("no service keys are configured (PARLEY_SERVICE_KEYS)".into()));
        }
        Ok(())
    }

    /// Which key `presented` is, if any: its fingerprint.
    fn check(&self, presented: &str) -> Result<String> {
        self.configured()?;
        let presented = digest(presented);
        // Every digest is compared, so that the time taken does not say which matched.
        let matched = self.digests.iter().fold(false, |found, d| found | same(d, &presented));
        if matched {
            Ok(fingerprint(&presented))
        } else {
            Err(Error::Unauthorized("invalid service key: /api/service takes a service key, not a user's token".into()))
        }
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn fingerprint(digest: &[u8; 32]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

impl FromRequest for ServiceCaller {
    type Error = Error;
    type Future = Ready<Result<ServiceCaller>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let checked = (|| {
            let keys = req
                .app_data::<web::Data<ServiceKeys>>()
                .ok_or_else(|| Error::Internal("ServiceKeys is not registered".into()))?;
            keys.configured()?;
            let key = bearer_token(req)
                .ok_or_else(|| Error::Unauthorized("a service key is required: Authorization: Bearer <key>".into()))?;
            let fingerprint = keys.check(key)?;
            log::debug!("service call {} {} with key {fingerprint}", req.method(), req.path());
            metrics::counter!(crate::metrics::SERVICE_CALLS, "key" => fingerprint).increment(1);
            Ok(ServiceCaller)
        })();
        ready(checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_key_opens_and_nothing_else_does() {
        let (old, new) = ("k".repeat(32), "n".repeat(40));
        let keys = ServiceKeys::new(&[old.clone(), new.clone()]).unwrap();
        assert!(keys.check(&old).is_ok());
        assert!(keys.check(&new).is_ok());
        assert!(matches!(keys.check("k"), Err(Error::Unauthorized(_))));
        assert!(ServiceKeys::new(&["short".into()]).is_err());
        assert!(matches!(ServiceKeys::new(&[]).unwrap().check(&old), Err(Error::Forbidden(_))));
    }
}
