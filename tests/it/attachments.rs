//! Attachments (PROTOCOL.md §2.10): a photo from upload to both screens, downloads and their
//! guards and headers, hostile uploads, the rules of a claim, removal, and unsent uploads swept.

use serde_json::{Value, json};

use crate::common::s3::S3Prefix;
use crate::common::*;

backends!(
    a_photo_goes_from_upload_to_both_screens,
    downloads_open_for_members_and_signed_links_only,
    downloads_resume_and_revalidate,
    hostile_uploads_get_clear_errors,
    an_attachment_is_sent_once_by_its_uploader,
    a_removal_reaches_everyone_and_history,
    unsent_uploads_are_withdrawn_or_swept,
    limits_and_quota_are_explicit,
    location_metadata_is_stripped_when_asked,
    an_upload_cut_midway_leaves_nothing,
);

/// The path and query of a link as messages carry it (already relative).
fn link(attachment: &Value, field: &str) -> String {
    attachment[field].as_str().unwrap_or_else(|| panic!("{field} in {attachment}")).to_string()
}

async fn a_photo_goes_from_upload_to_both_screens(backend: Backend) {
    let (Pair { server, alice, bob, conversation }, mut a, mut b) = Pair::connected(backend).await;
    let photo = png(800, 600);

    let uploaded = server.uploaded(&alice, &conversation, "haircut.png", &photo).await;
    assert_eq!(uploaded["filename"], "haircut.png");
    assert_eq!(uploaded["content_type"], "image/png");
    assert_eq!(uploaded["size"], photo.len());
    assert_eq!((uploaded["width"].as_u64(), uploaded["height"].as_u64()), (Some(800), Some(600)));
    assert_eq!(uploaded["conversation_id"], conversation.as_str());
    assert_eq!(uploaded["uploader_id"], alice.id.as_str());
    assert!(uploaded.get("message_id").is_none(), "not sent yet: {uploaded}");

    // A message of a photo alone: no text needed.
    let sent = a
        .ack(
            "message:send",
            json!({"conversation_id": conversation, "body": "", "attachment_ids": [uploaded["id"]], "client_id": "p1"}),
        )
        .await;
    let carried = &sent["message"]["attachments"][0];
    assert_eq!(carried["id"], uploaded["id"]);
    assert_eq!(
        (carried["filename"].as_str(), carried["size"].as_u64()),
        (Some("haircut.png"), Some(photo.len() as u64))
    );
    assert!(carried.get("thumbnail").is_none() && carried.get("removed").is_none(), "{carried}");

    // Bob sees it live, and opens both links without a token, as an <img> would.
    let new = b.event("message:new").await;
    let seen = &new["message"]["attachments"][0];
    assert_eq!(seen["id"], uploaded["id"]);
    let original = server.fetch(&link(seen, "url"), None, &[]).await;
    assert_eq!(original.status, 200);
    assert_eq!(original.bytes, photo, "the original, byte for byte");
    assert_eq!(original.header("content-type"), "image/png");
    let thumbnail = server.fetch(&link(seen, "thumbnail_url"), None, &[]).await;
    assert_eq!(thumbnail.status, 200);
    let small = image::load_from_memory(&thumbnail.bytes).expect("the thumbnail is an image");
    assert_eq!((small.width(), small.height()), (320, 240), "fits 320×320, aspect kept");

    // History, sync, the conversation list and the files list all carry it.
    let history = server.history(&bob, &conversation).await;
    assert_eq!(history[0]["attachments"][0]["id"], uploaded["id"]);
    assert!(history[0]["attachments"][0]["url"].is_string());
    let synced = b.ack("sync", json!({"conversations": [{"conversation_id": conversation, "after_seq": 0}]})).await;
    assert_eq!(synced["conversations"][0]["messages"][0]["attachments"][0]["id"], uploaded["id"], "{synced}");
    let (_, listed) = server.get(Some(&bob), "/api/conversations").await;
    assert_eq!(listed["conversations"][0]["last_message"]["attachments"][0]["id"], uploaded["id"]);
    let (status, files) = server.get(Some(&bob), &format!("/api/conversations/{conversation}/attachments")).await;
    assert_eq!(status, 200, "{files}");
    assert_eq!(files["attachments"][0]["id"], uploaded["id"]);
    assert_eq!(files["attachments"][0]["message_id"], sent["message"]["id"]);
    assert_eq!(files["attachments"][0]["seq"], sent["message"]["seq"]);
    assert_eq!(files["next"], Value::Null);

    // The same send again (a retry with its client_id) is the same message, files included.
    let again = a
        .ack(
            "message:send",
            json!({"conversation_id": conversation, "body": "", "attachment_ids": [uploaded["id"]], "client_id": "p1"}),
        )
        .await;
    assert_eq!(again["message"]["id"], sent["message"]["id"]);
    assert_eq!(again["message"]["attachments"][0]["id"], uploaded["id"]);
    server.stop().await;
}

