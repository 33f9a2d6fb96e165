//! The OpenAPI document (`docs/openapi.json`, served at `GET /api/openapi.json`) is written by
//! hand, so nothing but this keeps it true: every route of the route table (`src/http/mod.rs`)
//! is in it, and every operation in it is a route; the server serves that very document,
//! without a token, as OpenAPI 3.1 of the crate's version, with one unique `operationId` per
//! operation and no `$ref` pointing nowhere. (CI's OpenAPI validator checks the rest of its
//! shape.)
//!
//! The route table is read as text, as `layers` reads the sources: a route added to it and not
//! to the document fails here, with its method and path.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// `(METHOD, path)`, the path in OpenAPI form (`/api/users/{id}`, as actix writes it too).
type Route = (String, String);

/// HEAD is left out on both sides: the route table answers it beside GET where a route is
/// guarded so (`get_or_head`), and whether the document spells it out is the document's choice.
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "patch", "trace"];

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = std::fs::read_to_string(root.join("src/http/mod.rs")).expect("src/http/mod.rs is readable");
    let routes = route_table(&table);
    // A parser that silently read nothing would pass the comparison below with an empty table.
    for known in [("GET", "/healthz"), ("GET", "/api/info"), ("POST", "/api/conversations/{id}/messages")] {
        let known = (known.0.to_string(), known.1.to_string());
        assert!(routes.contains(&known), "the route table was misread: no {known:?} in {routes:#?}");
    }

    let document = document_file();
    let documented = documented_routes(&document);
    let undocumented: Vec<_> = routes.difference(&documented).map(|(m, p)| format!("  {m} {p}")).collect();
    let unrouted: Vec<_> = documented.difference(&routes).map(|(m, p)| format!("  {m} {p}")).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "docs/openapi.json and the route table of src/http/mod.rs differ.\n\
         In the route table, not in the document:\n{}\n\
         In the document, not in the route table:\n{}",
        list_or_none(&undocumented),
        list_or_none(&unrouted),
    );
}

#[actix_web::test]
async fn the_document_is_served_and_is_openapi_3_1() {
    let server = TestServer::start(Backend::Sqlite).await;

    let answer = server.client.get(server.url("/api/openapi.json")).send().await.expect("GET /api/openapi.json");
    let content_type = answer.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content type {content_type:?}");
    let (status, document) = server.get(None, "/api/openapi.json").await;
    assert_eq!(status, 200, "no token needed: {document}");
    assert_eq!(document, document_file(), "the server serves docs/openapi.json as it is");

    let openapi = document["openapi"].as_str().unwrap_or_default();
    assert!(openapi.starts_with("3.1"), "openapi is {openapi:?}");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"), "info.version is the crate's version");

    let mut ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item").iter().filter(|(m, _)| is_method(m)) {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} is used twice ({method} {path})");
        }
    }

    let mut dangling = Vec::new();
    references(&document, &document, &mut dangling);
    assert!(dangling.is_empty(), "$refs that point at nothing: {dangling:?}");
    server.stop().await;
}

fn document_file() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let text = std::fs::read_to_string(&path).expect("docs/openapi.json is readable");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("docs/openapi.json is not JSON: {err}"))
}

/// `head` counts as an operation (it needs an operationId) but not as a route to compare.
fn is_method(key: &str) -> bool {
    METHODS.contains(&key) || key == "head"
}

fn documented_routes(document: &Value) -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("docs/openapi.json has paths") {
        for method in item.as_object().expect("a path item").keys().filter(|m| METHODS.contains(&m.as_str())) {
            routes.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes
}

/// Every local `$ref` (`#/components/...`) in `value` that names nothing in `document`.
fn references(document: &Value, value: &Value, dangling: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let found = target.strip_prefix('#').is_some_and(|pointer| document.pointer(pointer).is_some());
                if !found {
                    dangling.push(target.clone());
                }
            }
            map.values().for_each(|v| references(document, v, dangling));
        }
        Value::Array(items) => items.iter().for_each(|v| references(document, v, dangling)),
        _ => {}
    }
}

fn list_or_none(lines: &[String]) -> String {
    if lines.is_empty() { "  (none)".to_string() } else { lines.join("\n") }
}

// ---------------------------------------------------------------------------------------------
// Reading the route table.
//
// It understands what `routes()` is made of: `.route("PATH", METHOD...)` on `cfg` or on a
// `web::scope("PREFIX")` (nested scopes too), where METHOD is `web::get()` and its siblings,
// `web::method(Method::X)`, `web::route()` with `guard::X()` guards, or a local closure
// (`let name = || ...;`) made of those. A scope's routes are those chained on it: they sit inside
// the parentheses of the `.service(` that holds it, so the scope ends where those close. Anything
// else that could add a route (`web::resource`, `.configure`, a `.service` of something other
// than a scope, a route of every method) stops the test with a request to teach it.

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Mark(char),
}

fn word(token: Option<&Token>, expected: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w == expected)
}

fn mark(token: Option<&Token>, expected: char) -> bool {
    matches!(token, Some(Token::Mark(c)) if *c == expected)
}

/// Rust source as words, string literals and punctuation; comments dropped.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            let (text, end) = string_literal(&chars, i + 1);
            out.push(Token::Text(text));
            i = end;
        } else if (c == 'r' || c == 'b') && matches!(next, Some('"') | Some('#') | Some('r')) && raw_start(&chars, i) {
            panic!("src/http/mod.rs has a raw or byte string literal: teach tests/it/openapi.rs to read it");
        } else if c == '\'' {
            // A char literal ('x', '\n') is skipped whole; a lifetime ('a) leaves its name a word.
            if next == Some('\\') {
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Mark(c));
            i += 1;
        }
    }
    out
}

