//! The packets of Engine.IO v4 and Socket.IO v5, as text, and the translation between a
//! Socket.IO event and a Parley frame (docs/SOCKETIO.md). No I/O: the unit tests below run it.
//!
//! Engine.IO: one character of type (`0` open, `1` close, `2` ping, `3` pong, `4` message, `5`
//! upgrade, `6` noop) and its data; over long-polling several packets travel in one body,
//! separated by U+001E. Socket.IO rides in Engine.IO messages: a type (`0` CONNECT, `1`
//! DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5` BINARY_EVENT, `6` BINARY_ACK), then
//! `/namespace,` unless it is the main one, then an acknowledgement id for EVENT and ACK, then
//! JSON. An event is `["name", ...args]`; an ack `[...args]`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::aliases::Aliases;
use crate::error::{Error, Result};

/// What separates the packets of a long-polling body.
pub const SEPARATOR: char = '\u{1e}';

/// A Socket.IO packet from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientPacket<'a> {
    /// Into a namespace, with the `auth` object of the client's options, if any.
    Connect {
        namespace: &'a str,
        auth: Option<&'a str>,
    },
    Disconnect {
        namespace: &'a str,
    },
    /// `socket.emit(name, data, ack)`: `args` is the JSON array `["name", data]`.
    Event {
        namespace: &'a str,
        id: Option<u64>,
        args: &'a str,
    },
    /// An answer to an event the server asked to be acknowledged (it asks none).
    Ack,
    /// An event or an ack with binary attachments (Parley's commands are JSON), with its ack id.
    Binary {
        id: Option<u64>,
    },
}

impl<'a> ClientPacket<'a> {
    pub fn parse(text: &'a str) -> Result<ClientPacket<'a>> {
        let bad = |why: &str| Error::bad_request(format!("bad Socket.IO packet: {why}"));
        let mut chars = text.chars();
        let kind = chars.next().ok_or_else(|| bad("empty"))?;
        let mut rest = chars.as_str();
        if matches!(kind, '5' | '6') {
            // `5<attachments>-[/namespace,][id][...]`
            rest = rest.split_once('-').map_or("", |(_, after)| after);
        }
        let (namespace, rest) = match rest.strip_prefix('/') {
            Some(_) => match rest.split_once(',') {
                Some((namespace, rest)) => (namespace, rest),
                None => (rest, ""),
            },
            None => ("/", rest),
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (id, json) = rest.split_at(digits);
        let id = if digits == 0 { None } else { Some(id.parse().map_err(|_| bad("ack id too large"))?) };
        match kind {
            '0' => Ok(ClientPacket::Connect { namespace, auth: Some(json).filter(|j| !j.is_empty()) }),
            '1' => Ok(ClientPacket::Disconnect { namespace }),
            '2' if json.starts_with('[') => Ok(ClientPacket::Event { namespace, id, args: json }),
            '2' => Err(bad("an event is a JSON array")),
            '3' => Ok(ClientPacket::Ack),
            '5' | '6' => Ok(ClientPacket::Binary { id }),
            _ => Err(bad("unknown type")),
        }
    }
}

/// The Parley frame of an event's arguments (`["message:send", {...}]` with ack id 17 is
/// `{"type": "message:send", "ref": 17, "data": {...}}`): the name through the aliases,
/// camelCase field names in snake_case.
pub fn to_frame(args: &str, id: Option<u64>, aliases: &Aliases) -> Result<String> {
    let args: Vec<Value> = serde_json::from_str(args).map_err(|err| Error::bad_request(format!("bad event: {err}")))?;
    let mut args = args.into_iter();
    let Some(Value::String(name)) = args.next() else {
        return Err(Error::bad_request("an event starts with its name"));
    };
    let mut frame = serde_json::Map::new();
    frame.insert("type".into(), Value::String(aliases.command(&name).to_string()));
    if let Some(id) = id {
        frame.insert("ref".into(), Value::from(id));
    }
    if let Some(mut data) = args.next() {
        snake_case_keys(&mut data);
        frame.insert("data".into(), data);
    }
    if args.next().is_some() {
        return Err(Error::bad_request("an event carries one object of data"));
    }
    Ok(Value::Object(frame).to_string())
}

/// `conversationId` → `conversation_id`, in every object (front-ends written for Node servers
/// send camelCase).
fn snake_case_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut inner) in entries {
                snake_case_keys(&mut inner);
                map.insert(snake_case(&key).into_owned(), inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(snake_case_keys),
        _ => {}
    }
}

fn snake_case(key: &str) -> Cow<'_, str> {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A Parley frame as it comes out of a session, seen through without copying its data.
#[derive(Deserialize)]
struct Parts<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(rename = "ref", borrow)]
    reference: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// The Socket.IO packet that carries Parley `frame` to a client of `namespace`: an `ack` or an
