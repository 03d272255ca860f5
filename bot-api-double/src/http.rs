//! The HTTP face: `{base}/bot{TOKEN}/{method}` over HTTP/1.1 on loopback,
//! with the call log, injected failures and Telegram's envelope.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::args::{Args, MAX_BODY_BYTES};
use crate::methods;
use crate::model::{CallRecord, Failure};
use crate::reply::{ApiError, ApiResult, into_response};
use crate::world::Shared;

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Clone, Copy, Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped on purpose by the Bot API test double")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections until the task is aborted; aborting it also ends
/// every open connection (they live in its JoinSet).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let router = Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Bot API double: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        async move {
            let response = match router.oneshot(request.map(Body::new)).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropConnection>().is_some() {
                // hyper closes the connection without answering.
                return Err(DropConnection);
            }
            Ok::<_, DropConnection>(response)
        }
    });
    // A client hanging up mid-request is normal for long polls.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// `/bot<token>/<method>` split into token and method.
fn route(path: &str) -> Option<(String, &str)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    if method.is_empty() || method.contains('/') {
        return None;
    }
    let token = percent_decode(token);
    Some((token, method))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts a request as in progress (for `wait_until_idle`) while alive.
struct Busy<'a>(&'a Shared);

impl<'a> Busy<'a> {
    fn start(shared: &'a Shared) -> Self {
        let mut world = shared.lock();
        world.in_flight += 1;
        world.last_activity = Instant::now();
        Busy(shared)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut world = self.0.lock();
        world.in_flight = world.in_flight.saturating_sub(1);
        world.last_activity = Instant::now();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let arrived = Instant::now();
    let path = request.uri().path().to_owned();
    let Some((token, method)) = route(&path) else {
        return into_response(&Err(ApiError::not_found()));
    };
    if token != shared.token {
        return into_response(&Err(ApiError::unauthorized()));
    }
    let lowercase = method.to_ascii_lowercase();
    let _busy = (lowercase != "getupdates").then(|| Busy::start(&shared));
    let (args, parse_error) = match Args::from_request(request).await {
        Ok(args) => (args, None),
        Err(e) => (Args::default(), Some(e)),
    };
    let index = record_call(&shared, method, arrived, &args);
    shared.touch();
    let failure = {
        let mut world = shared.lock();
        world
            .failures
            .get_mut(&lowercase)
            .and_then(|f| f.pop_front())
    };
    let outcome: ApiResult = match (parse_error, failure) {
        (_, Some(Failure::Drop)) => {
            finish_call(&shared, index, None);
            let mut response = ().into_response();
            response.extensions_mut().insert(DropConnection);
            return response;
        }
        (_, Some(injected)) => Err(injected
            .to_error()
            .unwrap_or_else(|| ApiError::new(500, "Internal Server Error"))),
        (Some(e), None) => Err(e),
        (None, None) => methods::dispatch(&shared, &lowercase, &args).await,
    };
    let status = match &outcome {
        Ok(_) => 200,
        Err(e) => e.code,
    };
    finish_call(&shared, index, Some(status));
    into_response(&outcome)
}

fn record_call(shared: &Shared, method: &str, at: Instant, args: &Args) -> usize {
    let mut world = shared.lock();
    world.calls.push(CallRecord {
        method: method.to_owned(),
        at,
        params: args.params().clone(),
        files: args.file_names(),
        status: None,
    });
    world.calls.len() - 1
}

fn finish_call(shared: &Shared, index: usize, status: Option<u16>) {
    {
        let mut world = shared.lock();
        if let Some(call) = world.calls.get_mut(index) {
            call.status = status;
        }
    }
    shared.touch();
}
