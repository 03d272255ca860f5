//! The HTTP face: paths, tokens, method names, parameter encodings and
//! Telegram's envelope.

mod common;

use bot_api_double::{BotApiDouble, Options};
use common::{ok, started_user};
use serde_json::{Value, json};

async fn raw(url: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn wrong_tokens_unknown_methods_and_paths_are_refused_like_telegram() {
    let double = BotApiDouble::start().await;
    let base = double.api_url();
    let (status, body) = raw(&format!("{base}/bot123:nottherighttoken/getMe")).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({ "ok": false, "error_code": 401, "description": "Unauthorized" })
    );

    let (status, body) = raw(&format!("{base}/bot{}/sendTelepathy", double.token())).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({ "ok": false, "error_code": 404, "description": "Not Found" })
    );

    for path in ["/", "/getMe", "/bot", &format!("/bot{}/", double.token())] {
        let (status, body) = raw(&format!("{base}{path}")).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["description"], "Not Found");
    }
    assert!(double.calls().iter().all(|c| c.method == "sendTelepathy"));
}

#[tokio::test]
async fn get_me_describes_the_bot_and_method_names_are_case_insensitive() {
    let double = BotApiDouble::start_with(Options {
        bot_id: 555,
        bot_username: "monitor_bot".to_owned(),
        token: Some("555:fixed-token_for-tests".to_owned()),
        ..Options::default()
    })
    .await;
    assert_eq!(double.token(), "555:fixed-token_for-tests");
    let me = ok(&double, "GETME", json!({})).await;
    assert_eq!(
        me,
        json!({
            "id": 555,
            "is_bot": true,
            "first_name": "ServerSan",
            "username": "monitor_bot",
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
            "can_connect_to_business": false,
            "has_main_web_app": false,
        })
    );
    // A generated token has Telegram's shape.
    let other = BotApiDouble::start().await;
    let (id, secret) = other.token().split_once(':').expect("id:secret");
    assert_eq!(id, "7000000001");
    assert_eq!(secret.len(), 35);
}

#[tokio::test]
async fn parameters_may_come_as_query_string_form_or_json() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    let base = format!("{}/bot{}", double.api_url(), double.token());

    let query: Value = reqwest::get(format!("{base}/sendMessage?chat_id=1001&text=via%20query"))
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(query["result"]["text"], "via query");

    let form: Value = reqwest::Client::new()
        .post(format!("{base}/sendMessage"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("chat_id=1001&text=via+form&reply_markup=%7B%22inline_keyboard%22%3A%5B%5B%7B%22text%22%3A%22A%22%2C%22callback_data%22%3A%22a%22%7D%5D%5D%7D")
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(form["result"]["text"], "via form");
    assert_eq!(
        form["result"]["reply_markup"]["inline_keyboard"][0][0]["text"],
        "A"
    );

    // JSON numbers, booleans and nested objects all arrive as the Bot API reads them.
    let json_body = ok(
        &double,
        "sendMessage",
        json!({ "chat_id": "1001", "text": "via json", "disable_notification": true }),
    )
    .await;
    assert_eq!(json_body["text"], "via json");
    let call = double.calls_to("sendMessage").pop().expect("logged");
    assert_eq!(
        call.params.get("disable_notification").map(String::as_str),
        Some("true")
    );

    let broken = reqwest::Client::new()
        .post(format!("{base}/sendMessage"))
        .header("content-type", "application/json")
        .body("{\"chat_id\": ")
        .send()
        .await
        .expect("answered");
    assert_eq!(broken.status().as_u16(), 400);
}

#[tokio::test]
async fn dropping_the_double_stops_its_server() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let double = BotApiDouble::start().await;
    shareable(&double);
    let url = format!("{}/bot{}/getMe", double.api_url(), double.token());
    assert!(reqwest::get(&url).await.is_ok());
    drop(double);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let after = reqwest::Client::new()
        .get(&url)
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "still answering after drop: {after:?}");
}
