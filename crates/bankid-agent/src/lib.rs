//! The agent page: an agent on a call types the caller's personal number, presses
//! **Identifiera**, and sees who BankID says the caller is.
//!
//! One small single-page app (HTML, JS and CSS served from this binary, nothing from elsewhere)
//! and a JSON API behind agent logins. The personal number travels only in a POST body; order
//! ids in URLs are random and belong to the agent who started them.
//!
//! Supervisors (a role in the accounts file) also get the supervisor view: every identification
//! on record from every entry point, filtered, looked up by personal number, exported, with its
//! evidence and charts of how identification goes. With an audit database the page keeps its
//! sessions, login counters and the agents' actions there too, so a restart logs nobody out
//! and instances sharing a PostgreSQL database behave as one.

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
/// Sessions, cookies, CSRF and the `Agent` and `Supervisor` extractors, so no handler checks a
/// login or a role by hand.
pub mod session;
/// The page's share of the audit database: sessions, counters, agent actions.
pub mod store;
/// The supervisor view: records, lookup, evidence, charts, CSV.
mod supervisor;
/// What the agent reads: order texts and the simulator banner's test persons.
pub mod texts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bankid::order::{Engine, Reloadable};
use base64::Engine as _;

use accounts::Accounts;
use error::ApiError;
use limits::{Limit, Limiter};
use proxy::{BasePath, Cidr};
use store::events::Events;
use store::sessions::SessionStore;
use store::AgentDb;

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
    /// The audit database: sessions, login counters and agent actions are kept there, and the
    /// supervisor view reads the records from it. `None` (records off): sessions and counters
    /// in memory, no actions recorded, and the supervisor view says records are off.
    pub database: Option<AgentDb>,
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
            database: None,
        }
    }
}

/// How often the database's expired sessions and counters are swept (the in-memory ones are
/// swept at every housekeeping tick).
const SHARED_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The server's state.
pub struct App {
    opts: Options,
    /// Who may log in now: `opts.accounts` at first, replaced by [`App::replace_accounts`].
    accounts: RwLock<Arc<Accounts>>,
    sessions: SessionStore,
    orders: Mutex<HashMap<String, orders::AgentOrder>>,
    login_failures: Limiter,
    login_failures_by_address: Limiter,
    identifications: Limiter,
    events: Events,
    metrics: health::AgentMetrics,
    /// When the database's expired rows were last swept.
    last_shared_prune: Mutex<Option<Instant>>,
}

impl App {
    /// The state for a server with these options.
    pub fn new(opts: Options) -> Arc<App> {
        let db = opts.database.as_ref();
        Arc::new(App {
            accounts: RwLock::new(Arc::new(opts.accounts.clone())),
            login_failures: Limiter::new("login-name", opts.login_limit, db),
            login_failures_by_address: Limiter::new("login-address", opts.login_address_limit, db),
            identifications: Limiter::new("identify", opts.identify_limit, db),
            sessions: SessionStore::new(opts.session_idle, db.cloned()),
            events: Events::new(db.cloned()),
            opts,
            orders: Mutex::new(HashMap::new()),
            metrics: health::AgentMetrics::default(),
            last_shared_prune: Mutex::new(None),
        })
    }

    /// The audit database, if records are on.
    pub fn database(&self) -> Option<&AgentDb> {
        self.opts.database.as_ref()
    }

    /// Whether sessions and counters are shared through the database.
    pub fn shares_sessions(&self) -> bool {
        self.sessions.is_shared()
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
    /// agents removed from the file, whose password was reset (`add-agent` on an existing
    /// name, e.g. after a compromise) or whose role changed, end with their pending
    /// identifications cancelled, as at a logout. Everybody else stays logged in. With shared
    /// sessions this ends them on every instance (which should all read the same file).
    pub async fn replace_accounts(&self, accounts: Accounts) {
        let accounts = Arc::new(accounts);
        let changed: Vec<String> = {
            let mut current = self.accounts.write().unwrap_or_else(|e| e.into_inner());
            let before = std::mem::replace(&mut *current, accounts.clone());
            before
                .names()
                .filter(|name| !accounts.same_entry(name, &before))
                .map(str::to_string)
                .collect()
        };
        let ended = match self.sessions.end_all_of(&changed).await {
            Ok(n) => n,
            Err(e) => {
                log::error!(
                    "accounts reloaded, but the sessions of {} changed or removed agent(s) could                      not be ended: {e}",
                    changed.len()
                );
                0
            }
        };
        for agent in &changed {
            orders::cancel_pending_of(self, agent);
        }
        log::info!(
            "accounts reloaded: {} agent(s); {ended} session(s) of removed or changed agents ended",
            accounts.len()
        );
    }

    /// Orders held for agents.
    pub fn orders_held(&self) -> usize {
        lock(&self.orders).len()
    }

    /// Ends idle sessions, records when orders ended, forgets old final orders and stale
    /// rate-limit entries. Called every 250 ms by [`spawn_housekeeping`]; the database's rows
    /// are swept every [`SHARED_PRUNE_EVERY`] only.
    pub async fn housekeeping(&self) {
        orders::housekeeping(self);
        if self.sessions.is_shared() {
            let mut last = lock(&self.last_shared_prune);
            if last.is_some_and(|t| t.elapsed() < SHARED_PRUNE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let swept = [
            self.sessions.prune().await,
            self.login_failures.prune().await,
            self.login_failures_by_address.prune().await,
            self.identifications.prune().await,
        ];
        for e in swept.into_iter().filter_map(Result::err) {
            log::warn!("sweeping expired sessions and counters: {e}");
        }
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
        .merge(supervisor::router())
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
    let accounts = Accounts::with_hashes(&[
        ("anna", "hash-a", accounts::Role::Agent),
        ("bertil", "hash-b", accounts::Role::Agent),
        ("sara", "hash-s", accounts::Role::Supervisor),
    ]);
    App::new(Options::new(accounts, engine))
}
