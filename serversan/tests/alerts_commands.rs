//! `/threshold`, `/mute` and `/unmute` on SQLite and MariaDB: every form
//! does what it says, and every bad form answers with a usage message and
//! changes nothing.

mod alerts_support;
mod common;

use alerts_support::*;
use common::Backend;
use serversan::alerts::Metric;
use serversan::alerts::command::{mute, threshold, unmute};
use serversan::bot::reply::Output;
use serversan::bot::{BotSettings, ChatHandler, Dispatcher, Input, Sender};

on_both_backends!(
    threshold_shows_and_sets_every_form,
    bad_threshold_forms_change_nothing,
    mute_and_unmute,
    bad_mute_forms_change_nothing,
    the_bot_answers_the_alert_commands,
);

/// The text of a one-message reply.
fn text(outputs: Vec<Output>) -> String {
    match outputs.as_slice() {
        [Output::Send(reply)] => reply.text(),
        other => panic!("expected one message, got {other:?}"),
    }
}

async fn threshold_shows_and_sets_every_form(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let a = &f.alerts;
    let web1 = f.server.id;
    let shown = text(threshold(a, OWNER, &[]).await);
    for line in [
        "cpu ≥ 90% for 5m",
        "mem ≥ 90% for 5m",
        "swap ≥ 80% for 10m",
        "disk ≥ 90% at once",
        "load ≥ 2 per core for 10m",
        "offline after 3m without a report",
    ] {
        assert!(shown.contains(line), "{line} in {shown}");
    }

    let r = text(threshold(a, OWNER, &["cpu", "95", "10"]).await);
    assert!(r.contains("cpu for all your servers: ≥ 95% for 10m"), "{r}");
    let r = text(threshold(a, OWNER, &["web1", "mem", "80"]).await);
    assert!(r.contains("mem for <b>web1</b>: ≥ 80% for 5m"), "{r}");
    text(threshold(a, OWNER, &["web1", "cpu", "99.5"]).await);
    let r = text(threshold(a, OWNER, &["web1", "DISK", "off"]).await);
    assert!(r.contains("disk alerts are off for <b>web1</b>"), "{r}");
    text(threshold(a, OWNER, &["offline", "10"]).await);
    text(threshold(a, OWNER, &["load", "1.5", "0"]).await);
    let mut stored = a.stored_rules(OWNER).await.expect("rules");
    stored.sort_by_key(|x| (x.0, x.1));
    assert_eq!(
        stored,
        vec![
            (0, Metric::Cpu, rule(95.0, 10)),
            (0, Metric::Load, rule(1.5, 0)),
            (0, Metric::Offline, rule(10.0, 0)),
            (web1, Metric::Cpu, rule(99.5, 10)),
            (web1, Metric::Mem, rule(80.0, 5)),
            (web1, Metric::Disk, None),
        ]
    );

    let r = text(threshold(a, OWNER, &["web1"]).await);
    assert!(r.contains("cpu ≥ 99.5% for 10m (own)"), "{r}");
    assert!(r.contains("disk off (own)"), "{r}");
    assert!(r.contains("offline after 10m without a report"), "{r}");
    let r = text(threshold(a, OWNER, &["cpu", "off"]).await);
    assert!(r.contains("<b>web1</b> keeps its own cpu rule"), "{r}");
    let r = text(threshold(a, OWNER, &["web1", "disk", "default"]).await);
    assert!(
        r.contains("follows your default again: ≥ 90% at once"),
        "{r}"
    );
    let r = text(threshold(a, OWNER, &["cpu", "default"]).await);
    assert!(r.contains("back to the built-in ≥ 90% for 5m"), "{r}");
    let shown = text(threshold(a, OWNER, &[]).await);
    assert!(
        shown.contains("<b>web1</b>: cpu ≥ 99.5% for 10m · mem ≥ 80% for 5m"),
        "{shown}"
    );
    assert!(!shown.contains("disk off"), "{shown}");
}

async fn bad_threshold_forms_change_nothing(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let a = &f.alerts;
    text(threshold(a, OWNER, &["cpu", "80"]).await);
    let other = add_server(&f.storage, OWNER + 1, "theirs").await;
    let before = a.stored_rules(OWNER).await.expect("rules");
    let bad: &[&[&str]] = &[
        &["cpu"],
        &["web1", "cpu"],
        &["temp", "50"],
        &["web1", "temp", "50"],
        &["cpu", "0"],
        &["cpu", "101"],
        &["cpu", "-5"],
        &["cpu", "NaN"],
        &["cpu", "inf"],
        &["cpu", "1e2"],
        &["cpu", "90", "-1"],
        &["cpu", "90", "1441"],
        &["cpu", "90", "5m"],
        &["cpu", "90", "5", "extra"],
        &["load", "50%"],
        &["offline", "0"],
        &["offline", "5", "1"],
        &["disk", "on"],
    ];
    for args in bad {
        let r = text(threshold(a, OWNER, args).await);
        assert!(r.starts_with("⚠️ "), "{args:?}: {r}");
        assert!(r.contains("Usage:"), "{args:?}: {r}");
    }
    for args in [
        &["nosuch", "cpu", "90"][..],
        &["theirs", "cpu", "90"],
        &["theirs"],
    ] {
        let r = text(threshold(a, OWNER, args).await);
        assert!(r.contains("You have no server named"), "{args:?}: {r}");
    }
    let r = text(threshold(a, OWNER, &["<b>x&", "cpu", "90"]).await);
    assert!(r.contains("<b>&lt;b&gt;x&amp;</b>"), "{r}");
    assert_eq!(a.stored_rules(OWNER).await.expect("rules"), before);
    assert!(a.stored_rules(OWNER + 1).await.expect("rules").is_empty());
    assert!(
        a.server_rules(OWNER + 1, other.id)
            .await
            .expect("rules")
            .overrides
            .is_empty()
    );
}

