//! Reading the auth code the installer left for the agent.

use std::io::Read;
use std::path::{Path, PathBuf};

use serversan_protocol::{AuthCode, AuthCodeError};

/// Larger than any valid code by far; a bigger file is not an auth file.
const MAX_AUTH_FILE_BYTES: u64 = 4096;

/// Why the auth code could not be had. Messages never contain the secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error(
        "no auth file at {0}: install the agent with the command the bot's /add gives \
         (or set SERVERSAN_AUTH_FILE)"
    )]
    Missing(PathBuf),
    #[error(
        "cannot read the auth file {path}: {source} (run the agent as the serversan user or root)"
    )]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the auth file {path} does not hold a valid auth code ({reason}): \
         run /reinstall in the bot and install again"
    )]
    Malformed {
        path: PathBuf,
        reason: AuthCodeError,
    },
}

/// Reads and parses the auth code at `path` (a trailing newline is fine).
pub fn load_auth_code(path: &Path) -> Result<AuthCode, AuthFileError> {
    let file = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            AuthFileError::Missing(path.to_owned())
        } else {
            AuthFileError::Unreadable {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_AUTH_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| AuthFileError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
    let malformed = |reason| AuthFileError::Malformed {
        path: path.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MAX_AUTH_FILE_BYTES {
        return Err(malformed(AuthCodeError::MissingDot));
    }
    let text = String::from_utf8(bytes).map_err(|_| malformed(AuthCodeError::MissingDot))?;
    text.parse().map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_code_with_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("auth.log");
        let code = AuthCode::generate().expect("rng");
        std::fs::write(&path, format!("{code}\n")).expect("write");
        assert_eq!(load_auth_code(&path).expect("loads"), code);
    }

    #[test]
    fn each_failure_says_what_to_do_without_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = load_auth_code(&dir.path().join("nope")).expect_err("missing");
        assert!(missing.to_string().contains("/add"), "{missing}");

        let path = dir.path().join("auth.log");
        std::fs::write(&path, "abcdefgh.short-secret-value\n").expect("write");
        let bad = load_auth_code(&path).expect_err("malformed");
        assert!(bad.to_string().contains("/reinstall"), "{bad}");
        assert!(!bad.to_string().contains("short-secret-value"), "{bad}");

        let dir_as_file = load_auth_code(dir.path()).expect_err("a directory");
        assert!(
            matches!(dir_as_file, AuthFileError::Unreadable { .. }),
            "{dir_as_file}"
        );
    }
}
