//! The supervisor view over real HTTP on 127.0.0.1, with records inserted by SQL into a real
//! SQLite file and a real PostgreSQL database (`BANKID_TEST_POSTGRES`), as the engine's writer
//! stores them: filters, paging, lookup by personal number, detail, the evidence download and
//! its event, the CSV export, the figures and charts; and who may see any of it.

mod common;

use bankid_sim::testdb::TestDb;
use common::{
    insert_records, now_ms, shared_records, start, start_recorded, Client, Harness, Rec, Records,
};
use serde_json::{json, Value};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

const ANNA: &str = "198503121116";
const CECILIA: &str = "197709083336";
const DAVID: &str = "196801642395";
const OLD: &str = "199908072391";

fn evidence_of(pnr: &str, name: &str) -> String {
    // As BankID sends it: key order, spacing and all are kept, not re-encoded.
    format!(
        "{{\"user\":{{\"personalNumber\":\"{pnr}\",\"name\":\"{name}\",\"givenName\":\"A\",\"surname\":\"L\"}},\
         \"device\":{{\"ipAddress\":\"192.0.2.1\",\"uhi\":\"OZvYM9VvyiAmG7NA5jU5zC56NHkgXYw\"}},\
         \"bankIdIssueDate\":\"2020-02-01\",\"signature\":\"PHNpZ25hdHVyZT4=\",\"ocspResponse\":\"TUlJSA==\"}}"
    )
}

/// Seven records: five in the last day, one three days back, one a month back.
fn records(now: i64) -> Vec<Rec> {
    let mut r1 = Rec::new(1, now - 10 * MIN, "agent", "complete", ANNA);
    r1.agent = Some("anna");
    r1.evidence = Some(evidence_of(ANNA, "Anna Lindqvist"));
    let mut r2 = Rec::new(2, now - 20 * MIN, "fastagi", "failed", CECILIA);
    r2.hint_code = Some("userDeclinedCall");
    r2.call_id = Some("1733000000.42");
    // A caller ID a spreadsheet would run as a formula.
    r2.caller_id = Some("=cmd|' /C calc'!A0");
    let mut r3 = Rec::new(3, now - 2 * HOUR, "fastagi", "complete", ANNA);
    r3.call_id = Some("1733000000.43");
    r3.caller_id = Some("+46701234567");
    r3.evidence = Some(evidence_of(ANNA, "Anna Lindqvist"));
    let mut r4 = Rec::new(4, now - 3 * HOUR, "agent", "failed", DAVID);
    r4.agent = Some("bertil");
    r4.hint_code = Some("userCancel");
    let mut r5 = Rec::new(5, now - 5 * HOUR, "identify", "error", CECILIA);
    r5.error_code = Some("internalError");
    let mut r6 = Rec::new(6, now - 3 * DAY, "agent", "complete", ANNA);
    r6.agent = Some("anna");
    let r7 = Rec::new(7, now - 30 * DAY, "c-abi", "complete", OLD);
    vec![r1, r2, r3, r4, r5, r6, r7]
}

