//! The agent page: an agent on a call types the caller's personal number, presses
//! **Identifiera**, and sees who BankID says the caller is.
//!
//! One small single-page app (HTML, JS and CSS served from this binary, nothing from elsewhere)
//! and a JSON API behind agent logins. The personal number travels only in a POST body; order
//! ids in URLs are random and belong to the agent who started them.

pub mod accounts;
pub mod limits;
pub mod texts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bankid::messages::Text;
use bankid::order::{Engine, OrderId, OrderView, Refusal, StartOptions, State as OrderState};
use bankid::personnummer::Personnummer;
use bankid::rp::CallInitiator;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use accounts::Accounts;
use limits::{Limit, RateLimiter};

/// The session cookie's name.
pub const COOKIE: &str = "bankid_agent_session";

/// The Content-Security-Policy on every response: only this origin's script and style, no
/// inline code, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// A simulated person shown in the banner when BankID is the embedded simulator.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestPerson {
    /// 12 digits (test data, not a real person).
    pub personal_number: String,
    /// Full name.
    pub name: String,
    /// What happens, in both languages.
    pub behaviour: Text,
}

/// How the server is set up.
pub struct Options {
    /// Who may log in.
    pub accounts: Accounts,
    /// The BankID order engine.
    pub engine: Engine,
    /// Test persons when BankID is the embedded simulator (`None`: real BankID).
    pub simulated: Option<Vec<TestPerson>>,
    /// What BankID is, for the page's footer: "BankID test", "BankID", a URL host, "simulator".
    pub backend_label: String,
    /// Mark cookies `Secure` (served over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// Failed logins allowed per agent name.
    pub login_limit: Limit,
    /// Identifications allowed per agent.
    pub identify_limit: Limit,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// Final orders are forgotten this long after they ended.
    pub order_retention: Duration,
}

impl Options {
    /// Defaults for everything but the accounts and the engine.
    pub fn new(accounts: Accounts, engine: Engine) -> Options {
        Options {
            accounts,
            engine,
            simulated: None,
            backend_label: "BankID".into(),
            secure_cookies: false,
            login_limit: Limit {
                max: 5,
                per: Duration::from_secs(15 * 60),
            },
            identify_limit: Limit {
                max: 20,
                per: Duration::from_secs(15 * 60),
            },
            session_idle: Duration::from_secs(60 * 60),
            order_retention: Duration::from_secs(30 * 60),
        }
    }
}

struct Session {
    agent: String,
    csrf: String,
    last_seen: Instant,
}

struct AgentOrder {
    agent: String,
    engine_id: OrderId,
    masked: String,
    call_initiator: CallInitiator,
    started_ms: u64,
    finished: Option<(u64, Instant)>,
}

impl AgentOrder {
    /// Records (once) when the order was seen final, and logs how it ended.
    fn note_final(&mut self, id: &str, v: &OrderView) {
        if v.state.is_final() && self.finished.is_none() {
            self.finished = Some((now_ms(), Instant::now()));
            log::info!(
                "order {} of agent {} for {}: {}",
                short(id),
                self.agent,
                self.masked,
                outcome(v)
            );
        }
    }
}

fn initiator_str(c: CallInitiator) -> &'static str {
    match c {
        CallInitiator::User => "user",
        CallInitiator::Rp => "RP",
    }
}

