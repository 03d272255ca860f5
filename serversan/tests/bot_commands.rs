//! The bot's commands and buttons through the dispatcher every front end
//! uses, on a real database (SQLite and MariaDB). The Telegram flows over
//! HTTP are in `bot_telegram.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serversan::bot::callback::Callback;
use serversan::bot::html::{MESSAGE_LIMIT, split_blocks, telegram_len};
use serversan::bot::reply::Output;
use serversan::bot::{BotSettings, ChatHandler, Dispatcher, Input, Sender, expire_pending_servers};
use serversan::storage::{NewReport, RecordOutcome, RoleName, Storage, UserProfile, unix_now};
use serversan_protocol::Report;

use common::{Backend, TestDb};

const ADMIN: i64 = 1000;
const ALICE: i64 = 2001;
const BOB: i64 = 2002;

fn person(id: i64, name: &str) -> Sender {
    Sender {
        user_id: id,
        username: Some(name.to_lowercase()),
        display_name: name.to_owned(),
        private_chat: true,
    }
}

fn settings() -> BotSettings {
    BotSettings {
        public_url: "https://mon.example".to_owned(),
        admins: vec![ADMIN],
        // Tests talk fast; the flood test sets its own limit.
        commands_per_minute: 10_000,
        command_burst: 1_000,
        ..BotSettings::default()
    }
}

struct Bot {
    _db: TestDb,
    storage: Storage,
    dispatcher: Dispatcher,
}

async fn bot(backend: Backend, settings: BotSettings) -> Option<Bot> {
    let db = TestDb::create(backend).await?;
    let storage = db.storage().await;
    let dispatcher = Dispatcher::new(storage.clone(), Arc::new(settings));
    Some(Bot {
        _db: db,
        storage,
        dispatcher,
    })
}

impl Bot {
    async fn say(&self, who: &Sender, text: &str) -> Vec<Output> {
        self.dispatcher
            .handle(who, Input::Text(text.to_owned()))
            .await
    }

    async fn press(&self, who: &Sender, cb: Callback) -> Vec<Output> {
        self.dispatcher
            .handle(who, Input::Button(cb.encode()))
            .await
    }

    /// Stores a report for a server as ingest would after verifying it.
    async fn report(&self, server_id: i64, report: &Report) {
        let nonce = serversan_protocol::random_nonce().expect("nonce");
        let outcome = self
            .storage
            .record_report(&NewReport {
                server_id,
                key_id: None,
                report,
                nonce: &nonce,
                nonce_expires_at: unix_now() + 600,
                received_at: unix_now(),
                min_interval_secs: 1,
                max_per_minute: 60,
            })
            .await
            .expect("record");
        assert!(matches!(outcome, RecordOutcome::Stored), "{outcome:?}");
    }
}

/// The HTML of every message and edit in `outputs`.
fn html(outputs: &[Output]) -> String {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(r) | Output::Edit(r) => Some(r.text()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn notice(outputs: &[Output]) -> Option<&str> {
    outputs.iter().find_map(|o| match o {
        Output::Notice(n) => Some(n.as_str()),
        _ => None,
    })
}

fn buttons(outputs: &[Output]) -> Vec<(String, Callback)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(r) | Output::Edit(r) => Some(&r.keyboard),
            _ => None,
        })
        .flatten()
        .flatten()
        .map(|b| (b.label.clone(), b.action))
        .collect()
}

fn button(outputs: &[Output], label: &str) -> Callback {
    buttons(outputs)
        .into_iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no {label:?} button in {}", html(outputs)))
        .1
}

/// The auth code in an install line.
fn code_in(text: &str) -> String {
    let start = text.find("sudo bash -s -- ").expect("install line") + "sudo bash -s -- ".len();
    text[start..]
        .split(|c: char| c == '<' || c.is_whitespace())
        .next()
        .expect("code")
        .to_owned()
}

