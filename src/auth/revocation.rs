//! Sign-out everywhere: each user has a "valid after" time (`users.tokens_valid_after`), and a
//! token issued before it is refused, on REST at every request and on an open WebSocket at
//! every `PARLEY_REVOCATION_CHECK_MS` (closed with 4001, as at expiry).
//!
//! Tokens carry their issue time (`iat`) in whole seconds, so the time is kept in whole
//! seconds too: revoking at 12:00:00.4 refuses every token issued up to 12:00:00 included (the
//! valid-after time is 12:00:01), and the tokens issued here during the rest of that second say
//! 12:00:01 (`Keys::issue`'s `not_before`). A token without `iat` cannot show it is recent: once
//! its user has signed out everywhere, it is refused.

use crate::error::{Error, Result};
use crate::store::Store;
use crate::types::{Timestamp, UserId};

const MICROS: i64 = 1_000_000;

/// The valid-after time of a revocation made now: the next whole second.
pub fn revoke_now() -> Timestamp {
    let now = Timestamp::now().micros();
    Timestamp::from_micros((now / MICROS + 1) * MICROS)
}

/// `valid_after` in the unix seconds of `iat`.
pub fn as_secs(valid_after: Timestamp) -> i64 {
    valid_after.micros().div_euclid(MICROS)
}

/// Is a token issued at `issued_at` revoked by the user's `valid_after`?
pub fn is_revoked(valid_after: Option<Timestamp>, issued_at: Option<i64>) -> bool {
    match (valid_after, issued_at) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(after), Some(iat)) => iat < as_secs(after),
    }
}

/// Signs `user` out everywhere: every token issued until now stops working.
pub async fn revoke(store: &Store, user: UserId) -> Result<()> {
    store.set_tokens_valid_after(user, revoke_now()).await
}

/// Is a token of `user` issued at `issued_at` still good? (An open WebSocket asks.)
pub async fn still_valid(store: &Store, user: UserId, issued_at: Option<i64>) -> Result<bool> {
    let valid_after = store.tokens_valid_after(user).await?.flatten();
    Ok(!is_revoked(valid_after, issued_at))
}

/// The error for a revoked token, counted.
pub fn revoked() -> Error {
    metrics::counter!(crate::metrics::TOKENS_REVOKED).increment(1);
    Error::Unauthorized("invalid token: revoked (signed out everywhere)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_issued_before_the_next_second_are_revoked() {
        let after = revoke_now();
        let secs = as_secs(after);
        assert!(secs > chrono::Utc::now().timestamp() - 1);
        assert!(is_revoked(Some(after), Some(secs - 1)));
        assert!(!is_revoked(Some(after), Some(secs)));
        assert!(is_revoked(Some(after), None));
        assert!(!is_revoked(None, None));
    }
}
