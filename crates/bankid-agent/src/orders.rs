//! The identifications an agent starts: `POST /api/identify`, `GET /api/orders/{id}`,
//! `POST /api/orders/{id}/cancel`, and the order JSON the page polls. Order ids in URLs are
//! random, belong to the agent who started them, and map to the engine's handles only here.
//!
//! Each order names its agent to the engine (`CallContext`, channel `agent`), so the engine's
//! record says who identified the caller; starting and cancelling are agent events too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bankid::audit::{CallContext, Channel};
use bankid::order::{Mode, OrderId, OrderView, StartOptions, State as OrderState};
use bankid::personnummer::Personnummer;
use bankid::rp::CallInitiator;
use serde::Deserialize;
use serde_json::json;

use crate::body::ApiJson;
use crate::error::{ApiError, ApiResult};
use crate::proxy::Client;
use crate::session::Agent;
use crate::store::events::{Action, AgentEvent};
use crate::{lock, now_ms, random_token, texts, App};

/// An order as the agent page knows it.
pub(crate) struct AgentOrder {
    agent: String,
    engine_id: OrderId,
    /// `YYMMDD-XXXX`: the only form of the number kept here and logged.
    masked: String,
    call_initiator: CallInitiator,
    mode: Mode,
    /// The ID-document check was asked for.
    id_document: bool,
    started_ms: u64,
    /// When the order was first seen final (wall clock for the page, monotonic for retention).
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

/// The start of an order id: enough to follow one order in the log, too little to fetch it.
fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn outcome(v: &OrderView) -> String {
    let hint = v.hint_code.as_ref().map(|h| h.as_str().to_string());
    let error = v.error.as_ref().map(ToString::to_string);
    match v.state {
        OrderState::Pending | OrderState::Complete => v.state.as_str().into(),
        OrderState::Failed => format!("failed ({})", hint.or(error).as_deref().unwrap_or("-")),
        OrderState::Error => format!("error ({})", error.as_deref().unwrap_or("-")),
    }
}

/// Records when orders ended, forgets those final longer than the retention and those the
/// engine no longer knows, releasing their engine handles.
pub(crate) fn housekeeping(app: &App) {
    let mut forget = Vec::new();
    let mut orders = lock(&app.orders);
    for (id, o) in orders.iter_mut() {
        match app.opts.engine.poll(o.engine_id) {
            Ok(v) => o.note_final(id, &v),
            Err(_) => forget.push(id.clone()),
        }
        if o.finished
            .is_some_and(|(_, t)| t.elapsed() > app.opts.order_retention)
        {
            forget.push(id.clone());
        }
    }
    for id in &forget {
        if let Some(o) = orders.remove(id) {
            let _ = app.opts.engine.release(o.engine_id);
        }
    }
}

/// Cancels every pending order of `agent` (a new caller starts clean; logging out leaves
/// nothing running).
pub(crate) fn cancel_pending_of(app: &App, agent: &str) {
    let orders = lock(&app.orders);
    for o in orders.values().filter(|o| o.agent == agent) {
        if let Ok(OrderState::Pending) = app.opts.engine.state(o.engine_id) {
            let _ = app.opts.engine.cancel(o.engine_id);
        }
    }
}

/// `/api/identify`, `/api/orders/{id}`, `/api/orders/{id}/cancel`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/api/identify", post(identify))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/orders/{id}/cancel", post(cancel_order))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentifyRequest {
    personal_number: String,
    #[serde(default)]
    call_initiator: Option<String>,
    /// `identify` (default) or `sign`.
    #[serde(default)]
    mode: Option<String>,
    /// The text shown in the app; what the caller approves when signing.
    #[serde(default)]
    user_visible_data: Option<String>,
    /// "Kräv säkerhetskod".
    #[serde(default)]
    require_pin_code: bool,
    /// "Extra kontroll med ID-handling".
    #[serde(default)]
    require_id_document: bool,
}

/// The longest text an agent may write (characters); BankID's own limit after base64 is
/// checked by the engine as well.
pub const TEXT_MAX_CHARS: usize = 1000;

