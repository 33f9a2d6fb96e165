//! The frame decoder (`ClientFrame::parse`), property-based: any text, almost-JSON, any JSON,
//! random `data` for every command, and every well-formed command. A unit test of
//! `src/protocol.rs` (it is included there as a `#[cfg(test)]` module); the JSON strategies are
//! shared with the server fuzz in `tests/it/random_input.rs`.
//!
//! About 400 lines: the strategies for well-formed commands (`Valid`) and the properties that
//! use them read best together.

#[path = "json.rs"]
mod json;

use json::*;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::protocol::{ClientCommand, ClientFrame, Ref};

/// A `ref` as a client might send one (or should not).
fn reference() -> BoxedStrategy<Option<Value>> {
    prop::option::of(prop_oneof![
        3 => text().prop_map(Value::String),
        2 => number(),
        1 => json_value(),
    ])
    .boxed()
}

/// `data` with the commands' own field names and plausible values, so that the decoder's deeper
/// paths (field types, missing and unknown fields) are reached, not only "not an object".
fn shaped_data() -> BoxedStrategy<Value> {
    let value = prop_oneof![
        2 => any::<u128>().prop_map(|n| Value::String(uuid::Uuid::from_u128(n).to_string())),
        1 => prop::collection::vec(
            (any::<u128>(), number()).prop_map(|(n, seq)| {
                json!({"conversation_id": uuid::Uuid::from_u128(n).to_string(), "after_seq": seq})
            }),
            0..4,
        )
        .prop_map(Value::Array),
        1 => prop::collection::vec(any::<u128>().prop_map(|n| json!(uuid::Uuid::from_u128(n).to_string())), 0..4)
            .prop_map(Value::Array),
        2 => number(),
        2 => text().prop_map(Value::String),
        1 => json_value(),
    ];
    prop::collection::btree_map(prop::sample::select(FIELDS).prop_map(String::from), value, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

/// What every frame must satisfy: parsing returns (no panic: proptest turns one into a failure),
/// and a rejection is `bad_request` with a message a person can read.
fn check_frame(text: &str) -> Result<ClientFrame, TestCaseError> {
    let frame = ClientFrame::parse(text);
    if let Err(err) = &frame.command {
        prop_assert_eq!(err.code(), "bad_request", "{:?} was refused as {:?}", text, err);
        prop_assert!(!err.to_string().trim().is_empty(), "{:?}: an empty error message", text);
    }
    Ok(frame)
}

/// Is `recovered` the `ref` the server must echo for a frame whose `ref` was `sent`? A string or
/// a number comes back as it was; anything else cannot be echoed. (A fraction comes back as
/// the nearest double serde_json reads, which may differ in the 17th digit.)
fn echoes(recovered: Option<&Ref>, sent: Option<&Value>) -> Result<(), TestCaseError> {
    let recovered = recovered.map(|r| serde_json::to_value(r).expect("ref"));
    let expected = sent.filter(|r| r.is_string() || r.is_number());
    match (&recovered, expected) {
        (Some(Value::Number(got)), Some(Value::Number(sent))) if sent.is_f64() => {
            let (got, sent) = (got.as_f64().unwrap_or(f64::NAN), sent.as_f64().unwrap_or(f64::NAN));
            prop_assert!((got - sent).abs() <= sent.abs() * 1e-15, "ref {} came back as {}", sent, got);
        }
        _ => prop_assert_eq!(recovered.as_ref(), expected, "the ref {:?} came back as {:?}", sent, recovered),
    }
    Ok(())
}

fn variant(command: &ClientCommand) -> &'static str {
    match command {
        ClientCommand::MessageSend(_) => "message:send",
        ClientCommand::ConversationJoin(_) => "conversation:join",
        ClientCommand::ConversationLeave(_) => "conversation:leave",
        ClientCommand::TypingStart(_) => "typing:start",
        ClientCommand::TypingStop(_) => "typing:stop",
        ClientCommand::ReadMark(_) => "read:mark",
        ClientCommand::Sync(_) => "sync",
        ClientCommand::PresenceQuery(_) => "presence:query",
        ClientCommand::Ping => "ping",
    }
}

/// A well-formed command, and what the decoder must make of it.
#[derive(Debug, Clone)]
enum Valid {
    Send { conversation: uuid::Uuid, body: String, client_id: Option<String> },
    Join { conversation: uuid::Uuid, limit: Option<i64> },
    Leave(uuid::Uuid),
    TypingStart(uuid::Uuid),
    TypingStop(uuid::Uuid),
    Read { conversation: uuid::Uuid, seq: Option<i64> },
    Sync { cursors: Vec<(uuid::Uuid, i64)>, limit: Option<i64> },
    Presence(Vec<uuid::Uuid>),
    Ping,
}

fn valid_command() -> BoxedStrategy<Valid> {
    prop_oneof![
        (uuid(), any::<String>(), prop::option::of(text())).prop_map(|(conversation, body, client_id)| Valid::Send {
            conversation,
            body,
            client_id
        }),
        (uuid(), prop::option::of(any::<i64>())).prop_map(|(conversation, limit)| Valid::Join { conversation, limit }),
        uuid().prop_map(Valid::Leave),
        uuid().prop_map(Valid::TypingStart),
        uuid().prop_map(Valid::TypingStop),
        (uuid(), prop::option::of(any::<i64>())).prop_map(|(conversation, seq)| Valid::Read { conversation, seq }),
        (prop::collection::vec((uuid(), any::<i64>()), 0..5), prop::option::of(any::<i64>()))
            .prop_map(|(cursors, limit)| Valid::Sync { cursors, limit }),
        prop::collection::vec(uuid(), 0..5).prop_map(Valid::Presence),
        Just(Valid::Ping),
    ]
    .boxed()
}

impl Valid {
    /// The frame's `type` and `data`; an optional field that is `None` is left out or `null`.
    fn to_frame(&self, null_for_none: bool) -> (&'static str, Option<Value>) {
        fn put(data: &mut Map<String, Value>, key: &str, value: Option<Value>, null_for_none: bool) {
            match value {
                Some(value) => {
                    data.insert(key.into(), value);
                }
                None if null_for_none => {
                    data.insert(key.into(), Value::Null);
                }
                None => {}
            }
        }
        let mut data = Map::new();
        let kind = match self {
            Valid::Send { conversation, body, client_id } => {
                data.insert("conversation_id".into(), json!(conversation));
                data.insert("body".into(), json!(body));
                put(&mut data, "client_id", client_id.as_ref().map(|c| json!(c)), null_for_none);
                "message:send"
            }
            Valid::Join { conversation, limit } => {
                data.insert("conversation_id".into(), json!(conversation));
                put(&mut data, "limit", limit.map(Value::from), null_for_none);
                "conversation:join"
            }
            Valid::Leave(c) | Valid::TypingStart(c) | Valid::TypingStop(c) => {
                data.insert("conversation_id".into(), json!(c));
                match self {
                    Valid::Leave(_) => "conversation:leave",
                    Valid::TypingStart(_) => "typing:start",
                    _ => "typing:stop",
                }
            }
            Valid::Read { conversation, seq } => {
                data.insert("conversation_id".into(), json!(conversation));
                put(&mut data, "seq", seq.map(Value::from), null_for_none);
                "read:mark"
            }
            Valid::Sync { cursors, limit } => {
                let cursors: Vec<Value> =
                    cursors.iter().map(|(c, after)| json!({"conversation_id": c, "after_seq": after})).collect();
                data.insert("conversations".into(), json!(cursors));
                put(&mut data, "limit", limit.map(Value::from), null_for_none);
                "sync"
            }
            Valid::Presence(users) => {
                data.insert("user_ids".into(), json!(users));
                "presence:query"
            }
            // A ping's data may be `{}`, `null` or absent.
            Valid::Ping => return ("ping", if null_for_none { Some(Value::Null) } else { None }),
        };
        (kind, Some(Value::Object(data)))
    }

    fn matches(&self, command: &ClientCommand) -> bool {
        match (self, command) {
            (Valid::Send { conversation, body, client_id }, ClientCommand::MessageSend(d)) => {
                d.conversation_id.0 == *conversation && d.body == *body && d.client_id == *client_id
            }
            (Valid::Join { conversation, limit }, ClientCommand::ConversationJoin(d)) => {
                d.conversation_id.0 == *conversation && d.limit == *limit
            }
            (Valid::Leave(c), ClientCommand::ConversationLeave(d))
            | (Valid::TypingStart(c), ClientCommand::TypingStart(d))
            | (Valid::TypingStop(c), ClientCommand::TypingStop(d)) => d.conversation_id.0 == *c,
            (Valid::Read { conversation, seq }, ClientCommand::ReadMark(d)) => {
                d.conversation_id.0 == *conversation && d.seq.map(|s| s.0) == *seq
            }
            (Valid::Sync { cursors, limit }, ClientCommand::Sync(d)) => {
                d.limit == *limit
                    && d.conversations.len() == cursors.len()
                    && d.conversations
                        .iter()
                        .zip(cursors)
                        .all(|(got, (c, after))| got.conversation_id.0 == *c && got.after_seq.0 == *after)
            }
            (Valid::Presence(users), ClientCommand::PresenceQuery(d)) => {
                d.user_ids.iter().map(|u| u.0).eq(users.iter().copied())
            }
            (Valid::Ping, ClientCommand::Ping) => true,
            _ => false,
        }
    }
}

/// Pieces of JSON (and of almost-JSON) that random concatenations are made of.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    " ",
    "\"type\"",
    "\"ref\"",
    "\"data\"",
    "\"ping\"",
    "\"message:send\"",
    "\"sync\"",
    "\"conversation_id\"",
    "\"body\"",
    "\"conversations\"",
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "-0.0",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\uDFFF\\uD800\"",
    "\"unterminated",
    "\\",
    "\"\"",
    "\u{0}",
    "\u{feff}",
    "NaN",
    "Infinity",
    "'ping'",
    "/*",
    "*/",
];

