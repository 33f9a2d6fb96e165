//! Attachment storage on S3 (`parley::files::Storage` on the server of `scripts/s3-server.sh`):
//! files up in parts and down in ranges, an outage that answers `unavailable` within seconds, a
//! `Storage` used from runtimes other than the one it was made on, and the memory an upload
//! takes. The local directory backend is unit-tested in `src/files/storage.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use parley::error::Error;
use parley::files::storage::PART_SIZE;
use parley::files::storage::{Download, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::PATIENCE;
use crate::common::s3::S3Prefix;

/// Bytes that differ from one offset to the next (251 is prime: no part lines up with it).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn bytes_of(download: Download) -> Vec<u8> {
    let chunks: Vec<parley::error::Result<Bytes>> = download.stream.collect().await;
    chunks.into_iter().flat_map(|chunk| chunk.expect("a chunk")).collect()
}

#[actix_web::test]
async fn files_go_up_in_parts_and_come_down_in_ranges() {
    let Some(bucket) = S3Prefix::new() else { return };
    let storage = Storage::open(&bucket.url).expect("opens");
    assert!(storage.describe().starts_with("S3 bucket "), "{}", storage.describe());
    let dir = tempfile::tempdir().expect("temp dir");
    let content = pattern(25_000_000); // five parts, the last one short
    let source = dir.path().join("upload");
    std::fs::write(&source, &content).expect("write the file");
    let key = "attachments/c1/a1";
    storage.put_file(key, &source).await.expect("put_file");

    let whole = storage.get(key, None).await.expect("get");
    assert_eq!(whole.size, content.len() as u64);
    assert!(bytes_of(whole).await == content, "the download differs from the upload");
    let size = content.len() as u64;
    for range in [(PART_SIZE as u64 - 100)..(PART_SIZE as u64 + 100), 0..1, (size - 7)..size] {
        let part = storage.get(key, Some(range.clone())).await.expect("ranged get");
        assert_eq!(part.size, size, "the size is the whole object's");
        assert_eq!(bytes_of(part).await, content[range.start as usize..range.end as usize], "{range:?}");
    }
    let past_the_end = storage.get(key, Some((size - 7)..(size + 100))).await.expect("a range past the end");
    assert_eq!(bytes_of(past_the_end).await, content[content.len() - 7..], "cut at the end");
    assert!(matches!(storage.get(key, Some(size..size + 1)).await.err(), Some(Error::Internal(_))));

    let thumb = "attachments/c1/a1.thumb";
    storage.put_bytes(thumb, Bytes::from_static(b"a small picture")).await.expect("put_bytes");
    assert_eq!(bytes_of(storage.get(thumb, None).await.expect("get")).await, b"a small picture");

    for key in [key, thumb] {
        storage.delete(key).await.expect("delete");
        assert!(matches!(storage.get(key, None).await.err(), Some(Error::NotFound(_))), "{key} is gone");
        storage.delete(key).await.expect("deleting what is gone is no error");
    }
}

/// Each operation on `storage` fails `unavailable`, within a few seconds.
async fn all_unavailable(storage: &Storage, dir: &std::path::Path) {
    let big = dir.join("big");
    std::fs::write(&big, pattern(2 * PART_SIZE)).expect("write");
    let small = Bytes::from_static(b"x");
    let key = "attachments/c1/a1";
    let operations: [(&str, futures_util::future::BoxFuture<'_, parley::error::Result<()>>); 4] = [
        ("put_bytes", Box::pin(storage.put_bytes(key, small))),
        ("put_file", Box::pin(storage.put_file(key, &big))),
        ("get", Box::pin(async { storage.get(key, None).await.map(drop) })),
        ("delete", Box::pin(storage.delete(key))),
    ];
    for (name, operation) in operations {
        let started = Instant::now();
        let outcome = operation.await;
        assert!(matches!(outcome, Err(Error::Unavailable(_))), "{name}: {:?}", outcome.err());
        assert!(started.elapsed() < Duration::from_secs(5), "{name} took {:?}", started.elapsed());
    }
}

#[actix_web::test]
async fn a_store_that_is_down_is_unavailable_within_seconds() {
    let Some(bucket) = S3Prefix::new() else { return };
    // A port that was free a moment ago: nothing listens there, connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let storage = Storage::open(&bucket.at_endpoint(&format!("http://127.0.0.1:{port}"))).expect("opens");
    let dir = tempfile::tempdir().expect("temp dir");
    all_unavailable(&storage, dir.path()).await;
}

/// What a proxy in front of a store that is down answers: 503 to every request (each read to
/// its end first, so that the client sees the answer, not a reset).
async fn answer_503(listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { return };
        actix_web::rt::spawn(async move {
            let mut request = Vec::new();
            let mut buffer = [0u8; 65536];
            let body_end = loop {
                let Ok(read @ 1..) = stream.read(&mut buffer).await else { return };
                request.extend_from_slice(&buffer[..read]);
                let Some(head) = request.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head_text = String::from_utf8_lossy(&request[..head]).to_ascii_lowercase();
                let length = head_text
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:").and_then(|n| n.trim().parse().ok()))
                    .unwrap_or(0usize);
                break head + 4 + length;
            };
            while request.len() < body_end {
                let Ok(read @ 1..) = stream.read(&mut buffer).await else { return };
                request.extend_from_slice(&buffer[..read]);
            }
            let answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            let _ = stream.write_all(answer.as_bytes()).await;
        });
    }
}

