//! Request signing (wire protocol v1).
//!
//! The signature is a lowercase hex HMAC-SHA256, keyed with the secret's UTF-8
//! bytes, over
//! `"v1\nPOST\n/v1/report\n{key_id}\n{timestamp}\n{nonce}\n{hex sha256 of body}"`.
//! Binding the method, path, key, time and nonce means a captured request can
//! neither be replayed later nor re-pointed at another server's key.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::auth_code::AuthCode;

type HmacSha256 = Hmac<Sha256>;

/// Nonce length produced by [`random_nonce`]; the format accepts 16 to 64.
const NONCE_BYTES: usize = 18;

/// The four headers of a signed report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub key_id: String,
    pub timestamp: i64,
    pub nonce: String,
    pub signature: String,
}

/// The exact byte string the HMAC covers.
pub fn canonical_string(key_id: &str, timestamp: i64, nonce: &str, body: &[u8]) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    format!(
        "v1\nPOST\n{}\n{key_id}\n{timestamp}\n{nonce}\n{body_hash}",
        crate::REPORT_PATH
    )
}

fn mac_for(secret: &str, key_id: &str, timestamp: i64, nonce: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(canonical_string(key_id, timestamp, nonce, body).as_bytes());
    mac
}

/// Signs `body` for sending at `timestamp` (unix seconds) with `nonce`.
pub fn sign(code: &AuthCode, timestamp: i64, nonce: &str, body: &[u8]) -> SignedRequest {
    let mac = mac_for(code.secret(), code.key_id(), timestamp, nonce, body);
    SignedRequest {
        key_id: code.key_id().to_owned(),
        timestamp,
        nonce: nonce.to_owned(),
        signature: hex::encode(mac.finalize().into_bytes()),
    }
}

/// Checks a signature in constant time. A signature that is not 64 lowercase
/// hex digits is simply wrong; no detail is returned, so an attacker learns
/// nothing from the answer.
pub fn verify_signature(
    secret: &str,
    key_id: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
    signature_hex: &str,
) -> bool {
    if signature_hex.len() != 64
        || !signature_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return false;
    }
    let Ok(expected) = hex::decode(signature_hex) else {
        return false;
    };
    mac_for(secret, key_id, timestamp, nonce, body)
        .verify_slice(&expected)
        .is_ok()
}

/// Whether `s` is an acceptable nonce: 16 to 64 of `[A-Za-z0-9_-]`.
pub fn is_valid_nonce(s: &str) -> bool {
    (16..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A fresh 24-character nonce from the operating system's CSPRNG.
pub fn random_nonce() -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut raw = [0u8; NONCE_BYTES];
    getrandom::fill(&mut raw)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> AuthCode {
        AuthCode::from_parts(
            "abcdEFGH1234",
            "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA",
        )
        .expect("valid code")
    }

    #[test]
    fn canonical_string_matches_the_documented_layout() {
        let s = canonical_string("abcdEFGH1234", 1_700_000_000, "nonce-nonce-nonce1", b"{}");
        assert_eq!(
            s,
            "v1\nPOST\n/v1/report\nabcdEFGH1234\n1700000000\nnonce-nonce-nonce1\n\
             44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    /// A fixed vector so agents in other languages can check themselves;
    /// `docs/protocol.md` quotes the same one.
    #[test]
    fn known_vector() {
        let signed = sign(&code(), 1_700_000_000, "nonce-nonce-nonce1", b"{}");
        assert_eq!(signed.signature.len(), 64);
        assert!(verify_signature(
            code().secret(),
            "abcdEFGH1234",
            1_700_000_000,
            "nonce-nonce-nonce1",
            b"{}",
            &signed.signature
        ));
        assert_eq!(
            signed.signature, "9fdc77f725243544220a5129b907b2e380641564d13105f1bb7dddeaa4ce49f2",
            "update docs/protocol.md if the vector ever changes"
        );
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let c = code();
        let s = sign(&c, 1_700_000_000, "nonce-nonce-nonce1", b"{\"a\":1}");
        let ok = |secret: &str, key: &str, ts: i64, nonce: &str, body: &[u8], sig: &str| {
            verify_signature(secret, key, ts, nonce, body, sig)
        };
        let (sec, key, n, b) = (c.secret(), c.key_id(), "nonce-nonce-nonce1", b"{\"a\":1}");
        assert!(ok(sec, key, 1_700_000_000, n, b, &s.signature));
        assert!(!ok(sec, key, 1_700_000_001, n, b, &s.signature));
        assert!(!ok(sec, "abcdEFGH1235", 1_700_000_000, n, b, &s.signature));
        assert!(!ok(
            sec,
            key,
            1_700_000_000,
            "nonce-nonce-nonce2",
            b,
            &s.signature
        ));
        assert!(!ok(sec, key, 1_700_000_000, n, b"{\"a\":2}", &s.signature));
        assert!(!ok("other", key, 1_700_000_000, n, b, &s.signature));
        assert!(!ok(
            sec,
            key,
            1_700_000_000,
            n,
            b,
            &s.signature.to_uppercase()
        ));
        assert!(!ok(sec, key, 1_700_000_000, n, b, &s.signature[..63]));
        assert!(!ok(sec, key, 1_700_000_000, n, b, ""));
    }

    #[test]
    fn nonces_are_valid_and_unique() {
        let a = random_nonce().expect("rng");
        let b = random_nonce().expect("rng");
        assert_ne!(a, b);
        assert!(is_valid_nonce(&a), "{a}");
        assert!(!is_valid_nonce("short"));
        assert!(!is_valid_nonce(&"a".repeat(65)));
        assert!(!is_valid_nonce("has space in it 1234"));
        assert!(is_valid_nonce(&"a".repeat(64)));
    }
}