proptest! {
    // A fixed seed: a failure happens again on the next run, and names its (shrunk) case.
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x4057_11e5),
        ..ProptestConfig::default()
    })]

    /// Any text at all: a command or a clear `bad_request`, never a panic.
    #[test]
    fn decoder_survives_arbitrary_strings(text in any::<String>()) {
        check_frame(&text)?;
    }

    /// Almost-JSON: random concatenations of JSON tokens, the decoder's likeliest bad input.
    #[test]
    fn decoder_survives_json_fragments(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..24)) {
        check_frame(&tokens.concat())?;
    }

    /// Any JSON value: a string, a number, `null` or a boolean is no command; from an object the
    /// `ref` is recovered whenever it is a string or a number, so that even a refused frame gets
    /// its reply; an object without a known `type` is no command.
    #[test]
    fn decoder_survives_arbitrary_json(value in json_value()) {
        let text = value.to_string();
        let frame = check_frame(&text)?;
        match &value {
            Value::Object(object) => {
                echoes(frame.reference.as_ref(), object.get("ref"))?;
                let kind = object.get("type").and_then(Value::as_str);
                if !kind.is_some_and(|k| COMMANDS.contains(&k)) {
                    prop_assert!(frame.command.is_err(), "{} has no known type but parsed", text);
                }
            }
            // (Arrays: see decoder_accepts_objects_only.)
            Value::Array(_) => {}
            _ => {
                prop_assert!(frame.command.is_err(), "{} is not an object but parsed", text);
                prop_assert!(frame.reference.is_none());
            }
        }
    }

    /// A known `type` with random `data` (arbitrary, or with the protocol's field names): a
    /// command of that type or a `bad_request`, and the `ref` comes back either way.
    #[test]
    fn decoder_survives_random_data_for_every_command(
        kind in prop::sample::select(COMMANDS),
        reference in reference(),
        data in prop::option::of(prop_oneof![json_value(), shaped_data()]),
    ) {
        let mut frame = Map::new();
        frame.insert("type".into(), json!(kind));
        if let Some(reference) = &reference {
            frame.insert("ref".into(), reference.clone());
        }
        // (Arrays: see decoder_accepts_objects_only.)
        let data_is_scalar = data.as_ref().is_some_and(|d| d.is_string() || d.is_number() || d.is_boolean());
        if let Some(data) = data {
            frame.insert("data".into(), data);
        }
        let text = Value::Object(frame).to_string();
        let parsed = check_frame(&text)?;
        echoes(parsed.reference.as_ref(), reference.as_ref())?;
        if let Ok(command) = &parsed.command {
            prop_assert_eq!(variant(command), kind, "{}", text);
            prop_assert!(!data_is_scalar, "{} parsed, but its data is not an object", text);
        }
    }

    /// Every well-formed command parses, to exactly what was sent, with its `ref`.
    #[test]
    fn well_formed_commands_parse(
        command in valid_command(),
        null_for_none in any::<bool>(),
        reference in prop::option::of(prop_oneof![text().prop_map(Value::String), any::<i64>().prop_map(Value::from)]),
    ) {
        let (kind, data) = command.to_frame(null_for_none);
        let mut frame = Map::new();
        frame.insert("type".into(), json!(kind));
        if let Some(reference) = &reference {
            frame.insert("ref".into(), reference.clone());
        }
        if let Some(data) = data {
            frame.insert("data".into(), data);
        }
        let text = Value::Object(frame).to_string();
        let parsed = ClientFrame::parse(&text);
        match &parsed.command {
            Ok(parsed) => prop_assert!(command.matches(parsed), "{} parsed as {:?}", text, parsed),
            Err(err) => prop_assert!(false, "{} was refused: {}", text, err),
        }
        let recovered = parsed.reference.as_ref().map(|r| serde_json::to_value(r).expect("ref"));
        prop_assert_eq!(recovered, reference, "{}", text);
    }
}

