//! The HTTP application: routes, listener, TLS, timeouts, graceful shutdown
//! and the background pruning of expired rows.
//!
//! Connections are served by hyper directly rather than `axum::serve` for
//! three things it lacks: a header read timeout (slow clients are cut), an
//! optional native TLS handshake, and a cap on open connections.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::alerts::ReportQueue;
use crate::config::Config;
use crate::ingest::{self, IngestSettings, IngestState};
use crate::install::{self, InstallSettings};
use crate::storage::{self, Storage};

mod tls;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot read the TLS {what} {path}: {source}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the TLS {what} {path} holds no usable PEM {what}")]
    TlsEmpty { what: &'static str, path: PathBuf },
    #[error("the TLS certificate and key do not work together: {0}")]
    Tls(#[from] rustls::Error),
}

/// What `serve` adds to the HTTP application beyond ingest, installers,
/// health and metrics.
#[derive(Default)]
pub struct Extras {
    /// More routes under the same error and timeout layers (the bot's webhook).
    pub routes: Router,
    /// Where each stored report is queued for alert evaluation.
    pub alerts: Option<ReportQueue>,
}

/// Every route of the server, with the JSON error and timeout layers.
pub fn app(config: &Config, storage: Storage) -> Router {
    app_with(config, storage, Extras::default())
}

/// [`app`] with [`Extras`].
pub fn app_with(config: &Config, storage: Storage, extras: Extras) -> Router {
    let mut ingest_state = IngestState::new(storage.clone(), IngestSettings::from_config(config));
    if let Some(alerts) = extras.alerts {
        ingest_state = ingest_state.with_alerts(alerts);
    }
    let ingest = ingest::router(ingest_state);
    let install = install::router(InstallSettings {
        public_url: config.public_url(),
        agent_dir: config.agent_dir.clone(),
    });
    let health = HealthState {
        storage,
        timeout: config.database_timeout,
        retry_after: config.unavailable_retry_after.as_secs().max(1),
    };
    let mut router = Router::new()
        .route("/healthz", get(healthz).with_state(health))
        .merge(ingest)
        .merge(install)
        .merge(extras.routes);
    if config.metrics {
        // Installed now, so counts start with the first request.
        prometheus();
        router = router.route("/metrics", get(render_metrics));
    }
    router
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(
            config.request_timeout,
            request_timeout,
        ))
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Makes every refusal JSON `{"error": …}`, including those produced by the
/// framework or by other routes, keeping a short plain-text message.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let fallback = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let message = match axum::body::to_bytes(body, 1024).await {
        Ok(bytes) if !bytes.is_empty() => match std::str::from_utf8(&bytes) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
            _ => fallback,
        },
        _ => fallback,
    };
    let body = Bytes::from(json!({ "error": message }).to_string());
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts
        .headers
        .insert(header::CONTENT_LENGTH, body.len().into());
    Response::from_parts(parts, Body::from(body))
}

/// Cuts a request (body reading included) that takes longer than the limit.
async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = json_error(StatusCode::REQUEST_TIMEOUT, "request took too long");
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

#[derive(Clone)]
struct HealthState {
    storage: Storage,
    timeout: Duration,
    retry_after: u64,
}

/// `GET /healthz`: 200 when the database answers, 503 otherwise.
async fn healthz(State(h): State<HealthState>) -> Response {
    match tokio::time::timeout(h.timeout, h.storage.ping()).await {
        Ok(Ok(())) => axum::Json(json!({ "status": "ok", "database": "ok" })).into_response(),
        failure => {
            match failure {
                Ok(Err(e)) => tracing::warn!("health check: database error: {e}"),
                _ => tracing::warn!("health check: database did not answer in time"),
            }
            let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(h.retry_after));
            response
        }
    }
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often the recorder's pending histogram samples are folded into its
/// buckets when nothing scrapes `/metrics`.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use, with a
/// thread that keeps it small.
///
/// Why the thread: the recorder keeps every histogram sample (about 16
/// bytes per request) until an upkeep folds them into the buckets, and
/// otherwise only a scrape runs one. Many installs never scrape `/metrics`,
/// so without it memory would grow with every report, forever.
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("serversan_ingest_duration_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        let upkept = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(METRICS_UPKEEP);
                    upkept.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the metrics upkeep thread: {e}");
        }
        handle
    })
}

async fn render_metrics() -> Response {
    let handle = prometheus();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        handle.render(),
    )
        .into_response()
}

