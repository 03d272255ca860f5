//! What one run tells the next about delivery: the server asked us to wait,
//! the key was refused, the plain-HTTP warning was given.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the state directory.
pub const DELIVERY_FILE: &str = "delivery.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryState {
    /// Unix time before which the server asked not to be sent to.
    #[serde(default)]
    pub retry_not_before: i64,
    /// Consecutive 401s for one key.
    #[serde(default)]
    pub auth_refused: Option<AuthRefusal>,
    /// The plain-HTTP URL already warned about.
    #[serde(default)]
    pub warned_insecure_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRefusal {
    /// Only refusals of the current key count: a reinstall (new key) tries
    /// at once.
    pub key_id: String,
    pub count: u32,
    pub last_attempt: i64,
    /// What to tell the user while waiting to try again.
    #[serde(default)]
    pub advice: String,
}

impl DeliveryState {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(DELIVERY_FILE)
    }

    /// The saved state; an absent or unreadable file is a fresh start.
    pub fn load(state_dir: &Path) -> Self {
        std::fs::read(Self::path(state_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_replace(&Self::path(state_dir), &bytes)
    }

    /// When the next attempt with `key_id` is allowed after repeated 401s
    /// (`None`: now).
    pub fn auth_backoff_until(&self, key_id: &str, retry_secs: i64) -> Option<i64> {
        self.auth_refused
            .as_ref()
            .filter(|r| r.key_id == key_id && r.count >= 2)
            .map(|r| r.last_attempt.saturating_add(retry_secs))
    }

    pub fn record_auth_refusal(&mut self, key_id: &str, now: i64, advice: &str) {
        let count = match &self.auth_refused {
            Some(r) if r.key_id == key_id => r.count.saturating_add(1),
            _ => 1,
        };
        self.auth_refused = Some(AuthRefusal {
            key_id: key_id.to_owned(),
            count,
            last_attempt: now,
            advice: advice.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_backoff_starts_at_the_second_refusal_and_follows_the_key() {
        let mut s = DeliveryState::default();
        s.record_auth_refusal("key1", 1_000, "x");
        assert_eq!(s.auth_backoff_until("key1", 3600), None);
        s.record_auth_refusal("key1", 1_060, "x");
        assert_eq!(s.auth_backoff_until("key1", 3600), Some(4_660));
        assert_eq!(
            s.auth_backoff_until("key2", 3600),
            None,
            "a new key tries at once"
        );
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = DeliveryState::default();
        s.record_auth_refusal("k", 5, "x");
        s.save(dir.path()).expect("save");
        assert_eq!(DeliveryState::load(dir.path()), s);
    }
}
