//! getUpdates: long polling, offsets, the single-consumer rule and update
//! filtering.

mod common;

use std::time::{Duration, Instant};

use bot_api_double::{BotApiDouble, Options, TestGroup, TestUser};
use common::{background_poll, call, ok, refused};
use serde_json::{Value, json};

/// A double that does not stretch repeated short polls, so tests can poll
/// back to back.
async fn double() -> BotApiDouble {
    BotApiDouble::start_with(Options {
        repeated_poll_min_timeout: Duration::ZERO,
        ..Options::default()
    })
    .await
}

fn ids(updates: &Value) -> Vec<i64> {
    updates
        .as_array()
        .map(|a| a.iter().filter_map(|u| u["update_id"].as_i64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_an_update_arrives() {
    let double = double().await;
    let poll = background_poll(&double, json!({ "timeout": 20 })).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let alice = TestUser::new(1001, "Alice").with_username("alice");
    let injected = double.send_text(&alice, "/start");
    let (_, answer, elapsed) = poll.await.expect("the poll finishes");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(answer["ok"], true);
    let update = &answer["result"][0];
    assert_eq!(update["update_id"], json!(injected.update_id));
    assert_eq!(update["message"]["text"], "/start");
    assert_eq!(update["message"]["from"]["username"], "alice");
    assert_eq!(
        update["message"]["entities"],
        json!([{ "offset": 0, "length": 6, "type": "bot_command" }])
    );
}

#[tokio::test]
async fn a_long_poll_without_updates_ends_after_its_timeout() {
    let double = double().await;
    let started = Instant::now();
    let result = ok(&double, "getUpdates", json!({ "timeout": 1 })).await;
    let elapsed = started.elapsed();
    assert_eq!(result, json!([]));
    assert!(
        elapsed >= Duration::from_millis(950),
        "returned early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "returned late: {elapsed:?}"
    );

    let started = Instant::now();
    ok(&double, "getUpdates", json!({ "timeout": 0 })).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a short poll waits for nothing"
    );
}

#[tokio::test]
async fn offsets_confirm_updates_and_limits_apply() {
    let double = double().await;
    let alice = TestUser::new(1001, "Alice");
    let sent: Vec<i64> = ["a", "b", "c"]
        .iter()
        .filter_map(|t| double.send_text(&alice, t).update_id)
        .collect();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1], sent[0] + 1, "ids are consecutive");

    let all = ok(&double, "getUpdates", json!({})).await;
    assert_eq!(ids(&all), sent, "offset 0 returns every pending update");
    let again = ok(&double, "getUpdates", json!({ "offset": 0 })).await;
    assert_eq!(ids(&again), sent, "nothing is confirmed without an offset");

    let limited = ok(
        &double,
        "getUpdates",
        json!({ "offset": sent[1], "limit": 1 }),
    )
    .await;
    assert_eq!(ids(&limited), [sent[1]]);
    assert_eq!(double.pending_updates(), 2, "the first update is confirmed");

    let none = ok(&double, "getUpdates", json!({ "offset": sent[2] + 1 })).await;
    assert_eq!(none, json!([]));
    assert_eq!(double.pending_updates(), 0);

    // A negative offset keeps only the last updates and forgets the others.
    let more: Vec<i64> = ["d", "e", "f"]
        .iter()
        .filter_map(|t| double.send_text(&alice, t).update_id)
        .collect();
    let last = ok(&double, "getUpdates", json!({ "offset": -1 })).await;
    assert_eq!(ids(&last), [more[2]]);
    assert_eq!(double.pending_updates(), 1);

    // Query-string parameters work too.
    let url = format!(
        "{}/bot{}/getUpdates?offset={}&timeout=0",
        double.api_url(),
        double.token(),
        more[2] + 1
    );
    let answer: Value = reqwest::get(url)
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer, json!({ "ok": true, "result": [] }));
    assert_eq!(double.pending_updates(), 0);
}

