//! Where attachment files live: a local directory (the default) or any S3-compatible object
//! store, behind one small API ([`Storage`]) on the `object_store` crate.
//!
//! # One runtime for all storage IO
//!
//! actix-web runs a current-thread tokio runtime per worker, and a reqwest client keeps each
//! pooled connection on the runtime that opened it: that connection makes progress only while
//! its runtime runs. Worker B reusing a connection that worker A opened waits on A, and once A's
//! runtime is gone (a stopped server, every test's own runtime) the request hangs until a
//! timeout (reqwest issue 2501; hyper's "dispatch dropped"). So a `Storage` owns a small runtime
//! and runs every operation on it, whoever calls: the HTTP client, its connections and the file
//! reads all live there. object_store's `SpawnedReqwestConnector` does the same for requests,
//! but hands response bodies over through an unbounded channel, so a download to a slow reader
//! would pile the whole object up in memory; here a download crosses over through a channel of
//! `DOWNLOAD_CHUNKS` chunks, and the store waits for the reader.
//!
//! # Bounded memory and time
//!
//! A file goes up in one request when it is smaller than [`PART_SIZE`], else as a multipart
//! upload, one part at a time: an upload holds one part in memory, whatever the file's size.
//! An outage answers within seconds: connections time out after `CONNECT_TIMEOUT`, a refused
//! or failed request is retried twice within `RETRY_TIMEOUT`, and every request has
//! `REQUEST_DEADLINE`. There is no limit on a whole download (a slow reader may take long),
//! only on the wait for its next bytes (`IDLE_DEADLINE`).
//!
//! # Errors
//!
//! A missing object is `NotFound`; a store that cannot be reached, does not answer in time or
//! answers 5xx or 429 is `Unavailable` (the detail goes to the log, never to the client);
//! anything else (refused credentials, a full disk) is `Internal`.

use std::future::Future;
use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Files from this size on go up in parts of this size, one part at a time: what an upload
/// holds in memory. S3 wants parts (but the last) of at least 5 MiB.
pub const PART_SIZE: usize = 5 << 20;
/// How long a connection to the store may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long object_store may retry a request that was refused, failed or answered 5xx.
const RETRY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request may take: a put, a part, a delete, a download until its first bytes.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// How long a download may wait for its next bytes from the store.
const IDLE_DEADLINE: Duration = Duration::from_secs(30);
/// The chunks of a download on their way from the store to its reader.
const DOWNLOAD_CHUNKS: usize = 8;

/// The attachment store: a local directory or an S3 bucket (and prefix).
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    kind: Kind,
    io: IoRuntime,
}

enum Kind {
    Local { dir: PathBuf },
    S3 { bucket: String, prefix: String, endpoint: Option<String>, region: String },
}

/// An object's bytes (the range asked for, or all of them), and the size of the whole object.
pub struct Download {
    pub size: u64,
    pub stream: BoxStream<'static, Result<Bytes>>,
}

impl Storage {
    /// `url`: a plain path or `file:///abs/path`: a local directory (created if missing);
    /// `s3://bucket[/prefix][?endpoint=http://host:port&region=..]`: S3. Credentials come from
    /// the usual variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, …, as `AmazonS3Builder::from_env` reads them), the query parameters
    /// override them. Plain http is allowed only to an endpoint given as `http://`.
    pub fn open(url: &str) -> Result<Storage> {
        let bad = |why: String| Error::bad_request(format!("storage URL {url}: {why}"));
        let (store, kind) = if url.starts_with("s3://") {
            open_s3(url, bad)?
        } else if url.starts_with("file://") {
            let dir = url::Url::parse(url)
                .ok()
                .and_then(|parsed| parsed.to_file_path().ok())
                .ok_or_else(|| bad("a file URL names an absolute path: file:///path".into()))?;
            open_local(dir, bad)?
        } else if url.contains("://") {
            return Err(bad("expected a directory, file:///path or s3://bucket".into()));
        } else {
            open_local(PathBuf::from(url), bad)?
        };
        Ok(Storage { store, kind, io: IoRuntime::start()? })
    }