async fn identify(
    State(app): State<Arc<App>>,
    client: Client,
    a: Agent,
    ApiJson(req): ApiJson<IdentifyRequest>,
) -> ApiResult<Response> {
    let pnr = Personnummer::parse(&req.personal_number)?;
    let call_initiator = match req.call_initiator.as_deref() {
        None => CallInitiator::default(),
        Some(s) => CallInitiator::parse(s).ok_or(ApiError::BadRequest(
            "callInitiator is \"user\" (the caller called us) or \"RP\" (we called them)",
        ))?,
    };
    let mode = match req.mode.as_deref() {
        None => Mode::Identify,
        Some(s) => {
            Mode::parse(s).ok_or(ApiError::BadRequest("mode is \"identify\" or \"sign\""))?
        }
    };
    let text = req
        .user_visible_data
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if mode == Mode::Sign && text.is_none() {
        return Err(ApiError::BadRequest(
            "signing needs userVisibleData: the text the caller approves",
        ));
    }
    if text.as_ref().is_some_and(|t| {
        t.chars().count() > TEXT_MAX_CHARS || t.chars().any(|c| c.is_control() && c != '\n')
    }) {
        return Err(ApiError::BadRequest(
            "userVisibleData is at most 1000 characters, without control characters",
        ));
    }
    if let Some(retry_after) = app.identifications.take(&a.name).await? {
        log::warn!(
            "agent {} from {}: identification refused, rate limit",
            a.name,
            client.addr()
        );
        return Err(ApiError::TooManyIdentifications { retry_after });
    }
    cancel_pending_of(&app, &a.name);
    let mut options = StartOptions {
        mode,
        call_initiator: Some(call_initiator),
        user_visible_data: text,
        context: CallContext {
            channel: Channel::Agent,
            agent: Some(a.name.clone()),
            call_id: None,
        },
        ..Default::default()
    };
    if req.require_pin_code {
        options = options.require_pin_code();
    }
    if req.require_id_document {
        options = options.require_id_document();
    }
    let engine_id = app.opts.engine.start(&pnr, options)?;
    // No identification runs without its event: if it cannot be written, the order is
    // cancelled at once and the agent told to try again.
    let started = AgentEvent::new(&a.name, Action::IdentifyStarted, &client.addr()).about(&pnr);
    if let Err(e) = app.events.record(&started).await {
        let _ = app.opts.engine.cancel(engine_id);
        let _ = app.opts.engine.release(engine_id);
        return Err(e.into());
    }
    let id = random_token(18);
    log::info!(
        "order {} of agent {} from {} for {} started ({}, callInitiator {}, pinCode {}, ID document {})",
        short(&id),
        a.name,
        client.addr(),
        pnr.masked(),
        mode.as_str(),
        call_initiator.as_str(),
        req.require_pin_code,
        req.require_id_document
    );
    let mut order = AgentOrder {
        agent: a.name,
        engine_id,
        masked: pnr.masked(),
        call_initiator,
        mode,
        id_document: req.require_id_document,
        started_ms: now_ms(),
        finished: None,
    };
    let body = order_json(&app, &id, &mut order);
    lock(&app.orders).insert(id, order);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// What the page shows of an order; polling it also notes when it became final.
fn order_json(app: &App, id: &str, o: &mut AgentOrder) -> serde_json::Value {
    let v = match app.opts.engine.poll(o.engine_id) {
        Ok(v) => v,
        Err(_) => return json!({"id": id, "state": "error", "errorCode": "gone"}),
    };
    o.note_final(id, &v);
    let at = texts::for_order(&v);
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
        "state": v.state.as_str(),
        "step": at.step,
        "hintCode": v.hint_code.as_ref().map(|h| h.as_str()),
        "errorCode": v.error.as_ref().map(ToString::to_string),
        "agentText": at.text,
        "callerMessage": {"id": v.message.id, "sv": v.message.text.sv, "en": v.message.text.en},
        "fraudWarning": at.fraud_warning,
        "personalNumberMasked": o.masked,
        "callInitiator": o.call_initiator.as_str(),
        "startedAtMs": o.started_ms,
        "finishedAtMs": o.finished.map(|(ms, _)| ms),
        "person": person,
        "mode": o.mode.as_str(),
        "checks": {
            "pinCodeRequired": v.pin_code_required,
            "idDocumentRequired": o.id_document,
            "idDocumentChecked": v.step_up.mrtd,
        },
        "signedText": v.signed_text,
    })
}

/// The order `id` if it is `agent`'s: another agent's order answers exactly like one that does
/// not exist, so ids cannot be probed.
fn own_order<'a>(
    orders: &'a mut HashMap<String, AgentOrder>,
    id: &str,
    agent: &Agent,
) -> ApiResult<&'a mut AgentOrder> {
    orders
        .get_mut(id)
        .filter(|o| o.agent == agent.name)
        .ok_or(ApiError::NoSuchOrder)
}

async fn get_order(
    State(app): State<Arc<App>>,
    a: Agent,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let mut orders = lock(&app.orders);
    let o = own_order(&mut orders, &id, &a)?;
    Ok(Json(order_json(&app, &id, o)))
}

async fn cancel_order(
    State(app): State<Arc<App>>,
    client: Client,
    a: Agent,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let (body, event) = {
        let mut orders = lock(&app.orders);
        let o = own_order(&mut orders, &id, &a)?;
        let was_pending = matches!(app.opts.engine.state(o.engine_id), Ok(OrderState::Pending));
        let _ = app.opts.engine.cancel(o.engine_id);
        log::info!("order {} of agent {}: cancel asked", short(&id), a.name);
        let order_ref = app
            .opts
            .engine
            .poll(o.engine_id)
            .ok()
            .and_then(|v| v.order_ref);
        let event = was_pending.then(|| {
            AgentEvent::new(&a.name, Action::IdentifyCancelled, &client.addr())
                .about_masked(&o.masked)
                .on(order_ref)
        });
        (order_json(&app, &id, o), event)
    };
    // The cancel has happened: a failure to record it must not undo it, only be said.
    if let Some(event) = event {
        if let Err(e) = app.events.record(&event).await {
            log::error!(
                "recording the cancel of order {} of agent {}: {e}",
                short(&id),
                a.name
            );
        }
    }
    Ok(Json(body))
}