async fn start_add_stat_delete(backend: Backend) {
    let Some(bot) = bot(backend, settings()).await else {
        return;
    };
    let alice = person(ALICE, "Alice");

    let welcome = html(&bot.say(&alice, "/start").await);
    assert!(
        welcome.contains("Welcome to ServerSan, Alice!"),
        "{welcome}"
    );
    let user = bot
        .storage
        .get_user(ALICE)
        .await
        .expect("get")
        .expect("registered");
    assert_eq!(user.username.as_deref(), Some("alice"));
    assert_eq!(user.role.name, "user");

    let added = html(&bot.say(&alice, "/add").await);
    assert!(added.contains("Server <b>server-1</b> added"), "{added}");
    assert!(added.contains("<pre>curl -fsSL https://mon.example/install.sh | sudo bash -s -- "));
    assert!(added.contains("install.ps1))) "));
    let code = code_in(&added);
    let server = bot
        .storage
        .find_server(ALICE, "server-1")
        .await
        .expect("find")
        .expect("created");
    assert!(code.starts_with(&format!("{}.", server.key_id)));
    let key = bot
        .storage
        .server_key(&server.key_id)
        .await
        .expect("key")
        .expect("exists");
    assert_eq!(code, format!("{}.{}", server.key_id, key.secret));

    // A second default name fills the next number.
    assert!(html(&bot.say(&alice, "/add").await).contains("<b>server-2</b>"));
    assert!(html(&bot.say(&alice, "/rename server-2 web-2").await).contains("Renamed"));

    let list = html(&bot.say(&alice, "/list").await);
    assert!(
        list.contains("<b>server-1</b> · waiting for the first report"),
        "{list}"
    );
    let waiting = html(&bot.say(&alice, "/stat server-1").await);
    assert!(
        waiting.contains("waiting for the first report"),
        "{waiting}"
    );

    // Two servers and no name: a keyboard to pick one.
    let picker = bot.say(&alice, "/stat").await;
    assert!(html(&picker).contains("Which server?"));
    assert_eq!(
        button(&picker, "server-1"),
        Callback::Stat { server: server.id }
    );

    let base = unix_now();
    let mut report = Report::example(base - 60);
    report.hostname = "<b>x&y</b>".to_owned();
    bot.report(server.id, &report).await;
    report.collected_at = base - 30;
    for iface in &mut report.network {
        iface.rx_bytes += 30 * 1024;
        iface.tx_bytes += 30 * 2048;
    }
    bot.report(server.id, &report).await;

    let stat = bot
        .press(&alice, Callback::Stat { server: server.id })
        .await;
    let text = html(&stat);
    assert!(
        matches!(stat[0], Output::Edit(_)),
        "a pick edits the picker in place"
    );
    assert!(text.contains("🟢 <b>server-1</b> · online"), "{text}");
    assert!(
        text.contains("<b>Host</b> &lt;b&gt;x&amp;y&lt;/b&gt;"),
        "{text}"
    );
    assert!(!text.contains("<b>x&y</b>"));
    assert!(text.contains("<b>Network</b> ↓"), "{text}");
    assert!(text.contains("(over 30s)"), "{text}");
    for part in [
        "<b>OS</b>",
        "<b>Up</b>",
        "<b>CPU</b>",
        "<b>RAM</b>",
        "<b>Disks</b>",
        "<b>Processes</b>",
    ] {
        assert!(text.contains(part), "{part} missing: {text}");
    }
    assert_eq!(
        button(&stat, "Refresh"),
        Callback::Stat { server: server.id }
    );
    let list = html(&bot.say(&alice, "/list").await);
    assert!(list.contains("<b>server-1</b> · online · CPU"), "{list}");

    // Delete: a question first; Cancel changes nothing.
    let ask = bot.press(&alice, button(&stat, "Delete")).await;
    assert!(html(&ask).contains("Delete <b>server-1</b>?"));
    let cancelled = bot.press(&alice, button(&ask, "Cancel")).await;
    assert!(html(&cancelled).contains("nothing was changed"));
    assert!(
        bot.storage
            .get_server(server.id, ALICE)
            .await
            .expect("get")
            .is_some()
    );

    let done = bot.press(&alice, button(&ask, "Delete")).await;
    assert!(
        html(&done).contains("Deleted <b>server-1</b>"),
        "{}",
        html(&done)
    );
    assert!(
        bot.storage
            .get_server(server.id, ALICE)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        bot.storage
            .server_key(&server.key_id)
            .await
            .expect("key")
            .is_none()
    );
    assert_eq!(
        bot.storage.count_reports(server.id).await.expect("count"),
        0
    );

    // The same confirmation again: the server is gone, nothing happens.
    let again = bot
        .press(&alice, Callback::DeleteConfirm { server: server.id })
        .await;
    assert_eq!(notice(&again), Some("That server no longer exists."));
}

