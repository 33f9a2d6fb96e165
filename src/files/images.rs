//! An image's size, and a thumbnail re-encoded from its pixels (so it carries none of the
//! original's metadata). The size is read from the header and checked before anything is
//! decoded: a 50 KB PNG may declare 100,000 × 100,000 pixels, 40 GB once decoded.
//!
//! What one decode costs (the peak of [`examine`]): width × height × bytes per pixel for the
//! decoded image, 3 for colour JPEG and WebP, 4 with alpha or for GIF, up to 8 for a 16-bit PNG
//! with alpha; JPEG adds the whole file, which its decoder reads into memory first, and a
//! progressive JPEG its coefficients, 3 bytes a pixel more (6 without chroma subsampling). The
//! thumbnail is made from the decoded image with no intermediate copy (the orientation is
//! applied to the thumbnail, not to the full image) and costs tens of KiB. Measured (peak RSS
//! of a process that does nothing else) for a 12-megapixel phone photo, 4032 × 3024 and 6.8 MB:
//! 47 MB as a baseline JPEG, 83 MB progressive; at 40 megapixels a 16-bit RGBA PNG needs 320 MB.
//! Twenty uploads decoded at once cost twenty times that: callers bound how many run together
//! (with two cores, more than two at once gains nothing anyway).

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::metadata;
use super::sniff::{Family, GIF, JPEG, PNG, Sniffed, WEBP};
use crate::error::{Error, Result};

/// What the server lets an image cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// The most pixels (width × height) an image may have to be decoded; a bigger one is
    /// refused before decoding.
    pub max_pixels: u64,
    /// The thumbnail fits in a square of this many pixels a side.
    pub thumbnail_edge: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// The size as shown: after the EXIF orientation (a portrait phone photo stored sideways is
    /// taller than wide here). 0 × 0 when unknown: an image of a type that is not decoded here
    /// (HEIC, AVIF) whose size could not be read.
    pub width: u32,
    pub height: u32,
    /// `None` for the types that are not decoded here.
    pub thumbnail: Option<Thumbnail>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// The most bytes one decoded pixel takes (16-bit RGBA): the allocation guard is sized from
/// it, so that any image within `max_pixels` decodes and a lying header cannot get more.
const MAX_BYTES_PER_PIXEL: u64 = 8;
const JPEG_QUALITY: u8 = 80;
const DAMAGED: &str = "the image is damaged or truncated";

/// The size and a thumbnail of the image at `path`, whose bytes were sniffed as `sniffed` (an
/// image). Refuses with `bad_request` an image over `limits.max_pixels` (before decoding) and
/// one that cannot be decoded (damaged, truncated, or not the image its first bytes promised).
/// Animated images give their first frame. HEIC and AVIF are not decoded: their size is read
/// from their header when it can be, and they have no thumbnail.
pub fn examine(path: &Path, sniffed: &Sniffed, limits: &ImageLimits) -> Result<ImageFacts> {
    let file = File::open(path).map_err(|err| Error::Internal(format!("opening {}: {err}", path.display())))?;
    let Some(format) = decodable(sniffed) else {
        if sniffed.family != Family::Image {
            return Err(Error::Internal(format!("examine called for {}", sniffed.mime)));
        }
        // Not decoded, so no bomb to defuse: the size is only information.
        let (width, height) = isobmff::dimensions(file).unwrap_or((0, 0));
        return Ok(ImageFacts { width, height, thumbnail: None });
    };
    if format == ImageFormat::Jpeg && !metadata::jpeg_is_complete(path)? {
        return Err(Error::bad_request(DAMAGED));
    }
    let mut decoder = ImageReader::with_format(BufReader::new(file), format).into_decoder().map_err(refusal)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::bad_request(format!(
            "the image is {width} × {height} pixels; the most this server accepts is {} megapixels",
            limits.max_pixels as f64 / 1e6
        )));
    }
    let mut allowance = Limits::default();
    allowance.max_alloc = Some(limits.max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL));
    allowance.reserve(decoder.total_bytes()).map_err(refusal)?;
    decoder.set_limits(allowance).map_err(refusal)?;
    // A damaged EXIF block is not a damaged image: it is then shown as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(refusal)?;
    let (shown_width, shown_height) = if swaps_axes(orientation) { (height, width) } else { (width, height) };
    let thumbnail = thumbnail(&image, orientation, (shown_width, shown_height), limits.thumbnail_edge)?;
    Ok(ImageFacts { width: shown_width, height: shown_height, thumbnail: Some(thumbnail) })
}