    /// Where the files go, for the startup log (no credentials).
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Local { dir } => format!("local directory {}", dir.display()),
            Kind::S3 { bucket, prefix, endpoint, region } => {
                let mut text = format!("S3 bucket {bucket}");
                if !prefix.is_empty() {
                    text += &format!(", prefix {prefix}/");
                }
                if let Some(endpoint) = endpoint {
                    text += &format!(", endpoint {endpoint}");
                }
                text + &format!(", region {region}")
            }
        }
    }

    /// Stores the file at `path` as `key`, streaming it: one part of it in memory at a time.
    pub async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<()> {
        let (store, location, key) = (self.store.clone(), location(key)?, key.to_string());
        let path = path.to_path_buf();
        self.run(async move { upload(store, location, &key, path).await }).await
    }

    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<()> {
        let (store, location, key) = (self.store.clone(), location(key)?, key.to_string());
        self.run(async move { deadline("put", &key, store.put(&location, PutPayload::from(bytes))).await.map(drop) })
            .await
    }

    /// The object's bytes (those of `range`, if given) as a stream, and its whole size. A range
    /// that ends past the object's end is cut there; one that starts past it is an `Internal`
    /// error (the caller checks a client's range against the size it stored).
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Download> {
        if range.as_ref().is_some_and(Range::is_empty) {
            return Err(Error::Internal(format!("storage: an empty range of {key}: {range:?}")));
        }
        let (store, location, key) = (self.store.clone(), location(key)?, key.to_string());
        let (head, size) = oneshot::channel();
        let (chunks, received) = mpsc::channel(DOWNLOAD_CHUNKS);
        let task = Task(self.io.handle().spawn(async move {
            let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
            let found = match deadline("get", &key, store.get_opts(&location, options)).await {
                Ok(found) => found,
                Err(err) => {
                    let _ = head.send(Err(err));
                    return;
                }
            };
            if head.send(Ok(found.meta.size)).is_err() {
                return;
            }
            let mut body = found.into_stream();
            loop {
                let chunk = match tokio::time::timeout(IDLE_DEADLINE, body.next()).await {
                    Ok(None) => return,
                    Ok(Some(chunk)) => chunk.map_err(|err| failure("read", &key, err)),
                    Err(_) => Err(timed_out("read", &key, IDLE_DEADLINE)),
                };
                let last = chunk.is_err();
                // The reader went away (its stream dropped), or the error was its last chunk.
                if chunks.send(chunk).await.is_err() || last {
                    return;
                }
            }
        }));
        let size = size.await.map_err(|_| Error::Internal("storage: the download stopped".into()))??;
        // The stream owns the task: a reader that goes away stops the download.
        let stream = futures_util::stream::unfold((received, task), |(mut received, task)| async move {
            received.recv().await.map(|chunk| (chunk, (received, task)))
        });
        Ok(Download { size, stream: stream.boxed() })
    }

    /// Deletes the object; one that is not there is no error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let (store, location, key) = (self.store.clone(), location(key)?, key.to_string());
        self.run(async move {
            match deadline("delete", &key, store.delete(&location)).await {
                Err(Error::NotFound(_)) => Ok(()),
                outcome => outcome,
            }
        })
        .await
    }

    /// Runs `work` on the storage runtime (module docs) and waits for it. A caller that stops
    /// waiting (a client that went away) stops the work.
    async fn run<T: Send + 'static>(&self, work: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
        let mut task = Task(self.io.handle().spawn(work));
        (&mut task.0).await.unwrap_or_else(|err| Err(Error::Internal(format!("storage task: {err}"))))
    }
}

fn open_local(dir: PathBuf, bad: impl Fn(String) -> Error) -> Result<(Arc<dyn ObjectStore>, Kind)> {
    std::fs::create_dir_all(&dir).map_err(|err| bad(format!("cannot create {}: {err}", dir.display())))?;
    let dir = std::fs::canonicalize(&dir).map_err(|err| bad(format!("{}: {err}", dir.display())))?;
    // Automatic cleanup: deleting the last file of a conversation removes its directory too.
    let store =
        LocalFileSystem::new_with_prefix(&dir).map_err(|err| bad(err.to_string()))?.with_automatic_cleanup(true);
    Ok((Arc::new(store), Kind::Local { dir }))
}

