//! A WebSocket client for tests: it keeps the frames it read but was not asked for yet, so a
//! test waits for the event it means and the others stay for later.

use std::collections::VecDeque;

use actix_codec::Framed;
use awc::ws;
use awc::{BoxedSocket, Client};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::{PATIENCE, TestUser};

/// A WebSocket client that keeps the frames it read but was not asked for yet.
pub struct Ws {
    framed: Framed<BoxedSocket, ws::Codec>,
    pending: VecDeque<Value>,
    next_ref: u64,
    /// The close code, once the server closed.
    pub closed: Option<u16>,
}

impl Ws {
    /// Opens a WebSocket as `user` on the server at `ws_base` (`ws://host:port`, also a server
    /// running as a separate process) and reads its `session:ready`.
    pub async fn open(ws_base: &str, user: &TestUser) -> Ws {
        let client = Client::builder().timeout(PATIENCE).finish();
        let request = client.ws(format!("{ws_base}/ws")).bearer_auth(&user.token).max_frame_size(16 << 20);
        let mut ws = Ws::connect(request).await.expect("WebSocket opens");
        let ready = ws.event("session:ready").await;
        assert_eq!(ready["user"]["id"], user.id.as_str(), "session:ready names the user");
        ws
    }

    pub(super) async fn connect(request: awc::ws::WebsocketsRequest) -> Result<Ws, u16> {
        match request.connect().await {
            Ok((_, framed)) => Ok(Ws { framed, pending: VecDeque::new(), next_ref: 0, closed: None }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(err) => panic!("WebSocket connect failed: {err}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.framed.send(ws::Message::Text(text.to_string().into())).await.expect("send frame");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.framed.send(ws::Message::Binary(bytes.to_vec().into())).await.expect("send frame");
    }

    /// Sends a command with a fresh `ref` and returns the ref.
    pub async fn command(&mut self, kind: &str, data: Value) -> String {
        self.try_command(kind, data).await.expect("send frame")
    }

    /// Like [`Ws::command`], but `None` when the connection is gone.
    pub async fn try_command(&mut self, kind: &str, data: Value) -> Option<String> {
        self.next_ref += 1;
        let reference = format!("r{}", self.next_ref);
        let text = json!({"type": kind, "ref": reference, "data": data}).to_string();
        self.framed.send(ws::Message::Text(text.into())).await.ok().map(|()| reference)
    }

    /// Sends a command and returns its reply frame (`ack` or `error`), keeping other frames.
    pub async fn request(&mut self, kind: &str, data: Value) -> Value {
        let reference = self.command(kind, data).await;
        self.reply_to(&reference).await
    }

    /// The reply to `reference`.
    pub async fn reply_to(&mut self, reference: &str) -> Value {
        self.take(|f| f["ref"] == reference && (f["type"] == "ack" || f["type"] == "error")).await
    }

    /// Sends a command that must succeed and returns the ack's data.
    pub async fn ack(&mut self, kind: &str, data: Value) -> Value {
        let reply = self.request(kind, data.clone()).await;
        assert_eq!(reply["type"], "ack", "{kind} {data} should be acked, got {reply}");
        reply["data"].clone()
    }

    /// Sends a command that must fail and returns the error code.
    pub async fn error(&mut self, kind: &str, data: Value) -> String {
        let reply = self.request(kind, data.clone()).await;
        assert_eq!(reply["type"], "error", "{kind} {data} should fail, got {reply}");
        reply["data"]["code"].as_str().expect("error code").to_string()
    }

    /// The data of the next event of type `kind` (frames of other types are kept).
    pub async fn event(&mut self, kind: &str) -> Value {
        self.take(|f| f["type"] == kind).await["data"].clone()
    }

    /// The next event of type `kind` whose data satisfies `matches`.
    pub async fn event_where(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.take(|f| f["type"] == kind && matches(&f["data"])).await["data"].clone()
    }

    /// The next frame of any kind (kept frames first).
    pub async fn next(&mut self) -> Value {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        self.read().await.unwrap_or_else(|| panic!("connection closed ({:?}) while a frame was expected", self.closed))
    }

    /// The next frame of any kind (kept frames first); `None` once the server closed.
    pub async fn try_next(&mut self) -> Option<Value> {
        match self.pending.pop_front() {
            Some(frame) => Some(frame),
            None => self.read().await,
        }
    }

    /// Frames kept so far that match, removed from the buffer.
    pub fn drain(&mut self, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        let (taken, kept): (Vec<Value>, Vec<Value>) = self.pending.drain(..).partition(|f| matches(f));
        self.pending = kept.into();
        taken
    }

    async fn take(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&matches) {
            return self.pending.remove(i).expect("frame");
        }
        loop {
            let frame = self
                .read()
                .await
                .unwrap_or_else(|| panic!("connection closed ({:?}) before the expected frame", self.closed));
            if matches(&frame) {
                return frame;
            }
            self.pending.push_back(frame);
        }
    }

    /// Reads one JSON frame; `None` once the server closed. Fails after [`PATIENCE`].
    async fn read(&mut self) -> Option<Value> {
        if self.closed.is_some() {
            return None;
        }
        loop {
            let frame =
                tokio::time::timeout(PATIENCE, self.framed.next()).await.expect("no frame from the server in time");
            match frame {
                Some(Ok(ws::Frame::Text(bytes))) => return Some(serde_json::from_slice(&bytes).expect("JSON frame")),
                Some(Ok(ws::Frame::Ping(payload))) => {
                    let _ = self.framed.send(ws::Message::Pong(payload)).await;
                }
                Some(Ok(ws::Frame::Close(reason))) => {
                    self.closed = Some(reason.map_or(1005, |r| r.code.into()));
                    return None;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    self.closed.get_or_insert(1006);
                    return None;
                }
            }
        }
    }

    /// Waits until the server closes the connection and returns the close code.
    pub async fn closed_with(&mut self) -> u16 {
        while self.read().await.is_some() {}
        self.closed.expect("close code")
    }

    pub async fn close(mut self) {
        let _ = self.framed.send(ws::Message::Close(None)).await;
    }
}
