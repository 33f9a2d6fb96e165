//! What a display name may hold. A name is shown to other people beside what its owner writes,
//! so it must not be able to pass for something else: no control characters, no bidirectional
//! overrides or isolates (which reorder the text around them: U+202E then "gnp.exe" reads "exe.png"), and
//! not only invisible characters (a name nobody can see or tell apart).
//!
//! Names chosen at registration are refused with a clear message; names that come in an
//! identity system's token are cleaned instead, since a valid token is not refused for its name.

use crate::error::{Error, Result};

/// The longest display name, in characters.
pub const MAX_CHARS: usize = 64;

/// Characters that change the direction of the text around them (Unicode bidi embeddings,
/// overrides and isolates, and the implicit marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that take no space and show nothing, alone or between others.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{034F}'
                | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{180E}'
        )
}

/// A display name chosen by its owner: trimmed, then checked. `Ok(None)` for an empty one (the
/// caller uses the username).
pub fn check(raw: &str) -> Result<Option<String>> {
    let name = raw.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > MAX_CHARS {
        return Err(Error::bad_request(format!("a display name is at most {MAX_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::bad_request("a display name must not contain control characters"));
    }
    if name.chars().any(is_bidi_control) {
        return Err(Error::bad_request(
            "a display name must not contain bidirectional controls (U+202A-202E, U+2066-2069)",
        ));
    }
    if name.chars().all(is_invisible) {
        return Err(Error::bad_request("a display name must have a visible character"));
    }
    Ok(Some(name.to_string()))
}

/// A display name from a token: what [`check`] would refuse is dropped; `None` when nothing
/// visible is left.
pub fn clean(raw: &str) -> Option<String> {
    let kept: String = raw.chars().filter(|&c| !c.is_control() && !is_bidi_control(c)).take(MAX_CHARS).collect();
    let kept = kept.trim();
    (!kept.chars().all(is_invisible)).then(|| kept.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass_and_empty_ones_mean_the_username() {
        assert_eq!(check("  Ada Lovelace ").unwrap().as_deref(), Some("Ada Lovelace"));
        assert_eq!(check("مريم").unwrap().as_deref(), Some("مريم"));
        assert_eq!(check("👩‍💻 Ada").unwrap().as_deref(), Some("👩‍💻 Ada"), "a joiner inside an emoji is fine");
        assert_eq!(check("   ").unwrap(), None);
    }

    #[test]
    fn disguises_are_refused() {
        for bad in ["evil\u{202E}gnp.exe", "a\u{2067}b", "\u{200B}\u{200B}", "\u{3164}", "tab\there", "bell\u{7}"] {
            assert!(check(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn token_names_are_cleaned() {
        assert_eq!(clean("evil\u{202E}gnp.exe").as_deref(), Some("evilgnp.exe"));
        assert_eq!(clean("\u{200B}\u{0}"), None);
        assert_eq!(clean("Ada").as_deref(), Some("Ada"));
    }
}
