//! The rules of what a client may ask, each in one place: the send checks, group titles and
//! sizes, page sizes, and the checks of what the host gives (ids, contexts, metadata, URLs).
//! (What system messages say is in `system_messages`.)
//! REST handlers, WebSocket sessions and the conversation actor all call these functions, so a
//! limit (PROTOCOL.md §4) is parsed and enforced the same way whichever door a request took.

use crate::config::Limits;
use crate::error::{Error, Result};
use crate::protocol::{Context, check_text};
use crate::rate_limit::RateLimiter;
use crate::types::{AttachmentId, UserId};

/// The longest `client_id` accepted.
const MAX_CLIENT_ID: usize = 128;
/// The longest group title, in characters.
const MAX_TITLE: usize = 100;
/// Conversations per list page when the client does not say.
const DEFAULT_CONVERSATIONS: i64 = 20;
/// Users per directory page when the client does not say.
const DEFAULT_USERS: i64 = 20;

/// The checks of a send made before it reaches the conversation's actor: body and client_id
/// sizes, then the sender's rate on this node (the cluster-wide rate is the committer's).
pub fn check_send(
    limits: &Limits,
    rate: &RateLimiter,
    sender: UserId,
    body: &str,
    client_id: Option<&str>,
    attachments: &[AttachmentId],
) -> Result<()> {
    check_message(limits, body, client_id, attachments)?;
    rate.check(sender)
}

/// What a message may be, whoever sends it: its body, its `client_id`, its files.
pub fn check_message(limits: &Limits, body: &str, client_id: Option<&str>, attachments: &[AttachmentId]) -> Result<()> {
    let max = limits.max_message_chars;
    check_text("body", body)?;
    if let Some(client_id) = client_id {
        check_text("client_id", client_id)?;
    }
    // A message may be files alone (the photo says it all).
    if body.trim().is_empty() && attachments.is_empty() {
        return Err(Error::bad_request("body must not be empty"));
    }
    let most = limits.max_attachments_per_message;
    if attachments.len() > most {
        return Err(Error::bad_request(format!("a message has at most {most} attachments")));
    }
    if attachments.iter().enumerate().any(|(i, id)| attachments[..i].contains(id)) {
        return Err(Error::bad_request("an attachment is listed twice"));
    }
    if body.chars().count() > max {
        return Err(Error::PayloadTooLarge(format!("body is longer than {max} characters")));
    }
    if let Some(client_id) = client_id
        && (client_id.is_empty() || client_id.len() > MAX_CLIENT_ID)
    {
        return Err(Error::bad_request(format!("client_id must be 1 to {MAX_CLIENT_ID} bytes")));
    }
    Ok(())
}

/// A group's title, trimmed, if it is one.
pub fn group_title(title: &str) -> Result<&str> {
    let title = title.trim();
    check_text("title", title)?;
    if title.is_empty() || title.chars().count() > MAX_TITLE {
        return Err(Error::bad_request(format!("a title is 1 to {MAX_TITLE} characters")));
    }
    Ok(title)
}

/// May a group have `members` members (its owner included)? At creation and at each addition.
pub fn group_size(limits: &Limits, members: usize) -> Result<()> {
    let max = limits.max_group_members;
    if members > max {
        return Err(Error::bad_request(format!("a group has at most {max} members")));
    }
    Ok(())
}

/// Messages per page, from a client's `limit` (history, `conversation:join`, `sync`).
pub fn messages_page(limits: &Limits, requested: Option<i64>) -> Result<i64> {
    page_size(requested, limits.page_default, limits.page_max)
}

/// Conversations per list page, from a client's `limit`.
pub fn conversations_page(limits: &Limits, requested: Option<i64>) -> Result<i64> {
    let max = limits.max_batch as i64;
    page_size(requested, DEFAULT_CONVERSATIONS.min(max), max)
}

/// Users per directory page, from a client's `limit`.
pub fn users_page(limits: &Limits, requested: Option<i64>) -> Result<i64> {
    let max = limits.max_batch as i64;
    page_size(requested, DEFAULT_USERS.min(max), max)
}

