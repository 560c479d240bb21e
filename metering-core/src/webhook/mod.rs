//! Webhook endpoints: where alerts about quotas go, and how each message is signed.
//!
//! Messages are signed as [Standard Webhooks](https://www.standardwebhooks.com/) specifies:
//! the headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,` and the base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"`), keyed with the
//! base64-decoded part of the endpoint's `whsec_` secret. [`WebhookSecret::sign`] makes the
//! header and [`WebhookSecret::verify`] checks one, as a receiver written in Rust would.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result, ValidationErrors};

/// Prefix of every signing secret, as Standard Webhooks writes them.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new signing secret.
const SECRET_BYTES: usize = 32;

/// The longest URL an endpoint may have, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// How far a signed timestamp may be from the receiver's clock, in seconds, before
/// [`WebhookSecret::verify`] refuses it (replay protection, as Standard Webhooks advises).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// A webhook endpoint's identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookId(pub uuid::Uuid);

impl WebhookId {
    /// A new random (time-ordered) id.
    #[must_use]
    pub fn generate() -> Self {
        WebhookId(uuid::Uuid::now_v7())
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for WebhookId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        s.parse().map(WebhookId)
    }
}

/// What a message is about; an endpoint subscribes to some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AlertKind {
    /// Usage first reached one of a quota's thresholds in a period.
    #[serde(rename = "quota.threshold")]
    Threshold,
    /// Usage reached the limit, or a check was refused, for the first time in a period.
    #[serde(rename = "quota.exceeded")]
    Exceeded,
    /// A period in which alerts fired has ended.
    #[serde(rename = "quota.reset")]
    Reset,
}

impl AlertKind {
    /// Every kind, in wire order.
    pub const ALL: [AlertKind; 3] = [AlertKind::Threshold, AlertKind::Exceeded, AlertKind::Reset];

    /// The wire name, e.g. `quota.threshold`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Threshold => "quota.threshold",
            AlertKind::Exceeded => "quota.exceeded",
            AlertKind::Reset => "quota.reset",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AlertKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| "must be one of quota.threshold, quota.exceeded, quota.reset".to_owned())
    }
}

/// A request for a new endpoint: the body of `POST /v1/meter/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct NewWebhook {
    /// Where messages are POSTed: an absolute `http` or `https` URL with a host, without
    /// credentials or a fragment, at most 2048 bytes. The pattern is the plain ASCII form
    /// (a name host, an optional port, path and query); other URLs the WHATWG parser reads
    /// are accepted too.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2048,
            pattern = r"^https?://(?:[a-z0-9]+\.)*[a-z][a-z0-9]*(?::[1-9][0-9]{0,3})?(?:/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?(?:\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?$"
        )
    )]
    pub url: String,
    /// The kinds of message it receives, each once (default, or `null`: every kind).
    #[cfg_attr(feature = "openapi", schema(schema_with = alert_kinds_schema, required = false))]
    pub events: Vec<AlertKind>,
    /// A note for people.
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub description: Option<String>,
}

impl NewWebhook {
    /// An endpoint at `url` receiving every kind of message.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when `url` is not an acceptable endpoint URL.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        let url = url.into();
        check_url(&url).map_err(|message| Error::invalid("url", message))?;
        Ok(NewWebhook {
            url,
            events: AlertKind::ALL.to_vec(),
            description: None,
        })
    }

    /// Subscribes it to `events` only.
    #[must_use]
    pub fn with_events(mut self, events: impl IntoIterator<Item = AlertKind>) -> Self {
        self.events = events.into_iter().collect();
        self.events.sort_unstable();
        self.events.dedup();
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Checks what the types do not: the URL, at least one event, the description's length.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] listing each broken rule.
    pub fn validate(self) -> Result<Self> {
        let mut errors = ValidationErrors::new();
        self.check(true, &mut errors);
        errors.into_result(self)
    }

    /// Pushes the rules [`NewWebhook::validate`] checks; the URL's only when `url_given`.
    fn check(&self, url_given: bool, errors: &mut ValidationErrors) {
        if url_given && let Err(message) = check_url(&self.url) {
            errors.push(None, "url", message);
        }
        if self.events.is_empty() {
            errors.push(None, "events", "must name at least one event type");
        }
        if let Some(d) = &self.description
            && d.chars().count() > MAX_DESCRIPTION_CHARS
        {
            errors.push(
                None,
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            );
        }
    }

    /// Decodes `{"url", "events", "description"}`, collecting every problem.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] listing each bad field.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        use serde_json::Value;
        let Value::Object(map) = value else {
            return Err(Error::invalid("body", "must be a JSON object"));
        };
        let mut errors = ValidationErrors::new();
        let mut url = None;
        let mut events = AlertKind::ALL.to_vec();
        let mut description = None;
        for (key, v) in map {
            match (key.as_str(), v) {
                ("url", Value::String(s)) => url = Some(s.clone()),
                ("url", _) => errors.push(None, "url", "must be a string"),
                ("events", Value::Null) | ("description", Value::Null) => {}
                ("events", Value::Array(items)) => {
                    events.clear();
                    for (i, item) in items.iter().enumerate() {
                        let field = format!("events[{i}]");
                        match item.as_str().map(str::parse::<AlertKind>) {
                            Some(Ok(kind)) if events.contains(&kind) => {
                                errors.push(None, field, "appears more than once");
                            }
                            Some(Ok(kind)) => events.push(kind),
                            Some(Err(message)) => errors.push(None, field, message),
                            None => errors.push(None, field, "must be a string"),
                        }
                    }
                }
                ("events", _) => errors.push(None, "events", "must be an array of event types"),
                ("description", Value::String(s)) => description = Some(s.clone()),
                ("description", _) => errors.push(None, "description", "must be a string or null"),
                (other, _) => errors.push(None, other, "unknown field"),
            }
        }
        if !map.contains_key("url") {
            errors.push(None, "url", "is required");
        }
        events.sort_unstable();
        let new = NewWebhook {
            url: url.clone().unwrap_or_default(),
            events,
            description,
        };
        let mistyped_events = errors
            .errors()
            .iter()
            .any(|e| e.field.starts_with("events"));
        let mut rules = ValidationErrors::new();
        new.check(url.is_some(), &mut rules);
        for e in rules.errors() {
            if !(mistyped_events && e.field == "events") {
                errors.push(None, e.field.clone(), e.message.clone());
            }
        }
        errors.into_result(new)
    }
}