async fn reinstall_rotates_the_code(backend: Backend) {
    let Some(bot) = bot(backend, settings()).await else {
        return;
    };
    let alice = person(ALICE, "Alice");
    let old = code_in(&html(&bot.say(&alice, "/add web").await));
    let ask = bot.say(&alice, "/reinstall").await;
    assert!(html(&ask).contains("Make a new code for <b>web</b>?"));
    let done = bot.press(&alice, button(&ask, "Reinstall")).await;
    let new = code_in(&html(&done));
    assert_ne!(old, new);
    let (old_key, new_key) = (
        old.split('.').next().unwrap(),
        new.split('.').next().unwrap(),
    );
    assert!(
        bot.storage
            .server_key(old_key)
            .await
            .expect("key")
            .is_none()
    );
    assert!(
        bot.storage
            .server_key(new_key)
            .await
            .expect("key")
            .is_some()
    );
}

async fn another_users_buttons_reach_nothing(backend: Backend) {
    let Some(bot) = bot(backend, settings()).await else {
        return;
    };
    let (alice, bob) = (person(ALICE, "Alice"), person(BOB, "Bob"));
    let code = code_in(&html(&bot.say(&alice, "/add web").await));
    let server = bot
        .storage
        .find_server(ALICE, "web")
        .await
        .expect("find")
        .expect("exists");
    bot.say(&bob, "/start").await;

    for forged in [
        Callback::Stat { server: server.id },
        Callback::Delete { server: server.id },
        Callback::DeleteConfirm { server: server.id },
        Callback::Reinstall { server: server.id },
        Callback::ReinstallConfirm { server: server.id },
    ] {
        let out = bot.press(&bob, forged).await;
        assert_eq!(
            notice(&out),
            Some("That server no longer exists."),
            "{forged:?}"
        );
        assert_eq!(html(&out), "", "{forged:?} showed something");
    }
    // Nor by name.
    let out = html(&bot.say(&bob, "/stat web").await);
    assert!(out.contains("You have no server named web."), "{out}");
    assert!(html(&bot.say(&bob, "/delete web").await).contains("no server named"));
    assert!(html(&bot.say(&bob, "/rename web mine").await).contains("no server named"));

    let still = bot
        .storage
        .get_server(server.id, ALICE)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(still.name, "web");
    assert_eq!(code.split('.').next(), Some(still.key_id.as_str()));

    // Garbage callback data is refused before anything else.
    let out = bot
        .dispatcher
        .handle(&bob, Input::Button("dy:1;DROP".into()))
        .await;
    assert_eq!(
        notice(&out),
        Some("This button no longer works. Send the command again.")
    );
}

async fn banned_users_and_groups_are_refused(backend: Backend) {
    let Some(bot) = bot(backend, settings()).await else {
        return;
    };
    let bob = person(BOB, "Bob");
    bot.say(&bob, "/add web").await;
    bot.storage
        .set_role(BOB, RoleName::Banned)
        .await
        .expect("ban");
    for text in ["/start", "/list", "/add other", "/stat web", "/delete web"] {
        let out = html(&bot.say(&bob, text).await);
        assert!(out.contains("you cannot use this bot"), "{text}: {out}");
    }
    let out = bot.press(&bob, Callback::Stat { server: 1 }).await;
    assert!(notice(&out).is_some_and(|n| n.contains("cannot use this bot")));
    assert_eq!(bot.storage.count_servers(BOB).await.expect("count"), 1);

    // Group chats: a short note, and nothing recorded.
    let carol = Sender {
        private_chat: false,
        ..person(3003, "Carol")
    };
    let out = html(&bot.say(&carol, "/add web").await);
    assert!(out.contains("only in a private chat"), "{out}");
    assert!(bot.say(&carol, "just chatting").await.is_empty());
    bot.dispatcher.set_bot_username("serversan_test_bot");
    assert!(bot.say(&carol, "/list@some_other_bot").await.is_empty());
    assert!(!bot.say(&carol, "/list@serversan_test_bot").await.is_empty());
    assert!(bot.storage.get_user(3003).await.expect("get").is_none());
    let out = bot.press(&carol, Callback::Stat { server: 1 }).await;
    assert!(notice(&out).is_some_and(|n| n.contains("private chat")));
}

