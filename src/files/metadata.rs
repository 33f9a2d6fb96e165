//! A copy of an image without the metadata that tells where and with what it was taken, and
//! by whom: Exif (GPS position, camera, serial numbers, time), XMP, IPTC, comments. Everything
//! else is copied byte for byte, pixels untouched: the copy is the same picture, not a
//! re-encoding. Streamed: memory is a buffer, whatever the file's size.
//!
//! The Exif block also carries the orientation, without which a phone photo stored sideways
//! would show sideways: when it says anything but "as stored", an Exif block holding only the
//! orientation takes the old one's place.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use image::metadata::Orientation;

use super::sniff::{JPEG, PNG, Sniffed, WEBP};
use crate::error::{Error, Result};

/// Writes to `output` a copy of the image at `input` (JPEG, PNG or WebP, as sniffed) without
/// its metadata, and returns the bytes written. An image whose structure is broken is refused
/// with `bad_request`. What comes after the image's end (a JPEG's EOI, a PNG's IEND, a WebP's
/// RIFF size) is dropped: phones put more pictures there, with their own metadata.
pub fn strip(input: &Path, output: &Path, sniffed: &Sniffed) -> Result<u64> {
    let internal =
        |what: &str, path: &Path, err: io::Error| Error::Internal(format!("{what} {}: {err}", path.display()));
    let reader = File::open(input).map_err(|err| internal("opening", input, err))?;
    let writer = File::create(output).map_err(|err| internal("creating", output, err))?;
    let (mut reader, mut writer) = (BufReader::new(reader), BufWriter::new(writer));
    let copied = if *sniffed == JPEG {
        jpeg(&mut reader, &mut writer).map(|_complete| ())
    } else if *sniffed == PNG {
        png(&mut reader, &mut writer)
    } else if *sniffed == WEBP {
        webp(&mut reader, &mut writer)
    } else {
        return Err(Error::Internal(format!("no metadata stripping for {}", sniffed.mime)));
    };
    let written = copied.and_then(|()| writer.seek(SeekFrom::End(0)));
    written.map_err(|err| match err.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => {
            Error::bad_request("the image is damaged or truncated")
        }
        _ => internal("stripping", input, err),
    })
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn read_array<const N: usize>(reader: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Copies (or, with `out` a sink, skips) exactly `len` bytes; fewer is a truncated file.
fn copy_exactly(reader: &mut impl Read, out: &mut impl Write, len: u64) -> io::Result<()> {
    if io::copy(&mut reader.take(len), out)? == len { Ok(()) } else { Err(io::ErrorKind::UnexpectedEof.into()) }
}

/// The most bytes of an Exif block read for its orientation. A JPEG segment holds at most 64 KiB;
/// a PNG or WebP chunk could hold more, but no camera writes that much.
const MAX_EXIF: u64 = 64 * 1024;
const EXIF_PREFIX: &[u8; 6] = b"Exif\0\0";

/// Exactly `len` bytes; fewer is a truncated file.
fn read_block(reader: &mut impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut block = Vec::new();
    reader.take(len).read_to_end(&mut block)?;
    if block.len() as u64 == len { Ok(block) } else { Err(io::ErrorKind::UnexpectedEof.into()) }
}

/// Reads (or, when too long to be a camera's, skips) an Exif block of `len` bytes, and gives its
/// orientation when it is worth keeping: anything but "as stored". The block may start with the
/// `Exif\0\0` of JPEG (and of some WebP writers) or directly with its TIFF header.
fn exif_orientation(reader: &mut impl Read, len: u64) -> io::Result<Option<Orientation>> {
    if len > MAX_EXIF {
        copy_exactly(reader, &mut io::sink(), len)?;
        return Ok(None);
    }
    let exif = read_block(reader, len)?;
    let tiff = exif.strip_prefix(EXIF_PREFIX).unwrap_or(&exif);
    Ok(Orientation::from_exif_chunk(tiff).filter(|orientation| *orientation != Orientation::NoTransforms))
}

/// A TIFF block (an Exif block's body) whose one entry is the orientation: big-endian, IFD0 at
/// offset 8 with one entry (tag 0x0112, type SHORT, count 1, the value) and no next IFD.
fn orientation_only(orientation: Orientation) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0".to_vec();
    tiff.extend_from_slice(&[orientation.to_exif(), 0, 0, 0, 0, 0, 0]);
    tiff
}

