//! BankID Relying Party API v6: request and response types, and an async client.
//!
//! Every status, hint code and error code is an open enum: known values plus `Unknown(String)`,
//! so a value BankID adds tomorrow never fails a whole response. Unknown fields are ignored.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

macro_rules! open_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[allow(missing_docs)] // variants are named exactly as BankID's values
        pub enum $name {
            $($(#[$vm])* $variant,)*
            /// A value this version does not know.
            Unknown(String),
        }
        impl $name {
            /// The value as BankID spells it.
            pub fn as_str(&self) -> &str {
                match self { $($name::$variant => $wire,)* $name::Unknown(s) => s }
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s { $($wire => $name::$variant,)* other => $name::Unknown(other.to_string()) }
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name::from(String::deserialize(d)?.as_str()))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

open_enum!(
    /// `status` of a collect response.
    CollectStatus {
        Pending = "pending",
        Failed = "failed",
        Complete = "complete",
    }
);

open_enum!(
    /// `hintCode` of a pending or failed order.
    HintCode {
        OutstandingTransaction = "outstandingTransaction",
        NoClient = "noClient",
        Started = "started",
        UserCallConfirm = "userCallConfirm",
        UserMrtd = "userMrtd",
        UserSign = "userSign",
        Processing = "processing",
        ExpiredTransaction = "expiredTransaction",
        CertificateErr = "certificateErr",
        UserCancel = "userCancel",
        Cancelled = "cancelled",
        StartFailed = "startFailed",
        UserDeclinedCall = "userDeclinedCall",
        NotSupportedByUserApp = "notSupportedByUserApp",
        TransactionRiskBlocked = "transactionRiskBlocked",
        // Reported (late 2026) but unconfirmed step-up codes: handled if they come.
        UserFace = "userFace",
        UserStepUp = "userStepUp",
        MrtdVerificationFailed = "mrtdVerificationFailed",
        FacialRecognitionFailed = "facialRecognitionFailed",
        NfcNotSupportedByDevice = "nfcNotSupportedByDevice",
        MultipleBankIdsOnDevice = "multipleBankIdsOnDevice",
        StepUpFailed = "stepUpFailed",
    }
);

open_enum!(
    /// `errorCode` of an error response.
    ErrorCode {
        AlreadyInProgress = "alreadyInProgress",
        InvalidParameters = "invalidParameters",
        Unauthorized = "unauthorized",
        NotFound = "notFound",
        MethodNotAllowed = "methodNotAllowed",
        RequestTimeout = "requestTimeout",
        UnsupportedMediaType = "unsupportedMediaType",
        InternalError = "internalError",
        Maintenance = "maintenance",
        TooManyRequests = "tooManyRequests",
    }
);

impl ErrorCode {
    /// `maintenance` or `tooManyRequests`: BankID is overloaded and asks to be tried later.
    pub fn is_overload(&self) -> bool {
        matches!(self, ErrorCode::Maintenance | ErrorCode::TooManyRequests)
    }
}

/// Who started the phone call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum CallInitiator {
    /// The customer called us (the IVR case).
    #[default]
    #[serde(rename = "user")]
    User,
    /// We called the customer.
    #[serde(rename = "RP")]
    Rp,
}

impl CallInitiator {
    /// `user` or `RP`, as BankID spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallInitiator::User => "user",
            CallInitiator::Rp => "RP",
        }
    }

    /// `user` or `RP` (case-insensitive).
    pub fn parse(s: &str) -> Option<CallInitiator> {
        match s.trim().to_ascii_lowercase().as_str() {
            "user" => Some(CallInitiator::User),
            "rp" => Some(CallInitiator::Rp),
            _ => None,
        }
    }
}

/// `requirement` of a phone order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// Ask for the security code even if biometrics are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_code: Option<bool>,
    /// Certificate policy OIDs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_policies: Option<Vec<String>>,
    /// Require an ID document scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mrtd: Option<bool>,
}

/// `userVisibleDataFormat`: how the app renders `userVisibleData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VisibleDataFormat {
    /// BankID's markdown subset.
    #[serde(rename = "simpleMarkdownV1")]
    SimpleMarkdownV1,
}

