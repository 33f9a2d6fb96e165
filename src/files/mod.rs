//! Attachment files: where their bytes live ([`storage`]: a local directory or an S3-compatible
//! object store).

pub mod storage;

pub use storage::{Download, Storage};
