//! Every knob of the bot in one struct, so `serve`, the demo and the tests
//! build the same bot with different timings.

use std::time::Duration;

use crate::config::{Config, Secret};

/// How the bot reaches Telegram. Every duration is a setting so tests run
/// in milliseconds.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    /// Base URL of the Bot API (`https://api.telegram.org`, a local Bot API
    /// server or a test double).
    pub api_url: String,
    /// The bot token; `Debug` masks it.
    pub token: Secret,
    /// How long one getUpdates call waits for updates (long polling).
    pub poll_timeout: Duration,
    /// Longest wait for the answer to any other call.
    pub request_timeout: Duration,
    /// First delay after a 5xx or network error; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long one message is retried before it is dropped with a log line.
    pub give_up_after: Duration,
}

impl Default for TelegramSettings {
    fn default() -> Self {
        Self {
            api_url: "https://api.telegram.org".to_owned(),
            token: Secret::new(String::new()),
            poll_timeout: Duration::from_secs(25),
            request_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            give_up_after: Duration::from_secs(15 * 60),
        }
    }
}

/// Receiving updates by webhook instead of long polling.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Telegram sends this in `X-Telegram-Bot-Api-Secret-Token`; requests
    /// without it are refused. 1–256 of `[A-Za-z0-9_-]`.
    pub secret: Secret,
    /// The last segment of `POST /telegram/<path>`, so the URL itself is
    /// not guessable either. Same alphabet as the secret.
    pub path: String,
}

impl WebhookSettings {
    /// Whether `s` is usable as a secret token or path segment.
    pub fn valid_token(s: &str) -> bool {
        (1..=256).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }
}

/// Everything the bot needs besides storage.
#[derive(Debug, Clone)]
pub struct BotSettings {
    /// Base URL agents and install commands use, without a trailing slash.
    pub public_url: String,
    /// Telegram user ids that are always administrators.
    pub admins: Vec<i64>,
    /// A server whose code was never used disappears after this long.
    pub code_expiry: Duration,
    /// How often expired pending servers are looked for.
    pub expiry_interval: Duration,
    /// A server with no report for this long is shown offline.
    pub offline_after: Duration,
    /// Commands and button presses one user may send per minute…
    pub commands_per_minute: u32,
    /// …with bursts of this many.
    pub command_burst: u32,
    /// Most users `/users` lists (the rest are counted).
    pub users_list_max: usize,
    /// How long the poller's lease lasts without renewal; another instance
    /// takes over polling after it expires.
    pub poller_lease: Duration,
    pub telegram: TelegramSettings,
    /// Webhook mode when set; long polling otherwise.
    pub webhook: Option<WebhookSettings>,
}

impl Default for BotSettings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".to_owned(),
            admins: Vec::new(),
            code_expiry: Duration::from_secs(24 * 3600),
            expiry_interval: Duration::from_secs(300),
            offline_after: Duration::from_secs(180),
            commands_per_minute: 30,
            command_burst: 10,
            users_list_max: 1000,
            poller_lease: Duration::from_secs(30),
            telegram: TelegramSettings::default(),
            webhook: None,
        }
    }
}

impl BotSettings {
    /// The bot's settings from the server configuration; `None` without a
    /// bot token (then `serve` runs without a bot).
    pub fn from_config(config: &Config) -> Option<Self> {
        let token = config.bot_token.clone()?;
        let webhook = config.webhook_secret.clone().map(|secret| WebhookSettings {
            secret,
            path: config.webhook_path.clone(),
        });
        Some(Self {
            public_url: config.public_url(),
            admins: config.admins.0.clone(),
            code_expiry: config.code_expiry,
            expiry_interval: config.code_expiry_interval,
            offline_after: config.offline_after,
            commands_per_minute: config.bot_commands_per_minute,
            command_burst: config.bot_command_burst,
            poller_lease: config.telegram_poller_lease,
            telegram: TelegramSettings {
                api_url: config.telegram_api_url.trim_end_matches('/').to_owned(),
                token,
                poll_timeout: config.telegram_poll_timeout,
                request_timeout: config.telegram_request_timeout,
                backoff_initial: config.telegram_backoff,
                backoff_max: config.telegram_backoff_max,
                give_up_after: config.telegram_give_up_after,
            },
            webhook,
            ..Self::default()
        })
    }

    pub fn is_admin_by_config(&self, user_id: i64) -> bool {
        self.admins.contains(&user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let mut s = BotSettings::default();
        s.telegram.token = Secret::new("123:very-secret-token");
        s.webhook = Some(WebhookSettings {
            secret: Secret::new("hook-secret"),
            path: "p".into(),
        });
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret-token"));
        assert!(!shown.contains("hook-secret"));
    }

    #[test]
    fn from_config_takes_every_bot_setting() {
        let env = [
            ("SERVERSAN_BOT_TOKEN", "123:abc"),
            ("SERVERSAN_PUBLIC_URL", "https://mon.example/"),
            ("SERVERSAN_ADMINS", "7,8"),
            ("SERVERSAN_CODE_EXPIRY", "2h"),
            ("SERVERSAN_OFFLINE_AFTER", "90s"),
            ("SERVERSAN_BOT_COMMANDS_PER_MINUTE", "5"),
            ("SERVERSAN_TELEGRAM_BACKOFF", "250ms"),
            ("SERVERSAN_WEBHOOK_SECRET", "hook_secret"),
            ("SERVERSAN_WEBHOOK_PATH", "p-1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let loaded = Config::load_from(None, env).expect("valid");
        let s = BotSettings::from_config(&loaded.config).expect("a token is set");
        assert_eq!(s.public_url, "https://mon.example");
        assert_eq!(s.admins, vec![7, 8]);
        assert_eq!(s.code_expiry, Duration::from_secs(7200));
        assert_eq!(s.offline_after, Duration::from_secs(90));
        assert_eq!(s.commands_per_minute, 5);
        assert_eq!(s.telegram.backoff_initial, Duration::from_millis(250));
        assert_eq!(s.telegram.token.expose(), "123:abc");
        let hook = s.webhook.expect("webhook mode");
        assert_eq!(
            (hook.secret.expose(), hook.path.as_str()),
            ("hook_secret", "p-1")
        );

        let none = Config::load_from(None, Vec::new()).expect("valid");
        assert!(BotSettings::from_config(&none.config).is_none());
        let bad = [(
            "SERVERSAN_WEBHOOK_SECRET".to_owned(),
            "no spaces".to_owned(),
        )];
        assert!(Config::load_from(None, bad).is_err());
    }

    #[test]
    fn webhook_tokens() {
        assert!(WebhookSettings::valid_token("abc_DEF-123"));
        assert!(!WebhookSettings::valid_token(""));
        assert!(!WebhookSettings::valid_token("a b"));
        assert!(!WebhookSettings::valid_token(&"a".repeat(257)));
    }
}
