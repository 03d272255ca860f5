//! Every way a report request can be refused, with its status, message and
//! metric label in one place.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use serversan_protocol::ValidationError;

/// Answer to an unknown key and to a bad signature alike, byte for byte, so
/// a prober cannot tell which key ids exist.
pub const UNAUTHORIZED_MESSAGE: &str = "unknown key or bad signature";

/// Why a report was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 413: the body is larger than the limit.
    TooLarge { limit: usize },
    /// 415: not `application/json`.
    UnsupportedMediaType,
    /// 400: a signing header is missing or malformed.
    BadHeader(String),
    /// 400: the body could not be read.
    BadBody,
    /// 401: the timestamp is outside the accepted window.
    StaleTimestamp { offset_secs: i64, skew_secs: i64 },
    /// 401: unknown key or bad signature (indistinguishable on purpose).
    Unauthorized,
    /// 429: this client IP failed authentication too often.
    TooManyFailures { retry_after_secs: u64 },
    /// 409: the nonce was already used by an accepted request.
    NonceUsed,
    /// 400: the report is malformed or invalid.
    Invalid(ValidationError),
    /// 400: not later than the last accepted report (duplicate or out of
    /// order): retrying cannot help.
    NotNewer { last_collected_at: i64 },
    /// 429: collected too soon after the last accepted report.
    TooSoon {
        retry_after_secs: i64,
        interval_secs: i64,
    },
    /// 429: the per-minute arrival cap for this server is reached.
    RateCapped { retry_after_secs: i64 },
    /// 503: storage is unavailable; nothing was stored.
    Unavailable { retry_after_secs: u64 },
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::BadHeader(_) | Refusal::BadBody | Refusal::Invalid(_) => {
                StatusCode::BAD_REQUEST
            }
            Refusal::NotNewer { .. } => StatusCode::BAD_REQUEST,
            Refusal::StaleTimestamp { .. } | Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::NonceUsed => StatusCode::CONFLICT,
            Refusal::TooManyFailures { .. }
            | Refusal::TooSoon { .. }
            | Refusal::RateCapped { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable code of the refusal: the `reason` member of the answer and the
    /// label of the `serversan_reports_total{outcome=…}` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "too_large",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
            Refusal::BadHeader(_) => "bad_header",
            Refusal::BadBody => "bad_body",
            Refusal::StaleTimestamp { .. } => "stale_timestamp",
            Refusal::Unauthorized => "unauthorized",
            Refusal::TooManyFailures { .. } => "auth_rate_limited",
            Refusal::NonceUsed => "nonce_reused",
            Refusal::Invalid(_) => "invalid_report",
            Refusal::NotNewer { .. } => "not_newer",
            Refusal::TooSoon { .. } => "too_soon",
            Refusal::RateCapped { .. } => "rate_capped",
            Refusal::Unavailable { .. } => "unavailable",
        }
    }

    /// Whether this refusal counts as a failed authentication for the
    /// per-IP limiter.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            Refusal::BadHeader(_) | Refusal::StaleTimestamp { .. } | Refusal::Unauthorized
        )
    }

    fn message(&self) -> String {
        match self {
            Refusal::TooLarge { limit } => format!("body larger than {limit} bytes"),
            Refusal::UnsupportedMediaType => "Content-Type must be application/json".into(),
            Refusal::BadHeader(msg) => msg.clone(),
            Refusal::BadBody => "the request body could not be read".into(),
            Refusal::StaleTimestamp {
                offset_secs,
                skew_secs,
            } => format!(
                "X-Serversan-Timestamp is {} seconds {} the server's clock (at most {skew_secs} \
                 allowed); check the host's clock against this answer's Date header",
                offset_secs.unsigned_abs(),
                if *offset_secs < 0 {
                    "behind"
                } else {
                    "ahead of"
                }
            ),
            Refusal::Unauthorized => UNAUTHORIZED_MESSAGE.into(),
            Refusal::TooManyFailures { .. } => {
                "too many failed authentications from this address; try again later".into()
            }
            Refusal::NonceUsed => "nonce already used: this request was already accepted".into(),
            Refusal::Invalid(e) => e.to_string(),
            Refusal::NotNewer { last_collected_at } => format!(
                "collected_at: not later than the last accepted report's ({last_collected_at}); \
                 this report is a duplicate or out of order and will never be accepted"
            ),
            Refusal::TooSoon {
                retry_after_secs,
                interval_secs,
            } => format!(
                "too frequent: reports of one server must be collected at least {interval_secs} \
                 seconds apart; collect the next one {retry_after_secs} seconds later"
            ),
            Refusal::RateCapped { .. } => {
                "too many reports for this server this minute; send the rest later".into()
            }
            Refusal::Unavailable { .. } => {
                "storage unavailable; nothing was stored, send the report again later".into()
            }
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Refusal::TooManyFailures { retry_after_secs }
            | Refusal::Unavailable { retry_after_secs } => Some(*retry_after_secs),
            Refusal::TooSoon {
                retry_after_secs, ..
            }
            | Refusal::RateCapped { retry_after_secs } => {
                Some(u64::try_from(*retry_after_secs).unwrap_or(1).max(1))
            }
            _ => None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        // `reason` is a stable machine-readable code (an agent can tell a
        // report that will never be accepted, `too_soon`, from a full
        // minute, `rate_capped`); `error` is for people.
        let reason = self.metric_label();
        let body = match &self {
            Refusal::Invalid(e) => {
                json!({ "error": self.message(), "reason": reason, "field": e.field })
            }
            _ => json!({ "error": self.message(), "reason": reason }),
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_protocol() {
        assert_eq!(Refusal::TooLarge { limit: 1 }.status().as_u16(), 413);
        assert_eq!(Refusal::UnsupportedMediaType.status().as_u16(), 415);
        assert_eq!(Refusal::Unauthorized.status().as_u16(), 401);
        assert_eq!(Refusal::NonceUsed.status().as_u16(), 409);
        assert_eq!(
            Refusal::Invalid(ValidationError::new("a", "b"))
                .status()
                .as_u16(),
            400
        );
        assert_eq!(
            Refusal::TooSoon {
                retry_after_secs: 3,
                interval_secs: 10
            }
            .status()
            .as_u16(),
            429
        );
        assert_eq!(
            Refusal::Unavailable {
                retry_after_secs: 30
            }
            .status()
            .as_u16(),
            503
        );
    }

    #[test]
    fn retry_after_is_a_positive_integer() {
        let r = Refusal::RateCapped {
            retry_after_secs: 0,
        }
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = Refusal::Unavailable {
            retry_after_secs: 30,
        }
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "30");
        assert!(
            Refusal::Unauthorized
                .into_response()
                .headers()
                .get(header::RETRY_AFTER)
                .is_none()
        );
    }
}
