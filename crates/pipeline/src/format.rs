//! Input formats (sniffed from magic bytes) and output formats.

use std::fmt;
use std::str::FromStr;

/// Formats the pipeline can decode. Sniffed from the bytes, never a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
    Bmp,
    Tiff,
}

impl InputFormat {
    /// Identifies the format from its magic bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'B', b'M', ..] if bytes.len() >= 26 => Some(Self::Bmp),
            [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => Some(Self::Tiff),
            _ => None,
        }
    }

    /// The output format of the same family, if any (for the never-larger rule).
    pub fn as_output(self) -> Option<Format> {
        match self {
            Self::Jpeg => Some(Format::Jpeg),
            Self::Png => Some(Format::Png),
            Self::Webp => Some(Format::Webp),
            _ => None,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Bmp => "image/bmp",
            Self::Tiff => "image/tiff",
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    #[default]
    Webp,
    Jpeg,
    Png,
    Avif,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Webp, Format::Png, Format::Jpeg, Format::Avif];

    /// The canonical name used in the API (`jpg` for JPEG, as TinyImage does).
    pub fn name(self) -> &'static str {
        match self {
            Self::Webp => "webp",
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Avif => "avif",
        }
    }

    pub fn extension(self) -> &'static str {
        self.name()
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Webp => "image/webp",
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Avif => "image/avif",
        }
    }

    /// Default quality (1-100) per format.
    pub fn default_quality(self) -> u8 {
        match self {
            Self::Webp | Self::Jpeg | Self::Png => 80,
            Self::Avif => 60,
        }
    }

    /// Whether this build can encode the format.
    pub fn available(self) -> bool {
        !matches!(self, Self::Avif) || cfg!(feature = "avif")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}: use webp, png, jpg (jpeg) or avif")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "webp" => Ok(Self::Webp),
            "jpg" | "jpeg" => Ok(Self::Jpeg),
            "png" => Ok(Self::Png),
            "avif" => Ok(Self::Avif),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_bytes_not_names() {
        assert_eq!(
            InputFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(InputFormat::Jpeg)
        );
        assert_eq!(
            InputFormat::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(InputFormat::Png)
        );
        assert_eq!(
            InputFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(InputFormat::Webp)
        );
        assert_eq!(InputFormat::sniff(b"GIF89a"), Some(InputFormat::Gif));
        assert_eq!(InputFormat::sniff(b"hello world"), None);
        assert_eq!(InputFormat::sniff(b""), None);
    }

    #[test]
    fn parses_format_names_and_aliases() {
        assert_eq!("jpeg".parse::<Format>().unwrap(), Format::Jpeg);
        assert_eq!("JPG".parse::<Format>().unwrap(), Format::Jpeg);
        assert_eq!("webp".parse::<Format>().unwrap(), Format::Webp);
        assert!("gif".parse::<Format>().is_err());
    }
}