const SOS: u8 = 0xDA;
const EOI: u8 = 0xD9;
const APP1: u8 = 0xE1; // Exif, XMP
const APP2: u8 = 0xE2; // ICC profile (kept), Multi-Picture index (dropped with its pictures)
const APP13: u8 = 0xED; // Photoshop, IPTC
const COM: u8 = 0xFE;

/// Whether the JPEG at `path` runs to its end of image. The JPEG decoder is lenient: it shows a
/// truncated file with the missing part grey, and so does a browser; an upload cut short is
/// refused instead, so that its sender knows.
pub(super) fn jpeg_is_complete(path: &Path) -> Result<bool> {
    let file = File::open(path).map_err(|err| Error::Internal(format!("opening {}: {err}", path.display())))?;
    match jpeg(&mut BufReader::new(file), &mut io::sink()) {
        Ok(complete) => Ok(complete),
        Err(err) if matches!(err.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData) => Ok(false),
        Err(err) => Err(Error::Internal(format!("reading {}: {err}", path.display()))),
    }
}

/// JPEG: a sequence of segments (marker, length, payload), with entropy-coded data after each
/// start of scan (a progressive JPEG has several, with tables between them) up to the next
/// marker. APP1, APP13, COM and the Multi-Picture APP2 are dropped wherever they are. Whether
/// it ended with its end-of-image marker (rather than the end of the file) is the answer.
fn jpeg(reader: &mut impl BufRead, out: &mut impl Write) -> io::Result<bool> {
    if read_array::<2>(reader)? != [0xFF, 0xD8] {
        return Err(broken("no JPEG start of image"));
    }
    out.write_all(&[0xFF, 0xD8])?;
    let mut orientation_kept = false;
    let mut marker = next_marker(reader)?;
    loop {
        match marker {
            EOI => return out.write_all(&[0xFF, EOI]).map(|()| true),
            // Markers without a length: restart intervals, TEM.
            0xD0..=0xD7 | 0x01 => {
                out.write_all(&[0xFF, marker])?;
                marker = next_marker(reader)?;
                continue;
            }
            0xD8 | 0x00 => return Err(broken("a JPEG marker out of place")),
            _ => {}
        }
        let length = u16::from_be_bytes(read_array(reader)?);
        let payload = u64::from(length.checked_sub(2).ok_or_else(|| broken("a JPEG segment shorter than its length"))?);
        let mut start = [0u8; 4];
        let peeked = payload.min(4) as usize;
        reader.read_exact(&mut start[..peeked])?;
        let dropped = matches!(marker, APP1 | APP13 | COM) || (marker == APP2 && start == *b"MPF\0");
        if dropped {
            let rest = payload - peeked as u64;
            if marker == APP1 && start == EXIF_PREFIX[..4] && !orientation_kept {
                let exif = [&start[..], &read_block(reader, rest)?].concat();
                if let Some(orientation) = exif_orientation(&mut &exif[..], exif.len() as u64)? {
                    let body = [&EXIF_PREFIX[..], &orientation_only(orientation)].concat();
                    out.write_all(&[0xFF, APP1])?;
                    out.write_all(&u16::try_from(body.len() + 2).expect("a few bytes").to_be_bytes())?;
                    out.write_all(&body)?;
                    orientation_kept = true;
                }
            } else {
                copy_exactly(reader, &mut io::sink(), rest)?;
            }
            marker = next_marker(reader)?;
            continue;
        }
        out.write_all(&[0xFF, marker])?;
        out.write_all(&length.to_be_bytes())?;
        out.write_all(&start[..peeked])?;
        copy_exactly(reader, out, payload - peeked as u64)?;
        marker = if marker == SOS {
            match entropy_data(reader, out)? {
                Some(marker) => marker,
                // Data that stops without an end of image: kept as it is.
                None => return Ok(false),
            }
        } else {
            next_marker(reader)?
        };
    }
}