/// The server's state.
pub struct App {
    opts: Options,
    sessions: Mutex<HashMap<String, Session>>,
    orders: Mutex<HashMap<String, AgentOrder>>,
    login_failures: RateLimiter,
    identifications: RateLimiter,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An API error: a status and a JSON body `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
    extra: Option<serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            extra: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some(wait) = self.retry_after {
            body["retryAfterS"] = json!(wait.as_secs().max(1));
        }
        if let Some(serde_json::Value::Object(extra)) = self.extra {
            for (k, v) in extra {
                body[k] = v;
            }
        }
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

type ApiResult<T> = Result<T, ApiError>;

impl App {
    /// The state for a server with these options.
    pub fn new(opts: Options) -> Arc<App> {
        Arc::new(App {
            login_failures: RateLimiter::new(opts.login_limit),
            identifications: RateLimiter::new(opts.identify_limit),
            opts,
            sessions: Mutex::new(HashMap::new()),
            orders: Mutex::new(HashMap::new()),
        })
    }

    /// The engine (for tests and shutdown).
    pub fn engine(&self) -> &Engine {
        &self.opts.engine
    }

    /// Orders held for agents.
    pub fn orders_held(&self) -> usize {
        lock(&self.orders).len()
    }

    fn cookie(&self, token: &str) -> String {
        let secure = if self.opts.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}")
    }

    fn clear_cookie(&self) -> String {
        let secure = if self.opts.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }

    /// The session named by the request's cookie, refreshed; `None` if absent or expired.
    fn session(&self, headers: &HeaderMap) -> Option<(String, String, String)> {
        let token = session_token(headers)?;
        let mut sessions = lock(&self.sessions);
        let s = sessions.get_mut(&token)?;
        if s.last_seen.elapsed() > self.opts.session_idle {
            sessions.remove(&token);
            return None;
        }
        s.last_seen = Instant::now();
        Some((token, s.agent.clone(), s.csrf.clone()))
    }

    /// Ends idle sessions, records when orders ended, forgets old final orders and stale
    /// rate-limit entries. Called every 250 ms by [`spawn_housekeeping`].
    pub fn housekeeping(&self) {
        let idle = self.opts.session_idle;
        lock(&self.sessions).retain(|_, s| s.last_seen.elapsed() <= idle);
        let mut forget = Vec::new();
        {
            let mut orders = lock(&self.orders);
            for (id, o) in orders.iter_mut() {
                match self.opts.engine.poll(o.engine_id) {
                    Ok(v) => o.note_final(id, &v),
                    Err(_) => forget.push(id.clone()),
                }
                if o.finished
                    .is_some_and(|(_, t)| t.elapsed() > self.opts.order_retention)
                {
                    forget.push(id.clone());
                }
            }
            for id in &forget {
                if let Some(o) = orders.remove(id) {
                    let _ = self.opts.engine.release(o.engine_id);
                }
            }
        }
        self.login_failures.prune();
        self.identifications.prune();
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn outcome(v: &OrderView) -> String {
    let hint = v.hint_code.as_ref().map(|h| h.as_str().to_string());
    let error = v.error.as_ref().map(ToString::to_string);
    match v.state {
        OrderState::Pending => "pending".into(),
        OrderState::Complete => "complete".into(),
        OrderState::Failed => format!("failed ({})", hint.or(error).as_deref().unwrap_or("-")),
        OrderState::Error => format!("error ({})", error.as_deref().unwrap_or("-")),
    }
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A state-changing request must come from this origin: `Origin` (when the browser sends it)
/// must name the host the request was sent to, and `Sec-Fetch-Site` must not say otherwise.
fn check_origin(headers: &HeaderMap) -> ApiResult<()> {
    let cross = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "request from another site refused",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err(cross());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| cross())?;
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let bare = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .unwrap_or("");
        if bare != host {
            return Err(cross());
        }
    }
    Ok(())
}

fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> ApiResult<T> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "send JSON (Content-Type: application/json)",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        // serde's message names fields and types, never values.
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("malformed request: {}", e.classify_str()),
        )
    })
}

trait Classify {
    fn classify_str(&self) -> &'static str;
}
impl Classify for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "a field is missing or has the wrong type",
            serde_json::error::Category::Eof => "the body is cut short",
            _ => "the body is not JSON",
        }
    }
}

/// The logged-in agent of a request; for POSTs also checks origin and the CSRF token.
struct Agent {
    token: String,
    name: String,
}

fn agent(app: &App, method: &Method, headers: &HeaderMap) -> ApiResult<Agent> {
    if method != Method::GET {
        check_origin(headers)?;
    }
    let (token, name, csrf) = app.session(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "not_logged_in",
            "log in first (or again: the session ended)",
        )
    })?;
    if method != Method::GET {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same(sent, &csrf) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token",
            ));
        }
    }
    Ok(Agent { token, name })
}

/// The router: the page, its script and style, and the JSON API.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/session", get(get_session))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/identify", post(identify))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/orders/{id}/cancel", post(cancel_order))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such page") })
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn session_json(app: &App, agent: Option<(&str, &str)>) -> serde_json::Value {
    json!({
        "loggedIn": agent.is_some(),
        "agent": agent.map(|a| a.0),
        "csrf": agent.map(|a| a.1),
        "backend": app.opts.backend_label,
        "simulated": app.opts.simulated.is_some(),
        "testPersons": app.opts.simulated,
    })
}

async fn get_session(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = app.session(&headers);
    Json(session_json(
        &app,
        s.as_ref().map(|(_, a, c)| (a.as_str(), c.as_str())),
    ))
    .into_response()
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_origin(&headers)?;
    let req: LoginRequest = json_body(&headers, &body)?;
    let key = req.username.trim().to_ascii_lowercase();
    if key.is_empty() || key.len() > 64 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "give a user name",
        ));
    }
    if let Err(wait) = app.login_failures.check(&key) {
        log::warn!("login for {key}: refused, too many failed attempts");
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed logins for this agent; wait and try again",
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    let verifier = app.clone();
    let (user, password) = (req.username.clone(), req.password);
    let verified =
        tokio::task::spawn_blocking(move || verifier.opts.accounts.verify(&user, &password))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "login failed",
                )
            })?;
    let Some(name) = verified else {
        app.login_failures.record(&key);
        log::warn!("login for {key}: wrong name or password");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong user name or password",
        ));
    };
    app.login_failures.clear(&key);
    // A fresh session id at every login (no fixation), and the old one, if any, ended.
    if let Some(old) = session_token(&headers) {
        lock(&app.sessions).remove(&old);
    }
    let token = random_token(32);
    let csrf = random_token(32);
    lock(&app.sessions).insert(
        token.clone(),
        Session {
            agent: name.clone(),
            csrf: csrf.clone(),
            last_seen: Instant::now(),
        },
    );
    log::info!("agent {name} logged in");
    let mut resp = Json(session_json(&app, Some((&name, &csrf)))).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&app.cookie(&token)).expect("token is base64url"),
    );
    Ok(resp)
}

async fn logout(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let a = agent(&app, &method, &headers)?;
    lock(&app.sessions).remove(&a.token);
    let still_in = lock(&app.sessions).values().any(|s| s.agent == a.name);
    if !still_in {
        cancel_pending_of(&app, &a.name);
    }
    log::info!("agent {} logged out", a.name);
    let mut resp = Json(session_json(&app, None)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&app.clear_cookie()).expect("static cookie"),
    );
    Ok(resp)
}

/// Cancels every pending order of `agent` (a new caller starts clean; logging out leaves
/// nothing running).
fn cancel_pending_of(app: &App, agent: &str) {
    let orders = lock(&app.orders);
    for o in orders.values().filter(|o| o.agent == agent) {
        if let Ok(OrderState::Pending) = app.opts.engine.state(o.engine_id) {
            let _ = app.opts.engine.cancel(o.engine_id);
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentifyRequest {
    personal_number: String,
    #[serde(default)]
    call_initiator: Option<String>,
}

async fn identify(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let a = agent(&app, &method, &headers)?;
    let req: IdentifyRequest = json_body(&headers, &body)?;
    let pnr = Personnummer::parse(&req.personal_number).map_err(|e| {
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_personal_number",
            e.to_string(),
        );
        err.extra = Some(json!({"reason": e.code()}));
        err
    })?;
    let call_initiator = match req.call_initiator.as_deref() {
        None | Some("user") => CallInitiator::User,
        Some("RP") => CallInitiator::Rp,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "callInitiator is \"user\" (the caller called us) or \"RP\" (we called them)",
            ))
        }
    };
    if let Err(wait) = app.identifications.take(&a.name) {
        log::warn!("agent {}: identification refused, rate limit", a.name);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_identifications",
            "too many identifications in a short time; wait and try again",
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    cancel_pending_of(&app, &a.name);
    let engine_id = app
        .opts
        .engine
        .start(
            &pnr,
            StartOptions {
                call_initiator: Some(call_initiator),
                ..Default::default()
            },
        )
        .map_err(|e| match e {
            // Anti-vishing limits: nothing reached BankID; the engine logged a security event.
            bankid::order::Error::Refused(r) => {
                let (code, retry) = match &r {
                    Refusal::DeclinedRecently { remaining } => ("declined_recently", *remaining),
                    _ => ("number_rate_limited", Duration::from_secs(3600)),
                };
                let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, r.to_string());
                e.retry_after = Some(retry);
                e
            }
            bankid::order::Error::TooManyOrders => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many identifications in progress; try again shortly",
            ),
            other => {
                log::error!("starting an order: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "could not start the identification",
                )
            }
        })?;
    let id = random_token(18);
    log::info!(
        "order {} of agent {} for {} started (callInitiator {})",
        short(&id),
        a.name,
        pnr.masked(),
        initiator_str(call_initiator)
    );
    let order = AgentOrder {
        agent: a.name.clone(),
        engine_id,
        masked: pnr.masked(),
        call_initiator,
        started_ms: now_ms(),
        finished: None,
    };
    let body = {
        let mut orders = lock(&app.orders);
        orders.insert(id.clone(), order);
        order_json(&app, &id, orders.get_mut(&id).expect("just inserted"))
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn order_json(app: &App, id: &str, o: &mut AgentOrder) -> serde_json::Value {
    let v = match app.opts.engine.poll(o.engine_id) {
        Ok(v) => v,
        Err(_) => return json!({"id": id, "state": "error", "errorCode": "gone"}),
    };
    o.note_final(id, &v);
    let at = texts::for_order(&v);
    let state = match v.state {
        OrderState::Pending => "pending",
        OrderState::Complete => "complete",
        OrderState::Failed => "failed",
        OrderState::Error => "error",
    };
    let person = v.completion.as_ref().map(|c| {
        let n = &c.user.personal_number;
        let shown = if n.len() == 12 {
            format!("{}-{}", &n[..8], &n[8..])
        } else {
            n.clone()
        };
        json!({
            "name": c.user.name,
            "givenName": c.user.given_name,
            "surname": c.user.surname,
            "personalNumber": shown,
        })
    });
    json!({
        "id": id,
        "state": state,
        "step": at.step,
        "hintCode": v.hint_code.as_ref().map(|h| h.as_str()),
        "errorCode": v.error.as_ref().map(ToString::to_string),
        "agentText": at.text,
        "callerMessage": {"id": v.message.id, "sv": v.message.text.sv, "en": v.message.text.en},
        "fraudWarning": at.fraud_warning,
        "personalNumberMasked": o.masked,
        "callInitiator": initiator_str(o.call_initiator),
        "startedAtMs": o.started_ms,
        "finishedAtMs": o.finished.map(|(ms, _)| ms),
        "person": person,
    })
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_such_order", "no such order")
}

async fn get_order(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let a = agent(&app, &method, &headers)?;
    let mut orders = lock(&app.orders);
    // Another agent's order answers exactly like one that does not exist.
    let o = orders
        .get_mut(&id)
        .filter(|o| o.agent == a.name)
        .ok_or_else(not_found)?;
    Ok(Json(order_json(&app, &id, o)).into_response())
}

async fn cancel_order(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let a = agent(&app, &method, &headers)?;
    let mut orders = lock(&app.orders);
    let o = orders
        .get_mut(&id)
        .filter(|o| o.agent == a.name)
        .ok_or_else(not_found)?;
    let _ = app.opts.engine.cancel(o.engine_id);
    log::info!("order {} of agent {}: cancel asked", short(&id), a.name);
    Ok(Json(order_json(&app, &id, o)).into_response())
}

/// Runs [`App::housekeeping`] every 250 ms until the app is dropped.
pub fn spawn_housekeeping(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { break };
            app.housekeeping();
        }
    });
}

/// The simulator's test persons with behaviour in both languages.
pub fn simulator_persons() -> Vec<TestPerson> {
    bankid_sim::TEST_PERSONS
        .iter()
        .map(|p| TestPerson {
            personal_number: p.personal_number.to_string(),
            name: format!("{} {}", p.given_name, p.surname),
            behaviour: behaviour(p.outcome),
        })
        .collect()
}

fn behaviour(outcome: &str) -> Text {
    let (sv, en) = match outcome {
        "complete" => ("identifierar sig", "identifies"),
        "userCancel" => ("avbryter i appen", "cancels in the app"),
        "userDeclinedCall" => (
            "nekar samtalet (möjligt bedrägeri)",
            "declines the call (possible fraud)",
        ),
        "expiredTransaction" => ("öppnar aldrig appen", "never opens the app"),
        "certificateErr" => ("har ett spärrat BankID", "has a blocked BankID"),
        "startFailed" => ("har ingen BankID-app", "has no BankID app"),
        "notSupportedByUserApp" => ("har för gammal app", "has an app too old"),
        "transactionRiskBlocked" => ("stoppas av BankID", "is stopped by BankID"),
        "slow" => ("tar god tid på sig", "takes their time"),
        _ => ("se simulatorns README", "see the simulator's README"),
    };
    Text::new(sv, en)
}

/// Serves the app on `listener` until the task is dropped: plain HTTP, or HTTPS with `tls`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    spawn_housekeeping(&app);
    let router = router(app);
    let Some(tls) = tls else {
        return axum::serve(listener, router).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let svc = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                log::debug!("TLS handshake with {peer} failed");
                return;
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                log::debug!("connection with {peer}: {e}");
            }
        });
    }
}

/// A TLS server configuration from a PEM certificate chain and private key.
pub fn tls_config(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect())
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{}: {e}", key_file.display()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    Ok(Arc::new(cfg))
}
