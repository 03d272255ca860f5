//! Alert rules evaluated on reports and scheduler ticks, on SQLite and
//! MariaDB, with the clock moved by hand: duration windows, hysteresis,
//! offline detection, recovery, reminders, mutes, grouping, persistence.

mod alerts_support;
mod common;

use std::sync::Arc;
use std::time::Duration;

use alerts_support::*;
use common::Backend;
use serversan::alerts::{AlertSettings, Alerts, Metric};
use serversan_protocol::Report;

on_both_backends!(
    fires_only_after_every_report_in_the_window_breaches,
    a_dip_restarts_the_window,
    hysteresis_keeps_a_hovering_value_from_flapping,
    offline_after_silence_then_recovery,
    offline_follows_each_servers_rule,
    reminders_repeat_at_the_interval,
    a_mute_suppresses_and_its_end_tells_once,
    unmute_tells_what_recovered_meanwhile,
    simultaneous_breaches_make_one_message,
    a_restart_neither_forgets_nor_repeats,
    server_rules_override_owner_defaults,
    owners_who_never_talked_get_nothing_until_they_do,
    each_filesystem_is_watched_alone,
    stale_reports_only_prove_life,
    deleted_servers_leave_no_alert_rows,
    a_mass_outage_is_announced_in_one_tick,
    a_server_that_fails_holds_up_no_other,
);

async fn fires_only_after_every_report_in_the_window_breaches(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    // Default CPU rule: 90 % for 5 minutes. Reports at t, t+1m … t+4m are
    // not yet five minutes of breach.
    f.minutes_of(5, cpu(95.0)).await;
    assert!(f.messages().await.is_empty());
    f.minutes_of(1, cpu(97.5)).await;
    let messages = f.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert!(m.starts_with("🔴 <b>web1</b>: alert"), "{m}");
    assert!(
        m.contains("CPU 97.5% ≥ 90% for 5m, since 2026-11-25 12:01 UTC"),
        "{m}"
    );
    assert!(m.contains("Top CPU: <code>nginx</code> 8.5%"), "{m}");
    // Still breaching: nothing more.
    f.minutes_of(3, cpu(99.0)).await;
    assert_eq!(f.messages().await.len(), 1);
}

async fn a_dip_restarts_the_window(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    f.minutes_of(4, cpu(95.0)).await;
    f.minutes_of(1, cpu(70.0)).await;
    f.minutes_of(5, cpu(95.0)).await;
    assert!(
        f.messages().await.is_empty(),
        "one good report breaks the window"
    );
    f.minutes_of(1, cpu(95.0)).await;
    assert_eq!(f.messages().await.len(), 1);
}

async fn hysteresis_keeps_a_hovering_value_from_flapping(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    f.set_rule(None, Metric::Cpu, rule(90.0, 0)).await;
    let mut seen = 0;
    f.minutes_of(1, cpu(91.0)).await;
    assert_eq!(f.new_messages(&mut seen).await.len(), 1);
    // Hovering around the line, never 5 points below it.
    for v in [89.0, 91.0, 86.0, 90.5, 85.5, 92.0] {
        f.minutes_of(1, cpu(v)).await;
    }
    assert!(f.new_messages(&mut seen).await.is_empty(), "no flapping");
    f.minutes_of(1, cpu(84.0)).await;
    let recovered = f.new_messages(&mut seen).await;
    assert_eq!(recovered.len(), 1);
    assert!(
        recovered[0].starts_with("✅ <b>web1</b>: recovered"),
        "{}",
        recovered[0]
    );
    assert!(
        recovered[0].contains("CPU back to 84% after 7m"),
        "{}",
        recovered[0]
    );
    // Below the line but above the clear level again: a new incident needs
    // a new breach.
    f.minutes_of(2, cpu(88.0)).await;
    assert!(f.new_messages(&mut seen).await.is_empty());
}

