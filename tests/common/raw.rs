//! A WebSocket by hand on a raw TCP socket, for clients no library would be: one that never
//! reads (a slow consumer, a silent connection), one that sends broken frames.
#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// The complete frames (opcode, payload) in what the server sent (server frames are unmasked).
pub fn parse_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize, 10),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if bytes.len() < header + len {
            break;
        }
        frames.push((opcode, bytes[header..header + len].to_vec()));
        bytes = &bytes[header + len..];
    }
    frames
}

/// The code of a close frame's payload.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}
