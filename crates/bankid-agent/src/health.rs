//! `/metrics`, `/healthz` and `/readyz` on the agent page's own listener, without a login (a
//! monitoring system has none), behind the same security headers as every other response.
//! `/metrics` and `/readyz` answer only a client on this machine, directly (not through a
//! proxy); `/healthz` says "ok" to anyone.
//!
//! `/metrics` is the engine's OpenMetrics text followed by the page's own counters (logins by
//! result, HTTP requests by route and status). It reveals volumes and outcomes only: no
//! personal number, name, agent name or order id is ever a label. `/healthz` says the process
//! answers; `/readyz` says whether it can identify callers now (the client certificate is
//! valid and BankID's last answer was not a failure; see `bankid::metrics::Metrics::readiness`).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::proxy::Client;
use crate::App;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

/// How a login attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum Login {
    /// Logged in.
    Ok,
    /// Wrong name or password.
    Failed,
    /// Refused: too many failed attempts for the name.
    Limited,
}

/// The agent page's own metrics.
pub struct AgentMetrics {
    registry: Registry,
    logins: Family<LoginLabels, Counter>,
    requests: Family<HttpLabels, Counter>,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bankid_agent");
        let logins = Family::<LoginLabels, Counter>::default();
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "logins",
            "Agent login attempts by result: ok, failed (wrong name or password), limited",
            logins.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route pattern (order ids never appear) and status",
            requests.clone(),
        );
        AgentMetrics {
            registry,
            logins,
            requests,
        }
    }
}

impl AgentMetrics {
    /// Counts a login attempt.
    pub fn login(&self, how: Login) {
        let result = match how {
            Login::Ok => "ok",
            Login::Failed => "failed",
            Login::Limited => "limited",
        };
        self.logins.get_or_create(&LoginLabels { result }).inc();
    }
}

/// The three paths; merged into the page's router.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/healthz",
            get(|| async { text(StatusCode::OK, "ok\n".into()) }),
        )
        .route("/readyz", get(readyz))
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Monitoring that may read `/metrics` and `/readyz`: a client on this machine talking to us
/// directly. A request that a proxy forwarded (any forwarding header) gets 404, like a path
/// that does not exist, even when the proxy is on this machine and not in `--trust-proxy`: the
/// README's nginx example forwards all of `/bankid/`, and volumes are nobody's business
/// outside.
struct Monitoring;

impl axum::extract::FromRequestParts<Arc<App>> for Monitoring {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Arc<App>,
    ) -> Result<Monitoring, ApiError> {
        let forwarded = [
            "x-forwarded-for",
            "x-forwarded-proto",
            "forwarded",
            "x-real-ip",
        ]
        .iter()
        .any(|h| parts.headers.contains_key(*h));
        let local = Client::of(parts, app).ip.is_some_and(|ip| ip.is_loopback());
        if forwarded || !local {
            return Err(ApiError::NotFound);
        }
        Ok(Monitoring)
    }
}

async fn metrics(State(app): State<Arc<App>>, _: Monitoring) -> Response {
    let body = app.engine().metrics_text_with(Some(&app.metrics.registry));
    (
        [(header::CONTENT_TYPE, bankid::metrics::CONTENT_TYPE)],
        body,
    )
        .into_response()
}

async fn readyz(State(app): State<Arc<App>>, _: Monitoring) -> Response {
    let r = app.engine().readiness();
    if r.ready {
        text(StatusCode::OK, format!("ready: {}\n", r.reason))
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", r.reason),
        )
    }
}

/// Middleware counting every request by its route pattern (`/api/orders/{id}`, never the id)
/// and status; requests no route matched count as `unmatched`.
pub async fn count_requests(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    app.metrics
        .requests
        .get_or_create(&HttpLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}
