//! The order engine against bankid-sim over real mutual TLS: outcomes, order rules, faults,
//! cancellation, the local deadline and TLS misconfiguration.

mod common;

use std::time::{Duration, Instant};

use bankid::config::Identity;
use bankid::order::{Engine, OrderError, OrderView, StartOptions, State};
use bankid::rp::CallInitiator;
use bankid::rp::HintCode;
use bankid::Personnummer;
use bankid_sim::{Fault, FaultKind, Scenario, Step};

/// The order's error as `bankid_hint_code` spells it (`internalError`, `http-403`, `deadline`).
fn error_of(v: &OrderView) -> Option<String> {
    v.error.as_ref().map(OrderError::to_string)
}

fn pnr(s: &str) -> Personnummer {
    Personnummer::parse(s).unwrap()
}

fn wait_final(engine: &Engine, id: u64) -> bankid::OrderView {
    let v = engine.wait(id, Duration::from_secs(15)).unwrap();
    assert!(v.state.is_final(), "order still pending after 15 s: {v:?}");
    v
}

/// Waits until BankID has given the order its orderRef (the start call answered).
fn wait_started(engine: &Engine, id: u64) {
    let t = Instant::now();
    while engine.poll(id).unwrap().order_ref.is_none() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (up to 5 s) until the simulator has seen an order cancelled by the RP.
fn wait_cancelled_at_bankid(env: &common::Env) -> bool {
    let t = Instant::now();
    while !env.lab.orders().iter().any(|o| o.cancelled_by_rp)
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    env.lab.orders().iter().any(|o| o.cancelled_by_rp)
}

/// A scenario that stays pending for `secs` of real time (simulator at speed 0.01).
fn slow(secs: u64) -> Scenario {
    Scenario {
        steps: vec![Step {
            hint_code: "outstandingTransaction".into(),
            ms: secs * 100_000,
        }],
        outcome: "complete".into(),
    }
}

#[test]
fn a_test_person_is_identified_with_the_agents_result_text() {
    let env = common::sim();
    // Steps of 0.3 s, so each hint is seen even on a loaded machine.
    env.lab.set_scenario(
        "198503121116",
        Scenario {
            steps: ["outstandingTransaction", "userCallConfirm", "userSign"]
                .map(|h| Step {
                    hint_code: h.into(),
                    ms: 30_000,
                })
                .to_vec(),
            outcome: "complete".into(),
        },
    );
    let engine = Engine::new(env.config()).unwrap();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    assert_eq!(
        engine.state(id).unwrap(),
        State::Pending,
        "start returns before BankID answers"
    );
    let mut hints = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.state(id).unwrap() == State::Pending && Instant::now() < deadline {
        if let Some(h) = engine.poll(id).unwrap().hint_code {
            if hints.last() != Some(&h) {
                hints.push(h);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let v = engine.poll(id).unwrap();
    assert_eq!(v.state, State::Complete);
    assert_eq!(
        v.result_text,
        "Identification successful for social security number 850312-1116"
    );
    let user = v.completion.unwrap().user;
    assert_eq!(
        (user.given_name.as_str(), user.surname.as_str()),
        ("Anna", "Lindqvist")
    );
    assert!(
        hints.contains(&HintCode::UserCallConfirm),
        "saw the phone hints: {hints:?}"
    );
    let orders = env.lab.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].call_initiator.as_deref(), Some("user"));
    // Collects were spaced by the poll interval, not hammering.
    let c = &orders[0].collects_ms;
    assert!(
        c.windows(2).all(|w| w[1] - w[0] >= 15),
        "collect spacing {c:?}"
    );
}

#[test]
fn each_failure_outcome_is_reported_with_its_hint_and_message() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let cases = [
        ("199105212220", "userCancel", "RFA6"),
        ("197709083336", "userDeclinedCall", "BIVR-CALL-DECLINED"),
        ("196601014449", "expiredTransaction", "RFA8"),
        ("200002295558", "certificateErr", "RFA16"),
        ("198811116667", "startFailed", "RFA17A"),
        ("199506307777", "notSupportedByUserApp", "BIVR-APP-TOO-OLD"),
        (
            "199307079195",
            "transactionRiskBlocked",
            "BIVR-RISK-BLOCKED",
        ),
    ];
    let ids: Vec<_> = cases
        .iter()
        .map(|(p, _, _)| engine.start(&pnr(p), StartOptions::default()).unwrap())
        .collect();
    for (id, (p, hint, rfa)) in ids.into_iter().zip(cases) {
        let v = wait_final(&engine, id);
        assert_eq!(v.state, State::Failed, "{p}");
        assert_eq!(
            v.hint_code.as_ref().map(HintCode::as_str),
            Some(hint),
            "{p}"
        );
        assert_eq!(v.message.id, rfa, "{p}");
        assert_eq!(v.result_text, "Identification failed");
    }
}

#[test]
fn call_initiator_rp_reaches_bankid() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let opts = StartOptions {
        call_initiator: Some(CallInitiator::Rp),
        ..Default::default()
    };
    let id = engine.start(&pnr("196801642395"), opts).unwrap();
    assert_eq!(wait_final(&engine, id).state, State::Complete);
    assert_eq!(env.lab.orders()[0].call_initiator.as_deref(), Some("RP"));
}

