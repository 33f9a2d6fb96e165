//! Signed, expiring links to attachments (docs/SECURITY.md, "Files").
//!
//! An `<img>` cannot send a Bearer header, so the `url` of an attachment in a message carries
//! its own proof: `?expires=<unix seconds>&signature=<HMAC-SHA256>` over the attachment, the
//! variant and the expiry, with a key derived from the token secret (which the nodes of a
//! cluster share). A leaked link stops working when it expires, or at once when the file is
//! deleted (the download looks the attachment up every time).
//!
//! Expiry times are rounded up to a quarter of the lifetime: every copy of a message serialised
//! within the same quarter carries the same links, so one frame serves every recipient and the
//! browser's cache keeps a thumbnail across reloads. A link lives between one and one and a
//! quarter lifetimes.
//!
//! The key is process-wide, installed once at start (like the metrics recorder): links are made
//! wherever a message is serialised, and no path can forget to sign them.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::types::{AttachmentId, Timestamp};

type HmacSha256 = Hmac<Sha256>;

/// Which bytes of an attachment a link serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail,
}

impl Variant {
    fn path_suffix(self) -> &'static str {
        match self {
            Variant::Original => "",
            Variant::Thumbnail => "/thumbnail",
        }
    }
}

struct Signer {
    key: [u8; 32],
    lifetime_secs: i64,
}

static SIGNER: OnceLock<Signer> = OnceLock::new();

/// Sets the key (derived from the token `secret`) and the links' lifetime; the first call wins.
pub fn install(secret: &str, lifetime: Duration) {
    let mut derive = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    derive.update(b"parley attachment links v1");
    let key = derive.finalize().into_bytes().into();
    let lifetime_secs = lifetime.as_secs().clamp(60, 7 * 86_400) as i64;
    let _ = SIGNER.set(Signer { key, lifetime_secs });
}

/// The link to `variant` of attachment `id`, relative to the server: signed once [`install`]ed
/// (always, in the server), else bare (a Bearer header then opens it).
pub fn link(id: AttachmentId, variant: Variant) -> String {
    let path = format!("/api/attachments/{id}{}", variant.path_suffix());
    let Some(signer) = SIGNER.get() else {
        return path;
    };
    let step = (signer.lifetime_secs / 4).max(1);
    let now = Timestamp::now().micros() / 1_000_000;
    let expires = ((now + signer.lifetime_secs) as u64).div_ceil(step as u64) as i64 * step;
    format!("{path}?expires={expires}&signature={}", signer.sign(id, variant, expires))
}

/// Does this signature open `variant` of `id` now?
pub fn verify(id: AttachmentId, variant: Variant, expires: i64, signature: &str) -> Result<()> {
    let refused = || Error::NotFound("no such attachment (or the link has expired)".into());
    let signer = SIGNER.get().ok_or_else(refused)?;
    if expires < Timestamp::now().micros() / 1_000_000 {
        return Err(refused());
    }
    let given = URL_SAFE_NO_PAD.decode(signature).map_err(|_| refused())?;
    // `verify_slice` compares in constant time.
    signer.mac(id, variant, expires).verify_slice(&given).map_err(|_| refused())
}

impl Signer {
    fn mac(&self, id: AttachmentId, variant: Variant, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.0.as_bytes());
        mac.update(&[variant as u8]);
        mac.update(&expires.to_be_bytes());
        mac
    }

    fn sign(&self, id: AttachmentId, variant: Variant, expires: i64) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(id, variant, expires).finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(link: &str) -> (i64, String) {
        let (_, query) = link.split_once('?').unwrap();
        let (expires, signature) = query.split_once('&').unwrap();
        (expires.trim_start_matches("expires=").parse().unwrap(), signature.trim_start_matches("signature=").into())
    }

    #[test]
    fn a_link_opens_its_own_file_and_variant_only() {
        install("a test secret of some length", Duration::from_secs(3600));
        let id = AttachmentId::random();
        let link = link(id, Variant::Original);
        assert!(link.starts_with(&format!("/api/attachments/{id}?expires=")));
        let (expires, signature) = query(&link);
        verify(id, Variant::Original, expires, &signature).unwrap();
        assert!(verify(id, Variant::Thumbnail, expires, &signature).is_err());
        assert!(verify(AttachmentId::random(), Variant::Original, expires, &signature).is_err());
        assert!(verify(id, Variant::Original, expires + 1, &signature).is_err());
        assert!(verify(id, Variant::Original, expires, "garbage!").is_err());
        // Signed for the past: refused even with a right signature.
        let signer = SIGNER.get().unwrap();
        let past = Timestamp::now().micros() / 1_000_000 - 10;
        assert!(verify(id, Variant::Original, past, &signer.sign(id, Variant::Original, past)).is_err());
        // Links made within the same quarter of the lifetime are the same.
        assert_eq!(link, super::link(id, Variant::Original));
    }
}
