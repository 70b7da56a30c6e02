//! The agent page: an agent on a call types the caller's personal number, presses
//! **Identifiera**, and sees who BankID says the caller is.
//!
//! One small single-page app (HTML, JS and CSS served from this binary, nothing from elsewhere)
//! and a JSON API behind agent logins. The personal number travels only in a POST body; order
//! ids in URLs are random and belong to the agent who started them.

/// Who may log in: the accounts file and its argon2 hashes.
pub mod accounts;
/// JSON request bodies that fail with the API's errors, not axum's plain-text ones.
mod body;
/// One enum for every API failure (status, code, message), and the start-up error.
pub mod error;
/// `/metrics`, `/healthz`, `/readyz`, and the page's own counters.
pub mod health;
/// Per-agent sliding-window limits on failed logins and identifications.
pub mod limits;
/// The identifications: starting, polling and cancelling orders, and their JSON.
mod orders;
/// Putting the router on a socket (HTTP, or HTTPS with our accept loop) and housekeeping.
mod serve;
/// Sessions, cookies, CSRF and the `Agent` extractor, so no handler checks a login by hand.
pub mod session;
/// What the agent reads: order texts and the simulator banner's test persons.
pub mod texts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bankid::order::Engine;
use base64::Engine as _;

use accounts::Accounts;
use error::ApiError;
use limits::{Limit, RateLimiter};

pub use serve::{serve, spawn_housekeeping, tls_config};
pub use session::COOKIE;
pub use texts::{simulator_persons, TestPerson};

/// The Content-Security-Policy on every response: only this origin's script and style, no
/// inline code, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

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

/// The server's state.
pub struct App {
    opts: Options,
    sessions: session::Sessions,
    orders: Mutex<HashMap<String, orders::AgentOrder>>,
    login_failures: RateLimiter,
    identifications: RateLimiter,
    metrics: health::AgentMetrics,
}

impl App {
    /// The state for a server with these options.
    pub fn new(opts: Options) -> Arc<App> {
        Arc::new(App {
            login_failures: RateLimiter::new(opts.login_limit),
            identifications: RateLimiter::new(opts.identify_limit),
            opts,
            sessions: session::Sessions::default(),
            orders: Mutex::new(HashMap::new()),
            metrics: health::AgentMetrics::default(),
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

    /// Ends idle sessions, records when orders ended, forgets old final orders and stale
    /// rate-limit entries. Called every 250 ms by [`spawn_housekeeping`].
    pub fn housekeeping(&self) {
        self.sessions.prune(self.opts.session_idle);
        orders::housekeeping(self);
        self.login_failures.prune();
        self.identifications.prune();
    }
}

/// A poisoned lock still holds consistent maps (every update is one insert or remove).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `bytes` random bytes, base64url: session tokens, CSRF tokens, order ids.
fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The router: the page, its script and style, and the JSON API.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .merge(session::router())
        .merge(orders::router())
        .merge(health::router())
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            health::count_requests,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
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

/// An app for unit tests. Their requests stop before anything reaches BankID (the simulator
/// is gone once this returns); the engine only needs a client identity to start.
#[cfg(test)]
pub(crate) fn test_app() -> Arc<App> {
    let lab = bankid_sim::Lab::start(Default::default()).expect("a simulator");
    let file = lab.write_client_toml("").expect("its configuration");
    let config = bankid::config::Config::from_file(&file).expect("a configuration");
    let engine = Engine::new(config).expect("an engine");
    App::new(Options::new(Accounts::from_pairs(&[]), engine))
}
