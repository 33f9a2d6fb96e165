//! Attachments: what an uploaded file is, decided from its bytes alone (never its name or the
//! client's Content-Type), and what the server makes of it before storing and serving it.
//!
//! Everything here blocks (it reads and writes the files it is given): callers run it on a
//! blocking thread, never on an actix worker.
//!
//! - [`sniff`]: the type from the first bytes (or the whole file for Office containers), and
//!   which types a server accepts.
//! - [`images`]: an image's size, refused before decoding when too large, and its thumbnail.
//! - [`metadata`]: a copy of a JPEG, PNG or WebP without its location, camera and text metadata.
//! - [`names`]: a file name safe to show and to serve, and its `Content-Disposition`.

pub mod images;
pub mod metadata;
pub mod names;
pub mod sniff;
