//! Hostile input (issue 4): what a careless or malicious client sends, and what the server must
//! still do. A property-based fuzz of the frame decoder; random REST bodies and query strings
//! against a real server; authorization of every conversation endpoint and command for an
//! outsider, a removed member and a non-admin; size and shape limits (large bodies and queries,
//! deep nesting, invalid UTF-8, floods of small frames); and logs that never carry a token, a
//! password or a message body.
//!
//! The token matrix is in tests/auth.rs; Origin, CORS, the login throttle and /metrics in
//! tests/security.rs.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::{OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT, upgrade};
use common::*;
use parley::protocol::{ClientCommand, ClientFrame};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

backends!(
    random_rest_bodies_and_queries_get_a_success_or_a_clear_client_error,
    random_websocket_frames_get_an_ack_or_a_clear_error,
    values_a_database_cannot_store_get_a_clear_answer,
    outsiders_removed_members_and_non_admins_are_refused_everywhere,
    request_bodies_over_64_kib_are_413,
    deeply_nested_json_is_a_bad_request_and_the_websocket_stays_open,
    a_text_frame_that_is_not_utf8_closes_with_1007,
    a_100_kb_query_string_is_refused_and_the_server_goes_on,
    a_frame_flood_is_closed_with_1008_and_a_burst_is_not,
    logs_never_contain_a_token_a_password_or_a_message_body,
);

/// The command types of PROTOCOL.md §3.
const COMMANDS: &[&str] = &[
    "message:send",
    "conversation:join",
    "conversation:leave",
    "typing:start",
    "typing:stop",
    "read:mark",
    "sync",
    "presence:query",
    "ping",
];

/// Every field name the protocol's commands and REST bodies use: random objects draw their keys
/// from these (and from arbitrary strings), so that they get past "unknown field" now and then.
const FIELDS: &[&str] = &[
    "type",
    "ref",
    "data",
    "conversation_id",
    "body",
    "client_id",
    "limit",
    "seq",
    "conversations",
    "after_seq",
    "user_ids",
    "username",
    "password",
    "display_name",
    "kind",
    "title",
    "member_ids",
    "user_id",
];

// =============================================================================================
// 1. The frame decoder, property-based

/// Strings that tend to matter: empty, blank, NUL and other controls, bidi overrides, a BOM,
/// LIKE wildcards, long runs, astral characters; mixed with arbitrary ones.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>(),
        2 => "[a-z0-9 ._-]{0,24}",
        1 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        1 => prop::sample::select(vec![
            "",
            " ",
            "\t\n",
            "\0",
            "a\0b",
            "\u{7f}\u{1b}[31m",
            "\u{feff}",
            "\u{202e}olleh",
            "\u{1F600}",
            "%",
            "_",
            "\\",
            "'; DROP TABLE messages; --",
            "null",
            "00000000-0000-0000-0000-000000000000",
        ])
        .prop_map(String::from),
        1 => prop::sample::select(vec![
            ("x", 4_000),
            ("x", 4_001),
            ("\u{e9}", 4_000),
            ("\u{1F600}", 2_000),
            ("a", 10_000),
        ])
        .prop_map(|(s, n)| s.repeat(n)),
    ]
    .boxed()
}

/// Numbers at and around the edges.
fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        (-3i64..60).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0, 1, 200, 201]).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![3 => prop::sample::select(FIELDS).prop_map(String::from), 1 => text()].boxed()
}