async fn offline_after_silence_then_recovery(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    f.report(healthy()).await;
    let mut seen = 0;
    f.clock.advance(179);
    assert_eq!(f.alerts.tick().await.expect("tick").offline, 0);
    assert!(f.new_messages(&mut seen).await.is_empty());
    f.clock.advance(1);
    assert_eq!(f.alerts.tick().await.expect("tick").offline, 1);
    let offline = f.new_messages(&mut seen).await;
    assert_eq!(offline.len(), 1);
    assert!(
        offline[0].contains("Offline: no report since 2026-11-25 12:00 UTC"),
        "{}",
        offline[0]
    );
    // Further ticks, and another instance's ticks, repeat nothing.
    f.clock.advance(60);
    f.alerts.tick().await.expect("tick");
    let other = Alerts::with_clock(
        f.storage.clone(),
        AlertSettings::default(),
        Arc::new(f.clock.clone()),
    );
    other.tick().await.expect("tick");
    assert!(f.new_messages(&mut seen).await.is_empty());
    f.clock.advance(180);
    f.report(healthy()).await;
    let back = f.new_messages(&mut seen).await;
    assert_eq!(back.len(), 1);
    assert!(back[0].contains("reporting again after 7m"), "{}", back[0]);
    // A server that never reported is not offline: it is not installed yet.
    add_server(&f.storage, OWNER, "new1").await;
    f.clock.advance(3600);
    f.alerts.tick().await.expect("tick");
    let later = f.new_messages(&mut seen).await;
    assert_eq!(later.len(), 1, "{later:?}");
    assert!(later[0].contains("<b>web1</b>") && !later[0].contains("new1"));
}

async fn offline_follows_each_servers_rule(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    // Many servers whose offline rule is off, silent the longest: they
    // must not crowd out the one that is due.
    let mut off = Vec::new();
    for i in 0..3 {
        let server = add_server(&f.storage, OWNER, &format!("off{i}")).await;
        f.set_rule(Some(server.id), Metric::Offline, None).await;
        f.report_for(server.id, healthy()).await;
        off.push(server);
    }
    f.set_rule(None, Metric::Offline, rule(10.0, 0)).await;
    let slow = add_server(&f.storage, OWNER, "slow").await;
    f.set_rule(Some(slow.id), Metric::Offline, rule(30.0, 0))
        .await;
    f.clock.advance(60);
    f.report(healthy()).await;
    f.report_for(slow.id, healthy()).await;
    f.clock.advance(9 * 60 + 59);
    assert_eq!(f.alerts.tick().await.expect("tick").offline, 0);
    f.clock.advance(1);
    assert_eq!(f.alerts.tick().await.expect("tick").offline, 1);
    let messages = f.messages().await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("<b>web1</b>"), "{}", messages[0]);
    f.clock.advance(20 * 60);
    assert_eq!(f.alerts.tick().await.expect("tick").offline, 1);
    assert!(f.messages().await[1].contains("<b>slow</b>"));
    f.clock.advance(86_400);
    assert_eq!(f.alerts.tick().await.expect("tick").offline, 0);
}