async fn names_limits_and_usage(backend: Backend) {
    let Some(bot) = bot(backend, settings()).await else {
        return;
    };
    let alice = person(ALICE, "Alice");
    for (text, expected) in [
        ("/add all", "reserved word"),
        ("/add cpu", "reserved word"),
        ("/add <b>bad</b>", "may only contain"),
        ("/add a b", "Usage: /add [NAME]"),
        ("/rename x", "Usage: /rename NAME NEW"),
        ("/frobnicate", "I don't know /frobnicate"),
        ("hello", "Send /help"),
        ("/users", "Only administrators"),
        ("/role 1 admin", "Only administrators"),
    ] {
        let out = html(&bot.say(&alice, text).await);
        assert!(out.contains(expected), "{text}: {out}");
    }
    assert_eq!(bot.storage.count_servers(ALICE).await.expect("count"), 0);

    bot.say(&alice, "/add web").await;
    let dup = html(&bot.say(&alice, "/add WEB").await);
    assert!(dup.contains("already have a server named"), "{dup}");
    bot.say(&alice, "/add db").await;
    assert!(html(&bot.say(&alice, "/rename db web").await).contains("already have"));

    // The role's server limit.
    let max = bot
        .storage
        .get_user(ALICE)
        .await
        .expect("get")
        .expect("user")
        .role
        .max_servers;
    let max = max.expect("users have a limit");
    assert_eq!(max, 20, "a user may own 20 servers by default");
    for i in bot.storage.count_servers(ALICE).await.expect("count")..max {
        let name = serversan::storage::ServerName::parse(&format!("s{i}")).expect("name");
        bot.storage
            .create_server(ALICE, &name)
            .await
            .expect("create");
    }
    let out = html(&bot.say(&alice, "/add one-more").await);
    assert!(out.contains(&format!("limit of {max} servers")), "{out}");
    assert_eq!(bot.storage.count_servers(ALICE).await.expect("count"), max);

    let help = html(&bot.say(&alice, "/help").await);
    for cmd in [
        "/start",
        "/help",
        "/add [NAME]",
        "/list",
        "/stat [NAME]",
        "/delete [NAME]",
        "/reinstall [NAME]",
        "/rename NAME NEW",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from help");
    }
    assert!(!help.contains("/users"));
}

async fn admins_manage_roles(backend: Backend) {
    let Some(bot) = bot(backend, settings()).await else {
        return;
    };
    let admin = person(ADMIN, "Root");
    let alice = person(ALICE, "Alice");
    bot.say(&admin, "/start").await;
    let user = bot
        .storage
        .get_user(ADMIN)
        .await
        .expect("get")
        .expect("user");
    assert_eq!(user.role.name, "admin", "configured admins are admins");
    assert!(html(&bot.say(&admin, "/help").await).contains("/role USER ROLE"));

    bot.say(&alice, "/start").await;
    bot.say(&alice, "/add web").await;
    let out = html(&bot.say(&admin, "/role @Alice admin").await);
    assert!(out.contains("is now <b>admin</b>"), "{out}");
    let users = html(&bot.say(&admin, "/users").await);
    assert!(
        users.contains(&format!(
            "<code>{ALICE}</code> @alice (Alice) · admin · 1 server"
        )),
        "{users}"
    );
    assert!(
        users.contains(&format!(
            "<code>{ADMIN}</code> @root (Root) · admin · 0 servers"
        )),
        "{users}"
    );

    // A configured admin cannot be demoted from the chat.
    let out = html(&bot.say(&alice, &format!("/role {ADMIN} user")).await);
    assert!(out.contains("by configuration"), "{out}");
    // Alice may step down while another admin remains…
    let out = html(&bot.say(&alice, "/role @alice user").await);
    assert!(out.contains("is now <b>user</b>"), "{out}");
    assert!(html(&bot.say(&alice, "/users").await).contains("Only administrators"));

    // …but the last admin may not.
    bot.storage
        .set_role(ALICE, RoleName::Admin)
        .await
        .expect("role");
    bot.storage
        .set_role(ADMIN, RoleName::User)
        .await
        .expect("role");
    let out = html(&bot.say(&alice, &format!("/role {ALICE} banned")).await);
    assert!(out.contains("last administrator"), "{out}");
    assert_eq!(
        bot.storage
            .get_user(ALICE)
            .await
            .expect("get")
            .expect("user")
            .role
            .name,
        "admin"
    );

    let out = html(&bot.say(&alice, "/role 999999 user").await);
    assert!(out.contains("has not talked to this bot"), "{out}");
    let out = html(&bot.say(&alice, "/role @alice king").await);
    assert!(out.contains("admin, user or banned"), "{out}");
}