/// Arbitrary JSON: nested objects, arrays, strings and numbers.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
        any::<u128>().prop_map(|n| Value::String(uuid::Uuid::from_u128(n).to_string())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

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
fn echoes(recovered: Option<&parley::protocol::Ref>, sent: Option<&Value>) -> Result<(), TestCaseError> {
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

fn uuid() -> BoxedStrategy<uuid::Uuid> {
    any::<u128>().prop_map(uuid::Uuid::from_u128).boxed()
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
                d.conversation_id.0 == *conversation && d.seq == *seq
            }
            (Valid::Sync { cursors, limit }, ClientCommand::Sync(d)) => {
                d.limit == *limit
                    && d.conversations.len() == cursors.len()
                    && d.conversations
                        .iter()
                        .zip(cursors)
                        .all(|(got, (c, after))| got.conversation_id.0 == *c && got.after_seq == *after)
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

// =============================================================================================
// 2. Random REST bodies and query strings against a real server

/// Random requests per endpoint.
const REST_CASES: usize = 100;

/// The ids a fuzzed body may name, so that some of them are valid and reach the database.
struct Known {
    users: Vec<String>,
    conversations: Vec<String>,
}

/// A value for the field `field` of a REST body: often plausible (a real id, a valid username),
/// often hostile (NUL, huge numbers, wrong types).
fn field_value(field: &str, known: &Known) -> BoxedStrategy<Value> {
    let user = prop::sample::select(known.users.clone()).prop_map(Value::String);
    let conversation = prop::sample::select(known.conversations.clone()).prop_map(Value::String);
    let plausible: BoxedStrategy<Value> = match field {
        "username" => prop_oneof![
            "[a-z0-9._-]{3,32}".prop_map(Value::String),
            Just(json!("alice")),
            Just(json!("ALICE")),
            text().prop_map(Value::String),
        ]
        .boxed(),
        "password" => prop_oneof![
            Just(json!("password123")),
            "[ -~]{8,40}".prop_map(Value::String),
            text().prop_map(Value::String),
        ]
        .boxed(),
        "kind" => prop::sample::select(vec!["direct", "group", "channel", "Group", ""]).prop_map(|k| json!(k)).boxed(),
        "member_ids" => prop_oneof![
            prop::collection::vec(user.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(json_value(), 0..3).prop_map(Value::Array),
        ]
        .boxed(),
        "user_id" => prop_oneof![3 => user, 1 => uuid().prop_map(|u| json!(u))].boxed(),
        "conversation_id" => prop_oneof![3 => conversation.clone(), 1 => uuid().prop_map(|u| json!(u))].boxed(),
        "conversations" => prop::collection::vec(
            (prop_oneof![3 => conversation, 1 => uuid().prop_map(|u| json!(u))], number())
                .prop_map(|(c, after)| json!({"conversation_id": c, "after_seq": after})),
            0..4,
        )
        .prop_map(Value::Array)
        .boxed(),
        "user_ids" => prop::collection::vec(user, 0..5).prop_map(Value::Array).boxed(),
        "seq" | "limit" | "after_seq" => number(),
        _ => text().prop_map(Value::String).boxed(),
    };
    prop_oneof![3 => plausible, 1 => json_value()].boxed()
}

/// An object with `fields`, each present most of the time, plus now and then a stranger.
fn shaped_object(fields: &[&str], known: &Known) -> BoxedStrategy<Value> {
    let pairs: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .iter()
        .map(|&f| {
            let name = f.to_string();
            prop::option::weighted(0.85, field_value(f, known).prop_map(move |v| (name.clone(), v))).boxed()
        })
        .chain(std::iter::once(prop::option::weighted(0.1, (key(), json_value())).boxed()))
        .collect();
    pairs.prop_map(|pairs| Value::Object(pairs.into_iter().flatten().collect())).boxed()
}

/// A REST body: arbitrary JSON, an object with the endpoint's own fields (each present most of
/// the time, plus now and then a stranger), a truncated one, or arbitrary text; with a JSON
/// content type most of the time.
fn rest_body(fields: &[&str], known: &Known) -> BoxedStrategy<(String, String)> {
    let shaped = shaped_object(fields, known).prop_map(|object| object.to_string()).boxed();
    let body = prop_oneof![
        3 => shaped.clone(),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => (shaped, any::<prop::sample::Index>()).prop_map(|(text, cut)| {
            let end = (0..=cut.index(text.len() + 1)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text[..end].to_string()
        }),
        1 => any::<String>(),
    ];
    let content_type = prop::sample::select(vec![
        "application/json",
        "application/json",
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
    ]);
    (content_type.prop_map(String::from), body).boxed()
}

/// Percent-encodes everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query string: the endpoint's parameters (and strangers) with numbers at the edges, cursors
/// with out-of-range times, arbitrary text, and broken percent-encoding.
fn query_string(params: &[&str]) -> BoxedStrategy<String> {
    let mut keys: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    keys.extend(["x".to_string(), "token".to_string(), String::new()]);
    let value = prop_oneof![
        3 => number().prop_map(|n| percent_encode(&n.to_string())),
        2 => (any::<i64>(), uuid()).prop_map(|(micros, id)| format!("{micros}_{id}")),
        2 => text().prop_map(|t| percent_encode(&t)),
        1 => prop::sample::select(vec![
            "", "%", "%zz", "%FF%FE", "%00", "%C0%AF", "+", "1e3", "-0", "+5", "%205", "0x10", "9223372036854775808",
            "-9223372036854775809", "1.5", "null", "true", "_", "1_", "_x",
        ])
        .prop_map(String::from),
    ];
    let pair = (prop::sample::select(keys), value, any::<bool>()).prop_map(|(k, v, bare)| {
        // Now and then a key alone, as `?limit`.
        if bare && v.is_empty() { k } else { format!("{k}={v}") }
    });
    prop::collection::vec(pair, 0..5)
        .prop_map(|pairs| pairs.join("&"))
        .prop_map(|q| if q.is_empty() { q } else { format!("?{q}") })
        .boxed()
}

/// A status and body as the protocol allows them for any request: a 2xx, or a 4xx with
/// `{"error": {"code", "message"}}` whose code matches the status. Never a 5xx.
fn check_answer(status: u16, body: &[u8]) -> Result<(), String> {
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
        409 => "conflict",
        413 => "payload_too_large",
        429 => "rate_limited",
        _ => return Err(format!("status {status} is not one of the protocol's: {value}")),
    };
    if code != expected {
        return Err(format!("status {status} with code {code}: {value}"));
    }
    Ok(())
}

/// POST `body` as it is, with `content_type`; the status and the raw answer.
async fn post_text(
    server: &TestServer,
    token: Option<&str>,
    path: &str,
    content_type: &str,
    body: String,
) -> (u16, Vec<u8>) {
    let mut request = server.client.post(server.url(path)).insert_header(("Content-Type", content_type));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send_body(body).await.unwrap_or_else(|err| panic!("POST {path}: {err}"));
    let bytes = response.body().limit(1 << 20).await.expect("answer body");
    (response.status().as_u16(), bytes.to_vec())
}

async fn get_text(server: &TestServer, token: Option<&str>, path: &str) -> (u16, Vec<u8>) {
    let mut request = server.client.get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.unwrap_or_else(|err| panic!("GET {path}: {err}"));
    let bytes = response.body().limit(16 << 20).await.expect("answer body");
    (response.status().as_u16(), bytes.to_vec())
}

async fn create_group(server: &TestServer, owner: &TestUser, title: &str, members: &[&TestUser]) -> String {
    let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
    let (status, body) = server
        .post(Some(owner), "/api/conversations", json!({"kind": "group", "title": title, "member_ids": ids}))
        .await;
    assert_eq!(status, 201, "create group: {body}");
    body["id"].as_str().expect("conversation id").to_string()
}

/// A hundred random bodies to each POST endpoint and a hundred random query strings to each GET
/// endpoint with parameters: every answer is a 2xx or a clear 4xx, never a 5xx, and afterwards
/// the server still answers and still works.
async fn random_rest_bodies_and_queries_get_a_success_or_a_clear_client_error(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        // Let valid sends reach the database rather than the rate limit.
        config.limits.rate_per_sec = 100_000.0;
        config.limits.rate_burst = 100_000.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let direct = server.direct(&alice, &bob).await;
    let group = create_group(&server, &alice, "fuzz", &[&bob]).await;
    for body in ["one", "two", "three"] {
        for conversation in [&direct, &group] {
            let path = format!("/api/conversations/{conversation}/messages");
            let (status, sent) = server.post(Some(&bob), &path, json!({"body": body})).await;
            assert_eq!(status, 201, "{sent}");
        }
    }
    let known = Known {
        users: vec![alice.id.clone(), bob.id.clone(), carol.id.clone(), uuid::Uuid::new_v4().to_string()],
        conversations: vec![direct.clone(), group.clone(), uuid::Uuid::new_v4().to_string()],
    };

    let posts: Vec<(String, Option<&str>, &[&str])> = vec![
        ("/api/auth/register".into(), None, &["username", "password", "display_name"]),
        ("/api/auth/login".into(), None, &["username", "password"]),
        ("/api/conversations".into(), Some(&alice.token), &["kind", "user_id", "title", "member_ids"]),
        (format!("/api/conversations/{group}/members"), Some(&alice.token), &["user_id"]),
        (format!("/api/conversations/{direct}/messages"), Some(&alice.token), &["body", "client_id"]),
        (format!("/api/conversations/{direct}/read"), Some(&alice.token), &["seq"]),
        (format!("/api/conversations/{group}/unread"), Some(&alice.token), &["seq"]),
    ];
    let gets: Vec<(String, &[&str])> = vec![
        ("/api/users".into(), &["q", "limit"]),
        ("/api/conversations".into(), &["limit", "before"]),
        (format!("/api/conversations/{direct}/messages"), &["before_seq", "after_seq", "limit"]),
    ];

    // A fixed seed: a failure names its case and happens again on the next run.
    let mut runner = TestRunner::deterministic();
    let mut failures: Vec<String> = Vec::new();
    let mut successes = 0;
    for (path, token, fields) in &posts {
        let strategy = rest_body(fields, &known);
        for case in 0..REST_CASES {
            let (content_type, body) = strategy.new_tree(&mut runner).expect("a body").current();
            let (status, answer) = post_text(&server, *token, path, &content_type, body.clone()).await;
            successes += usize::from((200..300).contains(&status));
            if let Err(problem) = check_answer(status, &answer) {
                let shown: String = body.chars().take(300).collect();
                failures.push(format!("POST {path} #{case} ({content_type}) {shown:?}: {problem}"));
            }
        }
    }
    for (path, params) in &gets {
        let strategy = query_string(params);
        for case in 0..REST_CASES {
            let query = strategy.new_tree(&mut runner).expect("a query").current();
            let target = format!("{path}{query}");
            let (status, answer) = get_text(&server, Some(&alice.token), &target).await;
            successes += usize::from((200..300).contains(&status));
            if let Err(problem) = check_answer(status, &answer) {
                failures.push(format!("GET {target} #{case}: {problem}"));
            }
        }
    }

    // Still alive, and still working.
    let (status, _) = get_text(&server, None, "/healthz").await;
    assert_eq!(status, 200, "the server stopped answering");
    let (status, sent) =
        server.post(Some(&bob), &format!("/api/conversations/{direct}/messages"), json!({"body": "still here"})).await;
    assert_eq!(status, 201, "{sent}");
    assert!(
        failures.is_empty(),
        "{} of {} random requests got an answer outside the protocol:\n{}",
        failures.len(),
        REST_CASES * (posts.len() + gets.len()),
        failures.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
    // The generator is not only producing garbage: a good share of requests went through.
    assert!(successes >= REST_CASES, "only {successes} random requests succeeded");
    server.stop().await;
}

/// Random frames per WebSocket session.
const WS_CASES: usize = 300;

/// The fields of each command's `data`.
fn command_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "message:send" => &["conversation_id", "body", "client_id"],
        "conversation:join" => &["conversation_id", "limit"],
        "conversation:leave" | "typing:start" | "typing:stop" => &["conversation_id"],
        "read:mark" => &["conversation_id", "seq"],
        "sync" => &["conversations", "limit"],
        "presence:query" => &["user_ids"],
        _ => &[],
    }
}

/// Three hundred frames of random commands (known types, and now and then an unknown one) with
/// random `data` (mostly the command's own fields, naming real conversations and users) on one
/// live session: each gets exactly its reply, an `ack` or an `error` with a protocol code that
/// is not `internal`, and the session stays open.
async fn random_websocket_frames_get_an_ack_or_a_clear_error(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.limits.rate_per_sec = 100_000.0;
        config.limits.rate_burst = 100_000.0;
        config.limits.max_frames_per_sec = 100_000.0;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let direct = server.direct(&alice, &bob).await;
    let group = create_group(&server, &alice, "fuzz", &[&bob]).await;
    let outside = server.direct(&bob, &carol).await;
    let known = Known {
        users: vec![alice.id.clone(), bob.id.clone(), carol.id.clone(), uuid::Uuid::new_v4().to_string()],
        // Alice's own conversations twice as often as the others.
        conversations: vec![
            direct.clone(),
            group.clone(),
            direct.clone(),
            group.clone(),
            outside,
            uuid::Uuid::new_v4().to_string(),
        ],
    };
    // Sends more often than the rest: they go the longest way (actor, database, broadcast).
    let kind = prop_oneof![
        3 => Just("message:send".to_string()),
        9 => prop::sample::select(COMMANDS).prop_map(String::from),
        1 => text(),
    ];
    let strategy = kind.prop_flat_map(move |kind| {
        let fields = command_fields(&kind);
        let data = prop_oneof![4 => shaped_object(fields, &known), 1 => json_value()];
        (Just(kind), prop::option::weighted(0.95, data))
    });
    let mut a = server.ws(&alice).await;
    let mut runner = TestRunner::deterministic();
    let mut failures = Vec::new();
    let mut acks = 0;
    for case in 0..WS_CASES {
        let (kind, data) = strategy.new_tree(&mut runner).expect("a frame").current();
        let reference = format!("f{case}");
        let mut frame = json!({"type": kind, "ref": reference});
        if let Some(data) = data {
            frame["data"] = data;
        }
        let frame = frame.to_string();
        a.send_text(&frame).await;
        let reply = a.reply_to(&reference).await;
        match (reply["type"].as_str(), reply["data"]["code"].as_str()) {
            (Some("ack"), _) => acks += 1,
            (Some("error"), Some(code)) => {
                let known_code = ["bad_request", "forbidden", "not_found", "conflict", "payload_too_large"];
                let message = reply["data"]["message"].as_str().unwrap_or_default();
                if !known_code.contains(&code) || message.trim().is_empty() {
                    let shown: String = frame.chars().take(300).collect();
                    failures.push(format!("#{case} {shown}: {reply}"));
                }
            }
            _ => failures.push(format!("#{case} {frame}: {reply}")),
        }
        // Events (messages sent, markers moved) are not what this test reads.
        a.drain(|f| f["type"] != "ack" && f["type"] != "error");
    }
    assert_eq!(a.ack("ping", json!({})).await, json!({}));
    assert_eq!(a.closed, None);
    assert!(
        failures.is_empty(),
        "{} of {WS_CASES} random frames got a reply outside the protocol:\n{}",
        failures.len(),
        failures.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(acks >= WS_CASES / 10, "only {acks} random frames were acked");
    server.stop().await;
}

/// Text with NUL characters, and a list cursor at a time long before any calendar the database
/// keeps: what one backend stores and the other cannot. Either way the answer is a success or a
/// clear 4xx, never a 500; what is stored reads back as it was sent.
async fn values_a_database_cannot_store_get_a_clear_answer(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let direct = server.direct(&alice, &bob).await;
    let nul = "before\0after";
    let messages = format!("/api/conversations/{direct}/messages");
    let posts = [
        (None, "/api/auth/register", json!({"username": "nul-name", "password": "password123", "display_name": nul})),
        (None, "/api/auth/register", json!({"username": "nul-pass", "password": "pass\0word123"})),
        (Some(&alice), "/api/conversations", json!({"kind": "group", "title": nul, "member_ids": [bob.id]})),
        (Some(&alice), messages.as_str(), json!({"body": nul})),
        (Some(&alice), messages.as_str(), json!({"body": "fine", "client_id": nul})),
    ];
    for (user, path, body) in &posts {
        let token = user.map(|u| u.token.as_str());
        let (status, answer) = post_text(&server, token, path, "application/json", body.to_string()).await;
        if let Err(problem) = check_answer(status, &answer) {
            panic!("POST {path} {body}: {problem}");
        }
    }
    let long_ago = format!("-1000000000000000000_{}", uuid::Uuid::new_v4());
    for path in ["/api/users?q=%00".to_string(), format!("/api/conversations?before={long_ago}")] {
        let (status, answer) = get_text(&server, Some(&alice.token), &path).await;
        if let Err(problem) = check_answer(status, &answer) {
            panic!("GET {path}: {problem}");
        }
    }
    let mut a = server.ws(&alice).await;
    let reply = a.request("message:send", json!({"conversation_id": direct, "body": nul})).await;
    assert!(
        reply["type"] == "ack" || reply["data"]["code"] == "bad_request",
        "a body with NUL over the WebSocket: {reply}"
    );
    let (status, history) = server.get(Some(&bob), &messages).await;
    assert_eq!(status, 200, "{history}");
    for message in history["messages"].as_array().expect("messages") {
        assert!(message["body"] == nul || message["body"] == "fine", "stored as sent: {message}");
    }
    server.stop().await;
}

// =============================================================================================
// 3. Authorization, as a table

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// A user with an admin token, as an identity system would issue it.
fn admin() -> TestUser {
    let id = uuid::Uuid::new_v4().to_string();
    let token =
        token_for(json!({"sub": id, "exp": now_secs() + 3_600, "iat": now_secs(), "name": "root", "role": "admin"}));
    TestUser { id, username: "root".into(), token }
}

/// One REST call of the table: method, path, body.
type Call = (&'static str, String, Option<Value>);

/// Every conversation endpoint of PROTOCOL.md §2, on conversation `c`, as `caller` would try
/// them: read it, its history, send, read and unread markers, add oneself or `other`, leave,
/// remove `member`.
fn conversation_calls(c: &str, caller: &TestUser, other: &TestUser, member: &TestUser) -> Vec<Call> {
    let base = format!("/api/conversations/{c}");
    vec![
        ("GET", base.clone(), None),
        ("GET", format!("{base}/messages"), None),
        ("GET", format!("{base}/messages?after_seq=0&limit=10"), None),
        ("POST", format!("{base}/messages"), Some(json!({"body": "let me in"}))),
        ("POST", format!("{base}/messages"), Some(json!({"body": "let me in", "client_id": "intruder-1"}))),
        ("POST", format!("{base}/read"), Some(json!({}))),
        ("POST", format!("{base}/read"), Some(json!({"seq": 1}))),
        ("POST", format!("{base}/unread"), Some(json!({"seq": 1}))),
        ("POST", format!("{base}/members"), Some(json!({"user_id": caller.id}))),
        ("POST", format!("{base}/members"), Some(json!({"user_id": other.id}))),
        ("DELETE", format!("{base}/members/{}", caller.id), None),
        ("DELETE", format!("{base}/members/{}", member.id), None),
    ]
}

async fn call(server: &TestServer, user: Option<&TestUser>, (method, path, body): &Call) -> (u16, Value) {
    match *method {
        "GET" => server.get(user, path).await,
        "POST" => server.post(user, path, body.clone().unwrap_or(Value::Null)).await,
        "DELETE" => server.delete(user, path).await,
        other => unreachable!("{other}"),
    }
}

/// Carol was a member of Alice's group and was removed; Eve never was a member of anything of
/// Alice's. Every conversation endpoint answers them 404 `not_found`, exactly as for a
/// conversation that does not exist, and every WebSocket command that names the conversation
/// answers `not_found` (Carol's session was open, and joined, before she was removed); `sync`
/// leaves it out; nothing they tried shows up for the members. The admin endpoints answer 403 to
/// a non-admin and 401 without a token; every call of the table answers 401 without a token.
async fn outsiders_removed_members_and_non_admins_are_refused_everywhere(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let eve = server.user("eve").await;
    let group = create_group(&server, &alice, "inner circle", &[&bob, &carol]).await;
    let direct = server.direct(&alice, &bob).await;
    // Carol and Eve share a conversation of their own, which `sync` must keep answering.
    let theirs = server.direct(&carol, &eve).await;
    let (status, _) =
        server.post(Some(&eve), &format!("/api/conversations/{theirs}/messages"), json!({"body": "hey"})).await;
    assert_eq!(status, 201);

    // Carol is connected and in the group's view when she is removed.
    let mut c = server.ws(&carol).await;
    c.ack("conversation:join", json!({"conversation_id": group})).await;
    let sent = c.ack("message:send", json!({"conversation_id": group, "body": "glad to be here"})).await;
    assert_eq!(sent["message"]["seq"], 1);
    c.ack("typing:start", json!({"conversation_id": group})).await;
    let (status, body) = server.delete(Some(&alice), &format!("/api/conversations/{group}/members/{}", carol.id)).await;
    assert_eq!(status, 204, "{body}");
    let removed = c.event_where("conversation:updated", |d| d["conversation"]["id"] == group.as_str()).await;
    assert!(
        !removed["conversation"]["members"].as_array().expect("members").iter().any(|m| m["user_id"] == carol.id),
        "{removed}"
    );
    let (status, _) =
        server.post(Some(&alice), &format!("/api/conversations/{direct}/messages"), json!({"body": "psst"})).await;
    assert_eq!(status, 201);

    let (_, group_before) = server.get(Some(&alice), &format!("/api/conversations/{group}")).await;
    let (_, direct_before) = server.get(Some(&bob), &format!("/api/conversations/{direct}")).await;
    let mut a = server.ws(&alice).await;
    let mut b = server.ws(&bob).await;
    let mut e = server.ws(&eve).await;

    // REST: (who, their session, the conversations they must not reach).
    let missing = uuid::Uuid::new_v4().to_string();
    let cases: [(&TestUser, &str, Vec<&String>); 2] =
        [(&carol, "the removed member", vec![&group]), (&eve, "the outsider", vec![&group, &direct])];
    for (who, role, conversations) in &cases {
        let other = if who.id == carol.id { &eve } else { &carol };
        for conversation in conversations {
            let calls = conversation_calls(conversation, who, other, &bob);
            let nowhere = conversation_calls(&missing, who, other, &bob);
            for (attempt, absent) in calls.iter().zip(&nowhere) {
                let (status, body) = call(&server, Some(who), attempt).await;
                assert_eq!(
                    (status, code(&body)),
                    (404, "not_found"),
                    "{role}: {} {} {:?}: {body}",
                    attempt.0,
                    attempt.1,
                    attempt.2
                );
                let (_, body_for_missing) = call(&server, Some(who), absent).await;
                assert_eq!(
                    body, body_for_missing,
                    "{role}: {} {} answers differently from a conversation that does not exist",
                    attempt.0, attempt.1
                );
                let (status, body) = call(&server, None, attempt).await;
                assert_eq!(
                    (status, code(&body)),
                    (401, "unauthorized"),
                    "no token: {} {}: {body}",
                    attempt.0,
                    attempt.1
                );
            }
        }
        // Nor does the conversation list show it.
        let (status, list) = server.get(Some(who), "/api/conversations").await;
        assert_eq!(status, 200, "{list}");
        let ids: Vec<&str> =
            list["conversations"].as_array().expect("conversations").iter().filter_map(|c| c["id"].as_str()).collect();
        assert_eq!(ids, vec![theirs.as_str()], "{role} lists only their own conversation");
    }

    // WebSocket: every command that names the conversation.
    for (who, ws) in [(&carol, &mut c), (&eve, &mut e)] {
        let role = if who.id == carol.id { "the removed member" } else { "the outsider" };
        let conversations: Vec<&String> = if who.id == carol.id { vec![&group] } else { vec![&group, &direct] };
        for conversation in conversations {
            let commands = [
                ("message:send", json!({"conversation_id": conversation, "body": "let me in"})),
                ("message:send", json!({"conversation_id": conversation, "body": "let me in", "client_id": "ws-1"})),
                ("conversation:join", json!({"conversation_id": conversation})),
                ("conversation:join", json!({"conversation_id": conversation, "limit": 5})),
                ("conversation:leave", json!({"conversation_id": conversation})),
                ("typing:start", json!({"conversation_id": conversation})),
                ("typing:stop", json!({"conversation_id": conversation})),
                ("read:mark", json!({"conversation_id": conversation})),
                ("read:mark", json!({"conversation_id": conversation, "seq": 1})),
            ];
            for (kind, data) in commands {
                let reply = ws.request(kind, data.clone()).await;
                assert_eq!(
                    (&reply["type"], &reply["data"]["code"]),
                    (&json!("error"), &json!("not_found")),
                    "{role}: {kind} {data}: {reply}"
                );
            }
            let synced = ws
                .ack(
                    "sync",
                    json!({"conversations": [
                        {"conversation_id": conversation, "after_seq": 0},
                        {"conversation_id": theirs, "after_seq": 0},
                    ]}),
                )
                .await;
            let answered: Vec<&Value> = synced["conversations"]
                .as_array()
                .expect("conversations")
                .iter()
                .map(|c| &c["conversation_id"])
                .collect();
            assert_eq!(answered, vec![&json!(theirs)], "{role}: sync leaves the conversation out: {synced}");
            assert_eq!(synced["conversations"][0]["messages"][0]["body"], "hey");
        }
    }

    // Nothing of theirs reached the members. Fences: an event from a member, after all the
    // attempts; whatever the attempts caused would have come before it.
    b.ack("typing:start", json!({"conversation_id": group})).await;
    a.event_where("typing:updated", |d| d["user_id"] == bob.id.as_str() && d["typing"] == true).await;
    a.ack("typing:start", json!({"conversation_id": direct})).await;
    b.event_where("typing:updated", |d| d["user_id"] == alice.id.as_str() && d["typing"] == true).await;
    for (member, ws) in [("alice", &mut a), ("bob", &mut b)] {
        let intruders = ws.drain(|f| {
            let data = &f["data"];
            [&carol.id, &eve.id].iter().any(|id| {
                data["user_id"] == id.as_str()
                    || data["message"]["sender_id"] == id.as_str()
                    || data["conversation"]["members"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["user_id"] == id.as_str()))
            })
        });
        assert!(intruders.is_empty(), "{member} saw the intruders: {intruders:?}");
    }
    let (_, group_after) = server.get(Some(&alice), &format!("/api/conversations/{group}")).await;
    let (_, direct_after) = server.get(Some(&bob), &format!("/api/conversations/{direct}")).await;
    for (before, after) in [(&group_before, &group_after), (&direct_before, &direct_after)] {
        assert_eq!(after["members"], before["members"], "the members (and their read markers) are unchanged");
        assert_eq!(after["last_seq"], before["last_seq"], "no message was added");
    }

    // The admin endpoints: 403 to a non-admin (Bob, a member of everything here), 401 without
    // a token; an admin gets through, so the refusals are about the role.
    let admin = admin();
    let one = format!("/api/admin/actors/conversations/{group}");
    let admin_calls: [Call; 3] = [
        ("GET", "/api/admin/actors".into(), None),
        ("GET", one.clone(), None),
        ("POST", format!("{one}/fault"), Some(json!({}))),
    ];
    for attempt in &admin_calls {
        let (status, body) = call(&server, Some(&bob), attempt).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "non-admin: {} {}: {body}", attempt.0, attempt.1);
        let (status, body) = call(&server, None, attempt).await;
        assert_eq!((status, code(&body)), (401, "unauthorized"), "no token: {} {}: {body}", attempt.0, attempt.1);
    }
    let (status, body) = call(&server, Some(&admin), &admin_calls[0]).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

// =============================================================================================
// 4. Size and shape limits

/// Every POST endpoint, with a token where it needs one.
fn post_endpoints<'a>(user: &'a TestUser, conversation: &str) -> Vec<(String, Option<&'a str>)> {
    let token = Some(user.token.as_str());
    vec![
        ("/api/auth/register".into(), None),
        ("/api/auth/login".into(), None),
        ("/api/conversations".into(), token),
        (format!("/api/conversations/{conversation}/members"), token),
        (format!("/api/conversations/{conversation}/messages"), token),
        (format!("/api/conversations/{conversation}/read"), token),
        (format!("/api/conversations/{conversation}/unread"), token),
    ]
}

/// POST with a body sent in chunks, without a Content-Length.
async fn post_chunked(server: &TestServer, token: Option<&str>, path: &str, body: String) -> (u16, Vec<u8>) {
    let chunks: Vec<Result<actix_web::web::Bytes, std::io::Error>> =
        body.into_bytes().chunks(8 * 1024).map(|c| Ok(actix_web::web::Bytes::copy_from_slice(c))).collect();
    let mut request = server.client.post(server.url(path)).insert_header(("Content-Type", "application/json"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send_stream(futures_util::stream::iter(chunks))
        .await
        .unwrap_or_else(|err| panic!("POST {path}: {err}"));
    let bytes = response.body().limit(1 << 20).await.expect("answer body");
    (response.status().as_u16(), bytes.to_vec())
}

fn assert_error(what: &str, status: u16, body: &[u8], expected: (u16, &str)) {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    assert_eq!((status, code(&value)), expected, "{what}: {text}");
    assert!(value["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {text}");
}

/// A body over 64 KiB to each POST endpoint is 413 `payload_too_large`, with a Content-Length
/// or sent in chunks; a body just under the limit goes through.
async fn request_bodies_over_64_kib_are_413(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = create_group(&server, &alice, "big", &[&bob]).await;
    let (status, _) =
        server.post(Some(&bob), &format!("/api/conversations/{conversation}/messages"), json!({"body": "hi"})).await;
    assert_eq!(status, 201);

    let over = format!("{{\"body\": \"{}\"}}", "x".repeat(70_000));
    assert!(over.len() > 64 * 1024);
    for (path, token) in post_endpoints(&alice, &conversation) {
        let (status, body) = post_text(&server, token, &path, "application/json", over.clone()).await;
        assert_error(&format!("POST {path}, {} bytes", over.len()), status, &body, (413, "payload_too_large"));
        let (status, body) = post_chunked(&server, token, &path, over.clone()).await;
        assert_error(
            &format!("POST {path}, {} bytes in chunks", over.len()),
            status,
            &body,
            (413, "payload_too_large"),
        );
    }

    // Just under the limit (white space is JSON too): accepted.
    let pad = " ".repeat(64 * 1024 - 100);
    let path = format!("/api/conversations/{conversation}/messages");
    let (status, body) =
        post_text(&server, Some(&alice.token), &path, "application/json", format!("{{\"body\": \"under\"}}{pad}"))
            .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let path = format!("/api/conversations/{conversation}/read");
    let (status, body) =
        post_text(&server, Some(&bob.token), &path, "application/json", format!("{{\"seq\": 2}}{pad}")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("JSON")["last_read_seq"], 2);
    let (status, _) = get_text(&server, None, "/healthz").await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// JSON nested 10,000 deep (arrays, and objects) in a REST body is 400 `bad_request` on every
/// POST endpoint; in a WebSocket frame it gets an `error` (with the frame's `ref` where it can be
/// read) and the connection stays open.
async fn deeply_nested_json_is_a_bad_request_and_the_websocket_stays_open(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert!(objects.len() < 64 * 1024);

    for (path, token) in post_endpoints(&alice, &conversation) {
        let bodies = [
            arrays.clone(),
            objects.clone(),
            // Inside a tagged body (decoded through an intermediate tree) and a field.
            format!("{{\"kind\": \"group\", \"title\": {arrays}, \"member_ids\": []}}"),
            format!("{{\"seq\": {objects}}}"),
        ];
        for body in bodies {
            let (status, answer) = post_text(&server, token, &path, "application/json", body.clone()).await;
            assert_error(&format!("POST {path} {}…", &body[..30]), status, &answer, (400, "bad_request"));
        }
    }

    let mut a = server.ws(&alice).await;
    let frames = [
        (arrays.clone(), Value::Null),
        (objects.clone(), Value::Null),
        (format!("{{\"type\":\"ping\",\"ref\":\"deep-data\",\"data\":{arrays}}}"), json!("deep-data")),
        (format!("{{\"type\":\"message:send\",\"ref\":\"deep-objects\",\"data\":{objects}}}"), json!("deep-objects")),
        (
            format!("{{\"type\":\"sync\",\"ref\":\"deep-sync\",\"data\":{{\"conversations\":{arrays}}}}}"),
            json!("deep-sync"),
        ),
        (format!("{{\"type\":\"ping\",\"ref\":{arrays},\"data\":{{}}}}"), Value::Null),
        (format!("{{\"type\":{objects},\"ref\":\"deep-type\"}}"), json!("deep-type")),
    ];
    for (text, reference) in &frames {
        a.send_text(text).await;
        let reply = a.next().await;
        assert_eq!(
            (&reply["type"], &reply["data"]["code"]),
            (&json!("error"), &json!("bad_request")),
            "{}…: {reply}",
            &text[..40]
        );
        assert_eq!(reply.get("ref").unwrap_or(&Value::Null), reference, "{}…", &text[..40]);
    }
    assert_eq!(a.ack("ping", json!({})).await, json!({}));
    assert_eq!(a.closed, None);
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "still fine"})).await;
    assert_eq!(sent["message"]["seq"], 1);
    server.stop().await;
}

/// A text frame that is not UTF-8 (a stray byte, an overlong encoding, an encoded surrogate, a
/// sequence cut short) closes the connection with 1007, sent as raw frames since no well-behaved
/// client library would send them. Text split inside a character across two fragments is valid
/// and is answered. Other connections are not affected.
async fn a_text_frame_that_is_not_utf8_closes_with_1007(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let addr = server_addr(&server);
    let mut bystander = server.ws(&alice).await;

    let broken: [&[u8]; 4] = [
        b"{\"type\":\"ping\",\"ref\":\"\xff\"}",
        b"{\"type\":\"ping\",\"ref\":\"\xc0\xaf\"}",
        b"{\"type\":\"ping\",\"ref\":\"\xed\xa0\x80\"}",
        b"{\"type\":\"ping\",\"ref\":\"\xe2\x82",
    ];
    for payload in broken {
        let mut raw = RawWs::ready(addr, &alice.token).await;
        raw.send(OP_TEXT, true, payload).await;
        let (texts, close) = raw.until_close().await;
        assert_eq!(close.as_ref().map(|(code, _)| *code), Some(1007), "{payload:?}: answered {texts:?} then {close:?}");
        assert!(texts.is_empty(), "{payload:?}: no reply before the close, got {texts:?}");
    }

    // "é" is 0xC3 0xA9: the first fragment ends between the two bytes.
    let whole = "{\"type\":\"ping\",\"ref\":\"caf\u{e9}\",\"data\":{}}".as_bytes();
    let split = whole.iter().position(|&b| b == 0xc3).expect("é") + 1;
    let mut raw = RawWs::ready(addr, &alice.token).await;
    raw.send(OP_TEXT, false, &whole[..split]).await;
    raw.send(OP_CONTINUATION, true, &whole[split..]).await;
    assert_eq!(raw.text().await, json!({"type": "ack", "ref": "caf\u{e9}", "data": {}}));

    assert_eq!(bystander.ack("ping", json!({})).await, json!({}));
    server.stop().await;
}

/// GET with a raw request (the HTTP client refuses URLs as long as these): the status and the
/// body, or `None` if the server closed without an answer.
async fn raw_get(addr: SocketAddr, target: &str, token: &str) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    // The server may answer and close before reading it all: what it answered is what counts.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.expect("an answer in time");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&answer[..head_end]).to_string();
    let status = head.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|s| s.parse().ok())?;
    Some((status, answer[head_end..].to_vec()))
}

/// Query strings of 60 KB, 100 KB and 200 KB on each GET endpoint with parameters, and on the
/// WebSocket upgrade. 60 KB reaches the handlers: a 2xx or a clear 4xx. 100 KB is past what the
/// HTTP layer parses as a URI, 200 KB past its buffer for a request head: a 4xx. The server goes
/// on.
async fn a_100_kb_query_string_is_refused_and_the_server_goes_on(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = server.direct(&alice, &bob).await;
    let addr = server_addr(&server);

    for size in [60_000, 100_000, 200_000] {
        let long = "a".repeat(size);
        let targets = [
            format!("/api/users?q={long}"),
            format!("/api/users?q=al&x={long}"),
            format!("/api/conversations?before={long}"),
            format!("/api/conversations/{conversation}/messages?limit={long}"),
            format!("/api/conversations/{conversation}/messages?after_seq=0&pad={long}"),
            format!("/ws?token={long}"),
        ];
        for target in &targets {
            let shown = &target[..target.len().min(50)];
            let (status, body) =
                raw_get(addr, target, &alice.token).await.unwrap_or_else(|| panic!("GET {shown}…: no answer"));
            if size < 64 * 1024 {
                if let Err(problem) = check_answer(status, &body) {
                    panic!("GET {shown}… ({size} bytes): {problem}");
                }
            } else {
                assert!((400..500).contains(&status), "GET {shown}… ({size} bytes): {status}, expected a 4xx");
            }
        }
    }
    let (status, _) = get_text(&server, None, "/healthz").await;
    assert_eq!(status, 200);
    let (status, found) = server.get(Some(&alice), "/api/users?q=bo").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["users"][0]["username"], "bob");
    server.stop().await;
}

/// A client that sends a few thousand pings as fast as it can is closed with 1008 (the default
/// limit: 100 frames a second, bursts of 200); another connection of the same user is not
/// affected; a client that sends 150 pings in a burst gets all 150 answered and stays open.
async fn a_frame_flood_is_closed_with_1008_and_a_burst_is_not(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let addr = server_addr(&server);
    let mut calm = server.ws(&alice).await;

    let mut flood = RawWs::ready(addr, &alice.token).await;
    let ping = RawWs::frame(OP_TEXT, true, br#"{"type":"ping","data":{}}"#);
    let batch: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 100).collect();
    let RawWs { reader, writer } = &mut flood;
    let write = async {
        // 3,000 pings, unless the server has closed first.
        for _ in 0..30 {
            if writer.write_all(&batch).await.is_err() {
                break;
            }
        }
        // Then nothing more; the reader decides when this test moves on.
        std::future::pending::<()>().await
    };
    let (texts, close) = tokio::select! {
        () = write => unreachable!(),
        closed = reader.until_close() => closed,
    };
    assert_eq!(close, Some((1008, "too many frames".to_string())), "after {texts:?}");
    assert!(texts.is_empty(), "pings without a ref get no reply: {texts:?}");

    assert_eq!(calm.ack("ping", json!({})).await, json!({}));
    let mut burst = server.ws(&alice).await;
    let mut refs = Vec::new();
    for _ in 0..150 {
        refs.push(burst.command("ping", json!({})).await);
    }
    for reference in &refs {
        let reply = burst.reply_to(reference).await;
        assert_eq!(reply["type"], "ack", "{reply}");
    }
    assert_eq!(burst.ack("ping", json!({})).await, json!({}));
    assert_eq!(burst.closed, None);
    assert_eq!(calm.closed, None);
    server.stop().await;
}

// =============================================================================================
// 5. Logs

/// `parley` as a child process logging at debug level to a file; killed if the test fails.
struct Process {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server binary at `RUST_LOG=debug`: a user registers and logs in (and fails once) with
/// distinctive passwords, opens a WebSocket with the token in the query string, sends distinctive
/// message bodies over REST and WebSocket, and makes errors (a bad token on REST and on the
/// upgrade, bad frames carrying a body). After SIGTERM the log holds none of the passwords, the
/// tokens (nor their signatures), the bodies or the token secret; and it does hold the start-up
/// line and the debug lines of the session, so it was really capturing.
async fn logs_never_contain_a_token_a_password_or_a_message_body(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let admin_url = postgres_url().expect("PARLEY_TEST_DATABASE_URL");
            let name = format!("parley_h_{}", uuid::Uuid::new_v4().simple());
            pg_execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
            Some((admin_url, name))
        }
    };
    let database_url = match &pg {
        None => format!("sqlite://{}", dir.path().join("p.db").display()),
        Some((admin_url, name)) => with_database(admin_url, name),
    };
    let secret = "log-test-secret-4b8e1d77a0c3f9e2";
    let password = "Tr0ub4dor&3-hostile-pw-5d1e";
    let other_password = "correct-horse-battery-f00d-91";
    let wrong_password = "wrong-guess-e81c0f77";
    let rest_body = "rest body 7f3a never log me";
    let ws_body = "websocket body 9c4e never log me";
    let bad_frame_body = "bad-frame body 31d7 never log me";
    let garbage_token = "garbage-token-a1b2c3d4e5f6";

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let log = dir.path().join("server.log");
    let output = std::fs::File::create(&log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .env("PARLEY_BIND", addr.to_string())
        .env("PARLEY_DATABASE_URL", &database_url)
        .env("PARLEY_JWT_SECRET", secret)
        .env("PARLEY_WORKERS", "2")
        .env("PARLEY_CONVERSATION_THREADS", "2")
        .env("PARLEY_SHUTDOWN_TIMEOUT_SECS", "2")
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("log file"))
        .stderr(output)
        .spawn()
        .expect("start parley");
    let mut process = Process { child, log };
    let http = awc::Client::builder().timeout(PATIENCE).finish();
    let base = format!("http://{addr}");
    wait_ready(&http, &base, &process).await;

    let req = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = http.request(method.parse().expect("method"), format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let mut response = match body {
                Some(body) => request.send_json(&body).await,
                None => request.send().await,
            }
            .expect("request");
            let bytes = response.body().await.expect("body");
            (response.status().as_u16(), serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };
    let (status, registered) =
        req("POST", "/api/auth/register", None, Some(json!({"username": "logwatcher", "password": password}))).await;
    assert_eq!(status, 201, "{registered}");
    let (status, other) =
        req("POST", "/api/auth/register", None, Some(json!({"username": "other", "password": other_password}))).await;
    assert_eq!(status, 201, "{other}");
    let (status, wrong) =
        req("POST", "/api/auth/login", None, Some(json!({"username": "logwatcher", "password": wrong_password}))).await;
    assert_eq!(status, 401, "{wrong}");
    let (status, logged_in) =
        req("POST", "/api/auth/login", None, Some(json!({"username": "logwatcher", "password": password}))).await;
    assert_eq!(status, 200, "{logged_in}");
    let token = logged_in["token"].as_str().expect("token").to_string();
    let tokens = [
        registered["token"].as_str().expect("token").to_string(),
        token.clone(),
        other["token"].as_str().expect("token").to_string(),
    ];
    let other_id = other["user"]["id"].as_str().expect("id");

    let (status, conversation) =
        req("POST", "/api/conversations", Some(&token), Some(json!({"kind": "direct", "user_id": other_id}))).await;
    assert_eq!(status, 201, "{conversation}");
    let conversation = conversation["id"].as_str().expect("id").to_string();
    let path = format!("/api/conversations/{conversation}/messages");
    let (status, sent) = req("POST", &path, Some(&token), Some(json!({"body": rest_body}))).await;
    assert_eq!(status, 201, "{sent}");

    // Errors: a garbage token, a token with another's signature, on REST and on the upgrade.
    let (status, _) = req("GET", "/api/me", Some(garbage_token), None).await;
    assert_eq!(status, 401);
    let (head, _) = token.rsplit_once('.').expect("a JWT");
    let forged = format!("{head}.{}", tokens[2].rsplit_once('.').expect("a JWT").1);
    let (status, _) = req("GET", "/api/me", Some(&forged), None).await;
    assert_eq!(status, 401);
    let refused = RawWs::try_connect(addr, &format!("/ws?token={garbage_token}"), None).await;
    assert_eq!(refused.err().as_deref().map(|h| &h[..12]), Some("HTTP/1.1 401"));

    // The WebSocket, with the token in the query string as browsers send it.
    let mut ws = RawWs::try_connect(addr, &format!("/ws?token={token}"), None).await.expect("upgrade");
    assert_eq!(ws.text().await["type"], "session:ready");
    let send = json!({"type": "message:send", "ref": "s", "data": {"conversation_id": conversation, "body": ws_body}});
    ws.send(OP_TEXT, true, send.to_string().as_bytes()).await;
    let ack = ws.reply_to(&json!("s")).await;
    assert_eq!((&ack["type"], &ack["data"]["message"]["body"]), (&json!("ack"), &json!(ws_body)), "{ack}");
    let bad = [
        json!({"type": "message:send", "ref": "b1", "data": {"conversation_id": "nope", "body": bad_frame_body}}),
        json!({"type": bad_frame_body, "ref": "b2"}),
        json!({
            "type": "message:send",
            "ref": "b3",
            "data": {"conversation_id": conversation, "body": bad_frame_body, "x": 1},
        }),
    ];
    for frame in &bad {
        ws.send(OP_TEXT, true, frame.to_string().as_bytes()).await;
        let reply = ws.reply_to(&frame["ref"]).await;
        assert_eq!(reply["type"], "error", "{reply}");
    }
    ws.send(OP_TEXT, true, b"not json at all").await;
    let reply = loop {
        let frame = ws.text().await;
        if frame["type"] == "error" {
            break frame;
        }
    };
    assert_eq!(reply["data"]["code"], "bad_request");

    // Stop the server, and read what it wrote.
    // SAFETY: kill(2) on the pid of our own child, not yet reaped (only `Process::drop` reaps it).
    let signalled = unsafe { libc::kill(process.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(signalled, 0, "SIGTERM: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + PATIENCE;
    while process.child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the server did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = std::fs::read_to_string(&process.log).expect("the log");
    if let Some((admin_url, name)) = &pg {
        pg_execute(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }

    // It was capturing, at debug level: the start-up line, and the session's own debug lines.
    assert!(text.contains("listening on"), "no start-up line in the log:\n{text}");
    assert!(text.contains("opened for user"), "no debug line of the session in the log:\n{text}");
    let mut secrets: Vec<(&str, String)> = vec![
        ("the password", password.into()),
        ("the other password", other_password.into()),
        ("the wrong password", wrong_password.into()),
        ("the REST message body", rest_body.into()),
        ("the WebSocket message body", ws_body.into()),
        ("the body in a bad frame", bad_frame_body.into()),
        ("the garbage token", garbage_token.into()),
        ("the forged token", forged.clone()),
        ("the token secret", secret.into()),
    ];
    for token in &tokens {
        secrets.push(("a token", token.clone()));
        secrets.push(("a token's signature", token.rsplit_once('.').expect("a JWT").1.to_string()));
    }
    for (what, secret) in &secrets {
        let leaks: Vec<&str> = text.lines().filter(|line| line.contains(secret.as_str())).take(3).collect();
        assert!(leaks.is_empty(), "the log contains {what}:\n{}", leaks.join("\n"));
    }
}

async fn wait_ready(http: &awc::Client, base: &str, process: &Process) {
    let deadline = Instant::now() + 2 * PATIENCE;
    loop {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server is not ready:\n{}",
            std::fs::read_to_string(&process.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// =============================================================================================
// A WebSocket client on a raw TCP socket, for frames no client library would send

fn server_addr(server: &TestServer) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().expect("server address")
}

struct RawWs {
    reader: FrameReader,
    writer: OwnedWriteHalf,
}

struct FrameReader {
    stream: OwnedReadHalf,
    /// Bytes read and not parsed yet.
    buffer: Vec<u8>,
}

impl RawWs {
    /// Upgrades at `target` (`/ws`, or `/ws?token=…`), with `Authorization: Bearer` when given;
    /// `Err(head of the answer)` when refused.
    async fn try_connect(addr: SocketAddr, target: &str, bearer: Option<&str>) -> Result<RawWs, String> {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let read = upgrade(&mut stream, target, bearer).await?;
        let (stream, writer) = stream.into_split();
        Ok(RawWs { reader: FrameReader { stream, buffer: read }, writer })
    }

    /// Connected with `token` in the header, past `session:ready`.
    async fn ready(addr: SocketAddr, token: &str) -> RawWs {
        let mut ws = Self::try_connect(addr, "/ws", Some(token)).await.unwrap_or_else(|head| panic!("refused: {head}"));
        assert_eq!(ws.text().await["type"], "session:ready");
        ws
    }

    /// One client frame: masked, as RFC 6455 requires of clients.
    fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&MASK);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        frame
    }

    async fn send(&mut self, opcode: u8, fin: bool, payload: &[u8]) {
        self.writer.write_all(&Self::frame(opcode, fin, payload)).await.expect("send a frame");
    }

    /// The next text frame, as JSON.
    async fn text(&mut self) -> Value {
        self.reader.text().await
    }

    async fn until_close(&mut self) -> (Vec<Value>, Option<(u16, String)>) {
        self.reader.until_close().await
    }

    /// The reply (`ack` or `error`) carrying `reference`; events before it are passed over.
    async fn reply_to(&mut self, reference: &Value) -> Value {
        loop {
            let frame = self.text().await;
            if &frame["ref"] == reference && (frame["type"] == "ack" || frame["type"] == "error") {
                return frame;
            }
        }
    }
}

impl FrameReader {
    /// The next complete frame (opcode, payload); `None` once the connection ended.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((opcode, payload, used)) = parse_frame(&self.buffer) {
                self.buffer.drain(..used);
                return Some((opcode, payload));
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk)).await.expect("a frame in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn text(&mut self) -> Value {
        loop {
            match self.next().await {
                Some((OP_TEXT, payload)) => return serde_json::from_slice(&payload).expect("a JSON frame"),
                Some((OP_PING, _)) => {}
                other => panic!("a text frame was expected, got {other:?}"),
            }
        }
    }

    /// The text frames until the server's close frame, and its code and reason (`None` if the
    /// connection ended without one).
    async fn until_close(&mut self) -> (Vec<Value>, Option<(u16, String)>) {
        let mut texts = Vec::new();
        loop {
            match self.next().await {
                Some((OP_TEXT, payload)) => texts.push(serde_json::from_slice(&payload).unwrap_or(Value::Null)),
                Some((OP_CLOSE, payload)) if payload.len() >= 2 => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    return (texts, Some((code, String::from_utf8_lossy(&payload[2..]).to_string())));
                }
                Some((OP_CLOSE, _)) | None => return (texts, None),
                Some(_) => {}
            }
        }
    }
}

/// A complete server frame at the start of `bytes` (server frames are not masked): opcode,
/// payload and the bytes it used.
fn parse_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if bytes.len() < 2 {
        return None;
    }
    let opcode = bytes[0] & 0x0f;
    let (len, header) = match bytes[1] & 0x7f {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
        127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    (bytes.len() >= header + len).then(|| (opcode, bytes[header..header + len].to_vec(), header + len))
}
