//! The name a file is shown and served under. A client's file name is only a label: it may
//! carry a path, controls that reverse how it reads (`invoice\u{202E}fdp.exe` shows as
//! `invoiceexe.pdf`), or an extension that lies about the bytes. What is kept is one path
//! component, printable, of bounded length, ending with an extension of the type the bytes are.

use super::sniff::Sniffed;

/// The longest name kept, in bytes (file systems allow 255; room is left for what a browser
/// adds on download, like ` (1)`).
const MAX_BYTES: usize = 200;

/// Characters that change the direction text is shown in: embeddings and overrides
/// (U+202A–U+202E) and isolates (U+2066–U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A file name safe to show and to serve: the last component of `raw` (after `/` or `\`),
/// without controls (NUL included) or bidi controls, trimmed of spaces and dots at both ends,
/// at most 200 bytes, never empty (`file`), and ending with one of `sniffed`'s extensions (the
/// usual one is appended otherwise: `invoice.pdf.exe` of PDF bytes becomes
/// `invoice.pdf.exe.pdf`).
pub fn clean_filename(raw: &str, sniffed: &Sniffed) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = last.chars().filter(|c| !c.is_control() && !is_bidi_control(*c)).collect();
    let trimmed = kept.trim_matches(|c: char| c == '.' || c.is_whitespace());
    let name = if trimmed.is_empty() { "file" } else { trimmed };
    let has_extension = name
        .rsplit_once('.')
        .is_some_and(|(_, extension)| sniffed.extensions.iter().any(|known| known.eq_ignore_ascii_case(extension)));
    let (stem, extension) = if has_extension {
        let (stem, extension) = name.rsplit_once('.').expect("has an extension");
        (stem, extension.to_string())
    } else {
        (name, sniffed.extensions[0].to_string())
    };
    // The stem gives way so that the extension survives the cut.
    let room = MAX_BYTES - extension.len() - 1;
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = stem[..cut].trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if stem.is_empty() { format!("file.{extension}") } else { format!("{stem}.{extension}") }
}

/// A `Content-Disposition` value (RFC 6266): `inline` or `attachment`, an ASCII `filename`
/// for old clients (quotes, backslashes, `%`, controls and non-ASCII replaced by `_`), and the
/// exact name as `filename*` (RFC 8187, UTF-8, percent-encoded).
pub fn content_disposition(inline: bool, filename: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let fallback: String = filename
        .chars()
        .map(|c| if (c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%')) || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::with_capacity(filename.len() * 3);
    for byte in filename.bytes() {
        // RFC 8187 attr-char: what may stand unencoded.
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::sniff::{JPEG, PDF, PNG, TEXT};

    #[test]
    fn only_the_last_path_component_is_kept() {
        assert_eq!(clean_filename("../../etc/passwd", &TEXT), "passwd.txt");
        assert_eq!(clean_filename("C:\\x\\y.png", &PNG), "y.png");
        assert_eq!(clean_filename("a/b\\c/..", &PNG), "file.png");
        assert_eq!(clean_filename("/", &PNG), "file.png");
    }

    #[test]
    fn the_extension_follows_the_bytes() {
        assert_eq!(clean_filename("invoice.pdf.exe", &PDF), "invoice.pdf.exe.pdf");
        assert_eq!(clean_filename("photo", &JPEG), "photo.jpg");
        assert_eq!(clean_filename("IMG_0001.JPEG", &JPEG), "IMG_0001.JPEG");
        assert_eq!(clean_filename("notes.md", &TEXT), "notes.md");
        assert_eq!(clean_filename("run.bat", &TEXT), "run.bat.txt");
        assert_eq!(clean_filename("page.html", &TEXT), "page.html.txt");
        assert_eq!(clean_filename("", &PDF), "file.pdf");
    }

    #[test]
    fn controls_and_direction_overrides_are_dropped() {
        // Shown as "invoiceexe.pdf" with the override; it is an .exe name, and gets .pdf.
        assert_eq!(clean_filename("invoice\u{202E}fdp.exe", &PDF), "invoicefdp.exe.pdf");
        assert_eq!(clean_filename("a\u{2066}b\u{2069}c\u{202A}.png", &PNG), "abc.png");
        assert_eq!(clean_filename("new\nline\0\u{7}.png", &PNG), "newline.png");
        assert_eq!(clean_filename("  ..hidden.png. . ", &PNG), "hidden.png");
        assert_eq!(clean_filename(" ...  ", &PNG), "file.png");
    }

    #[test]
    fn long_names_are_cut_on_a_character_keeping_the_extension() {
        let long = format!("{}.png", "é".repeat(150));
        let cleaned = clean_filename(&long, &PNG);
        assert!(cleaned.len() <= MAX_BYTES, "{} bytes", cleaned.len());
        assert!(cleaned.ends_with("é.png"), "{cleaned}");
        let cleaned = clean_filename(&"x".repeat(500), &PDF);
        assert_eq!((cleaned.len(), cleaned.ends_with("x.pdf")), (MAX_BYTES, true));
    }

    #[test]
    fn content_disposition_has_an_ascii_fallback_and_the_exact_name() {
        assert_eq!(
            content_disposition(false, "résumé \"final\".pdf"),
            "attachment; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        assert_eq!(
            content_disposition(true, "a\\b%20;c.png"),
            "inline; filename=\"a_b_20;c.png\"; filename*=UTF-8''a%5Cb%2520%3Bc.png"
        );
    }
}
