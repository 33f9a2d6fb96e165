//! WebSocket connections and the few fields of the server's frames that the bench reads
//! (docs/PROTOCOL.md §3), parsed into small borrowed structs: the rest of a frame is skipped.

use std::borrow::Cow;
use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{Codec, Frame};
use awc::{BoxedSocket, Client};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;

pub type Socket = Framed<BoxedSocket, Codec>;

/// How long a connection may take to be upgraded and say `session:ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Any server frame: its type, ref, and the data left unparsed.
#[derive(Deserialize)]
pub struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(rename = "ref", default, borrow)]
    pub reference: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
}

/// `message:new` data.
#[derive(Deserialize)]
pub struct NewMessage<'a> {
    #[serde(borrow)]
    pub message: MessageFields<'a>,
}

#[derive(Deserialize)]
pub struct MessageFields<'a> {
    #[serde(borrow)]
    pub conversation_id: Cow<'a, str>,
    pub seq: u64,
    #[serde(borrow)]
    pub sender_id: Cow<'a, str>,
    #[serde(default, borrow)]
    pub client_id: Option<Cow<'a, str>>,
}

/// `error` data.
#[derive(Deserialize)]
pub struct ErrorData<'a> {
    #[serde(borrow)]
    pub code: Cow<'a, str>,
}

/// `session:ready` data.
#[derive(Deserialize)]
struct Ready<'a> {
    #[serde(borrow)]
    user: ReadyUser<'a>,
}

#[derive(Deserialize)]
struct ReadyUser<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// Opens an authenticated WebSocket and waits for `session:ready`; returns the socket and the
/// user id the server names. The error is short, to be counted by kind.
pub async fn connect(client: &Client, ws_base: &str, token: &str) -> Result<(Socket, String), String> {
    let opened = tokio::time::timeout(READY_TIMEOUT, async {
        let (_, mut socket) =
            client.ws(format!("{ws_base}/ws")).bearer_auth(token).max_frame_size(16 << 20).connect().await.map_err(
                |err| match err {
                    awc::error::WsClientError::InvalidResponseStatus(status) => format!("HTTP {}", status.as_u16()),
                    other => other.to_string(),
                },
            )?;
        loop {
            match socket.next().await {
                Some(Ok(Frame::Text(bytes))) => {
                    let frame: Incoming = serde_json::from_slice(&bytes).map_err(|e| format!("bad frame: {e}"))?;
                    if frame.kind == "session:ready" {
                        let data = frame.data.ok_or("session:ready without data")?;
                        let ready: Ready =
                            serde_json::from_str(data.get()).map_err(|e| format!("bad session:ready: {e}"))?;
                        let id = ready.user.id.into_owned();
                        return Ok((socket, id));
                    }
                }
                Some(Ok(Frame::Close(reason))) => {
                    return Err(format!(
                        "closed before session:ready ({})",
                        reason.map_or(1005, |r| u16::from(r.code))
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(format!("protocol error: {err}")),
                None => return Err("closed before session:ready".to_string()),
            }
        }
    })
    .await;
    opened.unwrap_or_else(|_| Err("timed out".to_string()))
}

/// A short key for an error, to count errors by kind.
pub fn error_key(err: &str) -> String {
    err.chars().take(60).collect()
}