#[tokio::test]
async fn a_second_consumer_ends_the_waiting_long_poll_with_409() {
    let double = double().await;
    let first = background_poll(&double, json!({ "timeout": 20 })).await;

    let started = Instant::now();
    let second = ok(&double, "getUpdates", json!({ "timeout": 1 })).await;
    assert_eq!(
        second,
        json!([]),
        "the newer poll keeps waiting and times out"
    );
    assert!(started.elapsed() >= Duration::from_millis(950));

    let (status, answer, _) = first.await.expect("the first poll finishes");
    assert_eq!(status, 409);
    assert_eq!(
        answer,
        json!({
            "ok": false,
            "error_code": 409,
            "description": "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        })
    );
}

#[tokio::test]
async fn repeated_conflicts_are_answered_slowly() {
    let double = BotApiDouble::start_with(Options {
        repeated_poll_min_timeout: Duration::ZERO,
        conflict_repeat_delay: Duration::from_millis(600),
        ..Options::default()
    })
    .await;
    let a = background_poll(&double, json!({ "timeout": 20 })).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = background_poll(&double, json!({ "timeout": 20 })).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = background_poll(&double, json!({ "timeout": 1 })).await;
    let (a_status, _, _) = a.await.expect("a");
    let (b_status, _, b_elapsed) = b.await.expect("b");
    let (c_status, _, _) = c.await.expect("c");
    assert_eq!(a_status, 409);
    assert_eq!(b_status, 409);
    // b was superseded 150 ms after it started, then answered 600 ms later.
    assert!(b_elapsed >= Duration::from_millis(700), "{b_elapsed:?}");
    assert_eq!(c_status, 200);
}

#[tokio::test]
async fn a_repeated_short_poll_is_stretched_like_telegram_does() {
    let double = BotApiDouble::start_with(Options {
        repeated_poll_min_timeout: Duration::from_millis(700),
        ..Options::default()
    })
    .await;
    ok(&double, "getUpdates", json!({ "offset": 5, "timeout": 0 })).await;
    let started = Instant::now();
    // Same offset again at once: Telegram makes it wait instead of spinning.
    ok(&double, "getUpdates", json!({ "offset": 5, "timeout": 0 })).await;
    assert!(
        started.elapsed() >= Duration::from_millis(650),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn allowed_updates_filters_new_updates_and_persists() {
    let double = double().await;
    let alice = TestUser::new(1001, "Alice");
    let first = double.send_text(&alice, "/start");
    let bot_message = ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "pick", "reply_markup": { "inline_keyboard": [[{ "text": "A", "callback_data": "a" }]] } }),
    )
    .await;
    let id = bot_message["message_id"].as_i64().unwrap_or(0);

    let only_callbacks = ok(
        &double,
        "getUpdates",
        json!({ "allowed_updates": ["callback_query"], "offset": first.update_id.map(|u| u + 1) }),
    )
    .await;
    assert_eq!(only_callbacks, json!([]));
    assert_eq!(double.send_text(&alice, "ignored").update_id, None);
    let press = double.click_button(&alice, 1001, id, "A").expect("button");
    assert!(press.update_id.is_some());
    // Not naming allowed_updates keeps the previous setting.
    let updates = ok(&double, "getUpdates", json!({})).await;
    assert_eq!(updates[0]["callback_query"]["data"], "a");
    assert_eq!(updates[0]["callback_query"]["message"]["message_id"], id);
    assert_eq!(
        updates[0]["callback_query"]["message"]["reply_markup"],
        json!({ "inline_keyboard": [[{ "text": "A", "callback_data": "a" }]] })
    );
    // An empty list restores the default (everything but a few kinds).
    ok(
        &double,
        "getUpdates",
        json!({ "allowed_updates": [], "offset": -1 }),
    )
    .await;
    assert!(double.send_text(&alice, "back").update_id.is_some());
}

#[tokio::test]
async fn in_groups_privacy_mode_delivers_commands_and_mentions_only() {
    let double = double().await;
    let group = TestGroup::supergroup(-1_001_234_567_890, "ops");
    let bob = TestUser::new(2002, "Bob");
    assert_eq!(
        double.send_group_text(&group, &bob, "hello all").update_id,
        None
    );
    assert!(
        double
            .send_group_text(&group, &bob, "/stat web")
            .update_id
            .is_some()
    );
    assert!(
        double
            .send_group_text(&group, &bob, "/stat@serversan_test_bot")
            .update_id
            .is_some()
    );
    assert_eq!(
        double
            .send_group_text(&group, &bob, "/stat@other_bot")
            .update_id,
        None
    );
    assert!(
        double
            .send_group_text(&group, &bob, "hey @ServerSan_Test_Bot")
            .update_id
            .is_some()
    );
    let updates = ok(&double, "getUpdates", json!({})).await;
    assert_eq!(updates.as_array().map(Vec::len), Some(3));
    assert_eq!(
        updates[0]["message"]["chat"],
        json!({ "id": -1_001_234_567_890i64, "type": "supergroup", "title": "ops" })
    );

    let everything = BotApiDouble::start_with(Options {
        privacy_mode: false,
        ..Options::default()
    })
    .await;
    assert!(
        everything
            .send_group_text(&group, &bob, "hello all")
            .update_id
            .is_some()
    );
    let me = ok(&everything, "getMe", json!({})).await;
    assert_eq!(me["can_read_all_group_messages"], true);
}

#[tokio::test]
async fn get_updates_is_refused_while_a_webhook_is_set() {
    let double = double().await;
    ok(
        &double,
        "setWebhook",
        json!({ "url": "http://127.0.0.1:9/hook" }),
    )
    .await;
    refused(
        &double,
        "getUpdates",
        json!({}),
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    )
    .await;
    let (status, answer) = call(&double, "deleteWebhook", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["description"], "Webhook was deleted");
    ok(&double, "getUpdates", json!({})).await;
}
