//! The supervisor view: who was identified, when, through which channel and by which agent or
//! IVR, on what evidence — and how identification goes.
//!
//! Every route takes a [`Supervisor`], so an agent gets 403 and a visitor 401 on each of them
//! (the page and its script included), and a POST needs the session's CSRF token and this
//! origin like every other. A personal number to look up travels in a POST body only and is
//! turned into its keyed pseudonym here (`bankid::audit::PseudonymKey`): it never reaches a
//! URL, a log line or the database. Downloading a record's evidence and exporting records are
//! recorded as agent events before the data leaves; if the event cannot be written, nothing
//! leaves.
//!
//! - `GET  /supervisor`, `/supervisor.js` — the page.
//! - `POST /api/supervisor/records` — a page of records, newest first (filters in the body).
//! - `GET  /api/supervisor/records/{id}` — one record, whether it has evidence, its events.
//! - `POST /api/supervisor/records/{id}/evidence` — BankID's completionData, as a download.
//! - `POST /api/supervisor/export` — the filtered records as CSV.
//! - `GET  /api/supervisor/stats?range=24h|7d&tz=MIN` — the figures and the declined calls.
//! - `GET  /api/supervisor/charts/{hourly,durations,reasons}.svg?range=…&tz=…&lang=sv|en`.

mod charts;
mod clock;
mod csv;
mod query;
mod stats;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bankid::audit::{Channel, PseudonymKey};
use bankid::personnummer::Personnummer;
use serde::Deserialize;
use serde_json::json;
use sqlx::Row;

use crate::body::ApiJson;
use crate::error::{ApiError, ApiResult};
use crate::proxy::Client;
use crate::session::Supervisor;
use crate::store::events::{Action, AgentEvent};
use crate::store::AgentDb;
use crate::App;
use query::{Cursor, Filter, Outcome, Record, MAX_EXPORT, MAX_PAGE, MAX_RANGE};
use stats::Range;

const PAGE_HTML: &str = include_str!("../../assets/supervisor.html");
const PAGE_JS: &str = include_str!("../../assets/supervisor.js");

/// The records shown when the page asks for no time range: the last week.
const DEFAULT_RANGE_MS: i64 = 7 * 24 * 3_600_000;
/// Records per page unless the page asks for another number (at most [`MAX_PAGE`]).
const DEFAULT_PAGE: u32 = 50;
/// The most declined calls listed beside the charts.
const DECLINED_LISTED: u32 = 50;

/// The supervisor's routes.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/supervisor", get(page))
        .route("/supervisor.js", get(script))
        .route("/api/supervisor/records", post(records))
        .route("/api/supervisor/records/{id}", get(record))
        .route("/api/supervisor/records/{id}/evidence", post(evidence))
        .route("/api/supervisor/export", post(export))
        .route("/api/supervisor/stats", get(figures))
        .route("/api/supervisor/charts/{chart}", get(chart))
}

/// The page, or a short page saying why not (a person opens this URL, not a script).
async fn page(who: Result<Supervisor, ApiError>) -> Response {
    let (status, sv, en) = match who {
        Ok(_) => {
            return (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                PAGE_HTML,
            )
                .into_response()
        }
        Err(ApiError::NotLoggedIn) => {
            (StatusCode::UNAUTHORIZED, "Logga in först.", "Log in first.")
        }
        Err(ApiError::Forbidden) => (
            StatusCode::FORBIDDEN,
            "Arbetsledarvyn är bara för arbetsledare.",
            "The supervisor view is for supervisors only.",
        ),
        Err(e) => return e.into_response(),
    };
    let body = format!(
        "<!doctype html><html lang=\"sv\"><head><meta charset=\"utf-8\"><title>BankID</title>\
         <link rel=\"stylesheet\" href=\"app.css\"></head><body><main><p id=\"refused\">{sv} \
         <span lang=\"en\">({en})</span></p><p><a href=\"./\">BankID-identifiering</a></p>\
         </main></body></html>"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn script(_: Supervisor) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        PAGE_JS,
    )
        .into_response()
}

