//! The network side: TLS accept loop (client certificates required), HTTP/1.1 keep-alive,
//! fault injection, latency, and the `/sim/` control API.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
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

/// How long an idle keep-alive connection, or one sending its request headers, may stay open.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

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
            // A client that opens TCP and never finishes the handshake is dropped.
            let stream =
                match tokio::time::timeout(shared.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                        log::info!("TLS handshake with {peer} refused: {e}");
                        return;
                    }
                    Err(_) => {
                        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                        shared
                            .counters
                            .handshake_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        log::info!(
                            "TLS handshake with {peer} not finished after {:?}: dropped",
                            shared.handshake_timeout
                        );
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
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(64 * 1024)
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

/// 413 for a body over the limit; the connection is closed rather than drained.
fn too_large(limit: usize) -> Reply {
    let mut r = error(
        413,
        "invalidParameters",
        &format!("Request body larger than {limit} bytes"),
    );
    r.headers_mut()
        .insert("connection", "close".parse().expect("static"));
    r
}

fn html(status: u16, title: &str) -> Reply {
    let body = format!(
        "<html><head><title>{status} {title}</title></head><body><center><h1>{status} {title}</h1></center><hr><center>nginx</center></body></html>"
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut()
        .insert("content-type", "text/html".parse().expect("static"));
    r
}

/// `RateLimit-*` and `Retry-After` as the fault asks (values were checked to be header-safe).
fn rate_headers(r: &mut Reply, fault: &Fault) {
    let h = r.headers_mut();
    let mut set = |name: &'static str, v: &str| {
        if let Ok(v) = v.parse() {
            h.insert(name, v);
        }
    };
    let reset = match (&fault.reset_s, &fault.retry_after_s) {
        (Some(r), _) => Some(r.as_str()),
        (None, None) if fault.kind == FaultKind::TooManyRequests => Some("1"),
        _ => None,
    };
    if fault.kind == FaultKind::TooManyRequests {
        set("ratelimit-limit", "100");
        set("ratelimit-remaining", "0");
    }
    if let Some(v) = reset {
        set("ratelimit-reset", v);
    }
    if let Some(v) = &fault.retry_after_s {
        set("retry-after", v);
    }
}

/// The answer of a fault that strikes before the request is handled; `None` lets it through
/// (after a [`FaultKind::Delay`]).
async fn strike(fault: &Fault) -> Result<Option<Reply>, DropConnection> {
    let mut r = match fault.kind {
        FaultKind::Maintenance => error(503, "maintenance", "Simulated maintenance"),
        FaultKind::InternalError => error(500, "internalError", "Simulated internal error"),
        FaultKind::RequestTimeout => error(408, "requestTimeout", "Simulated timeout"),
        FaultKind::TooManyRequests => error(429, "tooManyRequests", "Simulated rate limit"),
        FaultKind::Unauthorized => error(
            401,
            "unauthorized",
            "Simulated: the RP certificate is not authorized",
        ),
        FaultKind::UnknownErrorCode => error(
            400,
            fault.value.as_deref().unwrap_or("someFutureError"),
            "Simulated error code BankID does not have today",
        ),
        FaultKind::Html403 => {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1></body></html>",
            )));
            *r.status_mut() = StatusCode::FORBIDDEN;
            r.headers_mut()
                .insert("content-type", "text/html".parse().expect("static"));
            r
        }
        FaultKind::Html502 => html(502, "Bad Gateway"),
        FaultKind::Html503 => html(503, "Service Temporarily Unavailable"),
        FaultKind::Html429 => html(429, "Too Many Requests"),
        FaultKind::MalformedJson => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"{\"orderRef\": \"trunc")));
            r.headers_mut()
                .insert("content-type", "application/json".parse().expect("static"));
            r
        }
        FaultKind::Delay => {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
            return Ok(None);
        }
        FaultKind::Drop => return Err(DropConnection),
        // Answer shapes never strike before handling.
        _ => return Ok(None),
    };
    if fault.kind.takes_rate_headers() {
        rate_headers(&mut r, fault);
    }
    Ok(Some(r))
}