#[test]
fn a_second_order_for_the_same_person_aborts_both() {
    let env = common::sim();
    env.lab.set_scenario("198503121116", slow(5));
    let engine = Engine::new(env.config()).unwrap();
    let first = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    wait_started(&engine, first);
    let second = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    let v2 = wait_final(&engine, second);
    assert_eq!(
        (v2.state, error_of(&v2).as_deref()),
        (State::Error, Some("alreadyInProgress"))
    );
    assert_eq!(v2.message.id, "RFA4");
    let v1 = wait_final(&engine, first);
    assert_eq!(
        (v1.state, v1.hint_code.as_ref().map(HintCode::as_str)),
        (State::Failed, Some("cancelled"))
    );
    assert_eq!(v1.message.id, "RFA3");
}

#[test]
fn maintenance_and_rate_limits_are_retried_to_success() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    env.lab
        .inject_fault(Fault::new(FaultKind::Maintenance, 1).on("phone/auth"));
    env.lab
        .inject_fault(Fault::new(FaultKind::TooManyRequests, 1).on("collect"));
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    let v = wait_final(&engine, id);
    assert_eq!(v.state, State::Complete, "{v:?}");
    assert_eq!(
        env.lab.orders().len(),
        1,
        "the start was retried only because nothing was created"
    );
}

#[test]
fn errors_on_start_are_final_and_not_retried() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    for (kind, code) in [
        (FaultKind::InternalError, "internalError"),
        (FaultKind::RequestTimeout, "requestTimeout"),
        (FaultKind::Html403, "http-403"),
    ] {
        env.lab.inject_fault(Fault::new(kind, 1).on("phone/auth"));
        let id = engine
            .start(&pnr("198503121116"), StartOptions::default())
            .unwrap();
        let v = wait_final(&engine, id);
        assert_eq!(
            (v.state, error_of(&v).as_deref()),
            (State::Error, Some(code))
        );
        assert_eq!(v.result_text, "Identification failed");
        engine.release(id).unwrap();
    }
    assert!(
        env.lab.orders().is_empty(),
        "no order was created by a retry"
    );
}

#[test]
fn collects_without_a_usable_answer_are_retried_on_the_next_tick() {
    let env = common::sim();
    env.lab.set_scenario(
        "198503121116",
        Scenario {
            steps: vec![Step {
                hint_code: "userSign".into(),
                ms: 100_000,
            }],
            outcome: "complete".into(),
        },
    );
    let mut cfg = env.config();
    cfg.request_timeout = Duration::from_millis(300);
    let engine = Engine::new(cfg).unwrap();
    env.lab
        .inject_fault(Fault::new(FaultKind::Drop, 1).on("collect"));
    env.lab
        .inject_fault(Fault::new(FaultKind::MalformedJson, 1).on("collect"));
    env.lab
        .inject_fault(Fault::new(FaultKind::Delay, 1).on("collect").delay(600));
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    let v = wait_final(&engine, id);
    assert_eq!(v.state, State::Complete, "{v:?}");
}

#[test]
fn releasing_a_pending_order_cancels_it_at_bankid() {
    let env = common::sim();
    env.lab.set_scenario("198503121116", slow(10));
    let engine = Engine::new(env.config()).unwrap();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    wait_started(&engine, id);
    engine.release(id).unwrap();
    assert_eq!(
        engine.poll(id).unwrap_err(),
        bankid::order::Error::StaleHandle
    );
    assert!(wait_cancelled_at_bankid(&env), "{:?}", env.lab.orders());
}

