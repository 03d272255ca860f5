//! `serversan serve` with a bot token runs the Telegram bot in the same
//! process: it registers its commands, answers a user through the Bot API
//! (here the local test double), and shows a server added from the
//! command line to its owner, and an alert raised by a stored report
//! reaches that owner; every background job runs under its lease.

mod common;

use bot_api_double::{BotApiDouble, TestUser};
use common::Agent;
use common::binary::{Serve, code_from, run, stderr};
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_bot_when_a_token_is_set() {
    let telegram = BotApiDouble::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("serversan.db").display());
    let api_url = telegram.api_url();
    let token = telegram.token().to_owned();
    let env = [
        ("SERVERSAN_DATABASE_URL", db.as_str()),
        ("SERVERSAN_BOT_TOKEN", token.as_str()),
        ("SERVERSAN_TELEGRAM_API_URL", api_url.as_str()),
        ("SERVERSAN_ADMINS", "1001"),
        ("SERVERSAN_PUBLIC_URL", "https://mon.example.com"),
    ];
    let serve = Serve::start(dir.path(), &env).await;

    let alice = TestUser::new(1001, "Alice");
    let chat = telegram.send_text(&alice, "/start").chat_id;
    let greeting = telegram
        .wait_for_message(chat, |m| m.text.contains("/add"))
        .await
        .expect("a greeting that explains /add");
    assert!(!greeting.text.contains(&token));
    assert!(
        telegram.commands().iter().any(|c| c.command == "stat"),
        "the command menu is registered"
    );

    let added = run(
        dir.path(),
        &env,
        &["server", "add", "web-1", "--owner", "1001"],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    telegram.send_text(&alice, "/list");
    telegram
        .wait_for_message(chat, |m| m.text.contains("web-1"))
        .await
        .expect("/list shows the server added from the command line");

    // An alert travels from ingest through the outbox to the chat.
    let code = code_from(&added);
    telegram.send_text(&alice, "/threshold web-1 cpu 80 0");
    telegram
        .wait_for_message(chat, |m| m.text.contains("80"))
        .await
        .expect("/threshold confirms the rule");
    let mut hot = common::report(1);
    hot.hostname = "<b>x&y</b>".into();
    hot.cpu.usage_percent = 97.0;
    let reply = Agent::new(code, &serve.url).send(&hot).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let alert = telegram
        .wait_for_message(chat, |m| m.text.contains("web-1") && m.text.contains("97"))
        .await
        .expect("the CPU alert reaches its owner");
    assert!(alert.text.to_lowercase().contains("cpu"), "{}", alert.text);

    // Every once-only job runs, each under its lease.
    let mut leases: Vec<String> = Vec::new();
    for _ in 0..50 {
        let mut conn = sqlx::SqliteConnection::connect(&db).await.expect("open db");
        leases = sqlx::query_scalar("SELECT name FROM leases ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .expect("leases");
        if leases.len() >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for job in [
        "alert-scheduler",
        "alert-sender",
        "history",
        "pending-server-expiry",
        "prune",
        "telegram-poller",
    ] {
        assert!(
            leases.iter().any(|l| l == job),
            "{job} is not running: {leases:?}"
        );
    }

    let (status, log) = serve.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains(&token), "the token leaked into the log");
}
