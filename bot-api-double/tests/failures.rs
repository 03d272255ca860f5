//! Injected failures: flood control, server errors, dropped connections,
//! and the call log that lets a test prove the bot waited.

mod common;

use std::time::Duration;

use bot_api_double::{BotApiDouble, Failure};
use common::{call, ok, started_user};
use serde_json::{Value, json};

/// Sends "hi" to the started user; returns the status and the answer.
async fn send_hi(double: &BotApiDouble) -> (u16, Value) {
    call(
        double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "hi" }),
    )
    .await
}

#[tokio::test]
async fn too_many_requests_carries_retry_after_and_changes_nothing() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    double.fail_next(
        "sendmessage",
        2,
        Failure::TooManyRequests { retry_after: 3 },
    );
    for _ in 0..2 {
        let (status, answer) = send_hi(&double).await;
        assert_eq!(status, 429);
        assert_eq!(
            answer,
            json!({
                "ok": false,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": { "retry_after": 3 },
            })
        );
    }
    assert!(
        double.messages(1001).is_empty(),
        "a refused call changes nothing"
    );
    ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "hi" }),
    )
    .await;
    assert_eq!(double.messages(1001).len(), 1);
    let statuses: Vec<Option<u16>> = double
        .calls_to("sendMessage")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [Some(429), Some(429), Some(200)]);
}

#[tokio::test]
async fn the_call_log_shows_whether_a_client_waited_retry_after() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    double.fail_next(
        "sendMessage",
        1,
        Failure::TooManyRequests { retry_after: 1 },
    );
    let (status, answer) = send_hi(&double).await;
    assert_eq!(status, 429);
    let wait = answer["parameters"]["retry_after"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "hi" }),
    )
    .await;
    let calls = double.calls_to("sendMessage");
    assert!(calls[1].at.duration_since(calls[0].at) >= Duration::from_secs(1));
    assert_eq!(calls[1].params.get("text").map(String::as_str), Some("hi"));
}

#[tokio::test]
async fn server_errors_and_other_refusals_can_be_injected() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    double.fail_next("sendMessage", 1, Failure::ServerError);
    double.fail_next(
        "sendMessage",
        1,
        Failure::Error {
            code: 502,
            description: "Bad Gateway".to_owned(),
        },
    );
    let (status, answer) = send_hi(&double).await;
    assert_eq!(status, 500);
    assert_eq!(
        answer,
        json!({ "ok": false, "error_code": 500, "description": "Internal Server Error" })
    );
    let (status, answer) = send_hi(&double).await;
    assert_eq!(status, 502);
    assert_eq!(answer["description"], "Bad Gateway");
    // Other methods are unaffected.
    ok(&double, "getMe", json!({})).await;
    ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "hi" }),
    )
    .await;
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer_at_all() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    double.fail_next("sendMessage", 1, Failure::Drop);
    let url = format!("{}/bot{}/sendMessage", double.api_url(), double.token());
    let result = reqwest::Client::new()
        .post(&url)
        .json(&json!({ "chat_id": 1001, "text": "hi" }))
        .send()
        .await;
    let error = result.expect_err("the connection closes without a response");
    assert!(!error.is_status(), "{error:?}");
    assert!(double.messages(1001).is_empty());
    assert_eq!(double.calls_to("sendMessage")[0].status, None);
    ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "hi" }),
    )
    .await;
}
