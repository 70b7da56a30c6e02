//! bankid-sim over real mutual TLS: every endpoint, validation error, order rule and fault,
//! and refusal of clients without a trusted certificate.

use std::time::Duration;

use bankid_sim::{Fault, FaultKind, Scenario, SimConfig, Simulator, Step};
use serde_json::{json, Value};

const ANNA: &str = "198503121116";

fn client_for(sim: &Simulator, identity: Option<(String, String)>) -> reqwest::Client {
    client_with_timeout(sim, identity, Duration::from_secs(5))
}

fn client_with_timeout(
    sim: &Simulator,
    identity: Option<(String, String)>,
    timeout: Duration,
) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(sim.certs().ca_pem.as_bytes()).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .use_rustls_tls()
        .timeout(timeout);
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn client(sim: &Simulator) -> reqwest::Client {
    let c = sim.certs();
    client_for(sim, Some((c.client_pem.clone(), c.client_key_pem.clone())))
}

fn start(speed: f64) -> Simulator {
    Simulator::start(SimConfig {
        speed,
        ..Default::default()
    })
    .unwrap()
}

async fn post(c: &reqwest::Client, sim: &Simulator, ep: &str, body: Value) -> (u16, Value) {
    let r = c
        .post(format!("{}{ep}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn details(v: &Value) -> &str {
    v["details"].as_str().unwrap_or("")
}

#[tokio::test]
async fn phone_auth_runs_through_the_phone_hints_to_complete() {
    let sim = start(0.01);
    let c = client(&sim);
    let (s, v) = post(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user", "userVisibleData": "SGVq"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v.as_object().unwrap().len(),
        1,
        "phone orders return only orderRef: {v}"
    );
    let order_ref = v["orderRef"].as_str().unwrap().to_string();
    let mut hints = vec![];
    let done = loop {
        let (s, v) = post(&c, &sim, "collect", json!({"orderRef": order_ref})).await;
        assert_eq!(s, 200, "{v}");
        if v["status"] == "pending" {
            let h = v["hintCode"].as_str().unwrap().to_string();
            if hints.last() != Some(&h) {
                hints.push(h);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        } else {
            break v;
        }
    };
    assert_eq!(
        hints,
        ["outstandingTransaction", "userCallConfirm", "userSign"]
    );
    assert_eq!(done["status"], "complete");
    let cd = &done["completionData"];
    assert_eq!(cd["user"]["personalNumber"], ANNA);
    assert_eq!(cd["user"]["name"], "Anna Lindqvist");
    assert!(cd["device"]["ipAddress"].is_string() && cd["bankIdIssueDate"].is_string());
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(cd["signature"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(sig)
        .unwrap()
        .contains("<usrVisibleData>Hej</usrVisibleData>"));
    assert!(!cd["ocspResponse"].as_str().unwrap().is_empty());
    // The final status is collectable once.
    let (s, v) = post(&c, &sim, "collect", json!({"orderRef": order_ref})).await;
    assert_eq!(
        (s, v["errorCode"].as_str()),
        (400, Some("invalidParameters"))
    );
}

#[tokio::test]
async fn auth_and_sign_return_qr_material_and_step_up() {
    let sim = start(0.01);
    let c = client(&sim);
    let (s, v) = post(&c, &sim, "auth", json!({"endUserIp": "192.0.2.1"})).await;
    assert_eq!(s, 200, "{v}");
    for k in [
        "orderRef",
        "autoStartToken",
        "qrStartToken",
        "qrStartSecret",
    ] {
        assert!(v[k].is_string(), "{k} in {v}");
    }
    let (s, v) = post(
        &c,
        &sim,
        "sign",
        json!({"endUserIp": "::1", "userVisibleData": "SGVq", "requirement": {"mrtd": true}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let r = v["orderRef"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (_, v) = post(&c, &sim, "collect", json!({"orderRef": r})).await;
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["completionData"]["stepUp"]["mrtd"], true);
    assert_eq!(v["completionData"]["device"]["ipAddress"], "::1");
    let (s, v) = post(
        &c,
        &sim,
        "phone/sign",
        json!({"personalNumber": ANNA, "callInitiator": "RP", "userVisibleData": "SGVq"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn every_validation_error_names_the_problem() {
    let sim = start(0.01);
    let c = client(&sim);
    let long = "A".repeat(1504);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "phone/auth",
            json!({"callInitiator": "user"}),
            "Missing personalNumber",
        ),
        (
            "phone/auth",
            json!({"personalNumber": ANNA}),
            "Missing callInitiator",
        ),
        (
            "phone/auth",
            json!({"personalNumber": ANNA, "callInitiator": "agent"}),
            "callInitiator must be",
        ),
        (
            "phone/auth",
            json!({"personalNumber": "8503121116", "callInitiator": "user"}),
            "12 digits",
        ),
        (
            "phone/auth",
            json!({"personalNumber": "198513121116", "callInitiator": "user"}),
            "valid date",
        ),
        (
            "phone/auth",
            json!({"personalNumber": "198503121117", "callInitiator": "user"}),
            "check digit",
        ),
        (
            "phone/auth",
            json!({"personalNumber": 198503121116u64, "callInitiator": "user"}),
            "must be a string",
        ),
        (
            "phone/auth",
            json!({"personalNumber": ANNA, "callInitiator": "user", "userVisibleData": "not base64!"}),
            "not valid base64",
        ),
        (
            "phone/auth",
            json!({"personalNumber": ANNA, "callInitiator": "user", "userVisibleData": long}),
            "1 to 1500",
        ),
        (
            "phone/auth",
            json!({"personalNumber": ANNA, "callInitiator": "user", "userNonVisibleData": ""}),
            "userNonVisibleData must be 1 to 1500",
        ),
        (
            "phone/auth",
            json!({"personalNumber": ANNA, "callInitiator": "user", "userVisibleDataFormat": "html"}),
            "simpleMarkdownV1",
        ),
        (
            "phone/auth",
            json!({"personalNumber": ANNA, "callInitiator": "user", "requirement": {"risk": "low"}}),
            "risk",
        ),
        (
            "phone/auth",
            json!({"personalNumber": ANNA, "callInitiator": "user", "requirement": {"pinCode": "yes"}}),
            "pinCode",
        ),
        (
            "phone/sign",
            json!({"personalNumber": ANNA, "callInitiator": "user"}),
            "Missing userVisibleData",
        ),
        ("auth", json!({}), "Missing endUserIp"),
        ("auth", json!({"endUserIp": "not-an-ip"}), "not an IP"),
        (
            "auth",
            json!({"endUserIp": "192.0.2.1", "personalNumber": ANNA}),
            "not a parameter of auth",
        ),
        (
            "sign",
            json!({"endUserIp": "192.0.2.1"}),
            "Missing userVisibleData",
        ),
        ("collect", json!({}), "Missing orderRef"),
        (
            "collect",
            json!({"orderRef": "no-such-order"}),
            "No such order",
        ),
        ("cancel", json!({"orderRef": 5}), "orderRef must be"),
        ("collect", json!([1, 2]), "JSON object"),
    ];
    for (ep, body, want) in cases {
        let (s, v) = post(&c, &sim, ep, body.clone()).await;
        assert_eq!(
            (s, v["errorCode"].as_str()),
            (400, Some("invalidParameters")),
            "{ep} {body}: {v}"
        );
        assert!(details(&v).contains(want), "{ep} {body}: {v}");
    }
    assert!(
        sim.orders().is_empty(),
        "no invalid request created an order"
    );
}

#[tokio::test]
async fn wrong_method_content_type_path_and_body_are_rejected_like_bankid() {
    let sim = start(0.01);
    let c = client(&sim);
    let url = |ep: &str| format!("{}{ep}", sim.base_url());
    let r = c.get(url("collect")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "methodNotAllowed"
    );
    for ct in ["application/json; charset=utf-8", "text/plain"] {
        let r = c
            .post(url("collect"))
            .header("content-type", ct)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 415, "{ct}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["errorCode"],
            "unsupportedMediaType"
        );
    }
    let r = c.post(url("collect")).body("{}").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415, "missing content type");
    let r = c
        .post(url("nothing/here"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "notFound");
    let r = c
        .post(format!("https://{}/rp/v5.1/auth", sim.addr()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = c
        .post(url("collect"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorCode"], "invalidParameters");
    assert!(details(&v).contains("not valid JSON"));
}

#[tokio::test]
async fn a_second_order_aborts_both_and_cancel_works_once() {
    let sim = start(0.01);
    sim.set_scenario(
        ANNA,
        Scenario {
            steps: vec![Step {
                hint_code: "userCallConfirm".into(),
                ms: 500_000,
            }],
            outcome: "complete".into(),
        },
    );
    let c = client(&sim);
    let (_, v) = post(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user"}),
    )
    .await;
    let first = v["orderRef"].as_str().unwrap().to_string();
    let (s, v) = post(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user"}),
    )
    .await;
    assert_eq!(
        (s, v["errorCode"].as_str()),
        (400, Some("alreadyInProgress"))
    );
    let (_, v) = post(&c, &sim, "collect", json!({"orderRef": first})).await;
    assert_eq!(
        (v["status"].as_str(), v["hintCode"].as_str()),
        (Some("failed"), Some("cancelled"))
    );

    // Cancel: once fine, twice invalidParameters, and the order is gone for collect.
    let (_, v) = post(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user"}),
    )
    .await;
    let second = v["orderRef"].as_str().unwrap().to_string();
    let (s, v) = post(&c, &sim, "cancel", json!({"orderRef": second})).await;
    assert_eq!((s, v), (200, json!({})));
    let (s, v) = post(&c, &sim, "cancel", json!({"orderRef": second})).await;
    assert_eq!(
        (s, v["errorCode"].as_str()),
        (400, Some("invalidParameters"))
    );
    let (s, _) = post(&c, &sim, "collect", json!({"orderRef": second})).await;
    assert_eq!(s, 400);
    let orders = sim.orders();
    let row = orders.iter().find(|o| o.order_ref == second).unwrap();
    assert!(row.cancelled_by_rp);
    assert_eq!(row.personal_number_masked.as_deref(), Some("850312-XXXX"));
}

#[tokio::test]
async fn orders_expire_and_final_results_are_dropped_after_their_retention() {
    // speed 0.003: lifetime 180 s → 540 ms; complete kept 540 ms; failed kept 900 ms.
    let sim = start(0.003);
    let c = client(&sim);
    let (_, v) = post(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": "196601014449", "callInitiator": "user"}),
    )
    .await;
    let r = v["orderRef"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, v) = post(&c, &sim, "collect", json!({"orderRef": r})).await;
    assert_eq!(v["status"], "pending", "not yet expired: {v}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, v) = post(&c, &sim, "collect", json!({"orderRef": r})).await;
    assert_eq!(
        (v["status"].as_str(), v["hintCode"].as_str()),
        (Some("failed"), Some("expiredTransaction"))
    );

    // A completed order nobody collects is gone after the retention time.
    let (_, v) = post(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user"}),
    )
    .await;
    let r = v["orderRef"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(24 + 540 + 300)).await;
    let (s, v) = post(&c, &sim, "collect", json!({"orderRef": r})).await;
    assert_eq!((s, details(&v)), (400, "No such order"), "{v}");
}

#[tokio::test]
async fn each_test_person_ends_as_documented() {
    let sim = start(0.001);
    let c = client(&sim);
    for p in bankid_sim::TEST_PERSONS {
        let (_, v) = post(
            &c,
            &sim,
            "phone/auth",
            json!({"personalNumber": p.personal_number, "callInitiator": "user"}),
        )
        .await;
        let r = v["orderRef"].as_str().unwrap().to_string();
        let v = loop {
            let (_, v) = post(&c, &sim, "collect", json!({"orderRef": r})).await;
            if v["status"] != "pending" {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        };
        let want = match p.outcome {
            // The document check only fails when it is required (see the step-up test).
            "complete" | "slow" | "mrtdFails" => ("complete", None),
            other => ("failed", Some(other)),
        };
        assert_eq!(
            (v["status"].as_str().unwrap(), v["hintCode"].as_str()),
            want,
            "{}",
            p.personal_number
        );
    }
}

#[tokio::test]
async fn injected_faults_strike_the_next_requests_only() {
    let sim = start(0.01);
    let c = client(&sim);
    let body = json!({"orderRef": "x"});
    let url = format!("{}collect", sim.base_url());
    for (kind, status, code) in [
        (FaultKind::Maintenance, 503, "maintenance"),
        (FaultKind::InternalError, 500, "internalError"),
        (FaultKind::RequestTimeout, 408, "requestTimeout"),
    ] {
        sim.inject_fault(Fault::new(kind, 2));
        for _ in 0..2 {
            let (s, v) = post(&c, &sim, "collect", body.clone()).await;
            assert_eq!((s, v["errorCode"].as_str()), (status, Some(code)));
        }
        let (s, _) = post(&c, &sim, "collect", body.clone()).await;
        assert_eq!(s, 400, "fault used up");
    }
    sim.inject_fault(Fault::new(FaultKind::TooManyRequests, 1));
    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["ratelimit-reset"], "1");
    assert!(
        r.headers().contains_key("ratelimit-limit")
            && r.headers().contains_key("ratelimit-remaining")
    );
    sim.inject_fault(Fault::new(FaultKind::Html403, 1));
    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().starts_with("<html>"));
    sim.inject_fault(Fault::new(FaultKind::MalformedJson, 1));
    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    sim.inject_fault(Fault::new(FaultKind::Drop, 1));
    let e = c.post(&url).json(&body).send().await.unwrap_err();
    assert!(!e.is_status(), "dropped without an answer: {e}");
    sim.inject_fault(Fault::new(FaultKind::Delay, 1).delay(400));
    let certs = sim.certs();
    let quick = client_with_timeout(
        &sim,
        Some((certs.client_pem.clone(), certs.client_key_pem.clone())),
        Duration::from_millis(150),
    );
    let e = quick.post(&url).json(&body).send().await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    // A fault for one endpoint leaves the others alone.
    sim.inject_fault(Fault::new(FaultKind::Maintenance, 1).on("phone/auth"));
    let (s, _) = post(&c, &sim, "collect", body.clone()).await;
    assert_eq!(s, 400);
    let (s, _) = post(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user"}),
    )
    .await;
    assert_eq!(s, 503);
}

#[tokio::test]
async fn the_control_api_works_over_https() {
    let sim = start(0.01);
    let c = client(&sim);
    let ctl = |p: &str| format!("{}{p}", sim.control_url());
    let r = c
        .post(ctl("scenario"))
        .json(&json!({"personalNumber": ANNA, "steps": [], "outcome": "userCancel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .post(ctl("faults"))
        .json(&json!({"kind": "maintenance", "count": 1, "endpoint": "collect"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, v) = post(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user"}),
    )
    .await;
    let r = v["orderRef"].as_str().unwrap().to_string();
    let (s, _) = post(&c, &sim, "collect", json!({"orderRef": r})).await;
    assert_eq!(s, 503);
    let (_, v) = post(&c, &sim, "collect", json!({"orderRef": r})).await;
    assert_eq!(v["hintCode"], "userCancel");
    let list: Value = c
        .get(ctl("orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["orders"][0]["status"], "failed");
    assert_eq!(list["orders"][0]["finalCollected"], true);
    assert!(
        !list.to_string().contains(ANNA),
        "the control API never shows whole numbers"
    );
    let stats: Value = c
        .get(ctl("stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["requests"].as_u64().unwrap() >= 4);
    let persons: Value = c
        .get(ctl("persons"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        persons["persons"].as_array().unwrap().len(),
        bankid_sim::TEST_PERSONS.len()
    );
    let r = c
        .post(ctl("scenario"))
        .json(&json!({"personalNumber": "123", "steps": [], "outcome": "complete"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = c
        .post(ctl("faults"))
        .json(&json!({"kind": "earthquake"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn clients_without_a_trusted_certificate_are_refused_in_the_handshake() {
    let sim = start(0.01);
    let none = client_for(&sim, None);
    let e = none
        .post(format!("{}collect", sim.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap_err();
    assert!(!e.is_status(), "{e}");
    let other = bankid_sim::certs::untrusted_client().unwrap();
    let foreign = client_for(&sim, Some(other));
    let e = foreign
        .post(format!("{}collect", sim.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap_err();
    assert!(!e.is_status(), "{e}");
    let s = sim.stats();
    assert_eq!((s.refused_handshakes, s.requests), (2, 0));
}

#[test]
fn certificates_are_written_in_every_shape_and_reused() {
    let dir = std::env::temp_dir().join(format!("bankid-sim-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sim = Simulator::start(SimConfig {
        certs_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    for f in [
        "ca.pem",
        "client.pem",
        "client.key",
        "client-encrypted.key",
        "client.p12",
        "client-legacy.p12",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let enc = std::fs::read_to_string(dir.join("client-encrypted.key")).unwrap();
    assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let ca = sim.certs().ca_pem.clone();
    sim.shutdown();
    let again = Simulator::start(SimConfig {
        certs_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(again.certs().ca_pem, ca, "existing files are reused");
}

// ---- issue 11: everything BankID may send, and bounded input ----

async fn ctl_post(c: &reqwest::Client, sim: &Simulator, p: &str, body: Value) -> (u16, Value) {
    let r = c
        .post(format!("{}{p}", sim.control_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn start_order(c: &reqwest::Client, sim: &Simulator, pnr: &str) -> String {
    let (s, v) = post(
        c,
        sim,
        "phone/auth",
        json!({"personalNumber": pnr, "callInitiator": "user"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["orderRef"].as_str().unwrap().to_string()
}

/// A scenario that stays pending (`userSign`) for `ms` scenario milliseconds, then `outcome`.
fn pending_for(ms: u64, outcome: &str) -> Scenario {
    Scenario {
        steps: vec![Step {
            hint_code: "userSign".into(),
            ms,
        }],
        outcome: outcome.into(),
    }
}

async fn collect(c: &reqwest::Client, sim: &Simulator, r: &str) -> (u16, Value) {
    post(c, sim, "collect", json!({ "orderRef": r })).await
}

/// Collects until the order is no longer pending (at most 5 s).
async fn collect_final(c: &reqwest::Client, sim: &Simulator, r: &str) -> Value {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (s, v) = collect(c, sim, r).await;
        assert_eq!(s, 200, "{v}");
        if v["status"] != "pending" {
            return v;
        }
        assert!(std::time::Instant::now() < until, "still pending: {v}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_fault_that_strikes_nothing_or_makes_no_sense_is_refused_with_the_reason() {
    let sim = start(0.01);
    let c = client(&sim);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"kind": "maintenance", "count": 0}),
            "count must be at least 1",
        ),
        (
            json!({"kind": "maintenance", "count": -1}),
            "count must be a whole number",
        ),
        (
            json!({"kind": "maintenance", "count": 1.5}),
            "count must be a whole number",
        ),
        (
            json!({"kind": "maintenance", "count": "2"}),
            "count must be a whole number",
        ),
        (
            json!({"kind": "maintenance", "count": 4294967296u64}),
            "count must be a whole number from 0 to 4294967295",
        ),
        (
            json!({"kind": "maintenance", "skip": -3}),
            "skip must be a whole number",
        ),
        (
            json!({"kind": "maintenance", "endpoint": "colect"}),
            "endpoint \"colect\" is not an RP API endpoint",
        ),
        (
            json!({"kind": "delay", "delayMs": 600_001}),
            "delayMs must be",
        ),
        (
            json!({"kind": "html403", "resetS": 5}),
            "resetS only applies to",
        ),
        (
            json!({"kind": "tooManyRequests", "resetS": -1}),
            "resetS must be a whole number of seconds",
        ),
        (
            json!({"kind": "tooManyRequests", "resetS": "a\nb"}),
            "header value",
        ),
        (
            json!({"kind": "nullFields", "endpoint": "phone/auth"}),
            "endpoint must be collect",
        ),
        (
            json!({"kind": "drop", "value": "x"}),
            "value only applies to",
        ),
        (
            json!({"kind": "maintenance", "cuont": 2}),
            "unknown field \"cuont\"",
        ),
        (json!({"kind": "earthquake"}), "unknown kind \"earthquake\""),
        (json!({"count": 1}), "missing kind"),
        (json!([1]), "JSON object"),
    ];
    for (body, want) in cases {
        let (s, v) = ctl_post(&c, &sim, "faults", body.clone()).await;
        assert_eq!(
            (s, v["errorCode"].as_str()),
            (400, Some("invalidParameters")),
            "{body}: {v}"
        );
        assert!(details(&v).contains(want), "{body}: {v}");
    }
    let r = c
        .post(format!("{}faults", sim.control_url()))
        .header("content-type", "application/json")
        .body("{kind")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Nothing was armed, and the simulator still answers (count 0 used to underflow).
    assert!(sim.pending_faults().is_empty());
    let (s, v) = collect(&c, &sim, "no-such-order").await;
    assert_eq!((s, details(&v)), (400, "No such order"));
    let e = sim
        .try_inject_fault(Fault::new(FaultKind::Maintenance, 0))
        .unwrap_err();
    assert!(e.contains("count must be at least 1"), "{e}");
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn skip_lets_matching_requests_pass_then_the_fault_strikes_count_times() {
    let sim = start(1.0);
    sim.set_scenario(ANNA, pending_for(60_000, "complete"));
    let c = client(&sim);
    let r = start_order(&c, &sim, ANNA).await;
    let (s, v) = ctl_post(
        &c,
        &sim,
        "faults",
        json!({"kind": "internalError", "endpoint": "collect", "skip": 2, "count": 2}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut seen = vec![];
    for i in 0..5 {
        if i == 1 {
            // Another endpoint is not a matching request: it neither passes nor is struck.
            let (s, _) = post(&c, &sim, "cancel", json!({"orderRef": "none"})).await;
            assert_eq!(s, 400);
        }
        seen.push(collect(&c, &sim, &r).await.0);
    }
    assert_eq!(seen, [200, 200, 500, 500, 200], "the 3rd and 4th collect");
    assert!(sim.pending_faults().is_empty(), "used up");
}

#[tokio::test]
async fn rate_limit_headers_carry_any_reset_verbatim_and_retry_after_when_asked() {
    let sim = start(0.01);
    let c = client(&sim);
    let url = format!("{}collect", sim.base_url());
    let body = json!({"orderRef": "x"});
    // (fault, status, RateLimit-Reset, Retry-After)
    let cases: Vec<(Value, u16, Option<&str>, Option<&str>)> = vec![
        (json!({"kind": "tooManyRequests"}), 429, Some("1"), None),
        (
            json!({"kind": "tooManyRequests", "resetS": 0}),
            429,
            Some("0"),
            None,
        ),
        (
            json!({"kind": "tooManyRequests", "resetS": 18446744073709551615u64}),
            429,
            Some("18446744073709551615"),
            None,
        ),
        (
            json!({"kind": "tooManyRequests", "resetS": "99999999999999999999999"}),
            429,
            Some("99999999999999999999999"),
            None,
        ),
        (
            json!({"kind": "tooManyRequests", "resetS": 3600}),
            429,
            Some("3600"),
            None,
        ),
        (
            json!({"kind": "tooManyRequests", "retryAfterS": 7}),
            429,
            None,
            Some("7"),
        ),
        (
            json!({"kind": "tooManyRequests", "resetS": 2, "retryAfterS": 9}),
            429,
            Some("2"),
            Some("9"),
        ),
        (
            json!({"kind": "maintenance", "retryAfterS": 30}),
            503,
            None,
            Some("30"),
        ),
        (json!({"kind": "maintenance"}), 503, None, None),
        (
            json!({"kind": "html429", "retryAfterS": 5}),
            429,
            None,
            Some("5"),
        ),
        (
            json!({"kind": "html503", "resetS": 0}),
            503,
            Some("0"),
            None,
        ),
    ];
    for (fault, status, reset, retry) in cases {
        let (s, v) = ctl_post(&c, &sim, "faults", fault.clone()).await;
        assert_eq!(s, 200, "{fault}: {v}");
        let r = c.post(&url).json(&body).send().await.unwrap();
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(r.status().as_u16(), status, "{fault}");
        assert_eq!(h("ratelimit-reset").as_deref(), reset, "{fault}");
        assert_eq!(h("retry-after").as_deref(), retry, "{fault}");
        if fault["kind"] == "tooManyRequests" {
            assert_eq!(h("ratelimit-remaining").as_deref(), Some("0"), "{fault}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["errorCode"], "tooManyRequests");
        }
    }
    // The Rust API says the same.
    sim.inject_fault(Fault::new(FaultKind::TooManyRequests, 1).reset_s(u64::MAX));
    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.headers()["ratelimit-reset"], "18446744073709551615");
}

#[tokio::test]
async fn new_error_kinds_answer_exactly_as_documented() {
    let sim = start(0.01);
    let c = client(&sim);
    let url = format!("{}phone/auth", sim.base_url());
    let body = json!({"personalNumber": ANNA, "callInitiator": "user"});
    sim.inject_fault(Fault::new(FaultKind::Unauthorized, 1));
    let (s, v) = post(&c, &sim, "phone/auth", body.clone()).await;
    assert_eq!((s, v["errorCode"].as_str()), (401, Some("unauthorized")));
    sim.inject_fault(Fault::new(FaultKind::UnknownErrorCode, 1));
    let (s, v) = post(&c, &sim, "phone/auth", body.clone()).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("someFutureError")));
    assert!(v["details"].is_string());
    sim.inject_fault(Fault::new(FaultKind::UnknownErrorCode, 1).value("quantumFlux"));
    let (s, v) = post(&c, &sim, "phone/auth", body.clone()).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("quantumFlux")));
    for (kind, status) in [
        (FaultKind::Html502, 502),
        (FaultKind::Html503, 503),
        (FaultKind::Html429, 429),
    ] {
        sim.inject_fault(Fault::new(kind, 1));
        let r = c.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(r.headers()["content-type"], "text/html");
        let text = r.text().await.unwrap();
        assert!(
            text.starts_with("<html>") && text.contains(&status.to_string()),
            "{text}"
        );
        assert!(serde_json::from_str::<Value>(&text).is_err());
    }
    assert!(sim.orders().is_empty(), "no struck start created an order");
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn unknown_status_and_hint_replace_an_answer_without_consuming_the_real_one() {
    let sim = start(0.01);
    let c = client(&sim);
    sim.set_scenario(ANNA, pending_for(60_000_000, "complete"));
    let r = start_order(&c, &sim, ANNA).await;
    sim.inject_fault(Fault::new(FaultKind::UnknownStatus, 1));
    let (s, v) = collect(&c, &sim, &r).await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({"orderRef": r, "status": "paused"}), "no hintCode");
    sim.inject_fault(Fault::new(FaultKind::UnknownHintCode, 1));
    let (_, v) = collect(&c, &sim, &r).await;
    assert_eq!(
        v,
        json!({"orderRef": r, "status": "pending", "hintCode": "someFutureHint"})
    );
    let (_, v) = collect(&c, &sim, &r).await;
    assert_eq!(v["hintCode"], "userSign", "back to the real answer");

    // On a final answer the real status stays collectable.
    sim.clear_scenario(ANNA);
    let r = start_order(&c, &sim, "199908072391").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    sim.inject_fault(Fault::new(FaultKind::UnknownStatus, 1).value("onHold"));
    let (_, v) = collect(&c, &sim, &r).await;
    assert_eq!(v["status"], "onHold");
    let (_, v) = collect(&c, &sim, &r).await;
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(
        v["completionData"]["user"]["personalNumber"],
        "199908072391"
    );
}

#[tokio::test]
async fn complete_only_shapes_wait_for_a_complete_answer_and_rewrite_it() {
    let sim = start(0.01);
    let c = client(&sim);
    let pnr = "199908072391";
    type Check = Box<dyn Fn(&Value)>;
    let cases: Vec<(Fault, Check)> = vec![
        (
            Fault::new(FaultKind::NullFields, 1),
            Box::new(|cd: &Value| {
                assert_eq!(cd["user"]["givenName"], Value::Null);
                assert_eq!(cd["user"]["surname"], Value::Null);
                assert_eq!(cd["device"]["uhi"], Value::Null);
                assert!(cd.as_object().unwrap().contains_key("stepUp"));
                assert_eq!(cd["stepUp"], Value::Null);
                assert_eq!(cd["user"]["personalNumber"], "199908072391");
                assert_eq!(cd["user"]["name"], "Test Testsson");
            }),
        ),
        (
            Fault::new(FaultKind::OtherPerson, 1),
            Box::new(|cd: &Value| {
                let other = cd["user"]["personalNumber"].as_str().unwrap();
                assert_ne!(other, "199908072391");
                assert_eq!(bankid_sim::scenario::check_personal_number(other), Ok(()));
            }),
        ),
        (
            Fault::new(FaultKind::OtherPerson, 1).value("198503121116"),
            Box::new(|cd: &Value| assert_eq!(cd["user"]["personalNumber"], "198503121116")),
        ),
        (
            Fault::new(FaultKind::BadPersonalNumber, 1),
            Box::new(|cd: &Value| assert_eq!(cd["user"]["personalNumber"], "19ÅÄÖ")),
        ),
        (
            Fault::new(FaultKind::MissingPersonalNumber, 1),
            Box::new(|cd: &Value| {
                assert!(!cd["user"]
                    .as_object()
                    .unwrap()
                    .contains_key("personalNumber"));
                assert_eq!(cd["user"]["name"], "Test Testsson");
            }),
        ),
    ];
    for (fault, check) in cases {
        let kind = fault.kind;
        // Injected before the order completes: the pending collects pass unchanged and use
        // neither skip nor count.
        sim.inject_fault(fault.clone().skip(0));
        let r = start_order(&c, &sim, pnr).await;
        let (_, v) = collect(&c, &sim, &r).await;
        assert_eq!(v["status"], "pending", "{kind:?}: {v}");
        assert_eq!(v.as_object().unwrap().len(), 3, "unchanged: {v}");
        assert_eq!(
            sim.pending_faults(),
            vec![fault.clone()],
            "{kind:?} still armed"
        );
        let v = collect_final(&c, &sim, &r).await;
        assert_eq!(v["status"], "complete", "{kind:?}: {v}");
        check(&v["completionData"]);
        assert!(sim.pending_faults().is_empty(), "{kind:?} used");
        // The final status was consumed as BankID would.
        let (s, _) = collect(&c, &sim, &r).await;
        assert_eq!(s, 400);
    }
    // A failed order never takes a complete-only shape.
    sim.inject_fault(Fault::new(FaultKind::NullFields, 1));
    let r = start_order(&c, &sim, "199105212220").await;
    let v = collect_final(&c, &sim, &r).await;
    assert_eq!(v["hintCode"], "userCancel");
    assert_eq!(sim.pending_faults().len(), 1);
    sim.clear_faults();
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn extra_fields_appear_at_every_level_of_a_collect_answer() {
    let sim = start(0.01);
    let c = client(&sim);
    let (_, v) = post(
        &c,
        &sim,
        "phone/sign",
        json!({"personalNumber": ANNA, "callInitiator": "RP", "userVisibleData": "SGVq",
               "requirement": {"mrtd": true}}),
    )
    .await;
    let r = v["orderRef"].as_str().unwrap().to_string();
    sim.inject_fault(Fault::new(FaultKind::ExtraFields, 1));
    let (_, v) = collect(&c, &sim, &r).await;
    assert_eq!(v["status"], "pending");
    assert!(v["someFutureField"].is_object(), "{v}");
    assert!(v["hintCode"].is_string());
    // Complete: every object of the answer has one.
    let (s, v) = ctl_post(
        &c,
        &sim,
        "faults",
        json!({"kind": "extraFields", "skip": 0}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, v) = collect(&c, &sim, &r).await;
    assert_eq!(v["status"], "complete", "{v}");
    let cd = &v["completionData"];
    for o in [&v, cd, &cd["user"], &cd["device"], &cd["stepUp"]] {
        assert!(o.get("someFutureField").is_some(), "{o}");
    }
    assert_eq!(cd["user"]["personalNumber"], ANNA);
    assert_eq!(cd["stepUp"]["mrtd"], true);
}

#[tokio::test]
async fn issue_date_has_a_zone_suffix_by_default_and_a_date_only_form_per_person() {
    let sim = start(0.01);
    let c = client(&sim);
    let date = |c: reqwest::Client, pnr: &'static str| {
        let sim = &sim;
        async move {
            let r = start_order(&c, sim, pnr).await;
            collect_final(&c, sim, &r).await["completionData"]["bankIdIssueDate"].clone()
        }
    };
    assert_eq!(date(c.clone(), ANNA).await, "2024-01-15Z");
    let (s, v) = ctl_post(
        &c,
        &sim,
        "scenario",
        json!({"personalNumber": ANNA, "bankIdIssueDate": "2024-01-15"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(date(c.clone(), ANNA).await, "2024-01-15");
    assert_eq!(
        date(c.clone(), "196801642395").await,
        "2024-01-15Z",
        "others keep it"
    );
    sim.set_issue_date(ANNA, Some("2023-11-29+01:00"));
    assert_eq!(date(c.clone(), ANNA).await, "2023-11-29+01:00");
    let (s, _) = ctl_post(
        &c,
        &sim,
        "scenario",
        json!({"personalNumber": ANNA, "reset": true}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(date(c.clone(), ANNA).await, "2024-01-15Z");
    let (s, v) = ctl_post(
        &c,
        &sim,
        "scenario",
        json!({"personalNumber": ANNA, "bankIdIssueDate": 20240115}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        details(&v).contains("bankIdIssueDate must be a string"),
        "{v}"
    );
}

#[tokio::test]
async fn a_scenario_can_end_in_a_failed_hint_code_bankid_does_not_have_today() {
    let sim = start(0.01);
    let c = client(&sim);
    let (s, _) = ctl_post(
        &c,
        &sim,
        "scenario",
        json!({"personalNumber": ANNA, "steps": [{"hintCode": "someFutureHint", "ms": 3000}],
               "outcome": "someFutureFailure"}),
    )
    .await;
    assert_eq!(s, 200);
    let r = start_order(&c, &sim, ANNA).await;
    let (_, v) = collect(&c, &sim, &r).await;
    assert_eq!(
        (v["status"].as_str(), v["hintCode"].as_str()),
        (Some("pending"), Some("someFutureHint"))
    );
    let v = collect_final(&c, &sim, &r).await;
    assert_eq!(
        (v["status"].as_str(), v["hintCode"].as_str()),
        (Some("failed"), Some("someFutureFailure"))
    );
    assert!(v.get("completionData").is_none());
}

#[tokio::test]
async fn oversized_bodies_get_413_and_a_closed_connection_on_both_apis() {
    let sim = start(0.01);
    let c = client(&sim);
    // The largest request BankID accepts still fits (sign: 40 000 + 200 000 characters).
    let (s, v) = post(
        &c,
        &sim,
        "sign",
        json!({"endUserIp": "192.0.2.1", "userVisibleData": "QUFB".repeat(10_000),
               "userNonVisibleData": "QUFB".repeat(50_000)}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let pad = "A".repeat(bankid_sim::MAX_BODY_BYTES);
    let before = sim.stats().handshakes;
    // Far beyond the limit: refused at once from the declared length, without reading it.
    let huge = "A".repeat(8 * bankid_sim::MAX_BODY_BYTES);
    let _ = c
        .post(format!("{}collect", sim.base_url()))
        .json(&json!({ "pad": huge }))
        .send()
        .await;
    let (s, _) = collect(&c, &sim, "x").await;
    assert_eq!(s, 400);
    assert_eq!(
        sim.stats().handshakes,
        before + 1,
        "closed after the huge body"
    );
    for url in [
        format!("{}collect", sim.base_url()),
        format!("{}scenario", sim.control_url()),
        format!("{}faults", sim.control_url()),
    ] {
        let before = sim.stats().handshakes;
        let r = c
            .post(&url)
            .json(&json!({"orderRef": "x", "pad": pad}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413, "{url}");
        assert_eq!(r.headers()["connection"], "close");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errorCode"], "invalidParameters");
        assert!(details(&v).contains("larger than 262144 bytes"), "{v}");
        // The connection was closed: the next request needs a new handshake.
        let (s, _) = collect(&c, &sim, "x").await;
        assert_eq!(s, 400);
        assert_eq!(sim.stats().handshakes, before + 1, "{url}");
    }
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn a_client_that_never_finishes_the_tls_handshake_is_dropped() {
    use tokio::io::AsyncReadExt;
    assert_eq!(bankid_sim::HANDSHAKE_TIMEOUT, Duration::from_secs(10));
    let sim = Simulator::start(SimConfig {
        speed: 0.01,
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    // TCP only, never a ClientHello.
    let mut silent = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    // Half a ClientHello, then nothing.
    let mut half = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    for s in [&mut silent, &mut half] {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the simulator closed the connection")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // The socket closes as the handshake is abandoned; the counters follow right after.
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while sim.stats().handshake_timeouts < 2 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = sim.stats();
    assert_eq!((st.handshake_timeouts, st.refused_handshakes), (2, 2));
    // A real client still gets through.
    let c = client(&sim);
    let (s, _) = collect(&c, &sim, "x").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_fault_for_one_person_strikes_only_their_requests() {
    let sim = start(0.01);
    let c = client(&sim);
    let sven = "196801642395";
    for p in [ANNA, sven] {
        sim.set_scenario(p, pending_for(60_000_000, "complete"));
    }
    // Armed before the orders exist: a start, then collects, of Anna's only.
    let (s, v) = ctl_post(
        &c,
        &sim,
        "faults",
        json!({"kind": "maintenance", "personalNumber": ANNA}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = post(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user"}),
    )
    .await;
    assert_eq!(s, 503, "Anna's start is struck");
    let sven_ref = start_order(&c, &sim, sven).await;
    let anna_ref = start_order(&c, &sim, ANNA).await;
    sim.inject_fault(
        Fault::new(FaultKind::Maintenance, 2)
            .on("collect")
            .for_person(ANNA),
    );
    assert_eq!(collect(&c, &sim, &sven_ref).await.0, 200);
    assert_eq!(collect(&c, &sim, &anna_ref).await.0, 503);
    assert_eq!(collect(&c, &sim, &sven_ref).await.0, 200);
    assert_eq!(collect(&c, &sim, "no-such-order").await.0, 400);
    assert_eq!(collect(&c, &sim, &anna_ref).await.0, 503);
    assert_eq!(collect(&c, &sim, &anna_ref).await.0, 200, "used up");
    // A shape aimed at one person waits for their complete answer.
    sim.clear_scenario(ANNA);
    sim.clear_scenario(sven);
    sim.inject_fault(Fault::new(FaultKind::OtherPerson, 1).for_person(ANNA));
    let (_, v) = post(&c, &sim, "cancel", json!({"orderRef": anna_ref})).await;
    assert_eq!(v, json!({}));
    let sven_ref = {
        let _ = post(&c, &sim, "cancel", json!({"orderRef": sven_ref})).await;
        start_order(&c, &sim, sven).await
    };
    let anna_ref = start_order(&c, &sim, ANNA).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, v) = collect(&c, &sim, &sven_ref).await;
    assert_eq!(v["completionData"]["user"]["personalNumber"], sven);
    let (_, v) = collect(&c, &sim, &anna_ref).await;
    assert_eq!(v["status"], "complete", "{v}");
    assert_ne!(v["completionData"]["user"]["personalNumber"], ANNA);
    let (s, v) = ctl_post(
        &c,
        &sim,
        "faults",
        json!({"kind": "drop", "personalNumber": "198503121117"}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(details(&v).contains("check digit"), "{v}");
}

/// The pending hints of an order until it is final, and its final answer.
async fn run_order(
    c: &reqwest::Client,
    sim: &Simulator,
    ep: &str,
    body: Value,
) -> (Vec<String>, Value) {
    let (s, v) = post(c, sim, ep, body).await;
    assert_eq!(s, 200, "{v}");
    let r = v["orderRef"].as_str().unwrap().to_string();
    let mut hints: Vec<String> = vec![];
    loop {
        let (s, v) = post(c, sim, "collect", json!({"orderRef": r})).await;
        assert_eq!(s, 200, "{v}");
        if v["status"] != "pending" {
            return (hints, v);
        }
        let h = v["hintCode"].as_str().unwrap().to_string();
        if hints.last() != Some(&h) {
            hints.push(h);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

#[tokio::test]
async fn requirements_change_the_scenario_and_the_orders_list_records_the_options() {
    let sim = start(0.01);
    let c = client(&sim);
    // Sign with an ID-document check: userMrtd before the code, stepUp in completionData.
    let (hints, done) = run_order(
        &c,
        &sim,
        "phone/sign",
        json!({"personalNumber": ANNA, "callInitiator": "user",
               "userVisibleData": "R29ka8Okbm4gYWRyZXNzw6RuZHJpbmc=",
               "userVisibleDataFormat": "simpleMarkdownV1",
               "userNonVisibleData": "aGVtbGln",
               "requirement": {"mrtd": true, "pinCode": true}}),
    )
    .await;
    assert_eq!(
        hints,
        [
            "outstandingTransaction",
            "userCallConfirm",
            "userMrtd",
            "userSign"
        ]
    );
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["completionData"]["stepUp"], json!({"mrtd": true}));
    let o = sim.orders().pop().unwrap();
    let row = serde_json::to_value(&o).unwrap();
    assert_eq!(row["mode"], "sign");
    assert_eq!(row["endpoint"], "phone/sign");
    assert_eq!(row["userVisibleData"], true);
    assert_eq!(
        row["userVisibleDataChars"],
        "Godkänn adressändring".chars().count()
    );
    assert_eq!(row["userVisibleDataFormat"], "simpleMarkdownV1");
    assert_eq!(row["userNonVisibleData"], true);
    assert_eq!(row["requirement"], json!({"mrtd": true, "pinCode": true}));
    let listed = row.to_string();
    assert!(!listed.contains("Godk") && !listed.contains("aGVtbGln") && !listed.contains(ANNA));

    // Identify without requirements: no stepUp, and the list says so.
    let (_, done) = run_order(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user"}),
    )
    .await;
    assert!(done["completionData"].get("stepUp").is_none(), "{done}");
    let row = serde_json::to_value(sim.orders().pop().unwrap()).unwrap();
    assert_eq!(
        (row["mode"].as_str(), row["userVisibleData"].as_bool()),
        (Some("identify"), Some(false))
    );
    assert!(row["requirement"].is_null());

    // The test person whose document check fails: only when it is required.
    let jonas = "197904128886";
    let (hints, done) = run_order(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": jonas, "callInitiator": "user", "requirement": {"mrtd": true}}),
    )
    .await;
    assert_eq!(hints.last().map(String::as_str), Some("userMrtd"));
    assert_eq!(
        (done["status"].as_str(), done["hintCode"].as_str()),
        (Some("failed"), Some("mrtdVerificationFailed"))
    );
    let (_, done) = run_order(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": jonas, "callInitiator": "user"}),
    )
    .await;
    assert_eq!(done["status"], "complete");

    // pinCode on a scenario without a code step adds one.
    let quick = Scenario {
        steps: vec![Step {
            hint_code: "outstandingTransaction".into(),
            ms: 2000,
        }],
        outcome: "complete".into(),
    };
    sim.set_scenario(ANNA, quick);
    let (hints, _) = run_order(
        &c,
        &sim,
        "phone/auth",
        json!({"personalNumber": ANNA, "callInitiator": "user", "requirement": {"pinCode": true}}),
    )
    .await;
    assert_eq!(hints, ["outstandingTransaction", "userSign"]);
}

#[tokio::test]
async fn the_new_fields_are_validated_like_bankid() {
    let sim = start(0.01);
    let c = client(&sim);
    let b64 = |n: usize| "A".repeat(n);
    let base = |extra: Value| {
        let mut v = json!({"personalNumber": ANNA, "callInitiator": "user"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "phone/sign",
            base(json!({"userVisibleData": ""})),
            "userVisibleData must be 1 to 40000",
        ),
        (
            "phone/sign",
            base(json!({"userVisibleData": b64(40_004)})),
            "userVisibleData must be 1 to 40000",
        ),
        (
            "phone/sign",
            base(json!({"userVisibleData": "SGVq", "userNonVisibleData": b64(200_004)})),
            "userNonVisibleData must be 1 to 200000",
        ),
        (
            "phone/auth",
            base(json!({"userNonVisibleData": b64(1_504)})),
            "userNonVisibleData must be 1 to 1500",
        ),
        (
            "phone/sign",
            base(json!({"userVisibleData": "SGVq", "userNonVisibleData": "***"})),
            "userNonVisibleData is not valid base64",
        ),
        (
            "phone/sign",
            base(json!({"userVisibleData": "//79"})),
            "not UTF-8",
        ),
        (
            "phone/sign",
            base(json!({"userVisibleData": "SGVq", "userVisibleDataFormat": "markdown"})),
            "simpleMarkdownV1",
        ),
        (
            "phone/sign",
            base(json!({"userVisibleData": "SGVq", "userVisibleDataFormat": 1})),
            "userVisibleDataFormat must be a string",
        ),
        (
            "phone/auth",
            base(json!({"requirement": {"mrtd": "yes"}})),
            "requirement.mrtd must be a boolean",
        ),
        (
            "phone/auth",
            base(json!({"requirement": {"pinCode": 1}})),
            "requirement.pinCode must be a boolean",
        ),
        (
            "phone/auth",
            base(json!({"requirement": {"certificatePolicies": [1]}})),
            "certificatePolicies",
        ),
        (
            "phone/auth",
            base(json!({"requirement": true})),
            "requirement must be an object",
        ),
    ];
    for (ep, body, want) in cases {
        let (s, v) = post(&c, &sim, ep, body).await;
        assert_eq!(
            (s, v["errorCode"].as_str()),
            (400, Some("invalidParameters")),
            "{ep}: {v}"
        );
        assert!(details(&v).contains(want), "{ep} wants {want:?}: {v}");
    }
    // The largest accepted sizes pass.
    let (s, v) = post(
        &c,
        &sim,
        "phone/sign",
        base(json!({"userVisibleData": b64(40_000), "userNonVisibleData": b64(1_500)})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(sim.orders().len(), 1);
}