fn open_s3(url: &str, bad: impl Fn(String) -> Error) -> Result<(Arc<dyn ObjectStore>, Kind)> {
    let parsed = url::Url::parse(url).map_err(|err| bad(err.to_string()))?;
    let bucket = parsed.host_str().filter(|bucket| !bucket.is_empty()).ok_or_else(|| bad("no bucket".into()))?;
    let prefix = parsed.path().trim_matches('/').to_string();
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (name, value) in parsed.query_pairs() {
        match name.as_ref() {
            "endpoint" if value.starts_with("http://") || value.starts_with("https://") => {
                // Both keys: AWS_ENDPOINT_URL_S3 in the environment would win over the plain one.
                builder = builder
                    .with_config(AmazonS3ConfigKey::Endpoint, value.as_ref())
                    .with_config(AmazonS3ConfigKey::S3Endpoint, value.as_ref());
            }
            "endpoint" => return Err(bad(format!("the endpoint {value} is not an http:// or https:// URL"))),
            "region" => builder = builder.with_region(value.as_ref()),
            other => return Err(bad(format!("unknown parameter {other:?} (endpoint, region)"))),
        }
    }
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    let region = builder.get_config_value(&AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
    let store = builder
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(CONNECT_TIMEOUT)
                // A whole download may take long: the deadlines are ours (module docs).
                .with_timeout_disabled(),
        )
        // Plain http only where the operator wrote it (a local MinIO, the tests' server).
        .with_allow_http(endpoint.as_deref().is_some_and(|endpoint| endpoint.starts_with("http://")))
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: RETRY_TIMEOUT,
        })
        .build()
        .map_err(|err| bad(err.to_string()))?;
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        Arc::new(store)
    } else {
        let under = Path::parse(&prefix).map_err(|err| bad(format!("prefix {prefix}: {err}")))?;
        Arc::new(PrefixStore::new(store, under))
    };
    let kind = Kind::S3 { bucket: bucket.to_string(), prefix, endpoint, region };
    Ok((store, kind))
}

/// The store's path for `key`. Keys are made by the server, never taken from a client; still,
/// none may climb out of the directory or the prefix.
fn location(key: &str) -> Result<Path> {
    let safe = !key.starts_with('/') && key.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if !safe {
        return Err(Error::Internal(format!("storage: refused the key {key:?}")));
    }
    Path::parse(key).map_err(|err| Error::Internal(format!("storage: the key {key:?}: {err}")))
}

/// `put_file`'s work, on the storage runtime.
async fn upload(store: Arc<dyn ObjectStore>, location: Path, key: &str, path: PathBuf) -> Result<()> {
    let unreadable = |err: std::io::Error| Error::Internal(format!("storage: cannot read {}: {err}", path.display()));
    let file = std::fs::File::open(&path).map_err(unreadable)?;
    let (mut file, mut buffer, mut part) = read_part(file, BytesMut::new()).await.map_err(unreadable)?;
    if part.len() < PART_SIZE {
        return deadline("put", key, store.put(&location, part.into())).await.map(drop);
    }
    let mut upload = Unfinished(Some(deadline("start upload", key, store.put_multipart(&location)).await?));
    while !part.is_empty() {
        deadline("put part", key, upload.parts().put_part(part.into())).await?;
        (file, buffer, part) = read_part(file, buffer).await.map_err(unreadable)?;
    }
    deadline("complete upload", key, upload.parts().complete()).await?;
    upload.0 = None;
    Ok(())
}

