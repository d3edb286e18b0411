//! Who a client is, and the one rule for names. A room or chat client is
//! the name it gives (`?name=` / `?user=`) when auth is off, or the `sub` of
//! a signed token (HS256, `auth.jwt_secret`) when it is on; tokens come as
//! `Authorization: Bearer <jwt>` (read by the protocol layer) or, for
//! browsers' WebSockets, `?token=<jwt>`. Job API clients are checked against
//! `auth.api_keys`. Room and member names follow the same rule everywhere.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::AuthSettings;
use crate::error::Code;

/// Longest accepted user or display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("a signed token is required (Authorization: Bearer <token> or ?token=)")]
    MissingToken,
    #[error("the token is not valid: {0}")]
    BadToken(String),
    #[error("a name is required")]
    MissingName,
    #[error("the name must be 1 to {MAX_NAME_CHARS} printable characters")]
    BadName,
}

impl IdentityError {
    pub fn code(&self) -> Code {
        match self {
            Self::MissingToken | Self::BadToken(_) => Code::Unauthorized,
            Self::MissingName | Self::BadName => Code::BadRequest,
        }
    }
}

impl From<IdentityError> for crate::error::ApiError {
    fn from(e: IdentityError) -> Self {
        Self::of(e.code(), e.to_string())
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// The client's identity. `claimed` is the name from the query string,
/// `token` the bearer token (from `Authorization` or `?token=`).
pub fn identify(
    auth: &AuthSettings,
    token: Option<&str>,
    claimed: Option<&str>,
) -> Result<String, IdentityError> {
    let name = match &auth.jwt_secret {
        None => claimed.ok_or(IdentityError::MissingName)?.trim().to_owned(),
        Some(secret) => {
            let token = token.ok_or(IdentityError::MissingToken)?;
            let mut validation = Validation::new(Algorithm::HS256);
            validation.required_spec_claims.clear();
            validation.validate_exp = true;
            let data = decode::<Claims>(
                token.trim(),
                &DecodingKey::from_secret(secret.as_bytes()),
                &validation,
            )
            .map_err(|e| IdentityError::BadToken(e.to_string()))?;
            data.claims.sub
        }
    };
    if !is_good_name(&name) {
        return Err(IdentityError::BadName);
    }
    Ok(name)
}

/// Whether `auth.api_keys` lets `key` in (always, when none are set).
pub fn api_key_allowed(auth: &AuthSettings, key: Option<&str>) -> bool {
    api_caller(auth, key).is_some()
}

/// Who calls the job API: the owner its uploads are recorded under, and
/// whether it sees every task. With no API keys set every caller is the
/// same open caller and sees everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub owner: Option<String>,
    pub admin: bool,
}

impl Caller {
    /// The caller when no API keys are set.
    pub fn open() -> Self {
        Self {
            owner: None,
            admin: true,
        }
    }
}

/// The caller `key` is, or `None` when keys are set and `key` is none of
/// them. Every configured key is compared, each in constant time, so the
/// answer's timing says nothing about how close a guess was.
pub fn api_caller(auth: &AuthSettings, key: Option<&str>) -> Option<Caller> {
    use subtle::ConstantTimeEq;
    if auth.api_keys.is_empty() {
        return Some(Caller::open());
    }
    let key = key?.as_bytes();
    let mut found = None;
    for entry in &auth.api_keys {
        if bool::from(entry.key.as_bytes().ct_eq(key)) && found.is_none() {
            found = Some(entry);
        }
    }
    found.map(|entry| Caller {
        owner: Some(owner_of(entry)),
        admin: entry.admin,
    })
}

/// The owner a key's uploads are recorded under: its name, else a digest of
/// the key (the key itself is never stored).
fn owner_of(entry: &crate::config::ApiKey) -> String {
    match &entry.name {
        Some(name) => format!("name:{name}"),
        None => {
            use md5::Digest;
            let digest = md5::Md5::digest(entry.key.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("key:{}", &hex[..16])
        }
    }
}

/// The one name rule, for room, member and user names alike: 1 to
/// `MAX_NAME_CHARS` characters, none a control character.
pub fn is_good_name(name: &str) -> bool {
    let chars = name.chars().count();
    chars > 0 && chars <= MAX_NAME_CHARS && !name.chars().any(char::is_control)
}

/// A room name from the URL: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn check_room(room: &str) -> Result<(), String> {
    let ok_chars = room
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !is_good_name(room) || !ok_chars {
        return Err(format!(
            "invalid room name {room:?}: use 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// A member's display name: trimmed, under the name rule. `None` or blank
/// gives `fallback`.
pub fn check_member_name(name: Option<&str>, fallback: &str) -> Result<String, String> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Ok(fallback.to_owned());
    }
    if !is_good_name(name) {
        return Err(format!(
            "invalid name {name:?}: use 1 to {MAX_NAME_CHARS} characters without control characters"
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn token(secret: &str, sub: &str, exp: u64) -> String {
        #[derive(serde::Serialize)]
        struct C<'a> {
            sub: &'a str,
            exp: u64,
        }
        encode(
            &Header::default(),
            &C { sub, exp },
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn far_future() -> u64 {
        4_000_000_000
    }

    #[test]
    fn names_are_checked() {
        assert!(check_room("team-1.a_b").is_ok());
        assert!(check_room("").is_err());
        assert!(check_room("a/b").is_err());
        assert!(check_room(&"x".repeat(65)).is_err());
        assert_eq!(check_member_name(None, "anon").unwrap(), "anon");
        assert_eq!(check_member_name(Some(" Ann "), "anon").unwrap(), "Ann");
        assert!(check_member_name(Some("a\nb"), "anon").is_err());
    }

    #[test]
    fn without_a_secret_the_claimed_name_is_used() {
        let auth = AuthSettings::default();
        assert_eq!(identify(&auth, None, Some(" ann ")).unwrap(), "ann");
        assert_eq!(identify(&auth, None, None), Err(IdentityError::MissingName));
        assert_eq!(
            identify(&auth, None, Some("a\nb")),
            Err(IdentityError::BadName)
        );
        let long = "x".repeat(65);
        assert_eq!(
            identify(&auth, None, Some(&long)),
            Err(IdentityError::BadName)
        );
    }

    #[test]
    fn with_a_secret_only_a_valid_token_counts() {
        let auth = AuthSettings {
            jwt_secret: Some("s3cret".into()),
            ..AuthSettings::default()
        };
        let good = token("s3cret", "User1", far_future());
        assert_eq!(
            identify(&auth, Some(&good), Some("Mallory")).unwrap(),
            "User1"
        );

        assert_eq!(
            identify(&auth, None, Some("User1")),
            Err(IdentityError::MissingToken)
        );
        let forged = token("other", "User1", far_future());
        assert!(matches!(
            identify(&auth, Some(&forged), None),
            Err(IdentityError::BadToken(_))
        ));
        let expired = token("s3cret", "User1", 1_000);
        assert!(matches!(
            identify(&auth, Some(&expired), None),
            Err(IdentityError::BadToken(_))
        ));
    }
}
