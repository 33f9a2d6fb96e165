//! A WebSocket by hand on a raw TCP socket, for clients no library would be: one that never
//! reads (a slow consumer, a silent connection), one that sends broken frames ([`RawWs`]); and
//! the one parser of the frames a server sends.
use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use super::PATIENCE;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;

/// Sends the upgrade request for `target` (`/ws`, `/ws?token=…`), with `Authorization: Bearer`
/// when given, and reads the answer's head: `Ok(bytes already read past it)` on 101,
/// `Err(the head)` otherwise.
pub async fn upgrade(stream: &mut TcpStream, target: &str, bearer: Option<&str>) -> Result<Vec<u8>, String> {
    let addr = stream.peer_addr().expect("peer address");
    let authorization = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{authorization}\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send the upgrade");
    let mut read = Vec::new();
    let head_end = loop {
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("upgrade answer in time")
            .expect("read the upgrade answer");
        assert!(n > 0, "connection closed during the upgrade: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&read[..head_end]).to_string();
    if head.starts_with("HTTP/1.1 101") { Ok(read[head_end..].to_vec()) } else { Err(head) }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server closed the connection.
    Eof,
    /// The server reset it.
    Reset,
}

/// A client that upgrades and then reads only when told (a client that stops reading, or one
/// that never answers pings).
pub struct StalledWs {
    stream: TcpStream,
    /// Bytes read past the handshake's answer.
    read: Vec<u8>,
}

impl StalledWs {
    /// Connects (with a small receive buffer if asked) and upgrades with `token`.
    pub async fn connect(addr: SocketAddr, token: &str, recv_buffer: Option<u32>) -> StalledWs {
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let mut stream = socket.connect(addr).await.expect("connect");
        let read =
            upgrade(&mut stream, "/ws", Some(token)).await.unwrap_or_else(|head| panic!("upgrade refused: {head}"));
        StalledWs { stream, read }
    }

    /// Reads everything until the server ends the connection (fails after [`PATIENCE`]).
    pub async fn read_to_end(&mut self) -> (Ending, Vec<u8>) {
        let mut bytes = std::mem::take(&mut self.read);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await.unwrap_or_else(|_| {
                panic!("the server did not end the connection in time ({} bytes read)", bytes.len())
            });
            match read {
                Ok(0) => return (Ending::Eof, bytes),
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return (Ending::Reset, bytes),
                Err(err) => panic!("reading: {err}"),
            }
        }
    }
}

/// The complete frames (opcode, payload) in what the server sent.
pub fn parse_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while let Some((opcode, payload, used)) = parse_frame(bytes) {
        frames.push((opcode, payload));
        bytes = &bytes[used..];
    }
    frames
}

/// A complete server frame at the start of `bytes` (server frames are not masked): opcode,
/// payload and the bytes it used.
pub fn parse_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
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

/// The code of a close frame's payload.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// A client that sends frames by hand (broken ones too) and reads the server's.
pub struct RawWs {
    pub reader: FrameReader,
    pub writer: OwnedWriteHalf,
}

pub struct FrameReader {
    stream: OwnedReadHalf,
    /// Bytes read and not parsed yet.
    buffer: Vec<u8>,
}

impl RawWs {
    /// Upgrades at `target` (`/ws`, or `/ws?token=…`), with `Authorization: Bearer` when given;
    /// `Err(head of the answer)` when refused.
    pub async fn try_connect(addr: SocketAddr, target: &str, bearer: Option<&str>) -> Result<RawWs, String> {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let read = upgrade(&mut stream, target, bearer).await?;
        let (stream, writer) = stream.into_split();
        Ok(RawWs { reader: FrameReader { stream, buffer: read }, writer })
    }

    /// Connected with `token` in the header, past `session:ready`.
    pub async fn ready(addr: SocketAddr, token: &str) -> RawWs {
        let mut ws = Self::try_connect(addr, "/ws", Some(token)).await.unwrap_or_else(|head| panic!("refused: {head}"));
        assert_eq!(ws.text().await["type"], "session:ready");
        ws
    }

    /// One client frame: masked, as RFC 6455 requires of clients.
    pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
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

    pub async fn send(&mut self, opcode: u8, fin: bool, payload: &[u8]) {
        self.writer.write_all(&Self::frame(opcode, fin, payload)).await.expect("send a frame");
    }

    /// The next text frame, as JSON.
    pub async fn text(&mut self) -> Value {
        self.reader.text().await
    }

    pub async fn until_close(&mut self) -> (Vec<Value>, Option<(u16, String)>) {
        self.reader.until_close().await
    }

    /// The reply (`ack` or `error`) carrying `reference`; events before it are passed over.
    pub async fn reply_to(&mut self, reference: &Value) -> Value {
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
    pub async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
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

    pub async fn text(&mut self) -> Value {
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
    pub async fn until_close(&mut self) -> (Vec<Value>, Option<(u16, String)>) {
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

/// Reads one HTTP answer from `stream`: its head, and its body by `Content-Length`; `None` when
/// the server closed the connection before a whole answer (fails after [`PATIENCE`]).
pub async fn read_answer(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut read = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&read[..end + 4]).to_string();
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if read.len() >= end + 4 + length {
                return Some((head, read[end + 4..end + 4 + length].to_vec()));
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.expect("an answer in time").ok()?;
        if n == 0 {
            return None;
        }
        read.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the server closes `stream` (reads to its end; fails after [`PATIENCE`]).
pub async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}