async fn reminders_repeat_at_the_interval(backend: Backend) {
    let settings = AlertSettings {
        reminder_interval: Duration::from_secs(3600),
        ..AlertSettings::default()
    };
    let Some(f) = Fixture::with_settings(backend, settings).await else {
        return;
    };
    f.set_rule(None, Metric::Disk, rule(90.0, 0)).await;
    // Reports stop below; that is not what this test is about.
    f.set_rule(None, Metric::Offline, None).await;
    f.report(disk("/", 95.0)).await;
    let mut seen = 0;
    assert_eq!(f.new_messages(&mut seen).await.len(), 1);
    f.clock.advance(3599);
    f.report(disk("/", 95.0)).await;
    assert_eq!(f.alerts.tick().await.expect("tick").reminders, 0);
    f.clock.advance(1);
    assert_eq!(f.alerts.tick().await.expect("tick").reminders, 1);
    let reminder = f.new_messages(&mut seen).await;
    assert_eq!(reminder.len(), 1);
    assert!(
        reminder[0].starts_with("🔴 <b>web1</b>: still in trouble"),
        "{}",
        reminder[0]
    );
    assert!(
        reminder[0].contains("Disk <code>/</code> still 95%"),
        "{}",
        reminder[0]
    );
    f.clock.advance(1800);
    f.alerts.tick().await.expect("tick");
    assert!(f.new_messages(&mut seen).await.is_empty());
    f.clock.advance(1800);
    f.alerts.tick().await.expect("tick");
    assert_eq!(f.new_messages(&mut seen).await.len(), 1);

    // Zero turns reminders off.
    let quiet = AlertSettings {
        reminder_interval: Duration::ZERO,
        ..AlertSettings::default()
    };
    let engine = Alerts::with_clock(f.storage.clone(), quiet, Arc::new(f.clock.clone()));
    f.clock.advance(30 * 86_400);
    assert_eq!(engine.tick().await.expect("tick").reminders, 0);
}

async fn a_mute_suppresses_and_its_end_tells_once(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    f.set_rule(None, Metric::Cpu, rule(90.0, 0)).await;
    let until = f
        .alerts
        .mute(OWNER, None, Duration::from_secs(3600))
        .await
        .expect("mute");
    assert_eq!(until, T0 + 3600);
    f.minutes_of(1, cpu(99.0)).await;
    f.clock.advance(1200);
    f.alerts.tick().await.expect("tick");
    assert!(f.messages().await.is_empty(), "muted");
    // The mute ends by itself; the next tick tells the state once: the CPU
    // alert, and the silence that began during the mute.
    f.clock.advance(2400);
    assert_eq!(f.alerts.tick().await.expect("tick").caught_up, 2);
    let messages = f.messages().await;
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].starts_with("🔴 <b>web1</b>: still in trouble"),
        "{}",
        messages[0]
    );
    assert!(
        messages[0].contains("CPU still 99% ≥ 90%"),
        "{}",
        messages[0]
    );
    assert!(
        messages[0].contains("Offline: no report since 2026-11-25 12:01 UTC"),
        "{}",
        messages[0]
    );
    f.alerts.tick().await.expect("tick");
    assert_eq!(f.messages().await.len(), 1);

    // A server mute silences that server only.
    let db2 = add_server(&f.storage, OWNER, "db2").await;
    f.alerts
        .mute(OWNER, Some(f.server.id), Duration::from_secs(600))
        .await
        .expect("mute");
    f.report(cpu(10.0)).await;
    f.report_for(db2.id, cpu(99.0)).await;
    f.report(cpu(99.0)).await;
    let messages = f.messages().await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[1].contains("<b>db2</b>"), "{}", messages[1]);
}

async fn unmute_tells_what_recovered_meanwhile(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    f.set_rule(None, Metric::Cpu, rule(90.0, 0)).await;
    let mut seen = 0;
    f.minutes_of(1, cpu(99.0)).await;
    assert_eq!(f.new_messages(&mut seen).await.len(), 1);
    f.alerts
        .mute(OWNER, Some(f.server.id), Duration::from_secs(3600))
        .await
        .expect("mute");
    f.minutes_of(10, cpu(20.0)).await;
    assert!(
        f.new_messages(&mut seen).await.is_empty(),
        "the recovery waits for the mute"
    );
    let (ended, told) = f.alerts.unmute(OWNER, None).await.expect("unmute");
    assert_eq!((ended, told), (1, 1));
    let news = f.new_messages(&mut seen).await;
    assert_eq!(news.len(), 1);
    assert!(news[0].contains("CPU back to 20% after 1m"), "{}", news[0]);
    // Fired and recovered within a mute: the owner never hears of it.
    f.alerts
        .mute(OWNER, None, Duration::from_secs(3600))
        .await
        .expect("mute");
    f.minutes_of(1, cpu(99.0)).await;
    f.minutes_of(1, cpu(20.0)).await;
    assert_eq!(f.alerts.unmute(OWNER, None).await.expect("unmute"), (1, 0));
    f.alerts.tick().await.expect("tick");
    assert!(f.new_messages(&mut seen).await.is_empty());
}

