//! bankid-ivr as an IVR site uses it: `flow check` on the shipped exports and broken ones,
//! `flow run` with the real libbankid.so against bankid-sim over mTLS, and `identify`'s exit
//! statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bankid_sim::{Fault, FaultKind, Scenario, SimConfig, Simulator, Step};

const BIN: &str = env!("CARGO_BIN_EXE_bankid-ivr");

fn flows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ivr-flows")
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bankid-ivr-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// libbankid.so beside the binary; built by `cargo build -p bankid-ivr` (the workspace build).
fn lib() -> PathBuf {
    let p = Path::new(BIN).parent().unwrap().join("libbankid.so");
    if !p.is_file() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "bankid-ivr", "--lib"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    assert!(p.is_file(), "{} missing", p.display());
    p
}

struct Sim {
    sim: Simulator,
    config: PathBuf,
}

fn sim(tag: &str) -> Sim {
    let dir = temp_dir(tag);
    let sim = Simulator::start(SimConfig {
        speed: 0.01,
        certs_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    let config = dir.join("bankid.toml");
    std::fs::write(
        &config,
        format!(
            "url = \"{}\"\nca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"\npoll_interval_ms = 20\norder_timeout_s = 20\n",
            sim.base_url()
        ),
    )
    .unwrap();
    Sim { sim, config }
}

/// `bankid-ivr` with no BANKID_* variable inherited from the test's environment.
fn clean_command() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("BANKID_") {
            c.env_remove(k);
        }
    }
    c
}

