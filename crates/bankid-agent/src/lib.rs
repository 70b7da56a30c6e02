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
/// Behind the site's proxy: base path, trusted proxies and who the client is, frame ancestors.
pub mod proxy;
/// Putting the router on a socket (HTTP, or HTTPS with our accept loop) and housekeeping.
mod serve;
/// Sessions, cookies, CSRF and the `Agent` extractor, so no handler checks a login by hand.
pub mod session;
/// What the agent reads: order texts and the simulator banner's test persons.
pub mod texts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bankid::order::{Engine, Reloadable};
use base64::Engine as _;

use accounts::Accounts;
use error::ApiError;
use limits::{Limit, RateLimiter};
use proxy::{BasePath, Cidr};

pub use serve::{serve, spawn_housekeeping, tls_config};
pub use session::COOKIE;
pub use texts::{simulator_persons, TestPerson};

/// The Content-Security-Policy on every response: only this origin's script and style, no
/// inline code, no framing (unless [`Options::frame_ancestors`] names who may).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The CSP for these frame ancestors (none: [`CSP`]).
pub fn csp(frame_ancestors: &[String]) -> String {
    if frame_ancestors.is_empty() {
        return CSP.to_string();
    }
    CSP.replace(
        "frame-ancestors 'none'",
        &format!("frame-ancestors {}", frame_ancestors.join(" ")),
    )
}

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// How the server is set up.
pub struct Options {
    /// Who may log in.
    pub accounts: Accounts,
    /// The BankID order engine (its configuration reloadable while orders run).
    pub engine: Reloadable,
    /// Test persons when BankID is the embedded simulator (`None`: real BankID).
    pub simulated: Option<Vec<TestPerson>>,
    /// What BankID is, for the page's footer: "BankID test", "BankID", a URL host, "simulator".
    pub backend_label: String,
    /// Mark cookies `Secure` (served over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// Failed logins allowed per agent name.
    pub login_limit: Limit,
    /// Failed logins allowed per client address (whatever the names tried).
    pub login_address_limit: Limit,
    /// Identifications allowed per agent.
    pub identify_limit: Limit,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// Final orders are forgotten this long after they ended.
    pub order_retention: Duration,
    /// Where the page, its assets and the API live (`/bankid`: `/bankid/`, `/bankid/api/…`).
    pub base_path: BasePath,
    /// Peers whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed (default: none).
    pub trusted_proxies: Vec<Cidr>,
    /// Origins (`https://host[:port]`) allowed to frame the page (default: none, and
    /// `X-Frame-Options: DENY`).
    pub frame_ancestors: Vec<String>,
}

impl Options {
    /// Defaults for everything but the accounts and the engine.
    pub fn new(accounts: Accounts, engine: Engine) -> Options {
        Options {
            accounts,
            engine: engine.into(),
            simulated: None,
            backend_label: "BankID".into(),
            secure_cookies: false,
            login_limit: Limit {
                max: 5,
                per: Duration::from_secs(15 * 60),
            },
            login_address_limit: Limit {
                max: 20,
                per: Duration::from_secs(15 * 60),
            },
            identify_limit: Limit {
                max: 20,
                per: Duration::from_secs(15 * 60),
            },
            session_idle: Duration::from_secs(60 * 60),
            order_retention: Duration::from_secs(30 * 60),
            base_path: BasePath::root(),
            trusted_proxies: Vec::new(),
            frame_ancestors: Vec::new(),
        }
    }
}

/// The server's state.
pub struct App {
    opts: Options,
    /// Who may log in now: `opts.accounts` at first, replaced by [`App::replace_accounts`].
    accounts: RwLock<Arc<Accounts>>,
    sessions: session::Sessions,
    orders: Mutex<HashMap<String, orders::AgentOrder>>,
    login_failures: RateLimiter,
    login_failures_by_address: RateLimiter,
    identifications: RateLimiter,
    metrics: health::AgentMetrics,
}

impl App {
    /// The state for a server with these options.
    pub fn new(opts: Options) -> Arc<App> {
        Arc::new(App {
            accounts: RwLock::new(Arc::new(opts.accounts.clone())),
            login_failures: RateLimiter::new(opts.login_limit),
            login_failures_by_address: RateLimiter::new(opts.login_address_limit),
            identifications: RateLimiter::new(opts.identify_limit),
            opts,
            sessions: session::Sessions::default(),
            orders: Mutex::new(HashMap::new()),
            metrics: health::AgentMetrics::default(),
        })
    }

    /// The engine (for reloads, tests and shutdown).
    pub fn engine(&self) -> &Reloadable {
        &self.opts.engine
    }

    /// Who may log in now.
    pub fn accounts(&self) -> Arc<Accounts> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes a re-read accounts file into use: new agents can log in at once; the sessions of
    /// agents removed from the file, or whose password was reset (`add-agent` on an existing
    /// name, e.g. after a compromise), end with their pending identifications cancelled, as at
    /// a logout. Everybody else stays logged in.
    pub fn replace_accounts(&self, accounts: Accounts) {
        let accounts = Arc::new(accounts);
        let ended = {
            let mut current = self.accounts.write().unwrap_or_else(|e| e.into_inner());
            let before = std::mem::replace(&mut *current, accounts.clone());
            self.sessions
                .end_unless(|agent| accounts.same_entry(agent, &before))
        };
        let agents = accounts.len();
        for agent in &ended {
            orders::cancel_pending_of(self, agent);
        }
        log::info!(
            "accounts reloaded: {agents} agent(s); {} session(s) of removed agents ended",
            ended.len()
        );
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
        self.login_failures_by_address.prune();
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

/// The router: the page, its script and style, and the JSON API, all under the base path;
/// anything else is 404.
pub fn router(app: Arc<App>) -> Router {
    let base = app.opts.base_path.clone();
    let index = || asset("text/html; charset=utf-8", INDEX_HTML);
    let top = if base.is_root() {
        Router::new().route("/", get(index)).merge(page())
    } else {
        // The page's URLs are relative, so it must be fetched as `/bankid/`, not `/bankid`.
        let page_url = base.page();
        let to_page = move || async move {
            (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, page_url)],
            )
        };
        Router::new()
            .route(&base.page(), get(index))
            .route(base.as_str(), get(to_page))
            .nest(base.as_str(), page())
    };
    let headers = SecurityHeaders::new(&app.opts.frame_ancestors);
    top.fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            health::count_requests,
        ))
        .layer(axum::middleware::map_response(move |resp| {
            security_headers(headers.clone(), resp)
        }))
        .with_state(app)
}

/// Everything but the page itself, at paths relative to the base.
fn page() -> Router<Arc<App>> {
    Router::new()
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
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[derive(Clone)]
struct SecurityHeaders {
    csp: HeaderValue,
    /// `X-Frame-Options: DENY` unless frame ancestors are allowed (it cannot name them).
    deny_frames: bool,
}

impl SecurityHeaders {
    fn new(frame_ancestors: &[String]) -> SecurityHeaders {
        SecurityHeaders {
            // Validated origins: letters, digits, `-`, `.`, `:` and `/` only.
            csp: HeaderValue::from_str(&csp(frame_ancestors))
                .unwrap_or_else(|_| HeaderValue::from_static(CSP)),
            deny_frames: frame_ancestors.is_empty(),
        }
    }
}

async fn security_headers(s: SecurityHeaders, mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, s.csp);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if s.deny_frames {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
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
