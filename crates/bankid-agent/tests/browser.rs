//! A real headless Chromium (Debian `chromium` + `chromium-driver`, driven over the W3C
//! WebDriver protocol) uses the agent page against bankid-sim. Screenshots of every state go to
//! `test-artifacts/`.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Driver,
    profile: PathBuf,
}

/// chromedriver, started in its own process group so that it and every browser process it
/// starts can be ended together, also when a test panics (Drop runs while unwinding).
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    /// Ends the process group (TERM, then KILL after 3 s), reaps chromedriver, then ends any
    /// process still running with this test's own profile directory on its command line
    /// (a browser process that left the group). Idempotent.
    fn stop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the group we created for chromedriver (process_group(0)).
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left of the group, chromedriver included.
        // SAFETY: as above; ESRCH when the group is already empty is fine.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        for pid in processes_using(&self.profile) {
            // SAFETY: a process whose command line names this test's unique profile directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Processes whose command line contains `dir` (this test's unique browser profile).
fn processes_using(dir: &std::path::Path) -> Vec<libc::pid_t> {
    let needle = format!("--user-data-dir={}", dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|arg| arg == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// `DELETE /session/ID` without an async runtime (Drop may run while a test unwinds): the
/// WebDriver way to quit the browser, so chromedriver ends it and its helpers itself.
fn end_session(port: u16, session_path: &str) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    ) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let req = format!(
        "DELETE {session_path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = s.take(64 * 1024).read_to_end(&mut answer);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(path) = self.session.find("/session/").map(|i| &self.session[i..]) {
            end_session(self.driver.port, path);
        }
        self.driver.stop();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    async fn start() -> Browser {
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{chromedriver}: {e} — install chromium and chromium-driver (bash scripts/setup.sh)")
            });
        let profile =
            std::env::temp_dir().join(format!("agent-chromium-{}-{port}", std::process::id()));
        // From here on a panic (chromedriver not coming up, no session) still ends the group.
        let driver = Driver {
            child,
            port,
            profile: profile.clone(),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.json::<Value>()
                    .await
                    .map(|v| v["value"]["ready"] == true)
                    .unwrap_or(false)
                {
                    break;
                }
            }
            assert!(Instant::now() < until, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1000,1000", "--lang=sv-SE",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {r}"))
            .to_string();
        Browser {
            http,
            session: format!("{base}/session/{id}"),
            driver,
            profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if r["value"].get("error").is_some() {
            panic!("webdriver {path}: {}", r["value"]);
        }
        r["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Runs `script` in the page (arguments as `arguments[i]`) and returns its value.
    async fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;",
            json!([css]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    async fn visible(&self, css: &str) -> bool {
        self.js(
            "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';",
            json!([css]),
        )
        .await
            == json!(true)
    }

    async fn wait_visible(&self, css: &str) {
        let until = Instant::now() + Duration::from_secs(30);
        while !self.visible(css).await {
            assert!(Instant::now() < until, "{css} never became visible");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"));
        let path = artifacts().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

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
