//! A local test double of the Telegram Bot API, over real HTTP.
//!
//! The bot under test gets [`BotApiDouble::api_url`] as its Bot API base
//! URL (teloxide: `Bot::new(token).set_api_url(url)`) and the double's
//! [`token`](BotApiDouble::token); it cannot tell it is not talking to
//! Telegram. The double answers in Telegram's envelope and refuses what
//! Telegram refuses, with Telegram's words, so a bot that passes its tests
//! here behaves on Telegram.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bot_api_double::{BotApiDouble, TestUser};
//!
//! let double = BotApiDouble::start().await;
//! // start the bot with double.api_url() and double.token() …
//! let alice = TestUser::new(1001, "Alice").with_username("alice");
//! double.send_text(&alice, "/start");
//! let reply = double.wait_for_message(alice.id, |m| m.text.contains("Welcome")).await?;
//! let press = double.click_button(&alice, alice.id, reply.message_id, "Refresh")?;
//! double.wait_for_callback_answer(&press.query_id).await?;
//! # Ok(()) }
//! ```
//!
//! # Methods served
//! `getMe`, `getUpdates` (long polling: `offset` confirms, `timeout` up to
//! 50 s, `allowed_updates`; a newer long poll ends the waiting one with 409
//! "Conflict: terminated by other getUpdates request…", as Telegram does),
//! `sendMessage`, `editMessageText`, `editMessageCaption`,
//! `editMessageReplyMarkup`, `deleteMessage`, `answerCallbackQuery`,
//! `sendPhoto` and `editMessageMedia` (multipart, PNG photos only),
//! `sendChatAction`, `setMyCommands`/`getMyCommands`/
//! `deleteMyCommands`, `setWebhook`/`deleteWebhook`/`getWebhookInfo`
//! (updates are then POSTed to the webhook with the
//! `X-Telegram-Bot-Api-Secret-Token` header). Parameters may come as query
//! string, JSON, url-encoded or multipart form. A wrong token gets 401
//! "Unauthorized"; any other method gets 404 "Not Found".
//!
//! # Rules enforced
//! Text 1–4096 and captions up to 1024 UTF-16 code units after entity
//! parsing and trimming; Telegram's HTML parser (supported tags, entities,
//! nesting, with its error messages and byte offsets); inline keyboards
//! (structure, `callback_data` 1–64 bytes, button URLs; buttons without text
//! are dropped as Telegram drops them); "message is not modified"; messages
//! only to chats that talked to the bot; users who blocked the bot (403);
//! callback queries answered once; command names and descriptions.
//!
//! Deliberate differences from api.telegram.org: an `&` that starts no HTML
//! entity is refused by default (Telegram shows it literally; see
//! [`BareAmpersand`]); webhooks may be plain `http://` on any port (as with
//! a local Bot API server); only the HTML parse mode and PNG photos are
//! implemented; no automatic flood control (inject it with
//! [`BotApiDouble::fail_next`]).
//!
//! # Test controls
//! - inject: [`send_text`](BotApiDouble::send_text),
//!   [`send_group_text`](BotApiDouble::send_group_text),
//!   [`press_button`](BotApiDouble::press_button) (any data, to forge),
//!   [`click_button`](BotApiDouble::click_button) (by label),
//!   [`user_blocks_bot`](BotApiDouble::user_blocks_bot);
//! - fail: [`fail_next`](BotApiDouble::fail_next) with a [`Failure`]
//!   (429 with retry_after, 500, a dropped connection, any error);
//! - inspect: [`messages`](BotApiDouble::messages) (current state, parsed
//!   text, entities, buttons, edit history), [`photos`](BotApiDouble::photos),
//!   [`callback_answers`](BotApiDouble::callback_answers),
//!   [`commands`](BotApiDouble::commands), [`calls`](BotApiDouble::calls)
//!   (every request with its arrival time, to prove the bot waited);
//! - wait (bounded by [`Options::wait_timeout`]):
//!   [`wait_for_message`](BotApiDouble::wait_for_message),
//!   [`wait_for_callback_answer`](BotApiDouble::wait_for_callback_answer),
//!   [`wait_for_calls`](BotApiDouble::wait_for_calls),
//!   [`wait_until_idle`](BotApiDouble::wait_until_idle).
//!
//! Everything is thread-safe; dropping the double stops its server.

mod args;
mod double;
mod entity;
mod html;
mod http;
mod markup;
mod methods;
mod model;
mod options;
mod png_check;
mod polling;
mod reply;
mod text;
mod webhook;
mod world;

pub use double::{BotApiDouble, ControlError, WaitError};
pub use entity::{Entity, EntityKind, utf16_len};
pub use html::BareAmpersand;
pub use markup::{ButtonAction, InlineButton, MAX_CALLBACK_DATA_BYTES, ReplyMarkup};
pub use model::{
    BotCommand, CallRecord, CallbackAnswer, CallbackPress, Failure, Injected, MessageVersion,
    Photo, SentMessage, TestGroup, TestUser,
};
pub use options::Options;
pub use text::{MAX_CAPTION_UTF16, MAX_TEXT_UTF16};
pub use webhook::SECRET_TOKEN_HEADER;