fn decodable(sniffed: &Sniffed) -> Option<ImageFormat> {
    [(JPEG, ImageFormat::Jpeg), (PNG, ImageFormat::Png), (GIF, ImageFormat::Gif), (WEBP, ImageFormat::WebP)]
        .into_iter()
        .find(|(kind, _)| kind == sniffed)
        .map(|(_, format)| format)
}

/// A decoding error as the client sees it: its image's fault, except the reading of a local
/// file failing (decompressors report bad data, and a short file, as I/O errors too).
fn refusal(err: ImageError) -> Error {
    use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
    match err {
        ImageError::Limits(_) => Error::bad_request("the image is too large to process"),
        ImageError::Unsupported(err) => Error::bad_request(format!("the image cannot be read here: {err}")),
        ImageError::IoError(err) if !matches!(err.kind(), UnexpectedEof | InvalidData | InvalidInput) => {
            Error::Internal(format!("reading an image: {err}"))
        }
        _ => Error::bad_request(DAMAGED),
    }
}

fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

/// The size that fits `(width, height)` in `edge` × `edge` keeping its proportions, never
/// larger than it was, never 0.
fn fit(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= edge {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| ((u64::from(side) * u64::from(edge) + u64::from(longest) / 2) / u64::from(longest)) as u32;
    (scale(width).max(1), scale(height).max(1))
}

/// Scales the stored image (the cheap way round: the full image is never rotated) and then
/// orients the small one. JPEG when every pixel is opaque, PNG otherwise.
fn thumbnail(image: &DynamicImage, orientation: Orientation, shown: (u32, u32), edge: u32) -> Result<Thumbnail> {
    let (width, height) = fit(shown.0, shown.1, edge);
    let (stored_width, stored_height) = if swaps_axes(orientation) { (height, width) } else { (width, height) };
    let mut small = image.thumbnail_exact(stored_width, stored_height);
    small.apply_orientation(orientation);
    let encoding = |err: ImageError| Error::Internal(format!("encoding a thumbnail: {err}"));
    let mut bytes = Vec::new();
    let translucent = small.color().has_alpha() && small.to_rgba8().pixels().any(|pixel| pixel.0[3] < u8::MAX);
    let content_type = if translucent {
        small.to_rgba8().write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).map_err(encoding)?;
        "image/png"
    } else {
        JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY).encode_image(&small.to_rgb8()).map_err(encoding)?;
        "image/jpeg"
    };
    Ok(Thumbnail { bytes, content_type, width, height })
}

/// The size of a HEIC or AVIF image from its ISO base media file boxes: the `ispe` (image
/// spatial extent) property of the primary item (`pitm`), found through the item property
/// associations (`ipma`), turned by its `irot` if it has one. Only the `meta` box is read.
mod isobmff {
    use super::*;

    /// `meta` is a few KiB in a phone photo; a bigger one is not worth reading for a size.
    const MAX_META: u64 = 1 << 20;

