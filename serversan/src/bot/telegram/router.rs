//! One worker task per chat: each chat's updates are handled in order, and
//! a slow chat (a reply waiting out a 429) never holds up the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::super::ChatHandler;
use super::client::TelegramClient;
use super::updates::Incoming;

/// Updates one chat may have waiting; more are dropped (a flood), which
/// costs nothing and loses nothing a person meant to send.
const QUEUE_PER_CHAT: usize = 64;

/// A chat's worker ends after this long without updates.
const IDLE: Duration = Duration::from_secs(60);

/// Routes updates to per-chat workers that run the handler and deliver
/// its outputs through the client.
pub struct ChatRouter<H: ChatHandler> {
    client: TelegramClient,
    handler: Arc<H>,
    workers: Mutex<HashMap<i64, mpsc::Sender<Incoming>>>,
}

impl<H: ChatHandler> ChatRouter<H> {
    pub fn new(client: TelegramClient, handler: Arc<H>) -> Arc<Self> {
        Arc::new(Self {
            client,
            handler,
            workers: Mutex::new(HashMap::new()),
        })
    }

    pub fn client(&self) -> &TelegramClient {
        &self.client
    }

    /// Queues an update for its chat's worker, starting one if needed.
    pub fn dispatch(self: &Arc<Self>, item: Incoming) {
        let chat = item.chat;
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let item = match workers.get(&chat) {
            Some(tx) => match tx.try_send(item) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(chat, "chat is flooding; dropping an update");
                    return;
                }
                // The worker retired (or died): start a new one.
                Err(mpsc::error::TrySendError::Closed(item)) => item,
            },
            None => item,
        };
        let (tx, rx) = mpsc::channel(QUEUE_PER_CHAT);
        if tx.try_send(item).is_err() {
            return;
        }
        workers.insert(chat, tx);
        let this = Arc::clone(self);
        tokio::spawn(async move { this.work(chat, rx).await });
    }

    async fn work(self: Arc<Self>, chat: i64, mut rx: mpsc::Receiver<Incoming>) {
        loop {
            let item = match tokio::time::timeout(IDLE, rx.recv()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
                    // Retire only if nothing arrived meanwhile (checked
                    // under the lock dispatch takes).
                    match rx.try_recv() {
                        Ok(item) => {
                            drop(workers);
                            item
                        }
                        Err(_) => {
                            workers.remove(&chat);
                            break;
                        }
                    }
                }
            };
            self.handle(item).await;
        }
    }

    async fn handle(&self, item: Incoming) {
        let outputs = self.handler.handle(&item.from, item.input.clone()).await;
        if outputs.is_empty() && item.callback_id.is_none() {
            return;
        }
        if let Err(e) = self
            .client
            .deliver(item.chat, item.origin, item.callback_id.as_deref(), outputs)
            .await
            && e.user_unreachable()
        {
            self.handler.unreachable(item.from.user_id).await;
        }
    }

    /// How many chats have a worker now (for tests and metrics).
    pub fn active_chats(&self) -> usize {
        self.workers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