impl VisibleDataFormat {
    /// As BankID spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            VisibleDataFormat::SimpleMarkdownV1 => "simpleMarkdownV1",
        }
    }
}

/// Body of `phone/auth` and `phone/sign` (the same fields; `phone/sign` requires
/// `user_visible_data`). The data fields are base64 already (see [`encode_data`]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneAuthRequest {
    /// 12 digits.
    pub personal_number: String,
    /// `user` or `RP`.
    pub call_initiator: CallInitiator,
    /// Base64 of UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_visible_data: Option<String>,
    /// `simpleMarkdownV1` when the text is markdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_visible_data_format: Option<VisibleDataFormat>,
    /// Base64 of data not shown to the user (signed along with the text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_non_visible_data: Option<String>,
    /// Requirements on the user's BankID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirement: Option<Requirement>,
}

/// Body of `auth` (QR/app flows; not used by phone orders, kept for completeness).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthRequest {
    /// The end user's IP address.
    pub end_user_ip: String,
    /// Base64 of UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_visible_data: Option<String>,
}

/// BankID's limits on `userVisibleData` after base64 encoding: auth, sign.
pub const VISIBLE_DATA_MAX: (usize, usize) = (1_500, 40_000);
/// BankID's limits on `userNonVisibleData` after base64 encoding: auth, sign.
pub const NON_VISIBLE_DATA_MAX: (usize, usize) = (1_500, 200_000);

/// Base64-encodes user visible data and checks BankID's limit for auth (1–1 500 characters
/// after encoding).
pub fn encode_visible_data(text: &str) -> Result<String, String> {
    encode_data("userVisibleData", text, VISIBLE_DATA_MAX.0)
}

/// Base64-encodes `text` for the field `name` and checks that the encoding is 1 to `max`
/// characters long (BankID's rule; see [`VISIBLE_DATA_MAX`], [`NON_VISIBLE_DATA_MAX`]).
/// The error names the field and the lengths, never the text.
pub fn encode_data(name: &str, text: &str, max: usize) -> Result<String, String> {
    use base64::Engine as _;
    // Checked before encoding too, so a huge input is never encoded just to be refused.
    if text.len() > max {
        return Err(format!(
            "{name} must be 1 to {max} characters after base64 encoding, the text alone is {} bytes",
            text.len()
        ));
    }
    let enc = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    if enc.is_empty() || enc.len() > max {
        return Err(format!(
            "{name} must be 1 to {max} characters after base64 encoding, is {}",
            enc.len()
        ));
    }
    Ok(enc)
}

/// Answer to a start call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderResponse {
    /// The order's reference.
    pub order_ref: String,
    /// `auth`/`sign` only.
    #[serde(default)]
    pub auto_start_token: Option<String>,
}

/// A field BankID may send as `null` or leave out: both read as the type's default, so an
/// optional field set to `null` never fails a whole completed identification.
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `completionData.user`. Untrusted like every field of every answer: `personal_number` is
/// compared with the number asked for, never sliced.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    /// 12 digits. Personal data.
    #[serde(deserialize_with = "nullable")]
    pub personal_number: String,
    /// Full name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Given name.
    #[serde(deserialize_with = "nullable")]
    pub given_name: String,
    /// Surname.
    #[serde(deserialize_with = "nullable")]
    pub surname: String,
}

/// `completionData.device`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Device {
    /// The IP address BankID saw.
    #[serde(deserialize_with = "nullable")]
    pub ip_address: String,
    /// Unique hardware identifier.
    pub uhi: Option<String>,
}

/// `completionData` of a complete order.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct CompletionData {
    /// Who identified.
    #[serde(deserialize_with = "nullable")]
    pub user: User,
    /// Their device.
    #[serde(deserialize_with = "nullable")]
    pub device: Device,
    /// `YYYY-MM-DD`, maybe with a zone suffix (`2023-11-29Z`); kept as BankID sent it.
    #[serde(deserialize_with = "nullable")]
    pub bank_id_issue_date: String,
    /// Base64 XML-DSig.
    #[serde(deserialize_with = "nullable")]
    pub signature: String,
    /// Base64 DER.
    #[serde(deserialize_with = "nullable")]
    pub ocsp_response: String,
    /// `stepUp` when BankID reports a step-up (e.g. an ID document was checked).
    #[serde(deserialize_with = "tolerant_step_up")]
    pub step_up: Option<StepUp>,
}

