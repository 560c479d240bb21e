//! The remote sink: a `metering-server` over HTTP (reqwest with rustls, keep-alive).

use std::time::Duration;

use async_trait::async_trait;
use metering_core::{FieldError, Metadata, Quantity, QuotaDecision, ValidateRequest};
use reqwest::{Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Sink;
use crate::config::ClientConfig;
use crate::error::{ClientError, SendFailure};
use crate::wire::{self, Pending};

/// The body of `POST /v1/meter/validate`, written straight to bytes so the quantity keeps
/// its exact decimal text.
#[derive(Debug, Serialize)]
struct ValidateBody<'a> {
    tenant_id: &'a str,
    feature: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    quantity: Quantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<&'a str>,
    consume: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
}

/// Posts batches to `POST /v1/meter/events` and checks quotas with `POST /v1/meter/validate`.
#[derive(Debug, Clone)]
pub(crate) struct RemoteSink {
    http: reqwest::Client,
    events_url: String,
    validate_url: String,
    api_key: Option<String>,
}

/// The error body of the REST contract.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Option<Value>,
}

impl RemoteSink {
    /// A sink for the server at `config.api_url`.
    pub(crate) fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let Some(base) = config.api_url.as_deref() else {
            return Err(ClientError::Config(
                "api_url (METERING_API_URL) is required for the remote sink".into(),
            ));
        };
        let base = base.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "api_url must start with http:// or https://, got {base:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(RemoteSink {
            http,
            events_url: format!("{base}/v1/meter/events"),
            validate_url: format!("{base}/v1/meter/validate"),
            api_key: config.api_key.clone(),
        })
    }

    fn post(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.post(url);
        match &self.api_key {
            Some(key) => request.header("X-API-Key", key),
            None => request,
        }
    }
}

/// Seconds of a `Retry-After` header (the HTTP-date form is not used by the server).
fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Reads `details.errors` (or `details.field`) of an error body.
fn field_errors(detail: &ErrorDetail) -> Vec<FieldError> {
    #[derive(Deserialize)]
    struct Item {
        index: Option<usize>,
        #[serde(default)]
        field: String,
        #[serde(default)]
        message: String,
    }
    let Some(details) = &detail.details else {
        return Vec::new();
    };
    if let Some(items) = details.get("errors") {
        if let Ok(items) = Vec::<Item>::deserialize(items) {
            return items
                .into_iter()
                .map(|i| FieldError {
                    index: i.index,
                    field: i.field,
                    message: i.message,
                })
                .collect();
        }
    }
    match details.get("field").and_then(Value::as_str) {
        Some(field) => vec![FieldError {
            index: None,
            field: field.to_owned(),
            message: detail.message.clone(),
        }],
        None => Vec::new(),
    }
}

async fn error_detail(response: Response) -> ErrorDetail {
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(body) => body.error,
        Err(_) => ErrorDetail {
            code: String::new(),
            message: format!("HTTP {status}"),
            details: None,
        },
    }
}

/// The JSON body of a batch. A batch of thousands of events takes a millisecond or more to
/// encode. The batcher does that on the client's own thread; a flush or a sync-mode send
/// does it on the caller's runtime, and on a multi-threaded one under `block_in_place`, so
/// the worker's other tasks (the application's requests) move to another thread meanwhile.
fn encode_batch(events: &[Pending]) -> Vec<u8> {
    let encode = || wire::encode_batch(events);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(encode)
        }
        _ => encode(),
    }
}

fn connection_failure(error: reqwest::Error) -> SendFailure {
    SendFailure::Retryable {
        message: format!("request failed: {error}"),
        retry_after: None,
        source: Some(Box::new(error)),
    }
}

#[async_trait]
impl Sink for RemoteSink {
    async fn send(&self, events: &[Pending]) -> Result<(), SendFailure> {
        let body = encode_batch(events);
        let response = self
            .post(&self.events_url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(connection_failure)?;
        let status = response.status();
        if status.is_success() {
            // Drain the body so the connection goes back to the pool.
            let _ = response.bytes().await;
            return Ok(());
        }
        let wait = retry_after(&response);
        let detail = error_detail(response).await;
        match status {
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                Err(SendFailure::Invalid {
                    errors: field_errors(&detail),
                    message: format!("{} {}: {}", status.as_u16(), detail.code, detail.message),
                })
            }
            StatusCode::PAYLOAD_TOO_LARGE => Err(SendFailure::TooLarge {
                message: detail.message,
            }),
            // 5xx, 429, and also 401/403/404/408: a bad key or URL is a deployment problem
            // that someone will fix; until then the events wait (and spill) rather than being
            // thrown away.
            _ => Err(SendFailure::Retryable {
                message: format!(
                    "HTTP {}: {} {}",
                    status.as_u16(),
                    detail.code,
                    detail.message
                ),
                retry_after: wait,
                source: None,
            }),
        }
    }

    async fn validate(&self, request: ValidateRequest) -> Result<QuotaDecision, ClientError> {
        let period = request.period.map(|p| p.to_string());
        let body = ValidateBody {
            tenant_id: request.tenant_id.as_str(),
            feature: request.feature.as_str(),
            resource: request.resource.as_ref().map(|r| r.as_str()),
            quantity: request.quantity,
            period: period.as_deref(),
            consume: request.consume,
            id: request.id.as_ref().map(|id| id.as_str()),
            metadata: request.metadata.as_ref(),
        };
        let response = self
            .post(&self.validate_url)
            .json(&body)
            .send()
            .await
            .map_err(|e| ClientError::Unavailable {
                message: format!("validate request failed: {e}"),
                source: Some(Box::new(e)),
            })?;
        let status = response.status();
        if status.is_success() {
            return response
                .json::<QuotaDecision>()
                .await
                .map_err(|e| ClientError::Unavailable {
                    message: format!("unreadable validate response: {e}"),
                    source: Some(Box::new(e)),
                });
        }
        let detail = error_detail(response).await;
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            Err(ClientError::Rejected {
                errors: field_errors(&detail),
                message: format!("{} {}: {}", status.as_u16(), detail.code, detail.message),
            })
        } else {
            Err(ClientError::Unavailable {
                message: format!("HTTP {}: {}", status.as_u16(), detail.message),
                source: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_batch_errors() {
        let body: ErrorBody = serde_json::from_value(json!({"error": {
            "code": "VALIDATION_ERROR", "message": "bad",
            "details": {"errors": [{"index": 3, "field": "events[3].quantity", "message": "must be > 0"}]}
        }}))
        .expect("parses");
        let errors = field_errors(&body.error);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, Some(3));
    }

    #[test]
    fn urls_are_checked() {
        assert!(RemoteSink::new(&ClientConfig::default()).is_err());
        assert!(RemoteSink::new(&ClientConfig::default().with_api_url("localhost:1")).is_err());
        let sink =
            RemoteSink::new(&ClientConfig::default().with_api_url("http://h:1/")).expect("valid");
        assert_eq!(sink.events_url, "http://h:1/v1/meter/events");
    }
}
