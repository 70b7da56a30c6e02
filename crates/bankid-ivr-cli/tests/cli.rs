//! bankid-ivr as an IVR site uses it: `flow check` on the shipped exports and broken ones,
//! `flow run` with the real libbankid.so against bankid-sim over mTLS, and `identify`'s exit
//! statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bankid_sim::{Fault, FaultKind, Lab, Scenario, SimConfig, Simulator, Step};

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

/// A simulator (certificates in a private directory) and a client configuration for it.
struct Sim {
    sim: Lab,
    config: PathBuf,
}

fn sim() -> Sim {
    let sim = Lab::start(SimConfig {
        speed: 0.01,
        ..Default::default()
    })
    .unwrap();
    let config = sim
        .write_client_toml("poll_interval_ms = 20\norder_timeout_s = 20")
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
    let s = sim();
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
    let s = sim();
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
    let s = sim();
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
    let s = sim();
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
    let s = sim();
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
    let s = sim();
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
        .env("BANKID_POLL_INTERVAL_MS", "20")
        // Its records in the lab's directory too, never in a real state directory.
        .env("BANKID_AUDIT_DATABASE", s.sim.audit_db_file())
        .env("BANKID_AUDIT_SPOOL_DIR", s.sim.audit_spool_dir())
        .env("BANKID_AUDIT_KEY_FILE", s.sim.audit_key_file());
    let o = c.output().unwrap();
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(r#"__BANKID_RESULT = "Identification successful for social security number 850312-1116""#), "{out}");
}

#[test]
fn identify_exit_statuses_tell_the_outcomes_apart() {
    let s = sim();
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

/// `bankid-ivr` with nothing inherited but PATH, as a System block or a systemd unit that lost
/// its BANKID_* variables runs it.
fn bare_command(tmp: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TMPDIR", tmp);
    c
}

fn assert_names_the_settings(err: &str) {
    for setting in [
        "--config",
        "BANKID_PRESET",
        "BANKID_URL",
        "--simulator",
        "BANKID_SIMULATOR=1",
    ] {
        assert!(err.contains(setting), "{setting} not named: {err}");
    }
}

#[test]
fn identify_with_nothing_configured_refuses_with_exit_2_and_names_the_settings() {
    let tmp = temp_dir("bare-identify");
    let o = bare_command(&tmp)
        .args(["identify", "197103151515"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(stdout(&o).is_empty(), "no result text: {}", both(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no BankID configured"), "{err}");
    assert_names_the_settings(&err);
    // An unclear BANKID_SIMULATOR is no permission either.
    let o = bare_command(&tmp)
        .args(["identify", "197103151515"])
        .env("BANKID_SIMULATOR", "maybe")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(stdout(&o).is_empty());
}

#[test]
fn fastagi_with_nothing_configured_refuses_with_exit_2_and_names_the_settings() {
    let tmp = temp_dir("bare-fastagi");
    let mut child = bare_command(&tmp)
        .args(["fastagi", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("fastagi serves with nothing configured: {}", both(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(!stdout(&o).contains("listening"), "{}", both(&o));
    assert_names_the_settings(&String::from_utf8_lossy(&o.stderr));
}

#[test]
fn identify_uses_the_embedded_simulator_only_when_asked_and_removes_its_directory() {
    let tmp = temp_dir("asked");
    for how in ["flag", "env"] {
        let mut c = bare_command(&tmp);
        c.env("BANKID_SIM_SPEED", "0.02");
        match how {
            "flag" => c.args(["identify", "--simulator", "196801642395"]),
            _ => c
                .env("BANKID_SIMULATOR", "1")
                .args(["identify", "196801642395"]),
        };
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{how}: {}", both(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("embedded simulator"),
            "{how}: {}",
            both(&o)
        );
        assert_eq!(
            stdout(&o),
            "Identification successful for social security number 680164-2395\n"
        );
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{how}: left behind {left:?}");
    }
    // Asking for the simulator while BankID is configured is a mistake, not a choice.
    let s = sim();
    let o = bare_command(&tmp)
        .args(["identify", "--simulator", "--config"])
        .arg(&s.config)
        .arg("196801642395")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(s.sim.orders().is_empty());
}

/// Waits until the simulator holds a pending order, then returns its reference.
fn wait_pending(sim: &Simulator) -> String {
    for _ in 0..500 {
        if let Some(o) = sim.orders().into_iter().find(|o| o.status == "pending") {
            return o.order_ref;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no pending order: {:?}", sim.orders());
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn identify_killed_by_the_ivr_cancels_its_order_at_bankid() {
    let s = sim();
    // Orders that stay pending until cancelled.
    let numbers = ["198503121116", "196801642395", "199105212220"];
    for n in numbers {
        s.sim.set_scenario(
            n,
            Scenario {
                steps: vec![Step {
                    hint_code: "userCallConfirm".into(),
                    ms: 3_000_000,
                }],
                outcome: "complete".into(),
            },
        );
    }
    for (signal, pnr) in ["HUP", "TERM", "INT"].into_iter().zip(numbers) {
        let mut child = clean_command()
            .args(["identify", "--config", s.config.to_str().unwrap(), pnr])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let order_ref = wait_pending(&s.sim);
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let st = wait_exit(&mut child, Duration::from_secs(5));
        assert_eq!(st.code(), Some(1), "SIG{signal}: failed, not killed");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        assert_eq!(out, "Identification failed\n", "SIG{signal}");
        let o = s
            .sim
            .orders()
            .into_iter()
            .find(|o| o.order_ref == order_ref)
            .unwrap();
        assert!(o.cancelled_by_rp, "SIG{signal}: {o:?}");
    }
}

#[test]
fn the_embedded_simulator_directory_is_private_and_removed_when_identify_is_stopped() {
    let tmp = temp_dir("simdir");
    let mut child = bare_command(&tmp)
        .env("BANKID_SIM_SPEED", "1")
        // The slow test person: 20 s on each step.
        .args(["identify", "--simulator", "197204158880"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut dir = None;
    for _ in 0..500 {
        dir = std::fs::read_dir(&tmp)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.join("client.key").is_file());
        if dir.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let dir = dir.expect("the simulator's directory under TMPDIR");
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        !name.contains(&child.id().to_string()),
        "the name is not guessable from the pid: {name}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{name}");
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let st = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(st.code(), Some(1));
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn flow_run_keeps_the_simulator_default_and_shares_it_with_a_system_block() {
    // A dry run with nothing configured: the embedded simulator, also for the System block's
    // `bankid-ivr identify` child, which on its own would refuse to run unconfigured.
    let tmp = temp_dir("flow-bare");
    let flow = flows().join("bankid-identify-system.xml");
    let lib = lib();
    let o = bare_command(&tmp)
        .env("BANKID_SIM_SPEED", "0.02")
        .args(["flow", "run", flow.to_str().unwrap(), "--lib"])
        .arg(&lib)
        .args(["--dtmf", "198503121116"])
        .output()
        .unwrap();
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("embedded simulator"), "{out}");
    assert!(out.contains(r#"__BANKID_RESULT = "Identification successful for social security number 850312-1116""#), "{out}");
}

#[test]
fn fastagi_with_the_simulator_asked_removes_its_directory_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let tmp = temp_dir(&format!("fastagi-simdir-{signal}"));
        let mut child = bare_command(&tmp)
            .args(["fastagi", "--simulator", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut first,
        )
        .unwrap();
        assert!(first.starts_with("listening agi://"), "{first:?}");
        let dirs = || {
            std::fs::read_dir(&tmp)
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("client.key").is_file())
                .count()
        };
        assert_eq!(dirs(), 1, "SIG{signal}: the simulator's directory");
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        let st = wait_exit(&mut child, Duration::from_secs(6));
        assert_eq!(st.code(), Some(0), "SIG{signal}");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "SIG{signal}: left behind {left:?}");
    }
}

#[test]
fn flow_run_signs_the_change_of_address_after_identifying() {
    let s = sim();
    let o = run_flow(&s, "bankid-sign-address.xml", &["198503121116"], &[]);
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("call reached queue support"), "{out}");
    // The notices before the signing, the document step, and the approved text.
    assert!(
        out.contains("bankid-call-notice") && out.contains("pratar med oss"),
        "{out}"
    );
    assert!(out.contains("bankid-sign-notice"), "{out}");
    assert!(out.contains("bankid-have-id-document"), "{out}");
    assert!(
        out.contains("bankid-rfa23"),
        "the userMrtd step was played: {out}"
    );
    assert!(
        out.contains(r#"BANKID_SIGNED_TEXT = "Jag godkänner ändringen av min adress till Storgatan 1, 123 45 Ort.""#),
        "{out}"
    );
    assert!(out.contains(r#"BANKID_ID_DOCUMENT = "checked""#), "{out}");
    assert!(
        out.contains("__BANKID_SIGN_RESULT = \"Identification successful"),
        "{out}"
    );
    assert!(!out.contains("198503121116"), "{out}");
    let rows: Vec<serde_json::Value> = s
        .sim
        .orders()
        .iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["endpoint"], "phone/auth");
    assert_eq!(rows[0]["userVisibleData"], true);
    assert_eq!(rows[1]["endpoint"], "phone/sign");
    assert_eq!(rows[1]["requirement"], serde_json::json!({"mrtd": true}));
    assert_eq!(
        rows[1]["userVisibleDataChars"],
        "Jag godkänner ändringen av min adress till Storgatan 1, 123 45 Ort."
            .chars()
            .count()
    );
}

#[test]
fn flow_run_a_failed_document_check_takes_the_failed_exit() {
    let s = sim();
    // The simulator's person whose ID document check fails.
    let o = run_flow(&s, "bankid-sign-address.xml", &["197904128886"], &[]);
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("failed (mrtdVerificationFailed)"), "{out}");
    assert!(out.contains("ID-handling misslyckades"), "{out}");
    assert!(!out.contains("BANKID_SIGNED_TEXT"), "{out}");
}

#[path = "../../../tests/support/audit_db.rs"]
mod audit_db;

/// A simulator whose client configuration records in PostgreSQL at `pg` (with a key file made
/// for it), or with `None` in the lab's own SQLite file; the database and the key.
fn sim_recording(pg: Option<&str>) -> (Sim, bankid::audit::Database, bankid::audit::PseudonymKey) {
    let sim = Lab::start(SimConfig {
        speed: 0.01,
        ..Default::default()
    })
    .unwrap();
    let (database, key_file, extra) = match pg {
        None => (
            bankid::audit::Database::Sqlite(sim.audit_db_file()),
            sim.audit_key_file(),
            String::new(),
        ),
        Some(url) => {
            let key = sim.dir().join("shared.key");
            let extra = format!(
                "audit_database = \"{url}\"\naudit_key_file = \"{}\"\n",
                key.display()
            );
            (bankid::audit::Database::Postgres(url.into()), key, extra)
        }
    };
    let key = bankid::audit::PseudonymKey::load_or_create(&key_file).unwrap();
    let config = sim
        .write_client_toml(&format!(
            "poll_interval_ms = 20\norder_timeout_s = 20\n{extra}"
        ))
        .unwrap();
    (Sim { sim, config }, database, key)
}

/// `identify` with a call id, twice (complete, then declined): two records naming identify.
fn identify_is_recorded(pg: Option<&str>) {
    let (s, database, key) = sim_recording(pg);
    let cfg = s.config.to_str().unwrap();
    let o = bankid_ivr(&[
        "identify",
        "--config",
        cfg,
        "--call-id",
        "cs-4711",
        "198503121116",
    ]);
    assert!(o.status.success(), "{}", both(&o));
    let o = bankid_ivr(&["identify", "--config", cfg, "19770908-3336"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let settings = bankid::Config::from_file(&s.config).unwrap().audit;
    assert_eq!(settings.database.as_ref(), Some(&database));
    let rows = audit_db::settle(&settings, 2);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|r| r.channel == "identify"), "{rows:#?}");
    let ok = rows.iter().find(|r| r.state == "complete").unwrap();
    assert_eq!(ok.call_id.as_deref(), Some("cs-4711"));
    assert_eq!(
        ok.pnr_pseudonym,
        key.pseudonym(&bankid::Personnummer::parse("198503121116").unwrap())
    );
    let order_ref = ok.order_ref.clone().unwrap();
    let kept: serde_json::Value =
        serde_json::from_str(ok.completion_data.as_deref().unwrap()).unwrap();
    assert_eq!(Some(kept), s.sim.completion_sent(&order_ref));
    let declined = rows.iter().find(|r| r.state == "failed").unwrap();
    assert_eq!(declined.hint_code.as_deref(), Some("userDeclinedCall"));
    assert_eq!(declined.pnr_masked, "770908-XXXX");
    assert_eq!(declined.call_id, None);
    let refs: Vec<String> = s.sim.orders().into_iter().map(|o| o.order_ref).collect();
    assert!(rows
        .iter()
        .all(|r| refs.contains(r.order_ref.as_ref().unwrap())));
}

#[test]
fn identify_records_each_order_in_sqlite() {
    identify_is_recorded(None);
}

#[test]
fn identify_records_each_order_in_postgresql() {
    let pg = bankid_sim::testdb::TestDb::new();
    identify_is_recorded(Some(pg.url()));
}

#[test]
fn identify_refuses_a_call_id_it_cannot_keep() {
    let (s, database, _) = sim_recording(None);
    let long = "x".repeat(200);
    let o = bankid_ivr(&[
        "identify",
        "--config",
        s.config.to_str().unwrap(),
        "--call-id",
        &long,
        "198503121116",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(both(&o).contains("--call-id"), "{}", both(&o));
    assert!(s.sim.orders().is_empty());
    assert!(!matches!(&database, bankid::audit::Database::Sqlite(f) if f.exists()));
}

/// `flow run` through libbankid.so: the record names flow-run.
fn flow_run_is_recorded(pg: Option<&str>) {
    let (s, database, key) = sim_recording(pg);
    let o = run_flow(&s, "bankid-entry.xml", &["1", "198503121116"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let settings = bankid::Config::from_file(&s.config).unwrap().audit;
    assert_eq!(settings.database.as_ref(), Some(&database));
    let rows = audit_db::settle(&settings, 1);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(r.channel, "flow-run");
    assert_eq!(r.state, "complete");
    assert_eq!(r.order_ref.as_ref(), Some(&s.sim.orders()[0].order_ref));
    assert_eq!(
        r.pnr_pseudonym,
        key.pseudonym(&bankid::Personnummer::parse("198503121116").unwrap())
    );
    let kept: serde_json::Value =
        serde_json::from_str(r.completion_data.as_deref().unwrap()).unwrap();
    assert_eq!(
        Some(kept),
        s.sim.completion_sent(r.order_ref.as_deref().unwrap())
    );
}

#[test]
fn flow_run_records_its_orders_in_sqlite() {
    flow_run_is_recorded(None);
}

#[test]
fn flow_run_records_its_orders_in_postgresql() {
    let pg = bankid_sim::testdb::TestDb::new();
    flow_run_is_recorded(Some(pg.url()));
}
