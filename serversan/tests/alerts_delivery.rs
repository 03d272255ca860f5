//! Delivery of alert messages through the Bot API test double: Telegram's
//! flood control and failures are waited out, a restart mid-delivery loses
//! nothing, refusals never block the queue, and order per chat holds.

mod alerts_support;
mod common;

use std::time::{Duration, Instant};

use alerts_support::*;
use bot_api_double::{BotApiDouble, Failure};
use common::Backend;
use serversan::alerts::outbox::Status;
use serversan::alerts::{AlertSettings, Metric};

on_both_backends!(
    an_alert_survives_a_429_and_three_500s,
    a_restart_mid_delivery_sends_once,
    a_blocked_user_never_blocks_the_queue,
    messages_telegram_kept_failing_on_are_retried_in_order,
);

/// Makes CPU alert at once and queues one alert message for `server`.
async fn queue_alert(f: &Fixture, server_id: i64, percent: f64) {
    f.set_rule(None, Metric::Cpu, rule(90.0, 0)).await;
    f.report_for(server_id, cpu(percent)).await;
}

async fn an_alert_survives_a_429_and_three_500s(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let double = BotApiDouble::start().await;
    chatting_user(&double, OWNER);
    queue_alert(&f, f.server.id, 99.0).await;
    double.fail_next(
        "sendMessage",
        1,
        Failure::TooManyRequests { retry_after: 1 },
    );
    double.fail_next("sendMessage", 3, Failure::ServerError);
    let sender = f
        .alerts
        .sender(telegram(&double, Duration::from_secs(30)), None);
    let done = sender.drain(None).await.expect("drain");
    assert_eq!((done.sent, done.dropped, done.deferred), (1, 0, 0));

    let delivered = double.messages(OWNER);
    assert_eq!(delivered.len(), 1);
    assert!(
        delivered[0].text.contains("CPU 99% ≥ 90%"),
        "{}",
        delivered[0].text
    );
    assert_eq!(delivered[0].parse_mode.as_deref(), Some("HTML"));
    let calls = double.calls_to("sendMessage");
    let statuses: Vec<Option<u16>> = calls.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [Some(429), Some(500), Some(500), Some(500), Some(200)]
    );
    assert!(
        calls[1].at - calls[0].at >= Duration::from_secs(1),
        "retry_after was honoured"
    );
    assert_eq!(statuses_of(&f).await, [Status::Sent]);
    // Nothing is sent twice.
    assert_eq!(sender.drain(None).await.expect("drain").sent, 0);
    assert_eq!(double.messages(OWNER).len(), 1);
}

async fn statuses_of(f: &Fixture) -> Vec<Status> {
    statuses(&f.storage, OWNER).await
}

async fn a_restart_mid_delivery_sends_once(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let double = BotApiDouble::start().await;
    chatting_user(&double, OWNER);
    queue_alert(&f, f.server.id, 99.0).await;
    double.fail_next("sendMessage", 3, Failure::ServerError);
    // The first process is killed while it backs off after a 500.
    let first = f
        .alerts
        .sender(telegram(&double, Duration::from_secs(30)), None);
    let running = tokio::spawn(async move { first.drain(None).await });
    double
        .wait_for_calls("sendMessage", 1)
        .await
        .expect("first attempt");
    running.abort();
    let _ = running.await;
    assert_eq!(
        statuses_of(&f).await,
        [Status::Queued],
        "not sent, so still queued"
    );
    assert!(double.messages(OWNER).is_empty());

    // A new process (new engine, new client) on the same database.
    let restarted = serversan::alerts::Alerts::new(f.storage.clone(), Default::default());
    let sender = restarted.sender(telegram(&double, Duration::from_secs(30)), None);
    assert_eq!(sender.drain(None).await.expect("drain").sent, 1);
    assert_eq!(double.messages(OWNER).len(), 1);
    assert_eq!(statuses_of(&f).await, [Status::Sent]);
}

