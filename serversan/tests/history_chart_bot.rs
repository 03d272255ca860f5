//! `/chart` and the chart buttons, on SQLite and on a real MariaDB: through
//! the dispatcher every front end uses, then end to end over HTTP against
//! the Bot API double (sendPhoto, then editMessageMedia on the same
//! message). Every button re-checks that the presser owns the server.

mod common;
mod history_support;

use std::sync::Arc;
use std::time::Duration;

use bot_api_double::{BotApiDouble, Options, SentMessage, TestUser};
use serversan::bot::callback::Callback;
use serversan::bot::reply::{Output, Photo};
use serversan::bot::{BotSettings, ChatHandler, Dispatcher, Input, Sender, TelegramSettings};
use serversan::charts::{Metric, Period};
use serversan::config::Secret;
use serversan::storage::unix_now;
use tokio_util::sync::CancellationToken;

use common::Backend;
use history_support::*;

on_both_backends!(
    chart_command_answers_with_a_photo_and_buttons,
    chart_buttons_recheck_ownership,
    stat_opens_the_chart,
    over_telegram_buttons_edit_the_same_photo,
);

const ALICE: i64 = OWNER;
const BOB: i64 = OWNER + 1;

fn person(id: i64) -> Sender {
    Sender {
        user_id: id,
        username: None,
        display_name: format!("User {id}"),
        private_chat: true,
    }
}

fn settings() -> BotSettings {
    BotSettings {
        commands_per_minute: 10_000,
        command_burst: 1_000,
        ..BotSettings::default()
    }
}

/// The fixture's server (`web1`, Alice's) with six hours of reports every
/// five minutes up to now.
async fn with_history(backend: Backend) -> Option<Fixture> {
    let f = Fixture::new(backend).await?;
    let first = unix_now() - 6 * 3600;
    store_series(
        &f.storage,
        f.server.id,
        &mut Host::default(),
        times(first, 300, 72),
    )
    .await;
    Some(f)
}

async fn say(d: &Dispatcher, who: i64, text: &str) -> Vec<Output> {
    d.handle(&person(who), Input::Text(text.to_owned())).await
}

async fn press(d: &Dispatcher, who: i64, cb: Callback) -> Vec<Output> {
    d.handle(&person(who), Input::Button(cb.encode())).await
}

/// The PNG's pixel size, read from its header.
fn png_size(photo: &Photo) -> (u32, u32) {
    let reader = png::Decoder::new(std::io::Cursor::new(&photo.png))
        .read_info()
        .expect("a PNG");
    (reader.info().width, reader.info().height)
}