#[test]
fn cancel_turns_the_order_failed_at_once() {
    let env = common::sim();
    env.lab.set_scenario("198503121116", slow(10));
    let engine = Engine::new(env.config()).unwrap();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    engine.cancel(id).unwrap();
    let v = engine.poll(id).unwrap();
    assert_eq!(
        (v.state, error_of(&v).as_deref()),
        (State::Failed, Some("cancelledByHost"))
    );
    assert_eq!(v.message.id, "RFA6");
}

#[test]
fn the_local_deadline_ends_an_order_bankid_never_finishes() {
    let env = common::sim();
    env.lab.set_scenario("198503121116", slow(60));
    let mut cfg = env.config();
    cfg.order_timeout = Duration::from_millis(800);
    let engine = Engine::new(cfg).unwrap();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    let v = wait_final(&engine, id);
    assert_eq!(
        (v.state, error_of(&v).as_deref()),
        (State::Error, Some("deadline"))
    );
    assert!(
        wait_cancelled_at_bankid(&env),
        "the abandoned order was cancelled at BankID"
    );
}

#[test]
fn a_silent_bankid_still_reaches_a_final_state() {
    let env = common::sim();
    let mut cfg = env.config();
    cfg.order_timeout = Duration::from_millis(700);
    cfg.request_timeout = Duration::from_secs(5);
    let engine = Engine::new(cfg).unwrap();
    env.lab
        .inject_fault(Fault::new(FaultKind::Delay, 1).on("phone/auth").delay(3000));
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    let v = engine.wait(id, Duration::from_secs(2)).unwrap();
    assert_eq!(
        (v.state, error_of(&v).as_deref()),
        (State::Error, Some("deadline"))
    );
}

#[test]
fn every_identity_shape_the_simulator_writes_works() {
    let env = common::sim();
    let d = &env.dir();
    let identities = [
        Identity::Pem {
            cert_file: d.join("client.pem"),
            key_file: d.join("client.key"),
            key_password: None,
        },
        Identity::Pem {
            cert_file: d.join("client.pem"),
            key_file: d.join("client-encrypted.key"),
            key_password: Some("qwerty123".into()),
        },
        Identity::Pkcs12 {
            file: d.join("client.p12"),
            password: "qwerty123".into(),
        },
        Identity::Pkcs12 {
            file: d.join("client-legacy.p12"),
            password: "qwerty123".into(),
        },
    ];
    for (i, identity) in identities.into_iter().enumerate() {
        let engine = Engine::new(env.config_with(identity)).unwrap();
        let p = [
            "198503121116",
            "196801642395",
            "199908072391",
            "198503121116",
        ][i];
        let id = engine.start(&pnr(p), StartOptions::default()).unwrap();
        assert_eq!(
            wait_final(&engine, id).state,
            State::Complete,
            "identity #{i}"
        );
    }
}

#[test]
fn tls_misconfiguration_is_named_or_refused() {
    let env = common::sim();
    let d = &env.dir();
    // Wrong PKCS#12 password: a configuration error naming the setting.
    let e = Engine::new(env.config_with(Identity::Pkcs12 {
        file: d.join("client.p12"),
        password: "nope".into(),
    }))
    .unwrap_err();
    assert!(e.to_string().contains("wrong p12_password"), "{e}");
    // Encrypted key without or with a wrong password.
    let e = Engine::new(env.config_with(Identity::Pem {
        cert_file: d.join("client.pem"),
        key_file: d.join("client-encrypted.key"),
        key_password: None,
    }))
    .unwrap_err();
    assert!(e.to_string().contains("is encrypted"), "{e}");
    let e = Engine::new(env.config_with(Identity::Pem {
        cert_file: d.join("client.pem"),
        key_file: d.join("client-encrypted.key"),
        key_password: Some("wrong".into()),
    }))
    .unwrap_err();
    assert!(e.to_string().contains("wrong key_password"), "{e}");
    // Missing certificate file: named.
    let e = Engine::new(env.config_with(Identity::Pem {
        cert_file: d.join("missing.pem"),
        key_file: d.join("client.key"),
        key_password: None,
    }))
    .unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");

    // The wrong CA: the server is not trusted, nothing is identified.
    let other = common::sim();
    let mut cfg = env.config();
    cfg.endpoint = bankid::config::Endpoint::Custom {
        url: env.lab.base_url(),
        ca_file: other.dir().join("ca.pem"),
    };
    let engine = Engine::new(cfg).unwrap();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    let v = wait_final(&engine, id);
    assert_eq!(
        (v.state, error_of(&v).as_deref()),
        (State::Error, Some("transport"))
    );

    // A client certificate from another CA: the simulator refuses the handshake.
    let engine = Engine::new(env.config_with(other.pem_identity())).unwrap();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    let v = wait_final(&engine, id);
    assert_eq!(
        (v.state, error_of(&v).as_deref()),
        (State::Error, Some("transport"))
    );
    assert!(env.lab.stats().refused_handshakes >= 1);
    assert!(env.lab.orders().is_empty());
}