/// The next [`PART_SIZE`] bytes of `file` (fewer at its end), read on a blocking thread into
/// `buffer`, which takes back the memory of the part before (sent and dropped by now): one
/// allocation for the whole upload, rather than one a part that the allocator may keep.
async fn read_part(mut file: std::fs::File, mut buffer: BytesMut) -> std::io::Result<(std::fs::File, BytesMut, Bytes)> {
    tokio::task::spawn_blocking(move || {
        buffer.reserve(PART_SIZE);
        buffer.resize(PART_SIZE, 0);
        let mut filled = 0;
        while filled < PART_SIZE {
            match file.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        buffer.truncate(filled);
        let part = buffer.split().freeze();
        Ok((file, buffer, part))
    })
    .await?
}

/// A multipart upload that has not completed: aborted when dropped (after an error, or when the
/// caller went away), so that its parts do not linger in the bucket.
struct Unfinished(Option<Box<dyn MultipartUpload>>);

impl Unfinished {
    fn parts(&mut self) -> &mut Box<dyn MultipartUpload> {
        self.0.as_mut().expect("an upload not completed")
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let (Some(mut upload), Ok(runtime)) = (self.0.take(), Handle::try_current()) else { return };
        runtime.spawn(async move {
            if let Err(err) = upload.abort().await {
                log::warn!("storage: cannot abort an unfinished upload: {err}");
            }
        });
    }
}

/// `operation` of `key`, within `REQUEST_DEADLINE`, its error as a client sees it.
async fn deadline<T>(what: &str, key: &str, operation: impl Future<Output = object_store::Result<T>>) -> Result<T> {
    match tokio::time::timeout(REQUEST_DEADLINE, operation).await {
        Ok(outcome) => outcome.map_err(|err| failure(what, key, err)),
        Err(_) => Err(timed_out(what, key, REQUEST_DEADLINE)),
    }
}

fn failure(what: &str, key: &str, err: object_store::Error) -> Error {
    match err {
        object_store::Error::NotFound { .. } => Error::NotFound("no such attachment".into()),
        err if unavailable(&err) => {
            log::warn!("storage: {what} {key}: {err}");
            Error::Unavailable("storage is unavailable".into())
        }
        err => Error::Internal(format!("storage: {what} {key}: {err}")),
    }
}

fn timed_out(what: &str, key: &str, limit: Duration) -> Error {
    log::warn!("storage: {what} {key}: no answer within {limit:?}");
    Error::Unavailable("storage is unavailable".into())
}

/// Whether `err` says that the store could not be reached or could not serve: a connection
/// refused, reset or timed out, or an answer 5xx or 429 (after object_store's retries).
fn unavailable(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            use HttpErrorKind::{Connect, Interrupted, Request, Timeout};
            if matches!(http.kind(), Connect | Request | Timeout | Interrupted) {
                return true;
            }
        }
        // The status of an answer is kept in object_store's RetryError, whose type is private:
        // its text is all there is ("Server returned non-2xx status code: 503 Service ...", and
        // "error response" for S3's 200 with an error inside, which it retries like a 5xx).
        let text = err.to_string();
        if ["status code: 5", "status code: 429", "Server returned error response"].iter().any(|t| text.contains(t)) {
            return true;
        }
        next = err.source();
    }
    false
}

/// The runtime that every storage operation runs on (module docs), shut down without waiting
/// when the `Storage` goes: a runtime dropped the usual way blocks, which panics on an async
/// thread (an actix worker).
struct IoRuntime(Option<Runtime>);