#[actix_web::test]
async fn a_store_that_answers_503_is_unavailable_within_seconds() {
    let Some(bucket) = S3Prefix::new() else { return };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    actix_web::rt::spawn(answer_503(listener));
    let storage = Storage::open(&bucket.at_endpoint(&endpoint)).expect("opens");
    let dir = tempfile::tempdir().expect("temp dir");
    all_unavailable(&storage, dir.path()).await;
}

/// The runtime trap (src/files/storage.rs, module docs): a connection opened from one runtime
/// serves a request from another only while the first runs. Here the first stays idle, then
/// goes, and the `Storage` made on it keeps serving the second.
#[test]
fn a_storage_serves_runtimes_other_than_its_own() {
    let Some(bucket) = S3Prefix::new() else { return };
    let runtime = || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let key = "attachments/c1/a1";
    let (first, second) = (runtime(), runtime());
    let storage = first.block_on(async {
        let storage = Storage::open(&bucket.url).expect("opens");
        storage.put_bytes(key, Bytes::from_static(b"made on the first")).await.expect("put");
        storage
    });
    let read = || async {
        let download = tokio::time::timeout(PATIENCE, storage.get(key, None)).await.expect("an answer in time");
        bytes_of(download.expect("get")).await
    };
    assert_eq!(second.block_on(read()), b"made on the first", "while the first runtime is idle");
    drop(first);
    assert_eq!(second.block_on(read()), b"made on the first", "once the first runtime is gone");
    second.block_on(storage.delete(key)).expect("delete");
}

/// The child process of [`put_file_streams_in_bounded_memory`]: uploads 100 MB to
/// `PARLEY_STORAGE_MEMORY_CHILD` and prints how much its resident memory grew at the peak.
#[test]
#[ignore = "run by put_file_streams_in_bounded_memory, in a process of its own"]
fn put_file_memory_child() {
    let Ok(url) = std::env::var("PARLEY_STORAGE_MEMORY_CHILD") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("upload");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source).expect("create"));
        let block = pattern(1 << 20);
        for _ in 0..100 {
            file.write_all(&block).expect("write");
        }
        file.flush().expect("flush");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let storage = Storage::open(&url).expect("opens");
        // Threads, connections and buffers that any upload makes, before the measure starts.
        storage.put_bytes("warm-up", Bytes::from(pattern(1 << 20))).await.expect("warm-up");
        storage.delete("warm-up").await.expect("delete");
        // Writing 5 resets VmHWM, the peak resident size, to the current one.
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak");
        let before = status_kib("VmRSS");
        storage.put_file("big", &source).await.expect("put_file");
        let growth = status_kib("VmHWM") - before;
        storage.delete("big").await.expect("delete");
        println!("peak growth: {growth} KiB");
    });
}

/// A `/proc/self/status` figure, in KiB.
fn status_kib(name: &str) -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|line| line.starts_with(name)).expect("the line");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("a number")
}

/// `put_file` holds one part of a file in memory, not the file: a 100 MB upload grows the peak
/// resident size of a process of its own (this binary, running only the child test) by about
/// one part (measured: 5.5 to 6 MiB), to the local directory and (when there is one) to S3.
#[test]
fn put_file_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let local = dir.path().join("files").display().to_string();
    let bucket = S3Prefix::new();
    let targets = std::iter::once((local, Vec::new())).chain(bucket.iter().map(|b| (b.url.clone(), b.env())));
    for (url, env) in targets {
        let output = Command::new(std::env::current_exe().expect("this binary"))
            .args(["storage::put_file_memory_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("PARLEY_STORAGE_MEMORY_CHILD", &url)
            .envs(env)
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{url}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let growth: i64 = stdout
            .lines()
            // libtest prints the child's line after the name of its test.
            .find_map(|line| line.split("peak growth: ").nth(1)?.strip_suffix(" KiB")?.parse().ok())
            .unwrap_or_else(|| panic!("{url}: the child printed no figure: {stdout}"));
        println!("{url}: put_file of 100 MB: peak resident size grew by {growth} KiB");
        // One part and some: the file whole would be 100 MB; two parts at once, 10 MiB.
        let bound = 2 * PART_SIZE as i64 / 1024;
        assert!(growth < bound, "{url}: put_file of 100 MB grew the peak resident size by {growth} KiB");
    }
}