async fn mute_and_unmute(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let a = &f.alerts;
    let web1 = f.server.id;
    let r = text(mute(a, OWNER, &[]).await);
    assert!(
        r.contains("all your servers are muted for 1h (until 2026-11-25 13:00 UTC)"),
        "{r}"
    );
    let r = text(mute(a, OWNER, &["2h"]).await);
    assert!(r.contains("for 2h (until 2026-11-25 14:00 UTC)"), "{r}");
    let r = text(mute(a, OWNER, &["web1", "30m"]).await);
    assert!(
        r.contains("Alerts for <b>web1</b> are muted for 30m"),
        "{r}"
    );
    assert!(r.contains("/unmute web1 ends it now"), "{r}");
    assert_eq!(
        a.mutes(OWNER).await.expect("mutes"),
        vec![(0, T0 + 7200), (web1, T0 + 1800)]
    );
    let shown = text(threshold(a, OWNER, &[]).await);
    assert!(
        shown.contains("All your servers are muted until 2026-11-25 14:00 UTC"),
        "{shown}"
    );
    assert!(
        shown.contains("<b>web1</b> is muted until 2026-11-25 12:30 UTC"),
        "{shown}"
    );

    let r = text(unmute(a, OWNER, &["web1"]).await);
    assert!(r.contains("Alerts for <b>web1</b> are on again"), "{r}");
    assert!(r.contains("All your servers are still muted"), "{r}");
    assert_eq!(a.mutes(OWNER).await.expect("mutes"), vec![(0, T0 + 7200)]);
    let r = text(unmute(a, OWNER, &["web1"]).await);
    assert!(r.contains("<b>web1</b> was not muted"), "{r}");
    let r = text(unmute(a, OWNER, &[]).await);
    assert!(
        r.contains("Alerts are on again for all your servers"),
        "{r}"
    );
    assert!(a.mutes(OWNER).await.expect("mutes").is_empty());
    let r = text(unmute(a, OWNER, &["all"]).await);
    assert!(r.contains("Nothing was muted"), "{r}");
    // Mutes end on their own.
    text(mute(a, OWNER, &["all", "90s"]).await);
    f.clock.advance(90);
    assert!(a.mutes(OWNER).await.expect("mutes").is_empty());
}

async fn bad_mute_forms_change_nothing(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let a = &f.alerts;
    text(mute(a, OWNER, &["web1", "1h"]).await);
    let before = a.mutes(OWNER).await.expect("mutes");
    let bad: &[&[&str]] = &[
        &["web1"],
        &["0m"],
        &["2x"],
        &["400d"],
        &["web1", "soon"],
        &["web1", "-1h"],
        &["web1", "1h", "extra"],
    ];
    for args in bad {
        let r = text(mute(a, OWNER, args).await);
        assert!(
            r.starts_with("⚠️ ") && r.contains("Usage:"),
            "{args:?}: {r}"
        );
    }
    let r = text(mute(a, OWNER, &["nosuch", "1h"]).await);
    assert!(r.contains("You have no server named <b>nosuch</b>"), "{r}");
    let r = text(unmute(a, OWNER, &["a", "b"]).await);
    assert!(r.contains("Usage:"), "{r}");
    let r = text(unmute(a, OWNER, &["nosuch"]).await);
    assert!(r.contains("You have no server named"), "{r}");
    assert_eq!(a.mutes(OWNER).await.expect("mutes"), before);
}

async fn the_bot_answers_the_alert_commands(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let settings = BotSettings {
        commands_per_minute: 10_000,
        command_burst: 1_000,
        ..BotSettings::default()
    };
    let bot = Dispatcher::new(f.storage.clone(), std::sync::Arc::new(settings));
    let owner = Sender {
        user_id: OWNER,
        username: Some("alice".into()),
        display_name: "Alice".into(),
        private_chat: true,
    };
    let say = |line: &str| bot.handle(&owner, Input::Text(line.to_owned()));
    let r = text(say("/threshold web1 cpu 95 2").await);
    assert!(r.contains("cpu for <b>web1</b>: ≥ 95% for 2m"), "{r}");
    let stored = f.alerts.stored_rules(OWNER).await.expect("rules");
    assert_eq!(stored, vec![(f.server.id, Metric::Cpu, rule(95.0, 2))]);
    let r = text(say("/threshold web1 cpu 500").await);
    assert!(
        r.starts_with("⚠️ cpu takes a percentage") && r.contains("Usage:"),
        "{r}"
    );
    assert_eq!(f.alerts.stored_rules(OWNER).await.expect("rules"), stored);
    let r = text(say("/threshold db9 cpu 50").await);
    assert!(r.contains("You have no server named db9"), "{r}");
    let r = text(say("/mute web1 1h").await);
    assert!(r.contains("Alerts for <b>web1</b> are muted for 1h"), "{r}");
    assert_eq!(f.alerts.mutes(OWNER).await.expect("mutes").len(), 1);
    let r = text(say("/mute web1").await);
    assert!(r.contains("say for how long"), "{r}");
    let r = text(say("/unmute").await);
    assert!(r.contains("Alerts are on again"), "{r}");
    assert!(f.alerts.mutes(OWNER).await.expect("mutes").is_empty());
    let help = text(say("/help").await);
    for command in ["/threshold", "/mute", "/unmute"] {
        assert!(help.contains(command), "{command} in {help}");
    }
}