/// A different valid personal number than `pnr`.
fn other_person(pnr: &str) -> &'static str {
    if pnr == "199908072391" {
        "196801642395"
    } else {
        "199908072391"
    }
}

/// Rewrites a real `collect` answer as an answer-shape fault says.
fn reshape(fault: &Fault, real: Value) -> Value {
    let order_ref = real.get("orderRef").cloned().unwrap_or(Value::Null);
    let value = fault.value.as_deref();
    let mut v = real;
    match fault.kind {
        FaultKind::UnknownStatus => {
            v = json!({ "orderRef": order_ref, "status": value.unwrap_or("paused") });
        }
        FaultKind::UnknownHintCode => {
            v = json!({
                "orderRef": order_ref,
                "status": "pending",
                "hintCode": value.unwrap_or("someFutureHint"),
            });
        }
        FaultKind::ExtraFields => {
            v["someFutureField"] = json!({ "nested": [1, "two", null], "flag": true });
            if let Some(cd) = v.get_mut("completionData").and_then(Value::as_object_mut) {
                cd.insert("someFutureField".into(), json!("completionData extra"));
                for key in ["user", "device", "stepUp"] {
                    if let Some(o) = cd.get_mut(key).and_then(Value::as_object_mut) {
                        o.insert("someFutureField".into(), json!(format!("{key} extra")));
                    }
                }
            }
        }
        FaultKind::NullFields => {
            let cd = &mut v["completionData"];
            cd["user"]["givenName"] = Value::Null;
            cd["user"]["surname"] = Value::Null;
            cd["device"]["uhi"] = Value::Null;
            cd["stepUp"] = Value::Null;
        }
        FaultKind::OtherPerson => {
            let user = &mut v["completionData"]["user"];
            let mine = user["personalNumber"].as_str().unwrap_or_default();
            let other = value.unwrap_or(other_person(mine)).to_string();
            user["personalNumber"] = json!(other);
        }
        FaultKind::BadPersonalNumber => {
            v["completionData"]["user"]["personalNumber"] = json!(value.unwrap_or("19ÅÄÖ"));
        }
        FaultKind::MissingPersonalNumber => {
            if let Some(u) = v["completionData"]["user"].as_object_mut() {
                u.remove("personalNumber");
            }
        }
        _ => {}
    }
    v
}

