//! A real headless Chromium (Debian `chromium` + `chromium-driver`, driven over the W3C
//! WebDriver protocol) uses the agent page against bankid-sim. Screenshots of every state go to
//! `test-artifacts/`.

mod common;

use std::time::{Duration, Instant};

use common::browser::{processes_using, Browser};
use serde_json::{json, Value};

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