/// Whether the `r`/`b` at `i` opens a literal (`r"`, `r#"`, `b"`, `br"`), not a word.
fn raw_start(chars: &[char], i: usize) -> bool {
    let after_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    let mut j = i + 1;
    if chars[i] == 'b' && chars.get(j) == Some(&'r') {
        j += 1;
    }
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    !after_word && chars.get(j) == Some(&'"')
}

/// The text of a string literal whose content starts at `start`, and the index after it.
fn string_literal(chars: &[char], start: usize) -> (String, usize) {
    let mut text = String::new();
    let mut i = start;
    while i < chars.len() && chars[i] != '"' {
        if chars[i] == '\\' {
            i += 1;
        }
        if let Some(c) = chars.get(i) {
            text.push(*c);
        }
        i += 1;
    }
    (text, i + 1)
}

/// The index of the bracket that closes the one at `open`.
fn closing(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Mark('(' | '[' | '{') => depth += 1,
            Token::Mark(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    panic!("src/http/mod.rs: a bracket that never closes");
}

/// `let NAME = || EXPR;` in the file: the tokens of EXPR.
fn closure<'a>(tokens: &'a [Token], name: &str) -> Option<&'a [Token]> {
    let at = tokens.windows(5).position(|w| {
        matches!(w, [Token::Word(l), Token::Word(n), Token::Mark('='), Token::Mark('|'), Token::Mark('|')]
            if l == "let" && n == name)
    })?;
    let start = at + 5;
    let end = start + tokens[start..].iter().position(|t| mark(Some(t), ';'))?;
    Some(&tokens[start..end])
}

/// The methods a route's second argument (`web::get().to(...)`, ...) answers.
fn methods(all: &[Token], expression: &[Token], path: &str) -> BTreeSet<String> {
    let plain = ["get", "post", "put", "patch", "delete", "head"];
    let first = expression.first();
    if word(first, "web") && mark(expression.get(1), ':') {
        let Some(Token::Word(function)) = expression.get(3) else { cannot_read(path, expression) };
        if plain.contains(&function.as_str()) {
            return BTreeSet::from([function.to_ascii_uppercase()]);
        }
        let named: BTreeSet<String> = expression
            .windows(4)
            .filter_map(|w| match (&w[0], &w[3]) {
                (Token::Word(module), Token::Word(name)) if module == "guard" || module == "Method" => {
                    Some(name.to_ascii_uppercase())
                }
                _ => None,
            })
            .filter(|name| plain.iter().any(|p| p.eq_ignore_ascii_case(name)))
            .collect();
        if (function == "route" || function == "method") && !named.is_empty() {
            return named;
        }
        cannot_read(path, expression)
    }
    // A local closure that makes the route (`get_or_head()`).
    if let Some(Token::Word(name)) = first
        && mark(expression.get(1), '(')
        && let Some(body) = closure(all, name)
    {
        return methods(all, body, path);
    }
    cannot_read(path, expression)
}

fn cannot_read(path: &str, expression: &[Token]) -> ! {
    panic!("src/http/mod.rs: the route {path:?} has a method this test cannot read: {expression:?}")
}

/// Every `(METHOD, path)` the route table serves, HEAD left out.
fn route_table(source: &str) -> BTreeSet<Route> {
    let all = tokens(source);
    let mut routes = BTreeSet::new();
    // Open scopes: the bracket depth their `web::scope(` sits at, and their prefix.
    let mut scopes: Vec<(usize, String)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < all.len() {
        let token = &all[i];
        match token {
            Token::Mark('(' | '[' | '{') => depth += 1,
            Token::Mark(')' | ']' | '}') => {
                depth = depth.checked_sub(1).expect("src/http/mod.rs: a bracket closes that never opened");
                while scopes.last().is_some_and(|(at, _)| *at > depth) {
                    scopes.pop();
                }
            }
            Token::Word(w) if w == "resource" || w == "configure" || w == "external_resource" => {
                panic!("src/http/mod.rs uses `{w}`: teach tests/it/openapi.rs to read the routes it adds");
            }
            Token::Word(w) if w == "scope" && word(i.checked_sub(3).and_then(|j| all.get(j)), "web") => {
                let Some(Token::Text(prefix)) = all.get(i + 2) else {
                    panic!("src/http/mod.rs: a web::scope without a literal prefix");
                };
                scopes.push((depth, prefix.clone()));
            }
            Token::Word(w) if w == "service" && mark(i.checked_sub(1).and_then(|j| all.get(j)), '.') => {
                let scope = word(all.get(i + 2), "web") && word(all.get(i + 5), "scope");
                assert!(
                    scope,
                    "src/http/mod.rs: a .service( that holds no web::scope: teach tests/it/openapi.rs to read it"
                );
            }
            Token::Word(w) if w == "route" && mark(i.checked_sub(1).and_then(|j| all.get(j)), '.') => {
                let close = closing(&all, i + 1);
                let Some(Token::Text(path)) = all.get(i + 2) else {
                    panic!("src/http/mod.rs: a .route( without a literal path: {:?}", &all[i..=close]);
                };
                assert!(mark(all.get(i + 3), ','), "src/http/mod.rs: .route({path:?} not followed by a comma");
                let prefix: String = scopes.iter().map(|(_, p)| p.as_str()).collect();
                let full = format!("{prefix}{path}");
                assert!(full.starts_with('/'), "src/http/mod.rs: the route {full:?} does not start with /");
                for method in methods(&all, &all[i + 4..close], &full) {
                    if method != "HEAD" {
                        routes.insert((method, full.clone()));
                    }
                }
                // The arguments hold no scope or route; their brackets are balanced.
                i = close + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    assert!(scopes.is_empty() && depth == 0, "src/http/mod.rs: brackets do not balance as this test reads them");
    routes
}
