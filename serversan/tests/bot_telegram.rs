//! The bot end to end over real HTTP: the bot long-polls the Bot API test
//! double (which refuses what Telegram refuses: bad HTML, long texts, long
//! callback data), and agents report to the real ingest route with signed
//! requests. Every scenario runs on SQLite and on MariaDB.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bot_api_double::{
    BotApiDouble, EntityKind, Failure, Options, SentMessage, TestGroup, TestUser,
};
use serversan::bot::{
    BotSettings, Dispatcher, TelegramSettings, WebhookSettings, telegram::SECRET_HEADER,
};
use serversan::config::Secret;
use serversan::storage::{RoleName, Storage, UserProfile};
use serversan_protocol::AuthCode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use common::{Agent, Backend, TestDb, TestServer};

const ADMIN: i64 = 1000;

fn alice() -> TestUser {
    TestUser::new(2001, "Alice").with_username("alice")
}

fn bob() -> TestUser {
    TestUser::new(2002, "Bob").with_username("bob")
}

/// A database, the ingest server, the Bot API double and the bot.
struct Harness {
    _db: TestDb,
    storage: Storage,
    server: TestServer,
    double: BotApiDouble,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

fn double_options() -> Options {
    Options {
        repeated_poll_min_timeout: Duration::from_millis(50),
        conflict_repeat_delay: Duration::from_millis(50),
        ..Options::default()
    }
}

fn bot_settings(public_url: &str, double: &BotApiDouble) -> BotSettings {
    BotSettings {
        public_url: public_url.to_owned(),
        admins: vec![ADMIN],
        commands_per_minute: 10_000,
        command_burst: 1_000,
        telegram: TelegramSettings {
            api_url: double.api_url(),
            token: Secret::new(double.token()),
            poll_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(400),
            give_up_after: Duration::from_secs(30),
        },
        ..BotSettings::default()
    }
}

async fn harness(backend: Backend) -> Option<Harness> {
    harness_with(backend, |d| d).await
}

/// A harness whose dispatcher `wrap` may give hooks.
async fn harness_with(
    backend: Backend,
    wrap: impl FnOnce(Dispatcher) -> Dispatcher,
) -> Option<Harness> {
    let db = TestDb::create(backend).await?;
    let storage = db.storage().await;
    let server = TestServer::start(&db.config(), storage.clone()).await;
    let double = BotApiDouble::start_with(double_options()).await;
    let settings = bot_settings(&server.url, &double);
    let dispatcher = wrap(Dispatcher::new(storage.clone(), Arc::new(settings)));
    let stop = CancellationToken::new();
    let bot = serversan::bot::start_with(dispatcher, "test".into(), stop.clone())
        .expect("the bot starts");
    Some(Harness {
        _db: db,
        storage,
        server,
        double,
        stop,
        task: bot.task,
    })
}

impl Harness {
    /// `user` sends `text`; the bot's next new message in their chat.
    async fn say(&self, user: &TestUser, text: &str) -> SentMessage {
        let before = self.double.messages(user.id).len();
        self.double.send_text(user, text);
        let all = self
            .double
            .wait_for_message_count(user.id, before + 1)
            .await
            .unwrap_or_else(|e| panic!("no answer to {text:?}: {e}"));
        all[before].clone()
    }

    /// Presses the button labelled `label` and waits for the answer; the
    /// message as it is then.
    async fn click(&self, user: &TestUser, message: &SentMessage, label: &str) -> SentMessage {
        let press = self
            .double
            .click_button(user, message.chat_id, message.message_id, label)
            .expect("button");
        self.double
            .wait_for_callback_answer(&press.query_id)
            .await
            .expect("the press is answered");
        self.double
            .message(message.chat_id, message.message_id)
            .expect("message")
    }

