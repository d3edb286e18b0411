//! The one base64 codec every protocol uses for image bytes: the standard
//! alphabet, padding optional, surrounding white space ignored, and a
//! `data:<mime>;base64,` prefix (as browsers produce it) accepted.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 that does not decode; the text says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Base64Error(String);

/// The payload of `text`, without a `data:` URL prefix and white space.
pub fn payload(text: &str) -> &str {
    let text = text.trim();
    match text.split_once(";base64,") {
        Some((head, data)) if head.starts_with("data:") => data.trim(),
        _ => text,
    }
}

/// An upper bound on the bytes `text` decodes to, known before decoding.
pub fn decoded_len_estimate(text: &str) -> usize {
    payload(text).len().div_ceil(4) * 3
}

/// Decodes plain base64 or a `data:` URL.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    ENGINE
        .decode(payload(text))
        .map_err(|e| Base64Error(e.to_string()))
}

/// Encodes with padding (every chunk of 4 characters decodes on its own).
pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_padded_unpadded_and_data_urls_decode() {
        assert_eq!(decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode(" aGVsbG8 ").unwrap(), b"hello");
        assert_eq!(decode("data:image/png;base64,aGVsbG8=").unwrap(), b"hello");
        assert!(decode("not base64!").is_err());
        assert_eq!(encode(b"hello"), "aGVsbG8=");
        assert!(decoded_len_estimate("aGVsbG8=") >= 5);
    }
}
