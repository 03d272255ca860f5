//! The auth code a user pastes once into the installer: `<key_id>.<secret>`.
//!
//! The key id is public (it travels in a header so the server can find the
//! secret); the secret never leaves the host except inside the HMAC.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Length of generated key ids. The format accepts 8 to 32.
const KEY_ID_LEN: usize = 16;
/// Random bytes behind a generated secret (the format requires at least 32).
const SECRET_BYTES: usize = 32;
const MIN_SECRET_BYTES: usize = 32;
/// Upper bound on a secret's decoded size, so a pasted novel is refused.
const MAX_SECRET_BYTES: usize = 128;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A parsed, well-formed auth code.
///
/// `Debug` masks the secret so a code can be logged by accident without
/// leaking; `Display` prints the whole code and is meant only for handing it
/// to its owner.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCode {
    key_id: String,
    secret: String,
}

/// Why a string is not an auth code. Messages never echo the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthCodeError {
    #[error("the auth code is empty")]
    Empty,
    #[error("the auth code must look like KEY.SECRET (one dot)")]
    MissingDot,
    #[error("the key id must be 8 to 32 letters or digits")]
    BadKeyId,
    #[error("the secret must be base64url of at least 32 bytes")]
    BadSecret,
}

impl AuthCode {
    /// A fresh code from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        // Rejection sampling: bytes at or above the largest multiple of 62
        // are skipped so every character is equally likely.
        let limit = 256 - (256 % ALPHANUMERIC.len());
        let mut key_id = String::with_capacity(KEY_ID_LEN);
        while key_id.len() < KEY_ID_LEN {
            let mut raw = [0u8; KEY_ID_LEN];
            getrandom::fill(&mut raw)?;
            for b in raw.into_iter().map(usize::from).filter(|&b| b < limit) {
                if key_id.len() < KEY_ID_LEN {
                    key_id.push(char::from(ALPHANUMERIC[b % ALPHANUMERIC.len()]));
                }
            }
        }
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut secret)?;
        Ok(Self {
            key_id,
            secret: URL_SAFE_NO_PAD.encode(secret),
        })
    }

    /// Builds a code from stored parts, checking both.
    pub fn from_parts(key_id: &str, secret: &str) -> Result<Self, AuthCodeError> {
        if !is_valid_key_id(key_id) {
            return Err(AuthCodeError::BadKeyId);
        }
        if !is_valid_secret(secret) {
            return Err(AuthCodeError::BadSecret);
        }
        Ok(Self {
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The secret in its textual form; its UTF-8 bytes are the HMAC key.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

/// Whether `s` has the form of a key id: 8 to 32 ASCII letters or digits.
pub fn is_valid_key_id(s: &str) -> bool {
    (8..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_valid_secret(s: &str) -> bool {
    // Base64url without padding: 4 characters carry 3 bytes.
    if s.is_empty() || s.len() > MAX_SECRET_BYTES * 4 / 3 + 4 {
        return false;
    }
    match URL_SAFE_NO_PAD.decode(s) {
        Ok(bytes) => bytes.len() >= MIN_SECRET_BYTES,
        Err(_) => false,
    }
}

impl FromStr for AuthCode {
    type Err = AuthCodeError;

    /// Parses a pasted code. Surrounding whitespace (a trailing newline in
    /// `auth.log`, a stray space from a copy) is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AuthCodeError::Empty);
        }
        let (key_id, secret) = s.split_once('.').ok_or(AuthCodeError::MissingDot)?;
        if secret.contains('.') {
            return Err(AuthCodeError::MissingDot);
        }
        Self::from_parts(key_id, secret)
    }
}

impl fmt::Display for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.key_id, self.secret)
    }
}

impl fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCode")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_parse_back_and_differ() {
        let a = AuthCode::generate().expect("rng");
        let b = AuthCode::generate().expect("rng");
        assert_ne!(a, b);
        assert_eq!(a.key_id().len(), KEY_ID_LEN);
        assert!(is_valid_key_id(a.key_id()));
        let parsed: AuthCode = a.to_string().parse().expect("parses");
        assert_eq!(parsed, a);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(a.secret()).expect("b64").len(),
            SECRET_BYTES
        );
    }

    #[test]
    fn parse_tolerates_surrounding_whitespace() {
        let a = AuthCode::generate().expect("rng");
        let parsed: AuthCode = format!("  {a}\n").parse().expect("parses");
        assert_eq!(parsed, a);
    }

    #[test]
    fn malformed_codes_are_refused_with_a_reason() {
        let secret = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_eq!("".parse::<AuthCode>(), Err(AuthCodeError::Empty));
        assert_eq!(
            "abcdefgh".parse::<AuthCode>(),
            Err(AuthCodeError::MissingDot)
        );
        assert_eq!(
            format!("short.{secret}").parse::<AuthCode>(),
            Err(AuthCodeError::BadKeyId)
        );
        assert_eq!(
            format!("abc_defgh.{secret}").parse::<AuthCode>(),
            Err(AuthCodeError::BadKeyId)
        );
        assert_eq!(
            format!("{}.{secret}", "a".repeat(33)).parse::<AuthCode>(),
            Err(AuthCodeError::BadKeyId)
        );
        let short = URL_SAFE_NO_PAD.encode([7u8; 31]);
        assert_eq!(
            format!("abcdefgh.{short}").parse::<AuthCode>(),
            Err(AuthCodeError::BadSecret)
        );
        assert_eq!(
            "abcdefgh.not base64!".parse::<AuthCode>(),
            Err(AuthCodeError::BadSecret)
        );
        assert_eq!(
            format!("abcdefgh.{secret}.x").parse::<AuthCode>(),
            Err(AuthCodeError::MissingDot)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let a = AuthCode::generate().expect("rng");
        let shown = format!("{a:?}");
        assert!(!shown.contains(a.secret()));
        assert!(shown.contains(a.key_id()));
    }
}
