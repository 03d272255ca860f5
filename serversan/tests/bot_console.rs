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
    let charts = tempfile::tempdir().expect("tempdir");
    let session = |script: String| {
        let dispatcher = &dispatcher;
        let user = user.clone();
        let dir = charts.path().to_owned();
        async move {
            let mut out = Vec::new();
            console::run(dispatcher, user, script.as_bytes(), &mut out, &dir)
                .await
                .expect("console");
            String::from_utf8(out).expect("utf-8")
        }
    };

    let out = session("/start\n/add <b>\n/add web\n/stat\n/quit\n/help\n".into()).await;
    assert!(out.contains("Welcome to ServerSan, you!"), "{out}");
    assert!(out.contains("may only contain letters"), "{out}");
    assert!(out.contains("Server web added"), "{out}");
    assert!(out.contains("curl -fsSL http://127.0.0.1:8080/install.sh | sudo bash -s -- "));
    assert!(out.contains("& ([scriptblock]::Create((irm http://127.0.0.1:8080/install.ps1)))"));
    assert!(out.contains("within 24 hours"), "{out}");
    assert!(
        out.contains("⚪ web · waiting for the first report"),
        "{out}"
    );
    assert!(out.contains("[1] Refresh"), "{out}");
    assert!(
        !out.contains("<b>") && !out.contains("&amp;"),
        "HTML shown as text: {out}"
    );
    assert!(!out.contains("Commands"), "nothing after /quit: {out}");

    // Buttons are pressed by number: Delete under the status asks first,
    // and Cancel (the second button of the question) changes nothing.
    let delete = button_number(&out, "Delete");
    let out = session(format!("/stat\n{delete}\n2\n/list\n")).await;
    assert!(out.contains("Delete web?"), "{out}");
    assert!(out.contains("[1] Delete  [2] Cancel"), "{out}");
    assert!(out.contains("Cancelled; nothing was changed."), "{out}");
    assert!(out.contains("Your servers (1)"), "{out}");
    assert!(storage.find_server(1, "web").await.expect("find").is_some());
}

/// The number the console shows for the button labelled `label`.
fn button_number(out: &str, label: &str) -> usize {
    let needle = format!("] {label}");
    let at = out
        .rfind(&needle)
        .unwrap_or_else(|| panic!("no {label} button in {out}"));
    let open = out[..at].rfind('[').expect("[");
    out[open + 1..at].parse().expect("a number")
}

on_both_backends!(a_console_session);