/// Reads a request body: at most `limit` bytes kept, within `timeout`. A body over the limit
/// but under four times it is read and discarded first, so the client sees the 413 instead of a
/// broken pipe; a larger one gets the 413 at once. Either way the connection is then closed.
/// `Err(None)` drops the connection (stalled or broken); `Err(Some(reply))` answers 413.
async fn read_body(
    body: Incoming,
    declared: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Option<Reply>> {
    let drain_cap = limit.saturating_mul(4);
    if declared.is_some_and(|n| n > drain_cap as u64) {
        return Err(Some(too_large(limit)));
    }
    match tokio::time::timeout(timeout, Limited::new(body, drain_cap).collect()).await {
        Ok(Ok(b)) => {
            let b = b.to_bytes();
            if b.len() <= limit {
                Ok(b)
            } else {
                Err(Some(too_large(limit)))
            }
        }
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(Some(too_large(limit))),
        Ok(Err(_)) | Err(_) => Err(None),
    }
}

/// Whom a request is about: a start's `personalNumber` (top level or in `requirement`), or
/// the person of the order a `collect`/`cancel` names. Only computed when a fault asks.
fn request_person(shared: &Shared, endpoint: &str, body: &[u8]) -> Option<String> {
    let wanted = shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|f| f.personal_number.is_some());
    if !wanted {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    match endpoint {
        "collect" | "cancel" => {
            let r = v.get("orderRef")?.as_str()?;
            shared
                .book
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .personal_number_of(r)
        }
        _ => v
            .get("personalNumber")
            .or_else(|| v.get("requirement")?.get("personalNumber"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
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
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = match read_body(
        req.into_body(),
        declared,
        shared.max_body_bytes,
        shared.handshake_timeout,
    )
    .await
    {
        Ok(b) => b,
        Err(Some(r)) => return Ok(r),
        Err(None) => return Err(DropConnection),
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
    let person = request_person(&shared, endpoint, &body);
    let on_endpoint = |f: &Fault| {
        f.endpoint.as_deref().is_none_or(|e| e == endpoint)
            && f.personal_number
                .as_deref()
                .is_none_or(|p| person.as_deref() == Some(p))
    };
    if let Some(fault) = shared.take_fault(|f| !f.kind.is_answer_shape() && on_endpoint(f)) {
        log::info!("fault {} on {endpoint}", fault.kind.name());
        if let Some(r) = strike(&fault).await? {
            return Ok(r);
        }
    }
    let result = {
        let mut book = shared.book.lock().unwrap_or_else(|e| e.into_inner());
        let result = crate::api::handle(
            &mut book,
            &shared.timing,
            endpoint,
            &method,
            content_type.as_deref(),
            &body,
        );
        match result {
            Ok(v) if endpoint == "collect" => {
                let complete = v["status"] == "complete";
                let shape = shared.take_fault(|f| {
                    f.kind.is_answer_shape()
                        && on_endpoint(f)
                        && (complete || !f.kind.needs_complete())
                });
                match shape {
                    Some(fault) => {
                        log::info!("answer shape {} on collect", fault.kind.name());
                        let replaced = matches!(
                            fault.kind,
                            FaultKind::UnknownStatus | FaultKind::UnknownHintCode
                        );
                        if replaced && v["status"] != "pending" {
                            // The real final status was not sent: it stays collectable.
                            if let Some(r) = v["orderRef"].as_str() {
                                book.uncollect(r);
                            }
                        }
                        Ok(reshape(&fault, v))
                    }
                    None => Ok(v),
                }
            }
            other => other,
        }
    };
    if let Ok(v) = &result {
        if endpoint == "collect" {
            shared.note_sent(v);
        }
    }
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
        ("POST", "faults") => {
            let parsed = serde_json::from_slice::<Value>(body)
                .map_err(|e| format!("Body is not valid JSON: {e}"))
                .and_then(|v| Fault::from_json(&v));
            match parsed {
                Ok(f) => {
                    shared
                        .faults
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(f);
                    reply(200, json!({}))
                }
                Err(e) => error(400, "invalidParameters", &format!("fault: {e}")),
            }
        }
        ("GET", "faults") => {
            let list = shared
                .faults
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            reply(200, json!({ "faults": list }))
        }
        ("DELETE", "faults") => {
            shared
                .faults
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            reply(200, json!({}))
        }
        (_, "orders" | "stats" | "persons" | "scenario" | "faults") => error(
            405,
            "methodNotAllowed",
            "Wrong method for this control endpoint",
        ),
        _ => error(404, "notFound", "Unknown control endpoint"),
    }
}

/// `POST /sim/scenario`: `{personalNumber, steps, outcome, bankIdIssueDate?}`,
/// `{personalNumber, bankIdIssueDate}` or `{personalNumber, reset: true}`.
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
        book.set_issue_date(pnr, None);
        return Ok(());
    }
    let date = match v.get("bankIdIssueDate") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(d)) if !d.is_empty() && d.len() <= 100 => Some(Some(d.clone())),
        Some(other) => {
            return Err(format!(
                "bankIdIssueDate must be a string of 1 to 100 characters (sent verbatim) or null, got {other}"
            ))
        }
    };
    let has_scenario = v.get("steps").is_some() || v.get("outcome").is_some();
    if !has_scenario && date.is_none() {
        return Err("Missing steps and outcome (or bankIdIssueDate, or reset)".into());
    }
    if has_scenario {
        let s =
            serde_json::from_value::<Scenario>(v.clone()).map_err(|e| format!("scenario: {e}"))?;
        book.set_scenario(pnr, Some(s));
    }
    if let Some(d) = date {
        book.set_issue_date(pnr, d);
    }
    Ok(())
}
