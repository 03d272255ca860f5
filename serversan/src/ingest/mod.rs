//! `POST /v1/report`: authenticate, validate and store agent reports.
//!
//! The checks run in the order the protocol fixes, cheapest and least
//! revealing first: size and headers, then timestamp and signature, then
//! the nonce, then the report itself, then the per-server pacing. Nothing
//! touches storage before the signature is verified, and the only write is
//! the final transaction, so every refusal leaves the database unchanged.
//! A 200 is sent only after that transaction committed.

mod auth_limit;
mod client_ip;
mod key_cache;
mod refusal;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serversan_protocol::signing::is_valid_nonce;
use serversan_protocol::{Limits, REPORT_PATH, headers as names, verify_signature};

use crate::config::{Config, NetList};
use crate::storage::{self, NewReport, RecordOutcome, ServerKey, Storage, StorageError};

pub use auth_limit::AuthFailureLimiter;
pub use client_ip::client_ip;
use key_cache::KeyCache;
pub use refusal::{Refusal, UNAUTHORIZED_MESSAGE};

/// What ingest needs from the configuration.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub body_limit: usize,
    pub timestamp_skew_secs: i64,
    pub min_interval_secs: i64,
    pub max_reports_per_minute: i64,
    pub limits: Limits,
    /// Longest wait for storage before answering 503.
    pub database_timeout: Duration,
    pub unavailable_retry_after_secs: u64,
    pub auth_failures_per_minute: u32,
    pub trusted_proxies: NetList,
}

impl IngestSettings {
    pub fn from_config(c: &Config) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let skew = secs(c.timestamp_skew);
        Self {
            body_limit: c.body_limit.0,
            timestamp_skew_secs: skew,
            min_interval_secs: secs(c.min_report_interval),
            max_reports_per_minute: i64::from(c.max_reports_per_minute),
            limits: Limits {
                max_age_secs: secs(c.max_report_age),
                max_future_secs: skew,
                ..Limits::default()
            },
            database_timeout: c.database_timeout,
            unavailable_retry_after_secs: c.unavailable_retry_after.as_secs().max(1),
            auth_failures_per_minute: c.auth_failures_per_minute,
            trusted_proxies: c.trusted_proxies.clone(),
        }
    }
}

/// Shared state of the ingest route.
#[derive(Clone)]
pub struct IngestState {
    storage: Storage,
    settings: Arc<IngestSettings>,
    failures: Arc<AuthFailureLimiter>,
    keys: Arc<KeyCache>,
    /// Where each stored report is queued for alert evaluation.
    alerts: Option<crate::alerts::ReportQueue>,
}

impl IngestState {
    pub fn new(storage: Storage, settings: IngestSettings) -> Self {
        let failures =
            AuthFailureLimiter::new(settings.auth_failures_per_minute, Duration::from_secs(60));
        Self {
            storage,
            settings: Arc::new(settings),
            failures: Arc::new(failures),
            keys: Arc::default(),
            alerts: None,
        }
    }

    /// Queues each report for alert evaluation right after its commit.
    pub fn with_alerts(mut self, alerts: crate::alerts::ReportQueue) -> Self {
        self.alerts = Some(alerts);
        self
    }
}

/// The `POST /v1/report` route.
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route(REPORT_PATH, post(post_report))
        .with_state(state)
}

async fn post_report(State(state): State<IngestState>, request: Request) -> Response {
    let started = Instant::now();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let ip = client_ip(peer, request.headers(), &state.settings.trusted_proxies);
    let result = accept(&state, ip, request).await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(refusal) => refusal.metric_label(),
    };
    metrics::counter!("serversan_reports_total", "outcome" => outcome).increment(1);
    metrics::histogram!("serversan_ingest_duration_seconds").record(started.elapsed());
    match result {
        Ok(server_id) => {
            tracing::debug!(server_id, "report stored");
            accepted()
        }
        Err(refusal) => {
            if refusal.is_auth_failure() {
                state.failures.record_failure(ip);
            }
            tracing::debug!(%ip, outcome, "report refused");
            refusal.into_response()
        }
    }
}

/// The answer to every stored report: a fixed body, so answering costs no
/// allocation.
fn accepted() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// The signing headers, checked for form only.
struct Signed<'a> {
    key_id: &'a str,
    timestamp: i64,
    nonce: &'a str,
    signature: &'a str,
}

fn signed_headers(headers: &HeaderMap) -> Result<Signed<'_>, Refusal> {
    let get = |name: &'static str, shown: &str| {
        headers
            .get(name)
            .ok_or_else(|| Refusal::BadHeader(format!("missing header {shown}")))?
            .to_str()
            .map(str::trim)
            .map_err(|_| Refusal::BadHeader(format!("header {shown} is not plain text")))
    };
    let key_id = get(names::KEY, "X-Serversan-Key")?;
    let timestamp = get(names::TIMESTAMP, "X-Serversan-Timestamp")?;
    let nonce = get(names::NONCE, "X-Serversan-Nonce")?;
    let signature = get(names::SIGNATURE, "X-Serversan-Signature")?;
    let timestamp = timestamp
        .parse::<i64>()
        .map_err(|_| Refusal::BadHeader("X-Serversan-Timestamp must be unix seconds".into()))?;
    if !is_valid_nonce(nonce) {
        return Err(Refusal::BadHeader(
            "X-Serversan-Nonce must be 16 to 64 characters of A-Z a-z 0-9 _ -".into(),
        ));
    }
    Ok(Signed {
        key_id,
        timestamp,
        nonce,
        signature,
    })
}

