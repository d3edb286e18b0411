//! JPEG marker walking: frame size, completeness (an end-of-image marker after
//! the last scan), EXIF orientation, ICC profile, Adobe colour transform, and
//! lossless metadata stripping.
//!
//! Works on the marker structure only; it never decodes entropy-coded data.

use crate::PipelineError;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP0: u8 = 0xE0;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;

/// One marker segment: `marker` and the byte range it covers in the file
/// (marker bytes included; for SOS, the entropy-coded data after it too).
#[derive(Debug, Clone, Copy)]
struct Segment {
    marker: u8,
    start: usize,
    end: usize,
}

fn invalid(msg: &str) -> PipelineError {
    PipelineError::InvalidImage(format!("JPEG: {msg}"))
}

fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Walks the segments. With `until_sof`, stops after the first frame header
/// (header-only reads); otherwise walks to EOI and fails when it is missing.
fn walk(data: &[u8], until_sof: bool) -> Result<Vec<Segment>, PipelineError> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != SOI {
        return Err(invalid("missing start-of-image marker"));
    }
    let mut segments = vec![Segment {
        marker: SOI,
        start: 0,
        end: 2,
    }];
    let mut pos = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        let start = pos;
        if pos >= data.len() {
            return Err(invalid("truncated: no end-of-image marker"));
        }
        if data[pos] != 0xFF {
            return Err(invalid("expected a marker"));
        }
        while pos < data.len() && data[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = data.get(pos) else {
            return Err(invalid("truncated: no end-of-image marker"));
        };
        pos += 1;
        match marker {
            EOI => {
                segments.push(Segment {
                    marker,
                    start,
                    end: pos,
                });
                return Ok(segments);
            }
            0x01 | 0xD0..=0xD7 => {
                segments.push(Segment {
                    marker,
                    start,
                    end: pos,
                });
                continue;
            }
            0x00 | SOI => return Err(invalid("unexpected marker")),
            _ => {}
        }
        let Some(len_bytes) = data.get(pos..pos + 2) else {
            return Err(invalid("truncated segment header"));
        };
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return Err(invalid("bad segment length"));
        }
        let mut end = pos + len;
        if end > data.len() {
            return Err(invalid("truncated segment"));
        }
        if marker == SOS {
            end = scan_entropy(data, end)
                .ok_or_else(|| invalid("truncated: scan data without end-of-image marker"))?;
        }
        segments.push(Segment { marker, start, end });
        if until_sof && is_sof(marker) {
            return Ok(segments);
        }
        pos = end;
    }
}

/// The offset of the marker that ends the entropy-coded data starting at `pos`.
fn scan_entropy(data: &[u8], mut pos: usize) -> Option<usize> {
    while pos + 1 < data.len() {
        let next_ff = data[pos..].iter().position(|&b| b == 0xFF)?;
        pos += next_ff;
        let following = *data.get(pos + 1)?;
        match following {
            // Stuffed zero, restart marker or a fill byte: still in the scan.
            0x00 | 0xD0..=0xD7 => pos += 2,
            0xFF => pos += 1,
            _ => return Some(pos),
        }
    }
    None
}

/// Width and height from the frame header (SOFn), without decoding.
pub(crate) fn frame_size(data: &[u8]) -> Result<(u32, u32), PipelineError> {
    let segments = walk(data, true)?;
    let sof = segments
        .iter()
        .find(|s| is_sof(s.marker))
        .ok_or_else(|| invalid("no frame header"))?;
    // Body: precision (1), height (2), width (2), components (1), ...
    let body = segment_body(data, sof);
    if body.len() < 6 {
        return Err(invalid("short frame header"));
    }
    let height = u32::from(u16::from_be_bytes([body[1], body[2]]));
    let width = u32::from(u16::from_be_bytes([body[3], body[4]]));
    Ok((width, height))
}

/// Fails unless the file is complete: every scan followed by an end-of-image marker.
pub(crate) fn check_complete(data: &[u8]) -> Result<(), PipelineError> {
    let segments = walk(data, false)?;
    if !segments.iter().any(|s| s.marker == SOS) {
        return Err(invalid("no image data (missing start-of-scan)"));
    }
    Ok(())
}

