//! What a file is, from its bytes. The name and the Content-Type a client gives are never
//! believed: a file is what its magic numbers say, or text when it is plain UTF-8 that does not
//! look like markup, or nothing the server accepts. HTML, SVG and XML are never recognised, so
//! no setting can let an upload run script in a browser on the server's origin.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use uuid::{Uuid, uuid};

use crate::error::{Error, Result};

/// How much of a file's head [`sniff`] looks at. Magic numbers need a few dozen bytes; the rest
/// is for text: markup is looked for in this much, and infer's Office heuristics scan the first
/// ZIP entries (three searches of up to 6,000 bytes each).
pub const SNIFF_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// JPEG, PNG, GIF and WebP (thumbnailable); HEIC and AVIF (not: no decoder here).
    Image,
    Pdf,
    /// Word, Excel and PowerPoint (97 and later, OOXML), OpenDocument text, sheets and slides.
    Office,
    /// UTF-8 without NUL that does not look like markup.
    Text,
}

impl Family {
    const ALL: [Family; 4] = [Family::Image, Family::Pdf, Family::Office, Family::Text];

    /// The name a setting uses for it.
    pub fn name(self) -> &'static str {
        match self {
            Family::Image => "image",
            Family::Pdf => "pdf",
            Family::Office => "office",
            Family::Text => "text",
        }
    }
}

/// A recognised type. `extensions` are the names a file of this type may end with, the usual
/// one first (the one [`super::names::clean_filename`] appends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub mime: &'static str,
    pub family: Family,
    pub extensions: &'static [&'static str],
    /// Whether [`super::images::examine`] can decode it and make a thumbnail.
    pub thumbnailable: bool,
}