#[test]
fn many_orders_share_few_connections() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let ids: Vec<_> = ["198503121116", "196801642395", "199908072391"]
        .iter()
        .map(|p| engine.start(&pnr(p), StartOptions::default()).unwrap())
        .collect();
    for id in ids {
        assert_eq!(wait_final(&engine, id).state, State::Complete);
    }
    let s = env.lab.stats();
    assert!(
        s.handshakes <= 4,
        "handshakes {} for {} requests",
        s.handshakes,
        s.requests
    );
    assert!(s.requests >= 9);
}

#[test]
fn shutting_down_right_after_a_release_still_cancels_at_bankid() {
    let env = common::sim();
    env.lab.set_scenario("198503121116", slow(30));
    env.lab.set_scenario("196801642395", slow(30));
    let engine = Engine::new(env.config()).unwrap();
    let released = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    let pending = engine
        .start(&pnr("196801642395"), StartOptions::default())
        .unwrap();
    wait_started(&engine, released);
    wait_started(&engine, pending);
    engine.release(released).unwrap();
    drop(engine); // the host unloads at once: a caller hung up, another is still pending
    let orders = env.lab.orders();
    assert_eq!(orders.len(), 2);
    assert!(orders.iter().all(|o| o.cancelled_by_rp), "{orders:?}");
}

#[test]
fn results_the_host_never_releases_are_reclaimed_after_their_ttl() {
    let env = common::sim();
    let mut cfg = env.config();
    cfg.result_ttl = Duration::from_millis(200);
    let engine = Engine::new(cfg).unwrap();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    assert_eq!(wait_final(&engine, id).state, State::Complete);
    assert_eq!(engine.len(), 1, "kept until released");
    let t = Instant::now();
    while engine.poll(id).is_ok() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        engine.poll(id).unwrap_err(),
        bankid::order::Error::StaleHandle
    );
    assert!(engine.is_empty());
}

#[test]
fn a_burst_of_starts_shares_a_pool_bounded_by_max_connections() {
    let env = common::sim();
    let mut config = env.config();
    config.max_connections = 4;
    let engine = Engine::new(config).unwrap();
    // 60 callers at once, each with its own (made-up, valid) number born on a different day.
    let ids: Vec<_> = (1..=60)
        .map(|i| {
            let base = format!("1980{:02}{:02}123", 1 + (i - 1) / 28, 1 + (i - 1) % 28);
            let nine: Vec<u32> = base[2..].bytes().map(|b| u32::from(b - b'0')).collect();
            let sum: u32 = nine
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    let p = d * if k % 2 == 0 { 2 } else { 1 };
                    p / 10 + p % 10
                })
                .sum();
            let number = format!("{base}{}", (10 - sum % 10) % 10);
            engine
                .start(&pnr(&number), StartOptions::default())
                .unwrap()
        })
        .collect();
    for id in ids {
        assert_eq!(wait_final(&engine, id).state, State::Complete);
    }
    let s = env.lab.stats();
    // At most 4 requests are ever in flight; a connection still on its way back to the pool
    // when the next request starts can cost an extra one (more of them on a loaded machine:
    // 9 was seen with four builds running), never one per order.
    assert!(
        s.handshakes <= 12,
        "{} handshakes for 60 concurrent starts with max_connections = 4",
        s.handshakes
    );
    assert!(s.requests >= 120);
}