/// The next marker's code: `0xFF`, any number of fill `0xFF`, then the code. Bytes that are not
/// a marker where one should be are garbage a lenient decoder skips; they are skipped here.
fn next_marker(reader: &mut impl BufRead) -> io::Result<u8> {
    let mut seen_ff = false;
    loop {
        let [byte] = read_array(reader)?;
        match byte {
            0xFF => seen_ff = true,
            code if seen_ff => return Ok(code),
            _ => {}
        }
    }
}

/// Copies entropy-coded data up to the next marker, which it returns (`None` at the end of the
/// file). In the data, `0xFF 0x00` is a stuffed `0xFF` and `0xFF 0xD0..0xD7` a restart: both
/// belong to it.
fn entropy_data(reader: &mut impl BufRead, out: &mut impl Write) -> io::Result<Option<u8>> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(None);
        }
        let Some(at) = buffer.iter().position(|&byte| byte == 0xFF) else {
            out.write_all(buffer)?;
            let len = buffer.len();
            reader.consume(len);
            continue;
        };
        out.write_all(&buffer[..at])?;
        reader.consume(at + 1);
        let mut code = 0xFF;
        while code == 0xFF {
            match read_array::<1>(reader) {
                Ok([byte]) => code = byte,
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(err) => return Err(err),
            }
        }
        if code == 0x00 || (0xD0..=0xD7).contains(&code) {
            out.write_all(&[0xFF, code])?;
        } else {
            return Ok(Some(code));
        }
    }
}

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// Exif, the three kinds of text (author, comments, software, anything), the time of last edit.
const PNG_DROPPED: [&[u8; 4]; 5] = [b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"];

/// PNG: the signature, then chunks (length, type, data, CRC) up to IEND.
fn png(reader: &mut impl BufRead, out: &mut impl Write) -> io::Result<()> {
    if read_array::<8>(reader)? != *PNG_SIGNATURE {
        return Err(broken("no PNG signature"));
    }
    out.write_all(PNG_SIGNATURE)?;
    loop {
        let header: [u8; 8] = read_array(reader)?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if length > i32::MAX as u32 {
            return Err(broken("a PNG chunk longer than PNG allows"));
        }
        let kind = &header[4..];
        let rest = u64::from(length) + 4; // the data and its CRC
        if kind == b"eXIf" {
            if let Some(orientation) = exif_orientation(reader, u64::from(length))? {
                let data = [&b"eXIf"[..], &orientation_only(orientation)].concat();
                out.write_all(&u32::try_from(data.len() - 4).expect("a few bytes").to_be_bytes())?;
                out.write_all(&data)?;
                out.write_all(&crc32fast::hash(&data).to_be_bytes())?;
            }
            copy_exactly(reader, &mut io::sink(), 4)?; // the old CRC
            continue;
        }
        if PNG_DROPPED.iter().any(|dropped| dropped[..] == *kind) {
            copy_exactly(reader, &mut io::sink(), rest)?;
            continue;
        }
        out.write_all(&header)?;
        copy_exactly(reader, out, rest)?;
        if kind == b"IEND" {
            return Ok(());
        }
    }
}

/// VP8X flags of the chunks dropped here (the others: ICC, alpha, animation stay).
const VP8X_EXIF: u8 = 0x08;
const VP8X_XMP: u8 = 0x04;

/// WebP: a RIFF container of chunks (FourCC, little-endian size, data padded to even). The
/// EXIF and XMP chunks are dropped, their VP8X flags cleared, and the RIFF size written anew.
fn webp<W: Write + Seek>(reader: &mut impl BufRead, out: &mut W) -> io::Result<()> {
    let header: [u8; 12] = read_array(reader)?;
    if &header[..4] != b"RIFF" || &header[8..] != b"WEBP" {
        return Err(broken("no WebP RIFF header"));
    }
    let riff_size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    // The RIFF size counts "WEBP" and the chunks.
    let mut remaining = u64::from(riff_size).checked_sub(4).ok_or_else(|| broken("a RIFF size too small"))?;
    out.write_all(&header)?;
    // Where the VP8X flags were written, and what: the EXIF flag is set again if an orientation
    // is kept (an EXIF chunk comes after the image data, so after the flags).
    let mut flags: Option<(u64, u8)> = None;
    let mut orientation_kept = false;
    while remaining > 0 {
        let chunk: [u8; 8] = read_array(reader)?;
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        let padded = u64::from(size) + u64::from(size & 1);
        remaining = remaining.checked_sub(8 + padded).ok_or_else(|| broken("a WebP chunk past the RIFF size"))?;
        match &chunk[..4] {
            b"EXIF" => {
                let orientation = exif_orientation(reader, u64::from(size))?;
                copy_exactly(reader, &mut io::sink(), padded - u64::from(size))?;
                // Without VP8X (a simple WebP) an EXIF chunk has no place: it is dropped.
                if let (Some(orientation), Some(_), false) = (orientation, flags, orientation_kept) {
                    let tiff = orientation_only(orientation); // of even length: no padding
                    out.write_all(b"EXIF")?;
                    out.write_all(&u32::try_from(tiff.len()).expect("a few bytes").to_le_bytes())?;
                    out.write_all(&tiff)?;
                    orientation_kept = true;
                }
            }
            b"XMP " => copy_exactly(reader, &mut io::sink(), padded)?,
            b"VP8X" if size == 10 => {
                let mut body: [u8; 10] = read_array(reader)?;
                body[0] &= !(VP8X_EXIF | VP8X_XMP);
                out.write_all(&chunk)?;
                flags = Some((out.stream_position()?, body[0]));
                out.write_all(&body)?;
            }
            _ => {
                out.write_all(&chunk)?;
                copy_exactly(reader, out, padded)?;
            }
        }
    }
    let end = out.stream_position()?;
    let size = u32::try_from(end - 8).map_err(|_| broken("a WebP over 4 GiB"))?;
    out.seek(SeekFrom::Start(4))?;
    out.write_all(&size.to_le_bytes())?;
    if let (Some((at, kept)), true) = (flags, orientation_kept) {
        out.seek(SeekFrom::Start(at))?;
        out.write_all(&[kept | VP8X_EXIF])?;
    }
    out.seek(SeekFrom::Start(end))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Rgb, RgbImage};

    use super::*;

    /// A TIFF-structured Exif block whose IFD0 points at a GPS IFD holding a latitude of
    /// 48° 51' 29" N: the bytes a phone writes, in small.
    const LATITUDE: [u8; 24] = [0, 0, 0, 48, 0, 0, 0, 1, 0, 0, 0, 51, 0, 0, 0, 1, 0, 0, 0, 29, 0, 0, 0, 1];

    /// With `orientation`, IFD0 also holds an Orientation entry.
    fn exif_with_gps(orientation: Option<u8>) -> Vec<u8> {
        let entries = 1 + u8::from(orientation.is_some());
        let gps_at = 8 + 2 + 12 * entries + 4;
        let mut tiff = b"MM\0\x2a\0\0\0\x08\0".to_vec();
        tiff.push(entries);
        if let Some(value) = orientation {
            tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, value, 0, 0]);
        }
        // GPSInfo (0x8825), LONG, 1, the offset of the GPS IFD; no next IFD.
        tiff.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, gps_at, 0, 0, 0, 0]);
        // The GPS IFD: GPSLatitudeRef "N", GPSLatitude 3 RATIONAL right after the IFD.
        tiff.extend_from_slice(&[0, 2, 0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
        tiff.extend_from_slice(&[0, 2, 0, 5, 0, 0, 0, 3, 0, 0, 0, gps_at + 30, 0, 0, 0, 0]);
        assert_eq!(tiff.len(), usize::from(gps_at) + 30);
        tiff.extend_from_slice(&LATITUDE);
        [&b"Exif\0\0"[..], &tiff].concat()
    }

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xFF, marker];
        bytes.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn picture() -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 128])))
    }

    fn encoded(format: ImageFormat) -> Vec<u8> {
        let mut bytes = Vec::new();
        picture().write_to(&mut Cursor::new(&mut bytes), format).unwrap();
        bytes
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle)
    }

    /// Strips `bytes` as `sniffed`; the output and the count returned, which must agree.
    fn stripped(bytes: &[u8], sniffed: &Sniffed) -> Result<Vec<u8>> {
        let mut input = tempfile::NamedTempFile::new().unwrap();
        input.write_all(bytes).unwrap();
        let output = tempfile::NamedTempFile::new().unwrap();
        let written = strip(input.path(), output.path(), sniffed)?;
        let out = std::fs::read(output.path()).unwrap();
        assert_eq!(written, out.len() as u64);
        Ok(out)
    }

    fn exif_of(bytes: &[u8], format: ImageFormat) -> Option<Vec<u8>> {
        ImageReader::with_format(Cursor::new(bytes), format).into_decoder().unwrap().exif_metadata().unwrap()
    }

    fn pixels(bytes: &[u8], format: ImageFormat) -> Vec<u8> {
        image::load_from_memory_with_format(bytes, format).unwrap().to_rgba8().into_raw()
    }

    /// The encoder's JPEG with, after its start of image, every kind of metadata segment and
    /// an ICC profile, and after its end a second picture with Exif of its own.
    fn jpeg_with_metadata() -> Vec<u8> {
        let plain = encoded(ImageFormat::Jpeg);
        let segments = [
            segment(APP1, &exif_with_gps(None)),
            segment(APP1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>GPS</x:xmpmeta>"),
            segment(APP2, b"ICC_PROFILE\0\x01\x01profile bytes"),
            segment(APP2, b"MPF\0II*\0index of the pictures after EOI"),
            segment(APP13, b"Photoshop 3.0\08BIM\x04\x04 IPTC byline"),
            segment(COM, b"taken at home"),
        ];
        let after = [&[0xFF, 0xD8][..], &segment(APP1, &exif_with_gps(None)), &[0xFF, EOI]].concat();
        [&plain[..2], &segments.concat(), &plain[2..], &after].concat()
    }

    #[test]
    fn jpeg_loses_its_exif_gps_and_the_other_metadata_and_keeps_its_pixels() {
        let original = jpeg_with_metadata();
        assert!(exif_of(&original, ImageFormat::Jpeg).is_some(), "the decoder sees the Exif block");
        let out = stripped(&original, &JPEG).unwrap();
        assert_eq!(exif_of(&out, ImageFormat::Jpeg), None);
        for gone in [&LATITUDE[..], b"Exif\0\0", b"xmpmeta", b"8BIM", b"taken at home", b"MPF\0"] {
            assert!(!contains(&out, gone), "{:?} is still there", String::from_utf8_lossy(gone));
        }
        assert!(contains(&out, b"ICC_PROFILE\0\x01\x01profile bytes"), "the colour profile is kept");
        assert!(out.ends_with(&[0xFF, EOI]) && !contains(&out[2..], &[0xFF, 0xD8]), "nothing after the image");
        // The same picture, not a re-encoding: the rest is the original byte for byte.
        let plain = encoded(ImageFormat::Jpeg);
        let icc = segment(APP2, b"ICC_PROFILE\0\x01\x01profile bytes");
        assert_eq!(out, [&plain[..2], &icc, &plain[2..]].concat());
        assert_eq!(pixels(&out, ImageFormat::Jpeg), pixels(&original, ImageFormat::Jpeg));
    }

    #[test]
    fn jpeg_scans_are_copied_through_stuffing_restarts_and_tables_between_them() {
        let sos = segment(SOS, &[1, 1, 0, 0, 63, 0]);
        // Entropy data with a stuffed 0xFF, a restart marker and fill bytes before the next marker.
        let first_scan = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF];
        let dht = segment(0xC4, &[0x10, 1, 2, 3]);
        let second_scan = [0x78, 0xFF, 0x00];
        let mut input = vec![0xFF, 0xD8];
        input.extend(segment(0xE0, b"JFIF\0\x01\x01"));
        input.extend(segment(COM, b"before the first scan"));
        input.extend([&sos[..], &first_scan, &[0xC4]].concat()); // the fill bytes lead to a DHT
        input.extend(&dht[2..]);
        input.extend(segment(COM, b"between scans"));
        input.extend([&sos[..], &second_scan, &[0xFF, EOI], b"trailing"].concat());
        let out = stripped(&input, &JPEG).unwrap();
        let mut expected = vec![0xFF, 0xD8];
        expected.extend(segment(0xE0, b"JFIF\0\x01\x01"));
        // The fill bytes are not kept: the marker stands on its own.
        expected.extend([&sos[..], &[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]].concat());
        expected.extend(&dht);
        expected.extend([&sos[..], &second_scan, &[0xFF, EOI]].concat());
        assert_eq!(out, expected);
    }

    #[test]
    fn broken_jpegs_are_refused() {
        let whole = jpeg_with_metadata();
        for (what, bytes) in
            [("cut in a segment", &whole[..40]), ("no start of image", &whole[2..]), ("only the start", &whole[..2])]
        {
            assert!(matches!(stripped(bytes, &JPEG), Err(Error::BadRequest(_))), "{what}");
        }
        let short_length = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01];
        assert!(matches!(stripped(&short_length, &JPEG), Err(Error::BadRequest(_))));
    }

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut bytes = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(kind);
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(&crc32fast::hash(&[&kind[..], data].concat()).to_be_bytes());
        bytes
    }

    #[test]
    fn png_loses_its_exif_text_and_time_chunks() {
        let plain = encoded(ImageFormat::Png);
        // After the signature (8) and IHDR (25 bytes).
        let (head, rest) = plain.split_at(33);
        let kept = chunk(b"pHYs", &[0, 0, 11, 19, 0, 0, 11, 19, 1]);
        let metadata = [
            chunk(b"eXIf", &exif_with_gps(None)[6..]),
            chunk(b"tEXt", b"Author\0Jane Doe"),
            chunk(b"zTXt", b"Comment\0\0\x78\x9c\x03\0\0\0\0\x01"),
            chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta/>"),
            chunk(b"tIME", &[7, 232, 1, 2, 3, 4, 5]),
        ]
        .concat();
        let original = [head, &metadata, &kept, rest, b"after IEND"].concat();
        assert!(exif_of(&original, ImageFormat::Png).is_some(), "the decoder sees the eXIf chunk");
        let out = stripped(&original, &PNG).unwrap();
        assert_eq!(out, [head, &kept, rest].concat());
        assert_eq!(exif_of(&out, ImageFormat::Png), None);
        assert_eq!(pixels(&out, ImageFormat::Png), pixels(&plain, ImageFormat::Png));
        assert!(matches!(stripped(&original[..original.len() / 2], &PNG), Err(Error::BadRequest(_))));
        assert!(matches!(stripped(b"\x89PNX\r\n\x1a\n", &PNG), Err(Error::BadRequest(_))));
    }

    /// A VP8X WebP: the encoder's VP8L image, with EXIF (`exif`; padded when odd) and XMP
    /// chunks.
    fn webp_with_exif(exif: &[u8]) -> Vec<u8> {
        let plain = encoded(ImageFormat::WebP);
        let image_chunk = &plain[12..];
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let mut bytes = kind.to_vec();
            bytes.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(data);
            if data.len() % 2 == 1 {
                bytes.push(0);
            }
            bytes
        };
        // Flags: EXIF and XMP; canvas 64 × 48 (stored minus one, 24 bits each).
        let vp8x = chunk(b"VP8X", &[VP8X_EXIF | VP8X_XMP, 0, 0, 0, 63, 0, 0, 47, 0, 0]);
        let xmp = chunk(b"XMP ", b"<x:xmpmeta>odd</x:xmpmeta>!");
        let body = [&b"WEBP"[..], &vp8x, image_chunk, &chunk(b"EXIF", exif), &xmp].concat();
        [&b"RIFF"[..], &u32::try_from(body.len()).unwrap().to_le_bytes(), &body, b"junk"].concat()
    }

    fn webp_with_metadata() -> Vec<u8> {
        // An odd length, to be padded.
        webp_with_exif(&[&exif_with_gps(None)[6..], b"!"].concat())
    }

    #[test]
    fn webp_loses_its_exif_and_xmp_chunks_and_their_flags() {
        let original = webp_with_metadata();
        assert!(exif_of(&original, ImageFormat::WebP).is_some(), "the decoder sees the EXIF chunk");
        let out = stripped(&original, &WEBP).unwrap();
        assert_eq!(exif_of(&out, ImageFormat::WebP), None);
        assert!(!contains(&out, b"EXIF") && !contains(&out, b"XMP ") && !contains(&out, &LATITUDE));
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize, out.len() - 8);
        assert_eq!(&out[12..16], b"VP8X");
        assert_eq!(out[20], 0, "the EXIF and XMP flags are cleared");
        assert_eq!(pixels(&out, ImageFormat::WebP), pixels(&encoded(ImageFormat::WebP), ImageFormat::WebP));
        let mut lying = original.clone();
        lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(stripped(&lying, &WEBP), Err(Error::BadRequest(_))));
    }

    #[test]
    fn other_types_are_not_stripped_here() {
        assert!(matches!(stripped(b"%PDF-1.7", &crate::files::sniff::PDF), Err(Error::Internal(_))));
    }

    fn orientation_of(bytes: &[u8], format: ImageFormat) -> Orientation {
        ImageReader::with_format(Cursor::new(bytes), format).into_decoder().unwrap().orientation().unwrap()
    }

    #[test]
    fn the_orientation_survives_alone() {
        let exif = exif_with_gps(Some(6));
        // JPEG: an APP1 holding only the orientation, where the old one was.
        let plain = encoded(ImageFormat::Jpeg);
        let original = [&plain[..2], &segment(APP1, &exif), &plain[2..]].concat();
        assert_eq!(orientation_of(&original, ImageFormat::Jpeg), Orientation::Rotate90);
        let out = stripped(&original, &JPEG).unwrap();
        assert_eq!(orientation_of(&out, ImageFormat::Jpeg), Orientation::Rotate90);
        let kept = [&EXIF_PREFIX[..], &orientation_only(Orientation::Rotate90)].concat();
        assert_eq!(out, [&plain[..2], &segment(APP1, &kept), &plain[2..]].concat());
        // PNG: an eXIf chunk (its TIFF block, with a right CRC: the decoder checks it).
        let plain = encoded(ImageFormat::Png);
        let original = [&plain[..33], &chunk(b"eXIf", &exif[6..]), &plain[33..]].concat();
        let out = stripped(&original, &PNG).unwrap();
        assert_eq!(orientation_of(&out, ImageFormat::Png), Orientation::Rotate90);
        assert_eq!(
            out,
            [&plain[..33], &chunk(b"eXIf", &orientation_only(Orientation::Rotate90)), &plain[33..]].concat()
        );
        assert_eq!(pixels(&out, ImageFormat::Png), pixels(&plain, ImageFormat::Png));
        // WebP: an EXIF chunk, and its VP8X flag set again.
        let original = webp_with_exif(&exif[6..]);
        let out = stripped(&original, &WEBP).unwrap();
        assert_eq!(orientation_of(&out, ImageFormat::WebP), Orientation::Rotate90);
        assert_eq!(out[20], VP8X_EXIF, "only the EXIF flag");
        assert!(!contains(&out, &LATITUDE) && contains(&out, &orientation_only(Orientation::Rotate90)));
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize, out.len() - 8);
        assert_eq!(pixels(&out, ImageFormat::WebP), pixels(&encoded(ImageFormat::WebP), ImageFormat::WebP));
    }

    #[test]
    fn an_orientation_as_stored_is_not_kept() {
        let plain = encoded(ImageFormat::Jpeg);
        let original = [&plain[..2], &segment(APP1, &exif_with_gps(Some(1))), &plain[2..]].concat();
        assert_eq!(stripped(&original, &JPEG).unwrap(), plain);
    }
}
