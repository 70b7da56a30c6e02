//! Who is asking: agent sessions behind an `HttpOnly; SameSite=Strict` cookie, the per-session
//! CSRF token, the same-origin check, and the extractors that apply them — so a handler that
//! takes an [`Agent`] cannot run for a request that is not logged in, cross-site or (for
//! anything but GET) without the session's `X-CSRF-Token`, and one that takes a
//! [`Supervisor`] not for an agent either (403). No handler checks a login or a role by hand.
//!
//! Where sessions are kept (this process, or the shared database) is
//! [`crate::store::sessions`]; this module is what HTTP sees of them. Also the routes that
//! make and end sessions: `/api/session`, `/api/login`, `/api/logout`.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{Accounts, Role};
use crate::body::ApiJson;
use crate::error::{ApiError, ApiResult};
use crate::proxy::{BasePath, Client};
use crate::store::events::{Action, AgentEvent};
use crate::{orders, App};

/// The session cookie's name.
pub const COOKIE: &str = "bankid_agent_session";

/// The session cookie for `token`, sent only to the page's own paths (`path`: the base path).
fn cookie(token: &str, path: &BasePath, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict{secure}")
}

/// The cookie that makes the browser forget the session.
fn clear_cookie(path: &BasePath, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// Whether the browser sees the page over https: the connection (or a trusted proxy) says so,
/// or the operator did (`--secure-cookies`).
fn https(app: &App, client: &Client) -> bool {
    client.https || app.opts.secure_cookies
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

/// Compares in time independent of where the strings differ (the CSRF token is a secret).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A state-changing request must come from this origin: `Origin` (when the browser sends it)
/// must be the scheme the browser uses (`https`) and the host the request was sent to, and
/// `Sec-Fetch-Site` must not say otherwise.
fn check_origin(headers: &HeaderMap, https: bool) -> ApiResult<()> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err(ApiError::CrossOrigin);
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| ApiError::CrossOrigin)?;
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let scheme = if https { "https://" } else { "http://" };
        let bare = origin.strip_prefix(scheme).unwrap_or("");
        if host.is_empty() || bare != host {
            return Err(ApiError::CrossOrigin);
        }
    }
    Ok(())
}

/// The request comes from this origin (for login, which has no session yet to hold a CSRF
/// token; `SameSite=Strict` and this check keep other sites from logging a browser in).
pub struct SameOrigin;

impl FromRequestParts<Arc<App>> for SameOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> ApiResult<SameOrigin> {
        let client = Client::of(parts, app);
        check_origin(&parts.headers, https(app, &client)).map(|()| SameOrigin)
    }
}

/// The logged-in agent (or supervisor) of a request. Extracting it checks, for anything but
/// GET, the origin and the CSRF token too.
#[derive(Debug, Clone)]
pub struct Agent {
    token: String,
    /// The canonical (lower-case) agent name.
    pub name: String,
    /// What the account may do: as it was when the session began, and as the accounts file
    /// says now (a changed role or password ends the session at the next request).
    pub role: Role,
    csrf: String,
}

impl Agent {
    async fn from_parts(parts: &Parts, app: &App) -> ApiResult<Agent> {
        let state_changing = parts.method != Method::GET;
        if state_changing {
            check_origin(&parts.headers, https(app, &Client::of(parts, app)))?;
        }
        let token = session_token(&parts.headers).ok_or(ApiError::NotLoggedIn)?;
        let info = app
            .sessions
            .touch(&token)
            .await?
            .ok_or(ApiError::NotLoggedIn)?;
        // The accounts file as this process holds it now must still have the entry the session
        // was made from: a session of an account removed, given a new password or another role
        // since the login ends here — after a restart too, which no reload saw.
        let accounts = app.accounts();
        let current = accounts.fingerprint(&info.name);
        if accounts.role(&info.name) != Some(info.role)
            || current.as_deref() != Some(info.fingerprint.as_str())
        {
            app.sessions.end(&token, None).await?;
            log::warn!(
                "a session of {} ended: the account was removed or changed since the login",
                info.name
            );
            return Err(ApiError::NotLoggedIn);
        }
        if state_changing {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same(sent, &info.csrf) {
                return Err(ApiError::Csrf);
            }
        }
        Ok(Agent {
            token,
            name: info.name,
            role: info.role,
            csrf: info.csrf,
        })
    }
}

impl FromRequestParts<Arc<App>> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> ApiResult<Agent> {
        Agent::from_parts(parts, app).await
    }
}