async fn downloads_open_for_members_and_signed_links_only(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let carol = server.user("carol").await;
    let document = pdf(20_000);
    let uploaded = server.uploaded(&alice, &conversation, "contract.pdf", &document).await;
    let id = uploaded["id"].as_str().unwrap().to_string();
    let path = format!("/api/attachments/{id}");

    // Unsent: its uploader only.
    assert_eq!(server.fetch(&path, Some(&alice.token), &[]).await.status, 200);
    assert_eq!(server.fetch(&path, Some(&bob.token), &[]).await.status, 404, "not sent: not Bob's yet");
    let (status, _) = server.send_files(&alice, &conversation, "the contract", &[&json!(id)]).await;
    assert_eq!(status, 201);

    // Sent: members with a Bearer token; an outsider, with a token or without, gets nothing.
    let opened = server.fetch(&path, Some(&bob.token), &[]).await;
    assert_eq!(opened.status, 200);
    assert_eq!(opened.bytes, document);
    assert_eq!(opened.header("content-type"), "application/pdf");
    assert!(
        opened.header("content-disposition").starts_with("attachment;"),
        "{}",
        opened.header("content-disposition")
    );
    assert!(opened.header("content-disposition").contains("contract.pdf"));
    assert_eq!(opened.header("x-content-type-options"), "nosniff");
    assert!(opened.header("content-security-policy").contains("sandbox"));
    assert!(opened.header("cache-control").starts_with("private"));
    assert_eq!(server.fetch(&path, Some(&carol.token), &[]).await.status, 404);
    assert_eq!(server.fetch(&path, None, &[]).await.status, 401);

    // The signed link opens it for anyone who has it, and only it, only as signed.
    let signed = link(&uploaded, "url");
    assert_eq!(server.fetch(&signed, None, &[]).await.status, 200);
    let (base, query) = signed.split_once('?').unwrap();
    let altered = query.replace("signature=", "signature=A");
    assert_eq!(server.fetch(&format!("{base}?{altered}"), None, &[]).await.status, 404);
    let longer = query.replace("expires=", "expires=9");
    assert_eq!(server.fetch(&format!("{base}?{longer}"), None, &[]).await.status, 404, "a later expiry is not signed");
    let other = server.uploaded(&alice, &conversation, "other.pdf", &pdf(1000)).await;
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(server.fetch(&format!("/api/attachments/{other_id}?{query}"), None, &[]).await.status, 404);
    assert_eq!(
        server.fetch(&format!("{base}/thumbnail?{query}"), None, &[]).await.status,
        404,
        "a PDF has no thumbnail"
    );
    assert_eq!(server.fetch("/api/attachments/not-an-id", Some(&bob.token), &[]).await.status, 404);
    server.stop().await;
}