/// JSON nested far deeper than any real frame, in each place of a frame: refused with a clear
/// error (serde_json's depth limit), not a stack overflow; a deep member the decoder has no use
/// for is skipped (without recursion), and the frame is the command it says.
#[test]
fn decoder_refuses_deep_nesting_without_overflowing() {
    let arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let objects = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let refused = [
        (arrays.clone(), None),
        (objects.clone(), None),
        (format!("{{\"type\":\"ping\",\"ref\":\"d1\",\"data\":{arrays}}}"), Some(json!("d1"))),
        (format!("{{\"type\":\"message:send\",\"ref\":\"d2\",\"data\":{objects}}}"), Some(json!("d2"))),
        (format!("{{\"type\":\"ping\",\"ref\":{arrays},\"data\":{{}}}}"), None),
        (format!("{{\"type\":{arrays},\"ref\":\"d3\"}}"), Some(json!("d3"))),
        (format!("{{\"type\":\"sync\",\"ref\":\"d4\",\"data\":{{\"conversations\":[{arrays}]}}}}"), Some(json!("d4"))),
    ];
    for (text, reference) in refused {
        let frame = ClientFrame::parse(&text);
        let err = frame.command.as_ref().err().unwrap_or_else(|| panic!("{}… parsed", &text[..60]));
        assert_eq!(err.code(), "bad_request", "{}…", &text[..60]);
        assert!(!err.to_string().is_empty());
        let recovered = frame.reference.as_ref().map(|r| serde_json::to_value(r).expect("ref"));
        assert_eq!(recovered, reference, "{}…", &text[..60]);
    }
    let skipped =
        ClientFrame::parse(&format!("{{\"type\":\"ping\",\"ref\":\"d5\",\"data\":{{}},\"extra\":{objects}}}"));
    assert!(matches!(skipped.command, Ok(ClientCommand::Ping)), "{:?}", skipped.command.err());
    assert_eq!(skipped.reference.map(|r| serde_json::to_value(r).expect("ref")), Some(json!("d5")));
}

/// A frame is a JSON object and so is its `data` (PROTOCOL.md §3): the same fields in an array,
/// which serde would read as a struct's fields in order, are refused, and nothing in an array
/// is taken for a `ref`.
#[test]
fn decoder_accepts_objects_only() {
    let id = uuid::Uuid::new_v4();
    let frames = [
        json!([0]),
        json!(["ping"]),
        json!(["ping", "r1", {}]),
        json!({"type": "ping", "ref": "r2", "data": []}),
        json!({"type": "message:send", "ref": "r3", "data": [id, "hi"]}),
        json!({"type": "read:mark", "ref": "r4", "data": [id]}),
        json!({"type": "sync", "ref": "r5", "data": {"conversations": [[id, 0]]}}),
    ];
    for frame in frames {
        let text = frame.to_string();
        let parsed = ClientFrame::parse(&text);
        match &parsed.command {
            Ok(command) => panic!("{text} parsed as {command:?}"),
            Err(err) => assert_eq!(err.code(), "bad_request", "{text}"),
        }
        let recovered = parsed.reference.as_ref().map(|r| serde_json::to_value(r).expect("ref"));
        assert_eq!(recovered.as_ref(), frame.get("ref"), "{text}: the ref");
    }
}