fn bankid_ivr(args: &[&str]) -> Output {
    clean_command().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn both(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

fn run_flow(s: &Sim, file: &str, dtmf: &[&str], extra: &[&str]) -> Output {
    let flow = flows().join(file);
    let lib = lib();
    let mut args = vec![
        "flow",
        "run",
        flow.to_str().unwrap(),
        "--lib",
        lib.to_str().unwrap(),
        "--config",
        s.config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push("--dtmf");
    args.extend_from_slice(dtmf);
    bankid_ivr(&args)
}

#[test]
fn every_shipped_flow_passes_flow_check() {
    let files: Vec<PathBuf> = std::fs::read_dir(flows())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    let mut args = vec!["flow", "check"];
    args.extend(files.iter().map(|p| p.to_str().unwrap()));
    let o = bankid_ivr(&args);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(stdout(&o).matches(": ok").count(), files.len());
}

fn check_broken(tag: &str, edit: impl Fn(String) -> String) -> String {
    let original = std::fs::read_to_string(flows().join("bankid-identify.xml")).unwrap();
    let broken = edit(original.clone());
    assert_ne!(broken, original, "{tag}: the edit changed nothing");
    let f = temp_dir(tag).join("broken.xml");
    std::fs::write(&f, broken).unwrap();
    let o = bankid_ivr(&["flow", "check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{tag}: {}", both(&o));
    stdout(&o)
}

#[test]
fn broken_flows_fail_with_the_right_message() {
    // A missing arrow: the Playback "Tekniskt fel" loses its way to the queue.
    let out = check_broken("missing-arrow", |s| {
        s.replace(
            r#"<mxCell id="32" edge="1" parent="1" source="9" target="12" value="">"#,
            r#"<mxCell id="32" parent="1">"#,
        )
    });
    assert!(
        out.contains(r#"block 9 "Tekniskt fel" (Playback): has no outgoing arrow"#),
        "{out}"
    );
    // A dangling target.
    let out = check_broken("dangling", |s| {
        s.replace(r#"source="8" target="12""#, r#"source="8" target="99""#)
    });
    assert!(out.contains(r#"block 8 "Misslyckades" (Playback): arrow 31 points at block 99, which does not exist"#), "{out}");
    // No Start.
    let out = check_broken("no-start", |s| {
        s.replace("<Start ", "<Playback audio=\"x\" ")
            .replace("</Start>", "</Playback>")
    });
    assert!(out.contains("project: has no Start block"), "{out}");
    // A Menu without a timeout exit.
    let out = check_broken("menu-no-t", |s| {
        s.replace(
            r#"source="4" target="11" value="t""#,
            r#"source="4" target="11" value="9""#,
        )
    });
    assert!(
        out.contains(r#"block 4 "Ange personnummer" (Menu): has no 't' (timeout) exit"#),
        "{out}"
    );
    // The bankid request block without its personal-number variable, and a variable read before it is set.
    let out = check_broken("bankid-params", |s| {
        s.replace(r#"pnrVariable="PNR""#, r#"pnrVariable="CALLER_PNR""#)
            .replace(r#"callInitiator="user""#, r#"callInitiator="agent""#)
    });
    assert!(
        out.contains("uses the variable CALLER_PNR, which no block sets"),
        "{out}"
    );
    assert!(out.contains("callInitiator must be user or RP"), "{out}");
    // Not XML at all.
    let out = check_broken("not-xml", |s| s.replace("</root>", "</rot>"));
    assert!(out.contains("not well-formed XML"), "{out}");
}

#[test]
fn flow_run_identifies_the_caller_and_reaches_the_queue() {
    let s = sim("run-ok");
    let o = run_flow(&s, "bankid-entry.xml", &["1", "198503121116"], &[]);
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("call reached queue support"), "{out}");
    assert!(out.contains(r#"__BANKID_RESULT = "Identification successful for social security number 850312-1116""#), "{out}");
    assert!(
        out.contains("bankid-call-confirm"),
        "the prompt followed the state: {out}"
    );
    assert!(
        !out.contains("198503121116"),
        "the whole number is never printed: {out}"
    );
    assert_eq!(s.sim.orders().len(), 1);
}

#[test]
fn flow_run_declined_and_cancelled_calls_fail_to_the_queue() {
    let s = sim("run-fail");
    for (pnr, hint) in [
        ("197709083336", "userDeclinedCall"),
        ("199105212220", "userCancel"),
    ] {
        let o = run_flow(&s, "bankid-identify.xml", &[pnr], &[]);
        let out = both(&o);
        assert!(o.status.success(), "{out}");
        assert!(out.contains(&format!("failed ({hint})")), "{out}");
        assert!(
            out.contains(r#"__BANKID_RESULT = "Identification failed""#),
            "{out}"
        );
        assert!(
            out.contains("bankid-failed") && out.contains("call reached queue support"),
            "{out}"
        );
    }
    let o = run_flow(&s, "bankid-identify.xml", &["197709083336"], &[]);
    assert!(both(&o).contains("SECURITY"), "declined calls are flagged");
}

#[test]
fn flow_run_without_digits_goes_to_the_queue_unidentified() {
    let s = sim("run-none");
    let o = run_flow(&s, "bankid-identify.xml", &["t", "t", "t"], &[]);
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        out.matches("(nothing, timeout)").count(),
        3,
        "initial try + 2 retries: {out}"
    );
    assert!(
        out.contains(r#"__BANKID_RESULT = "Identification failed""#)
            && out.contains("call reached queue"),
        "{out}"
    );
    assert!(s.sim.orders().is_empty());
}

#[test]
fn flow_run_reprompts_a_wrong_check_digit_without_asking_bankid() {
    let s = sim("run-bad");
    let o = run_flow(
        &s,
        "bankid-identify.xml",
        &["198503121117", "198503121116"],
        &[],
    );
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("nothing sent to BankID") && out.contains("check digit"),
        "{out}"
    );
    assert!(out.contains("bankid-invalid-pnr"), "re-prompted: {out}");
    assert!(out.contains("Identification successful"), "{out}");
    assert_eq!(
        s.sim.orders().len(),
        1,
        "only the good number reached BankID"
    );
}

#[test]
fn flow_run_hangup_mid_order_cancels_it_at_bankid() {
    let s = sim("run-hangup");
    s.sim.set_scenario(
        "198503121116",
        Scenario {
            steps: vec![Step {
                hint_code: "userCallConfirm".into(),
                ms: 3_000_000,
            }],
            outcome: "complete".into(),
        },
    );
    let o = run_flow(
        &s,
        "bankid-identify.xml",
        &["198503121116"],
        &["--hangup-after-ms", "300"],
    );
    let out = both(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("caller hung up"), "{out}");
    let mut cancelled = false;
    for _ in 0..100 {
        cancelled = s.sim.orders().iter().any(|o| o.cancelled_by_rp);
        if cancelled {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(cancelled, "{:?}", s.sim.orders());
}

#[test]
fn the_system_block_variant_runs_bankid_ivr_identify() {
    let s = sim("run-system");
    let flow = flows().join("bankid-identify-system.xml");
    let lib = lib();
    let mut c = Command::new(BIN);
    c.args([
        "flow",
        "run",
        flow.to_str().unwrap(),
        "--lib",
        lib.to_str().unwrap(),
        "--config",
        s.config.to_str().unwrap(),
        "--dtmf",
        "198503121116",
    ]);
    // The System block's child reads the configuration from the environment.
    c.env("BANKID_URL", s.sim.base_url())
        .env("BANKID_CA_FILE", s.config.parent().unwrap().join("ca.pem"))
        .env(
            "BANKID_CERT_FILE",
            s.config.parent().unwrap().join("client.pem"),
        )
        .env(
            "BANKID_KEY_FILE",
            s.config.parent().unwrap().join("client.key"),
        )
        .env("BANKID_POLL_INTERVAL_MS", "20");
    let o = c.output().unwrap();
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(r#"__BANKID_RESULT = "Identification successful for social security number 850312-1116""#), "{out}");
}

#[test]
fn identify_exit_statuses_tell_the_outcomes_apart() {
    let s = sim("identify");
    let cfg = s.config.to_str().unwrap();
    let o = bankid_ivr(&["identify", "--config", cfg, "198503121116"]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    assert_eq!(
        stdout(&o),
        "Identification successful for social security number 850312-1116\n",
        "one line, nothing else"
    );

    let o = bankid_ivr(&["identify", "--config", cfg, "19770908-3336"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert_eq!(stdout(&o), "Identification failed\n");

    let o = bankid_ivr(&["identify", "--config", cfg, "198503121117"]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(stdout(&o).is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("check digit"));

    let missing = s.config.with_file_name("nope.toml");
    let o = bankid_ivr(&[
        "identify",
        "--config",
        missing.to_str().unwrap(),
        "198503121116",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.toml"));

    s.sim
        .inject_fault(Fault::new(FaultKind::InternalError, 1).on("phone/auth"));
    let o = bankid_ivr(&["identify", "--config", cfg, "198503121116"]);
    assert_eq!(o.status.code(), Some(3), "{}", both(&o));
    assert_eq!(stdout(&o), "Identification failed\n");
}

#[test]
fn identify_with_nothing_configured_uses_the_embedded_simulator() {
    let o = clean_command()
        .args(["identify", "196801642395"])
        .env("BANKID_SIM_SPEED", "0.02")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("embedded simulator"));
    assert_eq!(
        stdout(&o),
        "Identification successful for social security number 680164-2395\n"
    );
}