/// The database, or "records are off".
fn db(app: &App) -> ApiResult<&AgentDb> {
    app.database().ok_or(ApiError::RecordsOff)
}

/// The pseudonym key of the records: the one the engine's audit writer uses (so a lookup and
/// the records it looks for cannot disagree), else the engine's `audit_key_file` — made when
/// missing for an SQLite file of our own, as the writer does; a shared database needs the key
/// every host uses, so there it must exist.
fn pseudonym_key(app: &App, db: &AgentDb) -> ApiResult<PseudonymKey> {
    if let Some(audit) = app.engine().current().audit() {
        return Ok(audit.key().clone());
    }
    let file = app.engine().config().audit.key_file;
    let key = if db.database().is_shared() {
        PseudonymKey::load(&file)
    } else {
        PseudonymKey::load_or_create(&file)
    };
    key.map_err(|e| {
        log::error!("looking up a personal number: {e}");
        ApiError::Internal("the pseudonym key cannot be read (see the log)")
    })
}

/// What the page sends to choose records. Empty strings are "any".
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FilterRequest {
    #[serde(default)]
    from_ms: Option<i64>,
    #[serde(default)]
    to_ms: Option<i64>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    /// Looked up through its pseudonym; never stored or logged whole.
    #[serde(default)]
    personal_number: Option<String>,
    /// The `next` of the previous page.
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The filter a request asks for, and the person looked up (if any).
fn filter(
    app: &App,
    db: &AgentDb,
    req: &FilterRequest,
) -> ApiResult<(Filter, Option<Personnummer>)> {
    let to_ms = req.to_ms.unwrap_or_else(|| crate::store::now_ms() + 1);
    // Any i64 may be sent: nothing here may overflow (a panic in a debug build), and a range
    // before 1970 or longer than MAX_RANGE is refused like any other bad range.
    let from_ms = req
        .from_ms
        .unwrap_or(to_ms.saturating_sub(DEFAULT_RANGE_MS));
    let max = crate::store::ms(MAX_RANGE);
    if from_ms < 0 || to_ms <= 0 || from_ms >= to_ms || to_ms.saturating_sub(from_ms) > max {
        return Err(ApiError::BadRequest(
            "the time range is fromMs before toMs, at most 366 days",
        ));
    }
    let outcome = given(&req.outcome)
        .map(|o| {
            Outcome::parse(o).ok_or(ApiError::BadRequest(
                "outcome is complete, failed, declined or error",
            ))
        })
        .transpose()?;
    let channel = given(&req.channel)
        .map(|c| {
            Channel::parse(c).ok_or(ApiError::BadRequest(
                "channel is c-abi, identify, fastagi, flow-run or agent",
            ))
        })
        .transpose()?;
    let agent = given(&req.agent)
        .map(|a| {
            let a = a.to_ascii_lowercase();
            if crate::accounts::valid_name(&a) {
                Ok(a)
            } else {
                Err(ApiError::BadRequest(
                    "an agent name is 1–64 letters, digits, '.', '_', '-' or '@'",
                ))
            }
        })
        .transpose()?;
    let person = given(&req.personal_number)
        .map(Personnummer::parse)
        .transpose()?;
    let pseudonym = match &person {
        Some(p) => Some(pseudonym_key(app, db)?.pseudonym(p)),
        None => None,
    };
    Ok((
        Filter {
            from_ms,
            to_ms,
            outcome,
            channel,
            agent,
            pseudonym,
        },
        person,
    ))
}

async fn fetch_records(db: &AgentDb, sql: &query::Sql) -> ApiResult<Vec<Record>> {
    let rows = sql
        .query()
        .fetch_all(db.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
    rows.iter()
        .map(Record::from_row)
        .collect::<Result<_, _>>()
        .map_err(|e| crate::store::StoreError::from(e).into())
}

async fn records(
    State(app): State<Arc<App>>,
    Supervisor(who): Supervisor,
    ApiJson(req): ApiJson<FilterRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let db = db(&app)?;
    let (filter, person) = filter(&app, db, &req)?;
    let before = given(&req.before)
        .map(|b| Cursor::parse(b).ok_or(ApiError::BadRequest("before is the next of a page")))
        .transpose()?;
    let limit = req.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    if let Some(p) = &person {
        log::info!(
            "supervisor {} looked up the records of {}",
            who.name,
            p.masked()
        );
    }
    let mut found = fetch_records(db, &filter.page(before.as_ref(), limit)).await?;
    let next = (found.len() > limit as usize).then(|| {
        found.truncate(limit as usize);
        found.last().map(|r| r.cursor().to_string())
    });
    Ok(Json(json!({
        "records": found.iter().map(Record::json).collect::<Vec<_>>(),
        "next": next.flatten(),
    })))
}

/// A record id as the records make them (hex); anything else is no record.
fn record_id(id: &str) -> ApiResult<&str> {
    let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(id).ok_or(ApiError::NoSuchRecord)
}

async fn find(db: &AgentDb, id: &str) -> ApiResult<Record> {
    fetch_records(db, &query::record(record_id(id)?))
        .await?
        .pop()
        .ok_or(ApiError::NoSuchRecord)
}

async fn record(
    State(app): State<Arc<App>>,
    _: Supervisor,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let db = db(&app)?;
    let r = find(db, &id).await?;
    let store = |e: sqlx::Error| ApiError::from(crate::store::StoreError::from(e));
    let evidence: i64 = query::evidence_count(&r.id)
        .query()
        .fetch_one(db.pool())
        .await
        .and_then(|row| row.try_get(0))
        .map_err(store)?;
    let rows = query::events_about(&r.id, r.order_ref.as_deref())
        .query()
        .fetch_all(db.pool())
        .await
        .map_err(store)?;
    let events = rows
        .iter()
        .map(|row| {
            Ok(json!({
                "atMs": row.try_get::<i64, _>("at")?,
                "agent": row.try_get::<String, _>("agent")?,
                "action": row.try_get::<String, _>("action")?,
                "remote": row.try_get::<Option<String>, _>("remote")?,
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(store)?;
    Ok(Json(json!({
        "record": r.json(),
        "hasEvidence": evidence > 0,
        "events": events,
    })))
}

fn attachment(content_type: &'static str, filename: &str, body: String) -> ApiResult<Response> {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .map_err(|_| ApiError::Internal("the download could not be made"))?;
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_DISPOSITION, disposition);
    Ok(resp)
}

async fn evidence(
    State(app): State<Arc<App>>,
    client: Client,
    Supervisor(who): Supervisor,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let db = db(&app)?;
    let r = find(db, &id).await?;
    let row = query::evidence(&r.id)
        .query()
        .fetch_optional(db.pool())
        .await
        .map_err(crate::store::StoreError::from)?
        .ok_or(ApiError::NoEvidence)?;
    let completion: String = row
        .try_get("completion_data")
        .map_err(crate::store::StoreError::from)?;
    let event = AgentEvent::new(&who.name, Action::EvidenceDownloaded, &client.addr())
        .about_masked(&r.pnr_masked)
        .on(Some(r.id.clone()));
    app.events.record(&event).await?;
    log::info!(
        "supervisor {} downloaded the evidence of record {} ({})",
        who.name,
        r.id,
        r.pnr_masked
    );
    attachment(
        "application/json",
        &format!("bankid-evidence-{}.json", r.id),
        completion,
    )
}

async fn export(
    State(app): State<Arc<App>>,
    client: Client,
    Supervisor(who): Supervisor,
    ApiJson(req): ApiJson<FilterRequest>,
) -> ApiResult<Response> {
    let db = db(&app)?;
    let (filter, person) = filter(&app, db, &req)?;
    let mut found = fetch_records(db, &filter.export(MAX_EXPORT)).await?;
    let truncated = found.len() > MAX_EXPORT as usize;
    found.truncate(MAX_EXPORT as usize);
    let mut event = AgentEvent::new(&who.name, Action::RecordsExported, &client.addr());
    if let Some(p) = &person {
        event = event.about(p);
    }
    app.events.record(&event).await?;
    log::info!(
        "supervisor {} exported {} record(s){}",
        who.name,
        found.len(),
        person
            .as_ref()
            .map(|p| format!(" of {}", p.masked()))
            .unwrap_or_default()
    );
    let mut body = csv::header();
    for r in &found {
        body.push_str(&csv::row(r));
    }
    let day = &clock::iso_utc(filter.from_ms)[..10];
    let mut resp = attachment(
        "text/csv; charset=utf-8",
        &format!("bankid-records-{day}.csv"),
        body,
    )?;
    let h = resp.headers_mut();
    h.insert("x-records-count", HeaderValue::from(found.len()));
    h.insert(
        "x-records-truncated",
        HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
    Ok(resp)
}

/// `?range=24h|7d&tz=MINUTES_EAST_OF_UTC&lang=sv|en` of the figures and charts.
#[derive(Debug, Deserialize)]
struct ChartQuery {
    range: Option<String>,
    tz: Option<String>,
    lang: Option<String>,
}

impl ChartQuery {
    fn range(&self) -> ApiResult<Range> {
        Range::parse(self.range.as_deref().unwrap_or("24h"))
            .ok_or(ApiError::BadRequest("range is 24h or 7d"))
    }

    fn tz(&self) -> ApiResult<i32> {
        match self.tz.as_deref() {
            None => Ok(0),
            Some(t) => t
                .parse::<i32>()
                .ok()
                .filter(|m| (-840..=840).contains(m))
                .ok_or(ApiError::BadRequest(
                    "tz is the offset from UTC in minutes, -840 to 840",
                )),
        }
    }

    fn lang(&self) -> ApiResult<charts::Lang> {
        charts::Lang::parse(self.lang.as_deref().unwrap_or("sv"))
            .ok_or(ApiError::BadRequest("lang is sv or en"))
    }
}

async fn compute(db: &AgentDb, range: Range, tz: i32) -> ApiResult<stats::Stats> {
    let (start, end) = stats::span(range, crate::store::now_ms(), tz);
    let rows = query::chart_rows(start, end)
        .query()
        .fetch_all(db.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
    let truncated = rows.len() > query::MAX_CHART_ROWS as usize;
    let counted = rows
        .iter()
        .take(query::MAX_CHART_ROWS as usize)
        .filter_map(|row| query::ChartRow::from_row(row).transpose())
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::store::StoreError::from)?;
    Ok(stats::compute(&counted, range, start, tz, truncated))
}

async fn figures(
    State(app): State<Arc<App>>,
    _: Supervisor,
    Query(q): Query<ChartQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let db = db(&app)?;
    let (range, tz) = (q.range()?, q.tz()?);
    let s = compute(db, range, tz).await?;
    let declined = Filter {
        from_ms: s.start_ms,
        to_ms: s.start_ms + range.hours() as i64 * 3_600_000,
        outcome: Some(Outcome::Declined),
        channel: None,
        agent: None,
        pseudonym: None,
    };
    let mut listed = fetch_records(db, &declined.page(None, DECLINED_LISTED)).await?;
    listed.truncate(DECLINED_LISTED as usize);
    let mut body = s.json();
    body["declinedCalls"] = json!(listed.iter().map(Record::json).collect::<Vec<_>>());
    Ok(Json(body))
}

async fn chart(
    State(app): State<Arc<App>>,
    _: Supervisor,
    Path(name): Path<String>,
    Query(q): Query<ChartQuery>,
) -> ApiResult<Response> {
    let draw = match name.as_str() {
        "hourly.svg" => charts::hourly,
        "durations.svg" => charts::durations,
        "reasons.svg" => charts::reasons,
        _ => return Err(ApiError::NotFound),
    };
    let db = db(&app)?;
    let (range, tz, lang) = (q.range()?, q.tz()?, q.lang()?);
    let s = compute(db, range, tz).await?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        draw(&s, lang),
    )
        .into_response())
}
