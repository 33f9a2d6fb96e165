//! Files, below the database: what an upload is, decided from its bytes alone (never its name
//! or the client's Content-Type), what the server makes of it before storing and serving it,
//! where it is kept, and the signed links that open it. Nothing here knows a table or a
//! conversation: `crate::attachments` puts these together with the store.
//!
//! - [`sniff`]: the type from the first bytes (or the whole file for Office containers), and
//!   which types a server accepts.
//! - [`images`]: an image's size, refused before decoding when too large, and its thumbnail.
//! - [`metadata`]: a copy of a JPEG, PNG or WebP without its location, camera and text metadata.
//! - [`names`]: a file name safe to show and to serve, and its `Content-Disposition`.
//! - [`storage`]: where the bytes live: a local directory or an S3-compatible object store.
//! - [`urls`]: signed, expiring links to a file.
//!
//! `sniff`, `images`, `metadata` and `names` block (they read and write the files they are
//! given): callers run them on a blocking thread, never on an actix worker.

pub mod images;
pub mod metadata;
pub mod names;
pub mod sniff;
pub mod storage;
pub mod urls;