const fn kind(mime: &'static str, family: Family, extensions: &'static [&'static str]) -> Sniffed {
    Sniffed { mime, family, extensions, thumbnailable: false }
}

const fn picture(mime: &'static str, extensions: &'static [&'static str]) -> Sniffed {
    Sniffed { mime, family: Family::Image, extensions, thumbnailable: true }
}

pub const JPEG: Sniffed = picture("image/jpeg", &["jpg", "jpeg"]);
pub const PNG: Sniffed = picture("image/png", &["png"]);
pub const GIF: Sniffed = picture("image/gif", &["gif"]);
pub const WEBP: Sniffed = picture("image/webp", &["webp"]);
pub const HEIC: Sniffed = kind("image/heic", Family::Image, &["heic", "heif"]);
pub const AVIF: Sniffed = kind("image/avif", Family::Image, &["avif"]);
pub const PDF: Sniffed = kind("application/pdf", Family::Pdf, &["pdf"]);
pub const DOC: Sniffed = kind("application/msword", Family::Office, &["doc"]);
pub const XLS: Sniffed = kind("application/vnd.ms-excel", Family::Office, &["xls"]);
pub const PPT: Sniffed = kind("application/vnd.ms-powerpoint", Family::Office, &["ppt"]);
pub const DOCX: Sniffed =
    kind("application/vnd.openxmlformats-officedocument.wordprocessingml.document", Family::Office, &["docx"]);
pub const XLSX: Sniffed =
    kind("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", Family::Office, &["xlsx"]);
pub const PPTX: Sniffed =
    kind("application/vnd.openxmlformats-officedocument.presentationml.presentation", Family::Office, &["pptx"]);
pub const ODT: Sniffed = kind("application/vnd.oasis.opendocument.text", Family::Office, &["odt"]);
pub const ODS: Sniffed = kind("application/vnd.oasis.opendocument.spreadsheet", Family::Office, &["ods"]);
pub const ODP: Sniffed = kind("application/vnd.oasis.opendocument.presentation", Family::Office, &["odp"]);
/// Served as `text/plain; charset=utf-8`. The extensions are those a desktop opens in a viewer
/// or an editor: `.js`, `.py`, `.sh`, `.bat`, `.ps1`, `.hta`, `.html`… run, or render, when
/// double-clicked, so text named so gets `.txt` appended.
pub const TEXT: Sniffed = kind(
    "text/plain",
    Family::Text,
    &[
        "txt", "text", "md", "markdown", "rst", "adoc", "csv", "tsv", "log", "json", "yaml", "yml", "toml", "ini",
        "conf", "cfg", "diff", "patch", "rs", "c", "h", "cpp", "hpp", "go", "java", "kt", "swift", "sql", "tex",
    ],
);

/// Every type [`sniff`] can answer, for [`AllowedTypes::parse`].
const KNOWN: [Sniffed; 17] =
    [JPEG, PNG, GIF, WEBP, HEIC, AVIF, PDF, DOC, XLS, PPT, DOCX, XLSX, PPTX, ODT, ODS, ODP, TEXT];

/// Whether a head has a type's magic number.
type Matcher = fn(&[u8]) -> bool;

/// Binary types told by their first bytes, in the order they are tried.
const MAGIC: [(Sniffed, Matcher); 16] = [
    (JPEG, infer::image::is_jpeg),
    (PNG, infer::image::is_png),
    (GIF, infer::image::is_gif),
    (WEBP, is_webp),
    (HEIC, infer::image::is_heif),
    (AVIF, infer::image::is_avif),
    (PDF, is_pdf),
    (DOC, infer::doc::is_doc),
    (XLS, infer::doc::is_xls),
    (PPT, infer::doc::is_ppt),
    (DOCX, infer::doc::is_docx),
    (XLSX, infer::doc::is_xlsx),
    (PPTX, infer::doc::is_pptx),
    (ODT, infer::odf::is_odt),
    (ODS, infer::odf::is_ods),
    (ODP, infer::odf::is_odp),
];

/// infer's WebP check looks at bytes 8..12 only; a RIFF container is also required.
fn is_webp(head: &[u8]) -> bool {
    head.starts_with(b"RIFF") && infer::image::is_webp(head)
}

/// infer accepts `%PDF` anywhere in the first KiB, as Acrobat does; so would an HTML page that
/// mentions it. A PDF served here must start with its header.
fn is_pdf(head: &[u8]) -> bool {
    head.starts_with(b"%PDF-")
}

/// The type of a file from its first [`SNIFF_BYTES`] (or all of it, when shorter), or `None`
/// when it is nothing the server knows. Word, Excel and PowerPoint files are containers whose
/// kind may only be readable further in: [`sniff_file`] reads them whole, and is what an upload
/// goes through; this is the part that needs no file.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    MAGIC
        .iter()
        .find(|(_, matches)| matches(head))
        .map(|(sniffed, _)| *sniffed)
        .or_else(|| is_text(head).then_some(TEXT))
}

const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// The type of the file at `path`: [`sniff`] of its head, except for the containers of Office
/// documents, which are opened: the class of an OLE file's root (Word, Excel, PowerPoint 97 and
/// later; its directory is often at the end), and the entry names in a ZIP's central directory
/// (OOXML; infer's guess from the first entries misses files whose parts come in another order,
/// such as those python-docx or LibreOffice write). OpenDocument needs no opening: its
/// `mimetype` entry comes first, uncompressed.
pub fn sniff_file(path: &Path) -> Result<Option<Sniffed>> {
    let mut file = File::open(path).map_err(|err| io_error(path, err))?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut file).take(SNIFF_BYTES as u64).read_to_end(&mut head).map_err(|err| io_error(path, err))?;
    if head.starts_with(OLE_MAGIC) {
        return Ok(ole_office(file));
    }
    if head.starts_with(ZIP_MAGIC) {
        let sniffed = sniff(&head);
        if sniffed.is_some_and(|kind| [ODT, ODS, ODP].contains(&kind)) {
            return Ok(sniffed);
        }
        return zip_office(file).map_err(|err| io_error(path, err));
    }
    Ok(sniff(&head))
}

fn io_error(path: &Path, err: std::io::Error) -> Error {
    Error::Internal(format!("reading {}: {err}", path.display()))
}

/// The root storage's class names the application that wrote an OLE compound file. A file cfb
/// cannot read, or of another class (an MSI installer, an Outlook message), is not Office.
fn ole_office(file: File) -> Option<Sniffed> {
    const WORD: Uuid = uuid!("00020906-0000-0000-c000-000000000046");
    const EXCEL_5: Uuid = uuid!("00020810-0000-0000-c000-000000000046");
    const EXCEL_97: Uuid = uuid!("00020820-0000-0000-c000-000000000046");
    const POWERPOINT: Uuid = uuid!("64818d10-4f9b-11cf-86ea-00aa00b929e8");
    let compound = cfb::CompoundFile::open(BufReader::new(file)).ok()?;
    match *compound.root_entry().clsid() {
        WORD => Some(DOC),
        EXCEL_5 | EXCEL_97 => Some(XLS),
        POWERPOINT => Some(PPT),
        _ => None,
    }
}

