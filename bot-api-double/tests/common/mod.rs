//! Talking to the double the way any HTTP client would.
#![allow(dead_code)]

use bot_api_double::{BotApiDouble, TestUser};
use serde_json::Value;

/// Calls `method` with a JSON body; returns the HTTP status and the body.
pub async fn call(double: &BotApiDouble, method: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/bot{}/{method}", double.api_url(), double.token());
    post_json(url, body).await
}

/// POSTs `body` as JSON; returns the HTTP status and the JSON answer.
async fn post_json(url: String, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("the double answers");
    let status = response.status().as_u16();
    let body = response.json().await.expect("the answer is JSON");
    (status, body)
}

/// Calls `method` and expects success; returns `result`.
pub async fn ok(double: &BotApiDouble, method: &str, body: Value) -> Value {
    let (status, answer) = call(double, method, body).await;
    assert_eq!(status, 200, "{method} failed: {answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].clone()
}

/// Calls `method` and expects the refusal `code` with `description`.
pub async fn refused(
    double: &BotApiDouble,
    method: &str,
    body: Value,
    code: u16,
    description: &str,
) {
    let (status, answer) = call(double, method, body).await;
    assert_eq!(status, code, "{method}: {answer}");
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error_code"], code, "{answer}");
    assert_eq!(answer["description"], description, "{answer}");
}

/// A user who has started the bot (their chat is known).
pub fn started_user(double: &BotApiDouble, id: i64) -> TestUser {
    let user = TestUser::new(id, "Alice").with_username("alice");
    double.send_text(&user, "/start");
    user
}

/// A valid PNG of the given size.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("PNG header");
        let pixels = vec![0x7f; (width * height * 3) as usize];
        writer.write_image_data(&pixels).expect("PNG data");
    }
    out
}

/// What a long poll made in the background got: status, body, duration.
pub type PollOutcome = (u16, Value, std::time::Duration);

/// Starts getUpdates with `body` in the background and returns once the
/// double has received it (so a test can race a second request against it).
pub async fn background_poll(
    double: &BotApiDouble,
    body: Value,
) -> tokio::task::JoinHandle<PollOutcome> {
    let before = double.calls_to("getUpdates").len();
    let url = format!("{}/bot{}/getUpdates", double.api_url(), double.token());
    let poll = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let (status, body) = post_json(url, body).await;
        (status, body, started.elapsed())
    });
    while double.calls_to("getUpdates").len() == before {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The request is logged on arrival; give it a moment to start waiting.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    poll
}