async fn a_blocked_user_never_blocks_the_queue(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let double = BotApiDouble::start().await;
    chatting_user(&double, OWNER);
    let other = OWNER + 1;
    chatting_user(&double, other);
    talk_to_bot(&f.storage, other).await;
    let theirs = add_server(&f.storage, other, "db").await;
    f.alerts
        .set_rule(other, None, Metric::Cpu, rule(90.0, 0))
        .await
        .expect("rule");
    // Two messages for the owner (fire, recovery), then one for the other.
    queue_alert(&f, f.server.id, 99.0).await;
    f.clock.advance(60);
    f.report(cpu(10.0)).await;
    f.report_for(theirs.id, cpu(99.0)).await;
    double.user_blocks_bot(OWNER);

    let unreachable = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = unreachable.clone();
    let hook: serversan::alerts::UnreachableHook = std::sync::Arc::new(move |id| {
        seen.lock().expect("lock").push(id);
    });
    let sender = f
        .alerts
        .sender(telegram(&double, Duration::from_secs(30)), Some(hook));
    let done = sender.drain(None).await.expect("drain");
    assert_eq!((done.sent, done.dropped), (1, 2));
    assert_eq!(
        double.messages(other).len(),
        1,
        "the other user still gets theirs"
    );
    assert_eq!(statuses_of(&f).await, [Status::Dropped, Status::Dropped]);
    assert_eq!(*unreachable.lock().expect("lock"), vec![OWNER]);
    assert_eq!(
        double.calls_to("sendMessage").len(),
        2,
        "one refusal is enough"
    );

    // Nothing more is queued for them until they talk to the bot again.
    f.clock.advance(60);
    f.report(cpu(99.0)).await;
    assert_eq!(statuses_of(&f).await.len(), 2);
    // The bot's own refusals say the same (its on_unreachable hook).
    f.alerts.user_unreachable(other).await.expect("unreachable");
    f.clock.advance(60);
    f.report_for(theirs.id, cpu(10.0)).await;
    assert_eq!(statuses(&f.storage, other).await, [Status::Sent]);
    double.user_unblocks_bot(OWNER);
    // Contacts are recorded in whole seconds: talk in the next one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    talk_to_bot(&f.storage, OWNER).await;
    f.alerts.tick().await.expect("tick");
    assert_eq!(sender.drain(None).await.expect("drain").sent, 1);
    let back = double.messages(OWNER);
    assert_eq!(back.len(), 1);
    assert!(back[0].text.contains("CPU still 99%"), "{}", back[0].text);
}

async fn messages_telegram_kept_failing_on_are_retried_in_order(backend: Backend) {
    // The outbox schedules retries in whole seconds, so a one-second backoff
    // can come due at once; three seconds leave at least two to check that
    // nothing is retried early, on a loaded machine too.
    let settings = AlertSettings {
        outbox_retry_backoff: Duration::from_secs(3),
        outbox_retry_max: Duration::from_secs(6),
        ..fast_settings()
    };
    let Some(f) = Fixture::with_settings(backend, settings).await else {
        return;
    };
    let double = BotApiDouble::start().await;
    chatting_user(&double, OWNER);
    let other = OWNER + 1;
    chatting_user(&double, other);
    talk_to_bot(&f.storage, other).await;
    let theirs = add_server(&f.storage, other, "db").await;
    f.alerts
        .set_rule(other, None, Metric::Cpu, rule(90.0, 0))
        .await
        .expect("rule");
    queue_alert(&f, f.server.id, 99.0).await;
    f.clock.advance(60);
    f.report(cpu(10.0)).await;
    f.report_for(theirs.id, cpu(99.0)).await;
    // Telegram fails for longer than one message is retried in one go.
    double.fail_next("sendMessage", 3, Failure::ServerError);
    let sender = f
        .alerts
        .sender(telegram(&double, Duration::from_millis(250)), None);
    let done = sender.drain(None).await.expect("drain");
    assert_eq!(
        (done.sent, done.deferred),
        (1, 1),
        "the recovery waits behind the alert; the other chat does not"
    );
    assert_eq!(statuses_of(&f).await, [Status::Queued, Status::Queued]);
    assert_eq!(double.messages(other).len(), 1);
    assert_eq!(sender.drain(None).await.expect("drain").sent, 0, "not yet");
    // Later (the retry backoff is three seconds), both go, in order.
    let deadline = Instant::now() + Duration::from_secs(12);
    while double.messages(OWNER).len() < 2 && Instant::now() < deadline {
        sender.drain(None).await.expect("drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = double.messages(OWNER);
    assert_eq!(delivered.len(), 2);
    assert!(delivered[0].text.contains("alert"), "{}", delivered[0].text);
    assert!(
        delivered[1].text.contains("recovered"),
        "{}",
        delivered[1].text
    );
    assert_eq!(statuses_of(&f).await, [Status::Sent, Status::Sent]);
}