/// `error` with a `ref` is the ACK of that event (the error as `{"error": {...}}`); anything
/// else an EVENT of the frame's type (through the aliases) with its data.
pub fn from_frame(frame: &str, namespace: &str, aliases: &Aliases) -> Option<String> {
    let parts: Parts = serde_json::from_str(frame).ok()?;
    let data = parts.data.map_or("{}", RawValue::get);
    let prefix = namespace_prefix(namespace);
    Some(match (parts.kind.as_ref(), parts.reference) {
        ("ack", Some(id)) => format!("3{prefix}{}[{data}]", id.get()),
        ("error", Some(id)) => format!("3{prefix}{}[{{\"error\":{data}}}]", id.get()),
        (kind, _) => {
            let name = serde_json::to_string(aliases.event(kind)).ok()?;
            format!("2{prefix}[{name},{data}]")
        }
    })
}

/// `/name,` before the rest of a packet of a namespace other than the main one.
pub fn namespace_prefix(namespace: &str) -> Cow<'_, str> {
    if namespace == "/" { Cow::Borrowed("") } else { Cow::Owned(format!("{namespace},")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_packets_are_read_as_the_protocol_writes_them() {
        assert_eq!(ClientPacket::parse("0").unwrap(), ClientPacket::Connect { namespace: "/", auth: None });
        assert_eq!(
            ClientPacket::parse(r#"0/chat,{"token":"t"}"#).unwrap(),
            ClientPacket::Connect { namespace: "/chat", auth: Some(r#"{"token":"t"}"#) }
        );
        assert_eq!(ClientPacket::parse("1/chat,").unwrap(), ClientPacket::Disconnect { namespace: "/chat" });
        assert_eq!(
            ClientPacket::parse(r#"212["ping"]"#).unwrap(),
            ClientPacket::Event { namespace: "/", id: Some(12), args: r#"["ping"]"# }
        );
        assert_eq!(
            ClientPacket::parse(r#"2/chat,["typing:start",{}]"#).unwrap(),
            ClientPacket::Event { namespace: "/chat", id: None, args: r#"["typing:start",{}]"# }
        );
        assert_eq!(
            ClientPacket::parse(r#"51-["x",{"_placeholder":true,"num":0}]"#).unwrap(),
            ClientPacket::Binary { id: None }
        );
        assert_eq!(ClientPacket::parse(r#"51-/chat,9["x",{}]"#).unwrap(), ClientPacket::Binary { id: Some(9) });
        assert!(ClientPacket::parse("").is_err());
        assert!(ClientPacket::parse("9").is_err());
        assert!(ClientPacket::parse(r#"2{"not":"an array"}"#).is_err());
        assert!(ClientPacket::parse("299999999999999999999999[]").is_err());
    }

    #[test]
    fn an_event_becomes_a_frame_with_its_ack_id_as_ref_and_snake_case_fields() {
        let aliases = Aliases::default();
        let frame =
            to_frame(r#"["message:send",{"conversationId":"c","body":"hi","clientId":"a-1"}]"#, Some(3), &aliases);
        let frame: Value = serde_json::from_str(&frame.unwrap()).unwrap();
        assert_eq!(frame["type"], "message:send");
        assert_eq!(frame["ref"], 3);
        assert_eq!(frame["data"]["conversation_id"], "c");
        assert_eq!(frame["data"]["client_id"], "a-1");
        let nested = to_frame(r#"["sync",{"conversations":[{"conversationId":"c","afterSeq":4}]}]"#, None, &aliases);
        let nested: Value = serde_json::from_str(&nested.unwrap()).unwrap();
        assert_eq!(nested["data"]["conversations"][0]["after_seq"], 4);
        assert!(nested.get("ref").is_none());
        assert!(to_frame("[1,2]", None, &aliases).is_err());
        assert!(to_frame(r#"["a",{},{}]"#, None, &aliases).is_err());
    }

    #[test]
    fn frames_become_acks_and_events() {
        let aliases = Aliases::default();
        let ack = from_frame(r#"{"type":"ack","ref":7,"data":{"message":{"seq":1}}}"#, "/", &aliases);
        assert_eq!(ack.unwrap(), r#"37[{"message":{"seq":1}}]"#);
        let error =
            from_frame(r#"{"type":"error","ref":7,"data":{"code":"not_found","message":"m"}}"#, "/chat", &aliases);
        assert_eq!(error.unwrap(), r#"3/chat,7[{"error":{"code":"not_found","message":"m"}}]"#);
        let event = from_frame(r#"{"type":"message:new","data":{"message":{}}}"#, "/", &aliases);
        assert_eq!(event.unwrap(), r#"2["message:new",{"message":{}}]"#);
        let unreffed = from_frame(r#"{"type":"error","data":{"code":"bad_request"}}"#, "/", &aliases);
        assert_eq!(unreffed.unwrap(), r#"2["error",{"code":"bad_request"}]"#);
    }
}