fn photos(outputs: &[Output]) -> Vec<&Photo> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Photo(p) | Output::EditPhoto(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn notice(outputs: &[Output]) -> Option<&str> {
    outputs.iter().find_map(|o| match o {
        Output::Notice(n) => Some(n.as_str()),
        _ => None,
    })
}

fn text(outputs: &[Output]) -> String {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(r) | Output::Edit(r) => Some(r.text()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn chart_command_answers_with_a_photo_and_buttons(backend: Backend) {
    let Some(f) = with_history(backend).await else {
        return;
    };
    let d = Dispatcher::new(f.storage.clone(), Arc::new(settings()));

    let out = say(&d, ALICE, "/chart web1 cpu 6h").await;
    let [Output::Photo(photo)] = out.as_slice() else {
        panic!("one new photo: {out:?}");
    };
    assert_eq!(png_size(photo), (1000, 500));
    assert_eq!(photo.caption, "<b>web1</b> · CPU · last 6 hours");
    let labels: Vec<Vec<&str>> = photo
        .keyboard
        .iter()
        .map(|row| row.iter().map(|b| b.label.as_str()).collect())
        .collect();
    assert_eq!(
        labels,
        [
            vec!["cpu", "mem", "disk", "net", "load", "all"],
            vec!["1h", "6h", "24h", "7d", "30d"]
        ]
    );

    // Without words: the only server, every figure, one day.
    let out = say(&d, ALICE, "/chart").await;
    let [Output::Photo(photo)] = out.as_slice() else {
        panic!("one new photo: {out:?}");
    };
    assert_eq!(png_size(photo), (1000, 1100));
    assert_eq!(photo.caption, "<b>web1</b> · Overview · last 24 hours");

    // A month of a server without reports says so.
    add_server(&f.storage, ALICE, "new1").await;
    let out = say(&d, ALICE, "/chart new1 30d").await;
    assert!(
        photos(&out)[0]
            .caption
            .ends_with("\nNo reports in this period.")
    );

    // Two servers and no name: pick one, keeping the words given.
    let out = say(&d, ALICE, "/chart net 7d").await;
    assert!(text(&out).contains("Which server?"), "{out:?}");
    let Output::Send(reply) = &out[0] else {
        panic!("{out:?}");
    };
    let picks: Vec<Callback> = reply.keyboard.iter().flatten().map(|b| b.action).collect();
    assert!(picks.contains(&Callback::OpenChart {
        server: f.server.id,
        metric: Metric::Net,
        period: Period::D7
    }));
    let out = press(&d, ALICE, picks[picks.len() - 1]).await;
    assert_eq!(photos(&out).len(), 1);
    assert!(matches!(out[0], Output::Photo(_)), "a new message: {out:?}");

    // Words the command does not know.
    for bad in [
        "/chart web1 cpu mem",
        "/chart web1 web2",
        "/chart web1 1h 2h 3h",
    ] {
        let out = say(&d, ALICE, bad).await;
        assert!(photos(&out).is_empty(), "{bad}");
        assert!(
            text(&out).starts_with("Usage: /chart [NAME]"),
            "{bad}: {out:?}"
        );
    }
    let out = say(&d, ALICE, "/chart nosuch").await;
    assert!(
        text(&out).contains("You have no server named nosuch"),
        "{out:?}"
    );
}

async fn chart_buttons_recheck_ownership(backend: Backend) {
    let Some(f) = with_history(backend).await else {
        return;
    };
    let d = Dispatcher::new(f.storage.clone(), Arc::new(settings()));
    let alices = f.server.id;

    // Alice's buttons work for Alice and replace the photo in place.
    let out = press(
        &d,
        ALICE,
        Callback::Chart {
            server: alices,
            metric: Metric::Net,
            period: Period::D7,
        },
    )
    .await;
    let [Output::EditPhoto(photo), Output::Notice(n)] = out.as_slice() else {
        panic!("an edited photo and a notice: {out:?}");
    };
    assert_eq!(n, "net · 7d");
    assert_eq!(png_size(photo), (1000, 500));
    assert_eq!(photo.caption, "<b>web1</b> · Network · last 7 days");

    // Bob has a server of his own, and presses buttons naming Alice's.
    let bobs = add_server(&f.storage, BOB, "web1").await.id;
    for cb in [
        Callback::Chart {
            server: alices,
            metric: Metric::Cpu,
            period: Period::H24,
        },
        Callback::OpenChart {
            server: alices,
            metric: Metric::All,
            period: Period::D30,
        },
    ] {
        let out = press(&d, BOB, cb).await;
        assert!(photos(&out).is_empty(), "Bob saw Alice's chart: {out:?}");
        assert_eq!(notice(&out), Some("That server no longer exists."));
    }
    // His own name finds his own (empty) server, never Alice's history.
    let out = say(&d, BOB, "/chart web1 cpu 6h").await;
    assert!(
        photos(&out)[0]
            .caption
            .contains("No reports in this period.")
    );
    let out = press(
        &d,
        BOB,
        Callback::Chart {
            server: bobs,
            metric: Metric::Cpu,
            period: Period::H6,
        },
    )
    .await;
    assert!(
        photos(&out)[0]
            .caption
            .contains("No reports in this period.")
    );

    // Once Alice deletes her server, its old buttons find nothing either.
    assert!(
        f.storage
            .delete_server(alices, ALICE)
            .await
            .expect("delete")
    );
    let out = press(
        &d,
        ALICE,
        Callback::Chart {
            server: alices,
            metric: Metric::Cpu,
            period: Period::H1,
        },
    )
    .await;
    assert!(photos(&out).is_empty());
    assert_eq!(notice(&out), Some("That server no longer exists."));
}

async fn stat_opens_the_chart(backend: Backend) {
    let Some(f) = with_history(backend).await else {
        return;
    };
    let d = Dispatcher::new(f.storage.clone(), Arc::new(settings()));
    let out = say(&d, ALICE, "/stat").await;
    let Output::Send(status) = &out[0] else {
        panic!("{out:?}");
    };
    let chart = status
        .keyboard
        .iter()
        .flatten()
        .find(|b| b.label == "Chart")
        .expect("a Chart button under /stat");
    // The status stays; the chart comes as a new photo message.
    let out = press(&d, ALICE, chart.action).await;
    let [Output::Photo(photo)] = out.as_slice() else {
        panic!("one new photo: {out:?}");
    };
    assert_eq!(png_size(photo), (1000, 1100));
    assert!(photo.caption.contains("last 24 hours"));
}

fn alice() -> TestUser {
    TestUser::new(ALICE, "Alice")
}

/// Presses the button labelled `label` and returns the message afterwards.
async fn click(double: &BotApiDouble, message: &SentMessage, label: &str) -> SentMessage {
    let press = double
        .click_button(&alice(), message.chat_id, message.message_id, label)
        .expect("button");
    double
        .wait_for_callback_answer(&press.query_id)
        .await
        .expect("the press is answered");
    double
        .message(message.chat_id, message.message_id)
        .expect("message")
}

async fn over_telegram_buttons_edit_the_same_photo(backend: Backend) {
    let Some(f) = with_history(backend).await else {
        return;
    };
    let double = BotApiDouble::start_with(Options {
        repeated_poll_min_timeout: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    let settings = BotSettings {
        telegram: TelegramSettings {
            api_url: double.api_url(),
            token: Secret::new(double.token()),
            poll_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(400),
            give_up_after: Duration::from_secs(30),
        },
        ..settings()
    };
    let stop = CancellationToken::new();
    let dispatcher = Dispatcher::new(f.storage.clone(), Arc::new(settings));
    let bot = serversan::bot::start_with(dispatcher, "test".into(), stop.clone()).expect("bot");

    // Two taps from /stat to a 30-day chart (Chart, then 30d); a third
    // switches it to cpu.
    double.send_text(&alice(), "/stat");
    let status = double
        .wait_for_message_count(ALICE, 1)
        .await
        .expect("status")[0]
        .clone();
    let before = click(&double, &status, "Chart").await;
    assert!(before.photo.is_none(), "the status stays a text message");
    let all = double
        .wait_for_message_count(ALICE, 2)
        .await
        .expect("chart");
    let chart = all[1].clone();
    let photo = chart.photo.as_ref().expect("a photo");
    assert_eq!((photo.width, photo.height), (1000, 1100));

    let month = click(&double, &chart, "30d").await;
    assert_eq!(month.message_id, chart.message_id);
    assert_eq!(month.text, "web1 · Overview · last 30 days");
    let cpu = click(&double, &month, "cpu").await;
    let photo = cpu.photo.as_ref().expect("a photo");
    assert_eq!((photo.width, photo.height), (1000, 500));
    assert_eq!(cpu.text, "web1 · CPU · last 30 days");
    assert_eq!(
        cpu.history.iter().map(|v| v.method).collect::<Vec<_>>(),
        ["sendPhoto", "editMessageMedia", "editMessageMedia"]
    );
    // Still two messages: every switch edited the chart in place.
    assert_eq!(double.messages(ALICE).len(), 2);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), bot.task)
        .await
        .expect("the bot stops")
        .expect("the bot task ends cleanly");
}
