//! JWTs (PROTOCOL.md §1): issued as HS256 with the server's secret for built-in accounts, and
//! verified as HS256 or, when a public key is configured, as that key's algorithm (RS256 or
//! EdDSA). The algorithm comes from the key, never from the token: `alg: none` and every
//! algorithm other than the configured ones are refused. So is a header with `crit` (we
//! understand no extension, and RFC 7515 §4.1.11 says a token naming one we do not understand
//! is invalid), and a token that lives longer than `PARLEY_TOKEN_MAX_LIFETIME_SECS`.

use std::io::Write;
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::DatabaseUrl;
use crate::types::UserId;

/// The claims of the tokens this server issues.
#[derive(Debug, Serialize)]
struct Claims {
    /// `parley`: a token of ours, whose `sub` is a Parley user id whatever the host's claims are.
    iss: &'static str,
    sub: String,
    exp: i64,
    iat: i64,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
}

/// The issuer of the tokens this server issues.
const ISSUER: &str = "parley";

/// Who a token is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A Parley user id (`sub`).
    Id(UserId),
    /// The host's own id of its user (`PARLEY_TOKEN_EXTERNAL_ID_CLAIM`).
    External(String),
}

/// How the host's tokens name their user and their display name (docs/PROTOCOL.md §1.2).
#[derive(Debug, Clone)]
pub struct ClaimNames {
    pub external_id: Option<String>,
    pub name: String,
}

/// What a valid token says.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: Subject,
    pub name: Option<String>,
    pub admin: bool,
    /// Unix seconds; a WebSocket is closed with 4001 then.
    pub expires_at: i64,
    /// Unix seconds (`iat`); `None` when the token does not say. Compared with the user's
    /// sign-out-everywhere time (`auth::revocation`).
    pub issued_at: Option<i64>,
}

pub struct Keys {
    claims: ClaimNames,
    encoding: EncodingKey,
    hs256: DecodingKey,
    public: Option<(Algorithm, DecodingKey)>,
    ttl_secs: i64,
    max_lifetime_secs: i64,
}

impl Keys {
    /// `ttl_secs`: the lifetime of the tokens issued here; `max_lifetime_secs`: the longest
    /// accepted (it cannot be shorter than the first, or our own tokens would be refused).
    pub fn new(
        secret: &str,
        public_key: Option<&Path>,
        ttl_secs: u64,
        max_lifetime_secs: u64,
        claims: ClaimNames,
    ) -> Result<Keys> {
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
            claims,
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
            iss: ISSUER,
            sub: user.to_string(),
            exp: now.saturating_add(self.ttl_secs),
            iat: issued,
            name: name.to_string(),
            role: admin.then_some("admin"),
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
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, &validation).map_err(|err| {
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
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let exp = number("exp").ok_or_else(|| unauthorized("exp is not a number"))?;
        let iat = match claims.get("iat") {
            None => None,
            Some(iat) => Some(iat.as_i64().ok_or_else(|| unauthorized("iat is not a number"))?),
        };
        let now = chrono::Utc::now().timestamp();
        let lifetime = exp.saturating_sub(iat.map_or(now, |iat| iat.min(now)));
        if lifetime > self.max_lifetime_secs {
            return Err(unauthorized("lives longer than this server accepts"));
        }
        // Only this server signs HS256 tokens with `iss: parley` for its own accounts; an
        // identity system's key (RS256, EdDSA) cannot claim to be this server.
        let ours = text("iss") == Some(ISSUER) && header.alg == Algorithm::HS256;
        let subject = match &self.claims.external_id {
            // The host's own token: its claim names the user by the host's id. Parley's admin
            // role is for operators, so such a token never carries it, whatever its `role` says.
            Some(claim) if !ours => {
                let id = match claims.get(claim) {
                    Some(Value::String(id)) => id.clone(),
                    Some(Value::Number(id)) if id.is_i64() || id.is_u64() => id.to_string(),
                    Some(_) => return Err(unauthorized(&format!("{claim} is not a string or an integer"))),
                    None => return Err(unauthorized(&format!("no {claim} claim"))),
                };
                crate::protocol::check_external_id(&id).map_err(|_| unauthorized(&format!("{claim} is not an id")))?;
                Subject::External(id)
            }
            _ => {
                let sub = text("sub").ok_or_else(|| unauthorized("no sub claim"))?;
                Subject::Id(sub.parse().map_err(|_| unauthorized("sub is not a UUID"))?)
            }
        };
        let admin = matches!(subject, Subject::Id(_)) && text("role") == Some("admin");
        Ok(Verified {
            subject,
            // A name that could disguise itself is cleaned, not a reason to refuse a valid token.
            name: text(&self.claims.name).and_then(super::display_name::clean),
            admin,
            expires_at: exp,
            issued_at: iat,
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

    fn keys_for(secret: &str) -> Keys {
        Keys::new(secret, None, 60, 60, ClaimNames { external_id: Some("userId".into()), name: "name".into() }).unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_role() {
        let keys = keys_for("a test secret of some length");
        let user = UserId(uuid::Uuid::new_v4());
        let verified = keys.verify(&keys.issue(user, "Ada", true, None).unwrap()).unwrap();
        assert_eq!(verified.subject, Subject::Id(user));
        assert!(verified.admin);
        assert_eq!(verified.name.as_deref(), Some("Ada"));
    }

    #[test]
    fn other_secrets_and_garbage_are_refused() {
        let keys = keys_for("a test secret of some length");
        let other = keys_for("another secret entirely");
        let token = other.issue(UserId(uuid::Uuid::new_v4()), "x", false, None).unwrap();
        assert!(matches!(keys.verify(&token), Err(Error::Unauthorized(_))));
        assert!(matches!(keys.verify("garbage"), Err(Error::Unauthorized(_))));
    }

    #[test]
    fn a_hosts_token_names_its_user_by_the_hosts_id_and_is_never_admin() {
        let keys = keys_for("a test secret of some length");
        let now = chrono::Utc::now().timestamp();
        let sign = |claims: Value| {
            let key = EncodingKey::from_secret(b"a test secret of some length");
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
        };
        let token = sign(serde_json::json!({"userId": 42, "role": "admin", "name": "Camille", "exp": now + 60}));
        let verified = keys.verify(&token).unwrap();
        assert_eq!(verified.subject, Subject::External("42".into()));
        assert!(!verified.admin);
        assert_eq!(verified.name.as_deref(), Some("Camille"));
        let token = sign(serde_json::json!({"sub": "x", "exp": now + 60}));
        assert!(matches!(keys.verify(&token), Err(Error::Unauthorized(m)) if m.contains("no userId claim")));
    }
}
