//! Drives the double with teloxide itself: its real requests (JSON and
//! multipart) must be understood, and its parser must accept every answer.

mod common;

use std::time::Duration;

use bot_api_double::{BotApiDouble, EntityKind, Failure, TestUser};
use teloxide::ApiError;
use teloxide::RequestError;
use teloxide::payloads::setters::*;
use teloxide::prelude::*;
use teloxide::types::{
    BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageEntityKind,
    ParseMode, UpdateKind,
};

fn bot_for(double: &BotApiDouble) -> Bot {
    let url = reqwest::Url::parse(&double.api_url()).expect("the double's URL parses");
    Bot::new(double.token()).set_api_url(url)
}

fn keyboard() -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback("Refresh", "refresh:1"),
        InlineKeyboardButton::callback("Delete", "delete:1"),
    ]])
}

#[tokio::test]
async fn teloxide_requests_are_understood_and_answers_parse() {
    let double = BotApiDouble::start().await;
    let bot = bot_for(&double);

    let me = bot.get_me().await.expect("getMe");
    assert_eq!(me.username(), double.options().bot_username);
    assert!(me.user.is_bot);

    // An update arrives through getUpdates.
    let alice = TestUser::new(1001, "Alice").with_username("alice");
    double.send_text(&alice, "/start");
    let updates = bot.get_updates().timeout(5).await.expect("getUpdates");
    assert_eq!(updates.len(), 1);
    let UpdateKind::Message(start) = &updates[0].kind else {
        panic!("expected a message, got {:?}", updates[0].kind);
    };
    assert_eq!(start.text(), Some("/start"));
    assert_eq!(start.from.as_ref().map(|u| u.id.0), Some(1001));
    assert_eq!(start.chat.id, ChatId(1001));
    let offset = updates[0].id.0 as i32 + 1;

    // HTML with an inline keyboard.
    let sent = bot
        .send_message(
            ChatId(1001),
            "<b>Status</b> of <code>web-1</code> &lt;ok&gt;",
        )
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard())
        .await
        .expect("sendMessage");
    assert_eq!(sent.text(), Some("Status of web-1 <ok>"));
    let entities = sent.entities().expect("entities");
    assert_eq!(entities[0].kind, MessageEntityKind::Bold);
    assert_eq!((entities[0].offset, entities[0].length), (0, 6));
    assert_eq!(entities[1].kind, MessageEntityKind::Code);
    assert_eq!(sent.reply_markup(), Some(&keyboard()));
    let stored = double.last_message(1001).expect("recorded");
    assert_eq!(stored.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(stored.entities[0].kind, EntityKind::Bold);
    assert_eq!(
        stored.button("Refresh").and_then(|b| b.callback_data()),
        Some("refresh:1")
    );

    // A button press arrives as a callback query and is answered.
    let press = double
        .click_button(&alice, 1001, sent.id.0.into(), "Refresh")
        .expect("button exists");
    let updates = bot
        .get_updates()
        .offset(offset)
        .timeout(5)
        .await
        .expect("getUpdates");
    assert_eq!(updates.len(), 1, "the /start update was confirmed");
    let UpdateKind::CallbackQuery(query) = &updates[0].kind else {
        panic!("expected a callback query, got {:?}", updates[0].kind);
    };
    assert_eq!(query.data.as_deref(), Some("refresh:1"));
    assert_eq!(query.id.0, press.query_id);
    bot.answer_callback_query(query.id.clone())
        .text("Refreshed")
        .await
        .expect("answerCallbackQuery");
    assert_eq!(
        double.callback_answer(&press.query_id).and_then(|a| a.text),
        Some("Refreshed".to_owned())
    );

    // Editing in place; an identical edit is refused the way teloxide knows.
    bot.edit_message_text(ChatId(1001), sent.id, "<b>Status</b> refreshed")
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard())
        .await
        .expect("editMessageText");
    let same = bot
        .edit_message_text(ChatId(1001), sent.id, "<b>Status</b> refreshed")
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard())
        .await;
    assert!(
        matches!(same, Err(RequestError::Api(ApiError::MessageNotModified))),
        "{same:?}"
    );

    // Multipart photo upload.
    let photo = bot
        .send_photo(
            ChatId(1001),
            InputFile::memory(common::png(80, 40)).file_name("chart.png"),
        )
        .caption("<i>cpu</i> 24h")
        .parse_mode(ParseMode::Html)
        .await
        .expect("sendPhoto");
    let sizes = photo.photo().expect("a photo");
    assert_eq!((sizes[0].width, sizes[0].height), (80, 40));
    assert_eq!(photo.caption(), Some("cpu 24h"));
    assert_eq!(
        double.photos(1001)[0].photo.as_ref().map(|p| p.width),
        Some(80)
    );

    bot.set_my_commands([BotCommand::new("stat", "Show a server's status")])
        .await
        .expect("setMyCommands");
    assert_eq!(double.commands()[0].command, "stat");

    bot.send_chat_action(ChatId(1001), teloxide::types::ChatAction::Typing)
        .await
        .expect("sendChatAction");
    bot.delete_message(ChatId(1001), sent.id)
        .await
        .expect("deleteMessage");
}

