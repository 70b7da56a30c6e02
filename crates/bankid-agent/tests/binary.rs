//! The `bankid-agent` binary as a newcomer runs it: no BankID configured, no accounts file.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Running {
    child: Child,
    url: String,
    stdout: Vec<String>,
}

/// A test that fails before `stop` must not leave the agent server running.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn run_agent(dir: &std::path::Path) -> Running {
    run_agent_with(dir, &[])
}

fn run_agent_with(dir: &std::path::Path, extra: &[&std::ffi::OsStr]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bankid-agent"));
    if !extra.iter().any(|a| *a == "--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .arg("--accounts")
        .arg(dir.join("agents.toml"))
        .args(extra)
        .env_remove("BANKID_PRESET")
        .env_remove("BANKID_URL")
        .env("BANKID_SIM_SPEED", "0.05")
        .env("RUST_LOG", "debug")
        // The embedded simulator's private directory goes here, where the tests can see it.
        .env("TMPDIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bankid-agent runs");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = Vec::new();
    let url = loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("exited early: {stdout:?}\n{err}");
        }
        stdout.push(line.trim_end().to_string());
        if let Some(rest) = line.strip_prefix("open ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    Running { child, url, stdout }
}

fn stop(mut r: Running) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &r.child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    r.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

async fn post(http: &reqwest::Client, url: &str, csrf: &str, body: Value) -> (u16, Value) {
    let origin = url.split("/api").next().unwrap().to_string();
    let r = http
        .post(url)
        .header("Origin", origin)
        .header("X-CSRF-Token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn first_login(run: &Running) -> (String, String) {
    let line = run
        .stdout
        .iter()
        .find(|l| l.contains("password:"))
        .unwrap_or_else(|| panic!("no first account printed: {:?}", run.stdout));
    let word = |after: &str| {
        line.split(after)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    (word("user name: "), word("password: "))
}

/// Logs in with a cookie-keeping client; the session answer (with its CSRF token).
async fn login(http: &reqwest::Client, base: &str, user: &str, password: &str) -> Value {
    http.post(format!("{base}/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls an order as the page does until it is no longer pending (or 20 s have passed).
async fn wait_final(http: &reqwest::Client, base: &str, id: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let o: Value = http
            .get(format!("{base}/api/orders/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if o["state"] != "pending" || Instant::now() > until {
            return o;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_prints_a_login_and_runs_on_the_embedded_simulator_without_logging_numbers() {
    let dir = std::env::temp_dir().join(format!("agent-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = run_agent(&dir);
    let all = run.stdout.join("\n");
    assert!(all.contains("embedded simulator"), "{all}");
    let (user, password) = first_login(&run);
    assert!(password.len() >= 16);

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let base = run.url.clone();
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Identifiera"));
    let session = login(&http, &base, &user, &password).await;
    assert_eq!(session["loggedIn"], true, "{session}");
    assert_eq!(session["simulated"], true);
    let csrf = session["csrf"].as_str().unwrap().to_string();

    let (status, order) = post(
        &http,
        &format!("{base}/api/identify"),
        &csrf,
        json!({"personalNumber": "850312-1116"}),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let done = wait_final(&http, &base, order["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "complete", "{done}");
    assert_eq!(done["person"]["name"], "Anna Lindqvist");
    let (status, _) = post(
        &http,
        &format!("{base}/api/identify"),
        &csrf,
        json!({"personalNumber": "198503121117"}),
    )
    .await;
    assert_eq!(status, 400);
    // Let the housekeeping log the outcome.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let log = stop(run);

    assert!(
        log.contains("850312-XXXX"),
        "masked numbers are logged: {log}"
    );
    assert!(log.contains("complete"), "{log}");
    for whole in [
        "8503121116",
        "850312-1116",
        "198503121116",
        "19850312-1116",
        "8503121117",
    ] {
        assert!(!log.contains(whole), "{whole} in the log:\n{log}");
    }
    assert!(!log.contains(&password), "the password is not logged");

    // A second run keeps the account and creates none.
    let again = run_agent(&dir);
    let all = again.stdout.join("\n");
    assert!(all.contains("agents: 1"), "{all}");
    assert!(!all.contains("password:"));
    stop(again);
    let stored = std::fs::read_to_string(dir.join("agents.toml")).unwrap();
    assert!(stored.contains("$argon2id$") && !stored.contains(&password));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_bankid_configured_it_identifies_through_that_bankid_and_shows_no_simulator() {
    let dir = std::env::temp_dir().join(format!("agent-bin-cfg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A separate BankID (the simulator as a server of its own), reached only through --config.
    let sim = bankid_sim::Lab::start(bankid_sim::SimConfig {
        speed: 0.05,
        ..Default::default()
    })
    .unwrap();
    let config = sim.write_client_toml("").unwrap();
    let run = run_agent_with(&dir, &["--config".as_ref(), config.as_os_str()]);
    let all = run.stdout.join("\n");
    assert!(
        all.contains(&format!("BankID: {}", sim.base_url())),
        "{all}"
    );
    assert!(!all.contains("simulat"), "{all}");
    let (user, password) = first_login(&run);

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let base = run.url.clone();
    let session = login(&http, &base, &user, &password).await;
    assert_eq!(session["loggedIn"], true, "{session}");
    assert_eq!(session["simulated"], false, "no banner: {session}");
    assert!(session["testPersons"].is_null(), "{session}");
    let csrf = session["csrf"].as_str().unwrap().to_string();

    let (status, order) = post(
        &http,
        &format!("{base}/api/identify"),
        &csrf,
        json!({"personalNumber": "19850312-1116", "callInitiator": "RP"}),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let done = wait_final(&http, &base, order["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "complete", "{done}");
    assert_eq!(done["person"]["name"], "Anna Lindqvist");
    stop(run);

    // The order was made at the configured BankID, as a phone order started by us.
    let orders = sim.orders();
    assert_eq!(orders.len(), 1, "{orders:?}");
    let o = &orders[0];
    assert_eq!(
        serde_json::to_value(o.endpoint).unwrap(),
        json!("phone/auth")
    );
    assert_eq!(o.personal_number_masked.as_deref(), Some("850312-XXXX"));
    assert_eq!(o.call_initiator.as_deref(), Some("RP"));
    assert_eq!(o.status, "complete");
    assert!(o.final_collected);
    sim.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_broken_accounts_file_stops_the_start_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("agent-bin-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("agents.toml"),
        "[[agent]]\nname = \"x\"\npassword_hash = \"plain\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
        .args(["--listen", "127.0.0.1:0", "--accounts"])
        .arg(dir.join("agents.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agents.toml") && err.contains("PHC"), "{err}");
    let add = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
        .args(["--accounts"])
        .arg(dir.join("new.toml"))
        .args(["add-agent", "lisa"])
        .output()
        .unwrap();
    assert!(add.status.success());
    let said = String::from_utf8_lossy(&add.stdout);
    let pw = said.split("password ").nth(1).unwrap().trim();
    let acc = bankid_agent::accounts::Accounts::load(&dir.join("new.toml")).unwrap();
    assert_eq!(acc.verify("lisa", pw).as_deref(), Some("lisa"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The embedded simulator's directories in `dir` (its TMPDIR).
fn simulator_dirs(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("bankid-sim-"))
        })
        .count()
}

#[test]
fn on_a_non_loopback_address_the_simulator_runs_only_when_asked() {
    let dir = std::env::temp_dir().join(format!("agent-bin-any-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
        .args(["--listen", "0.0.0.0:0", "--accounts"])
        .arg(dir.join("agents.toml"))
        .env_remove("BANKID_PRESET")
        .env_remove("BANKID_URL")
        .env_remove("BANKID_SIMULATOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0.0.0.0:0") && err.contains("not a loopback address"),
        "{err}"
    );
    for setting in ["--config", "BANKID_PRESET", "BANKID_URL", "--simulator"] {
        assert!(err.contains(setting), "{setting} not named: {err}");
    }
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("open http"),
        "never served"
    );
    // Asked for: it runs, and the banner says so.
    let run = run_agent_with(
        &dir,
        &[
            "--listen".as_ref(),
            "0.0.0.0:0".as_ref(),
            "--simulator".as_ref(),
        ],
    );
    assert!(
        run.stdout.join("\n").contains("embedded simulator"),
        "{:?}",
        run.stdout
    );
    assert_eq!(
        simulator_dirs(&dir),
        1,
        "the simulator's directory while running"
    );
    stop(run);
    assert_eq!(simulator_dirs(&dir), 0, "removed on SIGTERM");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_pending_orders_at_bankid() {
    let dir = std::env::temp_dir().join(format!("agent-bin-term-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sim = bankid_sim::Lab::start(bankid_sim::SimConfig {
        speed: 0.05,
        ..Default::default()
    })
    .unwrap();
    let config = sim.write_client_toml("poll_interval_ms = 50").unwrap();
    // Pending until cancelled: the caller never confirms.
    sim.set_scenario(
        "198503121116",
        bankid_sim::Scenario {
            steps: vec![bankid_sim::Step {
                hint_code: "userCallConfirm".into(),
                ms: 10_000_000,
            }],
            outcome: "complete".into(),
        },
    );
    let run = run_agent_with(&dir, &["--config".as_ref(), config.as_os_str()]);
    let (user, password) = first_login(&run);
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let base = run.url.clone();
    let session = login(&http, &base, &user, &password).await;
    let csrf = session["csrf"].as_str().unwrap().to_string();
    let (status, order) = post(
        &http,
        &format!("{base}/api/identify"),
        &csrf,
        json!({"personalNumber": "198503121116"}),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let until = Instant::now() + Duration::from_secs(10);
    while !sim.orders().iter().any(|o| o.status == "pending") {
        assert!(Instant::now() < until, "no order at BankID");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    stop(run);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        started.elapsed()
    );
    let orders = sim.orders();
    assert_eq!(orders.len(), 1);
    assert!(
        orders[0].cancelled_by_rp,
        "pending at BankID after SIGTERM: {orders:?}"
    );
    sim.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sends `signal` (e.g. "-HUP") to the agent server.
fn signal(r: &Running, signal: &str) {
    let st = Command::new("kill")
        .args([signal, &r.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_bankid_and_the_accounts_without_logging_anyone_out() {
    let dir = std::env::temp_dir().join(format!("agent-bin-hup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Two BankIDs with different CAs and client certificates: the renewal moves from the first
    // to the second.
    let first = bankid_sim::Lab::start(bankid_sim::SimConfig {
        speed: 0.05,
        ..Default::default()
    })
    .unwrap();
    let second = bankid_sim::Lab::start(bankid_sim::SimConfig {
        speed: 0.05,
        ..Default::default()
    })
    .unwrap();
    let config = dir.join("bankid.toml");
    // Records in the test's directory, never in a real state directory.
    let absolute = |lab: &bankid_sim::Lab| {
        format!(
            "url = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             audit_database = \"{}\"\naudit_spool_dir = \"{}\"\naudit_key_file = \"{}\"\n",
            lab.base_url(),
            lab.ca_file().display(),
            lab.cert_file().display(),
            lab.key_file().display(),
            dir.join("audit.db").display(),
            dir.join("audit-spool").display(),
            dir.join("audit.key").display(),
        )
    };
    std::fs::write(&config, absolute(&first)).unwrap();
    // `--accounts` after the subcommand, as an operator types it.
    let out = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
        .arg("add-agent")
        .arg("anna")
        .arg("--accounts")
        .arg(dir.join("agents.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let anna_password = String::from_utf8_lossy(&out.stdout)
        .rsplit("password ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    // bob's logins before the reload fail: let them not hit the failed-login limit.
    let run = run_agent_with(
        &dir,
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "--login-limit".as_ref(),
            "1000/15m".as_ref(),
            "--login-address-limit".as_ref(),
            "1000/15m".as_ref(),
        ],
    );
    let base = run.url.clone();
    let anna = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let session = login(&anna, &base, "anna", &anna_password).await;
    assert_eq!(session["loggedIn"], true, "{session}");
    let csrf = session["csrf"].as_str().unwrap().to_string();
    // Pending at the first BankID for 7 s (its orders live 9 s) while the certificate is
    // renewed.
    first.set_scenario(
        "198503121116",
        bankid_sim::Scenario {
            steps: vec![bankid_sim::Step {
                hint_code: "userCallConfirm".into(),
                ms: 140_000,
            }],
            outcome: "complete".into(),
        },
    );
    let (status, running) = post(
        &anna,
        &format!("{base}/api/identify"),
        &csrf,
        json!({"personalNumber": "198503121116"}),
    )
    .await;
    assert_eq!(status, 201, "{running}");

    // bob is added while the page runs; SIGHUP also takes the renewed configuration.
    let out = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
        .args(["add-agent", "bob", "--accounts"])
        .arg(dir.join("agents.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bob_password = String::from_utf8_lossy(&out.stdout)
        .rsplit("password ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    let bob = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let refused = login(&bob, &base, "bob", &bob_password).await;
    assert_ne!(
        refused["loggedIn"], true,
        "not before the reload: {refused}"
    );
    std::fs::write(&config, absolute(&second)).unwrap();
    signal(&run, "-HUP");
    let until = Instant::now() + Duration::from_secs(10);
    let bob_session = loop {
        let s = login(&bob, &base, "bob", &bob_password).await;
        if s["loggedIn"] == true || Instant::now() > until {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(bob_session["loggedIn"], true, "{bob_session}");
    assert_eq!(
        first.orders()[0].status,
        "pending",
        "anna's order runs across the reload"
    );

    // anna is still logged in; her order finishes at the first BankID.
    let done = wait_final(&anna, &base, running["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "complete", "{done}");
    // A new identification goes to the second one.
    let bob_csrf = bob_session["csrf"].as_str().unwrap().to_string();
    let (status, fresh) = post(
        &bob,
        &format!("{base}/api/identify"),
        &bob_csrf,
        json!({"personalNumber": "199908072391"}),
    )
    .await;
    assert_eq!(status, 201, "{fresh}");
    let done = wait_final(&bob, &base, fresh["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "complete", "{done}");
    let masked = |lab: &bankid_sim::Lab| {
        lab.orders()
            .iter()
            .filter_map(|o| o.personal_number_masked.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(masked(&first), vec!["850312-XXXX".to_string()]);
    assert_eq!(masked(&second), vec!["990807-XXXX".to_string()]);

    // anna's password is reset (a compromised account): her session ends at the next SIGHUP,
    // bob's does not.
    let out = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
        .args(["add-agent", "anna", "--accounts"])
        .arg(dir.join("agents.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    signal(&run, "-HUP");
    let logged_in = |http: &reqwest::Client| {
        let http = http.clone();
        let url = format!("{base}/api/session");
        async move {
            let s: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            s["loggedIn"] == true
        }
    };
    let until = Instant::now() + Duration::from_secs(10);
    while logged_in(&anna).await && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!logged_in(&anna).await, "anna's session ended");
    assert!(logged_in(&bob).await, "bob stays logged in");
    let err = stop(run);
    assert!(err.contains("BankID configuration reloaded"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_base_path_trusted_block_or_frame_ancestor_stops_the_start_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("agent-bin-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (flag, value, said) in [
        ("--base-path", "/bankid/", "no trailing /"),
        ("--base-path", "bankid", "starts with /"),
        ("--base-path", "/bank id", "letters, digits"),
        ("--trust-proxy", "10.0.0.1/8", "bits set beyond the prefix"),
        ("--trust-proxy", "proxy.example/32", "not an IP address"),
        (
            "--frame-ancestors",
            "http://desktop.example.com",
            "https origin",
        ),
        ("--frame-ancestors", "*", "https origin"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
            .args(["--listen", "127.0.0.1:0", "--accounts"])
            .arg(dir.join("agents.toml"))
            .args([flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(flag) && err.contains(said),
            "{flag} {value}: {err}"
        );
    }
    assert!(
        !dir.join("agents.toml").exists(),
        "refused before anything was created"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_agents_logged_in_and_a_supervisor_added_by_add_agent_sees_the_view() {
    let dir = std::env::temp_dir().join(format!("agent-bin-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = run_agent(&dir);
    let all = run.stdout.join("\n");
    let db = dir.join("audit-sim.db");
    assert!(
        all.contains(&format!(
            "records, sessions and agent actions: sqlite:{}",
            db.display()
        )),
        "the simulator's records go beside the accounts file: {all}"
    );
    let (user, password) = first_login(&run);
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let session = login(&http, &run.url, &user, &password).await;
    assert_eq!(session["loggedIn"], true, "{session}");
    assert_eq!(session["role"], "agent");
    let csrf = session["csrf"].as_str().unwrap().to_string();
    stop(run);
    assert!(db.is_file());

    // The same browser after the restart: still logged in, with the same CSRF token.
    let again = run_agent(&dir);
    let base = again.url.clone();
    let s: Value = http
        .get(format!("{base}/api/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["loggedIn"], true, "{s}");
    assert_eq!(s["csrf"], csrf.as_str());
    let (status, order) = post(
        &http,
        &format!("{base}/api/identify"),
        &csrf,
        json!({"personalNumber": "198503121116"}),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let done = wait_final(&http, &base, order["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "complete", "{done}");
    // The agent page is no place for the supervisor view.
    let refused = http.get(format!("{base}/supervisor")).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);

    // A supervisor, added while the page runs and taken in at SIGHUP.
    let out = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
        .args(["add-agent", "--supervisor", "sara", "--accounts"])
        .arg(dir.join("agents.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.starts_with("supervisor \"sara\""), "{said}");
    let sara_password = said.rsplit("password ").next().unwrap().trim().to_string();
    let stored = std::fs::read_to_string(dir.join("agents.toml")).unwrap();
    assert!(stored.contains("role = \"supervisor\""), "{stored}");
    signal(&again, "-HUP");
    let sara = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = login(&sara, &base, "sara", &sara_password).await;
        if s["loggedIn"] == true || Instant::now() > until {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(s["role"], "supervisor", "{s}");
    let page = sara.get(format!("{base}/supervisor")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("supervisor.js"));
    // The agent was not logged out by the reload.
    let s: Value = http
        .get(format!("{base}/api/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["loggedIn"], true, "{s}");
    let log = stop(again);
    for whole in ["8503121116", "198503121116"] {
        assert!(!log.contains(whole), "{whole} in the log");
    }
    assert!(!log.contains(&sara_password));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_password_reset_or_a_demotion_and_a_restart_the_old_sessions_are_refused() {
    let dir = std::env::temp_dir().join(format!("agent-bin-revoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let accounts = dir.join("agents.toml");
    let add = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
            .arg("add-agent")
            .args(args)
            .arg("--accounts")
            .arg(&accounts)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        said.rsplit("password ").next().unwrap().trim().to_string()
    };
    let anna_password = add(&["anna"]);
    let sara_password = add(&["--supervisor", "sara"]);
    let client = || {
        reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap()
    };
    let (anna, sara) = (client(), client());
    let run = run_agent(&dir);
    assert_eq!(
        login(&anna, &run.url, "anna", &anna_password).await["loggedIn"],
        true
    );
    let s = login(&sara, &run.url, "sara", &sara_password).await;
    assert_eq!(s["role"], "supervisor", "{s}");
    let page = sara
        .get(format!("{}/supervisor", run.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    stop(run);

    // While it is down: anna's password reset (compromised), sara demoted. No SIGHUP.
    let new_password = add(&["anna"]);
    add(&["sara"]);
    let again = run_agent(&dir);
    let base = again.url.clone();
    let session = |c: &reqwest::Client| {
        let url = format!("{base}/api/session");
        let c = c.clone();
        async move {
            let s: Value = c.get(url).send().await.unwrap().json().await.unwrap();
            s
        }
    };
    let r = anna
        .get(format!("{base}/api/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(session(&anna).await["loggedIn"], false);
    let (status, body) = post(
        &anna,
        &format!("{base}/api/identify"),
        "any",
        json!({"personalNumber": "198503121116"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("not_logged_in"))
    );
    let refused = sara.get(format!("{base}/supervisor")).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401, "the demoted supervisor");
    let refused = sara
        .get(format!("{base}/api/supervisor/stats?range=24h"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(session(&sara).await["loggedIn"], false);
    // The new password works; the old one does not.
    assert_eq!(
        login(&anna, &base, "anna", &anna_password).await["loggedIn"],
        Value::Null
    );
    assert_eq!(
        login(&anna, &base, "anna", &new_password).await["loggedIn"],
        true
    );
    // A personal number typed as the name is not logged whole.
    login(&sara, &base, "19850312-1116", "x").await;
    let log = stop(again);
    assert!(log.contains("account was removed or changed"), "{log}");
    for whole in ["8503121116", "850312-1116"] {
        assert!(!log.contains(whole), "{whole} in the log: {log}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_that_moves_audit_database_is_refused_and_the_running_configuration_stays() {
    let dir = std::env::temp_dir().join(format!("agent-bin-hup-db-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lab = bankid_sim::Lab::start(bankid_sim::SimConfig {
        speed: 0.05,
        ..Default::default()
    })
    .unwrap();
    let config = dir.join("bankid.toml");
    let with_db = |db: &str| {
        format!(
            "url = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             audit_database = \"{}\"\naudit_spool_dir = \"{}\"\naudit_key_file = \"{}\"\n",
            lab.base_url(),
            lab.ca_file().display(),
            lab.cert_file().display(),
            lab.key_file().display(),
            dir.join(db).display(),
            dir.join("audit-spool").display(),
            dir.join("audit.key").display(),
        )
    };
    std::fs::write(&config, with_db("first.db")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bankid-agent"))
        .args(["add-agent", "anna", "--accounts"])
        .arg(dir.join("agents.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let password = String::from_utf8_lossy(&out.stdout)
        .rsplit("password ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    let run = run_agent_with(&dir, &["--config".as_ref(), config.as_os_str()]);
    let base = run.url.clone();
    let anna = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let session = login(&anna, &base, "anna", &password).await;
    let csrf = session["csrf"].as_str().unwrap().to_string();
    std::fs::write(&config, with_db("second.db")).unwrap();
    signal(&run, "-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Still one database: the engine's records and the page's own rows in first.db.
    let (status, order) = post(
        &anna,
        &format!("{base}/api/identify"),
        &csrf,
        json!({"personalNumber": "198503121116"}),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let done = wait_final(&anna, &base, order["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "complete", "{done}");
    let log = stop(run);
    assert!(
        log.contains("SIGHUP: BankID configuration not reloaded")
            && log.contains("audit_database changed from sqlite:")
            && log.contains("second.db"),
        "{log}"
    );
    assert!(
        !dir.join("second.db").exists(),
        "nothing written to the new one"
    );
    assert!(dir.join("first.db").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}