#[test]
fn an_order_that_ends_in_an_error_is_cancelled_at_bankid() {
    for (kind, code) in [
        (FaultKind::InternalError, "internalError"),
        (FaultKind::RequestTimeout, "requestTimeout"),
        (FaultKind::Html403, "http-403"),
    ] {
        let env = common::sim();
        env.lab.set_scenario("198503121116", slow(10));
        let engine = Engine::new(env.config()).unwrap();
        let id = engine
            .start(&pnr("198503121116"), StartOptions::default())
            .unwrap();
        wait_started(&engine, id);
        env.lab.inject_fault(Fault::new(kind, 1).on("collect"));
        let v = wait_final(&engine, id);
        assert_eq!(
            (v.state, error_of(&v).as_deref()),
            (State::Error, Some(code))
        );
        assert!(
            wait_cancelled_at_bankid(&env),
            "{code}: the order was left pending at BankID: {:?}",
            env.lab.orders()
        );
        // So the caller can try again at once instead of tripping alreadyInProgress.
        engine.release(id).unwrap();
        let again = engine
            .start(&pnr("198503121116"), StartOptions::default())
            .unwrap();
        wait_started(&engine, again);
        assert_eq!(engine.poll(again).unwrap().state, State::Pending, "{code}");
    }
}

#[test]
fn a_declined_call_blocks_the_number_until_the_block_expires() {
    let env = common::sim();
    let mut cfg = env.config();
    cfg.limits.declined_block = Duration::from_millis(600);
    let engine = Engine::new(cfg).unwrap();
    let cecilia = pnr("197709083336");
    let id = engine.start(&cecilia, StartOptions::default()).unwrap();
    let v = wait_final(&engine, id);
    assert_eq!(
        v.hint_code.as_ref().map(HintCode::as_str),
        Some("userDeclinedCall")
    );
    let refused = engine.start(&cecilia, StartOptions::default()).unwrap_err();
    assert!(
        matches!(
            refused,
            bankid::order::Error::Refused(bankid::order::Refusal::DeclinedRecently { .. })
        ),
        "{refused:?}"
    );
    assert_eq!(env.lab.orders().len(), 1, "nothing reached BankID");
    engine
        .start(&pnr("198503121116"), StartOptions::default())
        .expect("other numbers are not affected");
    std::thread::sleep(Duration::from_millis(700));
    engine
        .start(&cecilia, StartOptions::default())
        .expect("the block expired");
}

