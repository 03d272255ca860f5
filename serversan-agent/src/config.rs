//! The agent's configuration: one typed struct, loaded in one place, from
//! `agent.toml` and `SERVERSAN_*` environment variables (which win).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::spool::SpoolBounds;

/// Environment variable names, all in one place.
pub mod env {
    pub const CONFIG: &str = "SERVERSAN_AGENT_CONFIG";
    pub const AUTH_FILE: &str = "SERVERSAN_AUTH_FILE";
    pub const SERVER_URL: &str = "SERVERSAN_SERVER_URL";
    pub const STATE_DIR: &str = "SERVERSAN_STATE_DIR";
    pub const CA_FILE: &str = "SERVERSAN_CA_FILE";
    pub const CONNECT_TIMEOUT_SECS: &str = "SERVERSAN_CONNECT_TIMEOUT_SECS";
    pub const TIMEOUT_SECS: &str = "SERVERSAN_TIMEOUT_SECS";
    pub const SPOOL_MAX_REPORTS: &str = "SERVERSAN_SPOOL_MAX_REPORTS";
    pub const SPOOL_MAX_BYTES: &str = "SERVERSAN_SPOOL_MAX_BYTES";
    pub const AUTH_RETRY_SECS: &str = "SERVERSAN_AUTH_RETRY_SECS";
    pub const CPU_SAMPLE_MS: &str = "SERVERSAN_CPU_SAMPLE_MS";
}

/// Where the installers put things.
pub mod defaults {
    #[cfg(not(windows))]
    pub const CONFIG_FILE: &str = "/etc/serversan/agent.toml";
    #[cfg(not(windows))]
    pub const AUTH_FILE: &str = "/etc/serversan/auth.log";
    #[cfg(not(windows))]
    pub const STATE_DIR: &str = "/var/lib/serversan";

    /// On Windows everything lives under `%ProgramData%\ServerSan`.
    #[cfg(windows)]
    pub const CONFIG_FILE: &str = r"ServerSan\agent.toml";
    #[cfg(windows)]
    pub const AUTH_FILE: &str = r"ServerSan\auth.log";
    #[cfg(windows)]
    pub const STATE_DIR: &str = r"ServerSan\state";

    pub const CONNECT_TIMEOUT_SECS: u64 = 10;
    pub const TIMEOUT_SECS: u64 = 30;
    /// A week of one-a-minute reports: the server accepts reports up to 7
    /// days old, so a longer spool would only hold what it refuses.
    pub const SPOOL_MAX_REPORTS: usize = 10_080;
    pub const SPOOL_MAX_BYTES: u64 = 64 << 20;
    pub const AUTH_RETRY_SECS: u64 = 3600;
    pub const CPU_SAMPLE_MS: u64 = 200;
}

/// Everything the agent needs to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub auth_file: PathBuf,
    /// Base URL of the server; `None` when neither the environment nor
    /// `agent.toml` names one (fine for `print`).
    pub server_url: Option<String>,
    pub state_dir: PathBuf,
    /// PEM file of CA certificates to trust instead of the built-in roots
    /// (a self-signed server).
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Bound on one whole request, connect to last byte.
    pub timeout: Duration,
    pub spool: SpoolBounds,
    /// After repeated 401s, the least time between attempts.
    pub auth_retry: Duration,
    /// How long to sample CPU when no previous counters exist.
    pub cpu_sample: Duration,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the agent configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the agent configuration {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{name} must be a whole number, not {value:?}")]
    BadNumber { name: &'static str, value: String },
}

/// The file form, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    auth_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    connect_timeout_secs: Option<u64>,
    timeout_secs: Option<u64>,
    spool_max_reports: Option<usize>,
    spool_max_bytes: Option<u64>,
    auth_retry_secs: Option<u64>,
    cpu_sample_ms: Option<u64>,
}

