//! The ServerSan agent: collect this host's figures, sign, send, spool.
//!
//! The binary is a thin shell over this library so that the server's
//! `serversan demo` can run the same agent in-process:
//!
//! ```no_run
//! use serversan_agent::{Collector, HttpOptions, Outcome, Sender, ServerUrl};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let code: serversan_protocol::AuthCode = "abcdEFGH1234.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA".parse()?;
//! let sender = Sender::new(&ServerUrl::parse("http://127.0.0.1:8080")?, &HttpOptions::default())?;
//! let mut collector = Collector::in_memory();
//! loop {
//!     let report = collector.collect();
//!     match sender.send_report(&code, &report) {
//!         Outcome::Accepted { .. } => {}
//!         other => eprintln!("not delivered: {other:?}"),
//!     }
//!     std::thread::sleep(std::time::Duration::from_secs(10));
//! }
//! # }
//! ```

pub mod auth;
pub mod collect;
pub mod config;
mod fsutil;
pub mod run;
pub mod send;
pub mod spool;
pub mod state;

pub use auth::{AuthFileError, load_auth_code};
pub use collect::Collector;
pub use config::{Config, ConfigError};
pub use run::{RunError, RunSummary, report_once, run_daemon};
pub use send::{HttpOptions, Outcome, Sender, ServerUrl, SetupError};
pub use spool::{Spool, SpoolBounds, SpoolEntry};
