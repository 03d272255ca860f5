//! The contract between the ServerSan agent and server.
//!
//! Everything here is pure: no sockets, no files, no clocks (callers pass the
//! current time in). That keeps the wire format testable in isolation and lets
//! an agent written in another language be checked against the same code.
//! `docs/protocol.md` describes the same format in prose.

pub mod auth_code;
pub mod report;
pub mod signing;
pub mod validate;

pub use auth_code::{AuthCode, AuthCodeError};
pub use report::Report;
pub use signing::{SignedRequest, random_nonce, sign, verify_signature};
pub use validate::{Limits, ValidationError, parse_and_validate, parse_report, validate_report};

/// Path the agent posts reports to, relative to the server's base URL.
pub const REPORT_PATH: &str = "/v1/report";

/// The report format version this crate speaks.
pub const REPORT_VERSION: u32 = 1;

/// Header names of a signed report request.
pub mod headers {
    pub const KEY: &str = "x-serversan-key";
    pub const TIMESTAMP: &str = "x-serversan-timestamp";
    pub const NONCE: &str = "x-serversan-nonce";
    pub const SIGNATURE: &str = "x-serversan-signature";
}