    async fn shutdown(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the bot stops")
            .expect("the bot task ends cleanly");
        self.server.stop().await;
    }
}

/// The auth code in an install line as the user sees it.
fn code_in(text: &str) -> AuthCode {
    let marker = "sudo bash -s -- ";
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no install line in {text}"));
    text[at + marker.len()..]
        .split_whitespace()
        .next()
        .expect("a code")
        .parse()
        .expect("a well-formed code")
}

async fn from_start_to_stat_and_delete(backend: Backend) {
    let Some(h) = harness(backend).await else {
        return;
    };
    let alice = alice();

    let welcome = h.say(&alice, "/start").await;
    assert!(
        welcome.text.contains("Welcome to ServerSan, Alice!"),
        "{}",
        welcome.text
    );
    let menu: Vec<String> = h.double.commands().into_iter().map(|c| c.command).collect();
    for command in [
        "start",
        "help",
        "add",
        "list",
        "stat",
        "delete",
        "reinstall",
        "rename",
    ] {
        assert!(
            menu.iter().any(|c| c == command),
            "{command} not in {menu:?}"
        );
    }

    let added = h.say(&alice, "/add").await;
    assert!(
        added.text.contains("Server server-1 added"),
        "{}",
        added.text
    );
    assert!(added.text.contains(&format!(
        "curl -fsSL {}/install.sh | sudo bash -s -- ",
        h.server.url
    )));
    assert!(
        added
            .entities
            .iter()
            .any(|e| matches!(e.kind, EntityKind::Pre { .. })),
        "the line is a code block"
    );
    let agent = Agent::new(code_in(&added.text), &h.server.url);

    let waiting = h.say(&alice, "/stat").await;
    assert!(
        waiting.text.contains("waiting for the first report"),
        "{}",
        waiting.text
    );

    // The agent reports twice (network rates need two), with a hostile name.
    let mut report = common::report(40);
    report.hostname = "<b>x&y</b>".to_owned();
    assert_eq!(agent.send(&report).await.status, 200);
    report.collected_at += 20;
    for iface in &mut report.network {
        iface.rx_bytes += 20 * 4096;
    }
    assert_eq!(agent.send(&report).await.status, 200);

    let stat = h.say(&alice, "/stat server-1").await;
    assert!(stat.text.contains("server-1 · online"), "{}", stat.text);
    assert!(
        stat.text.contains("Host <b>x&y</b>"),
        "shown literally: {}",
        stat.text
    );
    assert!(stat.source.contains("&lt;b&gt;x&amp;y&lt;/b&gt;"));
    assert!(stat.text.contains("Network ↓ 4.0 KiB/s"), "{}", stat.text);
    assert!(stat.button("Refresh").is_some());

    // Refresh edits the same message in place with the newest report.
    report.collected_at += 20;
    report.process_count = 4242;
    assert_eq!(agent.send(&report).await.status, 200);
    let count = h.double.messages(alice.id).len();
    let refreshed = h.click(&alice, &stat, "Refresh").await;
    assert_eq!(refreshed.edit_count(), 1);
    assert!(
        refreshed.text.contains("Processes 4242"),
        "{}",
        refreshed.text
    );
    assert_eq!(h.double.messages(alice.id).len(), count, "no new message");

    // A press on a message the bot cannot edit (here the user's own) gets
    // its answer as a new message.
    let server = h
        .storage
        .find_server(alice.id, "server-1")
        .await
        .expect("find")
        .expect("server");
    let before = h.double.messages(alice.id).len();
    let mine = h.double.send_text(&alice, "hello");
    let hello = h
        .double
        .wait_for_message_count(alice.id, before + 1)
        .await
        .expect("reply")[before]
        .clone();
    let press = h
        .double
        .press_button(
            &alice,
            alice.id,
            mine.message_id,
            &format!("st:{}", server.id),
        )
        .expect("press");
    h.double
        .wait_for_callback_answer(&press.query_id)
        .await
        .expect("answered");
    let fresh = h
        .double
        .wait_for_message(alice.id, |m| m.message_id > hello.message_id)
        .await
        .expect("a new message");
    assert!(fresh.text.contains("Processes 4242"), "{}", fresh.text);

    // Delete asks first, then deletes; the agent is refused at once.
    let asked = h.click(&alice, &refreshed, "Delete").await;
    assert!(asked.text.contains("Delete server-1?"), "{}", asked.text);
    let deleted = h.click(&alice, &asked, "Delete").await;
    assert!(
        deleted.text.contains("Deleted server-1"),
        "{}",
        deleted.text
    );
    report.collected_at += 20;
    assert_eq!(agent.send(&report).await.status, 401);
    let list = h.say(&alice, "/list").await;
    assert!(
        list.text.contains("You have no servers yet"),
        "{}",
        list.text
    );
    h.shutdown().await;
}

async fn reinstall_swaps_the_code(backend: Backend) {
    let Some(h) = harness(backend).await else {
        return;
    };
    let alice = alice();
    let added = h.say(&alice, "/add web").await;
    let old = Agent::new(code_in(&added.text), &h.server.url);
    let mut report = common::report(40);
    assert_eq!(old.send(&report).await.status, 200);

    let asked = h.say(&alice, "/reinstall web").await;
    assert!(
        asked.text.contains("Make a new code for web?"),
        "{}",
        asked.text
    );
    let done = h.click(&alice, &asked, "Reinstall").await;
    let new = Agent::new(code_in(&done.text), &h.server.url);
    assert_ne!(old.code, new.code);

    report.collected_at += 20;
    assert_eq!(
        old.send(&report).await.status,
        401,
        "the old code is refused"
    );
    assert_eq!(new.send(&report).await.status, 200, "the new code works");
    let stat = h.say(&alice, "/stat web").await;
    assert!(
        stat.text.contains("web · online"),
        "history kept: {}",
        stat.text
    );
    h.shutdown().await;
}

async fn strangers_and_banned_users_get_nothing(backend: Backend) {
    let Some(h) = harness(backend).await else {
        return;
    };
    let (alice, bob) = (alice(), bob());
    let added = h.say(&alice, "/add web").await;
    let agent = Agent::new(code_in(&added.text), &h.server.url);
    let server = h
        .storage
        .find_server(alice.id, "web")
        .await
        .expect("find")
        .expect("server");

    let bobs = h.say(&bob, "/start").await;
    for data in [
        format!("dy:{}", server.id),
        format!("ry:{}", server.id),
        format!("st:{}", server.id),
    ] {
        let press = h
            .double
            .press_button(&bob, bob.id, bobs.message_id, &data)
            .expect("press");
        let answer = h
            .double
            .wait_for_callback_answer(&press.query_id)
            .await
            .expect("answer");
        assert_eq!(
            answer.text.as_deref(),
            Some("That server no longer exists."),
            "{data}"
        );
    }
    // Even pressed under Alice's own message.
    let press = h
        .double
        .press_button(
            &bob,
            alice.id,
            added.message_id,
            &format!("dy:{}", server.id),
        )
        .expect("press");
    h.double
        .wait_for_callback_answer(&press.query_id)
        .await
        .expect("answer");
    assert_eq!(
        h.double
            .message(alice.id, added.message_id)
            .expect("msg")
            .edit_count(),
        0
    );
    assert_eq!(h.double.messages(bob.id).len(), 1, "Bob was shown nothing");
    assert!(
        h.storage
            .get_server(server.id, alice.id)
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        agent.send(&common::report(5)).await.status,
        200,
        "Alice's code still works"
    );

    h.storage
        .set_role(bob.id, RoleName::Banned)
        .await
        .expect("ban");
    let refused = h.say(&bob, "/add mine").await;
    assert!(
        refused.text.contains("you cannot use this bot"),
        "{}",
        refused.text
    );
    assert_eq!(h.storage.count_servers(bob.id).await.expect("count"), 0);

    // Group chats are told to talk privately; nothing is created.
    let group = TestGroup::new(-4001, "ops");
    h.double.send_group_text(&group, &alice, "/add from-group");
    let note = h
        .double
        .wait_for_message(group.id, |m| m.text.contains("only in a private chat"))
        .await
        .expect("a note in the group");
    assert!(note.reply_markup.is_none());
    assert!(
        h.storage
            .find_server(alice.id, "from-group")
            .await
            .expect("find")
            .is_none()
    );
    h.shutdown().await;
}

async fn telegram_errors_delay_but_never_lose_replies(backend: Backend) {
    let Some(h) = harness(backend).await else {
        return;
    };
    let alice = alice();
    h.say(&alice, "/start").await;

    // 429: the bot waits exactly retry_after before trying again.
    h.double.fail_next(
        "sendMessage",
        1,
        Failure::TooManyRequests { retry_after: 1 },
    );
    let before = h.double.calls_to("sendMessage").len();
    let help = h.say(&alice, "/help").await;
    assert!(help.text.contains("Commands"));
    // The message is stored before its call's answer is recorded.
    let calls = h
        .double
        .wait_for_calls("sendMessage", before + 2)
        .await
        .expect("calls");
    let (refused, sent) = (&calls[calls.len() - 2], &calls[calls.len() - 1]);
    assert_eq!((refused.status, sent.status), (Some(429), Some(200)));
    assert!(
        sent.at - refused.at >= Duration::from_secs(1),
        "waited {:?}",
        sent.at - refused.at
    );

    // 500s and a dropped connection: retried with growing backoff.
    h.double.fail_next("sendMessage", 2, Failure::ServerError);
    h.double.fail_next("sendMessage", 1, Failure::Drop);
    let before = h.double.calls_to("sendMessage").len();
    let list = h.say(&alice, "/list").await;
    assert!(list.text.contains("no servers"), "{}", list.text);
    // Four calls, three answered (the dropped one never is).
    let calls = h
        .double
        .wait_for_calls("sendMessage", before + 3)
        .await
        .expect("calls");
    assert_eq!(calls.len(), before + 4);
    let last4 = &calls[calls.len() - 4..];
    let statuses: Vec<Option<u16>> = last4.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![Some(500), Some(500), None, Some(200)]);
    assert!(last4[1].at - last4[0].at >= Duration::from_millis(50));
    assert!(last4[2].at - last4[1].at >= Duration::from_millis(100));

