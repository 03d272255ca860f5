//! What the alert tests share: a database with one owner who talked to the
//! bot and one server, an alert engine on a hand-moved clock, and reports
//! shaped to breach or not.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use serversan::alerts::outbox::{self, Status};
use serversan::alerts::{AlertSettings, Alerts, ManualClock, Metric, Rule, Setting};
use serversan::storage::{Server, ServerName, Storage, UserProfile};
use serversan_protocol::Report;

use crate::common::{Backend, TestDb};

/// A Telegram user id for the owner.
pub const OWNER: i64 = 424_242;

/// A fixed start of time: 2026-11-25 12:00 UTC.
pub const T0: i64 = 1_795_608_000;

pub struct Fixture {
    pub db: TestDb,
    pub storage: Storage,
    pub clock: ManualClock,
    pub alerts: Alerts,
    pub server: Server,
}

impl Fixture {
    /// A migrated database with [`OWNER`] (who talked to the bot) owning
    /// `web1`, and an engine whose clock starts at [`T0`]. `None` when
    /// MySQL is unavailable outside CI.
    pub async fn new(backend: Backend) -> Option<Self> {
        Self::with_settings(backend, AlertSettings::default()).await
    }

    pub async fn with_settings(backend: Backend, settings: AlertSettings) -> Option<Self> {
        let db = TestDb::create(backend).await?;
        let storage = db.storage().await;
        talk_to_bot(&storage, OWNER).await;
        let server = add_server(&storage, OWNER, "web1").await;
        let clock = ManualClock::new(T0);
        let alerts = Alerts::with_clock(storage.clone(), settings, Arc::new(clock.clone()));
        Some(Self {
            db,
            storage,
            clock,
            alerts,
            server,
        })
    }

    /// Stores a rule of [`OWNER`]: for one server, or their default.
    pub async fn set_rule(&self, server: Option<i64>, metric: Metric, setting: Setting) {
        self.alerts
            .set_rule(OWNER, server, metric, setting)
            .await
            .expect("rule");
    }

    pub fn now(&self) -> i64 {
        use serversan::alerts::Clock;
        self.clock.now()
    }

    /// A healthy report collected now, changed by `shape`, evaluated.
    pub async fn report(&self, shape: impl FnOnce(&mut Report)) {
        self.report_for(self.server.id, shape).await;
    }

    pub async fn report_for(&self, server_id: i64, shape: impl FnOnce(&mut Report)) {
        let mut report = Report::example(self.now());
        shape(&mut report);
        self.alerts
            .on_report(server_id, &report)
            .await
            .expect("evaluate report");
    }

    /// Sends one healthy report every minute for `minutes` minutes, each
    /// shaped by `shape`, the clock advancing a minute before each.
    pub async fn minutes_of(&self, minutes: i64, shape: impl Fn(&mut Report)) {
        for _ in 0..minutes {
            self.clock.advance(60);
            self.report(&shape).await;
        }
    }

    /// Every message queued for the owner, oldest first.
    pub async fn messages(&self) -> Vec<String> {
        queued(&self.storage, OWNER).await
    }

    /// Messages queued since the first `seen`.
    pub async fn new_messages(&self, seen: &mut usize) -> Vec<String> {
        let all = self.messages().await;
        let fresh = all[(*seen).min(all.len())..].to_vec();
        *seen = all.len();
        fresh
    }
}

/// The texts queued for `chat`, oldest first.
pub async fn queued(storage: &Storage, chat: i64) -> Vec<String> {
    outbox::messages_for(storage, chat)
        .await
        .expect("outbox")
        .into_iter()
        .map(|(text, _)| text)
        .collect()
}

/// The statuses of what was queued for `chat`, oldest first.
pub async fn statuses(storage: &Storage, chat: i64) -> Vec<Status> {
    outbox::messages_for(storage, chat)
        .await
        .expect("outbox")
        .into_iter()
        .map(|(_, status)| status)
        .collect()
}

/// Records a user as the bot does on their first message.
pub async fn talk_to_bot(storage: &Storage, user_id: i64) {
    storage
        .upsert_user(&UserProfile {
            user_id,
            username: Some(format!("user{user_id}")),
            nickname: Some("Alice".to_owned()),
        })
        .await
        .expect("user");
}

pub async fn add_server(storage: &Storage, owner: i64, name: &str) -> Server {
    storage
        .create_server(owner, &ServerName::parse(name).expect("name"))
        .await
        .expect("server")
        .0
}

/// A rule that is on: `threshold` for `minutes`.
pub fn rule(threshold: f64, minutes: i64) -> Setting {
    Some(Rule {
        threshold,
        for_secs: minutes * 60,
    })
}

/// Report shapes.
pub fn cpu(percent: f64) -> impl Fn(&mut Report) {
    move |r: &mut Report| r.cpu.usage_percent = percent
}

pub fn mem(percent: f64) -> impl Fn(&mut Report) {
    move |r: &mut Report| r.memory.used = (r.memory.total as f64 * percent / 100.0) as u64
}

pub fn disk(mount: &'static str, percent: f64) -> impl Fn(&mut Report) {
    move |r: &mut Report| {
        if let Some(fs) = r.filesystems.iter_mut().find(|f| f.mount_point == mount) {
            fs.used = (fs.total as f64 * percent / 100.0) as u64;
        }
    }
}

pub fn healthy() -> impl Fn(&mut Report) {
    |_: &mut Report| {}
}

/// Settings with every real-time duration short, for tests that run real
/// senders and leases.
pub fn fast_settings() -> AlertSettings {
    AlertSettings {
        tick_interval: Duration::from_millis(100),
        lease_time: Duration::from_secs(2),
        outbox_poll_interval: Duration::from_millis(50),
        outbox_retry_backoff: Duration::from_secs(1),
        outbox_retry_max: Duration::from_secs(2),
        ..AlertSettings::default()
    }
}

/// A Bot API client for `double` with short backoffs: `give_up_after`
/// bounds how long one message is retried in one go.
pub fn telegram(
    double: &bot_api_double::BotApiDouble,
    give_up_after: Duration,
) -> serversan::bot::telegram::TelegramClient {
    serversan::bot::telegram::TelegramClient::new(serversan::bot::TelegramSettings {
        api_url: double.api_url(),
        token: serversan::config::Secret::new(double.token()),
        poll_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        give_up_after,
    })
    .expect("client")
}

/// The double's user for a Telegram id, after they talked to the bot.
pub fn chatting_user(double: &bot_api_double::BotApiDouble, id: i64) -> bot_api_double::TestUser {
    let user = bot_api_double::TestUser::new(id, "Alice");
    double.send_text(&user, "/start");
    user
}
