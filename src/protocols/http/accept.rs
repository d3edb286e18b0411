//! The `Accept` request header, as far as choosing an image format goes:
//! which media types it allows.

use axum::http::{header, HeaderMap};

/// The media ranges of a request's `Accept` headers with their weights.
/// No header allows everything.
#[derive(Debug, Clone, PartialEq)]
pub struct Accept {
    /// `(type, subtype, q)`, lower case; `*` for a wildcard.
    ranges: Option<Vec<(String, String, f32)>>,
}

impl Accept {
    /// The ranges of every `Accept` header of a request.
    pub fn of(headers: &HeaderMap) -> Self {
        let values: Vec<&str> = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Self { ranges: None };
        }
        Self::parse(&values.join(","))
    }

    /// Parses a header value such as `image/webp,image/*;q=0.8`. A range
    /// that is not `type/subtype`, or whose `q` is not a number from 0 to 1,
    /// is left out.
    pub fn parse(text: &str) -> Self {
        let ranges = text
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let range = parts.next()?.trim().to_ascii_lowercase();
                let (kind, sub) = range.split_once('/')?;
                if kind.is_empty() || sub.is_empty() || (kind == "*" && sub != "*") {
                    return None;
                }
                let mut q = 1.0_f32;
                for param in parts {
                    if let Some((name, value)) = param.split_once('=') {
                        if name.trim().eq_ignore_ascii_case("q") {
                            q = value
                                .trim()
                                .parse()
                                .ok()
                                .filter(|q| (0.0..=1.0).contains(q))?;
                        }
                    }
                }
                Some((kind.to_owned(), sub.to_owned(), q))
            })
            .collect();
        Self {
            ranges: Some(ranges),
        }
    }

    /// Whether `mime` (`image/webp`) is allowed: the most specific range
    /// that covers it (`image/webp` before `image/*` before `*/*`) has a
    /// weight above 0. A type no range covers is not allowed.
    pub fn allows(&self, mime: &str) -> bool {
        let Some(ranges) = &self.ranges else {
            return true;
        };
        let (kind, sub) = mime.split_once('/').unwrap_or((mime, ""));
        ranges
            .iter()
            .filter_map(|(k, s, q)| {
                let specificity = match (k.as_str(), s.as_str()) {
                    (k, s) if k == kind && s == sub => 2,
                    (k, "*") if k == kind => 1,
                    ("*", "*") => 0,
                    _ => return None,
                };
                Some((specificity, *q))
            })
            // The most specific range decides; among equals, the highest weight.
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
            .is_some_and(|(_, q)| q > 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_header_allows_every_image_type() {
        let accept = Accept::parse("image/avif,image/webp,image/apng,image/*,*/*;q=0.8");
        for mime in ["image/webp", "image/png", "image/jpeg", "image/avif"] {
            assert!(accept.allows(mime), "{mime}");
        }
    }

    #[test]
    fn the_most_specific_range_decides() {
        let accept = Accept::parse("image/*;q=0.5, image/webp;q=0, text/html");
        assert!(!accept.allows("image/webp"));
        assert!(accept.allows("image/png"));
        let only_png = Accept::parse("image/png");
        assert!(only_png.allows("image/png"));
        assert!(!only_png.allows("image/webp"));
        assert!(Accept::parse("*/*").allows("image/webp"));
        assert!(!Accept::parse("image/*;q=0").allows("image/jpeg"));
    }

    #[test]
    fn no_header_allows_anything_and_garbage_allows_nothing() {
        assert!(Accept::of(&HeaderMap::new()).allows("image/avif"));
        let junk = Accept::parse("nonsense, image/webp;q=abc, */png");
        assert!(!junk.allows("image/webp"));
        assert!(!junk.allows("image/png"));
    }
}
