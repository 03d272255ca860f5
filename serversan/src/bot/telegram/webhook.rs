//! Webhook mode: Telegram POSTs each update to `/telegram/<path>` with the
//! secret token in a header. Any instance behind the load balancer can take
//! updates; each goes to the same chat router as in long polling.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::ChatHandler;
use super::super::settings::WebhookSettings;
use super::router::ChatRouter;
use super::updates::incoming;

/// The header Telegram sets to the `secret_token` given to setWebhook.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Largest update accepted; Telegram's are a few kilobytes.
const MAX_UPDATE_BYTES: usize = 1 << 20;

struct Hook<H: ChatHandler> {
    router: Arc<ChatRouter<H>>,
    secret: String,
}

/// The path updates are POSTed to.
pub fn webhook_path(settings: &WebhookSettings) -> String {
    format!("/telegram/{}", settings.path)
}

/// Routes for webhook mode, to merge into the server's router.
pub fn webhook_routes<H: ChatHandler>(
    router: Arc<ChatRouter<H>>,
    settings: &WebhookSettings,
) -> Router {
    let hook = Arc::new(Hook {
        router,
        secret: settings.secret.expose().to_owned(),
    });
    Router::new()
        .route(&webhook_path(settings), post(receive::<H>))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPDATE_BYTES))
        .with_state(hook)
}

async fn receive<H: ChatHandler>(
    State(hook): State<Arc<Hook<H>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !same_secret(given, hook.secret.as_bytes()) {
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // An authenticated update we cannot read is acknowledged anyway:
    // Telegram would otherwise redeliver it forever.
    match serde_json::from_slice::<Value>(&body) {
        Ok(raw) => {
            if let Some(item) = incoming(raw) {
                hook.router.dispatch(item);
            }
        }
        Err(e) => tracing::warn!(error = %e, "ignoring an unreadable webhook update"),
    }
    (StatusCode::OK, axum::Json(json!({ "ok": true }))).into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Compares in time independent of where the inputs differ (the digests
/// have a fixed length, so the length is not revealed either).
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(given);
    let b = Sha256::digest(expected);
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0 && !expected.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b""));
    }
}