fn ids(body: &Value) -> Vec<String> {
    body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("records in {body}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn id(n: u32) -> String {
    format!("{n:032x}")
}

fn want(ns: &[u32]) -> Vec<String> {
    ns.iter().map(|n| id(*n)).collect()
}

/// A POST as the page sends it, answered as text (downloads are not JSON to every test).
async fn post_raw(
    c: &Client,
    path: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = c
        .http
        .post(format!("{}{path}", c.base))
        .header("Origin", c.origin())
        .json(&body);
    if let Some(t) = &c.csrf {
        req = req.header("X-CSRF-Token", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

async fn exercise(h: &Harness) {
    let now = now_ms();
    insert_records(h, &records(now)).await;
    let sara = h.agent("sara").await;
    let list = |body: Value| {
        let sara = &sara;
        async move {
            let r = sara.post("/api/supervisor/records", body).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };

    // Newest first, the last week by default.
    assert_eq!(ids(&list(json!({})).await), want(&[1, 2, 3, 4, 5, 6]));
    let all = list(json!({"fromMs": now - 40 * DAY})).await;
    assert_eq!(ids(&all), want(&[1, 2, 3, 4, 5, 6, 7]));
    let first = &all["records"][0];
    assert_eq!(first["channel"], "agent");
    assert_eq!(first["agent"], "anna");
    assert_eq!(first["outcome"], "complete");
    assert_eq!(first["personalNumberMasked"], "850312-XXXX");
    assert_eq!(first["finishedAtMs"], now - 10 * MIN);
    assert!(
        !all.to_string().contains("8503121116"),
        "never the whole number"
    );
    assert!(!all.to_string().contains("pseudonym"), "nor the pseudonym");

    // Time range.
    let window = json!({"fromMs": now - 4 * HOUR, "toMs": now - 15 * MIN});
    assert_eq!(ids(&list(window).await), want(&[2, 3, 4]));

    // Outcome: declined calls apart from other failures.
    for (outcome, expect) in [
        ("declined", vec![2]),
        ("failed", vec![4]),
        ("complete", vec![1, 3, 6]),
        ("error", vec![5]),
    ] {
        let got = list(json!({"outcome": outcome})).await;
        assert_eq!(ids(&got), want(&expect), "{outcome}");
    }
    // Channel and agent, alone and together.
    assert_eq!(
        ids(&list(json!({"channel": "fastagi"})).await),
        want(&[2, 3])
    );
    assert_eq!(ids(&list(json!({"agent": "Anna"})).await), want(&[1, 6]));
    let both = json!({"channel": "agent", "outcome": "failed", "agent": "bertil"});
    assert_eq!(ids(&list(both).await), want(&[4]));
    assert_eq!(
        ids(&list(json!({"channel": "flow-run"})).await),
        Vec::<String>::new()
    );

    // Lookup by a typed personal number, however it is typed.
    for typed in ["198503121116", "850312-1116", "19850312-1116"] {
        let got = list(json!({"personalNumber": typed})).await;
        assert_eq!(ids(&got), want(&[1, 3, 6]), "{typed}");
    }
    let cecilia = list(json!({"personalNumber": CECILIA, "outcome": "declined"})).await;
    assert_eq!(ids(&cecilia), want(&[2]));
    let bad = sara
        .post(
            "/api/supervisor/records",
            json!({"personalNumber": "198503121117"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"], "invalid_personal_number");
    assert_eq!(bad.body["reason"], "bad_check_digit");
    assert!(!bad.body.to_string().contains("8503121117"), "{}", bad.body);

    // Paging: two at a time, no record twice, none left out.
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..5 {
        let mut body = json!({"limit": 2});
        if let Some(b) = &before {
            body["before"] = json!(b);
        }
        let page = list(body).await;
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(n) => before = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, want(&[1, 2, 3, 4, 5, 6]));

    // Refusals: every one bounded and said.
    for (body, why) in [
        (json!({"outcome": "maybe"}), "outcome"),
        (json!({"channel": "fax"}), "channel"),
        (json!({"agent": "a b"}), "agent"),
        (json!({"fromMs": now, "toMs": now - 1}), "range"),
        (json!({"fromMs": now - 400 * DAY, "toMs": now}), "range"),
        (json!({"before": "nonsense"}), "before"),
        (json!({"sortBy": "name"}), "unknown field"),
    ] {
        let r = sara.post("/api/supervisor/records", body).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("bad_request")),
            "{why}: {}",
            r.body
        );
    }

    // One record, then its evidence: exactly what BankID sent, as a download, recorded.
    let detail = sara
        .get(&format!("/api/supervisor/records/{}", id(1)))
        .await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert_eq!(detail.body["hasEvidence"], true);
    assert_eq!(detail.body["record"]["orderRef"], format!("ref-{}", id(1)));
    assert_eq!(detail.body["events"], json!([]));
    let declined = sara
        .get(&format!("/api/supervisor/records/{}", id(2)))
        .await;
    assert_eq!(declined.body["hasEvidence"], false);
    assert_eq!(declined.body["record"]["outcome"], "declined");
    assert_eq!(declined.body["record"]["callId"], "1733000000.42");

    let evidence_url = format!("/api/supervisor/records/{}/evidence", id(1));
    let mut no_token = h.agent("sara").await;
    no_token.csrf = None;
    let (status, _, _) = post_raw(&no_token, &evidence_url, json!({})).await;
    assert_eq!(status, 403, "the download needs the CSRF token");
    assert!(h
        .events()
        .await
        .iter()
        .all(|e| e.1 != "evidence-downloaded"));

    let (status, headers, text) = post_raw(&sara, &evidence_url, json!({})).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, evidence_of(ANNA, "Anna Lindqvist"));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"bankid-evidence-{}.json\"", id(1)).as_str()
    );
    let downloads: Vec<_> = h
        .events()
        .await
        .into_iter()
        .filter(|e| e.1 == "evidence-downloaded")
        .collect();
    assert_eq!(
        downloads,
        vec![(
            "sara".to_string(),
            "evidence-downloaded".to_string(),
            Some("850312-XXXX".to_string()),
            Some(id(1))
        )]
    );
    let detail = sara
        .get(&format!("/api/supervisor/records/{}", id(1)))
        .await;
    assert_eq!(detail.body["events"][0]["action"], "evidence-downloaded");
    assert_eq!(detail.body["events"][0]["agent"], "sara");

    let (status, _, text) = post_raw(
        &sara,
        &format!("/api/supervisor/records/{}/evidence", id(2)),
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
    assert!(text.contains("no_evidence"), "{text}");
    for missing in [id(99), "not-hex".to_string()] {
        let r = sara
            .get(&format!("/api/supervisor/records/{missing}"))
            .await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (404, Some("no_such_record"))
        );
    }

    // CSV of the filtered records: quoted, formulas neutralised, recorded.
    let (status, headers, csv) = post_raw(
        &sara,
        "/api/supervisor/export",
        json!({"channel": "fastagi"}),
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"bankid-records-"));
    assert_eq!(headers["x-records-count"], "2");
    assert_eq!(headers["x-records-truncated"], "false");
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,started_at,finished_at,duration_ms,channel,"));
    assert!(lines[1].starts_with(&format!("{},", id(2))), "{}", lines[1]);
    assert!(lines[1].contains(",'=cmd|' /C calc'!A0,"), "{}", lines[1]);
    assert!(lines[2].contains(",'+46701234567,"), "{}", lines[2]);
    assert!(lines[1].ends_with(",770908-XXXX"), "{}", lines[1]);
    assert!(!csv.contains(CECILIA) && !csv.contains(ANNA));
    let (status, _, csv) = post_raw(
        &sara,
        "/api/supervisor/export",
        json!({"personalNumber": "850312-1116"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(csv.matches("850312-XXXX").count(), 3);
    let exports: Vec<_> = h
        .events()
        .await
        .into_iter()
        .filter(|e| e.1 == "records-exported")
        .map(|e| (e.0, e.2))
        .collect();
    assert_eq!(
        exports,
        vec![
            ("sara".to_string(), None),
            ("sara".to_string(), Some("850312-XXXX".to_string()))
        ]
    );

    // Figures for the last day and week.
    let day = sara.get("/api/supervisor/stats?range=24h&tz=60").await;
    assert_eq!(day.status, 200, "{}", day.body);
    let d = &day.body;
    assert_eq!(
        (d["total"].as_u64(), d["complete"].as_u64()),
        (Some(5), Some(2))
    );
    assert_eq!(
        (
            d["declined"].as_u64(),
            d["failed"].as_u64(),
            d["error"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(d["successRate"].as_f64(), Some(0.4));
    assert_eq!(
        (d["medianMs"].as_i64(), d["p90Ms"].as_i64()),
        (Some(3_100), Some(3_300))
    );
    assert_eq!(
        d["reasons"],
        json!([
            {"reason": "internalError", "count": 1},
            {"reason": "userCancel", "count": 1},
            {"reason": "userDeclinedCall", "count": 1}
        ])
    );
    let listed: Vec<&str> = d["declinedCalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![id(2).as_str()]);
    let week = sara.get("/api/supervisor/stats?range=7d").await;
    assert_eq!(week.body["total"].as_u64(), Some(6));
    assert_eq!(week.body["complete"].as_u64(), Some(3));

    for (name, mark) in [
        ("hourly", "data-outcome=\"declined\""),
        ("durations", "data-series=\"median\""),
        ("reasons", "data-reason=\"userDeclinedCall\""),
    ] {
        let r = sara
            .send(sara.http.get(format!(
                "{}/api/supervisor/charts/{name}.svg?range=24h&tz=60&lang=en",
                h.base
            )))
            .await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.headers["content-type"], "image/svg+xml; charset=utf-8");
        let svg = r.body.as_str().unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains(mark),
            "{name}: {svg}"
        );
    }
    for bad in ["range=1y", "tz=9999", "lang=de"] {
        let r = sara
            .get(&format!("/api/supervisor/charts/hourly.svg?{bad}"))
            .await;
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(sara.get("/api/supervisor/charts/pie.svg").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_filters_looks_up_downloads_and_exports_records_in_sqlite() {
    let h = start_recorded(0.05, Records::Sqlite, |_| {}).await;
    exercise(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_filters_looks_up_downloads_and_exports_records_in_postgres() {
    let db = TestDb::new();
    let (records, _key) = shared_records(&db);
    let h = start_recorded(0.05, records, |_| {}).await;
    exercise(&h).await;
    drop(h);
}

/// Every supervisor URL, as (method, path).
fn supervisor_urls() -> Vec<(&'static str, String)> {
    let r = id(1);
    vec![
        ("GET", "/supervisor".into()),
        ("GET", "/supervisor.js".into()),
        ("POST", "/api/supervisor/records".into()),
        ("GET", format!("/api/supervisor/records/{r}")),
        ("POST", format!("/api/supervisor/records/{r}/evidence")),
        ("POST", "/api/supervisor/export".into()),
        ("GET", "/api/supervisor/stats?range=24h".into()),
        ("GET", "/api/supervisor/charts/hourly.svg".into()),
        ("GET", "/api/supervisor/charts/durations.svg".into()),
        ("GET", "/api/supervisor/charts/reasons.svg".into()),
    ]
}

async fn ask(c: &Client, method: &str, path: &str) -> (u16, String) {
    let url = format!("{}{path}", c.base);
    let req = match method {
        "GET" => c.http.get(url),
        _ => {
            let mut r = c
                .http
                .post(url)
                .header("Origin", c.origin())
                .json(&json!({}));
            if let Some(t) = &c.csrf {
                r = r.header("X-CSRF-Token", t);
            }
            r
        }
    };
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_get_403_and_visitors_401_on_every_supervisor_url() {
    let h = start_recorded(0.05, Records::Sqlite, |_| {}).await;
    insert_records(&h, &records(now_ms())).await;
    let anna = h.agent("anna").await;
    let sara = h.agent("sara").await;
    let nobody = h.client();
    assert_eq!(anna.get("/api/session").await.body["role"], "agent");
    assert_eq!(sara.get("/api/session").await.body["role"], "supervisor");
    for (method, path) in supervisor_urls() {
        let (status, body) = ask(&anna, method, &path).await;
        assert_eq!(status, 403, "agent: {method} {path}: {body}");
        assert!(!body.contains("850312"), "nothing of a record: {body}");
        let (status, _) = ask(&nobody, method, &path).await;
        assert_eq!(status, 401, "logged out: {method} {path}");
        let (status, body) = ask(&sara, method, &path).await;
        assert_eq!(status, 200, "supervisor: {method} {path}: {body}");
    }
    // The agent's API answers say why, in the API's words.
    let r = anna.post("/api/supervisor/records", json!({})).await;
    assert_eq!(r.body["error"], "forbidden");
    // The agent refused above left no event of a download or an export.
    let actions: Vec<String> = h
        .events()
        .await
        .into_iter()
        .filter(|e| e.0 == "anna")
        .map(|e| e.1)
        .collect();
    assert_eq!(actions, vec!["login"]);
    // The page the agents load holds no link to the view (the script adds it for supervisors).
    let page = anna.get("/").await.body;
    assert!(!page.as_str().unwrap().contains("supervisor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_time_ranges_are_refused_not_a_panic() {
    let h = start_recorded(0.05, Records::Sqlite, |_| {}).await;
    let sara = h.agent("sara").await;
    for body in [
        json!({"toMs": i64::MIN}),
        json!({"toMs": i64::MIN, "fromMs": 0}),
        json!({"toMs": i64::MIN + 1}),
        json!({"fromMs": i64::MIN, "toMs": i64::MAX}),
        json!({"fromMs": 0, "toMs": i64::MAX}),
        json!({"toMs": -1}),
    ] {
        for path in ["/api/supervisor/records", "/api/supervisor/export"] {
            let r = sara.post(path, body.clone()).await;
            assert_eq!(
                (r.status, r.body["error"].as_str()),
                (400, Some("bad_request")),
                "{path} {body}: {}",
                r.body
            );
        }
    }
    // The server is still there.
    assert_eq!(
        sara.post("/api/supervisor/records", json!({})).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_records_off_the_supervisor_view_says_so() {
    let h = start(0.05, |_| {}).await;
    let sara = h.agent("sara").await;
    assert_eq!(sara.get("/api/session").await.body["records"], false);
    let r = sara.post("/api/supervisor/records", json!({})).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (503, Some("records_off"))
    );
    let r = sara.get("/api/supervisor/stats").await;
    assert_eq!(r.status, 503);
    let (status, page) = ask(&sara, "GET", "/supervisor").await;
    assert_eq!(status, 200);
    assert!(page.contains("records-off"));
    assert_eq!(
        ask(&h.agent("anna").await, "GET", "/supervisor").await.0,
        403
    );
}
