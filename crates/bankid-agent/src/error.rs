//! Every way an API request can fail, in one enum: its HTTP status, its JSON `error` code and
//! its message are each one `match`, so a new failure cannot forget one of them. The body is
//! always `{"error": code, "message": text}`, plus `retryAfterS` (and a `Retry-After` header)
//! when waiting helps, plus `reason` for a refused personal number.
//!
//! Also the crate's start-up error ([`StartupError`]): what stops the binary before it serves.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bankid::order::Refusal;
use bankid::personnummer::PnrError;
use serde_json::error::Category;
use serde_json::json;

/// How long an agent is told to wait after a per-number limit other than a recent decline
/// (the limits count orders per hour).
const NUMBER_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// An API failure. Statuses and codes are part of the page's contract (app.js reads them).
#[derive(Debug)]
pub enum ApiError {
    /// A state-changing request from another site (`Origin` / `Sec-Fetch-Site`).
    CrossOrigin,
    /// A body that is not `application/json`.
    ContentType,
    /// A JSON body that does not parse or lacks a field; holds serde's category only (its
    /// messages name fields and types, never values, but the category is all the page needs).
    MalformedJson(Category),
    /// A request the page would never send (empty user name, unknown `callInitiator`).
    BadRequest(&'static str),
    /// No session cookie, or the session ended.
    NotLoggedIn,
    /// A state-changing request without the session's `X-CSRF-Token`.
    Csrf,
    /// Too many failed logins for this agent name.
    TooManyLogins {
        /// Until the oldest failure leaves the window.
        retry_after: Duration,
    },
    /// Wrong name or password (the same answer for both).
    BadCredentials,
    /// The personal number does not parse; `reason` names the mistake.
    InvalidPersonalNumber(PnrError),
    /// The agent's own identification limit.
    TooManyIdentifications {
        /// Until the oldest identification leaves the window.
        retry_after: Duration,
    },
    /// An anti-vishing limit refused the order; nothing reached BankID.
    Refused(Refusal),
    /// The engine's `max_orders` is reached.
    Busy,
    /// No such order, or another agent's (answered alike).
    NoSuchOrder,
    /// No such page.
    NotFound,
    /// Logged in, but not as a supervisor: the supervisor view is not for agents.
    Forbidden,
    /// No record with this id (supervisor view).
    NoSuchRecord,
    /// The record has no evidence (not complete, or kept while evidence keeping was off).
    NoEvidence,
    /// Records are off on this server (`audit_database = "off"`): there is nothing to show.
    RecordsOff,
    /// The database holding sessions, counters and records did not answer; nothing was done.
    StoreUnavailable,
    /// Something on this side failed; the message says what the agent tried.
    Internal(&'static str),
}

/// What a handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::CrossOrigin | ApiError::Csrf | ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MalformedJson(_)
            | ApiError::BadRequest(_)
            | ApiError::InvalidPersonalNumber(_) => StatusCode::BAD_REQUEST,
            ApiError::NotLoggedIn | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::TooManyLogins { .. }
            | ApiError::TooManyIdentifications { .. }
            | ApiError::Refused(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy | ApiError::RecordsOff | ApiError::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::NoSuchOrder
            | ApiError::NotFound
            | ApiError::NoSuchRecord
            | ApiError::NoEvidence => StatusCode::NOT_FOUND,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::CrossOrigin => "cross_origin",
            ApiError::ContentType => "content_type",
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => "bad_request",
            ApiError::NotLoggedIn => "not_logged_in",
            ApiError::Csrf => "csrf",
            ApiError::TooManyLogins { .. } => "too_many_attempts",
            ApiError::BadCredentials => "bad_credentials",
            ApiError::InvalidPersonalNumber(_) => "invalid_personal_number",
            ApiError::TooManyIdentifications { .. } => "too_many_identifications",
            ApiError::Refused(Refusal::DeclinedRecently { .. }) => "declined_recently",
            ApiError::Refused(_) => "number_rate_limited",
            ApiError::Busy => "busy",
            ApiError::NoSuchOrder => "no_such_order",
            ApiError::NotFound => "not_found",
            ApiError::Forbidden => "forbidden",
            ApiError::NoSuchRecord => "no_such_record",
            ApiError::NoEvidence => "no_evidence",
            ApiError::RecordsOff => "records_off",
            ApiError::StoreUnavailable => "store_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON `message`: English, for the page and logs; never a personal number.
    pub fn message(&self) -> String {
        match self {
            ApiError::CrossOrigin => "request from another site refused".into(),
            ApiError::ContentType => "send JSON (Content-Type: application/json)".into(),
            ApiError::MalformedJson(c) => format!(
                "malformed request: {}",
                match c {
                    Category::Data => "a field is missing or has the wrong type",
                    Category::Eof => "the body is cut short",
                    Category::Io | Category::Syntax => "the body is not JSON",
                }
            ),
            ApiError::BadRequest(m) | ApiError::Internal(m) => (*m).into(),
            ApiError::NotLoggedIn => "log in first (or again: the session ended)".into(),
            ApiError::Csrf => "missing or wrong X-CSRF-Token".into(),
            ApiError::TooManyLogins { .. } => {
                "too many failed logins for this agent; wait and try again".into()
            }
            ApiError::BadCredentials => "wrong user name or password".into(),
            ApiError::InvalidPersonalNumber(e) => e.to_string(),
            ApiError::TooManyIdentifications { .. } => {
                "too many identifications in a short time; wait and try again".into()
            }
            // Says the minutes left of a recent decline.
            ApiError::Refused(r) => r.to_string(),
            ApiError::Busy => "too many identifications in progress; try again shortly".into(),
            ApiError::NoSuchOrder => "no such order".into(),
            ApiError::NotFound => "no such page".into(),
            ApiError::Forbidden => "only supervisors may see this".into(),
            ApiError::NoSuchRecord => "no such record".into(),
            ApiError::NoEvidence => {
                "this record has no evidence (not complete, or evidence keeping was off)".into()
            }
            ApiError::RecordsOff => {
                "records are off on this server (audit_database = \"off\")".into()
            }
            ApiError::StoreUnavailable => {
                "the database is not answering; nothing was done, try again shortly".into()
            }
        }
    }

    /// How long to wait before trying again, when waiting helps.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::TooManyLogins { retry_after }
            | ApiError::TooManyIdentifications { retry_after } => Some(*retry_after),
            ApiError::Refused(Refusal::DeclinedRecently { remaining }) => Some(*remaining),
            ApiError::Refused(_) => Some(NUMBER_LIMIT_WAIT),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code(), "message": self.message()});
        if let ApiError::InvalidPersonalNumber(e) = &self {
            body["reason"] = json!(e.code());
        }
        // At least 1 s: "0" would invite an immediate retry that is refused again.
        let wait = self.retry_after().map(|w| w.as_secs().max(1));
        if let Some(s) = wait {
            body["retryAfterS"] = json!(s);
        }
        let mut resp = (self.status(), Json(body)).into_response();
        if let Some(s) = wait {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// The database failed: logged here with sqlx's words; the client learns only that nothing
/// was done.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        log::error!("database: {e}");
        ApiError::StoreUnavailable
    }
}

