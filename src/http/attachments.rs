//! Attachments over REST (PROTOCOL.md §2.10): upload (multipart, streamed to a temporary file),
//! download (signed link or Bearer; ranges and ETags), a conversation's files, removal.

use actix_multipart::{Field, Multipart};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::ranges::{self, Wanted};
use crate::actors::conversation::RemoveAttachment;
use crate::app::AppState;
use crate::attachments::{Files, Received};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::files::names;
use crate::files::urls::{self, Variant};
use crate::protocol::{ConversationKind, LinkedAttachment, Role};
use crate::rules;
use crate::store::{AttachmentCursor, AttachmentRow};
use crate::types::{AttachmentId, ConversationId, MessageId, Seq, Timestamp, UserId};

/// What a multipart body may hold besides its file: boundaries and part headers.
const MULTIPART_SLACK: u64 = 16 * 1024;

/// Downloads are sandboxed: a file that a browser would render anyway runs nothing.
const DOWNLOAD_POLICY: &str = "default-src 'none'; img-src 'self'; sandbox";

/// An attachment as REST answers it: the entry of a message, and where it belongs.
#[derive(Serialize)]
struct AttachmentInfo<'a> {
    #[serde(flatten)]
    attachment: LinkedAttachment<'a>,
    conversation_id: ConversationId,
    uploader_id: UserId,
    created_at: Timestamp,
    /// The message that sent it, and its position; absent while it waits to be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<Seq>,
}

fn info<T>(row: &AttachmentRow, answer: impl FnOnce(&AttachmentInfo) -> T) -> T {
    let attachment = row.to_attachment();
    answer(&AttachmentInfo {
        attachment: attachment.linked(),
        conversation_id: row.conversation_id,
        uploader_id: row.uploader_id,
        created_at: row.created_at,
        message_id: row.message_id,
        seq: row.sent_seq,
    })
}

/// POST /api/conversations/{id}/attachments (multipart, one field `file`) → 201 attachment
pub async fn upload(
    app: web::Data<AppState>,
    files: web::Data<Files>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let conversation = *id;
    app.store.may_post(conversation, caller.id).await?;
    let max = files.max_bytes();
    // Refused before a byte is read when the request says it is too large (a multipart body
    // holds the file and a few hundred bytes of headers).
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max + MULTIPART_SLACK) {
        return Err(too_large(max));
    }
    // The quota is checked again with the file's exact size once it is in.
    files.check_quota(caller.id, declared.unwrap_or(0).saturating_sub(MULTIPART_SLACK).min(max)).await?;
    let received = receive(Multipart::new(req.headers(), payload), max).await?;
    // The rest runs to its end even if the client goes away: a database query must not be
    // dropped half-way (see `AuthUser`), and what is stored gets its row.
    let files = files.get_ref().clone();
    let row = actix_web::rt::spawn(async move { files.accept(conversation, caller.id, received).await })
        .await
        .map_err(|err| Error::Internal(format!("upload task: {err}")))??;
    Ok(info(&row, |info| HttpResponse::Created().json(info)))
}

fn too_large(max: u64) -> Error {
    Error::PayloadTooLarge(format!("a file is at most {max} bytes"))
}

/// Reads the one field `file` into a temporary file, at most `max` bytes of it.
async fn receive(mut multipart: Multipart, max: u64) -> Result<Received> {
    let mut received = None;
    while let Some(field) = multipart.try_next().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            return Err(Error::bad_request("an upload has one field, named file"));
        }
        if received.is_some() {
            return Err(Error::bad_request("one file per upload"));
        }
        received = Some(spool(field, max).await?);
    }
    received.ok_or_else(|| Error::bad_request("no file: send it in a multipart field named file"))
}

async fn spool(mut field: Field, max: u64) -> Result<Received> {
    let filename = field.content_disposition().and_then(|d| d.get_filename()).unwrap_or_default().to_string();
    let temp = tempfile::NamedTempFile::new().map_err(|err| Error::Internal(format!("temporary file: {err}")))?;
    let mut out =
        tokio::fs::File::from_std(temp.reopen().map_err(|err| Error::Internal(format!("temporary file: {err}")))?);
    let mut size = 0u64;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large(max));
        }
        out.write_all(&chunk).await.map_err(|err| Error::Internal(format!("temporary file: {err}")))?;
    }
    out.flush().await.map_err(|err| Error::Internal(format!("temporary file: {err}")))?;
    if size == 0 {
        return Err(Error::bad_request("the file is empty"));
    }
    Ok(Received { file: temp, size, filename })
}

fn multipart_error(err: actix_multipart::MultipartError) -> Error {
    match err {
        actix_multipart::MultipartError::Payload(err) => super::body_timeout::error(&err),
        err => Error::bad_request(format!("bad multipart body: {err}")),
    }
}

#[derive(Deserialize)]
pub struct LinkQuery {
    expires: Option<i64>,
    signature: Option<String>,
}

/// GET /api/attachments/{id} (the file) and GET /api/attachments/{id}/thumbnail (an image's
/// thumbnail): with a signed link, or the Bearer token of a member.
pub async fn download<const THUMBNAIL: bool>(
    app: web::Data<AppState>,
    files: web::Data<Files>,
    caller: Option<AuthUser>,
    id: web::Path<AttachmentId>,
    query: web::Query<LinkQuery>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let variant = if THUMBNAIL { Variant::Thumbnail } else { Variant::Original };
    serve(&app, &files, caller, *id, variant, &query, &req).await
}

fn no_attachment() -> Error {
    Error::NotFound("no such attachment".into())
}

