//! Checks of the JSON answers the protocol promises: the error shape, timestamps, members,
//! message fields, seqs without gaps. One definition each, for every test that reads them.

use std::collections::HashMap;

use serde_json::Value;

use super::TestUser;

/// The error code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("an error answer, got {body}"))
}

/// `(status, body)` is the protocol's error: that status and exactly `{"error": {code, message}}`
/// with a non-empty message. Returns the message.
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) -> String {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "expected {status} {code}, got {got_status} {body}");
    assert_eq!(body.as_object().map(|o| o.keys().collect::<Vec<_>>()), Some(vec![&"error".to_string()]), "{body}");
    let error = body["error"].as_object().unwrap_or_else(|| panic!("error object: {body}"));
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message"], "{body}");
    assert_eq!(error["code"], code, "{body}");
    let message = error["message"].as_str().expect("message is a string").to_string();
    assert!(!message.trim().is_empty(), "the message says something: {body}");
    message
}

/// A raw answer (status and bytes) is the error `expected` (status, code), with a message.
pub fn assert_raw_error(what: &str, status: u16, body: &[u8], expected: (u16, &str)) {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    assert_eq!((status, value["error"]["code"].as_str().unwrap_or("")), expected, "{what}: {text}");
    assert!(value["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {text}");
}

/// A status and body as the protocol allows them for any request: a 2xx, or a 4xx with
/// `{"error": {"code", "message"}}` whose code matches the status. Never a 5xx.
pub fn check_answer(status: u16, body: &[u8]) -> Result<(), String> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).to_string();
    if (200..300).contains(&status) {
        return Ok(());
    }
    if !(400..500).contains(&status) {
        return Err(format!("status {status}: {}", text()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| format!("status {status}, not JSON: {}", text()))?;
    let code = value["error"]["code"].as_str().ok_or_else(|| format!("status {status}, no error code: {value}"))?;
    let message = value["error"]["message"].as_str().unwrap_or_default();
    if message.trim().is_empty() {
        return Err(format!("status {status}, no error message: {value}"));
    }
    let expected = match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 if code == "archived" => "archived",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_type",
        429 => "rate_limited",
        _ => return Err(format!("status {status} is not one of the protocol's: {value}")),
    };
    if code != expected {
        return Err(format!("status {status} with code {code}: {value}"));
    }
    Ok(())
}

/// `2026-11-21T10:15:30.123Z`: RFC 3339, UTC, exactly three fraction digits; as a `chrono` time.
pub fn timestamp(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = value.as_str().unwrap_or_else(|| panic!("a timestamp is a string, got {value}"));
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 24
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            23 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(shape_ok, "a timestamp looks like 2026-11-21T10:15:30.123Z, got {text}");
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|err| panic!("RFC 3339, got {text}: {err}")).to_utc()
}

/// The member entry of `user_id` in a Conversation.
pub fn member<'a>(conversation: &'a Value, user_id: &str) -> &'a Value {
    conversation["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members is an array: {conversation}"))
        .iter()
        .find(|m| m["user_id"] == user_id)
        .unwrap_or_else(|| panic!("{user_id} should be a member of {conversation}"))
}

/// The user ids of a Conversation's members, sorted.
pub fn member_ids(conversation: &Value) -> Vec<String> {
    let mut ids: Vec<String> = conversation["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members is an array: {conversation}"))
        .iter()
        .map(|m| m["user_id"].as_str().expect("user_id").to_string())
        .collect();
    ids.sort();
    ids
}

/// The ids of `users`, sorted (to compare with [`member_ids`]).
pub fn sorted_ids(users: &[&TestUser]) -> Vec<String> {
    sorted(&users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>())
}

pub fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

/// The ids of a list page, in order.
pub fn listed_ids(page: &Value) -> Vec<String> {
    page["conversations"]
        .as_array()
        .unwrap_or_else(|| panic!("conversations is an array: {page}"))
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

pub fn messages_path(conversation: &str) -> String {
    format!("/api/conversations/{conversation}/messages")
}

/// The seqs of a `{messages: [...]}` page.
pub fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("a page, got {page}"))
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect()
}

/// The fields of a `Message`, exactly.
pub const MESSAGE_FIELDS: [&str; 8] =
    ["body", "client_id", "conversation_id", "created_at", "id", "kind", "sender_id", "seq"];

/// Checks every field of a text `Message` (docs/PROTOCOL.md, REST, and its conventions).
pub fn assert_message(
    message: &Value,
    conversation: &str,
    seq: i64,
    sender: &TestUser,
    body: &str,
    client_id: Option<&str>,
) {
    let mut fields: Vec<&str> = message.as_object().expect("a Message object").keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, MESSAGE_FIELDS, "the fields of a Message: {message}");
    let id = message["id"].as_str().expect("id is a string");
    let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("id {id} is a UUID: {e}"));
    assert_eq!(uuid.get_version_num(), 7, "message ids are UUID v7: {id}");
    assert_eq!(id.as_bytes()[14], b'7', "the version nibble of {id}");
    assert_eq!(message["conversation_id"], conversation);
    assert_eq!(message["seq"], seq);
    assert_eq!(message["sender_id"], sender.id.as_str());
    assert_eq!(message["kind"], "text");
    assert_eq!(message["body"], body);
    match client_id {
        Some(client_id) => assert_eq!(message["client_id"], client_id),
        None => assert_eq!(message["client_id"], Value::Null, "client_id is null when none was sent"),
    }
    timestamp(&message["created_at"]);
}

/// The seqs of `messages` are 1..n, without a gap.
pub fn assert_gapless(messages: &[Value], conversation: &str) {
    let seqs: Vec<i64> = messages.iter().map(|m| m["seq"].as_i64().expect("seq")).collect();
    let expected: Vec<i64> = (1..=messages.len() as i64).collect();
    assert_eq!(seqs, expected, "conversation {conversation}: seqs are 1..n without gaps");
}

/// Checks that the seqs are 1..n, without a gap or a duplicate, and that no client_id is stored
/// twice; returns the messages by client_id.
pub fn check_history(history: &[Value]) -> HashMap<String, Value> {
    let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().expect("seq")).collect();
    let expected: Vec<i64> = (1..=history.len() as i64).collect();
    assert_eq!(seqs, expected, "seqs run 1..n without gaps or duplicates");
    let mut by_client = HashMap::new();
    for message in history {
        if let Some(client_id) = message["client_id"].as_str() {
            let first = by_client.insert(client_id.to_string(), message.clone());
            assert!(first.is_none(), "client_id {client_id} is stored twice: {first:?} and {message}");
        }
    }
    by_client
}