/// A bound listening socket, with TLS when configured.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Listener {
    /// Binds `config.listen` and loads the TLS certificate if one is set.
    pub async fn bind(config: &Config) -> Result<Self, WebError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key, config.tls_reload_interval)?),
            _ => None,
        };
        let tcp = TcpListener::bind(config.listen)
            .await
            .map_err(|source| WebError::Bind {
                addr: config.listen,
                source,
            })?;
        Ok(Self { tcp, tls })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl ServeOptions {
    pub fn from_config(c: &Config) -> Self {
        Self {
            header_read_timeout: c.header_read_timeout,
            max_connections: c.max_connections,
            shutdown_timeout: c.shutdown_timeout,
        }
    }
}

/// Serves `router` until `shutdown` completes, then stops accepting and
/// lets requests in flight finish (up to the shutdown timeout).
pub async fn serve(
    listener: Listener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) {
    let Listener { tcp, tls } = listener;
    let slots = Arc::new(Semaphore::new(options.max_connections));
    // Connection tasks watch `stop`; each holds a clone of `done_rx`, so
    // `done_tx.closed()` resolves when the last one ends.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            peer,
            options,
            stop: stop_rx.clone(),
            _done: done_rx.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            connection.run(stream, tls).await;
            drop(permit);
        });
    }
    drop(tcp);
    let _ = stop_tx.send(true);
    drop(done_rx);
    if tokio::time::timeout(options.shutdown_timeout, done_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still in flight were cut");
    }
}

struct Connection {
    router: Router,
    peer: SocketAddr,
    options: ServeOptions,
    stop: watch::Receiver<bool>,
    _done: watch::Receiver<()>,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        match tls {
            None => self.serve_io(TokioIo::new(stream)).await,
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.options.header_read_timeout, acceptor.accept(stream))
                        .await;
                match handshake {
                    Ok(Ok(tls_stream)) => self.serve_io(TokioIo::new(tls_stream)).await,
                    Ok(Err(e)) => tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_io<I>(mut self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let peer = self.peer;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(Body::new)).await;
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.header_read_timeout)
            .keep_alive(true);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        if *self.stop.borrow() {
            connection.as_mut().graceful_shutdown();
        }
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            }
            _ = self.stop.changed() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

/// Lease under which one instance at a time prunes.
const PRUNE_LEASE: &str = "prune";

/// Every `interval`, the instance holding the prune lease forgets expired
/// nonces and removes the rows of deleted servers; every instance keeps its
/// metrics tidy. Ends when `stop` turns true.
pub async fn run_pruner(storage: Storage, interval: Duration, mut stop: watch::Receiver<bool>) {
    let holder = instance_id();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        if let Some(metrics) = PROMETHEUS.get() {
            metrics.run_upkeep();
        }
        let now = storage::unix_now();
        match storage
            .try_lease(PRUNE_LEASE, &holder, now, interval * 3)
            .await
        {
            Ok(true) => {
                match storage.prune_nonces(now).await {
                    Ok(n) if n > 0 => tracing::debug!(pruned = n, "expired nonces pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("pruning nonces failed: {e}"),
                }
                if let Err(e) = storage.purge_deleted_servers().await {
                    tracing::warn!("removing deleted servers' reports failed: {e}");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("prune lease unavailable: {e}"),
        }
    }
    let _ = storage.release_lease(PRUNE_LEASE, &holder).await;
}

/// A name for this process in leases: host, process id and a random part.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(40)
                .collect()
        })
        .unwrap_or_else(|| "host".to_owned());
    let random = getrandom::u32().unwrap_or(0);
    format!("{host}-{}-{random:08x}", std::process::id())
}

/// A running server (used by `serve` and by tests): stop it with
/// [`RunningServer::shutdown`].
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl RunningServer {
    /// Binds, then serves and prunes in background tasks.
    pub async fn start(config: &Config, storage: Storage) -> Result<Self, WebError> {
        Self::start_with(config, storage, Extras::default()).await
    }

    /// [`RunningServer::start`] with [`Extras`].
    pub async fn start_with(
        config: &Config,
        storage: Storage,
        extras: Extras,
    ) -> Result<Self, WebError> {
        let listener = Listener::bind(config).await?;
        let addr = listener.local_addr().map_err(|source| WebError::Bind {
            addr: config.listen,
            source,
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let router = app_with(config, storage.clone(), extras);
        let options = ServeOptions::from_config(config);
        let mut serve_stop = stop_rx.clone();
        tasks.spawn(serve(listener, router, options, async move {
            let _ = serve_stop.wait_for(|s| *s).await;
        }));
        tasks.spawn(run_pruner(storage, config.prune_interval, stop_rx));
        Ok(Self { addr, stop, tasks })
    }

    /// Stops accepting, finishes requests in flight, stops pruning.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
