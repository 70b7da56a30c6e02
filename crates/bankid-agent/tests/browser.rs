//! A real headless Chromium (Debian `chromium` + `chromium-driver`, driven over the W3C
//! WebDriver protocol) uses the agent page against bankid-sim. Screenshots of every state go to
//! `test-artifacts/`; the supervisor view's also to `docs/supervisor.png` (the README's).
//!
//! The supervisor test runs a real `bankid-ivr fastagi` beside the page: it is the workspace's
//! binary in this target directory (`cargo test` at the workspace root builds it; with
//! `-p bankid-agent` alone, `cargo build --workspace` first).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::browser::{processes_using, Browser};
use common::{agi, Records};
use serde_json::{json, Value};
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_logs_in_and_identifies_callers_in_a_real_browser() {
    // Half speed: a phone order takes about 4 s, so every step can be watched.
    let h = common::start(0.5, |_| {}).await;
    let b = Browser::start().await;
    b.goto(&format!("{}/", h.base)).await;

    // Simulated BankID says so, with the test persons.
    b.wait_visible("#login-view").await;
    assert!(b.visible("#sim-banner").await);
    assert!(b.text("#sim-banner").await.contains("Simulerat BankID"));
    assert!(b.text("#persons").await.contains("Anna Lindqvist"));
    assert_eq!(b.text("#backend").await, "simulator");
    b.screenshot("agent-1-login.png").await;

    // A wrong password, then the right one.
    b.type_into("#username", "anna").await;
    b.type_into("#password", "fel").await;
    b.click("#login-button").await;
    b.wait_visible("#login-error").await;
    assert_eq!(
        b.text("#login-error").await,
        "Fel användarnamn eller lösenord."
    );
    b.type_into("#password", common::PASSWORD_A).await;
    b.click("#login-button").await;
    b.wait_visible("#identify-view").await;
    assert!(b.text("#who").await.contains("anna"));
    assert_eq!(b.text("#identify").await, "Identifiera");

    // Validation as the agent types.
    b.type_into("#pnr", "19850312111").await;
    assert_eq!(
        b.js(
            "return document.getElementById('pnr-hint').dataset.code",
            json!([])
        )
        .await,
        "typing"
    );
    b.type_into("#pnr", "198503121117").await;
    assert_eq!(
        b.js(
            "return document.getElementById('pnr-hint').dataset.code",
            json!([])
        )
        .await,
        "bad_check_digit"
    );
    assert!(b.text("#pnr-hint").await.contains("Kontrollsiffran"));
    assert_eq!(
        b.js(
            "return document.getElementById('pnr').getAttribute('aria-invalid')",
            json!([])
        )
        .await,
        "true"
    );
    b.click("#identify").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.sim.orders().is_empty(), "an invalid number is not sent");
    b.type_into("#pnr", "8503a").await;
    assert_eq!(
        b.js(
            "return document.getElementById('pnr-hint').dataset.code",
            json!([])
        )
        .await,
        "bad_character"
    );
    b.screenshot("agent-2-invalid-number.png").await;

    // The page's checks agree with the server's on every kind of input.
    let cases = [
        "198503121116",
        "8503121116",
        "850312-1116",
        "19850312-1116",
        "850312+1116",
        "196801642395",
        "6801642395",
        "20000229-0005",
        "19000229-0004",
        "000229-0005",
        "",
        "  ",
        "12345",
        "1985031211160",
        "85031a1116",
        "85-0312-1116",
        "19850312+1116",
        "19851332-1116",
        "19850230-1116",
        "19850312-1117",
        "20991231-1231",
        "991231-1231",
        "151231+1236",
        "17990101-0009",
    ];
    let js = b
        .js(
            "return arguments[0].map(s => { const v = window.bankidAgent.validatePnr(s, [2026, 11, 25]); return v.ok ? 'ok:' + v.digits : v.code; });",
            json!([cases]),
        )
        .await;
    for (i, case) in cases.iter().enumerate() {
        let rust = match bankid::personnummer::Personnummer::parse_at(case, (2026, 11, 25)) {
            Ok(p) => format!("ok:{}", p.as_str12()),
            Err(e) => e.code().to_string(),
        };
        assert_eq!(js[i], rust.as_str(), "page and server disagree on {case:?}");
    }

    // A test person from the banner identifies; every pending step is shown.
    b.click("#persons tbody tr:nth-child(1) .use-person").await;
    assert_eq!(
        b.js("return document.getElementById('pnr').value", json!([]))
            .await,
        "19850312-1116"
    );
    assert_eq!(
        b.js(
            "return document.querySelector('input[name=initiator]:checked').value",
            json!([])
        )
        .await,
        "user",
        "\"Kunden ringde oss\" is the default"
    );
    b.click("#identify").await;
    b.wait_visible("#status").await;
    b.wait_visible("#status[data-step=confirm]").await;
    assert_eq!(
        b.text("#status-caller").await,
        "Bekräfta i BankID-appen att du pratar med oss."
    );
    assert!(b.text("#status-agent").await.contains("bekräftar"));
    assert!(b.text("#status-pnr").await.contains("850312-XXXX"));
    assert!(b.visible("#cancel").await);
    b.screenshot("agent-3-pending.png").await;
    b.wait_visible("#status[data-step=code]").await;
    assert!(b.text("#status-caller").await.contains("säkerhetskod"));
    b.wait_visible("#result[data-state=complete]").await;
    assert_eq!(b.text("#result-title").await, "Identifierad");
    assert_eq!(b.text("#person-name").await, "Anna Lindqvist");
    assert_eq!(b.text("#person-pnr").await, "19850312-1116");
    assert!(!b.text("#person-time").await.is_empty());
    assert!(!b.visible("#fraud").await);
    assert!(!b.visible("#retry").await);
    b.screenshot("agent-4-identified.png").await;

    // A new caller starts clean.
    b.click("#new-caller").await;
    b.wait_visible("#identify-form").await;
    assert!(!b.visible("#result").await);
    assert_eq!(
        b.js("return document.getElementById('pnr').value", json!([]))
            .await,
        ""
    );

    // We called Cecilia; she declines the call: flagged as possible fraud.
    b.type_into("#pnr", "197709083336").await;
    b.click("input[name=initiator][value=RP]").await;
    b.click("#identify").await;
    b.wait_visible("#result[data-state=failed]").await;
    assert!(b.visible("#fraud").await);
    assert_eq!(b.text("#fraud").await, "Varning: möjligt bedrägeriförsök");
    assert!(b
        .text("#result-agent")
        .await
        .starts_with("Möjligt bedrägeriförsök"));
    assert!(!b.visible("#person").await);
    assert!(b.visible("#retry").await);
    assert_eq!(b.text("#retry").await, "Försök igen");
    b.screenshot("agent-5-declined.png").await;
    let cecilia =
        |o: &&bankid_sim::OrderInfo| o.personal_number_masked.as_deref() == Some("770908-XXXX");
    let orders = h.sim.orders();
    let first = orders.iter().find(cecilia).expect("order at BankID");
    assert_eq!(first.call_initiator.as_deref(), Some("RP"));

    // "Försök igen" for a number that just declined the call: refused before BankID, and the
    // agent is told why (anti-vishing block).
    b.click("#retry").await;
    b.wait_visible("#identify-error").await;
    let refusal = b.text("#identify-error").await;
    assert!(
        refusal.contains("nekade nyss ett BankID-samtal") && refusal.contains("15 min"),
        "{refusal}"
    );
    b.screenshot("agent-5b-declined-blocked.png").await;
    assert_eq!(h.sim.orders().iter().filter(cecilia).count(), 1);

    // A slow caller; the agent cancels. (After the refusal the form is still open.)
    assert!(b.visible("#identify-form").await);
    b.type_into("#pnr", "720415-8880").await;
    b.click("#identify").await;
    b.wait_visible("#status").await;
    b.click("#cancel").await;
    b.wait_visible("#result[data-state=failed]").await;
    assert_eq!(b.text("#result-agent").await, "Du avbröt identifieringen.");
    assert!(!b.visible("#fraud").await);
    b.screenshot("agent-6-cancelled.png").await;
    let until = Instant::now() + Duration::from_secs(10);
    while !h.sim.orders().iter().any(|o| o.cancelled_by_rp) {
        assert!(Instant::now() < until, "the cancel reached BankID");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // English.
    b.click("#lang").await;
    assert_eq!(
        b.text("#result-agent").await,
        "You cancelled the identification."
    );
    assert_eq!(b.text("#result-title").await, "Not identified");
    assert_eq!(b.text("#lang").await, "Svenska");
    assert_eq!(
        b.js("return document.documentElement.lang", json!([]))
            .await,
        "en"
    );
    b.screenshot("agent-7-english.png").await;
    b.click("#lang").await;

    // Nothing personal in the address bar, ever.
    let url = b.cmd(reqwest::Method::GET, "/url", None).await;
    assert_eq!(url, json!(format!("{}/", h.base)));

    // Log out.
    b.click("#logout").await;
    b.wait_visible("#login-view").await;
    assert!(!b.visible("#identify-view").await);
    let s: Value = h.client().get("/api/session").await.body;
    assert_eq!(s["loggedIn"], false);

    // Nothing this test started outlives it: the session is ended, the group is gone, and no
    // process runs with this test's browser profile (three runs used to leave three trees).
    let profile = b.profile.clone();
    let group = b.driver.child.id() as libc::pid_t;
    drop(b);
    // Killed processes may linger a moment as zombies until they are reaped.
    // SAFETY: signal 0 only asks whether any process of the group still exists.
    let group_alive = || unsafe { libc::kill(-group, 0) } == 0;
    let until = Instant::now() + Duration::from_secs(5);
    while (group_alive() || !processes_using(&profile).is_empty()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!group_alive(), "chromedriver's process group is gone");
    assert_eq!(processes_using(&profile), Vec::<libc::pid_t>::new());
    assert!(!profile.exists(), "profile removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_asks_for_the_id_document_check_and_has_a_text_signed_in_a_real_browser() {
    let h = common::start(0.3, |_| {}).await;
    let b = Browser::start().await;
    b.goto(&format!("{}/", h.base)).await;
    b.wait_visible("#login-view").await;
    b.type_into("#username", "anna").await;
    b.type_into("#password", common::PASSWORD_A).await;
    b.click("#login-button").await;
    b.wait_visible("#identify-view").await;

    // Identification with "Extra kontroll med ID-handling": the document step is shown, and
    // the result says the document was checked.
    assert_eq!(
        b.text("#require-iddoc + span").await,
        "Extra kontroll med ID-handling"
    );
    assert_eq!(b.text("#require-pin + span").await, "Kräv säkerhetskod");
    assert!(!b.visible("#iddoc-hint").await);
    b.type_into("#pnr", "198503121116").await;
    b.click("#require-iddoc").await;
    assert!(b.visible("#iddoc-hint").await);
    assert!(b.text("#iddoc-hint").await.contains("pass"));
    b.type_into("#visible-text", "Samtal med kundtjänst").await;
    b.click("#identify").await;
    b.wait_visible("#status[data-step=document]").await;
    assert!(b.text("#status-caller").await.contains("ID-handling"));
    b.screenshot("agent-8-id-document.png").await;
    b.wait_visible("#result[data-state=complete]").await;
    assert_eq!(b.text("#result-title").await, "Identifierad");
    assert_eq!(
        b.js(
            "return document.getElementById('checks').dataset.idDocument",
            json!([])
        )
        .await,
        "checked"
    );
    assert!(
        b.text("#checks").await.contains("ID-handling kontrollerad"),
        "{}",
        b.text("#checks").await
    );
    assert!(!b.visible("#signed").await);
    let row = serde_json::to_value(h.sim.orders().pop().unwrap()).unwrap();
    assert_eq!(row["requirement"], json!({"mrtd": true}));
    assert_eq!(row["userVisibleData"], true);
    b.screenshot("agent-9-id-document-checked.png").await;

    // Sign: the agent writes the text; without one the page asks for it.
    b.click("#new-caller").await;
    b.wait_visible("#identify-form").await;
    b.type_into("#pnr", "196801642395").await;
    b.click("input[name=mode][value=sign]").await;
    assert_eq!(b.text("#identify").await, "Skicka för underskrift");
    assert_eq!(
        b.text("#visible-text-label").await,
        "Text som kunden godkänner"
    );
    b.click("#identify").await;
    b.wait_visible("#identify-error").await;
    assert_eq!(
        b.text("#identify-error").await,
        "Skriv texten som kunden ska godkänna."
    );
    assert!(h.sim.orders().len() == 1, "nothing sent without a text");
    let text = "Jag godkänner ändringen av min adress till Storgatan 1.";
    b.type_into("#visible-text", text).await;
    b.click("#require-pin").await;
    b.click("#identify").await;
    b.wait_visible("#status").await;
    b.wait_visible("#result[data-state=complete]").await;
    assert_eq!(b.text("#result-title").await, "Texten är godkänd");
    assert!(b.visible("#signed").await);
    assert_eq!(b.text("#signed-text").await, text);
    assert!(b.text("#checks").await.contains("säkerhetskod krävdes"));
    b.screenshot("agent-10-signed.png").await;
    let row = serde_json::to_value(h.sim.orders().pop().unwrap()).unwrap();
    assert_eq!(row["endpoint"], "phone/sign");
    assert_eq!(row["requirement"], json!({"pinCode": true}));
    // English follows.
    b.click("#lang").await;
    assert_eq!(b.text("#result-title").await, "Text approved");
    assert!(b.text("#checks").await.contains("security code required"));
}

/// `bankid-ivr fastagi` in front of the harness's simulator, recording into the harness's
/// audit database with the same pseudonym key (its own spool). Killed on drop.
struct Fastagi {
    child: Child,
    addr: String,
}

impl Drop for Fastagi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fastagi {
    fn start(h: &common::Harness) -> Fastagi {
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .unwrap()
            .join("bankid-ivr");
        assert!(
            bin.is_file(),
            "{} is missing: `cargo build --workspace` first",
            bin.display()
        );
        // The lab's configuration puts the records in its audit.db with its audit.key: the
        // harness's own.
        let spool = h.sim.dir().join("fastagi-spool");
        let config = h
            .sim
            .write_client_toml(&format!(
                "poll_interval_ms = 50\naudit_spool_dir = {:?}\n",
                spool.display().to_string()
            ))
            .unwrap();
        let mut child = Command::new(&bin)
            .args(["fastagi", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .env_remove("BANKID_PRESET")
            .env_remove("BANKID_URL")
            .env_remove("BANKID_SIMULATOR")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .trim()
            .strip_prefix("listening agi://")
            .and_then(|s| s.strip_suffix("/bankid-identify"))
            .unwrap_or_else(|| panic!("fastagi said {first:?}"))
            .to_string();
        Fastagi { child, addr }
    }
}

/// Waits for a finished download in `dir` whose name starts with `prefix`.
async fn downloaded(dir: &Path, prefix: &str) -> PathBuf {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(prefix) && !name.ends_with(".crdownload")
            });
        if let Some(p) = found {
            return p;
        }
        assert!(
            Instant::now() < until,
            "no download {prefix}* in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs in on the agent page in the browser.
async fn log_in(b: &Browser, base: &str, name: &str, password: &str) {
    b.goto(&format!("{base}/")).await;
    b.wait_visible("#login-view").await;
    b.type_into("#username", name).await;
    b.type_into("#password", password).await;
    b.click("#login-button").await;
    b.wait_visible("#identify-view").await;
}

async fn rows(b: &Browser) -> Vec<Value> {
    b.js(
        "return Array.from(document.querySelectorAll('#record-table tbody tr')).map(r => ({id: r.dataset.id, channel: r.dataset.channel, outcome: r.dataset.outcome, declined: r.classList.contains('declined'), text: r.textContent}));",
        json!([]),
    )
    .await
    .as_array()
    .unwrap()
    .clone()
}

async fn search(b: &Browser, outcome: &str, channel: &str, pnr: &str) {
    b.js(
        "document.getElementById('f-outcome').value = arguments[0]; document.getElementById('f-channel').value = arguments[1]; document.getElementById('records').dataset.count = '';",
        json!([outcome, channel]),
    )
    .await;
    b.type_into("#f-pnr", pnr).await;
    b.click("#search").await;
    b.wait_until(
        "the search answered",
        "document.getElementById('records').dataset.count !== ''",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_reviews_identifications_from_the_agent_page_and_fastagi_in_a_real_browser() {
    let h = common::start_recorded(0.3, Records::Sqlite, |_| {}).await;
    let ivr = Fastagi::start(&h);
    let downloads = h.sim.dir().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let b = Browser::start_with_downloads(&downloads).await;

    // Two calls to the IVR: Anna is identified, Cecilia declines the call (possible fraud).
    let addr = ivr.addr.clone();
    let (anna_call, cecilia_call) = tokio::task::spawn_blocking(move || {
        (
            agi::call(&addr, "1733000000.11", "46701234567", "198503121116"),
            agi::call(&addr, "1733000000.12", "46709876543", "197709083336"),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        agi::var(&anna_call, "BANKID_STATUS").as_deref(),
        Some("complete")
    );
    assert_eq!(
        agi::var(&cecilia_call, "BANKID_STATUS").as_deref(),
        Some("failed")
    );

    // An agent identifies Anna on the agent page. Agents see no supervisor link, and the
    // supervisor view refuses them.
    log_in(&b, &h.base, "anna", common::PASSWORD_A).await;
    assert_eq!(
        b.js(
            "return document.getElementById('supervisor-link') === null",
            json!([])
        )
        .await,
        json!(true)
    );
    b.type_into("#pnr", "19850312-1116").await;
    b.click("#identify").await;
    b.wait_visible("#result[data-state=complete]").await;
    assert_eq!(b.text("#person-name").await, "Anna Lindqvist");
    let status = |path: &str| {
        format!("const x = new XMLHttpRequest(); x.open('GET', '{path}', false); x.send(); return x.status;")
    };
    for path in [
        "api/supervisor/stats",
        "api/supervisor/charts/hourly.svg",
        "supervisor.js",
    ] {
        assert_eq!(b.js(&status(path), json!([])).await, json!(403), "{path}");
    }
    b.goto(&format!("{}/supervisor", h.base)).await;
    b.wait_visible("#refused").await;
    assert!(b.text("#refused").await.contains("bara för arbetsledare"));
    b.screenshot("supervisor-0-agent-refused.png").await;
    b.goto(&format!("{}/", h.base)).await;
    b.wait_visible("#logout").await;
    b.click("#logout").await;
    b.wait_visible("#login-view").await;

    // The three records reach the database (the writers run beside the orders).
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_orders")
            .fetch_one(h.pool())
            .await
            .unwrap();
        if n >= 3 {
            assert_eq!(n, 3);
            break;
        }
        assert!(Instant::now() < until, "{n} records");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The supervisor logs in and follows the link.
    log_in(&b, &h.base, "sara", common::PASSWORD_S).await;
    b.wait_visible("#supervisor-link").await;
    assert_eq!(b.text("#supervisor-link").await, "Arbetsledarvy");
    b.click("#supervisor-link").await;
    b.wait_until(
        "the supervisor page is ready",
        "document.body.dataset.ready === 'true'",
    )
    .await;
    b.wait_until(
        "three records are listed",
        "document.querySelectorAll('#record-table tbody tr').length === 3",
    )
    .await;
    let all = rows(&b).await;
    let channels: Vec<&str> = all.iter().map(|r| r["channel"].as_str().unwrap()).collect();
    assert_eq!(
        channels.iter().filter(|c| **c == "fastagi").count(),
        2,
        "{all:?}"
    );
    assert_eq!(
        channels.iter().filter(|c| **c == "agent").count(),
        1,
        "{all:?}"
    );
    assert_eq!(
        all.iter().filter(|r| r["declined"] == true).count(),
        1,
        "the declined call is highlighted: {all:?}"
    );
    assert!(all
        .iter()
        .all(|r| !r["text"].as_str().unwrap().contains("8503121116")));

    // The charts and figures: three identifications, two identified, one declined call.
    b.wait_until(
        "the figures are in",
        "document.getElementById('charts').dataset.total === '3'",
    )
    .await;
    b.wait_until(
        "the charts are drawn",
        "['hourly', 'durations', 'reasons'].every(n => { const i = document.getElementById('chart-' + n); return i.complete && i.naturalWidth > 0; })",
    )
    .await;
    assert_eq!(b.text("#stat-total").await, "3");
    assert_eq!(b.text("#stat-declined").await, "1");
    assert_eq!(b.text("#stat-success").await, "66.7 %");
    assert!(b.text("#stat-median").await.ends_with(" s"));
    let declined = b.text("#declined-list").await;
    assert!(
        declined.contains("770908-XXXX") && declined.contains("46709876543"),
        "{declined}"
    );
    b.resize(1100, 1700).await;
    let shot = b.screenshot("supervisor-1-overview.png").await;
    std::fs::copy(
        &shot,
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/supervisor.png"),
    )
    .unwrap();
    b.click("#range-7d").await;
    b.wait_until(
        "the week's figures",
        "document.getElementById('charts').dataset.range === '7d'",
    )
    .await;
    assert_eq!(b.text("#stat-total").await, "3");

    // Filters: the IVR's records, then the declined calls.
    search(&b, "", "fastagi", "").await;
    let ivr_rows = rows(&b).await;
    assert_eq!(ivr_rows.len(), 2);
    assert!(ivr_rows.iter().all(|r| r["channel"] == "fastagi"));
    search(&b, "declined", "", "").await;
    let declined_rows = rows(&b).await;
    assert_eq!(declined_rows.len(), 1);
    assert_eq!(declined_rows[0]["outcome"], "declined");
    // Anna's records, looked up by her number as typed: one from each channel.
    search(&b, "", "", "19850312-1116").await;
    let annas = rows(&b).await;
    assert_eq!(annas.len(), 2, "{annas:?}");
    let mut chans: Vec<&str> = annas
        .iter()
        .map(|r| r["channel"].as_str().unwrap())
        .collect();
    chans.sort();
    assert_eq!(chans, vec!["agent", "fastagi"]);
    // Nothing personal in the address bar.
    let url = b.cmd(reqwest::Method::GET, "/url", None).await;
    assert_eq!(url, json!(format!("{}/supervisor", h.base)));
    b.screenshot("supervisor-2-lookup.png").await;

    // The IVR's record says which call it was.
    let ivr_id = annas.iter().find(|r| r["channel"] == "fastagi").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.click(&format!("#record-table tr[data-id='{ivr_id}']"))
        .await;
    b.wait_visible(&format!("#detail[data-id='{ivr_id}']"))
        .await;
    assert_eq!(b.text("dd[data-field=callId]").await, "1733000000.11");
    assert_eq!(b.text("dd[data-field=callerId]").await, "46701234567");
    assert_eq!(b.text("dd[data-field=channel]").await, "IVR (FastAGI)");

    // The agent's record: opened, its evidence downloaded — exactly what is stored.
    let agent_id = annas.iter().find(|r| r["channel"] == "agent").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.click(&format!("#record-table tr[data-id='{agent_id}']"))
        .await;
    b.wait_visible(&format!("#detail[data-id='{agent_id}']"))
        .await;
    assert_eq!(b.text("dd[data-field=agent]").await, "anna");
    assert_eq!(b.text("dd[data-field=channel]").await, "Agentsidan");
    assert_eq!(
        b.text("dd[data-field=personalNumberMasked]").await,
        "850312-XXXX"
    );
    assert!(b.visible("#download").await);
    b.click("#download").await;
    let file = downloaded(&downloads, &format!("bankid-evidence-{agent_id}")).await;
    let saved = std::fs::read_to_string(&file).unwrap();
    let stored: String =
        sqlx::query("SELECT completion_data FROM audit_evidence WHERE order_id = $1")
            .bind(agent_id.clone())
            .fetch_one(h.pool())
            .await
            .unwrap()
            .get(0);
    assert_eq!(saved, stored);
    let evidence: Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(evidence["user"]["name"], "Anna Lindqvist");
    assert_eq!(evidence["user"]["personalNumber"], "198503121116");
    assert!(evidence["signature"].is_string() && evidence["ocspResponse"].is_string());
    b.wait_visible("#detail-events li[data-action=evidence-downloaded]")
        .await;
    assert!(b.text("#detail-events").await.contains("sara"));
    b.screenshot("supervisor-3-record.png").await;

    // The CSV of Anna's records.
    b.click("#export").await;
    let csv = std::fs::read_to_string(downloaded(&downloads, "bankid-records-").await).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1..].iter().all(|l| l.ends_with("850312-XXXX")),
        "{csv}"
    );
    assert!(!csv.contains("198503121116"));

    // Both are on record as the supervisor's actions.
    let actions: Vec<(String, String)> = h
        .events()
        .await
        .into_iter()
        .filter(|e| e.0 == "sara")
        .map(|e| (e.1, e.2.unwrap_or_default()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("login".to_string(), String::new()),
            ("evidence-downloaded".to_string(), "850312-XXXX".to_string()),
            ("records-exported".to_string(), "850312-XXXX".to_string()),
        ]
    );

    // English follows on the supervisor page too.
    b.click("#lang").await;
    assert_eq!(b.text("#charts h2").await, "How identification goes");
    assert_eq!(b.text("dd[data-field=channel]").await, "Agent page");
    b.click("#lang").await;
    drop(b);
    drop(ivr);
}