    pub(super) fn dimensions(file: File) -> Option<(u32, u32)> {
        let meta = read_meta(file)?;
        // `meta` is a full box: version and flags, then boxes.
        let children = boxes(meta.get(4..)?);
        let primary = children.iter().find(|(kind, _)| kind == b"pitm").and_then(|(_, pitm)| {
            if pitm.first()? == &0 { Some(u32::from(be16(pitm.get(4..6)?))) } else { Some(be32(pitm.get(4..8)?)) }
        })?;
        let iprp = children.iter().find(|(kind, _)| kind == b"iprp")?.1;
        let iprp = boxes(iprp);
        let properties = boxes(iprp.iter().find(|(kind, _)| kind == b"ipco")?.1);
        let ipma = iprp.iter().find(|(kind, _)| kind == b"ipma")?.1;
        let associated = associations(ipma, primary)?;
        let mut size = None;
        let mut turned = false;
        for index in associated {
            let (kind, body) = properties.get(index.checked_sub(1)?)?;
            match kind {
                b"ispe" => size = Some((be32(body.get(4..8)?), be32(body.get(8..12)?))),
                b"irot" => turned = body.first()? & 1 == 1,
                _ => {}
            }
        }
        let (width, height) = size?;
        Some(if turned { (height, width) } else { (width, height) })
    }

    /// The top-level `meta` box's body, skipping the others (`mdat`, the pixels) unread.
    fn read_meta(file: File) -> Option<Vec<u8>> {
        let mut reader = BufReader::new(file);
        loop {
            let mut header = [0u8; 8];
            reader.read_exact(&mut header).ok()?;
            let (size, kind) = (u64::from(be32(&header[..4])), &header[4..]);
            let body = match size {
                1 => {
                    let mut large = [0u8; 8];
                    reader.read_exact(&mut large).ok()?;
                    u64::from_be_bytes(large).checked_sub(16)?
                }
                // 0: to the end of the file, so the last box; `meta` is never that.
                0 => return None,
                size => size.checked_sub(8)?,
            };
            if kind == b"meta" {
                if body > MAX_META {
                    return None;
                }
                let mut meta = Vec::new();
                (&mut reader).take(body).read_to_end(&mut meta).ok()?;
                return (meta.len() as u64 == body).then_some(meta);
            }
            reader.seek(SeekFrom::Current(i64::try_from(body).ok()?)).ok()?;
        }
    }

    /// The boxes in `data`, as (type, body); stops at the first that does not fit.
    fn boxes(mut data: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut found = Vec::new();
        while data.len() >= 8 {
            let size = be32(&data[..4]) as usize;
            if size < 8 || size > data.len() {
                break;
            }
            let kind = [data[4], data[5], data[6], data[7]];
            found.push((kind, &data[8..size]));
            data = &data[size..];
        }
        found
    }

    /// The 1-based property indexes `ipma` associates with `item`.
    fn associations(ipma: &[u8], item: u32) -> Option<Vec<usize>> {
        let (version, wide_index) = (*ipma.first()?, ipma.get(3)? & 1 == 1);
        let count = be32(ipma.get(4..8)?);
        let mut at = 8;
        for _ in 0..count {
            let id = if version < 1 {
                at += 2;
                u32::from(be16(ipma.get(at - 2..at)?))
            } else {
                at += 4;
                be32(ipma.get(at - 4..at)?)
            };
            let associations = usize::from(*ipma.get(at)?);
            at += 1;
            let width = if wide_index { 2 } else { 1 };
            let entries = ipma.get(at..at + associations * width)?;
            at += associations * width;
            if id == item {
                // The top bit of each entry is "essential"; the rest is the index.
                return Some(if wide_index {
                    entries.chunks(2).map(|entry| usize::from(be16(entry) & 0x7FFF)).collect()
                } else {
                    entries.iter().map(|entry| usize::from(entry & 0x7F)).collect()
                });
            }
        }
        None
    }

    fn be16(bytes: &[u8]) -> u16 {
        u16::from_be_bytes([bytes[0], bytes[1]])
    }

