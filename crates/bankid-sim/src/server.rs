//! The network side: TLS accept loop (client certificates required), HTTP/1.1 keep-alive,
//! fault injection, latency, and the `/sim/` control API.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::{Fault, FaultKind, Scenario, Shared};

type Reply = Response<Full<Bytes>>;

/// Returned to hyper to make it close the connection without an answer.
#[derive(Debug)]
struct DropConnection;
impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection dropped")
    }
}
impl std::error::Error for DropConnection {}

pub(crate) async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("listener: {e}");
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { log::warn!("accept: {e}"); continue; }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                    log::info!("TLS handshake with {peer} refused: {e}");
                    return;
                }
            };
            shared.counters.handshakes.fetch_add(1, Ordering::Relaxed);
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { route(shared, req).await }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, svc)
                .await
            {
                log::debug!("connection with {peer}: {e}");
            }
        });
    }
}

fn reply(status: u16, body: Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header"),
    );
    r
}

fn error(status: u16, code: &str, details: &str) -> Reply {
    reply(status, json!({ "errorCode": code, "details": details }))
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, DropConnection> {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(DropConnection),
    };
    if let Some(rest) = path.strip_prefix("/sim/") {
        return Ok(control(&shared, rest, &method, &body));
    }
    let Some(endpoint) = path.strip_prefix("/rp/v6.0/") else {
        return Ok(error(404, "notFound", "Unknown path"));
    };
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    if let Some(fault) = shared.take_fault(endpoint) {
        log::info!("fault {:?} on {endpoint}", fault.kind);
        match fault.kind {
            FaultKind::Maintenance => {
                return Ok(error(503, "maintenance", "Simulated maintenance"))
            }
            FaultKind::InternalError => {
                return Ok(error(500, "internalError", "Simulated internal error"))
            }
            FaultKind::RequestTimeout => {
                return Ok(error(408, "requestTimeout", "Simulated timeout"))
            }
            FaultKind::TooManyRequests => {
                let mut r = error(429, "tooManyRequests", "Simulated rate limit");
                let h = r.headers_mut();
                h.insert("ratelimit-limit", "100".parse().expect("static"));
                h.insert("ratelimit-remaining", "0".parse().expect("static"));
                h.insert("ratelimit-reset", "1".parse().expect("static"));
                return Ok(r);
            }
            FaultKind::Html403 => {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1></body></html>",
                )));
                *r.status_mut() = StatusCode::FORBIDDEN;
                r.headers_mut()
                    .insert("content-type", "text/html".parse().expect("static"));
                return Ok(r);
            }
            FaultKind::MalformedJson => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"{\"orderRef\": \"trunc")));
                r.headers_mut()
                    .insert("content-type", "application/json".parse().expect("static"));
                return Ok(r);
            }
            FaultKind::Delay => {
                tokio::time::sleep(std::time::Duration::from_millis(fault.delay_ms)).await
            }
            FaultKind::Drop => return Err(DropConnection),
        }
    }
    let result = {
        let mut book = shared.book.lock().unwrap_or_else(|e| e.into_inner());
        crate::api::handle(
            &mut book,
            &shared.timing,
            endpoint,
            &method,
            content_type.as_deref(),
            &body,
        )
    };
    Ok(match result {
        Ok(v) => reply(200, v),
        Err((status, code, details)) => error(status, code, &details),
    })
}

fn control(shared: &Shared, rest: &str, method: &str, body: &[u8]) -> Reply {
    match (method, rest) {
        ("GET", "orders") => {
            let list = shared
                .book
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .list(&shared.timing);
            reply(200, json!({ "orders": list }))
        }
        ("GET", "stats") => reply(200, json!(shared.stats())),
        ("GET", "persons") => reply(200, json!({ "persons": crate::TEST_PERSONS })),
        ("POST", "scenario") => match set_scenario(shared, body) {
            Ok(()) => reply(200, json!({})),
            Err(e) => error(400, "invalidParameters", &e),
        },
        ("POST", "faults") => match serde_json::from_slice::<Fault>(body) {
            Ok(f) => {
                shared
                    .faults
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(f);
                reply(200, json!({}))
            }
            Err(e) => error(400, "invalidParameters", &format!("fault: {e}")),
        },
        (_, "orders" | "stats" | "persons" | "scenario" | "faults") => error(
            405,
            "methodNotAllowed",
            "Wrong method for this control endpoint",
        ),
        _ => error(404, "notFound", "Unknown control endpoint"),
    }
}

/// `POST /sim/scenario`: `{personalNumber, steps, outcome}` or `{personalNumber, reset: true}`.
fn set_scenario(shared: &Shared, body: &[u8]) -> Result<(), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("Body is not valid JSON: {e}"))?;
    let pnr = v
        .get("personalNumber")
        .and_then(Value::as_str)
        .ok_or("Missing personalNumber")?;
    crate::scenario::check_personal_number(pnr)?;
    let mut book = shared.book.lock().unwrap_or_else(|e| e.into_inner());
    if v.get("reset").and_then(Value::as_bool) == Some(true) {
        book.set_scenario(pnr, None);
        return Ok(());
    }
    let s = serde_json::from_value::<Scenario>(v.clone()).map_err(|e| format!("scenario: {e}"))?;
    book.set_scenario(pnr, Some(s));
    Ok(())
}
