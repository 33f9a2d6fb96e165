//! Attachments (PROTOCOL.md §2.10): an upload becomes a stored file and its row; a download
//! opens it; a removal forgets both. This puts the pieces of `files` (what a file is, where it
//! is kept) together with the store. The HTTP layer (`http/attachments.rs`) speaks multipart,
//! ranges and headers; the conversation actor commits what a message claims or removes.
//!
//! Order of writes, so that no message can point at a missing file: an upload's file (and its
//! thumbnail) is stored first, then its row is written; a removal marks the row first, deletes
//! the files, then the row. An outage in between leaves a marked row, which the sweeper
//! (`sweeper.rs`) finishes; it also removes uploads that were never sent.

mod sweeper;

use std::path::Path;
use std::sync::Arc;

use actix_web::web::Bytes;
use tokio::sync::Semaphore;

use crate::config::FileConfig;
use crate::error::{Error, Result};
use crate::files::images::{self, ImageLimits};
use crate::files::names;
use crate::files::sniff::{self, AllowedTypes, Family, Sniffed};
use crate::files::storage::{Download, Storage};
use crate::files::urls::Variant;
use crate::store::{AttachmentRow, DatabaseUrl, Store};
use crate::types::{AttachmentId, ConversationId, Timestamp, UserId};

pub use sweeper::start_sweeper;

/// Thumbnails fit in a square of this many pixels.
const THUMBNAIL_EDGE: u32 = 320;

/// The attachments of this node: cheap to clone.
#[derive(Clone)]
pub struct Files {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    store: Store,
    allowed: AllowedTypes,
    config: FileConfig,
    /// Decodes at once: each holds an image's pixels while it lasts (PARLEY_IMAGE_WORKERS).
    decoders: Semaphore,
}

/// An upload received whole in a temporary file (deleted when this is dropped).
pub struct Received {
    pub file: tempfile::NamedTempFile,
    pub size: u64,
    /// The name the client gave, if any (cleaned before it is kept).
    pub filename: String,
}

impl Files {
    /// The storage `config` names, or the default directory for `database`.
    pub fn open(config: &FileConfig, database: &DatabaseUrl, store: Store) -> Result<Files> {
        let url = match (&config.storage_url, database) {
            (Some(url), _) => url.clone(),
            (None, DatabaseUrl::Sqlite(path)) => format!("{path}.files"),
            (None, DatabaseUrl::Postgres(_)) => "parley-files".to_string(),
        };
        let allowed = AllowedTypes::parse(&config.types).map_err(Error::BadRequest)?;
        let storage = Storage::open(&url)?;
        log::info!("attachments are kept in {}", storage.describe());
        Ok(Files {
            inner: Arc::new(Inner {
                storage,
                store,
                allowed,
                config: config.clone(),
                decoders: Semaphore::new(config.image_workers.max(1)),
            }),
        })
    }