impl IoRuntime {
    fn start() -> Result<IoRuntime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(8)
            .thread_name("parley-storage")
            .enable_all()
            .build()
            .map(|runtime| IoRuntime(Some(runtime)))
            .map_err(|err| Error::Internal(format!("storage runtime: {err}")))
    }

    fn handle(&self) -> &Handle {
        self.0.as_ref().expect("running until dropped").handle()
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A task on the storage runtime that is aborted when nobody waits for it any more.
struct Task<T>(JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ from one offset to the next (251 is prime: no part lines up with it).
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    async fn bytes_of(download: Download) -> Vec<u8> {
        let chunks: Vec<Result<Bytes>> = download.stream.collect().await;
        chunks.into_iter().flat_map(|chunk| chunk.expect("a chunk")).collect()
    }

    fn local(dir: &tempfile::TempDir) -> Storage {
        Storage::open(dir.path().join("files").to_str().expect("a UTF-8 path")).expect("opens")
    }

    #[actix_web::test]
    async fn local_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = local(&dir);
        let key = "attachments/c1/a1";
        storage.put_bytes(key, Bytes::from_static(b"hello, world")).await.expect("put");
        assert!(dir.path().join("files/attachments/c1/a1").is_file());

        let whole = storage.get(key, None).await.expect("get");
        assert_eq!(whole.size, 12);
        assert_eq!(bytes_of(whole).await, b"hello, world");
        let part = storage.get(key, Some(7..12)).await.expect("ranged get");
        assert_eq!(part.size, 12, "the size is the whole object's");
        assert_eq!(bytes_of(part).await, b"world");
        let past_the_end = storage.get(key, Some(7..100)).await.expect("a range past the end");
        assert_eq!(bytes_of(past_the_end).await, b"world", "cut at the end");
        assert!(matches!(storage.get(key, Some(12..20)).await.err(), Some(Error::Internal(_))));

        storage.delete(key).await.expect("delete");
        assert!(matches!(storage.get(key, None).await.err(), Some(Error::NotFound(_))));
        storage.delete(key).await.expect("deleting what is gone is no error");
        assert!(!dir.path().join("files/attachments/c1").exists(), "the emptied directory goes too");
    }

    #[actix_web::test]
    async fn local_put_file_in_parts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = local(&dir);
        let content = pattern(5 * PART_SIZE - 12_345);
        let source = dir.path().join("upload");
        std::fs::write(&source, &content).expect("write the file");
        storage.put_file("attachments/c1/big", &source).await.expect("put_file");

        let stored = std::fs::read(dir.path().join("files/attachments/c1/big")).expect("the stored file");
        assert!(stored == content, "the stored file differs from the source");
        let whole = storage.get("attachments/c1/big", None).await.expect("get");
        assert_eq!(whole.size, content.len() as u64);
        assert!(bytes_of(whole).await == content, "the download differs from the source");
        let across = (PART_SIZE as u64 - 10)..(PART_SIZE as u64 + 10);
        let part = storage.get("attachments/c1/big", Some(across.clone())).await.expect("ranged get");
        assert_eq!(bytes_of(part).await, content[across.start as usize..across.end as usize]);
        let no_staging = std::fs::read_dir(dir.path().join("files/attachments/c1")).expect("dir").count();
        assert_eq!(no_staging, 1, "only the file itself is left, no staging file");
    }

    #[actix_web::test]
    async fn small_files_and_missing_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = local(&dir);
        let source = dir.path().join("small");
        std::fs::write(&source, b"a thumbnail").expect("write");
        storage.put_file("attachments/c1/a1.thumb", &source).await.expect("put_file");
        assert_eq!(bytes_of(storage.get("attachments/c1/a1.thumb", None).await.expect("get")).await, b"a thumbnail");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        storage.put_file("attachments/c1/empty", &empty).await.expect("an empty file");
        assert_eq!(storage.get("attachments/c1/empty", None).await.expect("get").size, 0);

        let missing = storage.put_file("attachments/c1/x", &dir.path().join("nothing here")).await;
        assert!(matches!(missing, Err(Error::Internal(_))), "{:?}", missing.err());
    }

    #[actix_web::test]
    async fn keys_that_climb_out_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = local(&dir);
        for key in ["../escaped", "attachments/../../escaped", "/escaped", "a//b", "a/./b", "", "a/"] {
            let put = storage.put_bytes(key, Bytes::from_static(b"x")).await;
            assert!(matches!(put, Err(Error::Internal(_))), "{key:?}: {:?}", put.err());
            assert!(matches!(storage.get(key, None).await.err(), Some(Error::Internal(_))), "{key:?}");
            assert!(matches!(storage.delete(key).await, Err(Error::Internal(_))), "{key:?}");
        }
        assert!(!dir.path().join("escaped").exists());
    }

    #[test]
    fn what_a_url_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let plain = dir.path().join("a/b");
        let storage = Storage::open(plain.to_str().expect("UTF-8")).expect("a plain path");
        assert!(plain.is_dir(), "created");
        assert_eq!(storage.describe(), format!("local directory {}", plain.canonicalize().expect("dir").display()));
        let url = format!("file://{}", dir.path().join("c").display());
        assert!(Storage::open(&url).expect("a file URL").describe().starts_with("local directory /"));

        let s3 = Storage::open("s3://bucket/some/prefix/?endpoint=http://127.0.0.1:9000&region=eu-west-1").expect("S3");
        assert_eq!(
            s3.describe(),
            "S3 bucket bucket, prefix some/prefix/, endpoint http://127.0.0.1:9000, region eu-west-1"
        );

        for (url, says) in [
            ("gs://bucket", "expected a directory"),
            ("file://relative/path", "absolute path"),
            ("s3://", "no bucket"),
            ("s3://bucket?endpoint=ftp://host", "not an http"),
            ("s3://bucket?secret=x", "unknown parameter"),
        ] {
            match Storage::open(url) {
                Err(Error::BadRequest(message)) => assert!(message.contains(says), "{url}: {message}"),
                other => panic!("{url}: {:?}", other.map(|storage| storage.describe())),
            }
        }
    }
}
