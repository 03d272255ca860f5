//! A request's parameters, from any of the four ways the Bot API accepts
//! them (query string, JSON, url-encoded form, multipart form), normalised
//! to text the way the Bot API server does: nested JSON values are kept as
//! JSON text, so `reply_markup` means the same whichever way it came.

use std::collections::{BTreeMap, HashMap};

use axum::Form;
use axum::body::to_bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Query, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::Value;

use crate::reply::ApiError;

/// Largest request body accepted: Telegram's upload limit.
pub const MAX_BODY_BYTES: usize = 50 * 1024 * 1024;

/// One multipart part, kept as bytes.
#[derive(Clone, Debug)]
pub struct Part {
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct Args {
    params: BTreeMap<String, String>,
    parts: HashMap<String, Part>,
}

fn too_large() -> ApiError {
    ApiError::new(413, "Request Entity Too Large")
}

/// A body over the limit is "too large"; anything else is malformed.
fn multipart_error(e: MultipartError) -> ApiError {
    if e.status().as_u16() == 413 {
        too_large()
    } else {
        ApiError::bad_request("can't parse multipart/form-data request body")
    }
}

impl Args {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// An integer argument; like the Bot API, unreadable means absent.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| v.trim().parse().ok())
    }

    /// A boolean argument, read as the Bot API reads it.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| matches!(v.as_str(), "true" | "yes" | "1"))
    }

    /// A multipart part by name (an upload).
    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.get(name)
    }

    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// Names of parts that carried files.
    pub fn file_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .parts
            .iter()
            .filter(|(_, p)| p.file_name.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Reads every parameter of `request`.
    pub async fn from_request(request: Request) -> Result<Self, ApiError> {
        let mut args = Args::default();
        if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(request.uri()) {
            args.params.extend(pairs);
        }
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            args.read_multipart(request).await?;
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let Form(pairs) = Form::<Vec<(String, String)>>::from_request(request, &())
                .await
                .map_err(|e| {
                    if e.status().as_u16() == 413 {
                        too_large()
                    } else {
                        ApiError::bad_request("can't parse url-encoded request body")
                    }
                })?;
            args.params.extend(pairs);
        } else if content_type.starts_with("application/json") {
            let body = to_bytes(request.into_body(), MAX_BODY_BYTES)
                .await
                .map_err(|_| too_large())?;
            if !body.is_empty() {
                args.read_json(&body)?;
            }
        }
        Ok(args)
    }

    fn read_json(&mut self, body: &[u8]) -> Result<(), ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| ApiError::bad_request("can't parse JSON object"))?;
        let Value::Object(object) = value else {
            return Err(ApiError::bad_request("JSON object expected"));
        };
        for (name, value) in object {
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                nested => nested.to_string(),
            };
            self.params.insert(name, text);
        }
        Ok(())
    }

    async fn read_multipart(&mut self, request: Request) -> Result<(), ApiError> {
        let bad = |_| ApiError::bad_request("can't parse multipart/form-data request body");
        let mut form = Multipart::from_request(request, &()).await.map_err(bad)?;
        loop {
            let field = form.next_field().await.map_err(multipart_error)?;
            let Some(field) = field else {
                return Ok(());
            };
            let name = field.name().unwrap_or("").to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let bytes = field.bytes().await.map_err(multipart_error)?;
            if file_name.is_none() {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::bad_request("strings must be encoded in UTF-8"))?;
                self.params.insert(name.clone(), text);
            }
            let part = Part {
                file_name,
                bytes: bytes.to_vec(),
            };
            self.parts.insert(name, part);
        }
    }
}
