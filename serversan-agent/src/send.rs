//! Delivering one report: sign it at the moment of sending, POST it, and
//! say what the answer means for the report.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serversan_protocol::{AuthCode, REPORT_PATH, headers, random_nonce, sign};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// Connection buffer size: two maximum TLS records.
const BUFFER_BYTES: usize = 32 * 1024;
/// The largest answer body read (answers are short JSON).
const MAX_ANSWER_BYTES: u64 = 8 * 1024;
/// The longest piece of an answer quoted in a log line.
const MAX_QUOTED_CHARS: usize = 300;
/// The server's timestamp window; a skew past this makes every request 401.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;

/// A validated server base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    base: String,
    https: bool,
    loopback: bool,
}

/// Why a server URL or TLS setting cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no server URL: set SERVERSAN_SERVER_URL or `server = \"https://...\"` in agent.toml")]
    NoServerUrl,
    #[error("the server URL {0:?} is not usable: {1}")]
    BadServerUrl(String, &'static str),
    #[error("cannot read the CA file {path}: {source}")]
    CaFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {0} holds no PEM certificate")]
    CaFileEmpty(PathBuf),
}

impl ServerUrl {
    /// Accepts `http://host[:port][/prefix]` or `https://...`; a trailing
    /// slash is dropped. Queries, fragments and credentials are refused:
    /// they have no meaning here and would end up in logs.
    pub fn parse(url: &str) -> Result<Self, SetupError> {
        let bad = |why| SetupError::BadServerUrl(url.to_owned(), why);
        let url = url.trim();
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("it must start with https:// or http://"));
        };
        if rest.contains(['?', '#', '@'])
            || rest.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad(
                "it must be a plain base URL such as https://mon.example",
            ));
        }
        let authority = rest.split('/').next().unwrap_or("");
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        };
        if host.is_empty() {
            return Err(bad("it names no host"));
        }
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            https,
            loopback,
        })
    }

    /// The full report endpoint.
    pub fn report_url(&self) -> String {
        format!("{}{REPORT_PATH}", self.base)
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// Plain HTTP to another host: reports (not the secret) travel readable.
    pub fn is_insecure(&self) -> bool {
        !self.https && !self.loopback
    }
}

/// What happened to one report.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored by the server (200).
    Accepted { clock_skew: Option<i64> },
    /// Refused for good (400 invalid, 413 too large, other 4xx): sending it
    /// again cannot succeed, so it is dropped.
    Refused { status: u16, message: String },
    /// 401: the key is unknown (server deleted or reinstalled) or the
    /// timestamp is outside the window.
    Unauthorized {
        message: String,
        clock_skew: Option<i64>,
    },
    /// Network error, 5xx, 429 or 503: keep the report and try later.
    RetryLater {
        status: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl Outcome {
    /// The user-facing explanation of a 401, with the clock skew when the
    /// clock is the likely cause.
    pub fn unauthorized_advice(message: &str, clock_skew: Option<i64>) -> String {
        match clock_skew {
            Some(skew)
                if skew.abs() >= TIMESTAMP_WINDOW_SECS - 2
                    || message.to_ascii_lowercase().contains("timestamp") =>
            {
                let direction = if skew > 0 { "ahead of" } else { "behind" };
                format!(
                    "the server refused the report's time: this host's clock is {} s {direction} \
                     the server's (more than {TIMESTAMP_WINDOW_SECS} s is refused); \
                     set the clock right (enable NTP)",
                    skew.abs()
                )
            }
            _ => "this server was deleted or reinstalled: run /reinstall in the bot and install again"
                .to_owned(),
        }
    }
}

/// HTTP settings of a [`Sender`].
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        use crate::config::defaults;
        Self {
            ca_file: None,
            connect_timeout: Duration::from_secs(defaults::CONNECT_TIMEOUT_SECS),
            timeout: Duration::from_secs(defaults::TIMEOUT_SECS),
        }
    }
}

/// Signs and posts reports to one server.
#[derive(Debug)]
pub struct Sender {
    agent: ureq::Agent,
    url: String,
}