/// `completionData.stepUp`: which extra checks took place. Unknown fields are ignored; a
/// field of an unexpected type reads as "not done" rather than failing the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepUp {
    /// The caller's passport or national ID card was checked (`requirement.mrtd`).
    pub mrtd: bool,
}

/// Reads `stepUp` from any JSON: an object gives its `mrtd` when that is `true`; `null`, a
/// missing field or another shape gives `None` (no step-up reported).
fn tolerant_step_up<'de, D: Deserializer<'de>>(d: D) -> Result<Option<StepUp>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Object(o)) => Some(StepUp {
            mrtd: o.get("mrtd").and_then(serde_json::Value::as_bool) == Some(true),
        }),
        _ => None,
    })
}

/// Answer to `collect`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "CollectWire")]
pub struct CollectResponse {
    /// The order.
    pub order_ref: String,
    /// pending / failed / complete.
    pub status: CollectStatus,
    /// Why, while pending or after failing.
    pub hint_code: Option<HintCode>,
    /// When complete.
    pub completion_data: Option<CompletionData>,
    /// `completionData` exactly as BankID sent it (its JSON text, byte for byte): the audit
    /// trail keeps this as the evidence, not a re-encoding of the typed fields above, which
    /// drop what this version does not know. Personal data (the whole number, the name).
    pub completion_raw: Option<Box<serde_json::value::RawValue>>,
}

/// `collect`'s answer as it arrives: `completionData` kept as raw JSON, then read into the
/// typed [`CompletionData`] from that same text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CollectWire {
    order_ref: String,
    status: CollectStatus,
    #[serde(default)]
    hint_code: Option<HintCode>,
    #[serde(default)]
    completion_data: Option<Box<serde_json::value::RawValue>>,
}

impl TryFrom<CollectWire> for CollectResponse {
    type Error = serde_json::Error;

    fn try_from(w: CollectWire) -> Result<CollectResponse, serde_json::Error> {
        let completion_data = match &w.completion_data {
            Some(raw) => serde_json::from_str::<Option<CompletionData>>(raw.get())?,
            None => None,
        };
        Ok(CollectResponse {
            order_ref: w.order_ref,
            status: w.status,
            hint_code: w.hint_code,
            // `null` is no evidence, like a missing field.
            completion_raw: w.completion_data.filter(|_| completion_data.is_some()),
            completion_data,
        })
    }
}

/// What went wrong with a call.
#[derive(Debug, Clone)]
pub enum RpError {
    /// BankID answered with an error body.
    Api {
        /// HTTP status.
        status: u16,
        /// `errorCode`.
        code: ErrorCode,
        /// `details` (free text; logged, never parsed).
        details: String,
        /// From `RateLimit-Reset` / `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },
    /// A non-JSON error body (e.g. an HTML page from a proxy): only the status is known.
    Http {
        /// HTTP status.
        status: u16,
    },
    /// A 200 whose body could not be read as the expected JSON.
    Decode(String),
    /// No HTTP answer at all (connect failure, TLS failure, timeout, dropped connection).
    Transport {
        /// What happened.
        message: String,
        /// The request may have reached BankID (it timed out after being sent).
        timed_out: bool,
    },
}

impl RpError {
    /// BankID's own JSON `maintenance` / `tooManyRequests`: the request was refused before
    /// anything was created, so even a start may be sent again.
    pub fn is_bankid_overload(&self) -> bool {
        matches!(self, RpError::Api { code, .. } if code.is_overload())
    }

    /// 503 `maintenance` and 429 `tooManyRequests`, also as a bare HTTP 503/429 from something
    /// in between: a collect may be retried with backoff. A start only on
    /// [`RpError::is_bankid_overload`].
    pub fn is_retryable_overload(&self) -> bool {
        self.is_bankid_overload() || matches!(self, RpError::Http { status: 503 | 429 })
    }
}

impl fmt::Display for RpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpError::Api {
                status,
                code,
                details,
                ..
            } => {
                write!(f, "BankID answered {status} {code}: {details}")
            }
            RpError::Http { status } => {
                write!(f, "BankID answered HTTP {status} without a JSON body")
            }
            RpError::Decode(e) => write!(f, "BankID's answer could not be read: {e}"),
            RpError::Transport { message, .. } => write!(f, "no answer from BankID: {message}"),
        }
    }
}

