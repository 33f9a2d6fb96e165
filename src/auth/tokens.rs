//! JWTs (PROTOCOL.md §1): issued as HS256 with the server's secret for built-in accounts, and
//! verified as HS256 or, when a public key is configured, as that key's algorithm (RS256 or
//! EdDSA). The algorithm comes from the key, never from the token: `alg: none` and every
//! algorithm other than the configured ones are refused. So is a header with `crit` (we
//! understand no extension, and RFC 7515 §4.1.11 says a token naming one we do not understand
//! is invalid), and a token that lives longer than `PARLEY_TOKEN_MAX_LIFETIME_SECS`.

use std::io::Write;
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::DatabaseUrl;
use crate::types::UserId;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

/// What a valid token says.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user: UserId,
    pub name: Option<String>,
    pub admin: bool,
    /// Unix seconds; a WebSocket is closed with 4001 then.
    pub expires_at: i64,
    /// Unix seconds (`iat`); `None` when the token does not say. Compared with the user's
    /// sign-out-everywhere time (`auth::revocation`).
    pub issued_at: Option<i64>,
}

pub struct Keys {
    encoding: EncodingKey,
    hs256: DecodingKey,
    public: Option<(Algorithm, DecodingKey)>,
    ttl_secs: i64,
    max_lifetime_secs: i64,
}

impl Keys {
    /// `ttl_secs`: the lifetime of the tokens issued here; `max_lifetime_secs`: the longest
    /// accepted (it cannot be shorter than the first, or our own tokens would be refused).
    pub fn new(secret: &str, public_key: Option<&Path>, ttl_secs: u64, max_lifetime_secs: u64) -> Result<Keys> {
        if ttl_secs > max_lifetime_secs {
            return Err(Error::bad_request(format!(
                "PARLEY_TOKEN_TTL_SECS ({ttl_secs}) is longer than PARLEY_TOKEN_MAX_LIFETIME_SECS ({max_lifetime_secs})"
            )));
        }
        let public = match public_key {
            None => None,
            Some(path) => Some(read_public_key(path)?),
        };
        Ok(Keys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            hs256: DecodingKey::from_secret(secret.as_bytes()),
            public,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
            max_lifetime_secs: i64::try_from(max_lifetime_secs).unwrap_or(i64::MAX),
        })
    }

    /// A token for a built-in account. `not_before` is the account's sign-out-everywhere time
    /// (unix seconds): a token issued in that same second says it was issued then, so that it
    /// is not mistaken for one of those signed out.
    pub fn issue(&self, user: UserId, name: &str, admin: bool, not_before: Option<i64>) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let issued = not_before.map_or(now, |t| now.max(t));
        let claims = Claims {
            sub: user.to_string(),
            exp: now.saturating_add(self.ttl_secs),
            iat: Some(issued),
            name: Some(name.to_string()),
            role: admin.then(|| "admin".to_string()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|err| Error::Internal(format!("token signing: {err}")))
    }

    pub fn verify(&self, token: &str) -> Result<Verified> {
        let unauthorized = |why: &str| Error::Unauthorized(format!("invalid token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("malformed"))?;
        // `crit` lists extensions the token's reader must understand; this server understands
        // none (and an empty list is not allowed either), so any `crit` makes the token invalid.
        if header.crit.is_some() {
            return Err(unauthorized("crit names an extension this server does not understand"));
        }
        let key = match (&self.public, header.alg) {
            (_, Algorithm::HS256) => &self.hs256,
            (Some((alg, key)), used) if *alg == used => key,
            _ => return Err(unauthorized("algorithm not accepted")),
        };
        let mut validation = Validation::new(header.alg);
        // Valid only *before* `exp` (RFC 7519 §4.1.4): jsonwebtoken alone would still accept the
        // token during the second that `exp` names.
        validation.leeway = 0;
        validation.reject_tokens_expiring_in_less_than = 1;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            match err.kind() {
                ErrorKind::ExpiredSignature => unauthorized("expired"),
                ErrorKind::ImmatureSignature => unauthorized("not valid yet"),
                ErrorKind::InvalidSignature => unauthorized("wrong signature"),
                ErrorKind::MissingRequiredClaim(claim) => unauthorized(&format!("no {claim} claim")),
                _ => unauthorized("malformed"),
            }
        })?;
        let claims = data.claims;
        let now = chrono::Utc::now().timestamp();
        let lifetime = claims.exp.saturating_sub(claims.iat.map_or(now, |iat| iat.min(now)));
        if lifetime > self.max_lifetime_secs {
            return Err(unauthorized("lives longer than this server accepts"));
        }
        let user = claims.sub.parse().map_err(|_| unauthorized("sub is not a UUID"))?;
        Ok(Verified {
            user,
            // A name that could disguise itself is cleaned, not a reason to refuse a valid token.
            name: claims.name.as_deref().and_then(super::display_name::clean),
            admin: claims.role.as_deref() == Some("admin"),
            expires_at: claims.exp,
            issued_at: claims.iat,
        })
    }
}

fn read_public_key(path: &Path) -> Result<(Algorithm, DecodingKey)> {
    let pem = std::fs::read(path)
        .map_err(|err| Error::bad_request(format!("cannot read the public key {}: {err}", path.display())))?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((Algorithm::RS256, key));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        return Ok((Algorithm::EdDSA, key));
    }
    Err(Error::bad_request(format!("{} is neither an RSA nor an Ed25519 public key in PEM", path.display())))
}

/// The HS256 secret: the configured one; else, on SQLite, the one kept beside the database
/// (created at first start, readable by its owner only); on PostgreSQL a secret is required,
/// since several nodes must share it.
pub fn resolve_secret(configured: Option<String>, database: &DatabaseUrl) -> Result<String> {
    if let Some(secret) = configured {
        if secret.len() < 16 {
            log::warn!("PARLEY_JWT_SECRET is shorter than 16 bytes: tokens are easy to forge");
        }
        return Ok(secret);
    }
    let db_path = match database {
        DatabaseUrl::Sqlite(path) => path,
        DatabaseUrl::Postgres(_) => {
            return Err(Error::bad_request("PARLEY_JWT_SECRET is required with PostgreSQL"));
        }
    };
    let path = PathBuf::from(format!("{db_path}.jwt-secret"));
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_string()),
        Ok(_) => return Err(Error::bad_request(format!("{} is empty", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(Error::bad_request(format!("cannot read {}: {err}", path.display())));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| Error::Internal(format!("no randomness: {err}")))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret)
        .map_err(|err| Error::bad_request(format!("cannot write {}: {err}", path.display())))?;
    log::info!("generated a token secret in {} (mode 0600); keep it with the database", path.display());
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_carry_the_role() {
        let keys = Keys::new("a test secret of some length", None, 60, 60).unwrap();
        let user = UserId(uuid::Uuid::new_v4());
        let verified = keys.verify(&keys.issue(user, "Ada", true, None).unwrap()).unwrap();
        assert_eq!(verified.user, user);
        assert!(verified.admin);
        assert_eq!(verified.name.as_deref(), Some("Ada"));
    }

    #[test]
    fn other_secrets_and_garbage_are_refused() {
        let keys = Keys::new("a test secret of some length", None, 60, 60).unwrap();
        let other = Keys::new("another secret entirely", None, 60, 60).unwrap();
        let token = other.issue(UserId(uuid::Uuid::new_v4()), "x", false, None).unwrap();
        assert!(matches!(keys.verify(&token), Err(Error::Unauthorized(_))));
        assert!(matches!(keys.verify("garbage"), Err(Error::Unauthorized(_))));
    }
}
