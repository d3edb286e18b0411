//! Download links: the URL of a variant's result that the server hands out
//! (upload answers, status entries, `/ws` done frames), and, with
//! `download.signed_urls`, their signature and expiry, checked on
//! `GET /download`.
//!
//! As imgproxy signs its URLs, a signed link carries an HMAC-SHA256 of its
//! own path and query under a server secret (`download.signing_secret`):
//! `/download/{md5}?format=webp&quality=80&expires=1733400000&signature=S`,
//! where `S` is the unpadded URL-safe base64 of the HMAC of everything
//! before `&signature=`, and `expires` a Unix time `download.link_lifetime`
//! after the link was made. Every option, the md5 and the expiry are thus
//! covered; a link changed in any byte, or with anything appended, is
//! refused. Signatures are compared in constant time (`subtle`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::DownloadSettings;
use crate::error::{ApiError, Code};
use crate::jobs::VariantSpec;

/// Where results are downloaded (the md5 follows).
pub const DOWNLOAD_PATH: &str = "/download/";

/// The query parameter that carries the signature; it is always the last.
const SIGNATURE: &str = "signature";
/// The query parameter that carries the expiry (Unix seconds).
const EXPIRES: &str = "expires";

/// Why a download link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this server hands out signed download links: use the url from the upload answer, the status or the /ws done frame")]
    Missing,
    #[error(
        "the download link's signature does not match it (changed, or signed with another secret)"
    )]
    Invalid,
    #[error("the download link has expired; ask /status for a fresh one")]
    Expired,
}

impl LinkError {
    pub fn code(self) -> Code {
        match self {
            Self::Missing => Code::SignatureRequired,
            Self::Invalid => Code::SignatureInvalid,
            Self::Expired => Code::LinkExpired,
        }
    }
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        Self::of(e.code(), e.to_string())
    }
}

/// Makes (and, when signing, checks) download links.
#[derive(Clone)]
pub struct DownloadLinks {
    /// `None`: links are plain and `/download` needs no signature.
    key: Option<Hmac<Sha256>>,
    lifetime: Duration,
}