impl std::error::Error for RpError {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_code: ErrorCode,
    #[serde(default)]
    details: String,
}

fn transport_error(e: &reqwest::Error) -> RpError {
    use std::error::Error as _;
    let mut message = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    RpError::Transport {
        message,
        timed_out: e.is_timeout(),
    }
}

/// The largest answer read from BankID. A complete collect with its signature and OCSP
/// response is a few tens of KiB; anything beyond this is not BankID talking.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, RpError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(RpError::Decode(format!(
                "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An RP API client: one connection pool, shared by every order.
#[derive(Debug, Clone)]
pub struct RpClient {
    http: reqwest::Client,
    base: String,
    /// One permit per request in flight: bounds open connections (and so handshakes).
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    /// Where each request's latency and outcome go, if anywhere.
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// TCP + TLS connections the pool opened (each a full or resumed handshake).
    connections_opened: prometheus_client::metrics::counter::Counter,
}

/// A connector layer counting the connections that were established (TCP connected and the
/// TLS handshake done). How many are open at a time the pool does not say.
#[derive(Clone)]
struct CountConnections(prometheus_client::metrics::counter::Counter);

impl<S> tower_layer::Layer<S> for CountConnections {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            opened: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct Counted<S> {
    inner: S,
    opened: prometheus_client::metrics::counter::Counter,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, R> tower_service::Service<R> for Counted<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let connecting = self.inner.call(req);
        let opened = self.opened.clone();
        Box::pin(async move {
            let conn = connecting.await;
            if conn.is_ok() {
                opened.inc();
            }
            conn
        })
    }
}