async fn simultaneous_breaches_make_one_message(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    for metric in [Metric::Cpu, Metric::Mem] {
        f.alerts
            .set_rule(OWNER, None, metric, rule(90.0, 0))
            .await
            .expect("rule");
    }
    f.minutes_of(1, |r| {
        cpu(95.0)(r);
        mem(93.75)(r);
        disk("/", 96.0)(r);
        r.top_memory[0].name = "big<job>".into();
    })
    .await;
    let messages = f.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert!(m.starts_with("🔴 <b>web1</b>: 3 alerts"), "{m}");
    for part in [
        "CPU 95%",
        "Memory 93.75%",
        "Disk <code>/</code> 96%",
        "Top CPU:",
        "Top memory: <code>big&lt;job&gt;</code> 512 MiB",
    ] {
        assert!(m.contains(part), "{part} in {m}");
    }
    f.minutes_of(1, healthy()).await;
    let messages = f.messages().await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].matches("✅").count(), 4, "{}", messages[1]);
}

async fn a_restart_neither_forgets_nor_repeats(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    f.minutes_of(3, cpu(95.0)).await;
    // A new process: same database, new engine.
    let restarted = Alerts::with_clock(
        f.storage.clone(),
        AlertSettings::default(),
        Arc::new(f.clock.clone()),
    );
    let report = |percent: f64| {
        let mut r = serversan_protocol::Report::example(f.now());
        cpu(percent)(&mut r);
        r
    };
    for _ in 0..3 {
        f.clock.advance(60);
        restarted
            .on_report(f.server.id, &report(95.0))
            .await
            .expect("report");
    }
    assert_eq!(
        f.messages().await.len(),
        1,
        "the window went on across the restart"
    );
    let again = Alerts::with_clock(
        f.storage.clone(),
        AlertSettings::default(),
        Arc::new(f.clock.clone()),
    );
    for _ in 0..3 {
        f.clock.advance(60);
        again
            .on_report(f.server.id, &report(95.0))
            .await
            .expect("report");
        again.tick().await.expect("tick");
    }
    assert_eq!(
        f.messages().await.len(),
        1,
        "a fired alert is not told again"
    );
}

async fn server_rules_override_owner_defaults(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let db2 = add_server(&f.storage, OWNER, "db2").await;
    f.set_rule(None, Metric::Cpu, rule(50.0, 0)).await;
    f.set_rule(Some(f.server.id), Metric::Cpu, None).await;
    f.report(cpu(60.0)).await;
    f.report_for(db2.id, cpu(60.0)).await;
    let messages = f.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("<b>db2</b>") && messages[0].contains("≥ 50%"),
        "{}",
        messages[0]
    );
    // Another owner's rules never apply here.
    f.alerts
        .set_rule(OWNER + 1, None, Metric::Cpu, rule(10.0, 0))
        .await
        .expect("other");
    f.clock.advance(60);
    f.report(cpu(20.0)).await;
    assert_eq!(f.messages().await.len(), 1);
}

async fn owners_who_never_talked_get_nothing_until_they_do(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let stranger = 777_001;
    f.storage.ensure_user(stranger).await.expect("user");
    let theirs = add_server(&f.storage, stranger, "box").await;
    f.alerts
        .set_rule(stranger, None, Metric::Cpu, rule(90.0, 0))
        .await
        .expect("rule");
    f.report_for(theirs.id, cpu(99.0)).await;
    f.alerts.tick().await.expect("tick");
    assert!(queued(&f.storage, stranger).await.is_empty());
    talk_to_bot(&f.storage, stranger).await;
    assert_eq!(f.alerts.tick().await.expect("tick").caught_up, 1);
    let messages = queued(&f.storage, stranger).await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("CPU still 99%"), "{}", messages[0]);
}

