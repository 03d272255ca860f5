//! The demo's console chat drives the same dispatcher as Telegram: typed
//! commands in, plain text out, numbered buttons pressed by typing the
//! number.

mod common;

use std::sync::Arc;

use serversan::bot::{BotSettings, Dispatcher, Sender, console};

use common::{Backend, TestDb};

async fn a_console_session(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let settings = BotSettings {
        public_url: "http://127.0.0.1:8080".to_owned(),
        ..BotSettings::default()
    };
    let dispatcher = Dispatcher::new(storage.clone(), Arc::new(settings));
    let user = Sender {
        user_id: 1,
        username: None,
        display_name: "you".to_owned(),
        private_chat: true,
    };
    // /stat shows [1] Refresh [2] Delete; 2 asks, then 2 is Cancel.
    let script = "/start\n/add <b>\n/add web\n/stat\n2\n2\n/list\n/quit\n/help\n";
    let charts = tempfile::tempdir().expect("tempdir");
    let mut out = Vec::new();
    console::run(
        &dispatcher,
        user,
        script.as_bytes(),
        &mut out,
        charts.path(),
    )
    .await
    .expect("console");
    let out = String::from_utf8(out).expect("utf-8");

    assert!(out.contains("Welcome to ServerSan, you!"), "{out}");
    assert!(out.contains("may only contain letters"), "{out}");
    assert!(out.contains("Server web added"), "{out}");
    assert!(out.contains("curl -fsSL http://127.0.0.1:8080/install.sh | sudo bash -s -- "));
    assert!(out.contains("& ([scriptblock]::Create((irm http://127.0.0.1:8080/install.ps1)))"));
    assert!(out.contains("[1] Refresh  [2] Delete"), "{out}");
    assert!(out.contains("Delete web?"), "{out}");
    assert!(out.contains("Cancelled; nothing was changed."), "{out}");
    assert!(
        out.contains("⚪ web · waiting for the first report"),
        "{out}"
    );
    assert!(
        !out.contains("<b>") && !out.contains("&amp;"),
        "HTML shown as text: {out}"
    );
    assert!(!out.contains("Commands"), "nothing after /quit: {out}");
    assert!(storage.find_server(1, "web").await.expect("find").is_some());
}

on_both_backends!(a_console_session);