/// The schema of [`NewWebhook::events`]: `null`, or 1 to 3 distinct kinds.
#[cfg(feature = "openapi")]
fn alert_kinds_schema() -> utoipa::openapi::schema::Array {
    use utoipa::ToSchema;
    use utoipa::openapi::schema::{ArrayBuilder, Type};
    use utoipa::openapi::{Ref, RefOr};
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(RefOr::Ref(Ref::from_schema_name(AlertKind::name())))
        .min_items(Some(1))
        .max_items(Some(AlertKind::ALL.len()))
        .unique_items(true)
        .description(Some(
            "The kinds of message it receives, each once (default, or `null`: every kind)",
        ))
        .build()
}

/// Checks an endpoint URL: absolute `http` or `https` with a host, no credentials, no
/// fragment, at most [`MAX_URL_LEN`] bytes. Returns the message to report otherwise.
fn check_url(raw: &str) -> std::result::Result<(), String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} bytes"));
    }
    let parsed =
        url::Url::parse(raw).map_err(|e| format!("must be an absolute http or https URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "must not hold credentials; receivers authenticate messages by their signature"
                .to_owned(),
        );
    }
    if parsed.fragment().is_some() {
        return Err("must not have a fragment (#...)".to_owned());
    }
    Ok(())
}

/// A stored endpoint, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// Identifier.
    pub id: WebhookId,
    /// Where messages are POSTed.
    pub url: String,
    /// The kinds of message it receives.
    pub events: Vec<AlertKind>,
    /// A note for people.
    pub description: Option<String>,
    /// When it was registered.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When it stopped receiving messages because it answered `410 Gone`; null while active.
    #[serde(with = "crate::time::rfc3339::option")]
    pub disabled_at: Option<DateTime<Utc>>,
}

impl Webhook {
    /// The stored form of `new`, registered at `now`.
    #[must_use]
    pub fn register(new: NewWebhook, now: DateTime<Utc>) -> Self {
        Webhook {
            id: WebhookId::generate(),
            url: new.url,
            events: new.events,
            description: new.description,
            created_at: crate::time::truncate_micros(now),
            disabled_at: None,
        }
    }

    /// Whether it receives messages of `kind` (and is not disabled).
    #[must_use]
    pub fn receives(&self, kind: AlertKind) -> bool {
        self.disabled_at.is_none() && self.events.contains(&kind)
    }

    /// The event types as stored text: wire names joined by commas.
    #[must_use]
    pub fn events_text(&self) -> String {
        let names: Vec<&str> = self.events.iter().map(|k| k.as_str()).collect();
        names.join(",")
    }

    /// Reads [`Webhook::events_text`] back; `None` for an unknown name.
    #[must_use]
    pub fn parse_events_text(text: &str) -> Option<Vec<AlertKind>> {
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().ok())
            .collect()
    }
}

/// A delivery's identifier: one message to one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(pub uuid::Uuid);

