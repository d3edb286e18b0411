//! Lossless metadata removal from an input kept as the answer (the
//! never-larger rule): the pixels' bytes are copied untouched, only metadata
//! containers go. JPEG: see `jpeg_markers::strip_metadata`. PNG: text, EXIF,
//! time and unknown ancillary chunks go; colour chunks stay. WebP: EXIF and
//! XMP chunks go; ICC and animation stay.

use crate::{jpeg_markers, InputFormat, PipelineError};

/// The input without its metadata, or `None` for formats we do not rewrite.
pub(crate) fn strip(input: &[u8], format: InputFormat) -> Result<Option<Vec<u8>>, PipelineError> {
    Ok(match format {
        InputFormat::Jpeg => Some(jpeg_markers::strip_metadata(input)?),
        InputFormat::Png => Some(strip_png(input)?),
        InputFormat::Webp => Some(strip_webp(input)?),
        _ => None,
    })
}

fn invalid(msg: &str) -> PipelineError {
    PipelineError::InvalidImage(msg.to_owned())
}

/// Chunks that change how the image looks (or are the image) are kept.
const PNG_KEEP: [&[u8; 4]; 16] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT",
    b"cICP", b"mDCV", b"cLLI", b"acTL", b"fcTL", b"fdAT",
];

fn strip_png(input: &[u8]) -> Result<Vec<u8>, PipelineError> {
    let sig = input.get(..8).ok_or_else(|| invalid("PNG: truncated"))?;
    let mut out = sig.to_vec();
    let mut pos = 8;
    loop {
        let head = input
            .get(pos..pos + 8)
            .ok_or_else(|| invalid("PNG: truncated chunk"))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = pos
            .checked_add(12)
            .and_then(|p| p.checked_add(len))
            .filter(|&e| e <= input.len())
            .ok_or_else(|| invalid("PNG: truncated chunk"))?;
        let kind = &head[4..8];
        if PNG_KEEP.iter().any(|k| &k[..] == kind) {
            out.extend_from_slice(&input[pos..end]);
        }
        if kind == b"IEND" {
            return Ok(out);
        }
        pos = end;
    }
}

fn strip_webp(input: &[u8]) -> Result<Vec<u8>, PipelineError> {
    if input.len() < 12 {
        return Err(invalid("WebP: truncated"));
    }
    let mut body = Vec::with_capacity(input.len());
    let mut pos = 12;
    while pos + 8 <= input.len() {
        let kind = &input[pos..pos + 4];
        let len = u32::from_le_bytes([
            input[pos + 4],
            input[pos + 5],
            input[pos + 6],
            input[pos + 7],
        ]) as usize;
        let data_end = (pos + 8)
            .checked_add(len)
            .filter(|&e| e <= input.len())
            .ok_or_else(|| invalid("WebP: truncated chunk"))?;
        match kind {
            b"EXIF" | b"XMP " => {}
            _ => {
                let at = body.len();
                body.extend_from_slice(&input[pos..data_end]);
                if kind == b"VP8X" && len >= 1 {
                    // Flags byte: bit 3 EXIF, bit 2 XMP.
                    body[at + 8] &= !(0x08 | 0x04);
                }
                if len & 1 == 1 {
                    body.push(0);
                }
            }
        }
        pos = data_end + (len & 1);
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&[0, 0, 0, 0]); // CRC is copied, not checked
        c
    }

    #[test]
    fn png_text_and_exif_chunks_go_colour_chunks_stay() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (k, d) in [
            (b"IHDR", &[0u8; 13][..]),
            (b"tEXt", b"Author\0me"),
            (b"eXIf", b"MM\0*"),
            (b"gAMA", &[0, 0, 177, 143]),
            (b"IDAT", b"x"),
            (b"IEND", b""),
        ] {
            png.extend(chunk(k, d));
        }
        let out = strip_png(&png).unwrap();
        let has = |k: &[u8]| out.windows(4).any(|w| w == k);
        assert!(!has(b"tEXt") && !has(b"eXIf"));
        assert!(has(b"IHDR") && has(b"gAMA") && has(b"IDAT") && has(b"IEND"));
    }

    #[test]
    fn webp_exif_goes_and_the_riff_size_is_fixed() {
        let mut body = Vec::new();
        body.extend_from_slice(b"VP8X");
        body.extend_from_slice(&10u32.to_le_bytes());
        body.extend_from_slice(&[0x08 | 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(b"EXIF");
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(b"abc\0");
        body.extend_from_slice(b"VP8L");
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(b"zz");
        let mut webp = b"RIFF".to_vec();
        webp.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
        webp.extend_from_slice(b"WEBP");
        webp.extend_from_slice(&body);
        let out = strip_webp(&webp).unwrap();
        assert!(!out.windows(4).any(|w| w == b"EXIF"));
        assert_eq!(out[20], 0x10, "EXIF flag cleared, alpha flag kept");
        let riff = u32::from_le_bytes([out[4], out[5], out[6], out[7]]) as usize;
        assert_eq!(riff + 8, out.len());
    }
}