#[tokio::test]
async fn teloxide_maps_the_doubles_refusals_to_its_error_kinds() {
    let double = BotApiDouble::start().await;
    let bot = bot_for(&double);

    let unknown = bot.send_message(ChatId(42), "hi").await;
    assert!(
        matches!(unknown, Err(RequestError::Api(ApiError::ChatNotFound))),
        "{unknown:?}"
    );

    let alice = common::started_user(&double, 1001);
    double.user_blocks_bot(alice.id);
    let blocked = bot.send_message(ChatId(1001), "hi").await;
    assert!(
        matches!(blocked, Err(RequestError::Api(ApiError::BotBlocked))),
        "{blocked:?}"
    );
    double.user_unblocks_bot(alice.id);

    let bad_html = bot
        .send_message(ChatId(1001), "<p>hi</p>")
        .parse_mode(ParseMode::Html)
        .await;
    assert!(
        matches!(&bad_html, Err(RequestError::Api(ApiError::CantParseEntities(d)))
            if d == "Bad Request: can't parse entities: Unsupported start tag \"p\" at byte offset 0"),
        "{bad_html:?}"
    );

    let long_data = bot
        .send_message(ChatId(1001), "hi")
        .reply_markup(InlineKeyboardMarkup::new([[
            InlineKeyboardButton::callback("x", "d".repeat(65)),
        ]]))
        .await;
    assert!(
        matches!(
            long_data,
            Err(RequestError::Api(ApiError::ButtonDataInvalid))
        ),
        "{long_data:?}"
    );

    double.fail_next(
        "sendMessage",
        1,
        Failure::TooManyRequests { retry_after: 7 },
    );
    let flood = bot.send_message(ChatId(1001), "hi").await;
    assert!(
        matches!(flood, Err(RequestError::RetryAfter(s)) if s.seconds() == 7),
        "{flood:?}"
    );

    let wrong_token = Bot::new("123:wrong")
        .set_api_url(reqwest::Url::parse(&double.api_url()).expect("URL"))
        .get_me()
        .await;
    assert!(
        matches!(wrong_token, Err(RequestError::Api(ApiError::InvalidToken))),
        "{wrong_token:?}"
    );
}

#[tokio::test]
async fn a_teloxide_dispatcher_polls_and_replies() {
    let double = BotApiDouble::start().await;
    let bot = bot_for(&double);
    let handler = Update::filter_message().endpoint(|bot: Bot, msg: Message| async move {
        let text = msg.text().unwrap_or_default().to_owned();
        bot.send_message(msg.chat.id, format!("echo: {text}"))
            .await?;
        respond(())
    });
    let mut dispatcher = Dispatcher::builder(bot, handler).build();
    let running = tokio::spawn(async move { dispatcher.dispatch().await });

    let alice = TestUser::new(1001, "Alice");
    double.send_text(&alice, "first");
    double.send_text(&alice, "second");
    let replies = double
        .wait_for_message_count(1001, 2)
        .await
        .expect("two replies");
    assert_eq!(replies[0].text, "echo: first");
    assert_eq!(replies[1].text, "echo: second");
    double
        .wait_for_updates_consumed()
        .await
        .expect("teloxide confirms what it fetched");
    double
        .wait_until_idle(Duration::from_millis(100))
        .await
        .expect("the bot settles");
    assert!(
        double
            .calls_to("getUpdates")
            .iter()
            .all(|c| c.status == Some(200) || c.status.is_none()),
        "no polling errors: {:?}",
        double.calls_to("getUpdates")
    );
    running.abort();
}