async fn downloads_resume_and_revalidate(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let document = pdf(100_000);
    let uploaded = server.uploaded(&alice, &conversation, "scan.pdf", &document).await;
    let url = link(&uploaded, "url");
    let _ = bob;

    let whole = server.fetch(&url, None, &[]).await;
    let etag = whole.header("etag").to_string();
    assert!(etag.starts_with('"'), "a strong ETag: {etag}");
    assert_eq!(whole.header("accept-ranges"), "bytes");

    // A cut download resumes where it stopped.
    let rest = server.fetch(&url, None, &[("Range", "bytes=60000-"), ("If-Range", &etag)]).await;
    assert_eq!(rest.status, 206);
    assert_eq!(rest.header("content-range"), "bytes 60000-99999/100000");
    assert_eq!(rest.bytes, document[60_000..]);
    let middle = server.fetch(&url, None, &[("Range", "bytes=10-19")]).await;
    assert_eq!((middle.status, middle.bytes.as_slice()), (206, &document[10..20]));
    let tail = server.fetch(&url, None, &[("Range", "bytes=-5")]).await;
    assert_eq!(tail.bytes, document[99_995..]);
    // A range of another version, several ranges, a range past the end.
    let stale = server.fetch(&url, None, &[("Range", "bytes=0-9"), ("If-Range", "\"another\"")]).await;
    assert_eq!((stale.status, stale.bytes.len()), (200, document.len()));
    let several = server.fetch(&url, None, &[("Range", "bytes=0-1,5-6")]).await;
    assert_eq!((several.status, several.bytes.len()), (200, document.len()));
    let past = server.fetch(&url, None, &[("Range", "bytes=100000-")]).await;
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), "bytes */100000");
    assert_eq!(serde_json::from_slice::<Value>(&past.bytes).unwrap()["error"]["code"], "range_not_satisfiable");

    // A browser that has it asks whether it changed: it did not.
    let cached = server.fetch(&url, None, &[("If-None-Match", &etag)]).await;
    assert_eq!((cached.status, cached.bytes.len()), (304, 0));
    assert_eq!(cached.header("etag"), etag);

    // An image's thumbnail: inline, its own ETag.
    let image = server.uploaded(&alice, &conversation, "p.png", &png(64, 48)).await;
    let thumb = server.fetch(&link(&image, "thumbnail_url"), None, &[]).await;
    assert_eq!(thumb.status, 200);
    assert!(thumb.header("content-disposition").starts_with("inline"));
    assert_ne!(thumb.header("etag"), etag);
    let small = image::load_from_memory(&thumb.bytes).unwrap();
    assert_eq!((small.width(), small.height()), (64, 48), "never enlarged");
    server.stop().await;
}

async fn hostile_uploads_get_clear_errors(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start(backend).await;
    let carol = server.user("carol").await;
    let upload = |user: &TestUser, name: &'static str, bytes: Vec<u8>| {
        let (server, user, conversation) = (&server, user.clone(), conversation.clone());
        async move { server.upload(&user, &conversation, name, &bytes).await }
    };

    // The name and the header say JPEG; the bytes are HTML. Refused, whatever they say.
    let html = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>".to_vec();
    let (content_type, body) = multipart(&[Part::file("photo.jpg", "image/jpeg", &html)]);
    let mut response = server
        .client
        .post(server.url(&format!("/api/conversations/{conversation}/attachments")))
        .bearer_auth(&alice.token)
        .insert_header(("Content-Type", content_type))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "unsupported_type");
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec();
    assert_error(&upload(&alice, "logo.svg", svg).await, 415, "unsupported_type");
    let executable = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".repeat(8);
    assert_error(&upload(&alice, "invoice.pdf", executable).await, 415, "unsupported_type");

    // A PDF named like a path, or like a program: stored under a safe name of its real type.
    let (status, stored) = upload(&alice, "../../etc/passwd", pdf(2000)).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["filename"], "passwd.pdf");
    let (_, stored) = upload(&alice, "C:\\Users\\x\\invoice.exe", pdf(2000)).await;
    assert_eq!(stored["filename"], "invoice.exe.pdf");
    let (_, stored) = upload(&alice, "cv\u{202e}fdp.exe", pdf(2000)).await;
    assert!(!stored["filename"].as_str().unwrap().contains('\u{202e}'), "{stored}");

    // Damaged images, and a small file that claims a gigapixel.
    let mut truncated = png(400, 300);
    truncated.truncate(truncated.len() / 2);
    assert_error(&upload(&alice, "cut.png", truncated).await, 400, "bad_request");
    assert_error(&upload(&alice, "bomb.png", png_claiming(100_000, 100_000)).await, 400, "bad_request");

    // Malformed bodies.
    assert_error(&upload(&alice, "empty.pdf", Vec::new()).await, 400, "bad_request");
    let two = server
        .upload_parts(
            &alice,
            &conversation,
            &[Part::file("a.pdf", "application/pdf", &pdf(100)), Part::file("b.pdf", "application/pdf", &pdf(100))],
        )
        .await;
    assert_error(&two, 400, "bad_request");
    let misnamed = server
        .upload_parts(
            &alice,
            &conversation,
            &[Part { field: "upload", filename: "a.pdf", content_type: "application/pdf", bytes: &pdf(100) }],
        )
        .await;
    assert_error(&misnamed, 400, "bad_request");
    let (status, _) = server
        .post_text(
            Some(&alice.token),
            &format!("/api/conversations/{conversation}/attachments"),
            "text/plain",
            "hello".into(),
        )
        .await;
    assert_eq!(status, 400);

    // Outsiders: not their conversation.
    assert_error(&upload(&carol, "x.pdf", pdf(100)).await, 404, "not_found");
    let _ = bob;
    // After all that, a good upload still works.
    assert_eq!(upload(&alice, "fine.pdf", pdf(100)).await.0, 201);
    server.stop().await;
}

