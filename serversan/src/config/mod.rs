//! Configuration: one typed struct, loaded in one place.
//!
//! Sources, later ones winning: built-in defaults, an optional TOML file
//! (`--config PATH` or `SERVERSAN_CONFIG`), then `SERVERSAN_*` environment
//! variables. Every setting has both a TOML key and an environment name
//! (`body_limit` ↔ `SERVERSAN_BODY_LIMIT`), so the environment alone always
//! suffices. Adding a setting is one entry in the [`settings!`] list below
//! plus a row in the README's settings table (a test keeps the two in step).

mod values;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use values::{
    ByteSize, DatabaseKind, DatabaseUrl, IdList, IpNet, NetList, Secret, SettingValue,
};

/// Prefix of every environment variable the server reads.
pub const ENV_PREFIX: &str = "SERVERSAN_";

/// Environment variable naming the config file (the `--config` flag wins).
pub const CONFIG_ENV: &str = "SERVERSAN_CONFIG";

/// Largest accepted body limit: the stored report must fit a MEDIUMTEXT.
const MAX_BODY_LIMIT: usize = 16 << 20;

/// Name, documentation and default of one setting, for `check-config` and docs.
#[derive(Debug, Clone, Copy)]
pub struct SettingInfo {
    /// TOML key, e.g. `body_limit`.
    pub key: &'static str,
    /// First line of the setting's documentation.
    pub doc: &'static str,
}

impl SettingInfo {
    /// The environment variable, e.g. `SERVERSAN_BODY_LIMIT`.
    pub fn env_name(&self) -> String {
        format!("{ENV_PREFIX}{}", self.key.to_ascii_uppercase())
    }
}

/// Declares every setting once: the struct field, its default, its TOML key
/// and environment name, and how `check-config` shows it.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:expr ),+ $(,)?) => {
        /// The server's effective configuration.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for Config {
            fn default() -> Self {
                Self { $( $name: $default, )+ }
            }
        }

        /// Every setting, in declaration order.
        pub const SETTINGS: &[SettingInfo] = &[
            $( SettingInfo { key: stringify!($name), doc: first_doc_line(&[$($doc),+]) }, )+
        ];

        impl Config {
            /// Sets `key` from text; `Ok(false)` when no such setting exists.
            fn set(&mut self, key: &str, raw: &str) -> Result<bool, String> {
                match key {
                    $( stringify!($name) => {
                        self.$name = <$ty as SettingValue>::parse(raw)?;
                        Ok(true)
                    } )+
                    _ => Ok(false),
                }
            }

            /// Every setting's key and shown (masked) value.
            pub fn shown(&self) -> Vec<(&'static str, String)> {
                vec![ $( (stringify!($name), SettingValue::show(&self.$name)), )+ ]
            }
        }
    };
}

