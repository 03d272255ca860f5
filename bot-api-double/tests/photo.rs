//! sendPhoto: multipart uploads, the PNG check and captions.

mod common;

use bot_api_double::BotApiDouble;
use common::{png, started_user};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

async fn upload(double: &BotApiDouble, form: Form) -> (u16, Value) {
    multipart(double, "sendPhoto", form).await
}

/// Calls `method` with a multipart form.
async fn multipart(double: &BotApiDouble, method: &str, form: Form) -> (u16, Value) {
    let url = format!("{}/bot{}/{method}", double.api_url(), double.token());
    let response = reqwest::Client::new()
        .post(url)
        .multipart(form)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

fn photo_part(bytes: Vec<u8>) -> Part {
    Part::bytes(bytes).file_name("chart.png")
}

#[tokio::test]
async fn a_png_upload_is_accepted_and_recorded_byte_for_byte() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    let image = png(800, 400);
    let form = Form::new()
        .text("chat_id", "1001")
        .text("caption", "<b>cpu</b> · 24h")
        .text("parse_mode", "HTML")
        .text(
            "reply_markup",
            json!({ "inline_keyboard": [[{ "text": "6h", "callback_data": "chart:6h" }]] })
                .to_string(),
        )
        .part("photo", photo_part(image.clone()));
    let (status, answer) = upload(&double, form).await;
    assert_eq!(status, 200, "{answer}");
    let message = &answer["result"];
    assert_eq!(message["photo"][0]["width"], 800);
    assert_eq!(message["photo"][0]["height"], 400);
    assert_eq!(message["caption"], "cpu · 24h");
    assert_eq!(message["caption_entities"][0]["type"], "bold");
    assert_eq!(
        message["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        "chart:6h"
    );

    let stored = &double.photos(1001)[0];
    let photo = stored.photo.as_ref().expect("a photo");
    assert_eq!(&photo.bytes[..], &image[..]);
    assert_eq!(stored.text, "cpu · 24h");
    assert_eq!(double.calls_to("sendPhoto")[0].files, ["photo"]);

    // attach:// names another part, as teloxide sends it.
    let form = Form::new()
        .text("chat_id", "1001")
        .text("photo", "attach://f1")
        .part("f1", photo_part(png(10, 10)));
    let (status, _) = upload(&double, form).await;
    assert_eq!(status, 200);

    // An earlier upload can be resent by its file_id.
    let file_id = photo.file_id.clone();
    let (status, answer) = common::call(
        &double,
        "sendPhoto",
        json!({ "chat_id": 1001, "photo": file_id }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(double.photos(1001).len(), 3);
}

#[tokio::test]
async fn what_is_not_a_valid_png_is_refused() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    let refused = |bytes: Vec<u8>| {
        Form::new()
            .text("chat_id", "1001")
            .part("photo", photo_part(bytes))
    };
    let mut truncated = png(50, 50);
    truncated.truncate(truncated.len() / 2);
    let mut corrupted = png(50, 50);
    let last = corrupted.len() - 20;
    corrupted[last] ^= 0xff;
    let cases = [
        (
            b"GIF89a not a png".to_vec(),
            "Bad Request: IMAGE_PROCESS_FAILED",
        ),
        (
            vec![0xff, 0xd8, 0xff, 0xe0, 0, 16],
            "Bad Request: IMAGE_PROCESS_FAILED",
        ),
        (truncated, "Bad Request: IMAGE_PROCESS_FAILED"),
        (corrupted, "Bad Request: IMAGE_PROCESS_FAILED"),
        (png(1, 30), "Bad Request: PHOTO_INVALID_DIMENSIONS"),
    ];
    for (bytes, description) in cases {
        let (status, answer) = upload(&double, refused(bytes)).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["description"], description);
    }

    let (_, answer) = upload(&double, Form::new().text("chat_id", "1001")).await;
    assert_eq!(
        answer["description"],
        "Bad Request: there is no photo in the request"
    );
    let (_, answer) = upload(
        &double,
        Form::new()
            .text("chat_id", "1001")
            .text("photo", "attach://missing"),
    )
    .await;
    assert_eq!(
        answer["description"],
        "Bad Request: there is no photo in the request"
    );
    let (_, answer) = common::call(
        &double,
        "sendPhoto",
        json!({ "chat_id": 1001, "photo": "AgACnope" }),
    )
    .await;
    assert_eq!(
        answer["description"],
        "Bad Request: wrong file identifier/HTTP URL specified"
    );

    let long_caption = Form::new()
        .text("chat_id", "1001")
        .text("caption", "c".repeat(1025))
        .part("photo", photo_part(png(10, 10)));
    let (_, answer) = upload(&double, long_caption).await;
    assert_eq!(
        answer["description"],
        "Bad Request: message caption is too long"
    );
    let full_caption = Form::new()
        .text("chat_id", "1001")
        .text("caption", "c".repeat(1024))
        .part("photo", photo_part(png(10, 10)));
    let (status, _) = upload(&double, full_caption).await;
    assert_eq!(status, 200);

    let unknown_chat = Form::new()
        .text("chat_id", "777")
        .part("photo", photo_part(png(10, 10)));
    let (_, answer) = upload(&double, unknown_chat).await;
    assert_eq!(answer["description"], "Bad Request: chat not found");
    assert_eq!(
        double.photos(1001).len(),
        1,
        "only the valid upload was stored"
    );
}

#[tokio::test]
async fn a_chart_is_replaced_in_place_with_edit_message_media() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    let keyboard = json!({ "inline_keyboard": [[{ "text": "6h", "callback_data": "c:6h" }]] });
    let first = Form::new()
        .text("chat_id", "1001")
        .text("caption", "cpu 1h")
        .text("reply_markup", keyboard.to_string())
        .part("photo", photo_part(png(800, 400)));
    let (_, sent) = upload(&double, first).await;
    let message_id = sent["result"]["message_id"].as_i64().unwrap_or(0);

    // The multipart form the bot's client sends.
    let media = json!({ "type": "photo", "media": "attach://chart", "caption": "<b>cpu</b> 6h", "parse_mode": "HTML" });
    let replacement = png(640, 320);
    let form = Form::new()
        .text("chat_id", "1001")
        .text("message_id", message_id.to_string())
        .text("media", media.to_string())
        .text("reply_markup", keyboard.to_string())
        .part("chart", photo_part(replacement.clone()));
    let (_, answer) = multipart(&double, "editMessageMedia", form).await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["photo"][0]["width"], 640);
    assert_eq!(answer["result"]["caption"], "cpu 6h");
    assert!(answer["result"]["edit_date"].is_i64());

    let message = double.message(1001, message_id).expect("recorded");
    assert_eq!(
        message.photo.as_ref().map(|p| p.bytes.to_vec()),
        Some(replacement)
    );
    assert_eq!(
        message.history[0].photo.as_ref().map(|p| p.width),
        Some(800)
    );
    assert_eq!(message.history[1].method, "editMessageMedia");

    // The same file, caption and keyboard again is no change.
    let same_file = message.photo.as_ref().map(|p| p.file_id.clone());
    let same = json!({
        "chat_id": 1001,
        "message_id": message_id,
        "media": { "type": "photo", "media": same_file, "caption": "<b>cpu</b> 6h", "parse_mode": "HTML" },
        "reply_markup": keyboard,
    });
    let (status, answer) = common::call(&double, "editMessageMedia", same).await;
    assert_eq!(status, 400);
    assert!(
        answer["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Bad Request: message is not modified")),
        "{answer}"
    );

    let caption = common::ok(
        &double,
        "editMessageCaption",
        json!({ "chat_id": 1001, "message_id": message_id, "caption": "cpu <i>6h</i>", "parse_mode": "HTML" }),
    )
    .await;
    assert_eq!(caption["caption"], "cpu 6h");
    assert_eq!(caption["caption_entities"][0]["type"], "italic");
    assert!(
        caption.get("reply_markup").is_none(),
        "omitting the keyboard removes it"
    );

    common::refused(
        &double,
        "editMessageText",
        json!({ "chat_id": 1001, "message_id": message_id, "text": "x" }),
        400,
        "Bad Request: there is no text in the message to edit",
    )
    .await;
    let text = common::ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "plain" }),
    )
    .await;
    let text_id = text["message_id"].clone();
    common::refused(
        &double,
        "editMessageMedia",
        json!({ "chat_id": 1001, "message_id": text_id, "media": { "type": "photo", "media": same_file } }),
        400,
        "Bad Request: there is no media in the message to edit",
    )
    .await;
    common::refused(
        &double,
        "editMessageCaption",
        json!({ "chat_id": 1001, "message_id": text_id, "caption": "x" }),
        400,
        "Bad Request: there is no caption in the message to edit",
    )
    .await;
    common::refused(
        &double,
        "editMessageMedia",
        json!({ "chat_id": 1001, "message_id": message_id, "media": "{" }),
        400,
        "Bad Request: can't parse InputMedia JSON object",
    )
    .await;
}