    fn be32(bytes: &[u8]) -> u32 {
        u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use image::{GenericImageView, Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;
    use crate::files::sniff::{self, HEIC, PDF};

    const LIMITS: ImageLimits = ImageLimits { max_pixels: 40_000_000, thumbnail_edge: 64 };

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Vec::new();
        image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
        bytes
    }

    /// A picture whose corners differ: red top left, green top right, blue bottom left.
    fn corners(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| match (x < width / 2, y < height / 2) {
            (true, true) => Rgb([255, 0, 0]),
            (false, true) => Rgb([0, 255, 0]),
            (true, false) => Rgb([0, 0, 255]),
            (false, false) => Rgb([255, 255, 255]),
        })
    }

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn examine_bytes(bytes: &[u8]) -> Result<ImageFacts> {
        let sniffed = sniff::sniff(bytes).expect("a known type");
        examine(file_with(bytes).path(), &sniffed, &LIMITS)
    }

    fn decode(thumbnail: &Thumbnail) -> DynamicImage {
        image::load_from_memory(&thumbnail.bytes).unwrap()
    }

    fn is_bad_request(result: Result<ImageFacts>, expected: &str) {
        match result {
            Err(Error::BadRequest(message)) => assert!(message.contains(expected), "{message}"),
            other => panic!("expected bad_request containing {expected:?}, got {other:?}"),
        }
    }