const fn first_doc_line(lines: &[&'static str]) -> &'static str {
    match lines.first() {
        Some(line) => line,
        None => "",
    }
}

settings! {
    /// Database URL: sqlite://PATH (created if missing) or mysql://user:pass@host:port/db.
    database_url: DatabaseUrl = DatabaseUrl::parse("sqlite://serversan.db")
        .unwrap_or_else(|_| unreachable!("the default URL is valid")),
    /// Most database connections this process opens.
    database_max_connections: u32 = 10,
    /// How long to wait for a database connection or answer before answering 503.
    database_timeout: Duration = Duration::from_secs(5),
    /// How long SQLite waits for a lock held by another process (such as the CLI).
    sqlite_busy_timeout: Duration = Duration::from_secs(5),
    /// Address and port the HTTP(S) listener binds.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)),
    /// Base URL agents and install commands use (default: http://LISTEN).
    public_url: Option<String> = None,
    /// PEM certificate chain for native HTTPS (with tls_key); unset means plain HTTP.
    tls_cert: Option<PathBuf> = None,
    /// PEM private key for native HTTPS (with tls_cert).
    tls_key: Option<PathBuf> = None,
    /// How often the TLS files are checked for a renewed certificate.
    tls_reload_interval: Duration = Duration::from_secs(60),
    /// Directory of agent binaries served at /agent/<os>-<arch>.
    agent_dir: Option<PathBuf> = None,
    /// Telegram bot token; without it `serve` runs ingest alone.
    bot_token: Option<Secret> = None,
    /// Telegram Bot API base URL (a local Bot API server or a test double).
    telegram_api_url: String = "https://api.telegram.org".to_owned(),
    /// Comma-separated Telegram user ids that are administrators.
    admins: IdList = IdList::default(),
    /// Largest accepted report body (checked while reading).
    body_limit: ByteSize = ByteSize(64 << 10),
    /// Time a client has to send its request headers.
    header_read_timeout: Duration = Duration::from_secs(30),
    /// Time a whole request may take, body included.
    request_timeout: Duration = Duration::from_secs(60),
    /// Most simultaneous client connections; further ones wait to be accepted.
    max_connections: usize = 4096,
    /// Least time between two accepted reports of one server (by collected_at).
    min_report_interval: Duration = Duration::from_secs(10),
    /// Most accepted reports per server per minute (bounds spool floods).
    max_reports_per_minute: u32 = 60,
    /// Largest accepted difference between a request's timestamp and the server clock.
    timestamp_skew: Duration = Duration::from_secs(300),
    /// Oldest accepted collected_at (reports spooled during an outage).
    max_report_age: Duration = Duration::from_secs(7 * 86_400),
    /// Failed authentications one client IP may make per minute before 429 (0: no limit).
    auth_failures_per_minute: u32 = 60,
    /// Proxies (IPs or networks) whose X-Forwarded-For header names the client.
    trusted_proxies: NetList = NetList::default(),
    /// How often expired nonces and deleted servers' reports are pruned.
    prune_interval: Duration = Duration::from_secs(60),
    /// How long raw reports are kept for charts (0 keeps them forever).
    history_raw_retention: Duration = Duration::from_secs(30 * 86_400),
    /// How long 10-minute and hourly chart rollups are kept (0 keeps them forever).
    history_rollup_retention: Duration = Duration::from_secs(365 * 86_400),
    /// How often chart rollups are brought up to date and old history pruned.
    history_interval: Duration = Duration::from_secs(60),
    /// Rows the history job reads or deletes per statement.
    history_batch: u32 = 1000,
    /// Retry-After sent with 503 when storage is unavailable.
    unavailable_retry_after: Duration = Duration::from_secs(30),
    /// How long shutdown waits for requests in flight.
    shutdown_timeout: Duration = Duration::from_secs(10),
    /// Whether GET /metrics serves Prometheus metrics.
    metrics: bool = true,
    /// Log filter (tracing syntax, e.g. info or serversan=debug); RUST_LOG wins.
    log: String = "info".to_owned(),
    /// How often silent servers, due reminders and ended mutes are looked for.
    alert_tick_interval: Duration = Duration::from_secs(30),
    /// How often a still-firing alert is repeated (0: never).
    alert_reminder_interval: Duration = Duration::from_secs(6 * 3600),
    /// How many percentage points below its threshold a firing alert must fall to clear.
    alert_clear_margin: u32 = 5,
    /// How far below its threshold (percent of it) a firing load alert must fall to clear.
    alert_load_clear_margin: u32 = 10,
    /// Reports collected longer ago than this prove a server alive but are not checked.
    alert_max_report_age: Duration = Duration::from_secs(600),
    /// Lease time of the alert scheduler and sender (another instance takes over after it).
    alert_lease_time: Duration = Duration::from_secs(30),
    /// How often the alert sender looks for queued messages.
    outbox_poll_interval: Duration = Duration::from_secs(1),
    /// First wait before retrying a message Telegram kept failing on (doubles).
    outbox_retry_backoff: Duration = Duration::from_secs(5),
    /// Longest wait between retries of one alert message.
    outbox_retry_max: Duration = Duration::from_secs(600),
    /// How long sent and dropped alert messages are kept.
    outbox_keep: Duration = Duration::from_secs(7 * 86_400),
    /// A server whose auth code is never used is removed after this long.
    code_expiry: Duration = Duration::from_secs(24 * 3600),
    /// How often servers whose code expired unused are looked for.
    code_expiry_interval: Duration = Duration::from_secs(300),
    /// A server with no report for this long is shown offline in the bot.
    offline_after: Duration = Duration::from_secs(180),
    /// Commands and button presses one user may send to the bot per minute.
    bot_commands_per_minute: u32 = 30,
    /// Commands one user may send at once above that rate.
    bot_command_burst: u32 = 10,
    /// How long one getUpdates long poll waits for updates (at most 50s).
    telegram_poll_timeout: Duration = Duration::from_secs(25),
    /// Longest wait for the answer to any other Bot API call.
    telegram_request_timeout: Duration = Duration::from_secs(30),
    /// First wait after a Telegram 5xx or network error (doubles each time).
    telegram_backoff: Duration = Duration::from_secs(1),
    /// Longest wait between two tries of a Telegram call.
    telegram_backoff_max: Duration = Duration::from_secs(30),
    /// How long a reply is retried before it is dropped with a log line.
    telegram_give_up_after: Duration = Duration::from_secs(15 * 60),
    /// Lease time of the Telegram poller (another instance takes over after it).
    telegram_poller_lease: Duration = Duration::from_secs(30),
    /// Webhook mode: the secret Telegram sends with each update (unset: long polling).
    webhook_secret: Option<Secret> = None,
    /// Webhook mode: updates arrive at POST /telegram/<webhook_path>.
    webhook_path: String = "updates".to_owned(),
}

/// Where a setting's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env(String),
}

/// A loaded configuration and where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Keys whose value did not come from the defaults.
    pub origins: BTreeMap<&'static str, Origin>,
    /// `SERVERSAN_*` variables that name no setting (likely typos).
    pub unknown_env: Vec<String>,
}

