//! One report run (`serversan-agent report`) and the daemon loop
//! (`serversan-agent run`): flush the spool oldest first, then collect and
//! send a fresh report; whatever cannot be delivered now waits in the spool.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use serversan_protocol::AuthCode;

use crate::auth::{AuthFileError, load_auth_code};
use crate::collect::{Collector, unix_now};
use crate::config::{Config, ConfigError};
use crate::send::{HttpOptions, Outcome, Sender, ServerUrl, SetupError};
use crate::spool::{Spool, SpoolEntry};
use crate::state::DeliveryState;

/// Name of the spool directory inside the state directory.
pub const SPOOL_DIR: &str = "spool";
/// Lock file keeping two runs (a slow one and the next minute's) apart.
pub const LOCK_FILE: &str = "lock";
/// The longest `Retry-After` honoured: a server cannot silence an agent
/// for longer than this.
pub const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// Where log lines go (stderr for the binary; anything for a library user).
pub type Log<'a> = &'a dyn Fn(&str);

/// What a run achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Reports the server stored (spooled ones and the fresh one).
    pub delivered: usize,
    /// Spooled reports dropped: refused as invalid, or pushed out by the
    /// spool's bounds.
    pub dropped: usize,
    /// Reports left in the spool for a later run.
    pub queued: usize,
    /// The server asked to wait this long (429/503 `Retry-After`).
    pub retry_after: Option<Duration>,
}

/// Why a run did not deliver. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    AuthFile(#[from] AuthFileError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot use the state directory {path}: {source}")]
    StateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{advice} (reports are kept: {queued} waiting)")]
    Unauthorized { advice: String, queued: usize },
    #[error("{reason}; the report is kept ({queued} waiting) and sent on a later run")]
    NotDelivered { reason: String, queued: usize },
    #[error("the server refused the report ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl RunError {
    /// The process exit code for this error (documented in docs/agent.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) | RunError::AuthFile(_) | RunError::Setup(_) => 3,
            RunError::StateDir { .. } => 3,
            RunError::Unauthorized { .. } => 4,
            RunError::NotDelivered { .. } => 5,
            RunError::Refused { .. } => 6,
        }
    }
}

/// Why the flush stopped early.
enum Stop {
    Unauthorized(String),
    Retry {
        reason: String,
        throttled: bool,
        retry_after: Option<Duration>,
    },
}

/// One run: flush the spool, then collect and send a fresh report.
pub fn report_once(config: &Config, log: Log) -> Result<RunSummary, RunError> {
    let code = load_auth_code(&config.auth_file)?;
    let url = ServerUrl::parse(
        config
            .server_url
            .as_deref()
            .ok_or(SetupError::NoServerUrl)?,
    )?;
    let sender = Sender::new(
        &url,
        &HttpOptions {
            ca_file: config.ca_file.clone(),
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
        },
    )?;
    let dir = config.state_dir.as_path();
    let state_err = |source| RunError::StateDir {
        path: dir.to_owned(),
        source,
    };
    crate::fsutil::create_private_dir(dir).map_err(state_err)?;
    let spool = Spool::open(&dir.join(SPOOL_DIR), config.spool).map_err(state_err)?;
    let mut collector = Collector::with_state_dir(dir).sample_duration(config.cpu_sample);

    let Some(_lock) = try_lock(dir).map_err(state_err)? else {
        // Another run is still flushing: leave this minute's report to it.
        let report = Collector::read_only(dir)
            .sample_duration(config.cpu_sample)
            .collect();
        let mut summary = RunSummary::default();
        spool_report(&spool, &report, &mut summary, log).map_err(state_err)?;
        log("another serversan-agent run is in progress; this report waits in the spool");
        return Ok(summary);
    };

    let loaded_state = DeliveryState::load(dir);
    let mut state = loaded_state.clone();
    if let Some(warning) = insecure_url_warning(&url, &mut state) {
        log(&warning);
    }

    let now = unix_now();
    let retry_secs = i64::try_from(config.auth_retry.as_secs()).unwrap_or(i64::MAX);
    let mut delivery = Delivery {
        spool: &spool,
        sender: &sender,
        code: &code,
        state: &mut state,
        summary: RunSummary::default(),
        throttled: Vec::new(),
        last_was_throttled: false,
        log,
    };
    let mut stop = if let Some(until) = delivery.state.auth_backoff_until(code.key_id(), retry_secs)
        && now < until
    {
        let advice = delivery
            .state
            .auth_refused
            .as_ref()
            .map(|r| r.advice.clone())
            .unwrap_or_default();
        Some(Stop::Unauthorized(format!(
            "{advice} (refused repeatedly; next attempt in {} min)",
            (until - now + 59) / 60
        )))
    } else if delivery.state.retry_not_before > now
        && delivery.state.retry_not_before <= now + MAX_RETRY_AFTER_SECS as i64
    {
        Some(Stop::Retry {
            reason: "the server asked to wait".into(),
            throttled: true,
            retry_after: Some(Duration::from_secs(
                (delivery.state.retry_not_before - now) as u64,
            )),
        })
    } else {
        delivery.flush()
    };

    let report = collector.collect();
    if let Err(e) = collector.save() {
        log(&format!(
            "cannot save CPU counters in {}: {e}",
            dir.display()
        ));
    }
    if stop.is_none() {
        let body = serde_json::to_vec(&report).unwrap_or_default();
        match delivery.send_fresh(&body) {
            Ok(None) => {
                let mut summary = delivery.summary;
                summary.queued = spool.entries().map(|e| e.len()).unwrap_or(0);
                save_state(&state, &loaded_state, dir, log);
                return Ok(summary);
            }
            Ok(Some(s)) => stop = Some(s),
            Err(refused) => {
                save_state(&state, &loaded_state, dir, log);
                return Err(refused);
            }
        }
    }
    let mut summary = delivery.summary;
    spool_report(&spool, &report, &mut summary, log).map_err(state_err)?;
    summary.queued = spool.entries().map(|e| e.len()).unwrap_or(0);
    save_state(&state, &loaded_state, dir, log);
    match stop {
        Some(Stop::Unauthorized(advice)) => Err(RunError::Unauthorized {
            advice,
            queued: summary.queued,
        }),
        Some(Stop::Retry {
            throttled: true,
            retry_after,
            ..
        }) => {
            summary.retry_after = retry_after;
            Ok(summary)
        }
        Some(Stop::Retry { reason, .. }) => Err(RunError::NotDelivered {
            reason,
            queued: summary.queued,
        }),
        None => Ok(summary),
    }
}