impl Sender {
    /// Builds the HTTP client: rustls with the built-in webpki roots, or only
    /// the CA file's certificates when one is given (the platform's root
    /// store is never loaded: it costs milliseconds per run).
    pub fn new(server: &ServerUrl, options: &HttpOptions) -> Result<Self, SetupError> {
        let roots = match &options.ca_file {
            Some(path) => RootCerts::Specific(Arc::new(read_ca_file(path)?)),
            None => RootCerts::WebPki,
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_global(Some(options.timeout))
            .user_agent(concat!("serversan-agent/", env!("CARGO_PKG_VERSION")))
            // ureq's 128 KiB default buffers are zeroed on every run; a
            // report and its answer fit in a TLS record or two.
            .input_buffer_size(BUFFER_BYTES)
            .output_buffer_size(BUFFER_BYTES)
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build();
        Ok(Self {
            agent: config.new_agent(),
            url: server.report_url(),
        })
    }

    /// Serializes and sends one report.
    pub fn send_report(&self, code: &AuthCode, report: &serversan_protocol::Report) -> Outcome {
        match serde_json::to_vec(report) {
            Ok(body) => self.send(code, &body),
            Err(e) => Outcome::Refused {
                status: 0,
                message: format!("the report cannot be encoded: {e}"),
            },
        }
    }

    /// Sends one report body, signed now with a fresh nonce. A 409 (nonce
    /// already used) is answered by signing again once.
    pub fn send(&self, code: &AuthCode, body: &[u8]) -> Outcome {
        let first = self.post_once(code, body);
        match first {
            Attempt::NonceReused => match self.post_once(code, body) {
                Attempt::Done(outcome) => outcome,
                Attempt::NonceReused => Outcome::RetryLater {
                    status: Some(409),
                    reason: "the server refused two fresh nonces as reused (409)".into(),
                    retry_after: None,
                },
            },
            Attempt::Done(outcome) => outcome,
        }
    }

    fn post_once(&self, code: &AuthCode, body: &[u8]) -> Attempt {
        let nonce = match random_nonce() {
            Ok(n) => n,
            Err(e) => {
                return Attempt::Done(Outcome::RetryLater {
                    status: None,
                    reason: format!("the system random generator failed: {e}"),
                    retry_after: None,
                });
            }
        };
        let signed = sign(code, crate::collect::unix_now(), &nonce, body);
        let result = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header(headers::KEY, &signed.key_id)
            .header(headers::TIMESTAMP, signed.timestamp.to_string())
            .header(headers::NONCE, &signed.nonce)
            .header(headers::SIGNATURE, &signed.signature)
            .send(body);
        let mut response = match result {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Done(Outcome::RetryLater {
                    status: None,
                    reason: format!("server unreachable at {}: {e}", self.url),
                    retry_after: None,
                });
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let clock_skew = header("date").and_then(|d| clock_skew(&d, SystemTime::now()));
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let location = header("location");
        let mut raw = Vec::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(MAX_ANSWER_BYTES)
            .read_to_end(&mut raw);
        let message = answer_message(&raw);
        Attempt::from_status(status, message, clock_skew, retry_after, location)
    }
}

enum Attempt {
    Done(Outcome),
    NonceReused,
}

impl Attempt {
    fn from_status(
        status: u16,
        message: String,
        clock_skew: Option<i64>,
        retry_after: Option<Duration>,
        location: Option<String>,
    ) -> Self {
        Attempt::Done(match status {
            200..=299 => Outcome::Accepted { clock_skew },
            409 => return Attempt::NonceReused,
            401 => Outcome::Unauthorized {
                message,
                clock_skew,
            },
            300..=399 => Outcome::RetryLater {
                status: Some(status),
                reason: format!(
                    "the server answered with a redirect ({status}) to {}: set the server URL to \
                     where it points",
                    quote(location.as_deref().unwrap_or("?"))
                ),
                retry_after: None,
            },
            408 | 429 | 500..=599 => Outcome::RetryLater {
                status: Some(status),
                reason: format!("the server answered {status}: {message}"),
                retry_after,
            },
            _ => Outcome::Refused { status, message },
        })
    }
}

/// The `error` of a JSON answer, else the start of the body; never raw
/// control characters (a hostile server must not drive the terminal).
fn answer_message(raw: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Answer {
        error: Option<String>,
        status: Option<String>,
    }
    let text = match serde_json::from_slice::<Answer>(raw) {
        Ok(Answer { error: Some(e), .. }) => e,
        Ok(Answer {
            status: Some(s), ..
        }) => s,
        _ => String::from_utf8_lossy(raw).into_owned(),
    };
    quote(&text)
}

fn quote(text: &str) -> String {
    let cleaned = crate::collect::clean_text(text, MAX_QUOTED_CHARS * 4);
    cleaned.chars().take(MAX_QUOTED_CHARS).collect()
}

/// Seconds this host's clock is ahead of the server's (negative: behind),
/// from the answer's `Date` header.
pub fn clock_skew(date_header: &str, local_now: SystemTime) -> Option<i64> {
    let server = httpdate::parse_http_date(date_header.trim()).ok()?;
    Some(match local_now.duration_since(server) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
        Err(behind) => -i64::try_from(behind.duration().as_secs()).unwrap_or(i64::MAX),
    })
}

fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, SetupError> {
    let pem = std::fs::read(path).map_err(|source| SetupError::CaFileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(SetupError::CaFileEmpty(path.to_owned()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let u = ServerUrl::parse("https://mon.example/").expect("ok");
        assert_eq!(u.report_url(), "https://mon.example/v1/report");
        assert!(!u.is_insecure());
        let u = ServerUrl::parse("http://mon.example:8080/base").expect("ok");
        assert_eq!(u.report_url(), "http://mon.example:8080/base/v1/report");
        assert!(u.is_insecure());
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:80",
        ] {
            assert!(
                !ServerUrl::parse(local).expect("ok").is_insecure(),
                "{local}"
            );
        }
        for bad in [
            "mon.example",
            "ftp://x",
            "https://",
            "https://u:p@x",
            "https://x/?a=1",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_what_the_agent_does() {
        let outcome = |status| match Attempt::from_status(status, "m".into(), None, None, None) {
            Attempt::Done(o) => Some(o),
            Attempt::NonceReused => None,
        };
        assert!(matches!(outcome(200), Some(Outcome::Accepted { .. })));
        assert!(matches!(
            outcome(400),
            Some(Outcome::Refused { status: 400, .. })
        ));
        assert!(matches!(
            outcome(413),
            Some(Outcome::Refused { status: 413, .. })
        ));
        assert!(matches!(outcome(401), Some(Outcome::Unauthorized { .. })));
        for s in [429, 500, 502, 503] {
            assert!(
                matches!(outcome(s), Some(Outcome::RetryLater { .. })),
                "{s}"
            );
        }
        assert!(outcome(409).is_none());
    }

    #[test]
    fn clock_skew_from_date_header() {
        let now = httpdate::parse_http_date("Wed, 25 Nov 2026 10:00:00 GMT").expect("date");
        assert_eq!(clock_skew("Wed, 25 Nov 2026 09:50:00 GMT", now), Some(600));
        assert_eq!(clock_skew("Wed, 25 Nov 2026 10:00:30 GMT", now), Some(-30));
        assert_eq!(clock_skew("yesterday", now), None);
        let advice = Outcome::unauthorized_advice("bad signature", Some(600));
        assert!(advice.contains("600 s ahead"), "{advice}");
        let advice = Outcome::unauthorized_advice("unknown key or bad signature", Some(3));
        assert!(advice.contains("/reinstall"), "{advice}");
        // The server's own wording for a refused timestamp.
        let advice = Outcome::unauthorized_advice(
            "X-Serversan-Timestamp is 200 seconds behind the server's clock (at most 300 allowed)",
            Some(-200),
        );
        assert!(advice.contains("200 s behind"), "{advice}");
    }

    #[test]
    fn answers_are_quoted_safely() {
        assert_eq!(
            answer_message(br#"{"error":"filesystems[2].total: bad"}"#),
            "filesystems[2].total: bad"
        );
        assert_eq!(answer_message(b"\x1b[2Jboom"), "[2Jboom");
        assert_eq!(answer_message(&[b'x'; 5000]).len(), MAX_QUOTED_CHARS);
    }
}
