// Random JSON for fuzzing Parley's input, shared by the decoder's unit fuzz (src/protocol.rs
// includes tests/fuzz/decoder.rs, which includes this file) and the server fuzz of the
// integration tests (tests/it/random_input.rs). Plain comments, not `//!`: `#[path]` modules
// take either, and this keeps the file includable anywhere.

use proptest::prelude::*;
use serde_json::Value;

/// The command types of PROTOCOL.md §3.
pub const COMMANDS: &[&str] = &[
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
pub const FIELDS: &[&str] = &[
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

/// Strings that tend to matter: empty, blank, NUL and other controls, bidi overrides, a BOM,
/// LIKE wildcards, long runs, astral characters; mixed with arbitrary ones.
pub fn text() -> BoxedStrategy<String> {
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
pub fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        (-3i64..60).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0, 1, 200, 201]).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
    ]
    .boxed()
}

pub fn key() -> BoxedStrategy<String> {
    prop_oneof![3 => prop::sample::select(FIELDS).prop_map(String::from), 1 => text()].boxed()
}

/// Arbitrary JSON: nested objects, arrays, strings and numbers.
pub fn json_value() -> BoxedStrategy<Value> {
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

pub fn uuid() -> BoxedStrategy<uuid::Uuid> {
    any::<u128>().prop_map(uuid::Uuid::from_u128).boxed()
}