/// `Option<Agent>`: `None` when not logged in; other refusals stay refusals.
impl OptionalFromRequestParts<Arc<App>> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> ApiResult<Option<Agent>> {
        match Agent::from_parts(parts, app).await {
            Ok(a) => Ok(Some(a)),
            Err(ApiError::NotLoggedIn) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The logged-in supervisor of a request: an [`Agent`] (with its origin and CSRF checks) whose
/// role is [`Role::Supervisor`]. Not logged in: 401; logged in as an agent: 403.
#[derive(Debug, Clone)]
pub struct Supervisor(pub Agent);

impl FromRequestParts<Arc<App>> for Supervisor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> ApiResult<Supervisor> {
        let agent = Agent::from_parts(parts, app).await?;
        if agent.role != Role::Supervisor {
            log::warn!(
                "agent {} asked for the supervisor view ({} {}): refused",
                agent.name,
                parts.method,
                parts.uri.path()
            );
            return Err(ApiError::Forbidden);
        }
        Ok(Supervisor(agent))
    }
}

/// `/api/session`, `/api/login`, `/api/logout`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/api/session", get(get_session))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
}

/// Who is logged in, as the page reads it.
struct Shown<'a> {
    name: &'a str,
    role: Role,
    csrf: &'a str,
}

fn session_json(app: &App, agent: Option<Shown<'_>>) -> serde_json::Value {
    json!({
        "loggedIn": agent.is_some(),
        "agent": agent.as_ref().map(|a| a.name),
        "role": agent.as_ref().map(|a| a.role.as_str()),
        "csrf": agent.as_ref().map(|a| a.csrf),
        "backend": app.opts.backend_label,
        "simulated": app.opts.simulated.is_some(),
        "testPersons": app.opts.simulated,
        "records": app.opts.database.is_some(),
    })
}

async fn get_session(State(app): State<Arc<App>>, agent: Option<Agent>) -> Json<serde_json::Value> {
    Json(session_json(
        &app,
        agent.as_ref().map(|a| Shown {
            name: &a.name,
            role: a.role,
            csrf: &a.csrf,
        }),
    ))
}

/// A typed user name as it may be written down (the log, `audit_agent_events.agent`): a known
/// account's canonical name as it is; anything else — it may be a caller's personal number,
/// typed into the wrong field — as `(unknown)` with a hint that never holds it whole: the
/// masked number if it is one, else its first two characters and its length.
pub(crate) fn typed_name(key: &str, accounts: &Accounts) -> String {
    if accounts.contains(key) {
        return key.to_string();
    }
    if let Ok(pnr) = bankid::Personnummer::parse(key) {
        return format!("(unknown) {}", pnr.masked());
    }
    let start: String = key.chars().take(2).collect();
    format!("(unknown) {start}… ({} characters)", key.chars().count())
}

/// What the failed-login counter of a typed name is kept under: a known account's name, or the
/// SHA-256 of anything else (the counters' table holds no typed text that is not a name).
fn limit_key(key: &str, accounts: &Accounts) -> String {
    if accounts.contains(key) {
        key.to_string()
    } else {
        format!("unknown-{}", crate::store::sessions::token_hash(key))
    }
}

