//! Two `serve` instances on one database: the scheduler and the outbox
//! sender run on exactly one of them at a time, every alert is sent once,
//! and when the holder dies the other takes over within the lease time.

mod alerts_support;
mod common;

use std::time::{Duration, Instant};

use alerts_support::*;
use bot_api_double::BotApiDouble;
use common::Backend;
use serversan::alerts::{Alerts, Background, Metric};
use serversan::storage::unix_now;

on_both_backends!(
    two_instances_send_each_alert_once,
    a_dead_holder_is_replaced_within_the_lease_time,
    a_stopped_holder_hands_over_at_once,
);

async fn instance(f: &Fixture) -> Alerts {
    Alerts::new(f.db.storage().await, fast_settings())
}

/// Starts an instance's scheduler and sender, as `serve` does.
fn start(engine: &Alerts, double: &BotApiDouble) -> Background {
    engine.start(
        Some(telegram(double, Duration::from_secs(30))),
        None,
        serversan::web::instance_id(),
        &tokio_util::sync::CancellationToken::new(),
    )
}

/// A report collected now with CPU at `percent`, evaluated by `engine`.
async fn report_cpu(engine: &Alerts, server_id: i64, percent: f64) {
    let mut report = serversan_protocol::Report::example(unix_now());
    cpu(percent)(&mut report);
    engine.on_report(server_id, &report).await.expect("report");
}

/// Instance A takes both leases (it sends a first alert); then B starts
/// and waits for them.
async fn a_then_b(f: &Fixture, double: &BotApiDouble) -> (Background, Alerts, Background) {
    let a = instance(f).await;
    let running_a = start(&a, double);
    report_cpu(&a, f.server.id, 99.0).await;
    double
        .wait_for_message_count(OWNER, 1)
        .await
        .expect("A sends");
    let b = instance(f).await;
    let running_b = start(&b, double);
    (running_a, b, running_b)
}

async fn two_instances_send_each_alert_once(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let double = BotApiDouble::start().await;
    chatting_user(&double, OWNER);
    f.set_rule(None, Metric::Cpu, rule(90.0, 0)).await;
    let (a, b) = (instance(&f).await, instance(&f).await);
    let running_a = start(&a, &double);
    let running_b = start(&b, &double);
    let mut names = Vec::new();
    for i in 0..8 {
        let name = format!("node{i}");
        let server = add_server(&f.storage, OWNER, &name).await;
        let engine = if i % 2 == 0 { &a } else { &b };
        report_cpu(engine, server.id, 99.0).await;
        report_cpu(engine, server.id, 99.5).await;
        names.push(name);
    }
    double
        .wait_for_message_count(OWNER, 8)
        .await
        .expect("8 alerts");
    // Several more rounds of both senders and schedulers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered = double.messages(OWNER);
    assert_eq!(delivered.len(), 8);
    for name in &names {
        let n = delivered
            .iter()
            .filter(|m| m.text.contains(&format!("{name}: alert")))
            .count();
        assert_eq!(n, 1, "{name}");
    }
    assert_eq!(
        double.calls_to("sendMessage").len(),
        8,
        "no message was even tried twice"
    );
    running_a.stop().await;
    running_b.stop().await;
}

async fn a_dead_holder_is_replaced_within_the_lease_time(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let double = BotApiDouble::start().await;
    chatting_user(&double, OWNER);
    f.set_rule(None, Metric::Cpu, rule(90.0, 0)).await;
    let quiet = add_server(&f.storage, OWNER, "quiet").await;
    // Offline after three seconds without a report, for this server.
    f.set_rule(Some(quiet.id), Metric::Offline, rule(0.05, 0))
        .await;
    let (running_a, b, running_b) = a_then_b(&f, &double).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A dies without giving its leases up.
    running_a.abort();
    let died = Instant::now();
    report_cpu(&b, quiet.id, 99.0).await;
    let lease_time = fast_settings().lease_time;
    double
        .wait_for_message_count(OWNER, 2)
        .await
        .expect("B sends");
    let took_over = died.elapsed();
    // Not before A's lease ran out (A renewed it at most a third of the
    // lease time before dying)…
    assert!(
        took_over >= lease_time / 2,
        "B ignored A's lease: {took_over:?}"
    );
    // …and within the lease time, plus at most a second of rounding (whole
    // seconds are stored) and one retry period of the waiting instance.
    assert!(
        took_over <= lease_time + Duration::from_millis(1700),
        "took {took_over:?} with a lease of {lease_time:?}"
    );
    // B's scheduler runs too: the quiet server goes offline.
    let offline = double
        .wait_for_message(OWNER, |m| {
            m.text.contains("quiet") && m.text.contains("Offline")
        })
        .await
        .expect("offline alert from B's scheduler");
    assert!(offline.text.contains("no report since"), "{}", offline.text);
    running_b.stop().await;
}

async fn a_stopped_holder_hands_over_at_once(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let double = BotApiDouble::start().await;
    chatting_user(&double, OWNER);
    f.set_rule(None, Metric::Cpu, rule(90.0, 0)).await;
    let (running_a, b, running_b) = a_then_b(&f, &double).await;
    running_a.stop().await;
    let stopped = Instant::now();
    let second = add_server(&f.storage, OWNER, "web2").await;
    report_cpu(&b, second.id, 99.0).await;
    double
        .wait_for_message_count(OWNER, 2)
        .await
        .expect("B sends");
    assert!(
        stopped.elapsed() < fast_settings().lease_time,
        "a released lease is taken without waiting for it to expire: {:?}",
        stopped.elapsed()
    );
    running_b.stop().await;
}