/// `default` when the client does not say, else 1 to `max`.
fn page_size(requested: Option<i64>, default: i64, max: i64) -> Result<i64> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(Error::bad_request(format!("limit must be between 1 and {max}"))),
    }
}

/// The longest context type or id (bytes).
const MAX_CONTEXT_PART: usize = 128;
/// The largest host metadata object and custom event payload, serialised.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
const MAX_URL: usize = 2048;

/// A host's id of a user: 1 to 255 bytes, no control characters.
pub use crate::protocol::check_external_id as external_id;

/// A business object: its type and id, 1 to 128 bytes each, no control characters.
pub fn context(context: &Context) -> Result<()> {
    host_key("context.type", &context.kind, MAX_CONTEXT_PART)?;
    host_key("context.id", &context.id, MAX_CONTEXT_PART)
}

fn host_key(field: &str, text: &str, max: usize) -> Result<()> {
    if text.is_empty() || text.len() > max || text.chars().any(char::is_control) {
        return Err(Error::bad_request(format!("{field} is 1 to {max} bytes without control characters")));
    }
    Ok(())
}

/// The host's free metadata: a JSON object, at most 16 KiB once serialised, without NUL; as it
/// is stored.
pub fn metadata(value: &serde_json::Value) -> Result<String> {
    if !value.is_object() {
        return Err(Error::bad_request("metadata is a JSON object"));
    }
    let text = value.to_string();
    if text.len() > MAX_METADATA_BYTES {
        return Err(Error::bad_request(format!("metadata is at most {MAX_METADATA_BYTES} bytes")));
    }
    check_text("metadata", &text)?;
    Ok(text)
}

/// An avatar's address: `https://` or `http://`, at most 2 KiB, no spaces or control characters
/// (a `javascript:` or `data:` URL in an `<img>` is the classic injection).
pub fn avatar_url(url: &str) -> Result<&str> {
    let web = url.starts_with("https://") || url.starts_with("http://");
    if !web || url.len() > MAX_URL || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::bad_request(format!("avatar_url is an http(s) URL of at most {MAX_URL} bytes")));
    }
    Ok(url)
}

/// A custom event's payload: any JSON, at most 16 KiB.
pub fn event_payload(payload: &serde_json::value::RawValue) -> Result<()> {
    if payload.get().len() > MAX_METADATA_BYTES {
        return Err(Error::PayloadTooLarge(format!("payload is at most {MAX_METADATA_BYTES} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        crate::config::Config::from_env().limits
    }

    #[test]
    fn a_page_is_the_default_when_absent_and_bounded_otherwise() {
        assert_eq!(page_size(None, 20, 100).unwrap(), 20);
        assert_eq!(page_size(Some(1), 20, 100).unwrap(), 1);
        assert_eq!(page_size(Some(100), 20, 100).unwrap(), 100);
        for bad in [0, -1, 101] {
            let err = page_size(Some(bad), 20, 100).unwrap_err();
            assert_eq!(err.to_string(), Error::bad_request("limit must be between 1 and 100").to_string());
        }
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(group_title("  team  ").unwrap(), "team");
        assert!(group_title("   ").is_err());
        assert!(group_title(&"x".repeat(MAX_TITLE + 1)).is_err());
        assert!(group_title("a\0b").is_err());
    }

    #[test]
    fn what_the_host_gives_is_bounded() {
        assert!(external_id("42").is_ok());
        assert!(external_id("").is_err());
        assert!(external_id(&"x".repeat(256)).is_err());
        assert!(external_id("a\nb").is_err());
        assert!(metadata(&serde_json::json!({"a": 1})).is_ok());
        assert!(metadata(&serde_json::json!([1])).is_err());
        assert!(avatar_url("https://cdn.example.com/a.png").is_ok());
        assert!(avatar_url("javascript:alert(1)").is_err());
        assert!(context(&Context { kind: "appointment".into(), id: "A-1029".into() }).is_ok());
        assert!(context(&Context { kind: String::new(), id: "A".into() }).is_err());
    }

    #[test]
    fn a_group_holds_at_most_the_limit_owner_included() {
        let limits = limits();
        let max = limits.max_group_members;
        assert!(group_size(&limits, max).is_ok());
        assert!(group_size(&limits, max + 1).is_err());
    }
}