    #[test]
    fn each_decodable_type_gives_its_size_and_a_jpeg_thumbnail() {
        let image = DynamicImage::ImageRgb8(corners(300, 150));
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::WebP] {
            let facts = examine_bytes(&encoded(&image, format)).unwrap();
            assert_eq!((facts.width, facts.height), (300, 150), "{format:?}");
            let thumbnail = facts.thumbnail.expect("a thumbnail");
            assert_eq!((thumbnail.content_type, thumbnail.width, thumbnail.height), ("image/jpeg", 64, 32));
            let decoded = decode(&thumbnail);
            assert_eq!(decoded.dimensions(), (64, 32));
            let top_left = decoded.get_pixel(4, 4).0;
            assert!(top_left[0] > 200 && top_left[1] < 60 && top_left[2] < 60, "{format:?}: {top_left:?}");
        }
    }

    #[test]
    fn a_small_image_is_not_enlarged() {
        let facts = examine_bytes(&encoded(&DynamicImage::ImageRgb8(corners(20, 10)), ImageFormat::Png)).unwrap();
        let thumbnail = facts.thumbnail.unwrap();
        assert_eq!((thumbnail.width, thumbnail.height), (20, 10));
        assert_eq!(decode(&thumbnail).dimensions(), (20, 10));
    }

    #[test]
    fn translucent_images_get_a_png_thumbnail_and_opaque_alpha_a_jpeg() {
        let translucent = RgbaImage::from_fn(100, 100, |x, _| Rgba([0, 0, 0, if x < 50 { 0 } else { 255 }]));
        let facts = examine_bytes(&encoded(&DynamicImage::ImageRgba8(translucent), ImageFormat::Png)).unwrap();
        let thumbnail = facts.thumbnail.unwrap();
        assert_eq!(thumbnail.content_type, "image/png");
        assert_eq!(decode(&thumbnail).get_pixel(2, 2).0[3], 0);
        let opaque = RgbaImage::from_pixel(100, 100, Rgba([9, 9, 9, 255]));
        let facts = examine_bytes(&encoded(&DynamicImage::ImageRgba8(opaque), ImageFormat::Png)).unwrap();
        assert_eq!(facts.thumbnail.unwrap().content_type, "image/jpeg");
    }

    /// A JPEG with an Exif APP1 segment whose only tag is Orientation = `value`.
    fn with_orientation(jpeg: &[u8], value: u8) -> Vec<u8> {
        let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        exif.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, value, 0, 0]); // tag, SHORT, 1, value
        exif.extend_from_slice(&[0, 0, 0, 0]); // no next IFD
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&u16::try_from(exif.len() + 2).unwrap().to_be_bytes());
        out.extend_from_slice(&exif);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn the_exif_orientation_is_applied() {
        // Stored 200 × 100 with "rotate 90° clockwise to show": shown 100 × 200.
        let stored = encoded(&DynamicImage::ImageRgb8(corners(200, 100)), ImageFormat::Jpeg);
        let facts = examine_bytes(&with_orientation(&stored, 6)).unwrap();
        assert_eq!((facts.width, facts.height), (100, 200));
        let thumbnail = facts.thumbnail.unwrap();
        assert_eq!((thumbnail.width, thumbnail.height), (32, 64));
        let decoded = decode(&thumbnail);
        assert_eq!(decoded.dimensions(), (32, 64));
        // Turned clockwise, the stored bottom-left (blue) is now the top left.
        let top_left = decoded.get_pixel(3, 3).0;
        assert!(top_left[2] > 200 && top_left[0] < 60, "{top_left:?}");
    }

    #[test]
    fn an_animated_gif_gives_its_first_frame() {
        use image::codecs::gif::GifEncoder;
        use image::{Delay, Frame};
        let mut bytes = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut bytes);
            for colour in [[255, 0, 0, 255], [0, 0, 255, 255]] {
                let frame = Frame::from_parts(
                    RgbaImage::from_pixel(40, 30, Rgba(colour)),
                    0,
                    0,
                    Delay::from_numer_denom_ms(100, 1),
                );
                encoder.encode_frame(frame).unwrap();
            }
        }
        let facts = examine_bytes(&bytes).unwrap();
        assert_eq!((facts.width, facts.height), (40, 30));
        let pixel = decode(&facts.thumbnail.unwrap()).get_pixel(20, 15).0;
        assert!(pixel[0] > 200 && pixel[2] < 60, "{pixel:?}");
    }

    /// A PNG header that declares `width` × `height`, with its CRC, and nothing after it.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0d".to_vec();
        bytes.extend_from_slice(&ihdr);
        bytes.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
        bytes
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_decoding() {
        // 100,000 × 100,000 RGBA would be 40 GB; the file is a few dozen bytes, and the answer
        // comes from the header alone (decoding would fail differently: there is no data).
        let mut bomb = png_header(100_000, 100_000);
        // The start of the image data (a zlib stream of zeros) and the end.
        for (kind, data) in [(&b"IDAT"[..], &[0x78, 0xDA, 0xED, 0xC1, 0x01, 0x0D, 0, 0, 0][..]), (b"IEND", &[])] {
            bomb.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
            bomb.extend_from_slice(&[kind, data].concat());
            bomb.extend_from_slice(&crc32fast::hash(&[kind, data].concat()).to_be_bytes());
        }
        is_bad_request(examine_bytes(&bomb), "100000 × 100000 pixels; the most this server accepts is 40 megapixels");
        let small = ImageLimits { max_pixels: 1_000, thumbnail_edge: 64 };
        let over = encoded(&DynamicImage::ImageRgba8(RgbaImage::new(50, 25)), ImageFormat::Png);
        is_bad_request(examine(file_with(&over).path(), &PNG, &small), "the most this server accepts is 0.001");
        // The allocation guard lets the costliest pixels (16-bit RGBA) through at the limit.
        let costly = encoded(&DynamicImage::ImageRgba16(image::ImageBuffer::new(40, 25)), ImageFormat::Png);
        assert_eq!(examine(file_with(&costly).path(), &PNG, &small).unwrap().width, 40);
    }

    #[test]
    fn truncated_and_damaged_images_are_refused() {
        let image = DynamicImage::ImageRgb8(corners(300, 200));
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::WebP] {
            let whole = encoded(&image, format);
            let half = &whole[..whole.len() / 2];
            is_bad_request(examine_bytes(half), DAMAGED);
        }
        let mut flipped = encoded(&image, ImageFormat::Png);
        let at = flipped.len() - 30;
        flipped[at] ^= 0xFF; // in the image data: its checksum no longer matches
        is_bad_request(examine_bytes(&flipped), DAMAGED);
    }

    #[test]
    fn a_jpeg_magic_before_html_is_refused() {
        let polyglot = b"\xFF\xD8\xFF<html><body><script>alert(document.cookie)</script></body></html>";
        assert_eq!(sniff::sniff(polyglot), Some(JPEG));
        is_bad_request(examine_bytes(polyglot), DAMAGED);
        // Well-formed segments (the page in a comment, then the end of image) but no picture:
        // past the check for a cut-off file, the decoder refuses it.
        let page = b"<html><script>alert(1)</script></html>";
        let mut segments = vec![0xFF, 0xD8, 0xFF, 0xFE];
        segments.extend_from_slice(&u16::try_from(page.len() + 2).unwrap().to_be_bytes());
        segments.extend_from_slice(page);
        segments.extend_from_slice(&[0xFF, 0xD9]);
        assert!(metadata::jpeg_is_complete(file_with(&segments).path()).unwrap());
        is_bad_request(examine_bytes(&segments), DAMAGED);
    }

    #[test]
    fn html_bytes_named_jpg_never_reach_the_decoder() {
        // sniff refuses them; examine called anyway with the name's word for it still refuses.
        let page = b"<html><script>alert(1)</script></html>";
        assert_eq!(sniff::sniff(page), None);
        is_bad_request(examine(file_with(page).path(), &JPEG, &LIMITS), DAMAGED);
    }

    /// A HEIC `ftyp` and a `meta` box whose primary item 1 has a 4032 × 3024 `ispe` and an
    /// `irot` of 90°, with a smaller thumbnail item 2 listed first, then some `mdat`.
    fn heic() -> Vec<u8> {
        fn boxed(kind: &[u8], body: &[u8]) -> Vec<u8> {
            let mut out = u32::try_from(body.len() + 8).unwrap().to_be_bytes().to_vec();
            out.extend_from_slice(kind);
            out.extend_from_slice(body);
            out
        }
        let ispe = |width: u32, height: u32| {
            let mut body = vec![0, 0, 0, 0];
            body.extend_from_slice(&width.to_be_bytes());
            body.extend_from_slice(&height.to_be_bytes());
            boxed(b"ispe", &body)
        };
        let ipco = boxed(b"ipco", &[ispe(320, 240), ispe(4032, 3024), boxed(b"irot", &[1])].concat());
        // Version 0, flags 0; two items: 2 → property 1; 1 → properties 2 and 3 (essential).
        let ipma = boxed(b"ipma", &[0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 1, 0x01, 0, 1, 2, 0x02, 0x83]);
        let meta = boxed(
            b"meta",
            &[
                &[0, 0, 0, 0][..],
                &boxed(b"hdlr", &[0; 24]),
                &boxed(b"pitm", &[0, 0, 0, 0, 0, 1]),
                &boxed(b"iprp", &[ipco, ipma].concat()),
            ]
            .concat(),
        );
        [boxed(b"ftyp", b"heic\0\0\0\0mif1heic"), meta, boxed(b"mdat", &[0; 100])].concat()
    }

    #[test]
    fn heic_gives_the_size_of_its_primary_image_and_no_thumbnail() {
        let bytes = heic();
        assert_eq!(sniff::sniff(&bytes), Some(HEIC));
        let facts = examine_bytes(&bytes).unwrap();
        assert_eq!(facts, ImageFacts { width: 3024, height: 4032, thumbnail: None });
        // Damaged boxes: no size, and no error either.
        let cut = &bytes[..60];
        assert_eq!(examine_bytes(cut).unwrap(), ImageFacts { width: 0, height: 0, thumbnail: None });
    }

    #[test]
    fn examine_is_for_images_only() {
        let pdf = file_with(b"%PDF-1.7\n");
        assert!(matches!(examine(pdf.path(), &PDF, &LIMITS), Err(Error::Internal(_))));
    }

    #[test]
    fn fit_keeps_proportions_and_never_enlarges() {
        assert_eq!(fit(4032, 3024, 320), (320, 240));
        assert_eq!(fit(3024, 4032, 320), (240, 320));
        assert_eq!(fit(10_000, 1, 320), (320, 1));
        assert_eq!(fit(100, 50, 320), (100, 50));
        assert_eq!(fit(321, 320, 320), (320, 319));
    }
}
