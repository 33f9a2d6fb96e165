//! Files, below the database: what an upload is (decided from its bytes), what can be shown of
//! it (image facts, thumbnails, names), where it is kept (a directory or S3), and the signed
//! links that open it. Nothing here knows a table or a conversation: `crate::attachments`
//! puts these together with the store.

pub mod urls;