/// OOXML from a ZIP's central directory: `[Content_Types].xml` and the parts of exactly one of
/// Word (`word/`), Excel (`xl/`) or PowerPoint (`ppt/`). Reads the directory as a stream, so a
/// hostile one costs time bounded by its size and no memory beyond one entry name.
fn zip_office(mut file: File) -> std::io::Result<Option<Sniffed>> {
    let Some(directory) = central_directory(&mut file)? else { return Ok(None) };
    file.seek(SeekFrom::Start(directory.offset))?;
    let mut entries = BufReader::new(file.take(directory.size));
    let (mut content_types, mut word, mut excel, mut powerpoint) = (false, false, false, false);
    let mut header = [0u8; 46];
    let mut name = Vec::new();
    for _ in 0..directory.entries {
        match entries.read_exact(&mut header) {
            Ok(()) if header.starts_with(b"PK\x01\x02") => {}
            Ok(()) => return Ok(None),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => return Err(err),
        }
        let name_len = u16::from_le_bytes([header[28], header[29]]);
        let extra_len = u16::from_le_bytes([header[30], header[31]]);
        let comment_len = u16::from_le_bytes([header[32], header[33]]);
        name.clear();
        (&mut entries).take(u64::from(name_len)).read_to_end(&mut name)?;
        let skip = u64::from(extra_len) + u64::from(comment_len);
        if std::io::copy(&mut (&mut entries).take(skip), &mut std::io::sink())? != skip
            || name.len() != usize::from(name_len)
        {
            return Ok(None);
        }
        content_types |= name == b"[Content_Types].xml";
        word |= name.starts_with(b"word/");
        excel |= name.starts_with(b"xl/");
        powerpoint |= name.starts_with(b"ppt/");
    }
    Ok(match (content_types, word, excel, powerpoint) {
        (true, true, false, false) => Some(DOCX),
        (true, false, true, false) => Some(XLSX),
        (true, false, false, true) => Some(PPTX),
        _ => None,
    })
}

struct CentralDirectory {
    entries: u16,
    size: u64,
    offset: u64,
}

/// The end-of-central-directory record: the last 22 bytes of a ZIP, before a comment of up to
/// 64 KiB. Only a record whose comment ends exactly at the end of the file counts, so a
/// signature inside a comment or a trailer is not taken for it. ZIP64 is not read: an Office
/// file the server accepts is far below 4 GiB.
fn central_directory(file: &mut File) -> std::io::Result<Option<CentralDirectory>> {
    const RECORD: u64 = 22;
    let len = file.seek(SeekFrom::End(0))?;
    let tail_len = len.min(RECORD + u64::from(u16::MAX));
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.take(tail_len).read_to_end(&mut tail)?;
    let Some(at) = (0..tail.len().saturating_sub(RECORD as usize - 1)).rev().find(|&at| {
        let record = &tail[at..];
        record.starts_with(b"PK\x05\x06")
            && at + RECORD as usize + usize::from(u16::from_le_bytes([record[20], record[21]])) == tail.len()
    }) else {
        return Ok(None);
    };
    let record = &tail[at..];
    let entries = u16::from_le_bytes([record[10], record[11]]);
    let size = u64::from(u32::from_le_bytes([record[12], record[13], record[14], record[15]]));
    let offset = u64::from(u32::from_le_bytes([record[16], record[17], record[18], record[19]]));
    let record_at = len - tail_len + at as u64;
    Ok((offset + size <= record_at).then_some(CentralDirectory { entries, size, offset }))
}

/// Tags that make a browser run script or render a page, looked for anywhere in the head.
const MARKUP: [&[u8]; 6] = [b"<script", b"<html", b"<svg", b"<!doctype", b"<iframe", b"<?xml"];