async fn long_user_lists_split(backend: Backend) {
    let Some(bot) = bot(backend, settings()).await else {
        return;
    };
    for i in 0..150 {
        bot.storage
            .upsert_user(&UserProfile {
                user_id: 50_000 + i,
                username: Some(format!("user_{i}_{}", "x".repeat(20))),
                nickname: Some(format!("<i>Nick & {i}</i> {}", "y".repeat(30))),
            })
            .await
            .expect("user");
    }
    let out = bot.say(&person(ADMIN, "Root"), "/users").await;
    let Output::Send(reply) = &out[0] else {
        panic!("a message")
    };
    let parts = split_blocks(&reply.blocks, MESSAGE_LIMIT);
    assert!(parts.len() > 1, "150 users fit one message?");
    for part in &parts {
        assert!(telegram_len(part) <= MESSAGE_LIMIT);
        assert!(part.contains("&lt;i&gt;Nick &amp;") || part.contains("/role"));
    }
    let all = parts.join("\n");
    assert!(all.contains("(151)"));
    assert_eq!(all.matches(" · user · 0 servers").count(), 150);
}

async fn floods_are_answered_from_memory(backend: Backend) {
    let settings = BotSettings {
        commands_per_minute: 1,
        command_burst: 3,
        ..settings()
    };
    let Some(bot) = bot(backend, settings).await else {
        return;
    };
    let alice = person(ALICE, "Alice");
    for _ in 0..3 {
        assert!(html(&bot.say(&alice, "/help").await).contains("Commands"));
    }
    // The database is closed: only an answer from memory can come now.
    bot.storage.close().await;
    let first = html(&bot.say(&alice, "/list").await);
    assert!(first.contains("faster than I can answer"), "{first}");
    assert!(
        bot.say(&alice, "/list").await.is_empty(),
        "one warning per flood"
    );
    let press = bot.press(&alice, Callback::Stat { server: 1 }).await;
    assert!(notice(&press).is_some_and(|n| n.contains("faster")));
    // Other users are not affected by Alice's flood (their command reaches
    // the closed database and says so).
    let bob = html(&bot.say(&person(BOB, "Bob"), "/list").await);
    assert!(bob.contains("went wrong on our side"), "{bob}");
}

async fn unused_codes_expire(backend: Backend) {
    let Some(bot) = bot(backend, settings()).await else {
        return;
    };
    let alice = person(ALICE, "Alice");
    bot.say(&alice, "/add pending").await;
    bot.say(&alice, "/add used").await;
    let pending = bot
        .storage
        .find_server(ALICE, "pending")
        .await
        .expect("find")
        .expect("exists");
    let used = bot
        .storage
        .find_server(ALICE, "used")
        .await
        .expect("find")
        .expect("exists");
    bot.report(used.id, &Report::example(unix_now() - 5)).await;

    let expiry = Duration::from_secs(24 * 3600);
    let now = unix_now();
    let none = expire_pending_servers(&bot.storage, expiry, now)
        .await
        .expect("expire");
    assert!(none.is_empty(), "nothing is a day old yet");
    let gone = expire_pending_servers(&bot.storage, expiry, now + 24 * 3600 + 1)
        .await
        .expect("expire");
    assert_eq!(
        gone.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![pending.id]
    );
    assert!(
        bot.storage
            .get_server(pending.id, ALICE)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        bot.storage
            .server_key(&pending.key_id)
            .await
            .expect("key")
            .is_none()
    );
    assert!(
        bot.storage
            .get_server(used.id, ALICE)
            .await
            .expect("get")
            .is_some()
    );
}

on_both_backends!(
    start_add_stat_delete,
    reinstall_rotates_the_code,
    another_users_buttons_reach_nothing,
    banned_users_and_groups_are_refused,
    names_limits_and_usage,
    admins_manage_roles,
    long_user_lists_split,
    floods_are_answered_from_memory,
    unused_codes_expire,
);
