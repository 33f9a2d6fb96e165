//! Attachments from a client's side: multipart bodies made by hand (so that a test can make
//! them wrong), downloads with their status and headers, and images made in the test.

use std::io::Cursor;

use awc::http::header::HeaderMap;
use serde_json::Value;

use super::TestUser;
use super::http::Http;

/// One part of a multipart body: field name, file name, content type, bytes.
pub struct Part<'a> {
    pub field: &'a str,
    pub filename: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

impl<'a> Part<'a> {
    /// The usual part: field `file`.
    pub fn file(filename: &'a str, content_type: &'a str, bytes: &'a [u8]) -> Part<'a> {
        Part { field: "file", filename, content_type, bytes }
    }
}

const BOUNDARY: &str = "parley-test-boundary-7d1c";

/// A `multipart/form-data` body of `parts`, and its content type.
pub fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                part.field,
                // A quoted-string: backslashes and quotes escaped, as browsers do.
                part.filename.replace('\\', "\\\\").replace('"', "\\\""),
                part.content_type
            )
            .as_bytes(),
        );
        body.extend_from_slice(part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// A download: status, headers, bytes.
pub struct Fetched {
    pub status: u16,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Fetched {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl Http {
    /// Uploads `parts` to `conversation` as `user`: the status and the JSON answer.
    pub async fn upload_parts(&self, user: &TestUser, conversation: &str, parts: &[Part<'_>]) -> (u16, Value) {
        let (content_type, body) = multipart(parts);
        let path = format!("/api/conversations/{conversation}/attachments");
        let mut response = self
            .client
            .post(self.url(&path))
            .bearer_auth(&user.token)
            .insert_header(("Content-Type", content_type))
            .send_body(body)
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let bytes = response.body().limit(1 << 20).await.expect("answer body");
        let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON answer") };
        (response.status().as_u16(), json)
    }

    /// Uploads one file (field `file`).
    pub async fn upload(&self, user: &TestUser, conversation: &str, filename: &str, bytes: &[u8]) -> (u16, Value) {
        self.upload_parts(user, conversation, &[Part::file(filename, "application/octet-stream", bytes)]).await
    }

    /// Uploads one file that must be accepted; its attachment.
    pub async fn uploaded(&self, user: &TestUser, conversation: &str, filename: &str, bytes: &[u8]) -> Value {
        let (status, body) = self.upload(user, conversation, filename, bytes).await;
        assert_eq!(status, 201, "upload of {filename}: {body}");
        body
    }

    /// Sends a message of `body` with the attachments `ids` over REST: the status and the answer.
    pub async fn send_files(&self, user: &TestUser, conversation: &str, body: &str, ids: &[&Value]) -> (u16, Value) {
        let path = format!("/api/conversations/{conversation}/messages");
        self.post(Some(user), &path, serde_json::json!({"body": body, "attachment_ids": ids})).await
    }

    /// GETs `path` (a signed link, or any path) with an optional token and extra headers.
    pub async fn fetch(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Fetched {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let mut response = request.send().await.unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let bytes = response.body().limit(64 << 20).await.expect("answer body").to_vec();
        Fetched { status: response.status().as_u16(), headers: response.headers().clone(), bytes }
    }
}

/// A PNG of `width` × `height`, with a gradient (so that it is not trivially compressible).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).expect("encode a PNG");
    out.into_inner()
}

/// A JPEG of `width` × `height` carrying an Exif block with a GPS position.
pub fn jpeg_with_location(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, 64, (y % 256) as u8]));
    let mut plain = Cursor::new(Vec::new());
    image.write_to(&mut plain, image::ImageFormat::Jpeg).expect("encode a JPEG");
    let plain = plain.into_inner();
    // An APP1 Exif segment right after SOI: a TIFF header whose IFD0 points at a GPS IFD with
    // GPSLatitudeRef "N" (enough for any reader to call it a location).
    let mut tiff: Vec<u8> = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&[0, 1, 0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0x1a, 0, 0, 0, 0]); // IFD0: GPS IFD at 26
    tiff.extend_from_slice(&[0, 1, 0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0, 0, 0, 0, 0]); // GPS IFD
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(&tiff);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&plain[2..]);
    out
}

/// The first bytes of a real PDF, enough for any sniffer, and a body.
pub fn pdf(size: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
    while bytes.len() < size {
        bytes.extend_from_slice(format!("% filler line {}\n", bytes.len()).as_bytes());
    }
    bytes.truncate(size.max(40));
    bytes
}