/// Plain text: UTF-8 (a byte-order mark allowed; the last character may be cut off by the end of
/// the head), no NUL, and nothing that looks like HTML, SVG or XML: the first character that is
/// not white space is not `<`, and none of [`MARKUP`] appears, in any case. The file is served
/// as `text/plain` with `nosniff` anyway; this keeps a page out even where those are ignored.
fn is_text(head: &[u8]) -> bool {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if body.contains(&0) {
        return false;
    }
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        // `error_len() == None`: the bytes end inside a character, which is valid so far.
        Err(err) if err.error_len().is_none() => std::str::from_utf8(&body[..err.valid_up_to()]).unwrap_or_default(),
        Err(_) => return false,
    };
    if text.trim_start().starts_with('<') {
        return false;
    }
    let lower = text.as_bytes().to_ascii_lowercase();
    !MARKUP.iter().any(|tag| lower.windows(tag.len()).any(|window| window == *tag))
}

/// MIME types that can never be allowed: a browser runs their scripts.
const NEVER: [&str; 3] = ["text/html", "image/svg+xml", "application/xhtml+xml"];

/// The types a server accepts: families and exact MIME types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedTypes {
    families: Vec<Family>,
    mimes: Vec<&'static str>,
}

impl Default for AllowedTypes {
    fn default() -> Self {
        AllowedTypes { families: Family::ALL.to_vec(), mimes: Vec::new() }
    }
}

