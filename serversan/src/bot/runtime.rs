//! Starting the bot inside `serve`: one task that introduces the bot to
//! Telegram (getMe, setMyCommands) and then receives updates by long
//! polling (under the poller lease) or by webhook.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::cmd;
use super::dispatch::Dispatcher;
use super::settings::{BotSettings, WebhookSettings};
use super::telegram::{
    ChatRouter, SendError, TelegramClient, poll_under_lease, webhook_path, webhook_routes,
};
use crate::storage::Storage;

/// Why the bot cannot start. The server runs on without it only if the
/// caller decides so.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("Telegram client: {0}")]
    Client(String),
    #[error(
        "webhook: the secret and the path must each be 1 to 256 of A-Z a-z 0-9 _ - \
         (SERVERSAN_WEBHOOK_SECRET, SERVERSAN_WEBHOOK_PATH)"
    )]
    Webhook,
}

/// A started bot.
pub struct RunningBot {
    /// Ends after `shutdown` is cancelled (or when Telegram refuses the
    /// token, with an error in the log).
    pub task: JoinHandle<()>,
    /// In webhook mode, the routes to merge into the HTTP server.
    pub webhook: Option<axum::Router>,
    /// The handler, for other front ends in the same process.
    pub dispatcher: Arc<Dispatcher>,
}

/// Starts the bot. Returns at once; Telegram being unreachable only delays
/// the task, which retries with backoff. `holder` names this instance for
/// the poller lease (unique per process: [`crate::web::instance_id`]).
pub fn start(
    storage: Storage,
    settings: BotSettings,
    holder: String,
    shutdown: CancellationToken,
) -> Result<RunningBot, BotError> {
    start_with(
        Dispatcher::new(storage, Arc::new(settings)),
        holder,
        shutdown,
    )
}

/// Like [`start`], with a dispatcher the caller built (to give it hooks,
/// see [`Dispatcher::on_contact`] and [`Dispatcher::on_unreachable`]).
pub fn start_with(
    dispatcher: Dispatcher,
    holder: String,
    shutdown: CancellationToken,
) -> Result<RunningBot, BotError> {
    let settings = dispatcher.shared_settings();
    let storage = dispatcher.storage().clone();
    if let Some(hook) = &settings.webhook
        && !(WebhookSettings::valid_token(hook.secret.expose())
            && WebhookSettings::valid_token(&hook.path))
    {
        return Err(BotError::Webhook);
    }
    let client = TelegramClient::new(settings.telegram.clone()).map_err(BotError::Client)?;
    let dispatcher = Arc::new(dispatcher);
    let router = ChatRouter::new(client.clone(), Arc::clone(&dispatcher));
    let webhook = settings
        .webhook
        .as_ref()
        .map(|hook| webhook_routes(Arc::clone(&router), hook));
    let task = tokio::spawn(run(
        storage,
        settings,
        client,
        Arc::clone(&dispatcher),
        router,
        holder,
        shutdown,
    ));
    Ok(RunningBot {
        task,
        webhook,
        dispatcher,
    })
}

async fn run(
    storage: Storage,
    settings: Arc<BotSettings>,
    client: TelegramClient,
    dispatcher: Arc<Dispatcher>,
    router: Arc<ChatRouter<Dispatcher>>,
    holder: String,
    shutdown: CancellationToken,
) {
    let introduced = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = introduce(&client, &dispatcher) => r,
    };
    if let Err(e) = introduced {
        tracing::error!(error = %e, "the bot cannot start; check the bot token and SERVERSAN_TELEGRAM_API_URL");
        return;
    }
    match &settings.webhook {
        Some(hook) => {
            let url = format!(
                "{}{}",
                settings.public_url.trim_end_matches('/'),
                webhook_path(hook)
            );
            let set = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = client.set_webhook(&url, hook.secret.expose()) => r,
            };
            match set {
                Ok(()) => tracing::info!("receiving Telegram updates by webhook"),
                Err(e) => tracing::error!(error = %e, "setWebhook failed; no updates will arrive"),
            }
            shutdown.cancelled().await;
        }
        None => {
            let deleted = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = client.delete_webhook() => r,
            };
            if let Err(e) = deleted {
                tracing::warn!(error = %e, "deleteWebhook failed; polling anyway");
            }
            poll_under_lease(storage, router, settings.poller_lease, holder, shutdown).await;
        }
    }
}

/// getMe (the bot's @username, for commands addressed in groups) and the
/// command menu.
async fn introduce(client: &TelegramClient, dispatcher: &Dispatcher) -> Result<(), SendError> {
    let username = client.username().await?;
    dispatcher.set_bot_username(&username);
    tracing::info!(bot = %username, "connected to Telegram");
    if let Err(e) = client.set_commands(&cmd::menu()).await {
        tracing::warn!(error = %e, "setMyCommands failed; the command menu may be out of date");
    }
    Ok(())
}