#[test]
fn orders_per_number_are_limited_across_callers() {
    let env = common::sim();
    let mut cfg = env.config();
    cfg.limits.per_number = 2;
    let engine = Engine::new(cfg).unwrap();
    let anna = pnr("198503121116");
    for caller in ["0701", "0702"] {
        let id = engine
            .start(
                &anna,
                StartOptions {
                    caller_id: Some(caller.into()),
                    ..Default::default()
                },
            )
            .unwrap();
        wait_final(&engine, id);
    }
    let e = engine
        .start(
            &anna,
            StartOptions {
                caller_id: Some("0703".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("last hour"), "{e}");
    assert_eq!(env.lab.orders().len(), 2);
}

#[test]
fn a_failed_hint_code_bankid_adds_one_day_keeps_its_text_and_gets_the_generic_message() {
    let env = common::sim();
    env.lab.set_scenario(
        "198503121116",
        Scenario {
            steps: vec![Step {
                hint_code: "someFuturePendingHint".into(),
                ms: 1_000,
            }],
            outcome: "someFutureFailedHint".into(),
        },
    );
    let engine = Engine::new(env.config()).unwrap();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    let v = wait_final(&engine, id);
    assert_eq!(v.state, State::Failed);
    assert_eq!(
        v.hint_code,
        Some(HintCode::Unknown("someFutureFailedHint".into()))
    );
    // BankID's rule for an unknown failed code: RFA22 ("Something went wrong").
    assert_eq!(v.message.id, "RFA22");
    assert_eq!(v.result_text, "Identification failed");
    // Failed at BankID: nothing was left for the engine to cancel.
    assert!(env.lab.orders().iter().all(|o| !o.cancelled_by_rp));
}

#[test]
fn a_date_only_bank_id_issue_date_is_kept_as_bankid_sent_it() {
    let env = common::sim();
    for (date, expected) in [(Some("2024-01-15"), "2024-01-15"), (None, "2024-01-15Z")] {
        env.lab.set_issue_date("198503121116", date);
        let engine = Engine::new(env.config()).unwrap();
        let id = engine
            .start(&pnr("198503121116"), StartOptions::default())
            .unwrap();
        let v = wait_final(&engine, id);
        assert_eq!(v.state, State::Complete, "{date:?}");
        assert_eq!(v.completion.unwrap().bank_id_issue_date, expected);
        engine.release(id).unwrap();
    }
}

#[test]
fn a_reload_keeps_the_declined_call_block_and_the_old_orders() {
    let old = common::sim();
    let new = common::sim();
    let engines = bankid::order::Reloadable::new(old.config()).unwrap();
    // 197709083336 declines the call (a simulator test person).
    let declined = engines
        .start(&pnr("197709083336"), StartOptions::default())
        .unwrap();
    let v = engines.wait(declined, Duration::from_secs(15)).unwrap();
    assert_eq!(v.hint_code, Some(HintCode::UserDeclinedCall));
    engines.reload(new.config()).unwrap();
    // Still readable under its id after the reload, then released.
    assert_eq!(engines.poll(declined).unwrap().state, State::Failed);
    engines.release(declined).unwrap();
    assert!(matches!(
        engines.start(&pnr("197709083336"), StartOptions::default()),
        Err(bankid::order::Error::Refused(
            bankid::order::Refusal::DeclinedRecently { .. }
        ))
    ));
    // Other numbers go to the new BankID.
    let id = engines
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    assert_eq!(
        engines.wait(id, Duration::from_secs(15)).unwrap().state,
        State::Complete
    );
    assert_eq!(new.lab.orders().len(), 1);
    assert_eq!(old.lab.orders().len(), 1);
    engines.shutdown();
}

/// The metrics as the Prometheus project's parsers read them, once no order task runs.
fn settled_metrics(engine: &Engine) -> Vec<common::prom::Sample> {
    let t = Instant::now();
    loop {
        let samples = common::parse_metrics(&engine.metrics_text());
        let live = common::sample(&samples, "bankid_orders_in_flight", &[]);
        if live == 0.0 || t.elapsed() > Duration::from_secs(10) {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn metrics_count_exactly_the_orders_that_ran() {
    use common::sample;
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let before = common::parse_metrics(&engine.metrics_text());
    assert_eq!(sample(&before, "bankid_orders_started_total", &[]), 0.0);
    assert_eq!(
        sample(&before, "bankid_last_success_timestamp_seconds", &[]),
        0.0
    );
    assert!(engine.readiness().ready, "{:?}", engine.readiness());

    // One identified, one declined call (Cecilia's scenario), one error on start.
    let ok = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    assert_eq!(wait_final(&engine, ok).state, State::Complete);
    let declined = engine
        .start(&pnr("197709083336"), StartOptions::default())
        .unwrap();
    assert_eq!(wait_final(&engine, declined).state, State::Failed);
    env.lab
        .inject_fault(Fault::new(FaultKind::InternalError, 1).on("phone/auth"));
    let broken = engine
        .start(&pnr("196801642395"), StartOptions::default())
        .unwrap();
    assert_eq!(wait_final(&engine, broken).state, State::Error);
    // A refusal reaches nothing, and is counted on its own.
    assert!(engine
        .start(&pnr("197709083336"), StartOptions::default())
        .is_err());

    let m = settled_metrics(&engine);
    assert_eq!(sample(&m, "bankid_orders_started_total", &[]), 3.0);
    assert_eq!(sample(&m, "bankid_orders_finished_total", &[]), 3.0);
    let finished = |state: &str, hint: Option<&str>, error: &str| {
        let mut labels = vec![("state", state), ("error_code", error)];
        labels.extend(hint.map(|h| ("hint_code", h)));
        sample(&m, "bankid_orders_finished_total", &labels)
    };
    // (A complete order keeps BankID's last pending hint, whichever step the app reported.)
    assert_eq!(finished("complete", None, "none"), 1.0, "{m:?}");
    assert_eq!(
        finished("failed", Some("userDeclinedCall"), "none"),
        1.0,
        "{m:?}"
    );
    assert_eq!(
        finished("error", Some("none"), "internalError"),
        1.0,
        "{m:?}"
    );
    assert_eq!(sample(&m, "bankid_declined_calls_total", &[]), 1.0);
    assert_eq!(
        sample(
            &m,
            "bankid_refusals_total",
            &[("reason", "declinedRecently")]
        ),
        1.0
    );
    assert_eq!(sample(&m, "bankid_orders_in_flight", &[]), 0.0);
    let requests = |endpoint, outcome| {
        sample(
            &m,
            "bankid_request_duration_seconds_count",
            &[("endpoint", endpoint), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("phone/auth", "ok"), 2.0);
    assert_eq!(requests("phone/auth", "internalError"), 1.0);
    let collects = env
        .lab
        .orders()
        .iter()
        .map(|o| o.collects_ms.len())
        .sum::<usize>();
    assert_eq!(requests("collect", "ok"), collects as f64);
    assert_eq!(sample(&m, "bankid_retries_total", &[]), 0.0);
    // Every connection the pool opened is one handshake the simulator completed.
    let opened = sample(&m, "bankid_tls_connections_opened_total", &[]);
    assert!(opened >= 1.0);
    assert_eq!(opened, env.lab.stats().handshakes as f64);
    let expiry = sample(
        &m,
        "bankid_client_certificate_expiry_timestamp_seconds",
        &[],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    assert!(expiry > now, "the lab's certificate is valid: {expiry}");
    let validity = engine.certificate_validity().unwrap();
    assert_eq!(validity.not_after as f64, expiry);
    assert!(sample(&m, "bankid_last_success_timestamp_seconds", &[]) >= now - 60.0);
    // The last request (the start that got internalError) failed: not ready.
    let r = engine.readiness();
    assert!(!r.ready && r.reason.contains("internalError"), "{r:?}");
    // No personal number in any form, anywhere in the text.
    let text = engine.metrics_text();
    for digits in [
        "198503121116",
        "8503121116",
        "850312",
        "197709083336",
        "196801642395",
    ] {
        assert!(!text.contains(digits), "{digits} in the metrics");
    }
}

#[test]
fn retries_and_an_unreachable_bankid_show_in_metrics_and_readiness() {
    use common::sample;
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    env.lab
        .inject_fault(Fault::new(FaultKind::Maintenance, 1).on("phone/auth"));
    env.lab
        .inject_fault(Fault::new(FaultKind::Html503, 1).on("collect"));
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    assert_eq!(wait_final(&engine, id).state, State::Complete);
    let m = settled_metrics(&engine);
    assert_eq!(
        sample(&m, "bankid_retries_total", &[("phase", "start")]),
        1.0
    );
    assert_eq!(
        sample(&m, "bankid_retries_total", &[("phase", "collect")]),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "bankid_request_duration_seconds_count",
            &[("endpoint", "collect"), ("outcome", "http-503")]
        ),
        1.0
    );
    assert!(engine.readiness().ready, "{:?}", engine.readiness());
    // BankID gone: the next order's start finds nobody, and readiness says so.
    env.lab.shutdown();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    assert_eq!(wait_final(&engine, id).state, State::Error);
    let r = engine.readiness();
    assert!(!r.ready && r.reason.contains("phone/auth"), "{r:?}");
    let m = settled_metrics(&engine);
    assert_eq!(
        sample(
            &m,
            "bankid_orders_finished_total",
            &[("state", "error"), ("error_code", "transport")]
        ),
        1.0
    );
}

#[test]
fn the_grafana_dashboard_is_json_and_queries_only_metrics_the_engine_exposes() {
    let env = common::sim();
    let engine = Engine::new(env.config()).unwrap();
    let id = engine
        .start(&pnr("198503121116"), StartOptions::default())
        .unwrap();
    wait_final(&engine, id);
    let text = engine.metrics_text();
    let mut known: std::collections::BTreeSet<String> = common::parse_metrics(&text)
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    // A family without samples yet (no refusal so far) still has its names.
    for (family, kind) in common::families(&text) {
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for s in suffixes {
            known.insert(format!("{family}{s}"));
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana-bankid.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("valid JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 7, "{} panels", panels.len());
    let mut queried = std::collections::BTreeSet::new();
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("bankid_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                assert!(
                    known.contains(&name),
                    "panel {:?} queries {name}, which the exposition does not have: {known:?}",
                    p["title"]
                );
                queried.insert(name);
            }
        }
    }
    for wanted in [
        "bankid_orders_finished_total",
        "bankid_declined_calls_total",
        "bankid_request_duration_seconds_bucket",
        "bankid_orders_in_flight",
        "bankid_client_certificate_expiry_timestamp_seconds",
        "bankid_retries_total",
    ] {
        assert!(queried.contains(wanted), "no panel shows {wanted}");
    }
}