impl AllowedTypes {
    /// A comma list of families (`image`, `pdf`, `office`, `text`) and exact MIME types of the
    /// ones [`sniff`] recognises, in any case, for example `image,application/pdf`. The error
    /// is a message for the person who wrote the setting.
    pub fn parse(spec: &str) -> Result<AllowedTypes, String> {
        let mut allowed = AllowedTypes { families: Vec::new(), mimes: Vec::new() };
        for item in spec.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let item = item.to_ascii_lowercase();
            if let Some(family) = Family::ALL.into_iter().find(|family| family.name() == item) {
                allowed.families.push(family);
            } else if NEVER.contains(&item.as_str()) {
                return Err(format!("{item} cannot be allowed: a browser would run the scripts in such a file"));
            } else if let Some(known) = KNOWN.iter().find(|known| known.mime == item) {
                allowed.mimes.push(known.mime);
            } else {
                let mimes: Vec<&str> = KNOWN.iter().map(|known| known.mime).collect();
                return Err(format!(
                    "unknown file type {item:?}: use the families image, pdf, office, text, or these MIME types: {}",
                    mimes.join(", ")
                ));
            }
        }
        if allowed.families.is_empty() && allowed.mimes.is_empty() {
            return Err("no file types given: use for example image,pdf,office,text".into());
        }
        Ok(allowed)
    }

    pub fn allows(&self, sniffed: &Sniffed) -> bool {
        self.families.contains(&sniffed.family) || self.mimes.contains(&sniffed.mime)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn png() -> Vec<u8> {
        let mut bytes = Vec::new();
        image::RgbImage::new(3, 2).write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    }

    fn jpeg() -> Vec<u8> {
        let mut bytes = Vec::new();
        image::RgbImage::new(3, 2).write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
        bytes
    }

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn u16le(value: usize) -> [u8; 2] {
        u16::try_from(value).unwrap().to_le_bytes()
    }

    fn u32le(value: usize) -> [u8; 4] {
        u32::try_from(value).unwrap().to_le_bytes()
    }

    /// A ZIP whose entries are `names`, in that order, each holding four stored bytes (no CRC:
    /// the sniffer does not read entries).
    fn zip(names: &[&str]) -> Vec<u8> {
        let (mut out, mut directory) = (Vec::new(), Vec::new());
        for name in names {
            let data = b"<x/>";
            let offset = out.len();
            // Version, flags, method, time, date, CRC, both sizes, name and extra lengths.
            let fields =
                [&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], &u32le(4), &u32le(4), &u16le(name.len()), &[0, 0]];
            out.extend_from_slice(b"PK\x03\x04");
            fields.iter().for_each(|field| out.extend_from_slice(field));
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            directory.extend_from_slice(b"PK\x01\x02\x14\x00");
            fields.iter().for_each(|field| directory.extend_from_slice(field));
            // Comment length, disk, attributes, then where the entry starts.
            directory.extend_from_slice(&[0; 10]);
            directory.extend_from_slice(&u32le(offset));
            directory.extend_from_slice(name.as_bytes());
        }
        let offset = out.len();
        out.extend_from_slice(&directory);
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        out.extend_from_slice(&u16le(names.len()));
        out.extend_from_slice(&u16le(names.len()));
        out.extend_from_slice(&u32le(directory.len()));
        out.extend_from_slice(&u32le(offset));
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn images_are_told_by_their_magic_numbers() {
        assert_eq!(sniff(&png()), Some(PNG));
        assert_eq!(sniff(&jpeg()), Some(JPEG));
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), Some(GIF));
        assert_eq!(sniff(b"RIFF\x1a\0\0\0WEBPVP8L"), Some(WEBP));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), Some(HEIC));
        assert_eq!(sniff(b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf"), Some(AVIF));
    }

    #[test]
    fn html_named_anything_is_refused() {
        for page in [
            &b"<!DOCTYPE html><html><body>hi</body></html>"[..],
            b"  \n<html>",
            b"\xEF\xBB\xBF<script>alert(1)</script>",
            b"Dear reader,\n<SCRIPT src=//evil></SCRIPT>",
            b"hello <Html> there",
            b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            b"<svg onload=alert(1)>",
            b"plain words then <svg/onload=alert(1)>",
            b"looks plain <iframe src=x>",
        ] {
            assert_eq!(sniff(page), None, "{}", String::from_utf8_lossy(page));
        }
    }

    #[test]
    fn a_pdf_starts_with_its_header() {
        assert_eq!(sniff(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj"), Some(PDF));
        // infer would call this a PDF (the magic is within the first KiB); it is a web page.
        assert_eq!(sniff(b"<html><body>%PDF-1.4 <script>alert(1)</script></body></html>"), None);
        // Neither markup nor a PDF: text that mentions one.
        assert_eq!(sniff(b"see the attached %PDF-1.4 file"), Some(TEXT));
    }

    #[test]
    fn text_is_utf8_without_nul() {
        assert_eq!(sniff("Grüße, 1 < 2\n".as_bytes()), Some(TEXT));
        assert_eq!(sniff(b"\xEF\xBB\xBFwith a byte-order mark"), Some(TEXT));
        // A head that ends inside a character: the character was cut, not invalid.
        let cut = "ab€".as_bytes();
        assert_eq!(sniff(&cut[..cut.len() - 1]), Some(TEXT));
        assert_eq!(sniff(b"text\0with nul"), None);
        assert_eq!(sniff(b"latin-1 caf\xE9 au lait"), None);
        assert_eq!(sniff(b"\xFF\xFEu\0t\0f\0-\x001\x006\0"), None);
    }

    #[test]
    fn a_jpeg_magic_before_html_is_a_jpeg() {
        // The decoder refuses it later (images.rs); it is never taken for a page.
        assert_eq!(sniff(b"\xFF\xD8\xFF<html><script>alert(1)</script></html>"), Some(JPEG));
    }

    #[test]
    fn ooxml_is_read_from_the_central_directory_in_any_order() {
        // The order python-docx writes: infer's look at the first entries misses it.
        let docx = zip(&["[Content_Types].xml", "_rels/.rels", "docProps/core.xml", "word/document.xml"]);
        assert_ne!(sniff(&docx), Some(DOCX), "infer's heuristic got this right: the test no longer shows why");
        assert_eq!(sniff_file(file_with(&docx).path()).unwrap(), Some(DOCX));
        let xlsx = zip(&["docProps/app.xml", "xl/workbook.xml", "_rels/.rels", "[Content_Types].xml"]);
        assert_eq!(sniff_file(file_with(&xlsx).path()).unwrap(), Some(XLSX));
        let pptx = zip(&["[Content_Types].xml", "ppt/presentation.xml"]);
        assert_eq!(sniff_file(file_with(&pptx).path()).unwrap(), Some(PPTX));
        // A plain ZIP, one without [Content_Types].xml, and one claiming two applications.
        for names in [&["a.txt", "b.exe"][..], &["word/document.xml"], &["[Content_Types].xml", "word/a", "xl/b"]] {
            assert_eq!(sniff_file(file_with(&zip(names)).path()).unwrap(), None, "{names:?}");
        }
    }

    #[test]
    fn a_truncated_or_lying_zip_is_not_office() {
        let docx = zip(&["[Content_Types].xml", "word/document.xml"]);
        assert_eq!(sniff_file(file_with(&docx[..docx.len() - 1]).path()).unwrap(), None);
        let mut lying = docx.clone();
        let at = lying.len() - 6; // the directory's offset, now past the record
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(sniff_file(file_with(&lying).path()).unwrap(), None);
        let mut many = docx.clone();
        let at = many.len() - 12; // more entries than the directory holds
        many[at..at + 2].copy_from_slice(&500u16.to_le_bytes());
        assert_eq!(sniff_file(file_with(&many).path()).unwrap(), None);
    }

    #[test]
    fn opendocument_is_told_by_its_first_entry() {
        // The first entry of an OpenDocument file: `mimetype`, stored, holding the type.
        let mut odt = b"PK\x03\x04".to_vec();
        odt.extend_from_slice(&[10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 39, 0, 0, 0, 39, 0, 0, 0, 8, 0, 0, 0]);
        odt.extend_from_slice(b"mimetypeapplication/vnd.oasis.opendocument.text");
        assert_eq!(sniff(&odt), Some(ODT));
        assert_eq!(sniff_file(file_with(&odt).path()).unwrap(), Some(ODT));
    }

    /// An OLE compound file of the given class, with a stream big enough that its directory and
    /// allocation tables lie beyond the sniffed head.
    fn ole(class: Uuid) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut compound = cfb::create(file.path()).unwrap();
        compound.set_storage_clsid("/", class).unwrap();
        compound.create_stream("/WordDocument").unwrap().write_all(&vec![7u8; 3 * SNIFF_BYTES]).unwrap();
        compound.flush().unwrap();
        file
    }

    #[test]
    fn legacy_office_is_told_by_its_root_class() {
        let word = ole(uuid!("00020906-0000-0000-c000-000000000046"));
        assert_eq!(sniff_file(word.path()).unwrap(), Some(DOC));
        let excel = ole(uuid!("00020820-0000-0000-c000-000000000046"));
        assert_eq!(sniff_file(excel.path()).unwrap(), Some(XLS));
        let powerpoint = ole(uuid!("64818d10-4f9b-11cf-86ea-00aa00b929e8"));
        assert_eq!(sniff_file(powerpoint.path()).unwrap(), Some(PPT));
        // An MSI installer is an OLE file too.
        let installer = ole(uuid!("000c1084-0000-0000-c000-000000000046"));
        assert_eq!(sniff_file(installer.path()).unwrap(), None);
        // Truncated: cfb refuses it.
        let bytes = std::fs::read(word.path()).unwrap();
        assert_eq!(sniff_file(file_with(&bytes[..bytes.len() / 2]).path()).unwrap(), None);
    }

    #[test]
    fn sniff_file_reads_only_the_head_for_other_types() {
        let mut text = "a".repeat(SNIFF_BYTES).into_bytes();
        text.extend_from_slice(b"<script>after the head</script>");
        assert_eq!(sniff_file(file_with(&text).path()).unwrap(), Some(TEXT));
        assert_eq!(sniff_file(file_with(&png()).path()).unwrap(), Some(PNG));
        assert!(matches!(sniff_file(Path::new("/nonexistent/upload")), Err(Error::Internal(_))));
    }

    #[test]
    fn allowed_types_parse_families_and_mime_types() {
        let all = AllowedTypes::default();
        for kind in KNOWN {
            assert!(all.allows(&kind), "{}", kind.mime);
        }
        let some = AllowedTypes::parse(" Image , application/PDF,").unwrap();
        assert!(some.allows(&JPEG) && some.allows(&HEIC) && some.allows(&PDF));
        assert!(!some.allows(&TEXT) && !some.allows(&DOCX));
        let exact = AllowedTypes::parse("image/png,text").unwrap();
        assert!(exact.allows(&PNG) && exact.allows(&TEXT) && !exact.allows(&JPEG));
    }

    #[test]
    fn allowed_types_refuse_markup_and_unknown_names() {
        for markup in ["text/html", "image,image/svg+xml", "APPLICATION/XHTML+XML"] {
            let err = AllowedTypes::parse(markup).unwrap_err();
            assert!(err.contains("cannot be allowed"), "{markup}: {err}");
        }
        assert!(AllowedTypes::parse("images").unwrap_err().contains("unknown file type \"images\""));
        assert!(AllowedTypes::parse("application/zip").unwrap_err().contains("application/pdf"));
        assert!(AllowedTypes::parse(" , ").unwrap_err().contains("no file types"));
    }
}