    // getUpdates failing does not stop the bot.
    h.double.fail_next("getUpdates", 2, Failure::ServerError);
    let again = h.say(&alice, "/help").await;
    assert!(again.text.contains("Commands"));
    h.shutdown().await;
}

async fn contact_and_unreachable_users_are_reported(backend: Backend) {
    let contacts = Arc::new(Mutex::new(Vec::new()));
    let gone = Arc::new(Mutex::new(Vec::new()));
    let (c, g) = (Arc::clone(&contacts), Arc::clone(&gone));
    let Some(h) = harness_with(backend, move |d| {
        d.on_contact(Arc::new(move |id| c.lock().expect("lock").push(id)))
            .on_unreachable(Arc::new(move |id| g.lock().expect("lock").push(id)))
    })
    .await
    else {
        return;
    };
    let alice = alice();
    let mine = h.double.send_text(&alice, "/add web");
    h.double
        .wait_for_message_count(alice.id, 1)
        .await
        .expect("reply");
    assert_eq!(*contacts.lock().expect("lock"), vec![alice.id]);
    assert!(gone.lock().expect("lock").is_empty());

    // Alice blocks the bot; the answer to a press of hers (under her own
    // message, so it must come as a new message) cannot be delivered.
    h.double.user_blocks_bot(alice.id);
    let server = h
        .storage
        .find_server(alice.id, "web")
        .await
        .expect("find")
        .expect("server");
    let press = h
        .double
        .press_button(
            &alice,
            alice.id,
            mine.message_id,
            &format!("st:{}", server.id),
        )
        .expect("press");
    h.double
        .wait_for_callback_answer(&press.query_id)
        .await
        .expect("answered");
    let refused = h.double.calls_to("sendMessage").pop().expect("a send");
    assert_eq!(refused.status, Some(403));
    // The hook runs right after the press is answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gone.lock().expect("lock").is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*gone.lock().expect("lock"), vec![alice.id]);
    h.shutdown().await;
}