impl Config {
    /// Loads from the process environment and the config file it names.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Loads with `var` as the environment, so tests need not touch the
    /// process's. A missing default `agent.toml` is fine; a missing file the
    /// environment names explicitly is an error.
    pub fn load(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let (path, explicit) = match var(env::CONFIG) {
            Some(p) => (PathBuf::from(p), true),
            None => (default_path(defaults::CONFIG_FILE), false),
        };
        let file = read_file(&path, explicit)?;
        let number = |name: &'static str, from_file: Option<u64>, default: u64| match var(name) {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_err(|_| ConfigError::BadNumber { name, value: v }),
            None => Ok(from_file.unwrap_or(default)),
        };
        Ok(Config {
            auth_file: var(env::AUTH_FILE)
                .map(PathBuf::from)
                .or(file.auth_file)
                .unwrap_or_else(|| default_path(defaults::AUTH_FILE)),
            server_url: var(env::SERVER_URL).or(file.server),
            state_dir: var(env::STATE_DIR)
                .map(PathBuf::from)
                .or(file.state_dir)
                .unwrap_or_else(|| default_path(defaults::STATE_DIR)),
            ca_file: var(env::CA_FILE).map(PathBuf::from).or(file.ca_file),
            connect_timeout: Duration::from_secs(number(
                env::CONNECT_TIMEOUT_SECS,
                file.connect_timeout_secs,
                defaults::CONNECT_TIMEOUT_SECS,
            )?),
            timeout: Duration::from_secs(number(
                env::TIMEOUT_SECS,
                file.timeout_secs,
                defaults::TIMEOUT_SECS,
            )?),
            spool: SpoolBounds {
                max_reports: usize::try_from(number(
                    env::SPOOL_MAX_REPORTS,
                    file.spool_max_reports.map(|v| v as u64),
                    defaults::SPOOL_MAX_REPORTS as u64,
                )?)
                .unwrap_or(usize::MAX),
                max_bytes: number(
                    env::SPOOL_MAX_BYTES,
                    file.spool_max_bytes,
                    defaults::SPOOL_MAX_BYTES,
                )?,
            },
            auth_retry: Duration::from_secs(number(
                env::AUTH_RETRY_SECS,
                file.auth_retry_secs,
                defaults::AUTH_RETRY_SECS,
            )?),
            cpu_sample: Duration::from_millis(number(
                env::CPU_SAMPLE_MS,
                file.cpu_sample_ms,
                defaults::CPU_SAMPLE_MS,
            )?),
        })
    }

    /// The state directory as `print` sees it: no config file is read, so a
    /// broken or unreadable `agent.toml` never stops a look at the figures.
    pub fn state_dir_from_env() -> PathBuf {
        std::env::var_os(env::STATE_DIR)
            .filter(|v| !v.is_empty())
            .map_or_else(|| default_path(defaults::STATE_DIR), PathBuf::from)
    }
}

fn read_file(path: &Path, explicit: bool) -> Result<FileConfig, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileConfig::default());
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })
}

#[cfg(not(windows))]
fn default_path(p: &str) -> PathBuf {
    PathBuf::from(p)
}

#[cfg(windows)]
fn default_path(p: &str) -> PathBuf {
    let base = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
    PathBuf::from(base).join(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load(|k| map.get(k).cloned())
    }

    #[test]
    fn file_values_apply_and_environment_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "server = \"https://mon.example\"\nca_file = \"/etc/ca.pem\"\ntimeout_secs = 7\nspool_max_reports = 3\n",
        )
        .expect("write");
        let path = file.to_str().expect("utf-8");
        let c = load(&[(env::CONFIG, path)]).expect("loads");
        assert_eq!(c.server_url.as_deref(), Some("https://mon.example"));
        assert_eq!(c.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.timeout, Duration::from_secs(7));
        assert_eq!(c.spool.max_reports, 3);
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        let c = load(&[
            (env::CONFIG, path),
            (env::SERVER_URL, "http://127.0.0.1:9"),
            (env::TIMEOUT_SECS, "2"),
        ])
        .expect("loads");
        assert_eq!(c.server_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(c.timeout, Duration::from_secs(2));
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, "sever = \"https://typo\"\n").expect("write");
        let path = file.to_str().expect("utf-8");
        let err = load(&[(env::CONFIG, path)]).expect_err("unknown key");
        assert!(err.to_string().contains("sever"), "{err}");
        let err = load(&[(env::CONFIG, "/nonexistent/agent.toml")]).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/agent.toml"), "{err}");
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").expect("write");
        let err = load(&[
            (env::CONFIG, empty.to_str().expect("utf-8")),
            (env::TIMEOUT_SECS, "soon"),
        ])
        .expect_err("number");
        assert!(err.to_string().contains(env::TIMEOUT_SECS), "{err}");
    }
}