impl DeliveryId {
    /// A new random (time-ordered) id.
    #[must_use]
    pub fn generate() -> Self {
        DeliveryId(uuid::Uuid::now_v7())
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for DeliveryId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        s.parse().map(DeliveryId)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not yet answered with a 2xx; retried until it is or it is too old.
    Pending,
    /// The endpoint answered with a 2xx.
    Delivered,
    /// Given up: too old, or the endpoint answered `410 Gone`.
    Failed,
}

impl DeliveryStatus {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            _ => Err("must be one of pending, delivered, failed".into()),
        }
    }
}

/// One message to one endpoint, and how its sending went. Its JSON form (an item of
/// `GET /v1/meter/webhooks/{id}/deliveries`) leaves out the endpoint and the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// Identifier.
    pub id: DeliveryId,
    /// The endpoint.
    #[serde(skip_serializing)]
    pub webhook_id: WebhookId,
    /// The message (its `webhook-id` header and payload `id`).
    pub message_id: String,
    /// The message's type.
    #[serde(rename = "type")]
    pub kind: AlertKind,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// How many times it was sent.
    pub attempts: u32,
    /// The HTTP status of the last attempt (none when it got no answer).
    pub last_status_code: Option<u16>,
    /// When the message was written.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When the endpoint answered with a 2xx.
    #[serde(with = "crate::time::rfc3339::option")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// The JSON payload sent.
    #[serde(skip_serializing)]
    pub payload: String,
}

/// A delivery to send now, with where and how to sign it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The delivery (its payload, message id and attempts so far).
    pub delivery: Delivery,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's signing secret.
    pub secret: WebhookSecret,
}

/// How one attempt at a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The endpoint answered with this 2xx status.
    Delivered {
        /// The HTTP status.
        status_code: u16,
    },
    /// No 2xx (this status, or none for a timeout or a refused connection): try again at
    /// `next_attempt_at`.
    Retry {
        /// The HTTP status, when there was an answer.
        status_code: Option<u16>,
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
    },
    /// No 2xx and the message is too old to try again: given up.
    GaveUp {
        /// The HTTP status, when there was an answer.
        status_code: Option<u16>,
    },
    /// The endpoint answered `410 Gone`: the delivery fails and the endpoint is disabled.
    Gone,
}

impl Attempt {
    /// What a store records for this attempt, made at `at`.
    #[must_use]
    pub fn record(self, at: DateTime<Utc>) -> AttemptRecord {
        let at = crate::time::truncate_micros(at);
        let (status, status_code, next_attempt_at, delivered_at) = match self {
            Attempt::Delivered { status_code } => {
                (DeliveryStatus::Delivered, Some(status_code), None, Some(at))
            }
            Attempt::Retry {
                status_code,
                next_attempt_at,
            } => (
                DeliveryStatus::Pending,
                status_code,
                Some(crate::time::truncate_micros(next_attempt_at)),
                None,
            ),
            Attempt::GaveUp { status_code } => (DeliveryStatus::Failed, status_code, None, None),
            Attempt::Gone => (DeliveryStatus::Failed, Some(410), None, None),
        };
        AttemptRecord {
            status,
            status_code,
            next_attempt_at,
            delivered_at,
            disables_endpoint: self == Attempt::Gone,
        }
    }
}

/// The columns an attempt sets on its delivery (one more attempt; the lease ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The delivery's new state.
    pub status: DeliveryStatus,
    /// The HTTP status of the attempt, when there was an answer.
    pub status_code: Option<u16>,
    /// When to try again (a retry only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered (a 2xx only).
    pub delivered_at: Option<DateTime<Utc>>,
    /// Whether the endpoint is disabled (it answered `410 Gone`).
    pub disables_endpoint: bool,
}

/// How many deliveries are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Waiting to be sent (again).
    pub pending: u64,
    /// Answered with a 2xx.
    pub delivered: u64,
    /// Given up.
    pub failed: u64,
}

/// An endpoint's signing secret: `whsec_` and the base64 of 32 random bytes.
///
/// Its `Debug` form hides it; it is shown once, when the endpoint is registered.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A new random secret.
    #[must_use]
    pub fn generate() -> Self {
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        WebhookSecret {
            text: format!("{WEBHOOK_SECRET_PREFIX}{}", STANDARD.encode(&key)),
            key,
        }
    }

    /// Reads a secret's text (`whsec_` and base64, as [`WebhookSecret::as_str`] gives).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when it lacks the prefix or the rest is not base64.
    pub fn parse(text: &str) -> Result<Self> {
        let key = text
            .strip_prefix(WEBHOOK_SECRET_PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|key| !key.is_empty())
            .ok_or_else(|| Error::invalid("secret", "must be `whsec_` followed by base64 bytes"))?;
        Ok(WebhookSecret {
            text: text.to_owned(),
            key,
        })
    }

    /// The text to hand to the receiver (and to store).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `webhook-signature` header of a message: `v1,` and the base64 HMAC-SHA256 of
    /// `"{id}.{timestamp}.{body}"`.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    /// Checks a message as a receiver should: `timestamp` within
    /// [`SIGNATURE_TOLERANCE_SECS`] of `now`, and one of the space-separated `v1,`
    /// signatures in `header` matching, compared in constant time.
    #[must_use]
    pub fn verify(
        &self,
        id: &str,
        timestamp: i64,
        body: &[u8],
        header: &str,
        now: DateTime<Utc>,
    ) -> bool {
        if (now.timestamp() - timestamp).abs() > SIGNATURE_TOLERANCE_SECS {
            return false;
        }
        header.split(' ').any(|candidate| {
            candidate
                .strip_prefix("v1,")
                .and_then(|b64| STANDARD.decode(b64).ok())
                .is_some_and(|tag| {
                    let mut mac = self.hmac();
                    mac.update(&signed_content(id, timestamp, body));
                    mac.verify_slice(&tag).is_ok()
                })
        })
    }

    fn hmac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(&signed_content(id, timestamp, body));
        mac.finalize().into_bytes().to_vec()
    }
}

