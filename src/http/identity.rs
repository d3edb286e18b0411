//! Who a room or chat client is: the name it gives (`?name=` / `?user=`)
//! when auth is off, or the `sub` of a signed token (HS256, `auth.jwt_secret`)
//! when it is on. Tokens come as `Authorization: Bearer <jwt>` or, for
//! browsers' WebSockets, `?token=<jwt>`.

use axum::http::{header, HeaderMap};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::AuthSettings;

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
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken | Self::BadToken(_) => "unauthorized",
            Self::MissingName | Self::BadName => "bad_request",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// The client's identity. `claimed` is the name from the query string,
/// `query_token` the `?token=` value.
pub fn identify(
    auth: &AuthSettings,
    headers: &HeaderMap,
    query_token: Option<&str>,
    claimed: Option<&str>,
) -> Result<String, IdentityError> {
    let name = match &auth.jwt_secret {
        None => claimed.ok_or(IdentityError::MissingName)?.trim().to_owned(),
        Some(secret) => {
            let token = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .or(query_token)
                .ok_or(IdentityError::MissingToken)?;
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
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(IdentityError::BadName);
    }
    Ok(name)
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
    fn without_a_secret_the_claimed_name_is_used() {
        let auth = AuthSettings::default();
        assert_eq!(
            identify(&auth, &HeaderMap::new(), None, Some(" ann ")).unwrap(),
            "ann"
        );
        assert_eq!(
            identify(&auth, &HeaderMap::new(), None, None),
            Err(IdentityError::MissingName)
        );
        assert_eq!(
            identify(&auth, &HeaderMap::new(), None, Some("a\nb")),
            Err(IdentityError::BadName)
        );
        let long = "x".repeat(65);
        assert_eq!(
            identify(&auth, &HeaderMap::new(), None, Some(&long)),
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
            identify(&auth, &HeaderMap::new(), Some(&good), Some("Mallory")).unwrap(),
            "User1"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {good}").parse().unwrap(),
        );
        assert_eq!(identify(&auth, &headers, None, None).unwrap(), "User1");

        assert_eq!(
            identify(&auth, &HeaderMap::new(), None, Some("User1")),
            Err(IdentityError::MissingToken)
        );
        let forged = token("other", "User1", far_future());
        assert!(matches!(
            identify(&auth, &HeaderMap::new(), Some(&forged), None),
            Err(IdentityError::BadToken(_))
        ));
        let expired = token("s3cret", "User1", 1_000);
        assert!(matches!(
            identify(&auth, &HeaderMap::new(), Some(&expired), None),
            Err(IdentityError::BadToken(_))
        ));
    }
}