async fn long_user_lists_split(backend: Backend) {
    let Some(h) = harness(backend).await else {
        return;
    };
    for i in 0..150 {
        h.storage
            .upsert_user(&UserProfile {
                user_id: 50_000 + i,
                username: Some(format!("user_{i}_{}", "x".repeat(20))),
                nickname: Some(format!("<i>Nick & {i}</i> {}", "y".repeat(30))),
            })
            .await
            .expect("user");
    }
    let admin = TestUser::new(ADMIN, "Root");
    h.say(&admin, "/start").await;
    let before = h.double.messages(ADMIN).len();
    h.double.send_text(&admin, "/users");
    h.double
        .wait_for_message(ADMIN, |m| m.text.contains("/role USER ROLE"))
        .await
        .expect("the end of the list");
    let parts = &h.double.messages(ADMIN)[before..];
    assert!(parts.len() > 1, "split into {} messages", parts.len());
    let all: String = parts.iter().map(|m| m.text.as_str()).collect();
    assert!(all.contains("Users (151)"));
    assert_eq!(
        all.matches("<i>Nick & ").count(),
        150,
        "every user, escaped, shown once"
    );
    h.shutdown().await;
}

async fn webhook_mode(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let double = BotApiDouble::start_with(double_options()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut settings = bot_settings(&url, &double);
    settings.webhook = Some(WebhookSettings {
        secret: Secret::new("s3cret-token_1"),
        path: "hook-path".to_owned(),
    });
    let stop = CancellationToken::new();
    let bot = serversan::bot::start(storage.clone(), settings, "test".into(), stop.clone())
        .expect("the bot starts");
    let routes = bot.webhook.expect("webhook routes");
    let serving = tokio::spawn(async move { axum::serve(listener, routes).await });

    let alice = alice();
    double.send_text(&alice, "/start");
    double
        .wait_for_message(alice.id, |m| m.text.contains("Welcome"))
        .await
        .expect("an answer through the webhook");
    assert_eq!(
        double.webhook_url(),
        Some(format!("{url}/telegram/hook-path"))
    );
    assert!(
        double.calls_to("getUpdates").is_empty(),
        "no polling in webhook mode"
    );

    let client = reqwest::Client::new();
    let update = serde_json::json!({ "update_id": 1, "message": {
        "message_id": 1, "date": 0, "chat": { "id": 2001, "type": "private", "first_name": "A" },
        "from": { "id": 2001, "is_bot": false, "first_name": "A" }, "text": "/add forged" }});
    for secret in [None, Some("wrong"), Some("s3cret-token_")] {
        let mut request = client
            .post(format!("{url}/telegram/hook-path"))
            .json(&update);
        if let Some(s) = secret {
            request = request.header(SECRET_HEADER, s);
        }
        let answer = request.send().await.expect("request");
        assert_eq!(answer.status(), 401, "{secret:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        storage
            .find_server(alice.id, "forged")
            .await
            .expect("find")
            .is_none()
    );

    stop.cancel();
    bot.task.await.expect("the bot stops");
    serving.abort();
}

on_both_backends!(
    from_start_to_stat_and_delete,
    reinstall_swaps_the_code,
    strangers_and_banned_users_get_nothing,
    telegram_errors_delay_but_never_lose_replies,
    contact_and_unreachable_users_are_reported,
    long_user_lists_split,
    webhook_mode,
);