impl RpClient {
    /// A client for `base_url` (ending in `/rp/v6.0/`) over `tls`, with at most
    /// `max_connections` requests in flight (and connections kept).
    pub fn new(
        base_url: &str,
        tls: rustls::ClientConfig,
        connect_timeout: Duration,
        request_timeout: Duration,
        max_connections: usize,
    ) -> Result<RpClient, String> {
        let connections_opened = prometheus_client::metrics::counter::Counter::default();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connector_layer(CountConnections(connections_opened.clone()))
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_connections)
            .tcp_nodelay(true)
            .http1_only()
            // Straight to BankID: never through an HTTPS_PROXY/ALL_PROXY a hook host's
            // environment happens to carry (doctor connects directly too).
            .no_proxy()
            .user_agent(concat!("bankid-ivr/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut base = base_url.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        Ok(RpClient {
            http,
            base,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections.max(1))),
            max_in_flight: max_connections.max(1),
            metrics: None,
            connections_opened,
        })
    }

    /// The count of connections the pool has opened (shared: it keeps counting).
    pub fn connections_opened(&self) -> prometheus_client::metrics::counter::Counter {
        self.connections_opened.clone()
    }

    /// Records every request's latency and outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> RpClient {
        self.metrics = Some(metrics);
        self
    }

    /// Requests to BankID in flight now.
    pub fn requests_in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits())
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &impl Serialize,
    ) -> Result<T, RpError> {
        let body = serde_json::to_vec(body).map_err(|e| RpError::Decode(e.to_string()))?;
        // Held until the whole answer is read, so the connection is back in the pool.
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| RpError::Transport {
                message: "the client is shut down".into(),
                timed_out: false,
            })?;
        // Timed from the permit: BankID's latency, not our own queue.
        let sent = std::time::Instant::now();
        let result = self.exchange(endpoint, body).await;
        if let Some(m) = &self.metrics {
            m.request(endpoint, sent.elapsed(), result.as_ref().err());
        }
        result
    }

    async fn exchange<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        body: Vec<u8>,
    ) -> Result<T, RpError> {
        let resp = self
            .http
            .post(format!("{}{endpoint}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status().as_u16();
        // Seconds, as sent; the engine clamps every wait to its own poll interval and deadline.
        let retry_after = ["ratelimit-reset", "retry-after"]
            .iter()
            .find_map(|h| {
                resp.headers()
                    .get(*h)?
                    .to_str()
                    .ok()?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(Duration::from_secs);
        let bytes = read_bounded(resp).await?;
        if status == 200 {
            return serde_json::from_slice(&bytes).map_err(|e| RpError::Decode(e.to_string()));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Err(RpError::Api {
                status,
                code: b.error_code,
                details: b.details,
                retry_after,
            }),
            Err(_) => Err(RpError::Http { status }),
        }
    }

    /// `phone/auth`.
    pub async fn phone_auth(&self, req: &PhoneAuthRequest) -> Result<OrderResponse, RpError> {
        self.post("phone/auth", req).await
    }

    /// `phone/sign` (the same body; `user_visible_data` is required).
    pub async fn phone_sign(&self, req: &PhoneAuthRequest) -> Result<OrderResponse, RpError> {
        self.post("phone/sign", req).await
    }

    /// `auth`.
    pub async fn auth(&self, req: &AuthRequest) -> Result<OrderResponse, RpError> {
        self.post("auth", req).await
    }

    /// `collect`.
    pub async fn collect(&self, order_ref: &str) -> Result<CollectResponse, RpError> {
        self.post("collect", &serde_json::json!({ "orderRef": order_ref }))
            .await
    }

    /// `cancel`.
    pub async fn cancel(&self, order_ref: &str) -> Result<(), RpError> {
        self.post::<serde_json::Value>("cancel", &serde_json::json!({ "orderRef": order_ref }))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_and_fields_do_not_fail_a_response() {
        let r: CollectResponse = serde_json::from_str(
            r#"{"orderRef":"a","status":"weird","hintCode":"brandNewHint","extra":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(r.status, CollectStatus::Unknown("weird".into()));
        assert_eq!(r.hint_code, Some(HintCode::Unknown("brandNewHint".into())));
        let r: CollectResponse = serde_json::from_str(
            r#"{"orderRef":"a","status":"pending","hintCode":"userCallConfirm"}"#,
        )
        .unwrap();
        assert_eq!(r.hint_code, Some(HintCode::UserCallConfirm));
        assert_eq!(ErrorCode::from("maintenance"), ErrorCode::Maintenance);
        assert_eq!(ErrorCode::from("nope").as_str(), "nope");
    }

    #[test]
    fn null_optional_fields_still_make_a_complete_answer() {
        let r: CollectResponse = serde_json::from_str(
            r#"{"orderRef":"a","status":"complete","completionData":{
                "user":{"personalNumber":"198503121116","name":"Anna","givenName":null,"surname":null},
                "device":{"ipAddress":null,"uhi":null},"bankIdIssueDate":"2023-11-29Z",
                "stepUp":null,"signature":"c2ln","ocspResponse":null,"risk":null}}"#,
        )
        .unwrap();
        let c = r.completion_data.unwrap();
        assert_eq!(c.user.personal_number, "198503121116");
        assert_eq!(c.user.given_name, "");
        assert_eq!(c.device.uhi, None);
        assert_eq!(c.bank_id_issue_date, "2023-11-29Z");
        let r: CollectResponse = serde_json::from_str(
            r#"{"orderRef":"a","status":"complete","completionData":{"user":null,"device":null}}"#,
        )
        .unwrap();
        assert_eq!(r.completion_data.unwrap().user.personal_number, "");
    }

    #[test]
    fn completion_data_is_kept_byte_for_byte_beside_the_typed_fields() {
        let sent = r#"{ "user": {"personalNumber":"198503121116","name":"Anna"},
            "device":{"ipAddress":"192.0.2.1"}, "someFutureField": [1, "två"],
            "signature":"c2ln", "ocspResponse":"b2NzcA==" }"#;
        let body = format!(r#"{{"orderRef":"a","status":"complete","completionData":{sent}}}"#);
        let r: CollectResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(r.completion_raw.as_deref().map(|v| v.get()), Some(sent));
        assert_eq!(
            r.completion_data.unwrap().user.personal_number,
            "198503121116"
        );
        for none in [
            r#"{"orderRef":"a","status":"pending","hintCode":"started"}"#,
            r#"{"orderRef":"a","status":"complete","completionData":null}"#,
        ] {
            let r: CollectResponse = serde_json::from_str(none).unwrap();
            assert!(
                r.completion_raw.is_none() && r.completion_data.is_none(),
                "{none}"
            );
        }
        // A completionData that is not an object still fails the answer, as before.
        assert!(serde_json::from_str::<CollectResponse>(
            r#"{"orderRef":"a","status":"complete","completionData":7}"#
        )
        .is_err());
    }

    #[test]
    fn only_bankids_own_overload_answers_may_repeat_a_start() {
        let api = |code: &str| RpError::Api {
            status: 503,
            code: ErrorCode::from(code),
            details: String::new(),
            retry_after: None,
        };
        assert!(api("maintenance").is_bankid_overload());
        assert!(api("tooManyRequests").is_bankid_overload());
        assert!(!api("internalError").is_bankid_overload());
        let proxy = RpError::Http { status: 503 };
        assert!(
            !proxy.is_bankid_overload(),
            "an HTML 503 may have been forwarded"
        );
        assert!(
            proxy.is_retryable_overload(),
            "a collect may still be retried"
        );
    }

    #[test]
    fn phone_auth_body_has_the_number_at_the_top_level() {
        let body = serde_json::to_value(PhoneAuthRequest {
            personal_number: "199908072391".into(),
            call_initiator: CallInitiator::Rp,
            user_visible_data: None,
            user_visible_data_format: None,
            user_non_visible_data: None,
            requirement: Some(Requirement {
                pin_code: Some(true),
                ..Default::default()
            }),
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"personalNumber":"199908072391","callInitiator":"RP","requirement":{"pinCode":true}})
        );
    }

    #[test]
    fn visible_data_is_base64_and_length_checked() {
        assert_eq!(encode_visible_data("Hej").unwrap(), "SGVq");
        assert!(encode_visible_data("").is_err());
        assert!(encode_visible_data(&"x".repeat(1200)).is_err());
        // 1 125 bytes encode to exactly 1 500 characters; one more is over.
        assert_eq!(encode_visible_data(&"x".repeat(1125)).unwrap().len(), 1500);
        assert!(encode_visible_data(&"x".repeat(1126)).is_err());
        let sign = VISIBLE_DATA_MAX.1;
        assert_eq!(
            encode_data("userVisibleData", &"x".repeat(30_000), sign)
                .unwrap()
                .len(),
            40_000
        );
        let e = encode_data(
            "userNonVisibleData",
            &"secret".repeat(40_000),
            NON_VISIBLE_DATA_MAX.1,
        )
        .unwrap_err();
        assert!(
            e.contains("userNonVisibleData") && !e.contains("secret"),
            "{e}"
        );
    }

    #[test]
    fn step_up_is_read_tolerantly() {
        let read = |step_up: &str| {
            let body = format!(
                r#"{{"orderRef":"r","status":"complete","completionData":{{"user":{{"personalNumber":"198503121116"}},"stepUp":{step_up}}}}}"#
            );
            serde_json::from_str::<CollectResponse>(&body)
                .unwrap()
                .completion_data
                .unwrap()
                .step_up
        };
        assert_eq!(
            read(r#"{"mrtd":true,"face":"x"}"#),
            Some(StepUp { mrtd: true })
        );
        assert_eq!(read(r#"{"mrtd":false}"#), Some(StepUp { mrtd: false }));
        assert_eq!(read(r#"{"mrtd":"yes"}"#), Some(StepUp { mrtd: false }));
        assert_eq!(read("null"), None);
        assert_eq!(read("[1]"), None);
        let none: CollectResponse =
            serde_json::from_str(r#"{"orderRef":"r","status":"complete","completionData":{}}"#)
                .unwrap();
        assert_eq!(none.completion_data.unwrap().step_up, None);
    }

    #[test]
    fn reported_step_up_codes_are_known() {
        for c in [
            "userFace",
            "userStepUp",
            "mrtdVerificationFailed",
            "facialRecognitionFailed",
            "nfcNotSupportedByDevice",
            "multipleBankIdsOnDevice",
            "stepUpFailed",
        ] {
            let h = HintCode::from(c);
            assert!(!matches!(h, HintCode::Unknown(_)), "{c}");
            assert_eq!(h.as_str(), c);
        }
    }
}
