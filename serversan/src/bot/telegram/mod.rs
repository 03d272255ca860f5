//! The Telegram front end: updates in (long polling or webhook), Bot API
//! calls out, with Telegram's error rules applied.

mod client;
mod poll;
mod router;
mod updates;
mod webhook;

pub use client::{SendError, TelegramClient};
pub use poll::{POLLER_LEASE, poll, poll_under_lease};
pub use router::ChatRouter;
pub use updates::{Incoming, incoming, update_id};
pub use webhook::{SECRET_HEADER, webhook_path, webhook_routes};