impl From<PnrError> for ApiError {
    fn from(e: PnrError) -> ApiError {
        ApiError::InvalidPersonalNumber(e)
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> ApiError {
        ApiError::MalformedJson(e.classify())
    }
}

/// The engine's errors reach the API only from starting an order.
impl From<bankid::order::Error> for ApiError {
    fn from(e: bankid::order::Error) -> ApiError {
        use bankid::order::Error;
        match e {
            // The engine has already logged the security event.
            Error::Refused(r) => ApiError::Refused(r),
            Error::TooManyOrders => ApiError::Busy,
            Error::InvalidPersonalNumber(e) => ApiError::InvalidPersonalNumber(e),
            // Only the options the page sends can be out of range (the text's length for
            // BankID); the message names no content.
            Error::InvalidArgument(e) => {
                log::info!("start refused: {e}");
                ApiError::BadRequest("the text is too long for BankID")
            }
            other => {
                log::error!("starting an order: {other}");
                ApiError::Internal("could not start the identification")
            }
        }
    }
}

/// What stops `bankid-agent` before (or instead of) serving. Each names what it was doing.
#[derive(Debug)]
pub enum StartupError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The accounts file (or an entry in it) is not usable; `path` prefixes the message.
    Accounts {
        /// The accounts file.
        path: PathBuf,
        /// What is wrong, e.g. `agent #2 ("x"): the name appears twice`.
        problem: String,
    },
    /// An agent name that is not 1–64 letters, digits, `.`, `_`, `-` or `@`.
    AgentName(String),
    /// A rate limit that is not `N/SECONDSs` or `N/MINUTESm`.
    Limit(String),
    /// The TLS certificate or key cannot be used.
    Tls {
        /// The file at fault (the certificate when rustls does not say).
        path: PathBuf,
        /// Why.
        problem: String,
    },
    /// No usable BankID backend (configuration, simulator policy).
    Backend(String),
    /// The order engine did not start.
    Engine(bankid::order::Error),
    /// The audit database (sessions, counters, records) cannot be used; names it, never its
    /// password.
    Database(String),
    /// Signals, the runtime, or the listening socket.
    Os {
        /// What was being set up, e.g. `listen on 0.0.0.0:8080`.
        what: String,
        /// Why.
        error: std::io::Error,
    },
}

