//! Settings of a double. Defaults are Telegram's behaviour; every delay is
//! a setting so tests can shorten it.

use std::time::Duration;

use crate::html::BareAmpersand;

/// How a [`crate::BotApiDouble`] behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// The bot's user id (the token's prefix).
    pub bot_id: i64,
    pub bot_username: String,
    pub bot_first_name: String,
    /// The token to accept; a random one of Telegram's shape when `None`.
    pub token: Option<String>,
    /// What HTML parse mode does with an `&` that starts no entity.
    pub bare_ampersand: BareAmpersand,
    /// Privacy mode: in groups the bot receives only commands and messages
    /// mentioning it (Telegram's default for bots).
    pub privacy_mode: bool,
    /// The first update id handed out.
    pub first_update_id: i64,
    /// Telegram stretches a getUpdates with `timeout` below this to this,
    /// when it repeats the previous offset within this time (anti busy-loop).
    pub repeated_poll_min_timeout: Duration,
    /// A second 409 Conflict within this time of the previous one is
    /// delayed by it, as Telegram does to slow competing pollers down.
    pub conflict_repeat_delay: Duration,
    /// Minimum time between two setWebhook calls with a URL (429 otherwise).
    pub set_webhook_interval: Duration,
    /// Delay before redelivering an update the webhook did not accept.
    pub webhook_retry_delay: Duration,
    /// How long a webhook may take to answer a delivery.
    pub webhook_timeout: Duration,
    /// Callback queries older than this can no longer be answered; never
    /// expire when `None`.
    pub callback_query_ttl: Option<Duration>,
    /// How long the `wait_for_*` helpers wait before failing.
    pub wait_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bot_id: 7_000_000_001,
            bot_username: "serversan_test_bot".to_owned(),
            bot_first_name: "ServerSan".to_owned(),
            token: None,
            bare_ampersand: BareAmpersand::Refuse,
            privacy_mode: true,
            first_update_id: 100_000_001,
            repeated_poll_min_timeout: Duration::from_secs(3),
            conflict_repeat_delay: Duration::from_secs(3),
            set_webhook_interval: Duration::from_secs(1),
            webhook_retry_delay: Duration::from_secs(1),
            webhook_timeout: Duration::from_secs(10),
            callback_query_ttl: None,
            wait_timeout: Duration::from_secs(10),
        }
    }
}
