//! Webhook mode: setWebhook, deleteWebhook, getWebhookInfo, and a sender
//! that POSTs each update to the webhook, in order, with the secret token
//! header, retrying until the webhook answers 2xx.
//!
//! Like a local Bot API server (and unlike api.telegram.org) the double
//! accepts `http://` URLs and any port, so tests can point it at loopback.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::args::Args;
use crate::polling::TERMINATED_BY_SET_WEBHOOK;
use crate::reply::{ApiError, ApiResult, Success};
use crate::world::{Shared, unix_now};

/// The header carrying `secret_token` on every delivery.
pub const SECRET_TOKEN_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

#[derive(Default)]
pub(crate) struct WebhookState {
    pub url: Option<String>,
    pub secret_token: Option<String>,
    pub max_connections: u32,
    last_error: Option<(i64, String)>,
    last_set: Option<Instant>,
}

fn valid_secret(secret: &str) -> bool {
    (1..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    })
}

pub(crate) fn set_webhook(shared: &Shared, args: &Args) -> ApiResult {
    let url = args.get("url").map(str::trim).unwrap_or("");
    let secret = args.get("secret_token").filter(|s| !s.is_empty());
    let mut world = shared.lock();
    if !url.is_empty() {
        let now = Instant::now();
        let interval = shared.options.set_webhook_interval;
        if world.webhook.last_set.is_some_and(|at| now < at + interval) {
            return Err(ApiError::too_many_requests(1));
        }
        world.webhook.last_set = Some(now);
    }
    if args.flag("drop_pending_updates") {
        world.updates.clear();
    }
    if url.is_empty() {
        let was_set = world.webhook.url.take().is_some();
        return Ok(deleted(was_set));
    }
    if secret.is_some_and(|s| !valid_secret(s)) {
        return Err(ApiError::bad_request(
            "secret token contains unallowed characters",
        ));
    }
    if !valid_url(url) {
        return Err(ApiError::bad_request("invalid webhook URL specified"));
    }
    let max_connections = args.int("max_connections").unwrap_or(40).clamp(1, 100);
    let unchanged = world.webhook.url.as_deref() == Some(url)
        && world.webhook.secret_token.as_deref() == secret;
    world.abort_long_poll(
        TERMINATED_BY_SET_WEBHOOK,
        shared.options.conflict_repeat_delay,
    );
    world.set_allowed_updates(args.get("allowed_updates"));
    world.webhook.url = Some(url.to_owned());
    world.webhook.secret_token = secret.map(str::to_owned);
    world.webhook.max_connections = u32::try_from(max_connections).unwrap_or(40);
    world.webhook.last_error = None;
    drop(world);
    shared.webhook_wake.notify_one();
    let description = if unchanged {
        "Webhook is already set"
    } else {
        "Webhook was set"
    };
    Ok(Success::with_description(json!(true), description))
}

fn deleted(was_set: bool) -> Success {
    let description = if was_set {
        "Webhook was deleted"
    } else {
        "Webhook is already deleted"
    };
    Success::with_description(json!(true), description)
}

pub(crate) fn delete_webhook(shared: &Shared, args: &Args) -> ApiResult {
    let mut world = shared.lock();
    if args.flag("drop_pending_updates") {
        world.updates.clear();
    }
    let was_set = world.webhook.url.take().is_some();
    world.webhook.secret_token = None;
    Ok(deleted(was_set))
}

pub(crate) fn get_webhook_info(shared: &Shared) -> ApiResult {
    let world = shared.lock();
    let hook = &world.webhook;
    let mut info = json!({
        "url": hook.url.clone().unwrap_or_default(),
        "has_custom_certificate": false,
        "pending_update_count": world.updates.len(),
    });
    if hook.url.is_some() {
        info["max_connections"] = json!(hook.max_connections);
        info["allowed_updates"] = json!(world.allowed_updates);
        if let Some((date, message)) = &hook.last_error {
            info["last_error_date"] = json!(date);
            info["last_error_message"] = json!(message);
        }
    }
    Ok(Success::of(info))
}

/// Delivers queued updates while a webhook is set; runs for the double's
/// lifetime.
pub(crate) async fn deliver(shared: Arc<Shared>) {
    let client = match reqwest::Client::builder()
        .timeout(shared.options.webhook_timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the Bot API double cannot deliver webhooks");
            return;
        }
    };
    loop {
        let Some((url, secret, id, body)) = next_delivery(&shared) else {
            shared.webhook_wake.notified().await;
            continue;
        };
        let mut request = client.post(&url).json(&body);
        if let Some(secret) = secret {
            request = request.header(SECRET_TOKEN_HEADER, secret);
        }
        let error = match request.send().await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("Wrong response from the webhook: {}", r.status())),
            Err(e) if e.is_timeout() => Some("Read timeout expired".to_owned()),
            Err(e) if e.is_connect() => Some("Connection refused".to_owned()),
            Err(_) => Some("Failed to deliver the update".to_owned()),
        };
        let failed = error.is_some();
        {
            let mut world = shared.lock();
            match error {
                None => {
                    if world.updates.front().is_some_and(|u| u.id == id) {
                        world.updates.pop_front();
                    }
                    world.last_activity = Instant::now();
                }
                Some(message) => world.webhook.last_error = Some((unix_now(), message)),
            }
        }
        shared.touch();
        if failed {
            tokio::time::sleep(shared.options.webhook_retry_delay).await;
        }
    }
}

/// The oldest pending update and where to send it, if a webhook is set.
fn next_delivery(shared: &Shared) -> Option<(String, Option<String>, i64, Value)> {
    let world = shared.lock();
    let url = world.webhook.url.clone()?;
    let update = world.updates.front()?;
    Some((
        url,
        world.webhook.secret_token.clone(),
        update.id,
        update.body.clone(),
    ))
}