/// Exactly one Content-Type, `application/json` (parameters such as
/// `charset=utf-8` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(only), None) = (types.next(), types.next()) else {
        return false;
    };
    only.to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body, refusing as soon as it passes `limit` bytes, so an
/// oversized body is never held in memory whatever Content-Length claims.
async fn read_limited(mut body: Body, limit: usize) -> Result<Vec<u8>, Refusal> {
    if body.size_hint().lower() > limit as u64 {
        return Err(Refusal::TooLarge { limit });
    }
    let mut buf = Vec::with_capacity(body.size_hint().lower().min(limit as u64) as usize);
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| Refusal::BadBody)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(Refusal::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Runs a storage call under the database timeout; any failure is a 503.
async fn storage_call<T>(
    settings: &IngestSettings,
    call: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, Refusal> {
    let unavailable = Refusal::Unavailable {
        retry_after_secs: settings.unavailable_retry_after_secs,
    };
    match tokio::time::timeout(settings.database_timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!("storage failed, answering 503: {e}");
            metrics::counter!("serversan_storage_errors_total").increment(1);
            Err(unavailable)
        }
        Err(_) => {
            tracing::warn!(
                "storage did not answer within {:?}, answering 503",
                settings.database_timeout
            );
            metrics::counter!("serversan_storage_errors_total").increment(1);
            Err(unavailable)
        }
    }
}

/// The key behind `key_id`, from the cache or else the database.
async fn server_key(state: &IngestState, key_id: &str) -> Result<Option<Arc<ServerKey>>, Refusal> {
    if let Some(key) = state.keys.get(key_id) {
        return Ok(Some(key));
    }
    let key = storage_call(&state.settings, state.storage.server_key(key_id)).await?;
    Ok(key.map(|key| {
        let key = Arc::new(key);
        state.keys.insert(key_id, key.clone());
        key
    }))
}

/// A secret no key has, to verify against when the key is unknown, so an
/// unknown key costs the same time as a known one with a bad signature.
const DECOY_SECRET: &str = "decoy-secret-for-unknown-keys-000000000000000";

/// Checks and stores one report; its server's id once committed.
async fn accept(state: &IngestState, ip: IpAddr, request: Request) -> Result<i64, Refusal> {
    let s = &*state.settings;
    let (parts, body) = request.into_parts();

    // 1. Size and headers.
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > s.body_limit as u64
    {
        return Err(Refusal::TooLarge {
            limit: s.body_limit,
        });
    }
    if !is_json(&parts.headers) {
        return Err(Refusal::UnsupportedMediaType);
    }
    state
        .failures
        .check(ip)
        .map_err(|retry_after_secs| Refusal::TooManyFailures { retry_after_secs })?;
    let signed = signed_headers(&parts.headers)?;
    let body = read_limited(body, s.body_limit).await?;

    // 2. Timestamp and signature.
    let now = storage::unix_now();
    let offset = signed.timestamp.saturating_sub(now);
    if offset.abs() > s.timestamp_skew_secs {
        return Err(Refusal::StaleTimestamp {
            offset_secs: offset,
            skew_secs: s.timestamp_skew_secs,
        });
    }
    let key = server_key(state, signed.key_id).await?;
    let secret = key.as_ref().map_or(DECOY_SECRET, |k| k.secret.as_str());
    let verified = verify_signature(
        secret,
        signed.key_id,
        signed.timestamp,
        signed.nonce,
        &body,
        signed.signature,
    );
    let key = match key {
        Some(key) if verified => key,
        _ => return Err(Refusal::Unauthorized),
    };

    // 3 and 4. The nonce is checked by the database when the report is
    // stored (a unique key, so it holds across instances); a request whose
    // report is refused does not use up its nonce, so the order of answers
    // is the protocol's: a replay of an accepted request gets 409.
    let report =
        serversan_protocol::parse_and_validate(&body, now, &s.limits).map_err(Refusal::Invalid)?;

    // 5. Pacing, nonce and storage, in one transaction.
    let new = NewReport {
        server_id: key.server_id,
        key_id: Some(signed.key_id),
        report: &report,
        nonce: signed.nonce,
        // Kept for twice the window: an instance whose clock is behind the
        // pruning one (by up to the skew) still recognizes a replay.
        nonce_expires_at: signed
            .timestamp
            .saturating_add(s.timestamp_skew_secs.saturating_mul(2)),
        received_at: now,
        min_interval_secs: s.min_interval_secs,
        max_per_minute: s.max_reports_per_minute,
    };
    match storage_call(s, state.storage.record_report(&new)).await? {
        RecordOutcome::Stored => {
            if let Some(alerts) = &state.alerts {
                // After the commit. The 200 waits only for a place in the
                // queue (back-pressure when evaluation falls behind), never
                // for the rules, which a worker evaluates in batches.
                if let Err(e) = alerts.report_stored(key.server_id, &report).await {
                    tracing::warn!(server_id = key.server_id, "{e}");
                }
            }
            Ok(key.server_id)
        }
        RecordOutcome::NonceUsed => Err(Refusal::NonceUsed),
        // Deleted or reinstalled since its key was looked up (here or on
        // another instance): its code no longer works.
        RecordOutcome::ServerGone => {
            state.keys.remove(signed.key_id);
            Err(Refusal::Unauthorized)
        }
        RecordOutcome::NotNewer { last_collected_at } => {
            Err(Refusal::NotNewer { last_collected_at })
        }
        RecordOutcome::TooSoon { retry_after_secs } => Err(Refusal::TooSoon {
            retry_after_secs,
            interval_secs: s.min_interval_secs,
        }),
        RecordOutcome::RateCapped { retry_after_secs } => {
            Err(Refusal::RateCapped { retry_after_secs })
        }
    }
}
