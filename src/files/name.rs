//! File-name rules shared by every store and protocol: one plain name, no
//! path, nothing hidden, no control characters, bounded length. A name that
//! passes can be joined to a directory without escaping it.

/// Hard upper bound on a name's length in bytes (common filesystem limit).
pub const MAX_NAME_BYTES: usize = 255;

/// Why a file name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the file name is empty")]
    Empty,
    #[error("the file name is {len} bytes long, the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("the file name must not contain a path separator ('/' or '\\')")]
    PathSeparator,
    #[error("the file name must not contain '..'")]
    DotDot,
    #[error("the file name must not start with '.'")]
    Hidden,
    #[error("the file name must not contain control characters")]
    ControlCharacter,
}

/// Checks `name` against the rules, with `max_len` bytes at most (capped at
/// `MAX_NAME_BYTES`).
pub fn validate_name(name: &str, max_len: usize) -> Result<(), NameError> {
    let max = max_len.min(MAX_NAME_BYTES);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            len: name.len(),
            max,
        });
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::PathSeparator);
    }
    if name.contains("..") {
        return Err(NameError::DotDot);
    }
    if name.starts_with('.') {
        return Err(NameError::Hidden);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["cat.png", "a b.jpg", "été.jpeg", "x"] {
            assert_eq!(validate_name(ok, 255), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_paths_hidden_control_and_long_names() {
        assert_eq!(validate_name("", 255), Err(NameError::Empty));
        assert_eq!(validate_name("a/b.png", 255), Err(NameError::PathSeparator));
        assert_eq!(
            validate_name("a\\b.png", 255),
            Err(NameError::PathSeparator)
        );
        assert_eq!(validate_name("..png", 255), Err(NameError::DotDot));
        assert_eq!(validate_name("a..b.png", 255), Err(NameError::DotDot));
        assert_eq!(validate_name(".hidden.png", 255), Err(NameError::Hidden));
        assert_eq!(
            validate_name("a\nb.png", 255),
            Err(NameError::ControlCharacter)
        );
        assert_eq!(
            validate_name("a\0.png", 255),
            Err(NameError::ControlCharacter)
        );
        assert_eq!(
            validate_name("a\u{85}.png", 255),
            Err(NameError::ControlCharacter)
        );
        assert_eq!(
            validate_name("abcdef.png", 5),
            Err(NameError::TooLong { len: 10, max: 5 })
        );
        let long = "a".repeat(300);
        assert_eq!(
            validate_name(&long, 1000),
            Err(NameError::TooLong { len: 300, max: 255 })
        );
    }
}