/// A PNG whose header claims `width` × `height` and whose data is a few bytes (a decompression
/// bomb's opening: decoding it would allocate width × height × 3 bytes).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut out = png(1, 1);
    // The IHDR chunk starts at byte 8: length (4), "IHDR" (4), width (4), height (4), …, CRC.
    out[16..20].copy_from_slice(&width.to_be_bytes());
    out[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

async fn an_attachment_is_sent_once_by_its_uploader(backend: Backend) {
    let (Pair { server, alice, conversation, .. }, mut a, mut b) = Pair::connected(backend).await;
    let carol = server.user("carol").await;
    let elsewhere = server.direct(&alice, &carol).await;
    let mine = server.uploaded(&alice, &conversation, "a.pdf", &pdf(500)).await;
    let id = mine["id"].clone();
    let send =
        |conversation: &str, ids: Value| json!({"conversation_id": conversation, "body": "see", "attachment_ids": ids});

    // Someone else's upload, one of another conversation, an unknown id: the same 404.
    assert_eq!(b.error("message:send", send(&conversation, json!([id]))).await, "not_found");
    assert_eq!(a.error("message:send", send(&elsewhere, json!([id]))).await, "not_found");
    assert_eq!(a.error("message:send", send(&conversation, json!([uuid::Uuid::new_v4()]))).await, "not_found");
    // Too many, or one twice: refused before anything is looked up.
    assert_eq!(a.error("message:send", send(&conversation, json!([id, id]))).await, "bad_request");
    let six: Vec<Value> = (0..6).map(|_| json!(uuid::Uuid::new_v4())).collect();
    assert_eq!(a.error("message:send", send(&conversation, json!(six))).await, "bad_request");
    let (status, _) = server.send_files(&alice, &conversation, "", &[]).await;
    assert_eq!(status, 400, "neither text nor file");
    // None of it was committed.
    let (_, seen) = server.get(Some(&alice), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(seen["last_seq"], 0);

    // Sent once; then it is taken, in any message, over either door.
    let sent = a.ack("message:send", send(&conversation, json!([id]))).await;
    assert_eq!(sent["message"]["seq"], 1);
    assert_eq!(a.error("message:send", send(&conversation, json!([id]))).await, "conflict");
    let rest = server.send_files(&alice, &conversation, "again", &[&id]).await;
    assert_error(&rest, 409, "conflict");
    // A file that failed its send (a bad second id) is still free: both or neither.
    let second = server.uploaded(&alice, &conversation, "b.pdf", &pdf(500)).await;
    assert_eq!(a.error("message:send", send(&conversation, json!([second["id"], id]))).await, "conflict");
    let ok = a.ack("message:send", send(&conversation, json!([second["id"]]))).await;
    assert_eq!(ok["message"]["seq"], 2);
    server.stop().await;
}

async fn a_removal_reaches_everyone_and_history(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (alice, bob, carol) = (server.user("alice").await, server.user("bob").await, server.user("carol").await);
    let group = server.group(&alice, "salon", &[&bob, &carol]).await;
    let mut b = server.ws(&bob).await;
    let mut c = server.ws(&carol).await;

    let photo = server.uploaded(&bob, &group, "before.png", &png(100, 100)).await;
    let (status, sent) = server.send_files(&bob, &group, "before", &[&photo["id"]]).await;
    assert_eq!(status, 201);
    let url = link(&sent["attachments"][0], "url");
    let thumb = link(&sent["attachments"][0], "thumbnail_url");
    assert_eq!(server.stored_files().len(), 2, "the photo and its thumbnail");
    let _ = c.event("message:new").await;

    // Another member may not remove it; its uploader may.
    let photo_path = format!("/api/attachments/{}", photo["id"].as_str().unwrap());
    assert_error(&server.delete(Some(&carol), &photo_path).await, 403, "forbidden");
    let (status, _) = server.delete(Some(&bob), &photo_path).await;
    assert_eq!(status, 204);

    // Everyone is told, in the conversation's order.
    let notice = c.event_where("message:new", |d| d["message"]["kind"] == "system").await;
    assert_eq!(notice["message"]["seq"].as_i64(), sent["seq"].as_i64().map(|seq| seq + 1), "next in order: {notice}");
    let removed = &notice["message"]["attachments"][0];
    assert_eq!((removed["id"].clone(), removed["removed"].clone()), (photo["id"].clone(), json!(true)));
    assert!(removed.get("url").is_none(), "{removed}");
    assert!(notice["message"]["body"].as_str().unwrap().contains("before.png"));
    let _ = b.event_where("message:new", |d| d["message"]["kind"] == "system").await;

    // The links stop working, the files are gone, the message shows the file removed.
    assert_eq!(server.fetch(&url, None, &[]).await.status, 404);
    assert_eq!(server.fetch(&thumb, None, &[]).await.status, 404);
    assert_eq!(server.stored_files(), Vec::<std::path::PathBuf>::new());
    let history = server.history(&carol, &group).await;
    let original = history.iter().find(|m| m["id"] == sent["id"]).expect("the message stays");
    assert_eq!(original["attachments"][0]["removed"], true);
    assert!(original["attachments"][0].get("url").is_none());
    let (_, files) = server.get(Some(&carol), &format!("/api/conversations/{group}/attachments")).await;
    assert_eq!(files["attachments"], json!([]));
    // Someone back from offline replays the removal with sync.
    let synced = c.ack("sync", json!({"conversations": [{"conversation_id": group, "after_seq": sent["seq"]}]})).await;
    assert_eq!(synced["conversations"][0]["messages"][0]["attachments"][0]["removed"], true, "{synced}");
    assert_eq!(server.delete(Some(&bob), &photo_path).await.0, 404, "removed once");

    // The owner of a group may remove anyone's file.
    let carols = server.uploaded(&carol, &group, "c.pdf", &pdf(300)).await;
    let (status, _) = server.send_files(&carol, &group, "", &[&carols["id"]]).await;
    assert_eq!(status, 201);
    let (status, _) =
        server.delete(Some(&alice), &format!("/api/attachments/{}", carols["id"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    server.stop().await;
}

async fn unsent_uploads_are_withdrawn_or_swept(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start_with(backend, |config| {
        config.files.unsent_ttl_secs = 2;
    })
    .await;
    // Withdrawn by its uploader (and only by them).
    let draft = server.uploaded(&alice, &conversation, "draft.pdf", &pdf(400)).await;
    let path = format!("/api/attachments/{}", draft["id"].as_str().unwrap());
    assert_eq!(server.delete(Some(&bob), &path).await.0, 404);
    assert_eq!(server.delete(Some(&alice), &path).await.0, 204);
    assert_eq!(server.fetch(&path, Some(&alice.token), &[]).await.status, 404);
    assert_eq!(server.stored_files(), Vec::<std::path::PathBuf>::new());

    // Forgotten: swept once its lifetime has passed (the sweeper runs every second here).
    let forgotten = server.uploaded(&alice, &conversation, "forgotten.pdf", &pdf(400)).await;
    let path = format!("/api/attachments/{}", forgotten["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.fetch(&path, Some(&alice.token), &[]).await.status == 200 {
        assert!(std::time::Instant::now() < deadline, "the unsent upload was never swept");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(server.stored_files(), Vec::<std::path::PathBuf>::new());
    let (status, _) = server.send_files(&alice, &conversation, "x", &[&forgotten["id"]]).await;
    assert_eq!(status, 404, "a swept upload cannot be sent");
    server.stop().await;
}

async fn limits_and_quota_are_explicit(backend: Backend) {
    let Pair { server, alice, bob, conversation } = Pair::start_with(backend, |config| {
        config.files.max_attachment_bytes = 50_000;
        config.files.quota_bytes = 80_000;
        config.files.types = "pdf".into();
    })
    .await;
    // Too large: 413, whether the length was declared (refused before reading) or not.
    assert_error(&server.upload(&alice, &conversation, "big.pdf", &pdf(60_000)).await, 413, "payload_too_large");
    // Only the allowed families.
    assert_error(&server.upload(&alice, &conversation, "p.png", &png(10, 10)).await, 415, "unsupported_type");
    // The quota counts what is kept: 40 kB + 40 kB fit, one more does not; removing frees it.
    let first = server.uploaded(&alice, &conversation, "1.pdf", &pdf(40_000)).await;
    server.uploaded(&alice, &conversation, "2.pdf", &pdf(40_000)).await;
    assert_error(&server.upload(&alice, &conversation, "3.pdf", &pdf(1_000)).await, 413, "quota_exceeded");
    assert_eq!(server.upload(&bob, &conversation, "b.pdf", &pdf(1_000)).await.0, 201, "a quota is per user");
    assert_eq!(
        server.delete(Some(&alice), &format!("/api/attachments/{}", first["id"].as_str().unwrap())).await.0,
        204
    );
    assert_eq!(server.upload(&alice, &conversation, "3.pdf", &pdf(1_000)).await.0, 201);
    server.stop().await;
}

async fn location_metadata_is_stripped_when_asked(backend: Backend) {
    let photo = jpeg_with_location(200, 100);
    assert!(photo.windows(6).any(|w| w == b"Exif\0\0"), "the test photo has a location");
    // By default the original is kept byte for byte.
    let Pair { server, alice, conversation, .. } = Pair::start(backend).await;
    let kept = server.uploaded(&alice, &conversation, "here.jpg", &photo).await;
    assert_eq!(server.fetch(&link(&kept, "url"), None, &[]).await.bytes, photo);
    server.stop().await;
    // Asked to, the server removes it; the photo still opens.
    let Pair { server, alice, conversation, .. } = Pair::start_with(backend, |config| {
        config.files.strip_image_metadata = true;
    })
    .await;
    let stripped = server.uploaded(&alice, &conversation, "here.jpg", &photo).await;
    let bytes = server.fetch(&link(&stripped, "url"), None, &[]).await.bytes;
    assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"), "the Exif block is gone");
    assert_eq!(stripped["size"], bytes.len());
    let decoded = image::load_from_memory(&bytes).expect("still a JPEG");
    assert_eq!((decoded.width(), decoded.height()), (200, 100));
    server.stop().await;
}

async fn an_upload_cut_midway_leaves_nothing(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Pair { server, alice, conversation, .. } = Pair::start_with(backend, |config| {
        config.files.quota_bytes = 300_000;
    })
    .await;
    // Half of a 280 kB upload, then the connection closes.
    let file = pdf(280_000);
    let (content_type, body) = multipart(&[Part::file("cut.pdf", "application/pdf", &file)]);
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /api/conversations/{conversation}/attachments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        alice.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream.shutdown().await.unwrap();
    // The server answers the broken body (or just closes): either way the connection ends.
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;

    // Nothing was kept: no file, nothing listed, the quota whole (a file of 280 kB still fits).
    assert_eq!(server.stored_files(), Vec::<std::path::PathBuf>::new());
    let (_, files) = server.get(Some(&alice), &format!("/api/conversations/{conversation}/attachments")).await;
    assert_eq!(files["attachments"], json!([]));
    let whole = server.uploaded(&alice, &conversation, "whole.pdf", &file).await;
    assert_eq!(whole["size"], file.len());
    server.stop().await;
}

/// The photo's whole life on S3: stored in the bucket, served whole and in ranges through signed
/// links, and deleted from the bucket with its thumbnail when removed.
#[actix_web::test]
async fn a_photo_lives_and_goes_on_s3() {
    let Some(bucket) = S3Prefix::new() else { return };
    let (Pair { server, alice, bob, conversation }, _a, mut b) =
        Pair::connected_with(Backend::Sqlite, |config| config.files.storage_url = Some(bucket.url.clone())).await;
    let photo = png(640, 480);
    let uploaded = server.uploaded(&alice, &conversation, "flat.png", &photo).await;
    let (status, sent) = server.send_files(&alice, &conversation, "the flat", &[&uploaded["id"]]).await;
    assert_eq!(status, 201, "{sent}");
    let seen = b.event("message:new").await["message"]["attachments"][0].clone();
    assert_eq!(server.fetch(&link(&seen, "url"), None, &[]).await.bytes, photo);
    let part = server.fetch(&link(&seen, "url"), None, &[("Range", "bytes=100-199")]).await;
    assert_eq!((part.status, part.bytes.as_slice()), (206, &photo[100..200]));
    assert_eq!(server.fetch(&link(&seen, "thumbnail_url"), None, &[]).await.status, 200);

    // In the bucket, under keys made of ids; gone from it once removed.
    let storage = parley::files::storage::Storage::open(&bucket.url).expect("the test bucket");
    let key = format!("attachments/{conversation}/{}", uploaded["id"].as_str().unwrap());
    assert_eq!(storage.get(&key, None).await.expect("the photo is in the bucket").size, photo.len() as u64);
    let (status, _) =
        server.delete(Some(&alice), &format!("/api/attachments/{}", uploaded["id"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    for key in [key.clone(), format!("{key}.thumb")] {
        assert!(matches!(storage.get(&key, None).await, Err(parley::error::Error::NotFound(_))), "{key} is gone");
    }
    let _ = bob;
    server.stop().await;
}

/// With the store down, an upload is `unavailable` and leaves nothing a message could point at;
/// the chat itself goes on.
#[actix_web::test]
async fn a_storage_outage_is_unavailable_and_keeps_nothing() {
    let Some(bucket) = S3Prefix::new() else { return };
    let down = bucket.at_endpoint("http://127.0.0.1:1");
    let (Pair { server, alice, conversation, .. }, mut a, _b) =
        Pair::connected_with(Backend::Sqlite, |config| config.files.storage_url = Some(down)).await;
    assert_error(&server.upload(&alice, &conversation, "scan.pdf", &pdf(5_000)).await, 503, "unavailable");
    let (_, files) = server.get(Some(&alice), &format!("/api/conversations/{conversation}/attachments")).await;
    assert_eq!(files["attachments"], json!([]));
    let (_, seen) = server.get(Some(&alice), &format!("/api/conversations/{conversation}")).await;
    assert_eq!(seen["last_seq"], 0, "no message was committed");
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": "the scan will follow"})).await;
    assert_eq!(sent["message"]["seq"], 1);
    server.stop().await;
}
