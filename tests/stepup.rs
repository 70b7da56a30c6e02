//! Signing and step-up (security code, ID-document check, shown text) through the engine,
//! against bankid-sim over real mutual TLS.

mod common;

use std::time::Duration;

use bankid::messages::Language;
use bankid::order::{Engine, Error, Mode, StartOptions, State};
use bankid::rp::{HintCode, StepUp, VisibleDataFormat};
use bankid::Personnummer;

const ANNA: &str = "198503121116";
/// The simulator's test person whose ID-document check fails.
const JONAS: &str = "197904128886";

fn pnr(s: &str) -> Personnummer {
    Personnummer::parse(s).unwrap()
}

fn run(engine: &Engine, who: &str, opts: StartOptions) -> bankid::OrderView {
    let id = engine.start(&pnr(who), opts).unwrap();
    let v = engine.wait(id, Duration::from_secs(15)).unwrap();
    assert!(v.state.is_final(), "still pending: {v:?}");
    v
}

/// The simulator's row for the newest order, as JSON.
fn last_row(env: &common::Env) -> serde_json::Value {
    serde_json::to_value(
        env.lab
            .orders()
            .pop()
            .expect("an order reached the simulator"),
    )
    .unwrap()
}

#[test]
fn a_signing_goes_to_phone_sign_and_returns_the_approved_text() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let text = "Godkänn **adressändring** till Storgatan 1";
    let v = run(
        &engine,
        ANNA,
        StartOptions {
            mode: Mode::Sign,
            user_visible_data: Some(text.into()),
            user_visible_data_format: Some(VisibleDataFormat::SimpleMarkdownV1),
            user_non_visible_data: Some("case 4711".into()),
            ..Default::default()
        },
    );
    assert_eq!(v.state, State::Complete, "{v:?}");
    assert_eq!(v.mode, Mode::Sign);
    assert_eq!(v.signed_text.as_deref(), Some(text));
    assert_eq!(v.step_up, StepUp::default());
    let row = last_row(&env);
    assert_eq!(row["endpoint"], "phone/sign");
    assert_eq!(row["mode"], "sign");
    assert_eq!(row["userVisibleDataChars"], text.chars().count());
    assert_eq!(row["userVisibleDataFormat"], "simpleMarkdownV1");
    assert_eq!(row["userNonVisibleData"], true);
    // BankID signed exactly what we sent.
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&v.completion.unwrap().signature)
        .unwrap();
    assert!(String::from_utf8(sig).unwrap().contains(text));
}

#[test]
fn an_identification_shows_its_text_and_signs_nothing() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let v = run(
        &engine,
        ANNA,
        StartOptions {
            user_visible_data: Some("Identifiering för ditt samtal, ärende 4711".into()),
            ..Default::default()
        },
    );
    assert_eq!(v.state, State::Complete);
    assert_eq!((v.mode, v.signed_text), (Mode::Identify, None));
    let row = last_row(&env);
    assert_eq!(
        (row["endpoint"].as_str(), row["userVisibleData"].as_bool()),
        (Some("phone/auth"), Some(true))
    );
}

#[test]
fn the_id_document_check_and_the_security_code_are_reported() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let id = engine
        .start(
            &pnr(ANNA),
            StartOptions::default()
                .require_id_document()
                .require_pin_code(),
        )
        .unwrap();
    let mut hints = vec![];
    let v = loop {
        let v = engine.poll(id).unwrap();
        if v.state.is_final() {
            break v;
        }
        if let Some(h) = v.hint_code.clone() {
            if hints.last() != Some(&h) {
                hints.push(h);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(v.state, State::Complete, "{v:?}");
    assert!(hints.contains(&HintCode::UserMrtd), "{hints:?}");
    assert!(hints.contains(&HintCode::UserSign), "{hints:?}");
    assert_eq!(v.step_up, StepUp { mrtd: true });
    assert!(v.pin_code_required);
    assert_eq!(
        last_row(&env)["requirement"],
        serde_json::json!({"pinCode": true, "mrtd": true})
    );
    // Without the requirement, no step-up is reported.
    let plain = run(&engine, ANNA, StartOptions::default());
    assert_eq!(
        (plain.step_up, plain.pin_code_required),
        (StepUp::default(), false)
    );
}

#[test]
fn a_failed_id_document_check_fails_the_order_with_its_own_texts() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let v = run(
        &engine,
        JONAS,
        StartOptions::default().require_id_document(),
    );
    assert_eq!(v.state, State::Failed);
    assert_eq!(v.hint_code, Some(HintCode::MrtdVerificationFailed));
    let g = v.guidance();
    assert!(g.caller.text(Language::En).contains("ID document"), "{g:?}");
    assert!(g.agent.sv.contains("ID-handling"), "{g:?}");
    assert_eq!(v.step_up, StepUp::default());
    // The same person without the check is identified.
    assert_eq!(
        run(&engine, JONAS, StartOptions::default()).state,
        State::Complete
    );
}

#[test]
fn bad_options_are_refused_here_and_never_reach_bankid() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let refuse = |opts: StartOptions, want: &str| match engine.start(&pnr(ANNA), opts) {
        Err(Error::InvalidArgument(e)) => assert!(e.contains(want), "{e}"),
        other => panic!("{want}: {other:?}"),
    };
    refuse(
        StartOptions {
            mode: Mode::Sign,
            ..Default::default()
        },
        "userVisibleData",
    );
    refuse(
        StartOptions {
            user_visible_data: Some("x".repeat(1126)),
            ..Default::default()
        },
        "1 to 1500",
    );
    refuse(
        StartOptions {
            mode: Mode::Sign,
            user_visible_data: Some("x".repeat(30_001)),
            ..Default::default()
        },
        "1 to 40000",
    );
    let secret = "hemlig-".repeat(300);
    match engine.start(
        &pnr(ANNA),
        StartOptions {
            user_non_visible_data: Some(secret.clone()),
            ..Default::default()
        },
    ) {
        Err(Error::InvalidArgument(e)) => {
            assert!(
                e.contains("userNonVisibleData") && !e.contains("hemlig"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    refuse(
        StartOptions {
            user_visible_data: Some(String::new()),
            ..Default::default()
        },
        "1 to 1500",
    );
    refuse(
        StartOptions {
            user_visible_data_format: Some(VisibleDataFormat::SimpleMarkdownV1),
            ..Default::default()
        },
        "without userVisibleData",
    );
    assert!(env.lab.orders().is_empty());
    // The largest text BankID takes for signing is sent.
    let v = run(
        &engine,
        ANNA,
        StartOptions {
            mode: Mode::Sign,
            user_visible_data: Some("x".repeat(30_000)),
            user_non_visible_data: Some("y".repeat(150_000)),
            ..Default::default()
        },
    );
    assert_eq!(v.state, State::Complete, "{v:?}");
}