async fn each_filesystem_is_watched_alone(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut seen = 0;
    f.minutes_of(1, disk("/boot/efi", 91.0)).await;
    let m = f.new_messages(&mut seen).await;
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("Disk <code>/boot/efi</code> 91% ≥ 90%") && !m[0].contains("for "),
        "{}",
        m[0]
    );
    f.minutes_of(1, |r| {
        disk("/boot/efi", 91.0)(r);
        disk("/", 92.0)(r);
    })
    .await;
    let m = f.new_messages(&mut seen).await;
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("Disk <code>/</code> 92%") && !m[0].contains("efi"),
        "{}",
        m[0]
    );
    // The filesystem disappears from the reports: that alert ends.
    f.minutes_of(1, |r| {
        disk("/", 92.0)(r);
        r.filesystems.retain(|fs| fs.mount_point != "/boot/efi");
    })
    .await;
    let m = f.new_messages(&mut seen).await;
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("Disk <code>/boot/efi</code> no longer reported after 2m"),
        "{}",
        m[0]
    );
    // Read-only images are full by design.
    f.minutes_of(1, |r| {
        disk("/", 92.0)(r);
        let mut snap = r.filesystems[0].clone();
        snap.mount_point = "/snap/core/1".into();
        snap.fs_type = "squashfs".into();
        snap.used = snap.total;
        r.filesystems.push(snap);
    })
    .await;
    assert!(f.new_messages(&mut seen).await.is_empty());
}

async fn stale_reports_only_prove_life(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    f.set_rule(None, Metric::Cpu, rule(90.0, 0)).await;
    f.report(healthy()).await;
    f.clock.advance(3600);
    f.alerts.tick().await.expect("tick");
    let mut seen = 0;
    assert_eq!(f.new_messages(&mut seen).await.len(), 1, "offline");
    // The spool flushes: an hour-old breaching report ends the silence but
    // raises nothing.
    let mut old = serversan_protocol::Report::example(f.now() - 3000);
    cpu(99.0)(&mut old);
    f.alerts.on_report(f.server.id, &old).await.expect("report");
    let m = f.new_messages(&mut seen).await;
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("reporting again") && !m[0].contains("CPU"),
        "{}",
        m[0]
    );
}

async fn deleted_servers_leave_no_alert_rows(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    f.set_rule(Some(f.server.id), Metric::Cpu, rule(90.0, 0))
        .await;
    f.alerts
        .mute(OWNER, Some(f.server.id), Duration::from_secs(60))
        .await
        .expect("mute");
    f.report(cpu(99.0)).await;
    assert!(
        f.storage
            .delete_server(f.server.id, OWNER)
            .await
            .expect("delete")
    );
    f.alerts.tick().await.expect("tick");
    assert!(
        f.alerts
            .stored_rules(OWNER)
            .await
            .expect("rules")
            .is_empty()
    );
    assert!(f.alerts.mutes(OWNER).await.expect("mutes").is_empty());
    // A late report of the deleted server changes nothing.
    f.report(cpu(99.0)).await;
    f.clock.advance(3600);
    f.alerts.tick().await.expect("tick");
    assert!(f.messages().await.is_empty());
}

/// More servers than one round of a tick finds (500) and one of its
/// transactions takes (256).
const MANY: usize = 1_100;

