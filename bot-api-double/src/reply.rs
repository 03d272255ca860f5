//! Telegram's response envelope: `{"ok":true,"result":…}` on success and
//! `{"ok":false,"error_code":N,"description":"…"}` on failure.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A refusal exactly as Telegram words it. The HTTP status equals
/// `error_code`, as with the real Bot API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub description: String,
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// 400 `Bad Request: {what}`.
    pub fn bad_request(what: impl AsRef<str>) -> Self {
        Self::new(400, format!("Bad Request: {}", what.as_ref()))
    }

    pub fn new(code: u16, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized")
    }

    pub fn not_found() -> Self {
        Self::new(404, "Not Found")
    }

    pub fn blocked() -> Self {
        Self::new(403, "Forbidden: bot was blocked by the user")
    }

    pub fn chat_not_found() -> Self {
        Self::bad_request("chat not found")
    }

    pub fn too_many_requests(retry_after: u32) -> Self {
        Self {
            code: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            retry_after: Some(retry_after),
        }
    }

    pub fn conflict(what: &str) -> Self {
        Self::new(409, format!("Conflict: {what}"))
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "ok": false,
            "error_code": self.code,
            "description": self.description,
        });
        if let Some(after) = self.retry_after {
            v["parameters"] = json!({ "retry_after": after });
        }
        v
    }
}

/// A successful answer; some methods add a `description` next to `result`.
#[derive(Clone, Debug)]
pub struct Success {
    pub result: Value,
    pub description: Option<&'static str>,
}

impl Success {
    pub fn of(result: Value) -> Self {
        Self {
            result,
            description: None,
        }
    }

    pub fn with_description(result: Value, description: &'static str) -> Self {
        Self {
            result,
            description: Some(description),
        }
    }
}

pub type ApiResult = Result<Success, ApiError>;

/// Renders a method's outcome as the HTTP response Telegram would send.
pub(crate) fn into_response(outcome: &ApiResult) -> Response {
    let (status, body) = match outcome {
        Ok(ok) => {
            let mut body = json!({ "ok": true, "result": ok.result });
            if let Some(d) = ok.description {
                body["description"] = json!(d);
            }
            (StatusCode::OK, body)
        }
        Err(e) => (
            StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.to_json(),
        ),
    };
    (status, axum::Json(body)).into_response()
}