/// A failed login, recorded; a failure to record it is logged (the login fails anyway). `name`
/// is a [`typed_name`].
async fn failed_login(app: &App, name: &str, from: &str) {
    let event = AgentEvent::new(name, Action::LoginFailed, from);
    if let Err(e) = app.events.record(&event).await {
        log::error!("recording the failed login for {name} from {from}: {e}");
    }
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login(
    State(app): State<Arc<App>>,
    _: SameOrigin,
    client: Client,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let key = req.username.trim().to_ascii_lowercase();
    if key.is_empty() || key.len() > 64 {
        return Err(ApiError::BadRequest("give a user name"));
    }
    let from = client.addr();
    let accounts = app.accounts();
    // Never the typed text itself in the log, the events or the counters, unless it is a name.
    let shown = typed_name(&key, &accounts);
    let limited = limit_key(&key, &accounts);
    if let Some(retry_after) = app.login_failures.check(&limited).await? {
        log::warn!("login for {shown} from {from}: refused, too many failed attempts for the name");
        app.metrics.login(crate::health::Login::Limited);
        failed_login(&app, &shown, &from).await;
        return Err(ApiError::TooManyLogins { retry_after });
    }
    if let Some(retry_after) = app.login_failures_by_address.check(&from).await? {
        log::warn!("login for {shown} from {from}: refused, too many failed attempts from there");
        app.metrics.login(crate::health::Login::Limited);
        failed_login(&app, &shown, &from).await;
        return Err(ApiError::TooManyLogins { retry_after });
    }
    let verifier = accounts.clone();
    let (user, password) = (req.username, req.password);
    let verified = tokio::task::spawn_blocking(move || verifier.verify(&user, &password))
        .await
        .map_err(|e| {
            log::error!("verifying a password: {e}");
            ApiError::Internal("login failed")
        })?;
    // The accounts file may have been reloaded while the hash was checked: a removed agent or
    // a password reset in between must not get a session from the old entry.
    let verified = verified.filter(|name| app.accounts().same_entry(name, &accounts));
    let role = verified.as_deref().and_then(|name| accounts.role(name));
    let (Some(name), Some(role)) = (verified, role) else {
        app.login_failures.record(&limited).await?;
        app.login_failures_by_address.record(&from).await?;
        app.metrics.login(crate::health::Login::Failed);
        log::warn!("login for {shown} from {from}: wrong name or password");
        failed_login(&app, &shown, &from).await;
        return Err(ApiError::BadCredentials);
    };
    // The name's failures are forgiven, not the address's: one valid account must not reset
    // the count of a client trying others.
    app.login_failures.clear(&limited).await?;
    // A fresh session id at every login (no fixation), and the old one, if any, ended.
    if let Some(old) = session_token(&headers) {
        app.sessions.end(&old, None).await?;
    }
    let login = AgentEvent::new(&name, Action::Login, &from);
    let fingerprint = accounts.fingerprint(&name).unwrap_or_default();
    let new = app
        .sessions
        .start(&name, role, &fingerprint, &login)
        .await?;
    app.metrics.login(crate::health::Login::Ok);
    log::info!("{} {name} logged in from {from}", role.as_str());
    let shown = Shown {
        name: &name,
        role,
        csrf: &new.csrf,
    };
    let mut resp = Json(session_json(&app, Some(shown))).into_response();
    let secure = https(&app, &client);
    let cookie = HeaderValue::from_str(&cookie(&new.token, &app.opts.base_path, secure))
        .map_err(|_| ApiError::Internal("login failed"))?;
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

async fn logout(State(app): State<Arc<App>>, client: Client, agent: Agent) -> ApiResult<Response> {
    let event = AgentEvent::new(&agent.name, Action::Logout, &client.addr());
    app.sessions.end(&agent.token, Some(&event)).await?;
    // When in doubt (the database failed just now), nothing of the agent's keeps running.
    let others = app.sessions.any_of(&agent.name).await.unwrap_or_else(|e| {
        log::error!("database: {e}");
        false
    });
    if !others {
        orders::cancel_pending_of(&app, &agent.name);
    }
    log::info!("agent {} logged out from {}", agent.name, client.addr());
    let mut resp = Json(session_json(&app, None)).into_response();
    let path = &app.opts.base_path;
    let cookie = HeaderValue::from_str(&clear_cookie(path, https(&app, &client)))
        .map_err(|_| ApiError::Internal("logout failed"))?;
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_app as app;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    /// A session for `name` as a login makes it: (cookie token, CSRF token).
    async fn session(app: &App, name: &str, role: Role) -> (String, String) {
        let login = AgentEvent::new(name, Action::Login, "127.0.0.1");
        let fingerprint = app.accounts().fingerprint(name).unwrap_or_default();
        assert_eq!(app.accounts().role(name), Some(role), "{name}");
        let s = app
            .sessions
            .start(name, role, &fingerprint, &login)
            .await
            .unwrap();
        (s.token, s.csrf)
    }

    /// A tiny router: GET and POST `/boss` answer the supervisor's name.
    fn boss(app: &Arc<App>) -> Router {
        async fn name(s: Supervisor) -> String {
            s.0.name
        }
        Router::new()
            .route("/boss", get(name).post(name))
            .with_state(app.clone())
    }

    /// A tiny router: GET and POST `/who` answer the agent's name.
    fn who(app: &Arc<App>) -> Router {
        async fn name(agent: Agent) -> String {
            agent.name
        }
        Router::new()
            .route("/who", get(name).post(name))
            .with_state(app.clone())
    }

    fn request(method: &str, cookie: Option<&str>, csrf: Option<&str>) -> Request<Body> {
        let mut b = Request::builder()
            .method(method)
            .uri("/who")
            .header(header::HOST, "agent.example");
        if let Some(t) = cookie {
            b = b.header(header::COOKIE, format!("other=1; {COOKIE}={t}"));
        }
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        b.body(Body::empty()).expect("a request")
    }

    async fn answer(app: &Arc<App>, req: Request<Body>) -> (StatusCode, String) {
        let resp = who(app).oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("a body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn code(body: &str) -> String {
        serde_json::from_str::<serde_json::Value>(body).expect("JSON")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    #[tokio::test]
    async fn without_a_session_cookie_nobody_is_logged_in() {
        let app = app();
        let (status, body) = answer(&app, request("GET", None, None)).await;
        assert_eq!(
            (status.as_u16(), code(&body).as_str()),
            (401, "not_logged_in")
        );
        let (status, body) = answer(&app, request("GET", Some("made-up"), None)).await;
        assert_eq!(
            (status.as_u16(), code(&body).as_str()),
            (401, "not_logged_in")
        );
    }

    #[tokio::test]
    async fn a_valid_session_is_the_agent_and_get_needs_no_csrf_token() {
        let app = app();
        let (token, _) = session(&app, "anna", Role::Agent).await;
        let (status, body) = answer(&app, request("GET", Some(&token), None)).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "anna"));
    }

    #[tokio::test]
    async fn the_supervisor_extractor_answers_401_logged_out_403_to_agents_and_checks_csrf() {
        let app = app();
        let (agent, agent_csrf) = session(&app, "anna", Role::Agent).await;
        let (sup, sup_csrf) = session(&app, "sara", Role::Supervisor).await;
        let ask = |method: &str, cookie: Option<&str>, csrf: Option<&str>| {
            let mut req = request(method, cookie, csrf);
            *req.uri_mut() = "/boss".parse().unwrap();
            req
        };
        let call = |req: Request<Body>| {
            let app = app.clone();
            async move {
                let resp = boss(&app).oneshot(req).await.expect("infallible");
                let status = resp.status().as_u16();
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (status, String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        let (status, body) = call(ask("GET", None, None)).await;
        assert_eq!((status, code(&body).as_str()), (401, "not_logged_in"));
        for (method, csrf) in [("GET", None), ("POST", Some(agent_csrf.as_str()))] {
            let (status, body) = call(ask(method, Some(&agent), csrf)).await;
            assert_eq!(
                (status, code(&body).as_str()),
                (403, "forbidden"),
                "{method}"
            );
        }
        let (status, body) = call(ask("GET", Some(&sup), None)).await;
        assert_eq!((status, body.as_str()), (200, "sara"));
        let (status, body) = call(ask("POST", Some(&sup), None)).await;
        assert_eq!((status, code(&body).as_str()), (403, "csrf"));
        let (status, body) = call(ask("POST", Some(&sup), Some(&sup_csrf))).await;
        assert_eq!((status, body.as_str()), (200, "sara"));
        // A supervisor is an agent too: the agent page's routes take them.
        let (status, body) = answer(&app, request("GET", Some(&sup), None)).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "sara"));
    }

    #[tokio::test]
    async fn a_post_needs_the_sessions_own_csrf_token() {
        let app = app();
        let (token, csrf) = session(&app, "anna", Role::Agent).await;
        let (_, other_csrf) = session(&app, "bertil", Role::Agent).await;
        for sent in [None, Some(""), Some("wrong"), Some(other_csrf.as_str())] {
            let (status, body) = answer(&app, request("POST", Some(&token), sent)).await;
            assert_eq!(
                (status.as_u16(), code(&body).as_str()),
                (403, "csrf"),
                "{sent:?}"
            );
        }
        let (status, body) = answer(&app, request("POST", Some(&token), Some(&csrf))).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "anna"));
    }

    #[tokio::test]
    async fn a_cross_origin_post_is_refused_even_with_the_right_token() {
        let app = app();
        let (token, csrf) = session(&app, "anna", Role::Agent).await;
        for (name, value) in [
            ("origin", "https://evil.example"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            let mut req = request("POST", Some(&token), Some(&csrf));
            req.headers_mut()
                .insert(name, HeaderValue::from_static(value));
            let (status, body) = answer(&app, req).await;
            assert_eq!(
                (status.as_u16(), code(&body).as_str()),
                (403, "cross_origin"),
                "{name}: {value}"
            );
        }
        // Served over plain HTTP, with no proxy trusted: the origin is http://, not https://.
        let with_origin = |origin: &'static str| {
            let mut req = request("POST", Some(&token), Some(&csrf));
            req.headers_mut()
                .insert(header::ORIGIN, HeaderValue::from_static(origin));
            req.headers_mut()
                .insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
            req
        };
        let (status, body) = answer(&app, with_origin("https://agent.example")).await;
        assert_eq!(
            (status.as_u16(), code(&body).as_str()),
            (403, "cross_origin"),
            "the wrong scheme"
        );
        let same_site = with_origin("http://agent.example");
        assert_eq!(answer(&app, same_site).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn an_idle_or_ended_session_is_gone() {
        use crate::store::sessions::SessionStore;
        let login = AgentEvent::new("anna", Action::Login, "127.0.0.1");
        let idle = SessionStore::new(std::time::Duration::ZERO, None);
        let s = idle.start("anna", Role::Agent, "", &login).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(idle.touch(&s.token).await.unwrap().is_none());
        assert_eq!(
            idle.len().await.unwrap(),
            0,
            "an idle session is removed on sight"
        );

        let app = app();
        let (token, _) = session(&app, "anna", Role::Agent).await;
        assert!(app.sessions.any_of("anna").await.unwrap());
        app.sessions.end(&token, None).await.unwrap();
        assert!(!app.sessions.any_of("anna").await.unwrap());
        let (status, _) = answer(&app, request("GET", Some(&token), None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_session_of_a_removed_reset_or_demoted_account_ends_without_a_reload() {
        let app = app();
        let (anna, _) = session(&app, "anna", Role::Agent).await;
        let (bertil, _) = session(&app, "bertil", Role::Agent).await;
        let (sara, _) = session(&app, "sara", Role::Supervisor).await;
        let (kept, _) = session(&app, "sara", Role::Supervisor).await;
        // Another accounts file taken into use as a restart does: no reload ends anything.
        *app.accounts.write().unwrap() = Arc::new(Accounts::with_hashes(&[
            ("anna", "hash-a-reset", Role::Agent),
            ("sara", "hash-s", Role::Agent),
        ]));
        for (token, why) in [(&anna, "password reset"), (&bertil, "removed")] {
            let (status, body) = answer(&app, request("GET", Some(token), None)).await;
            assert_eq!(
                (status.as_u16(), code(&body).as_str()),
                (401, "not_logged_in"),
                "{why}"
            );
        }
        let mut req = request("GET", Some(&sara), None);
        *req.uri_mut() = "/boss".parse().unwrap();
        let resp = boss(&app).oneshot(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "demoted");
        // Ended, not only refused: none of them comes back with the old entry restored.
        assert_eq!(app.sessions.len().await.unwrap(), 1);
        *app.accounts.write().unwrap() = Arc::new(Accounts::with_hashes(&[(
            "sara",
            "hash-s",
            Role::Supervisor,
        )]));
        let (status, body) = answer(&app, request("GET", Some(&kept), None)).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "sara"));
        let (status, _) = answer(&app, request("GET", Some(&anna), None)).await;
        assert_eq!(status.as_u16(), 401);
    }

    #[test]
    fn an_unknown_typed_name_is_written_down_masked() {
        let accounts = Accounts::from_pairs(&[("anna", "x")]);
        assert_eq!(typed_name("anna", &accounts), "anna");
        assert_eq!(
            typed_name("19850312-1116", &accounts),
            "(unknown) 850312-XXXX"
        );
        assert_eq!(typed_name("bo", &accounts), "(unknown) bo… (2 characters)");
        assert_eq!(
            typed_name("åäöx8503121116", &accounts),
            "(unknown) åä… (14 characters)"
        );
        assert!(!limit_key("8503121116", &accounts).contains("8503121116"));
        assert_eq!(limit_key("anna", &accounts), "anna");
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_when_asked() {
        let root = BasePath::root();
        assert_eq!(
            cookie("t", &root, false),
            "bankid_agent_session=t; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(cookie("t", &root, true).ends_with("; Secure"));
        assert!(clear_cookie(&root, true).contains("Max-Age=0"));
        let bankid = BasePath::parse("/bankid").unwrap();
        assert_eq!(
            cookie("t", &bankid, true),
            "bankid_agent_session=t; Path=/bankid; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(clear_cookie(&bankid, false).contains("; Path=/bankid;"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; bankid_agent_session="),
        );
        assert_eq!(session_token(&h), None, "an empty cookie is no session");
    }
}