async fn a_mass_outage_is_announced_in_one_tick(backend: Backend) {
    let settings = AlertSettings {
        reminder_interval: Duration::from_secs(3600),
        ..AlertSettings::default()
    };
    let Some(f) = Fixture::with_settings(backend, settings).await else {
        return;
    };
    let mut names = vec!["web1".to_owned()];
    let mut ids = vec![f.server.id];
    for i in 1..MANY {
        let name = format!("node{i}");
        ids.push(add_server(&f.storage, OWNER, &name).await.id);
        names.push(name);
    }
    let all_report = |f: &Fixture| {
        let report = Report::example(f.now());
        let ids = ids.clone();
        let alerts = f.alerts.clone();
        async move {
            for chunk in ids.chunks(256) {
                let batch: Vec<(i64, &Report)> = chunk.iter().map(|id| (*id, &report)).collect();
                alerts.on_reports(&batch).await.expect("evaluate");
            }
        }
    };
    all_report(&f).await;
    // Each server is named in exactly one of `messages`.
    let each_once = |messages: &[String]| {
        assert_eq!(messages.len(), MANY);
        for name in &names {
            let bold = format!("<b>{name}</b>");
            let n = messages.iter().filter(|m| m.contains(&bold)).count();
            assert_eq!(n, 1, "{name} in {n} messages");
        }
    };

    // Every server falls silent at once: one tick finds them all.
    f.clock.advance(4 * 60);
    assert_eq!(f.alerts.tick().await.expect("tick").offline, MANY);
    let mut seen = 0;
    let offline = f.new_messages(&mut seen).await;
    each_once(&offline);
    assert!(offline.iter().all(|m| m.contains("Offline")), "{offline:?}");
    f.clock.advance(60);
    assert_eq!(f.alerts.tick().await.expect("tick"), Default::default());
    assert!(f.new_messages(&mut seen).await.is_empty());

    // An hour later every owner's alert is repeated, in one tick.
    f.clock.advance(3600);
    assert_eq!(f.alerts.tick().await.expect("tick").reminders, MANY);
    each_once(&f.new_messages(&mut seen).await);

    // They come back while muted; the mute's end (before the offline rule
    // is due again) tells each once.
    f.alerts
        .mute(OWNER, None, Duration::from_secs(120))
        .await
        .expect("mute");
    all_report(&f).await;
    assert!(f.new_messages(&mut seen).await.is_empty());
    f.clock.advance(121);
    assert_eq!(f.alerts.tick().await.expect("tick").caught_up, MANY);
    let recovered = f.new_messages(&mut seen).await;
    each_once(&recovered);
    assert!(
        recovered.iter().all(|m| m.contains("reporting again")),
        "{recovered:?}"
    );
}

async fn a_server_that_fails_holds_up_no_other(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let broken = add_server(&f.storage, OWNER, "broken").await;
    let web2 = add_server(&f.storage, OWNER, "web2").await;
    for id in [f.server.id, broken.id, web2.id] {
        f.report_for(id, healthy()).await;
    }
    // The database refuses every message about `broken`, so any
    // transaction that would queue one fails.
    let trigger = match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER refuse_broken BEFORE INSERT ON outbox \
             WHEN NEW.text LIKE '%<b>broken</b>%' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        }
        Backend::MySql => {
            "CREATE TRIGGER refuse_broken BEFORE INSERT ON outbox FOR EACH ROW \
             IF NEW.text LIKE '%<b>broken</b>%' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF"
        }
    };
    let mut conn = f.db.raw_connection().await;
    sqlx::raw_sql(trigger)
        .execute(&mut conn)
        .await
        .expect("trigger");

    f.clock.advance(4 * 60);
    assert_eq!(f.alerts.tick().await.expect("tick").offline, 2);
    let messages = f.messages().await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("<b>web1</b>")));
    assert!(messages.iter().any(|m| m.contains("<b>web2</b>")));

    // Nothing was stored for it, so the next tick tries it again.
    sqlx::raw_sql("DROP TRIGGER refuse_broken")
        .execute(&mut conn)
        .await
        .expect("drop trigger");
    f.clock.advance(60);
    assert_eq!(f.alerts.tick().await.expect("tick").offline, 1);
    let messages = f.messages().await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[2].contains("<b>broken</b>"), "{}", messages[2]);
}