/// What a signature covers: `"{id}.{timestamp}.{body}"`.
fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// A freshly registered endpoint and its secret, which is never shown again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedWebhook {
    /// The stored record.
    pub webhook: Webhook,
    /// The signing secret to hand to the receiver.
    pub secret: WebhookSecret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a secret");
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let header = secret.sign(id, 1_614_265_330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let at = DateTime::from_timestamp(1_614_265_330, 0).expect("a time");
        assert!(secret.verify(id, 1_614_265_330, body, &header, at));
        assert!(secret.verify(id, 1_614_265_330, body, &format!("v1,bad {header}"), at));
        assert!(!secret.verify(id, 1_614_265_330, b"{}", &header, at));
        assert!(!secret.verify("msg_other", 1_614_265_330, body, &header, at));
        let late = DateTime::from_timestamp(1_614_265_330 + 301, 0).expect("a time");
        assert!(!secret.verify(id, 1_614_265_330, body, &header, late));
    }

    #[test]
    fn secrets_are_random_and_read_back() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with(WEBHOOK_SECRET_PREFIX));
        assert_eq!(WebhookSecret::parse(a.as_str()).expect("parses"), a);
        assert!(!format!("{a:?}").contains(a.as_str()));
        assert!(WebhookSecret::parse("whsec_%%%").is_err());
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    }

    fn fields(result: Result<NewWebhook>) -> Vec<String> {
        match result {
            Err(Error::Validation(errors)) => {
                let mut fields: Vec<String> =
                    errors.errors().iter().map(|e| e.field.clone()).collect();
                fields.sort();
                fields
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn endpoints_decode_with_every_problem_named() {
        let ok = NewWebhook::from_json(&serde_json::json!({
            "url": "https://example.com/hooks?x=1",
            "events": ["quota.exceeded", "quota.threshold"],
            "description": "billing"
        }))
        .expect("valid");
        assert_eq!(ok.events, vec![AlertKind::Threshold, AlertKind::Exceeded]);
        let all = NewWebhook::from_json(&serde_json::json!({"url": "http://127.0.0.1:9/x"}))
            .expect("valid");
        assert_eq!(all.events, AlertKind::ALL.to_vec());
        for (url, why) in [
            ("ftp://example.com/x", "scheme"),
            ("example.com/x", "relative"),
            ("https://user:pw@example.com/", "credentials"),
            ("https://example.com/#top", "fragment"),
            ("http://", "no host"),
        ] {
            assert_eq!(
                fields(NewWebhook::from_json(&serde_json::json!({"url": url}))),
                ["url"],
                "{why}"
            );
        }
        assert_eq!(
            fields(NewWebhook::from_json(&serde_json::json!({
                "url": "https://example.com", "events": ["quota.used", "quota.reset", "quota.reset"],
                "color": 1
            }))),
            ["color", "events[0]", "events[2]"]
        );
        assert_eq!(
            fields(NewWebhook::from_json(&serde_json::json!({"events": []}))),
            ["events", "url"]
        );
        assert_eq!(
            fields(NewWebhook::from_json(&serde_json::json!({
                "url": "https://example.com", "description": "x".repeat(1025)
            }))),
            ["description"]
        );
    }

    #[test]
    fn event_texts_read_back() {
        let hook = Webhook::register(
            NewWebhook::new("https://example.com")
                .expect("url")
                .with_events([AlertKind::Reset, AlertKind::Threshold]),
            DateTime::UNIX_EPOCH,
        );
        assert_eq!(hook.events_text(), "quota.threshold,quota.reset");
        assert_eq!(
            Webhook::parse_events_text(&hook.events_text()),
            Some(hook.events.clone())
        );
        assert_eq!(Webhook::parse_events_text("quota.nope"), None);
        assert!(hook.receives(AlertKind::Reset));
        assert!(!hook.receives(AlertKind::Exceeded));
    }
}
