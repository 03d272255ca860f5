//! Webhook mode: updates POSTed in order with the secret token header,
//! retried until the webhook accepts them.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bot_api_double::{BotApiDouble, Options, SECRET_TOKEN_HEADER, TestUser};
use common::{background_poll, call, ok, refused};
use serde_json::{Value, json};

/// Deliveries received: the secret token header and the update.
type Deliveries = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A webhook receiver that fails the first `failures` deliveries.
struct Receiver {
    url: String,
    received: Deliveries,
}

async fn receiver(failures: usize) -> Receiver {
    let received: Deliveries = Arc::default();
    let seen = received.clone();
    let remaining = Arc::new(Mutex::new(failures));
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let seen = seen.clone();
            let remaining = remaining.clone();
            async move {
                let mut remaining = remaining.lock().expect("lock");
                if *remaining > 0 {
                    *remaining -= 1;
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let secret = headers
                    .get(SECRET_TOKEN_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                seen.lock().expect("lock").push((secret, body.0));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, received }
}

#[tokio::test]
async fn updates_are_posted_in_order_with_the_secret_and_retried() {
    let double = BotApiDouble::start_with(Options {
        webhook_retry_delay: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    let hook = receiver(2).await;
    let (status, answer) = call(
        &double,
        "setWebhook",
        json!({ "url": hook.url, "secret_token": "s3cret_-token", "allowed_updates": ["message"] }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["description"], "Webhook was set");

    let alice = TestUser::new(1001, "Alice");
    let first = double.send_text(&alice, "one");
    let second = double.send_text(&alice, "two");
    double.wait_for_updates_consumed().await.expect("delivered");

    let received = hook.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 2, "each update once, after the failures");
    assert_eq!(received[0].0.as_deref(), Some("s3cret_-token"));
    assert_eq!(received[0].1["update_id"], json!(first.update_id));
    assert_eq!(received[0].1["message"]["text"], "one");
    assert_eq!(received[1].1["update_id"], json!(second.update_id));

    let info = ok(&double, "getWebhookInfo", json!({})).await;
    assert_eq!(info["url"], hook.url);
    assert_eq!(info["pending_update_count"], 0);
    assert_eq!(info["allowed_updates"], json!(["message"]));
    assert_eq!(
        info["last_error_message"],
        "Wrong response from the webhook: 500 Internal Server Error"
    );
    assert_eq!(double.webhook_url(), Some(hook.url.clone()));
}

#[tokio::test]
async fn set_webhook_checks_its_arguments_and_its_pace() {
    let double = BotApiDouble::start_with(Options {
        set_webhook_interval: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    refused(
        &double,
        "setWebhook",
        json!({ "url": "https://example.com/hook", "secret_token": "has space" }),
        400,
        "Bad Request: secret token contains unallowed characters",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    refused(
        &double,
        "setWebhook",
        json!({ "url": "ftp://example.com/hook" }),
        400,
        "Bad Request: invalid webhook URL specified",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    ok(
        &double,
        "setWebhook",
        json!({ "url": "http://127.0.0.1:9/hook" }),
    )
    .await;
    let (status, answer) = call(
        &double,
        "setWebhook",
        json!({ "url": "http://127.0.0.1:9/hook" }),
    )
    .await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["parameters"]["retry_after"], 1);

    let (_, answer) = call(
        &double,
        "deleteWebhook",
        json!({ "drop_pending_updates": true }),
    )
    .await;
    assert_eq!(answer["description"], "Webhook was deleted");
    let (_, answer) = call(&double, "deleteWebhook", json!({})).await;
    assert_eq!(answer["description"], "Webhook is already deleted");
    let info = ok(&double, "getWebhookInfo", json!({})).await;
    assert_eq!(
        info,
        json!({ "url": "", "has_custom_certificate": false, "pending_update_count": 0 })
    );
}

#[tokio::test]
async fn setting_a_webhook_ends_a_waiting_long_poll() {
    let double = BotApiDouble::start().await;
    let poll = background_poll(&double, json!({ "timeout": 20 })).await;
    ok(
        &double,
        "setWebhook",
        json!({ "url": "http://127.0.0.1:9/hook" }),
    )
    .await;
    let (status, answer, _) = poll.await.expect("the poll ends");
    assert_eq!(status, 409);
    assert_eq!(
        answer["description"],
        "Conflict: terminated by setWebhook request"
    );
}