fn segment_body<'a>(data: &'a [u8], s: &Segment) -> &'a [u8] {
    // Skip fill bytes, the marker byte and the two length bytes.
    let mut p = s.start;
    while p < s.end && data[p] == 0xFF {
        p += 1;
    }
    data.get(p + 3..s.end).unwrap_or(&[])
}

/// The Adobe APP14 colour transform (0: none/CMYK, 1: YCbCr, 2: YCCK), if present.
pub(crate) fn adobe_transform(data: &[u8]) -> Option<u8> {
    let segments = walk(data, true).ok()?;
    segments
        .iter()
        .filter(|s| s.marker == APP14)
        .map(|s| segment_body(data, s))
        .find(|b| b.len() >= 12 && b.starts_with(b"Adobe"))
        .map(|b| b[11])
}

/// The EXIF orientation from the first APP1 `Exif` segment (1 when absent).
pub(crate) fn exif_orientation(data: &[u8]) -> image::metadata::Orientation {
    use image::metadata::Orientation;
    walk(data, true)
        .ok()
        .and_then(|segments| {
            segments
                .iter()
                .filter(|s| s.marker == 0xE1)
                .map(|s| segment_body(data, s))
                .find_map(|b| b.strip_prefix(b"Exif\0\0"))
                .and_then(Orientation::from_exif_chunk)
        })
        .unwrap_or(Orientation::NoTransforms)
}

/// The ICC profile, reassembled from its APP2 `ICC_PROFILE` chunks in order.
pub(crate) fn icc_profile(data: &[u8]) -> Option<Vec<u8>> {
    let segments = walk(data, true).ok()?;
    let mut chunks: Vec<(u8, &[u8])> = segments
        .iter()
        .filter(|s| s.marker == APP2)
        .filter_map(|s| segment_body(data, s).strip_prefix(b"ICC_PROFILE\0"))
        .filter(|b| b.len() > 2)
        .map(|b| (b[0], &b[2..]))
        .collect();
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    Some(chunks.iter().flat_map(|c| c.1.iter().copied()).collect())
}

/// The same JPEG with its metadata removed losslessly: EXIF/XMP (APP1), IPTC
/// (APP13), comments and other application segments go; the JFIF header, ICC
/// profile (APP2 `ICC_PROFILE`), Adobe colour transform (APP14), tables,
/// frames and scans stay. Anything after the end-of-image marker goes too.
pub(crate) fn strip_metadata(data: &[u8]) -> Result<Vec<u8>, PipelineError> {
    let segments = walk(data, false)?;
    let mut out = Vec::with_capacity(data.len());
    for s in &segments {
        let keep = match s.marker {
            APP0 => segment_body(data, s).starts_with(b"JFIF\0"),
            APP2 => segment_body(data, s).starts_with(b"ICC_PROFILE\0"),
            APP14 => true,
            0xE1 | 0xE3..=0xED | 0xEF | 0xFE => false,
            _ => true,
        };
        if keep {
            out.extend_from_slice(&data[s.start..s.end]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_jpeg() -> Vec<u8> {
        // SOI, COM "hi", SOF0 1x1 1 comp, SOS with two bytes of data, EOI.
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x04, b'h', b'i']);
        v.extend_from_slice(&[
            0xFF, 0xC0, 0x00, 0x0B, 8, 0x00, 0x02, 0x00, 0x03, 1, 1, 0x11, 0,
        ]);
        v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 63, 0]);
        v.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    #[test]
    fn reads_frame_size_from_the_header() {
        assert_eq!(frame_size(&tiny_jpeg()).unwrap(), (3, 2));
    }

    #[test]
    fn a_file_without_end_marker_is_truncated() {
        let full = tiny_jpeg();
        assert!(check_complete(&full).is_ok());
        for cut in 2..full.len() - 1 {
            assert!(check_complete(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn stripping_drops_comments_and_keeps_the_rest() {
        let full = tiny_jpeg();
        let stripped = strip_metadata(&full).unwrap();
        assert_eq!(stripped.len(), full.len() - 6);
        assert!(!stripped.windows(2).any(|w| w == b"hi"));
        assert_eq!(frame_size(&stripped).unwrap(), (3, 2));
    }
}
