//! Property tests of the RP API decoding (issue 11): whatever BankID (or something in between)
//! sends, decoding never panics, and status, hint and error codes BankID adds tomorrow survive
//! as `Unknown(..)` with their exact text.
//!
//! Short by default (CI); `PROPTEST_CASES=100000 cargo test --release --test prop_rp` runs long.
//! The error body is decoded by the real client over mutual TLS against bankid-sim's
//! `unknownErrorCode` fault: `ErrorBody` is private, `RpClient` is how it is reached.

mod common;

use std::time::Duration;

use bankid::rp::{CollectResponse, CollectStatus, ErrorCode, HintCode, RpClient, RpError};
use bankid_sim::{Fault, FaultKind};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// 256 cases unless `PROPTEST_CASES` says otherwise (proptest reads it itself).
fn config(default_cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    c.failure_persistence = None;
    c
}

const KNOWN_STATUS: &[&str] = &["pending", "failed", "complete"];
const KNOWN_HINTS: &[&str] = &[
    "outstandingTransaction",
    "noClient",
    "started",
    "userCallConfirm",
    "userMrtd",
    "userSign",
    "processing",
    "expiredTransaction",
    "certificateErr",
    "userCancel",
    "cancelled",
    "startFailed",
    "userDeclinedCall",
    "notSupportedByUserApp",
    "transactionRiskBlocked",
];
const KNOWN_ERRORS: &[&str] = &[
    "alreadyInProgress",
    "invalidParameters",
    "unauthorized",
    "notFound",
    "methodNotAllowed",
    "requestTimeout",
    "unsupportedMediaType",
    "internalError",
    "maintenance",
    "tooManyRequests",
];

/// Keys a collect answer has, plus some it may have one day, so arbitrary values land where
/// the decoder looks.
const KEYS: &[&str] = &[
    "orderRef",
    "status",
    "hintCode",
    "completionData",
    "user",
    "personalNumber",
    "name",
    "givenName",
    "surname",
    "device",
    "ipAddress",
    "uhi",
    "bankIdIssueDate",
    "stepUp",
    "mrtd",
    "signature",
    "ocspResponse",
    "risk",
    "errorCode",
    "details",
    "someFutureField",
];

/// Any string, biased to codes (known and not) and awkward text.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(KNOWN_STATUS).prop_map(str::to_string),
        proptest::sample::select(KNOWN_HINTS).prop_map(str::to_string),
        proptest::sample::select(KNOWN_ERRORS).prop_map(str::to_string),
        "[a-zA-Z]{0,24}",
        any::<String>(),
        Just("19ÅÄÖ".to_string()),
        Just(String::new()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// Arbitrary JSON, nested a few levels, with keys the decoder knows.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A collect answer of the right shape with arbitrary values and unknown fields everywhere.
fn collect_like() -> impl Strategy<Value = Value> {
    (
        text(),
        text(),
        proptest::option::of(text()),
        json_value(),
        json_value(),
        json_value(),
    )
        .prop_map(|(order_ref, status, hint, user_extra, device, extra)| {
            let mut v = json!({
                "orderRef": order_ref,
                "status": status,
                "completionData": {
                    "user": user_extra,
                    "device": device,
                    "bankIdIssueDate": "2024-01-15Z",
                    "someFutureField": extra.clone(),
                },
                "someFutureField": extra,
            });
            if let Some(h) = hint {
                v["hintCode"] = json!(h);
            }
            v
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_json_never_panics_the_collect_decoder(v in json_value()) {
        let _ = serde_json::from_value::<CollectResponse>(v.clone());
        let _ = serde_json::from_str::<CollectResponse>(&v.to_string());
        let _ = serde_json::from_value::<ErrorCode>(v.clone());
        let _ = serde_json::from_value::<HintCode>(v.clone());
        let _ = serde_json::from_value::<CollectStatus>(v);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_collect_decoder(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<CollectResponse>(&b);
        let _ = serde_json::from_slice::<ErrorCode>(&b);
    }

    #[test]
    fn collect_shaped_answers_with_arbitrary_values_never_panic(v in collect_like()) {
        if let Ok(r) = serde_json::from_value::<CollectResponse>(v.clone()) {
            // Whatever decoded kept the exact text.
            prop_assert_eq!(r.status.as_str(), v["status"].as_str().unwrap());
            prop_assert_eq!(r.order_ref.as_str(), v["orderRef"].as_str().unwrap());
        }
    }

    #[test]
    fn unknown_status_and_hint_survive_with_their_text(
        status in text(),
        hint in text(),
        extra in json_value(),
    ) {
        let v = json!({
            "orderRef": "131daac9-16c6-4618-beb0-365768f37288",
            "status": status,
            "hintCode": hint,
            "someFutureField": extra,
        });
        let r: CollectResponse = serde_json::from_value(v)
            .map_err(|e| TestCaseError::fail(format!("a well-formed answer failed: {e}")))?;
        prop_assert_eq!(r.status.as_str(), status.as_str());
        prop_assert_eq!(
            matches!(r.status, CollectStatus::Unknown(ref s) if *s == status),
            !KNOWN_STATUS.contains(&status.as_str())
        );
        let h = r.hint_code.expect("hintCode was sent");
        prop_assert_eq!(h.as_str(), hint.as_str());
        prop_assert_eq!(
            matches!(h, HintCode::Unknown(ref s) if *s == hint),
            !KNOWN_HINTS.contains(&hint.as_str())
        );
    }

    #[test]
    fn unknown_error_codes_survive_with_their_text(code in text()) {
        let e: ErrorCode = serde_json::from_value(json!(code))
            .map_err(|e| TestCaseError::fail(format!("a string failed: {e}")))?;
        prop_assert_eq!(e.as_str(), code.as_str());
        prop_assert_eq!(
            matches!(e, ErrorCode::Unknown(ref s) if *s == code),
            !KNOWN_ERRORS.contains(&code.as_str())
        );
    }
}

/// The real client, over mutual TLS, against the simulator in this process.
fn rp_client(env: &common::Env) -> RpClient {
    let certs = env.lab.certs();
    let roots = bankid::tls::roots_from_pem(certs.ca_pem.as_bytes(), "ca").unwrap();
    let id = bankid::tls::ClientIdentity::from_pem(
        certs.client_pem.as_bytes(),
        certs.client_key_pem.as_bytes(),
        None,
    )
    .unwrap();
    let tls = bankid::tls::client_config(roots, id).unwrap();
    RpClient::new(
        &env.lab.base_url(),
        tls,
        Duration::from_secs(5),
        Duration::from_secs(5),
        4,
    )
    .unwrap()
}

#[test]
fn error_bodies_with_any_error_code_reach_the_caller_with_their_text() {
    let env = common::sim();
    let client = rp_client(&env);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(config(64));
    runner
        .run(&text(), |code| {
            env.lab
                .inject_fault(Fault::new(FaultKind::UnknownErrorCode, 1).value(&code));
            let got = rt.block_on(client.collect("order"));
            match got {
                Err(RpError::Api {
                    status: 400,
                    code: got,
                    ..
                }) => {
                    prop_assert_eq!(got.as_str(), code.as_str());
                    prop_assert_eq!(
                        matches!(got, ErrorCode::Unknown(ref s) if *s == code),
                        !KNOWN_ERRORS.contains(&code.as_str())
                    );
                }
                other => prop_assert!(false, "{code:?}: {other:?}"),
            }
            Ok(())
        })
        .unwrap();
}