impl StartupError {
    pub fn io(path: &Path, error: std::io::Error) -> StartupError {
        StartupError::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    pub(crate) fn accounts(path: &Path, problem: impl Into<String>) -> StartupError {
        StartupError::Accounts {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    /// An OS-level failure while setting up `what`.
    pub fn os(what: impl Into<String>, error: std::io::Error) -> StartupError {
        StartupError::Os {
            what: what.into(),
            error,
        }
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            StartupError::Accounts { path, problem } => {
                write!(f, "{}: {problem}", path.display())
            }
            StartupError::AgentName(name) => write!(
                f,
                "{name:?}: a name is 1–64 letters, digits, '.', '_', '-' or '@'"
            ),
            StartupError::Limit(s) => {
                write!(f, "{s:?}: a limit is N/SECONDSs or N/MINUTESm, e.g. 5/15m")
            }
            StartupError::Tls { path, problem } => write!(f, "{}: {problem}", path.display()),
            StartupError::Backend(e) => f.write_str(e),
            StartupError::Engine(e) => write!(f, "{e}"),
            StartupError::Database(e) => f.write_str(e),
            StartupError::Os { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for StartupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartupError::Io { error, .. } | StartupError::Os { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<bankid::order::Error> for StartupError {
    fn from(e: bankid::order::Error) -> StartupError {
        StartupError::Engine(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status();
        let retry = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("a small body");
        let json = serde_json::from_slice(&bytes).expect("a JSON body");
        (status, retry, json)
    }

    #[tokio::test]
    async fn every_variant_has_its_status_code_and_message() {
        let minute = Duration::from_secs(60);
        for (e, status, code) in [
            (ApiError::CrossOrigin, 403, "cross_origin"),
            (ApiError::ContentType, 415, "content_type"),
            (ApiError::MalformedJson(Category::Eof), 400, "bad_request"),
            (ApiError::BadRequest("give a user name"), 400, "bad_request"),
            (ApiError::NotLoggedIn, 401, "not_logged_in"),
            (ApiError::Csrf, 403, "csrf"),
            (
                ApiError::TooManyLogins {
                    retry_after: minute,
                },
                429,
                "too_many_attempts",
            ),
            (ApiError::BadCredentials, 401, "bad_credentials"),
            (
                ApiError::InvalidPersonalNumber(PnrError::BadCheckDigit),
                400,
                "invalid_personal_number",
            ),
            (
                ApiError::TooManyIdentifications {
                    retry_after: minute,
                },
                429,
                "too_many_identifications",
            ),
            (
                ApiError::Refused(Refusal::DeclinedRecently { remaining: minute }),
                429,
                "declined_recently",
            ),
            (
                ApiError::Refused(Refusal::NumberRateLimited { limit: 3 }),
                429,
                "number_rate_limited",
            ),
            (ApiError::Busy, 503, "busy"),
            (ApiError::NoSuchOrder, 404, "no_such_order"),
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::Forbidden, 403, "forbidden"),
            (ApiError::NoSuchRecord, 404, "no_such_record"),
            (ApiError::NoEvidence, 404, "no_evidence"),
            (ApiError::RecordsOff, 503, "records_off"),
            (ApiError::StoreUnavailable, 503, "store_unavailable"),
            (ApiError::Internal("login failed"), 500, "internal"),
        ] {
            assert_eq!(e.status().as_u16(), status, "{e:?}");
            assert_eq!(e.code(), code, "{e:?}");
            let message = e.message();
            let (got, _, json) = body(e).await;
            assert_eq!(got.as_u16(), status);
            assert_eq!(json["error"], code);
            assert_eq!(json["message"], message.as_str());
            assert!(!message.is_empty());
        }
    }

    #[tokio::test]
    async fn waits_are_in_the_header_and_the_body_and_at_least_a_second() {
        let (_, header, json) = body(ApiError::TooManyLogins {
            retry_after: Duration::from_millis(10),
        })
        .await;
        assert_eq!(header.as_deref(), Some("1"));
        assert_eq!(json["retryAfterS"], 1);
        let declined = ApiError::Refused(Refusal::DeclinedRecently {
            remaining: Duration::from_secs(600),
        });
        assert!(declined.message().contains("10 more minute"));
        let (_, header, json) = body(declined).await;
        assert_eq!(header.as_deref(), Some("600"));
        assert_eq!(json["retryAfterS"], 600);
        let (_, header, _) = body(ApiError::Refused(Refusal::Saturated)).await;
        assert_eq!(header.as_deref(), Some("3600"));
        let (_, header, json) = body(ApiError::Csrf).await;
        assert!(header.is_none() && json.get("retryAfterS").is_none());
    }

    #[tokio::test]
    async fn conversions_keep_the_reason() {
        let (_, _, json) = body(PnrError::WrongLength(11).into()).await;
        assert_eq!(json["reason"], "wrong_length");
        let e: ApiError = serde_json::from_str::<serde_json::Value>("{\"a\": ")
            .unwrap_err()
            .into();
        assert_eq!(e.message(), "malformed request: the body is cut short");
        assert!(matches!(
            ApiError::from(bankid::order::Error::TooManyOrders),
            ApiError::Busy
        ));
        assert!(matches!(
            ApiError::from(bankid::order::Error::ShutDown),
            ApiError::Internal(_)
        ));
    }
}
