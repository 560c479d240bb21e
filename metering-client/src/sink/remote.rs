//! The remote sink: a `metering-server` over HTTP (reqwest with rustls, keep-alive).

use std::time::Duration;

use async_trait::async_trait;
use metering_core::api::ErrorEnvelope;
use metering_core::{FieldError, QuotaDecision, ValidateRequest};
use reqwest::{Response, StatusCode, header};

use super::Sink;
use crate::config::ClientConfig;
use crate::error::{ClientError, SendFailure};
use crate::wire::{self, Pending};

/// Posts batches to `POST /v1/meter/events` and checks quotas with `POST /v1/meter/validate`.
#[derive(Debug, Clone)]
pub(crate) struct RemoteSink {
    http: reqwest::Client,
    events_url: String,
    validate_url: String,
    api_key: Option<String>,
}

/// What an error answer says: its envelope, or only the status when the body is not one
/// (a proxy's page, or a code this version does not know).
#[derive(Debug)]
struct Failure {
    code: String,
    message: String,
    errors: Vec<FieldError>,
}

impl Failure {
    fn from_envelope(envelope: ErrorEnvelope) -> Self {
        let error = envelope.error;
        Failure {
            code: error.code.to_string(),
            errors: error
                .details
                .map(|d| d.field_errors(&error.message))
                .unwrap_or_default(),
            message: error.message,
        }
    }
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

async fn failure(response: Response) -> Failure {
    let status = response.status();
    match response.json::<ErrorEnvelope>().await {
        Ok(envelope) => Failure::from_envelope(envelope),
        Err(_) => Failure {
            code: String::new(),
            message: format!("HTTP {status}"),
            errors: Vec::new(),
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
        let detail = failure(response).await;
        match status {
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                Err(SendFailure::Invalid {
                    errors: detail.errors,
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
        let response = self
            .post(&self.validate_url)
            .json(&request)
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
        let detail = failure(response).await;
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            Err(ClientError::Rejected {
                errors: detail.errors,
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
        let body: ErrorEnvelope = serde_json::from_value(json!({"error": {
            "code": "VALIDATION_ERROR", "message": "bad",
            "details": {"errors": [{"index": 3, "field": "events[3].quantity", "message": "must be > 0"}]}
        }}))
        .expect("parses");
        let errors = Failure::from_envelope(body).errors;
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