/// Why the configuration cannot be used. Messages name the setting and its
/// source; they never echo a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("unknown setting `{key}` in {path}; see the settings table in the README")]
    UnknownKey { key: String, path: PathBuf },
    #[error("{setting}: {reason}")]
    Invalid { setting: String, reason: String },
}

/// Environment variables with the `SERVERSAN_` prefix that are not server
/// settings but belong to the agent, the config file or the tests.
const FOREIGN_ENV: &[&str] = &[
    CONFIG_ENV,
    "SERVERSAN_AUTH_FILE",
    "SERVERSAN_SERVER_URL",
    "SERVERSAN_STATE_DIR",
];

impl Config {
    /// Loads the configuration from an optional file and the process
    /// environment, then checks it.
    pub fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
        Self::load_from(
            file,
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Loads from an optional file and the given environment (tests pass
    /// their own instead of touching the process's).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut config = Config::default();
        let mut origins = BTreeMap::new();
        if let Some(path) = file {
            for (key, raw) in read_file(path)? {
                let Some(info) = SETTINGS.iter().find(|s| s.key == key) else {
                    return Err(ConfigError::UnknownKey {
                        key,
                        path: path.to_owned(),
                    });
                };
                config
                    .set(info.key, &raw)
                    .map_err(|reason| ConfigError::Invalid {
                        setting: format!("{} in {}", info.key, path.display()),
                        reason,
                    })?;
                origins.insert(info.key, Origin::File(path.to_owned()));
            }
        }
        let mut unknown_env = Vec::new();
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        env.sort();
        for (name, raw) in env {
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
            match SETTINGS.iter().find(|s| s.key == key) {
                Some(info) => {
                    config
                        .set(info.key, &raw)
                        .map_err(|reason| ConfigError::Invalid {
                            setting: name.clone(),
                            reason,
                        })?;
                    origins.insert(info.key, Origin::Env(name));
                }
                None if FOREIGN_ENV.contains(&name.as_str())
                    || name.starts_with("SERVERSAN_TEST_") => {}
                None => unknown_env.push(name),
            }
        }
        config.validate(&origins)?;
        Ok(Loaded {
            config,
            origins,
            unknown_env,
        })
    }

    /// Checks values that are well-formed but unusable, or only make sense
    /// together.
    fn validate(&self, origins: &BTreeMap<&'static str, Origin>) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
            setting: describe(key, origins),
            reason,
        };
        if let Some(url) = &self.public_url {
            // The installers embed it: the same rule as theirs, checked now
            // rather than when someone first asks for /install.sh.
            crate::install::check_public_url(url)
                .map_err(|e| invalid("public_url", e.to_string()))?;
        }
        check_http_url(&self.telegram_api_url).map_err(|r| invalid("telegram_api_url", r))?;
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(invalid(
                    "tls_key",
                    "tls_cert is set, so tls_key must be set too".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_cert",
                    "tls_key is set, so tls_cert must be set too".into(),
                ));
            }
            _ => {}
        }
        if !(1024..=MAX_BODY_LIMIT).contains(&self.body_limit.0) {
            return Err(invalid(
                "body_limit",
                format!("must be from 1KiB to {}MiB", MAX_BODY_LIMIT >> 20),
            ));
        }
        let positive = [
            ("database_timeout", self.database_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("request_timeout", self.request_timeout),
            ("timestamp_skew", self.timestamp_skew),
            ("max_report_age", self.max_report_age),
            ("prune_interval", self.prune_interval),
            ("history_interval", self.history_interval),
            ("tls_reload_interval", self.tls_reload_interval),
            ("unavailable_retry_after", self.unavailable_retry_after),
            ("alert_tick_interval", self.alert_tick_interval),
            ("alert_lease_time", self.alert_lease_time),
            ("outbox_poll_interval", self.outbox_poll_interval),
            ("outbox_retry_backoff", self.outbox_retry_backoff),
            ("code_expiry", self.code_expiry),
            ("code_expiry_interval", self.code_expiry_interval),
            ("offline_after", self.offline_after),
            ("telegram_request_timeout", self.telegram_request_timeout),
            ("telegram_backoff", self.telegram_backoff),
            ("telegram_backoff_max", self.telegram_backoff_max),
            ("telegram_give_up_after", self.telegram_give_up_after),
            ("telegram_poller_lease", self.telegram_poller_lease),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(invalid(key, "must be more than zero".into()));
            }
        }
        if self.database_max_connections == 0 {
            return Err(invalid(
                "database_max_connections",
                "must be at least 1".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1".into()));
        }
        if self.max_reports_per_minute == 0 {
            return Err(invalid(
                "max_reports_per_minute",
                "must be at least 1".into(),
            ));
        }
        if self.history_batch == 0 {
            return Err(invalid("history_batch", "must be at least 1".into()));
        }
        if self.bot_commands_per_minute == 0 {
            return Err(invalid(
                "bot_commands_per_minute",
                "must be at least 1".into(),
            ));
        }
        if self.bot_command_burst == 0 {
            return Err(invalid("bot_command_burst", "must be at least 1".into()));
        }
        if self.telegram_poll_timeout > Duration::from_secs(50) {
            return Err(invalid(
                "telegram_poll_timeout",
                "must be at most 50s (Telegram's limit)".into(),
            ));
        }
        let webhook_word = |s: &str| {
            (1..=256).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if let Some(secret) = &self.webhook_secret
            && !webhook_word(secret.expose())
        {
            return Err(invalid(
                "webhook_secret",
                "must be 1 to 256 of A-Z a-z 0-9 _ - (Telegram's rule)".into(),
            ));
        }
        if !webhook_word(&self.webhook_path) {
            return Err(invalid(
                "webhook_path",
                "must be 1 to 256 of A-Z a-z 0-9 _ -".into(),
            ));
        }
        if self.log.is_empty() {
            return Err(invalid("log", "must not be empty (try info)".into()));
        }
        Ok(())
    }

    /// The base URL agents and installers use, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", self.listen)
            }
        }
    }

    /// The effective configuration as TOML, secrets masked, each line
    /// annotated with the environment name and where the value came from.
    pub fn render(loaded: &Loaded) -> String {
        let mut out = String::from("# Effective ServerSan configuration (secrets masked).\n");
        for ((key, value), info) in loaded.config.shown().into_iter().zip(SETTINGS) {
            let origin = match loaded.origins.get(key) {
                None if key == "public_url" && value.is_empty() => {
                    format!("default: {}", loaded.config.public_url())
                }
                None => "default".to_owned(),
                Some(Origin::File(p)) => format!("from {}", p.display()),
                Some(Origin::Env(name)) => format!("from ${name}"),
            };
            let _ = writeln!(
                out,
                "{key} = {}  # {} ({origin})",
                toml_quote(&value),
                info.env_name()
            );
        }
        for name in &loaded.unknown_env {
            let _ = writeln!(
                out,
                "# warning: {name} is not a ServerSan setting and was ignored"
            );
        }
        out
    }
}