    /// Largest upload, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.inner.config.max_attachment_bytes
    }

    /// Refuses an upload of `incoming` bytes that would take `user` over their quota.
    pub async fn check_quota(&self, user: UserId, incoming: u64) -> Result<()> {
        let used = self.inner.store.attachment_usage(user).await?.max(0) as u64;
        let quota = self.inner.config.quota_bytes;
        if used.saturating_add(incoming) > quota {
            return Err(Error::QuotaExceeded(format!(
                "this file would take your stored files over {quota} bytes ({used} used): remove some first"
            )));
        }
        Ok(())
    }

    /// Checks an upload of `uploader`'s to `conversation` (a member: the caller checked), stores
    /// it and its thumbnail, and records it.
    pub async fn accept(
        &self,
        conversation: ConversationId,
        uploader: UserId,
        upload: Received,
    ) -> Result<AttachmentRow> {
        let inner = &self.inner;
        // The whole file, not only its head: an Office document is known by its directory,
        // which may be at its end.
        let path = upload.file.path().to_path_buf();
        let sniffed = actix_web::web::block(move || sniff::sniff_file(&path))
            .await
            .map_err(|err| Error::Internal(format!("sniff task: {err}")))??;
        let sniffed = sniffed.filter(|sniffed| inner.allowed.allows(sniffed)).ok_or_else(|| {
            Error::UnsupportedType(format!("this type of file is not accepted ({})", inner.config.types))
        })?;
        let id = AttachmentId::random();
        let mut facts = None;
        let mut stripped = None;
        if sniffed.family == Family::Image {
            let path = upload.file.path().to_path_buf();
            let limits = ImageLimits { max_pixels: inner.config.max_image_pixels, thumbnail_edge: THUMBNAIL_EDGE };
            let strip = inner.config.strip_image_metadata;
            let _permit =
                inner.decoders.acquire().await.map_err(|_| Error::Unavailable("the server is stopping".into()))?;
            let (examined, without_metadata) = actix_web::web::block(move || examine(&path, sniffed, &limits, strip))
                .await
                .map_err(|err| Error::Internal(format!("image task: {err}")))??;
            facts = Some(examined);
            stripped = without_metadata;
        }
        let (path, size) = match &stripped {
            Some((file, size)) => (file.path(), *size),
            None => (upload.file.path(), upload.size),
        };
        self.check_quota(uploader, size).await?;
        let original = key(conversation, id, Variant::Original);
        inner.storage.put_file(&original, path).await?;
        let thumbnail = facts.as_mut().and_then(|facts| facts.thumbnail.take());
        let thumbnail_type = thumbnail.as_ref().map(|thumbnail| thumbnail.content_type.to_string());
        if let Some(thumbnail) = thumbnail {
            let stored =
                inner.storage.put_bytes(&key(conversation, id, Variant::Thumbnail), Bytes::from(thumbnail.bytes)).await;
            if let Err(err) = stored {
                let _ = inner.storage.delete(&original).await;
                return Err(err);
            }
        }
        let row = AttachmentRow {
            id,
            conversation_id: conversation,
            uploader_id: uploader,
            filename: names::clean_filename(&upload.filename, &sniffed),
            content_type: sniffed.mime.to_string(),
            size: size as i64,
            // 0 × 0: a size the header did not tell (HEIC, AVIF), which is unknown.
            width: facts.as_ref().map(|f| f.width as i32).filter(|w| *w > 0),
            height: facts.as_ref().map(|f| f.height as i32).filter(|h| *h > 0),
            thumbnail_type,
            message_id: None,
            sent_seq: None,
            created_at: Timestamp::now(),
            deleted_at: None,
        };
        if let Err(err) = inner.store.insert_attachment(&row).await {
            self.delete_files(&row).await;
            return Err(err);
        }
        metrics::counter!(crate::metrics::ATTACHMENTS_STORED).increment(1);
        metrics::counter!(crate::metrics::ATTACHMENT_BYTES).increment(size);
        Ok(row)
    }

    /// The bytes of `variant` of `row` (a range of them if asked).
    pub async fn download(
        &self,
        row: &AttachmentRow,
        variant: Variant,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Download> {
        self.inner.storage.get(&key(row.conversation_id, row.id, variant), range).await
    }

    /// Removes an upload of `uploader`'s that was never sent; false if it was sent meanwhile.
    pub async fn withdraw(&self, row: &AttachmentRow) -> Result<bool> {
        if !self.inner.store.withdraw_unsent(row.id, row.uploader_id).await? {
            return Ok(false);
        }
        self.purge(row).await?;
        Ok(true)
    }

    /// A row marked as being removed: its files go, then the row.
    pub async fn purge(&self, row: &AttachmentRow) -> Result<()> {
        for variant in [Variant::Original, Variant::Thumbnail] {
            if variant == Variant::Thumbnail && row.thumbnail_type.is_none() {
                continue;
            }
            self.inner.storage.delete(&key(row.conversation_id, row.id, variant)).await?;
        }
        self.inner.store.forget_attachment(row.id).await
    }

    /// Best effort, after a failed upload: nothing refers to these files.
    async fn delete_files(&self, row: &AttachmentRow) {
        for variant in [Variant::Original, Variant::Thumbnail] {
            let _ = self.inner.storage.delete(&key(row.conversation_id, row.id, variant)).await;
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn config(&self) -> &FileConfig {
        &self.inner.config
    }
}

/// Where a file is kept: made from ids only, never from anything a client named.
fn key(conversation: ConversationId, id: AttachmentId, variant: Variant) -> String {
    match variant {
        Variant::Original => format!("attachments/{conversation}/{id}"),
        Variant::Thumbnail => format!("attachments/{conversation}/{id}.thumb"),
    }
}

/// On a blocking thread: the image's facts and thumbnail, and a copy without metadata if asked.
fn examine(
    path: &Path,
    sniffed: Sniffed,
    limits: &ImageLimits,
    strip: bool,
) -> Result<(images::ImageFacts, Option<(tempfile::NamedTempFile, u64)>)> {
    let facts = images::examine(path, &sniffed, limits)?;
    let stripped = if strip && matches!(sniffed.mime, "image/jpeg" | "image/png" | "image/webp") {
        let out = tempfile::NamedTempFile::new().map_err(|err| Error::Internal(format!("temporary file: {err}")))?;
        let size = crate::files::metadata::strip(path, out.path(), &sniffed)?;
        Some((out, size))
    } else {
        None
    };
    Ok((facts, stripped))
}
