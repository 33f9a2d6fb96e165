//! Conditional and partial downloads (RFC 9110 §13, §14): `If-None-Match` answers 304, and one
//! byte range (`Range: bytes=…`, honoured only while `If-Range` names the current ETag) answers
//! 206, so that a 10 MB PDF resumes where it stopped. Several ranges at once are served whole
//! (the RFC allows it, and no client of ours asks for them); a range past the end is 416.

use std::ops::Range;

use actix_web::http::header::{self, HeaderMap};

use crate::error::{Error, Result};

/// What part of the file to send.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    Whole,
    /// Byte offsets, end excluded.
    Part(Range<u64>),
}

/// Does the client hold this version already (`If-None-Match` lists `etag`, or is `*`)?
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|tags| {
        tags.split(',').map(|tag| tag.trim().trim_start_matches("W/")).any(|tag| tag == etag || tag == "*")
    })
}

/// The part of a file of `size` bytes (ETag `etag`) that the request asks for.
pub fn wanted(headers: &HeaderMap, etag: &str, size: u64) -> Result<Wanted> {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(Wanted::Whole);
    };
    // A range of another version would splice two files: the whole one instead.
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok())
        && if_range.trim() != etag
    {
        return Ok(Wanted::Whole);
    }
    parse(range, size)
}

fn parse(range: &str, size: u64) -> Result<Wanted> {
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Ok(Wanted::Whole); // another unit: ignored, as the RFC says
    };
    if spec.contains(',') {
        return Ok(Wanted::Whole);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(Wanted::Whole);
    };
    let unsatisfiable = || Error::RangeNotSatisfiable { size };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    let part = match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => return Err(unsatisfiable()),
            Some(n) => size.saturating_sub(n)..size,
            None => return Ok(Wanted::Whole),
        },
        // bytes=A-: from A to the end.
        (false, true) => match number(first) {
            Some(start) => start..size,
            None => return Ok(Wanted::Whole),
        },
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => start..(end + 1).min(size),
            _ => return Ok(Wanted::Whole),
        },
        (true, true) => return Ok(Wanted::Whole),
    };
    if part.start >= size {
        return Err(unsatisfiable());
    }
    Ok(Wanted::Part(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_the_rfc_says() {
        assert_eq!(parse("bytes=0-99", 1000).unwrap(), Wanted::Part(0..100));
        assert_eq!(parse("bytes=900-", 1000).unwrap(), Wanted::Part(900..1000));
        assert_eq!(parse("bytes=-100", 1000).unwrap(), Wanted::Part(900..1000));
        assert_eq!(parse("bytes=-5000", 1000).unwrap(), Wanted::Part(0..1000));
        assert_eq!(parse("bytes=990-5000", 1000).unwrap(), Wanted::Part(990..1000));
        assert_eq!(parse("bytes=0-1,5-6", 1000).unwrap(), Wanted::Whole);
        assert_eq!(parse("items=0-1", 1000).unwrap(), Wanted::Whole);
        assert_eq!(parse("bytes=5-1", 1000).unwrap(), Wanted::Whole);
        assert_eq!(parse("bytes=x-1", 1000).unwrap(), Wanted::Whole);
        assert!(matches!(parse("bytes=1000-", 1000), Err(Error::RangeNotSatisfiable { size: 1000 })));
        assert!(matches!(parse("bytes=-0", 1000), Err(Error::RangeNotSatisfiable { .. })));
    }

    #[test]
    fn if_range_of_another_version_asks_for_the_whole() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, "bytes=0-9".parse().unwrap());
        assert_eq!(wanted(&headers, "\"a\"", 100).unwrap(), Wanted::Part(0..10));
        headers.insert(header::IF_RANGE, "\"b\"".parse().unwrap());
        assert_eq!(wanted(&headers, "\"a\"", 100).unwrap(), Wanted::Whole);
        headers.insert(header::IF_NONE_MATCH, "W/\"x\", \"a\"".parse().unwrap());
        assert!(none_match(&headers, "\"a\""));
        assert!(!none_match(&headers, "\"c\""));
    }
}