fn describe(key: &'static str, origins: &BTreeMap<&'static str, Origin>) -> String {
    match origins.get(key) {
        Some(Origin::Env(name)) => name.clone(),
        Some(Origin::File(path)) => format!("{key} in {}", path.display()),
        _ => format!("{key} (default)"),
    }
}

fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be a URL such as https://mon.example.com".into());
    }
    Ok(())
}

/// Reads a TOML file into `(key, value as text)` pairs.
fn read_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
    table
        .into_iter()
        .map(|(key, value)| {
            let raw = toml_to_text(&value).map_err(|reason| ConfigError::Invalid {
                setting: format!("{key} in {}", path.display()),
                reason,
            })?;
            Ok((key, raw))
        })
        .collect()
}

fn toml_to_text(value: &toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(toml_to_text)
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        toml::Value::Datetime(_) | toml::Value::Table(_) => {
            return Err("expected a string, number, boolean or list".into());
        }
    })
}

/// A shown value as TOML: numbers and booleans bare, the rest quoted.
fn toml_quote(s: &str) -> String {
    let bare = s == "true"
        || s == "false"
        || (!s.is_empty() && s.len() < 19 && s.bytes().all(|b| b.is_ascii_digit()));
    if bare {
        s.to_owned()
    } else {
        toml::Value::String(s.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file_and_no_environment() {
        let loaded = Config::load_from(None, env(&[])).expect("defaults are valid");
        let c = loaded.config;
        assert_eq!(c.database_url.kind(), DatabaseKind::Sqlite);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        assert_eq!(c.body_limit, ByteSize(65536));
        assert_eq!(c.min_report_interval, Duration::from_secs(10));
        assert!(c.bot_token.is_none());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nmin_report_interval = 30\nadmins = [1, 2]\n\
             body_limit = \"128KiB\"\n",
        )
        .expect("write");
        let loaded = Config::load_from(
            Some(&path),
            env(&[("SERVERSAN_LISTEN", "127.0.0.1:9999"), ("PATH", "/bin")]),
        )
        .expect("valid");
        let c = &loaded.config;
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.min_report_interval, Duration::from_secs(30));
        assert_eq!(c.admins, IdList(vec![1, 2]));
        assert_eq!(c.body_limit, ByteSize(128 << 10));
        assert_eq!(
            loaded.origins.get("listen"),
            Some(&Origin::Env("SERVERSAN_LISTEN".into()))
        );
        assert_eq!(
            loaded.origins.get("admins"),
            Some(&Origin::File(path.clone()))
        );
    }

    #[test]
    fn a_public_url_the_installers_cannot_embed_is_refused_at_start() {
        for bad in [
            "https://mon.example/'x",
            "https://mon.example/?a=1",
            "ftp://x",
        ] {
            let err = Config::load_from(None, env(&[("SERVERSAN_PUBLIC_URL", bad)]))
                .expect_err("refused");
            assert!(
                err.to_string().starts_with("SERVERSAN_PUBLIC_URL: "),
                "{err}"
            );
        }
        Config::load_from(
            None,
            env(&[("SERVERSAN_PUBLIC_URL", "http://[::1]:8080/mon/")]),
        )
        .expect("accepted");
    }

    #[test]
    fn bad_values_name_the_setting_and_source() {
        let err = Config::load_from(None, env(&[("SERVERSAN_LISTEN", "localhost")]))
            .expect_err("refused");
        assert!(err.to_string().starts_with("SERVERSAN_LISTEN: "), "{err}");

        let err = Config::load_from(None, env(&[("SERVERSAN_MIN_REPORT_INTERVAL", "soon")]))
            .expect_err("refused");
        assert!(
            err.to_string().contains("SERVERSAN_MIN_REPORT_INTERVAL"),
            "{err}"
        );

        let err =
            Config::load_from(None, env(&[("SERVERSAN_TLS_CERT", "/x.pem")])).expect_err("refused");
        assert!(err.to_string().contains("tls_key"), "{err}");

        let err = Config::load_from(None, env(&[("SERVERSAN_BODY_LIMIT", "100MiB")]))
            .expect_err("refused");
        assert!(err.to_string().starts_with("SERVERSAN_BODY_LIMIT"), "{err}");

        let err = Config::load_from(None, env(&[("SERVERSAN_PUBLIC_URL", "mon.example")]))
            .expect_err("refused");
        assert!(err.to_string().starts_with("SERVERSAN_PUBLIC_URL"), "{err}");

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").expect("write");
        let err = Config::load_from(Some(&path), env(&[])).expect_err("refused");
        assert!(err.to_string().contains("unknown setting `lisen`"), "{err}");

        std::fs::write(&path, "max_reports_per_minute = -1\n").expect("write");
        let err = Config::load_from(Some(&path), env(&[])).expect_err("refused");
        assert!(
            err.to_string().starts_with("max_reports_per_minute in "),
            "{err}"
        );

        let missing = dir.path().join("missing.toml");
        let err = Config::load_from(Some(&missing), env(&[])).expect_err("refused");
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn errors_never_echo_secrets() {
        let err = Config::load_from(
            None,
            env(&[("SERVERSAN_DATABASE_URL", "postgres://u:topsecret@h/db")]),
        )
        .expect_err("refused");
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn rendering_masks_secrets_and_flags_typos() {
        let loaded = Config::load_from(
            None,
            env(&[
                ("SERVERSAN_BOT_TOKEN", "123456:SECRET-TOKEN"),
                (
                    "SERVERSAN_DATABASE_URL",
                    "mysql://app:pw123@db:3306/serversan",
                ),
                ("SERVERSAN_LISTN", "x"),
                ("SERVERSAN_AUTH_FILE", "/etc/serversan/auth.log"),
            ]),
        )
        .expect("valid");
        let text = Config::render(&loaded);
        assert!(!text.contains("SECRET-TOKEN"), "{text}");
        assert!(!text.contains("pw123"), "{text}");
        assert!(text.contains("bot_token = \"********\""), "{text}");
        assert!(
            text.contains("mysql://app:****@db:3306/serversan"),
            "{text}"
        );
        assert!(
            text.contains("SERVERSAN_LISTN is not a ServerSan setting"),
            "{text}"
        );
        assert!(!text.contains("SERVERSAN_AUTH_FILE is not"), "{text}");
        // The rendered text is itself a valid config file.
        let table: toml::Table = text.parse().expect("valid TOML");
        assert_eq!(table.len(), SETTINGS.len());
    }

    #[test]
    fn every_setting_is_documented() {
        let docs = include_str!("../../../README.md");
        for info in SETTINGS {
            assert!(
                docs.contains(&format!("`{}`", info.env_name())),
                "the README's settings table lacks {}",
                info.env_name()
            );
            assert!(!info.doc.is_empty(), "{} has no doc comment", info.key);
        }
    }
}
