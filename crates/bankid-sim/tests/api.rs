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
            "complete" | "slow" => ("complete", None),
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
