//! `bankid-ivr fastagi --metrics ADDR`: `/metrics` (the engine's OpenMetrics text), `/healthz`
//! (the process answers) and `/readyz` (the client certificate is valid and BankID's last
//! answer was not a failure) on a listener of their own, on the FastAGI server's one thread.
//!
//! Off unless asked for. Loopback only unless `--metrics-public` says otherwise: the text holds
//! no personal data, but call volumes and outcomes are still nobody else's business. What a
//! peer can make it hold is bounded: at most [`MAX_CONNECTIONS`] connections at once (more are
//! closed at once), request headers within [`HEADER_TIMEOUT`] and hyper's header size limit,
//! and every connection closed after [`CONNECTION_LIFETIME`].

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use bankid::order::Reloadable;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The time a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection is kept, keep-alive included.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn router(engine: Arc<Reloadable>) -> Router {
    let for_metrics = engine.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, bankid::metrics::CONTENT_TYPE),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                    for_metrics.metrics_text(),
                )
                    .into_response()
            }),
        )
        .route(
            "/healthz",
            get(|| async { text(StatusCode::OK, "ok\n".into()) }),
        )
        .route(
            "/readyz",
            get(move || async move {
                let r = engine.readiness();
                if r.ready {
                    text(StatusCode::OK, format!("ready: {}\n", r.reason))
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {}\n", r.reason),
                    )
                }
            }),
        )
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found\n".into()) })
}

/// Serves the three paths on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, engine: Arc<Reloadable>) {
    let router = router(engine);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("metrics listener: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            log::warn!("metrics listener: refused {peer}: {MAX_CONNECTIONS} connections already");
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let io = hyper_util::rt::TokioIo::new(tcp);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(io, svc);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Err(e)) => log::debug!("metrics connection {peer}: {e}"),
                Err(_) => {
                    log::debug!("metrics connection {peer}: closed after {CONNECTION_LIFETIME:?}")
                }
                Ok(Ok(())) => {}
            }
        });
    }
}