impl std::fmt::Debug for DownloadLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadLinks")
            .field("signed", &self.signed())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl DownloadLinks {
    /// Links as `settings` say: signed when `signed_urls` is on (settings
    /// validation makes sure a secret is set then).
    pub fn new(settings: &DownloadSettings) -> Self {
        let key = settings
            .signed_urls
            .then(|| settings.signing_secret.as_deref().unwrap_or_default())
            .map(|secret| {
                // HMAC takes a key of any length.
                Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length")
            });
        Self {
            key,
            lifetime: settings.link_lifetime,
        }
    }

    /// Whether links are signed (and `/download` checks signatures).
    pub fn signed(&self) -> bool {
        self.key.is_some()
    }

    /// The link to variant `spec` of task `md5`, made now.
    pub fn url(&self, md5: &str, spec: &VariantSpec) -> String {
        self.url_at(md5, spec, SystemTime::now())
    }

    /// The link to variant `spec` of task `md5`, made at `now`.
    pub fn url_at(&self, md5: &str, spec: &VariantSpec, now: SystemTime) -> String {
        let plain = format!("{DOWNLOAD_PATH}{md5}?{}", spec.query());
        let Some(key) = &self.key else {
            return plain;
        };
        let expires = unix(now).saturating_add(self.lifetime.as_secs());
        let unsigned = format!("{plain}&{EXPIRES}={expires}");
        let signature = sign(key, &unsigned);
        format!("{unsigned}&{SIGNATURE}={signature}")
    }

    /// Checks a request to `path` with `query` at `now`: always fine when
    /// links are not signed.
    pub fn check(&self, path: &str, query: Option<&str>, now: SystemTime) -> Result<(), LinkError> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let query = query.unwrap_or_default();
        let is_signature = |p: &str| p.split('=').next() == Some(SIGNATURE);
        if !query.split('&').any(is_signature) {
            return Err(LinkError::Missing);
        }
        // The signature must be the last parameter and cover all before it.
        let marker = format!("&{SIGNATURE}=");
        let at = query.rfind(&marker).ok_or(LinkError::Invalid)?;
        let (signed_query, given) = (&query[..at], &query[at + marker.len()..]);
        if given.contains('&') {
            return Err(LinkError::Invalid);
        }
        let given = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(given)
            .map_err(|_| LinkError::Invalid)?;
        let mut mac = key.clone();
        mac.update(format!("{path}?{signed_query}").as_bytes());
        let expected = mac.finalize().into_bytes();
        use subtle::ConstantTimeEq;
        if !bool::from(expected.as_slice().ct_eq(&given)) {
            return Err(LinkError::Invalid);
        }
        // Signed by this server: its expiry is as the server wrote it.
        let expires = signed_query
            .split('&')
            .find_map(|p| p.strip_prefix(EXPIRES).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(LinkError::Invalid)?;
        if unix(now) > expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

fn sign(key: &Hmac<Sha256>, text: &str) -> String {
    let mut mac = key.clone();
    mac.update(text.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{OptionRules, UploadOptions};

    const MD5: &str = "0123456789abcdef0123456789abcdef";

    fn links(signed: bool) -> DownloadLinks {
        DownloadLinks::new(&DownloadSettings {
            signed_urls: signed,
            signing_secret: Some("a secret of the server".into()),
            link_lifetime: Duration::from_secs(600),
            ..DownloadSettings::default()
        })
    }

    fn spec() -> VariantSpec {
        UploadOptions::default()
            .to_spec(&OptionRules::within(16384))
            .unwrap()
    }

    fn split(url: &str) -> (&str, &str) {
        url.split_once('?').unwrap()
    }

    #[test]
    fn plain_links_name_the_variant_and_need_no_signature() {
        let l = links(false);
        let url = l.url(MD5, &spec());
        assert_eq!(url, format!("/download/{MD5}?format=webp&quality=80"));
        assert_eq!(l.check("/download/x", None, SystemTime::now()), Ok(()));
    }

    #[test]
    fn a_signed_link_holds_until_it_expires_and_not_after_a_change() {
        let l = links(true);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let url = l.url_at(MD5, &spec(), t0);
        let (path, query) = split(&url);
        assert!(query.contains("&expires=1000600&signature="), "{url}");
        assert_eq!(l.check(path, Some(query), t0), Ok(()));
        let end = t0 + Duration::from_secs(600);
        assert_eq!(l.check(path, Some(query), end), Ok(()));
        let after = end + Duration::from_secs(1);
        assert_eq!(l.check(path, Some(query), after), Err(LinkError::Expired));

        let later = query.replace("expires=1000600", "expires=9000600");
        assert_eq!(l.check(path, Some(&later), t0), Err(LinkError::Invalid));
        let other = query.replace("quality=80", "quality=81");
        assert_eq!(l.check(path, Some(&other), t0), Err(LinkError::Invalid));
        let other_task = path.replace("0123", "3210");
        assert_eq!(
            l.check(&other_task, Some(query), t0),
            Err(LinkError::Invalid)
        );
        let appended = format!("{query}&format=png");
        assert_eq!(l.check(path, Some(&appended), t0), Err(LinkError::Invalid));
        let garbled = format!("{query}!");
        assert_eq!(l.check(path, Some(&garbled), t0), Err(LinkError::Invalid));
        let short = &query[..query.len() - 2];
        assert_eq!(l.check(path, Some(short), t0), Err(LinkError::Invalid));
        assert_eq!(
            l.check(path, Some("signature=abc"), t0),
            Err(LinkError::Invalid)
        );

        let unsigned = query.split("&signature=").next().unwrap();
        assert_eq!(l.check(path, Some(unsigned), t0), Err(LinkError::Missing));
        assert_eq!(l.check(path, None, t0), Err(LinkError::Missing));

        let other_secret = DownloadLinks::new(&DownloadSettings {
            signed_urls: true,
            signing_secret: Some("another secret".into()),
            link_lifetime: Duration::from_secs(600),
            ..DownloadSettings::default()
        });
        assert_eq!(
            other_secret.check(path, Some(query), t0),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn every_refusal_is_a_403_with_its_own_code() {
        let codes: Vec<Code> = [LinkError::Missing, LinkError::Invalid, LinkError::Expired]
            .into_iter()
            .map(LinkError::code)
            .collect();
        for code in &codes {
            assert_eq!(code.status(), axum::http::StatusCode::FORBIDDEN);
        }
        assert_eq!(
            codes,
            [
                Code::SignatureRequired,
                Code::SignatureInvalid,
                Code::LinkExpired
            ]
        );
    }
}
