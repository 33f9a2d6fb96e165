//! Built-in accounts: what a username and a password may be, and Argon2id hashing.
//!
//! A password is refused when it is among the most guessable ones: the ranked lists (common
//! passwords, words, names) and patterns of `zxcvbn`, Dropbox's estimator, which ships them
//! in the crate; and when it is the username.
//!
//! Hashing is deliberately slow (tens of milliseconds), so callers run it on a blocking thread
//! (`web::block`), never on a thread that serves connections.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::error::{Error, Result};

/// A username is 3 to 32 characters of `a-z 0-9 . _ -` (PROTOCOL.md §1). Letters are folded to
/// lowercase first, so "Alice" registers (and signs in) as "alice": unique without regard to case.
pub fn normalize_username(raw: &str) -> Result<String> {
    let name = raw.to_ascii_lowercase();
    let valid_chars =
        name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !(3..=32).contains(&name.len()) || !valid_chars {
        return Err(Error::bad_request("a username is 3 to 32 characters of a-z, 0-9, '.', '_' and '-'"));
    }
    Ok(name)
}

/// A password `zxcvbn` expects to guess within this many tries is too common: the top ten
/// thousand or so of its lists, with their usual variations (capitals, digits appended, the
/// username).
const MIN_GUESSES: u64 = 10_000;

/// A password is 8 to 256 characters, neither the username nor one of the most common ones.
pub fn check_password(password: &str, username: &str) -> Result<()> {
    if !(8..=256).contains(&password.chars().count()) {
        return Err(Error::bad_request("a password is 8 to 256 characters"));
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(Error::bad_request("a password must not be the username"));
    }
    if zxcvbn::zxcvbn(password, &[username]).guesses() < MIN_GUESSES {
        return Err(Error::bad_request("this password is too common: choose a longer or less usual one"));
    }
    Ok(())
}

/// An Argon2id hash in PHC string form, with a fresh random salt.
pub fn hash(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| Error::Internal(format!("password hashing: {err}")))
}

/// Does `password` match `hash`? A malformed hash counts as no match.
pub fn verify(password: &str, hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_folded_and_checked() {
        assert_eq!(normalize_username("Alice.B-2_x").unwrap(), "alice.b-2_x");
        for bad in ["ab", "a b", "émile", "x".repeat(33).as_str(), "semi;colon"] {
            assert!(normalize_username(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn common_passwords_and_the_username_are_refused() {
        for common in ["password", "12345678", "password123", "Password1", "qwertyuiop", "iloveyou"] {
            assert!(check_password(common, "ada").is_err(), "{common:?} should be refused");
        }
        assert!(check_password("ada.lovelace", "ada.lovelace").is_err());
        assert!(check_password("ADA.LOVELACE", "ada.lovelace").is_err());
        assert!(check_password("orchid-lantern-42", "ada").is_ok());
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("anything", "not a hash"));
    }
}