/// The attachment `id` if `user` may see it: a member of its conversation, and it was sent or
/// is theirs. Anything else is "no such attachment", as for every resource (PROTOCOL.md §2).
async fn visible(app: &AppState, id: AttachmentId, user: UserId) -> Result<AttachmentRow> {
    let row = app.store.attachment(id).await?.filter(|row| row.deleted_at.is_none()).ok_or_else(no_attachment)?;
    if (row.message_id.is_none() && row.uploader_id != user) || !app.store.is_member(row.conversation_id, user).await? {
        return Err(no_attachment());
    }
    Ok(row)
}

async fn serve(
    app: &AppState,
    files: &Files,
    caller: Option<AuthUser>,
    id: AttachmentId,
    variant: Variant,
    query: &LinkQuery,
    req: &HttpRequest,
) -> Result<HttpResponse> {
    let row = match (query.expires, &query.signature) {
        (Some(expires), Some(signature)) => {
            urls::verify(id, variant, expires, signature)?;
            app.store.attachment(id).await?.filter(|row| row.deleted_at.is_none()).ok_or_else(no_attachment)?
        }
        _ => {
            let caller = caller.ok_or_else(|| {
                Error::Unauthorized("a Bearer token, or the signed link from the message, opens a file".into())
            })?;
            visible(app, id, caller.id).await?
        }
    };
    let (content_type, etag) = match variant {
        Variant::Original => (row.content_type.as_str(), format!("\"{}\"", row.id)),
        Variant::Thumbnail => (row.thumbnail_type.as_deref().ok_or_else(no_attachment)?, format!("\"{}-t\"", row.id)),
    };
    let mut answer = HttpResponse::Ok();
    // A file never changes under its id: the browser may keep it, privately.
    answer
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .insert_header((header::CONTENT_SECURITY_POLICY, DOWNLOAD_POLICY))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    if ranges::none_match(req.headers(), &etag) {
        return Ok(answer.status(actix_web::http::StatusCode::NOT_MODIFIED).finish());
    }
    let inline = variant == Variant::Thumbnail || content_type.starts_with("image/");
    answer
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_str(content_type).map_err(|_| no_attachment())?))
        .insert_header((header::CONTENT_DISPOSITION, names::content_disposition(inline, &row.filename)));
    // Ranges of the original only (its size is known before it is read).
    let wanted = match variant {
        Variant::Original => ranges::wanted(req.headers(), &etag, row.size as u64)?,
        Variant::Thumbnail => Wanted::Whole,
    };
    let download = match &wanted {
        Wanted::Whole => files.download(&row, variant, None).await?,
        Wanted::Part(range) => files.download(&row, variant, Some(range.clone())).await?,
    };
    if let Wanted::Part(range) = &wanted {
        answer.status(actix_web::http::StatusCode::PARTIAL_CONTENT).insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", range.start, range.end - 1, download.size),
        ));
    }
    let length = match &wanted {
        Wanted::Whole => download.size,
        Wanted::Part(range) => range.end - range.start,
    };
    Ok(answer.no_chunking(length).streaming(download.stream))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    before: Option<String>,
}

/// GET /api/conversations/{id}/attachments?limit=&before= → {attachments, next}
pub async fn list(
    app: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<ConversationId>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let limit = rules::conversations_page(&app.limits, query.limit)?;
    let before = query.before.as_deref().map(AttachmentCursor::decode).transpose()?;
    if !app.store.is_member(*id, caller.id).await? {
        return Err(Error::no_conversation());
    }
    let page = app.store.attachment_page(*id, limit, before).await?;
    let attachments: Vec<serde_json::Value> =
        page.attachments.iter().map(|row| info(row, |info| serde_json::to_value(info).unwrap_or_default())).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "attachments": attachments,
        "next": page.next.map(|cursor| cursor.encode()),
    })))
}

/// DELETE /api/attachments/{id} → 204: by its uploader, or the owner of the group
pub async fn remove(
    app: web::Data<AppState>,
    files: web::Data<Files>,
    caller: AuthUser,
    id: web::Path<AttachmentId>,
) -> Result<HttpResponse> {
    let row = visible(&app, *id, caller.id).await?;
    if row.message_id.is_none() {
        // Never sent: it goes without a word to anyone.
        if files.withdraw(&row).await? {
            return Ok(HttpResponse::NoContent().finish());
        }
        return Err(Error::Conflict("the attachment was sent meanwhile: try again".into()));
    }
    if row.uploader_id != caller.id && !owns_group(&app, row.conversation_id, caller.id).await? {
        return Err(Error::Forbidden("only its uploader or the group's owner may remove a file".into()));
    }
    let by_name = app.store.user(caller.id).await?.map(|user| user.display_name).unwrap_or_default();
    let removal = RemoveAttachment { by: caller.id, by_name, attachment: row.id, filename: row.filename.clone() };
    app.registry.call(row.conversation_id, removal).await?;
    // Committed: the row is marked. Its files go now, or with the sweeper after an outage.
    if let Err(err) = files.purge(&row).await {
        log::warn!("attachment {}: removed, its files will be deleted later: {err}", row.id);
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn owns_group(app: &AppState, conversation: ConversationId, user: UserId) -> Result<bool> {
    let Some(row) = app.store.conversation_row(conversation).await? else {
        return Ok(false);
    };
    if row.kind != ConversationKind::Group {
        return Ok(false);
    }
    let members = app.store.members(conversation).await?;
    Ok(members.iter().any(|member| member.user_id == user && member.role == Role::Owner))
}