/// One run's deliveries: the spool oldest first, then the fresh report.
struct Delivery<'a> {
    spool: &'a Spool,
    sender: &'a Sender,
    code: &'a AuthCode,
    state: &'a mut DeliveryState,
    summary: RunSummary,
    /// Spooled reports answered 429 in this run.
    throttled: Vec<SpoolEntry>,
    /// Whether the latest answer was 429: a second one in a row stops the
    /// run (the server is throttling, not refusing one report).
    last_was_throttled: bool,
    log: Log<'a>,
}

impl Delivery<'_> {
    /// Sends the spooled reports, each signed afresh. Stops at the first
    /// answer that says "not now"; drops reports refused for good.
    fn flush(&mut self) -> Option<Stop> {
        let entries = match self.spool.entries() {
            Ok(e) => e,
            Err(e) => {
                (self.log)(&format!(
                    "cannot list the spool {}: {e}",
                    self.spool.dir().display()
                ));
                return None;
            }
        };
        for entry in entries {
            let body = match self.spool.read(&entry) {
                Ok(b) => b,
                Err(e) => {
                    (self.log)(&format!(
                        "dropping unreadable spooled report {}: {e}",
                        entry.name()
                    ));
                    self.drop_entry(&entry);
                    continue;
                }
            };
            match self.sender.send(self.code, &body) {
                Outcome::Accepted { clock_skew } => {
                    let _ = self.spool.remove(&entry);
                    self.accepted(clock_skew);
                }
                Outcome::Refused { status, message } => {
                    (self.log)(&format!(
                        "dropped the spooled report collected at {}: the server refused it \
                         ({status}): {message}",
                        entry.collected_at
                    ));
                    self.drop_entry(&entry);
                    self.last_was_throttled = false;
                }
                outcome @ Outcome::RetryLater {
                    status: Some(429), ..
                } if !self.last_was_throttled => {
                    // "Too frequent" may concern this report alone (collected
                    // too soon after one the server holds): try the next.
                    self.throttle(outcome);
                    self.throttled.push(entry);
                }
                other => return Some(stop_for(other, self.code, self.state)),
            }
        }
        None
    }

    /// Sends the fresh report; `Err` when it is refused for good.
    fn send_fresh(&mut self, body: &[u8]) -> Result<Option<Stop>, RunError> {
        match self.sender.send(self.code, body) {
            Outcome::Accepted { clock_skew } => {
                self.accepted(clock_skew);
                Ok(None)
            }
            Outcome::Refused { status, message } => Err(RunError::Refused { status, message }),
            other => Ok(Some(stop_for(other, self.code, self.state))),
        }
    }

    fn accepted(&mut self, clock_skew: Option<i64>) {
        self.summary.delivered += 1;
        self.state.auth_refused = None;
        self.state.retry_not_before = 0;
        self.last_was_throttled = false;
        warn_skew(clock_skew, self.log);
        // The server now holds a later report, and collection times must
        // increase: the throttled ones before it can never be stored.
        for entry in std::mem::take(&mut self.throttled) {
            (self.log)(&format!(
                "dropped the spooled report collected at {}: the server called it too frequent \
                 and has since stored a later one",
                entry.collected_at
            ));
            self.drop_entry(&entry);
        }
    }

    /// Notes a 429 without stopping, honouring its `Retry-After` for the
    /// next run.
    fn throttle(&mut self, outcome: Outcome) {
        self.last_was_throttled = true;
        if let Outcome::RetryLater {
            retry_after: Some(d),
            ..
        } = outcome
        {
            let secs = d.as_secs().min(MAX_RETRY_AFTER_SECS);
            self.state.retry_not_before = unix_now() + secs as i64;
        }
    }

    fn drop_entry(&mut self, entry: &SpoolEntry) {
        let _ = self.spool.remove(entry);
        self.summary.dropped += 1;
    }
}

/// Turns a "not now" outcome into the reason to stop, updating the state.
fn stop_for(outcome: Outcome, code: &AuthCode, state: &mut DeliveryState) -> Stop {
    let now = unix_now();
    match outcome {
        Outcome::Unauthorized {
            message,
            clock_skew,
        } => {
            let advice = Outcome::unauthorized_advice(&message, clock_skew);
            state.record_auth_refusal(code.key_id(), now, &advice);
            Stop::Unauthorized(advice)
        }
        Outcome::RetryLater {
            status,
            reason,
            retry_after,
        } => {
            let retry_after = retry_after.map(|d| d.min(Duration::from_secs(MAX_RETRY_AFTER_SECS)));
            if let Some(d) = retry_after {
                state.retry_not_before = now + d.as_secs() as i64;
            }
            Stop::Retry {
                reason,
                throttled: status == Some(429),
                retry_after,
            }
        }
        // Accepted and Refused never stop a run.
        Outcome::Accepted { .. } | Outcome::Refused { .. } => Stop::Retry {
            reason: "unexpected answer".into(),
            throttled: false,
            retry_after: None,
        },
    }
}

/// The plain-HTTP warning, the first time a URL is used (then remembered in
/// the state, so cron runs do not repeat it every minute).
fn insecure_url_warning(url: &ServerUrl, state: &mut DeliveryState) -> Option<String> {
    if !url.is_insecure() || state.warned_insecure_url.as_deref() == Some(url.as_str()) {
        return None;
    }
    state.warned_insecure_url = Some(url.as_str().to_owned());
    Some(format!(
        "warning: {} is plain HTTP to another host: reports travel unencrypted \
         (the auth code itself is never sent); use https:// where you can",
        url.as_str()
    ))
}

fn spool_report(
    spool: &Spool,
    report: &serversan_protocol::Report,
    summary: &mut RunSummary,
    log: Log,
) -> std::io::Result<()> {
    let body = serde_json::to_vec(report).map_err(std::io::Error::other)?;
    for dropped in spool.push(report.collected_at, &body)? {
        log(&format!(
            "spool full: dropped the oldest report (collected at {})",
            dropped.collected_at
        ));
        summary.dropped += 1;
    }
    Ok(())
}

fn save_state(state: &DeliveryState, loaded: &DeliveryState, dir: &Path, log: Log) {
    if state == loaded {
        return;
    }
    if let Err(e) = state.save(dir) {
        log(&format!(
            "cannot save delivery state in {}: {e}",
            dir.display()
        ));
    }
}

fn warn_skew(clock_skew: Option<i64>, log: Log) {
    if let Some(skew) = clock_skew.filter(|s| s.abs() > 60) {
        log(&format!(
            "warning: this host's clock is {} s {} the server's; past 300 s reports are refused",
            skew.abs(),
            if skew > 0 { "ahead of" } else { "behind" }
        ));
    }
}

/// Takes the state directory's lock without waiting; `None` when another
/// run holds it.
fn try_lock(dir: &Path) -> std::io::Result<Option<File>> {
    let mut options = File::options();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The daemon: a run every `interval` (longer when the server asks), until
/// the process is stopped. Errors are logged when their kind changes, so an
/// outage is one line, not one per interval.
pub fn run_daemon(
    interval: Duration,
    load: impl Fn() -> Result<Config, ConfigError>,
    log: Log,
) -> ! {
    let mut last_error = None;
    loop {
        let started = Instant::now();
        let mut wait = interval;
        match load()
            .map_err(RunError::from)
            .and_then(|c| report_once(&c, log))
        {
            Ok(summary) => {
                last_error = None;
                if let Some(d) = summary.retry_after {
                    wait = wait.max(d);
                }
            }
            Err(e) => {
                let kind = std::mem::discriminant(&e);
                if last_error != Some(kind) {
                    log(&e.to_string());
                    last_error = Some(kind);
                }
            }
        }
        std::thread::sleep(wait.saturating_sub(started.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_to_another_host_is_warned_about_once_per_url() {
        let mut state = DeliveryState::default();
        let remote = ServerUrl::parse("http://mon.example").expect("url");
        assert!(insecure_url_warning(&remote, &mut state).is_some());
        assert!(insecure_url_warning(&remote, &mut state).is_none());
        let other = ServerUrl::parse("http://mon2.example").expect("url");
        assert!(insecure_url_warning(&other, &mut state).is_some());
        let mut fresh = DeliveryState::default();
        for quiet in ["http://127.0.0.1:8080", "https://mon.example"] {
            let url = ServerUrl::parse(quiet).expect("url");
            assert!(insecure_url_warning(&url, &mut fresh).is_none(), "{quiet}");
        }
    }
}
