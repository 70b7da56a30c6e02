//! The agent server over real HTTP on 127.0.0.1, in front of bankid-sim over mutual TLS.

mod common;

use std::time::Duration;

use bankid_agent::limits::Limit;
use common::{start, PASSWORD_A};
use serde_json::json;

fn limit(max: usize, secs: u64) -> Limit {
    Limit {
        max,
        per: Duration::from_secs(secs),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_a_strict_http_only_cookie_and_logout_ends_the_session() {
    let h = start(0.05, |_| {}).await;
    let mut c = h.client();
    let s = c.get("/api/session").await;
    assert_eq!(s.body["loggedIn"], false);
    assert_eq!(s.body["simulated"], true);
    assert_eq!(s.body["testPersons"][0]["personalNumber"], "198503121116");

    let bad = c.login("anna", "wrong").await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.body["error"], "bad_credentials");
    assert!(bad.headers.get("set-cookie").is_none());
    let unknown = c.login("nobody", PASSWORD_A).await;
    assert_eq!(unknown.status, 401);
    assert_eq!(
        unknown.body["error"], "bad_credentials",
        "same answer as a wrong password"
    );

    let ok = c.login("Anna", PASSWORD_A).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["agent"], "anna");
    let cookie = ok.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("bankid_agent_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert!(token.len() >= 40, "a long random session id");
    let s = c.get("/api/session").await;
    assert_eq!(s.body["loggedIn"], true);
    assert_eq!(s.body["agent"], "anna");

    let out = c.post("/api/logout", json!({})).await;
    assert_eq!(out.status, 200);
    assert!(out.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(c.get("/api/session").await.body["loggedIn"], false);
    assert_eq!(c.identify("198503121116", "user").await.status, 401);

    // The old session id is dead on the server too, not only forgotten by this browser.
    let replay = h.client();
    let r = replay
        .send(
            replay
                .http
                .get(format!("{}/api/session", h.base))
                .header("Cookie", format!("bankid_agent_session={token}")),
        )
        .await;
    assert_eq!(r.body["loggedIn"], false);
    assert!(h.sim.orders().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_requests_without_the_csrf_token_or_from_another_site_are_refused() {
    let h = start(0.05, |_| {}).await;
    let c = h.agent("anna").await;
    let body = json!({"personalNumber": "198503121116", "callInitiator": "user"});
    let url = format!("{}/api/identify", h.base);

    let no_token = c.send(c.http.post(&url).json(&body)).await;
    assert_eq!(no_token.status, 403);
    assert_eq!(no_token.body["error"], "csrf");

    let wrong = c
        .send(
            c.http
                .post(&url)
                .header("X-CSRF-Token", "guess")
                .json(&body),
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.body["error"], "csrf");

    let token = c.csrf.clone().unwrap();
    let foreign = c
        .send(
            c.http
                .post(&url)
                .header("X-CSRF-Token", &token)
                .header("Origin", "https://evil.example")
                .json(&body),
        )
        .await;
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.body["error"], "cross_origin");

    let cross_site = c
        .send(
            c.http
                .post(&url)
                .header("X-CSRF-Token", &token)
                .header("Sec-Fetch-Site", "cross-site")
                .json(&body),
        )
        .await;
    assert_eq!(cross_site.status, 403);

    // What an HTML form on another site could send: not JSON.
    let form = c
        .send(
            c.http
                .post(&url)
                .header("X-CSRF-Token", &token)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("personalNumber=198503121116"),
        )
        .await;
    assert_eq!(form.status, 415);

    // Logging in from another site is refused too (login CSRF).
    let login = c
        .send(
            c.http
                .post(format!("{}/api/login", h.base))
                .header("Origin", "https://evil.example")
                .json(&json!({"username": "anna", "password": PASSWORD_A})),
        )
        .await;
    assert_eq!(login.status, 403);

    // Cancelling and logging out need the token as well.
    let cancel = c
        .send(
            c.http
                .post(format!("{}/api/orders/x/cancel", h.base))
                .json(&json!({})),
        )
        .await;
    assert_eq!(cancel.status, 403);
    let logout = c
        .send(
            c.http
                .post(format!("{}/api/logout", h.base))
                .json(&json!({})),
        )
        .await;
    assert_eq!(logout.status, 403);
    assert_eq!(c.get("/api/session").await.body["loggedIn"], true);

    assert!(h.sim.orders().is_empty(), "nothing reached BankID");
    let ok = c.identify("198503121116", "user").await;
    assert_eq!(ok.status, 201, "with the token it works: {}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_limited_per_agent() {
    let h = start(0.05, |o| o.login_limit = limit(3, 600)).await;
    let mut c = h.client();
    for _ in 0..3 {
        assert_eq!(c.login("anna", "wrong").await.status, 401);
    }
    let limited = c.login("anna", PASSWORD_A).await;
    assert_eq!(limited.status, 429, "even the right password waits");
    assert_eq!(limited.body["error"], "too_many_attempts");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 600, "{retry}");
    assert!(limited.headers.get("set-cookie").is_none());
    // Another agent is not affected.
    let mut other = h.client();
    assert_eq!(other.login("bertil", common::PASSWORD_B).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifications_are_limited_per_agent() {
    let h = start(0.05, |o| o.identify_limit = limit(2, 600)).await;
    let anna = h.agent("anna").await;
    assert_eq!(anna.identify("198503121116", "user").await.status, 201);
    assert_eq!(anna.identify("196801642395", "user").await.status, 201);
    let third = anna.identify("199105212220", "user").await;
    assert_eq!(third.status, 429);
    assert_eq!(third.body["error"], "too_many_identifications");
    assert!(third.headers.get("retry-after").is_some());
    // The refused one never reached BankID. (Counted per number, not as "three orders in all":
    // at this speed BankID forgets a completed order after 9 s, which a loaded machine can
    // spend on bertil's login alone.)
    let orders_for = |masked: &str| {
        h.sim
            .orders()
            .iter()
            .filter(|o| o.personal_number_masked.as_deref() == Some(masked))
            .count()
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        orders_for("910521-XXXX"),
        0,
        "the refused order reached BankID"
    );
    let bertil = h.agent("bertil").await;
    assert_eq!(bertil.identify("199105212220", "user").await.status, 201);
    wait_until(|| orders_for("910521-XXXX") == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(orders_for("910521-XXXX"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_agents_order_is_invisible_and_cannot_be_cancelled() {
    let h = start(0.05, |_| {}).await;
    let anna = h.agent("anna").await;
    let bertil = h.agent("bertil").await;
    // The slow test person stays pending for a while.
    let started = anna.identify("197204158880", "user").await;
    assert_eq!(started.status, 201);
    let id = started.body["id"].as_str().unwrap().to_string();

    let peek = bertil.order(&id).await;
    let nonexistent = bertil.order("AAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(peek.status, 404);
    assert_eq!(
        peek.body, nonexistent.body,
        "indistinguishable from no order"
    );
    let cancel = bertil
        .post(&format!("/api/orders/{id}/cancel"), json!({}))
        .await;
    assert_eq!(cancel.status, 404);

    let mine = anna.order(&id).await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body["state"], "pending");
    assert!(h.sim.orders().iter().all(|o| !o.cancelled_by_rp));
    assert_eq!(
        h.client().order(&id).await.status,
        401,
        "and nobody logged out sees it"
    );
}

/// (test person, state, hintCode or errorCode, fraud warning, words the agent reads)
const OUTCOMES: &[(&str, &str, &str, bool, &str)] = &[
    (
        "198503121116",
        "complete",
        "",
        false,
        "identified with BankID",
    ),
    (
        "196801642395",
        "complete",
        "",
        false,
        "identified with BankID",
    ),
    (
        "199105212220",
        "failed",
        "userCancel",
        false,
        "cancelled the identification in the BankID app",
    ),
    (
        "197709083336",
        "failed",
        "userDeclinedCall",
        true,
        "Possible fraud attempt",
    ),
    (
        "196601014449",
        "failed",
        "expiredTransaction",
        false,
        "did not identify in time",
    ),
    (
        "200002295558",
        "failed",
        "certificateErr",
        false,
        "blocked or too old",
    ),
    (
        "198811116667",
        "failed",
        "startFailed",
        false,
        "never opened the BankID app",
    ),
    (
        "199506307777",
        "failed",
        "notSupportedByUserApp",
        false,
        "too old for identification during calls",
    ),
    (
        "199307079195",
        "failed",
        "transactionRiskBlocked",
        false,
        "security reasons",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_reaches_the_agent_with_its_own_words() {
    // Short lifetimes so that the expiring person expires within the test.
    let h = start(0.02, |_| {}).await;
    let anna = h.agent("anna").await;
    for (pnr, state, code, fraud, words) in OUTCOMES {
        // A 10-digit form with a hyphen, as agents often type it.
        let typed = format!("{}-{}", &pnr[2..8], &pnr[8..]);
        let r = anna.identify(&typed, "user").await;
        assert_eq!(r.status, 201, "{pnr}: {}", r.body);
        assert_eq!(
            r.body["personalNumberMasked"],
            format!("{}-XXXX", &pnr[2..8])
        );
        let o = anna.wait_final(r.body["id"].as_str().unwrap()).await;
        assert_eq!(o["state"], *state, "{pnr}: {o}");
        assert_eq!(o["fraudWarning"], *fraud, "{pnr}");
        let text = o["agentText"]["en"].as_str().unwrap();
        assert!(text.contains(words), "{pnr}: {text}");
        assert!(!o["agentText"]["sv"].as_str().unwrap().is_empty());
        assert!(o["finishedAtMs"].as_u64().unwrap() >= o["startedAtMs"].as_u64().unwrap());
        if *state == "complete" {
            let person = &o["person"];
            let expected = format!("{}-{}", &pnr[..8], &pnr[8..]);
            assert_eq!(
                person["personalNumber"],
                expected.as_str(),
                "from BankID's answer"
            );
            let p = bankid_sim::TEST_PERSONS
                .iter()
                .find(|p| p.personal_number == *pnr)
                .unwrap();
            assert_eq!(person["name"], format!("{} {}", p.given_name, p.surname));
            assert_eq!(o["callerMessage"]["id"], "BIVR-IDENTIFIED");
        } else {
            assert_eq!(o["hintCode"], *code, "{pnr}: {o}");
            assert!(o["person"].is_null());
        }
    }
    // BankID unreachable in a way that ends the order: an HTML 403 from a proxy on phone/auth.
    h.sim
        .inject_fault(bankid_sim::Fault::new(bankid_sim::FaultKind::Html403, 1).on("phone/auth"));
    let r = anna.identify("198503121116", "user").await;
    let o = anna.wait_final(r.body["id"].as_str().unwrap()).await;
    assert_eq!(o["state"], "error", "{o}");
    assert!(o["agentText"]["en"].as_str().unwrap().contains("Try again"));
    // The same person twice at once: BankID's alreadyInProgress, explained.
    let first = anna.identify("197204158880", "user").await;
    let bertil = h.agent("bertil").await;
    let second = bertil.identify("197204158880", "user").await;
    let o = bertil.wait_final(second.body["id"].as_str().unwrap()).await;
    assert_eq!(o["state"], "error");
    assert_eq!(o["errorCode"], "alreadyInProgress");
    assert!(o["agentText"]["en"]
        .as_str()
        .unwrap()
        .contains("already in progress"));
    let _ = first;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_choice_reaches_bankid_and_pending_steps_show_the_rfa_texts() {
    let h = start(0.3, |_| {}).await;
    let anna = h.agent("anna").await;
    let r = anna.identify("198503121116", "RP").await;
    assert_eq!(r.body["callInitiator"], "RP");
    let id = r.body["id"].as_str().unwrap().to_string();
    let first = anna.wait_hint(&id, "outstandingTransaction").await;
    assert_eq!(first["step"], "app");
    assert_eq!(first["callerMessage"]["id"], "RFA1");
    assert_eq!(first["callerMessage"]["sv"], "Starta BankID-appen.");
    let confirm = anna.wait_hint(&id, "userCallConfirm").await;
    assert_eq!(confirm["step"], "confirm");
    assert!(confirm["agentText"]["sv"]
        .as_str()
        .unwrap()
        .contains("bekräftar"));
    let code = anna.wait_hint(&id, "userSign").await;
    assert_eq!(code["step"], "code");
    assert_eq!(code["callerMessage"]["id"], "RFA9");
    assert_eq!(anna.wait_final(&id).await["state"], "complete");
    let at_bankid = h.sim.orders();
    assert_eq!(at_bankid[0].call_initiator.as_deref(), Some("RP"));
    // The default is "the caller called us".
    let r = anna
        .post("/api/identify", json!({"personalNumber": "196801642395"}))
        .await;
    assert_eq!(r.body["callInitiator"], "user");
    let bad = anna.identify("196801642395", "them").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["message"]
        .as_str()
        .unwrap()
        .contains("callInitiator"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_order_here_and_at_bankid_and_a_new_caller_starts_clean() {
    let h = start(0.05, |_| {}).await;
    let anna = h.agent("anna").await;
    let r = anna.identify("197204158880", "user").await;
    let id = r.body["id"].as_str().unwrap().to_string();
    anna.wait_hint(&id, "outstandingTransaction").await;
    let c = anna
        .post(&format!("/api/orders/{id}/cancel"), json!({}))
        .await;
    assert_eq!(c.status, 200);
    assert_eq!(c.body["state"], "failed");
    assert_eq!(
        c.body["agentText"]["en"],
        "You cancelled the identification."
    );
    assert_eq!(c.body["fraudWarning"], false);
    wait_until(|| h.sim.orders().iter().any(|o| o.cancelled_by_rp)).await;

    // Starting another identification while one is pending cancels the first.
    let first = anna.identify("197204158880", "user").await;
    let first_id = first.body["id"].as_str().unwrap().to_string();
    anna.wait_hint(&first_id, "outstandingTransaction").await;
    let second = anna.identify("198503121116", "user").await;
    assert_eq!(second.status, 201);
    assert_eq!(anna.order(&first_id).await.body["state"], "failed");
    wait_until(|| h.sim.orders().iter().filter(|o| o.cancelled_by_rp).count() == 2).await;
    let done = anna.wait_final(second.body["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "complete");

    // Logging out leaves nothing running at BankID.
    let third = anna.identify("197204158880", "user").await;
    anna.wait_hint(third.body["id"].as_str().unwrap(), "outstandingTransaction")
        .await;
    anna.post("/api/logout", json!({})).await;
    wait_until(|| h.sim.orders().iter().filter(|o| o.cancelled_by_rp).count() == 3).await;
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    // Generous: on a loaded 2-core machine a few orders can take seconds to reach BankID.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            std::time::Instant::now() < until,
            "condition not reached in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_personal_numbers_get_a_specific_reason_and_never_reach_bankid() {
    let h = start(0.05, |_| {}).await;
    let anna = h.agent("anna").await;
    for (typed, reason) in [
        ("", "empty"),
        ("19850312111", "wrong_length"),
        ("1985031211160", "wrong_length"),
        ("19850312-11a6", "bad_character"),
        ("1985-0312-1116", "bad_separator"),
        ("19850312+1116", "bad_separator"),
        ("19850232-1116", "invalid_date"),
        ("19850312-1117", "bad_check_digit"),
        ("20991231-1231", "future_date"),
    ] {
        let r = anna.identify(typed, "user").await;
        assert_eq!(r.status, 400, "{typed:?}: {}", r.body);
        assert_eq!(r.body["error"], "invalid_personal_number");
        assert_eq!(r.body["reason"], reason, "{typed:?}");
        let msg = r.body["message"].as_str().unwrap();
        let digits: String = typed.chars().filter(char::is_ascii_digit).collect();
        assert!(digits.len() < 6 || !msg.contains(&digits), "{msg}");
    }
    let broken = anna
        .send(
            anna.http
                .post(format!("{}/api/identify", h.base))
                .header("X-CSRF-Token", anna.csrf.clone().unwrap())
                .header("Content-Type", "application/json")
                .body("{\"personalNumber\": 198503121116"),
        )
        .await;
    assert_eq!(broken.status, 400);
    assert_eq!(broken.body["error"], "bad_request");
    assert!(h.sim.orders().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_is_no_store_with_a_strict_csp_and_the_page_has_no_inline_code() {
    let h = start(0.05, |_| {}).await;
    let anna = h.agent("anna").await;
    let id = anna.identify("198503121116", "user").await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        "/",
        "/app.js",
        "/app.css",
        "/api/session",
        "/nope",
        &format!("/api/orders/{id}"),
    ] {
        let r = anna.get(path).await;
        assert_eq!(r.headers["cache-control"], "no-store", "{path}");
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.headers["x-frame-options"], "DENY");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
    }
    let page = anna.get("/").await.body;
    let html = page.as_str().unwrap();
    assert!(
        html.contains("<script src=\"app.js\""),
        "relative, so that it works under any base path"
    );
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the external script"
    );
    assert!(!html.contains("style=") && !html.contains("onclick") && !html.contains("<style"));
    assert_eq!(
        anna.get("/app.js").await.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_marks_the_session_cookie_secure() {
    let dir = std::env::temp_dir().join(format!("agent-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let tls = bankid_agent::tls_config(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();

    let h = start(0.05, |o| o.secure_cookies = true).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(bankid_agent::serve(listener, h.app.clone(), Some(tls)));
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let r = http
        .post(format!("{base}/api/login"))
        .header("Origin", &base)
        .json(&json!({"username": "anna", "password": PASSWORD_A}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let bad = bankid_agent::tls_config(&dir.join("missing.pem"), &dir.join("key.pem"))
        .unwrap_err()
        .to_string();
    assert!(bad.contains("missing.pem"), "{bad}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_base_path_the_page_and_api_live_there_and_nothing_answers_elsewhere() {
    let h = start(0.05, |o| {
        o.base_path = bankid_agent::proxy::BasePath::parse("/bankid").unwrap();
    })
    .await;
    assert!(h.base.ends_with("/bankid"));
    let root = format!("http://{}", h.addr);
    let http = no_redirects();

    let page = http.get(format!("{root}/bankid/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains("src=\"app.js\"") && html.contains("href=\"app.css\""));
    // Without the slash the relative URLs would miss: redirected to the page.
    let bare = http.get(format!("{root}/bankid")).send().await.unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/bankid/");
    for path in ["/bankid/app.js", "/bankid/app.css", "/bankid/api/session"] {
        let r = http.get(format!("{root}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    for path in [
        "/",
        "/app.js",
        "/app.css",
        "/api/session",
        "/bankidx",
        "/bankidx/",
        "/bankid2/api/session",
        "/other/bankid/",
        "/bankid/nope",
        "/BANKID/",
    ] {
        let r = http.get(format!("{root}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
    }
    let outside = http
        .post(format!("{root}/api/login"))
        .header("Origin", &root)
        .json(&json!({"username": "anna", "password": PASSWORD_A}))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404, "no login outside the base path");

    // The page's own calls, relative to the base: the cookie is for the base path only.
    let mut anna = h.client();
    let r = anna.login("anna", PASSWORD_A).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Path=/bankid;"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP, no proxy: {cookie}");
    let id = anna.identify("198503121116", "user").await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(anna.wait_final(&id).await["state"], "complete");
    let out = anna.post("/api/logout", json!({})).await;
    assert_eq!(out.status, 200);
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(
        cleared.contains("Path=/bankid;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_ancestors_replace_none_and_x_frame_options_goes() {
    let h = start(0.05, |o| {
        o.frame_ancestors = vec![
            "https://desktop.example.com".into(),
            "https://desktop.example.com:8443".into(),
        ];
    })
    .await;
    let r = h.client().get("/").await;
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains(
            "frame-ancestors https://desktop.example.com https://desktop.example.com:8443;"
        ),
        "{csp}"
    );
    assert!(!csp.contains("'none';  ") && csp.contains("default-src 'none'"));
    assert!(r.headers.get("x-frame-options").is_none());
}

/// A login POST to `h` with extra headers: (status, Set-Cookie).
async fn login_with(
    h: &common::Harness,
    user: &str,
    password: &str,
    origin: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = no_redirects()
        .post(format!("{}/api/login", h.base))
        .header("Origin", origin)
        .json(&json!({"username": user, "password": password}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), cookie)
}

fn trust(cidr: &str) -> Vec<bankid_agent::proxy::Cidr> {
    vec![bankid_agent::proxy::Cidr::parse(cidr).unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_proto_makes_cookies_secure_only_from_a_trusted_proxy() {
    let https = [("X-Forwarded-Proto", "https")];
    // Nobody trusted, or a block the peer (127.0.0.1) is not in: the header is ignored, the
    // browser is taken to use http, and an https Origin does not match.
    for trusted in [vec![], trust("10.0.0.0/8")] {
        let h = start(0.05, |o| o.trusted_proxies = trusted.clone()).await;
        let http_origin = format!("http://{}", h.addr);
        let https_origin = format!("https://{}", h.addr);
        let (status, cookie) = login_with(&h, "anna", PASSWORD_A, &http_origin, &https).await;
        assert_eq!(status, 200);
        assert!(!cookie.contains("Secure"), "{trusted:?}: {cookie}");
        let (status, _) = login_with(&h, "anna", PASSWORD_A, &https_origin, &https).await;
        assert_eq!(status, 403, "{trusted:?}");
    }
    // The proxy is trusted: https means Secure, and the Origin must then be https.
    let h = start(0.05, |o| o.trusted_proxies = trust("127.0.0.1/32")).await;
    let http_origin = format!("http://{}", h.addr);
    let https_origin = format!("https://{}", h.addr);
    let (status, cookie) = login_with(&h, "anna", PASSWORD_A, &https_origin, &https).await;
    assert_eq!(status, 200);
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    let (status, _) = login_with(&h, "anna", PASSWORD_A, &http_origin, &https).await;
    assert_eq!(status, 403, "an http Origin behind https is another origin");
    let (status, cookie) = login_with(&h, "anna", PASSWORD_A, &http_origin, &[]).await;
    assert_eq!(status, 200);
    assert!(
        !cookie.contains("Secure"),
        "no header: plain http: {cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_count_per_client_address_and_a_forwarded_one_only_when_trusted() {
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    // A trusted proxy: each forwarded client has its own count, whatever names it tries.
    let h = start(0.05, |o| {
        o.login_address_limit = limit(2, 60);
        o.trusted_proxies = trust("127.0.0.1/32");
    })
    .await;
    let origin = format!("http://{}", h.addr);
    let one = from("203.0.113.1");
    assert_eq!(login_with(&h, "x1", "no", &origin, &one).await.0, 401);
    assert_eq!(login_with(&h, "x2", "no", &origin, &one).await.0, 401);
    assert_eq!(login_with(&h, "x3", "no", &origin, &one).await.0, 429);
    assert_eq!(
        login_with(&h, "anna", PASSWORD_A, &origin, &one).await.0,
        429,
        "the address is blocked, even for a valid login"
    );
    let other = from("203.0.113.1, 203.0.113.2");
    assert_eq!(
        login_with(&h, "x4", "no", &origin, &other).await.0,
        401,
        "another client (the left-most entry is the client's own claim, not read)"
    );
    assert_eq!(
        login_with(&h, "anna", PASSWORD_A, &origin, &from("203.0.113.3"))
            .await
            .0,
        200
    );

    // Nobody trusted: X-Forwarded-For is ignored and every request is from 127.0.0.1.
    let h = start(0.05, |o| o.login_address_limit = limit(2, 60)).await;
    let origin = format!("http://{}", h.addr);
    assert_eq!(login_with(&h, "x1", "no", &origin, &one).await.0, 401);
    assert_eq!(
        login_with(&h, "x2", "no", &origin, &from("203.0.113.2"))
            .await
            .0,
        401
    );
    assert_eq!(
        login_with(&h, "x3", "no", &origin, &from("203.0.113.3"))
            .await
            .0,
        429,
        "a made-up X-Forwarded-For does not buy a fresh count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_answer_without_a_login() {
    use common::{parse_metrics, sample};
    let h = start(0.02, |_| {}).await;
    let mut anna = h.client();
    let health = anna.get("/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, Some("ok\n")));
    assert_eq!(health.headers["cache-control"], "no-store");
    let ready = anna.get("/readyz").await;
    assert_eq!(
        ready.status, 200,
        "no order yet, certificate valid: {}",
        ready.body
    );

    assert_eq!(anna.login("anna", "wrong").await.status, 401);
    assert_eq!(anna.login("anna", PASSWORD_A).await.status, 200);
    let r = anna.identify("198503121116", "user").await;
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(anna.wait_final(&id).await["state"], "complete");

    // Without the session cookie: a monitoring system has none.
    let scraper = h.client();
    let m = scraper.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert_eq!(
        m.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(m.headers.contains_key("content-security-policy"));
    let text = m.body.as_str().unwrap().to_string();
    let s = parse_metrics(&text);
    assert_eq!(sample(&s, "bankid_orders_started_total", &[]), 1.0);
    assert_eq!(
        sample(&s, "bankid_agent_logins_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        sample(&s, "bankid_agent_logins_total", &[("result", "failed")]),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "bankid_agent_http_requests_total",
            &[("route", "/api/identify"), ("status", "201")]
        ),
        1.0
    );
    assert!(
        sample(
            &s,
            "bankid_agent_http_requests_total",
            &[("route", "/api/orders/{id}"), ("status", "200")]
        ) >= 1.0
    );
    for secret in ["198503121116", "8503121116", "anna", id.as_str()] {
        assert!(!text.contains(secret), "{secret} in /metrics");
    }
    let ready = scraper.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready
        .body
        .as_str()
        .unwrap()
        .contains("BankID last answered"));
    // Forwarded by a proxy (the README's nginx forwards all of the base path): not for outside.
    for (path, header) in [
        ("/metrics", "X-Forwarded-For"),
        ("/readyz", "X-Forwarded-For"),
        ("/metrics", "Forwarded"),
        ("/metrics", "X-Real-IP"),
    ] {
        let r = scraper
            .send(
                scraper
                    .http
                    .get(format!("{}{path}", scraper.base))
                    .header(header, "203.0.113.9"),
            )
            .await;
        assert_eq!(r.status, 404, "{path} with {header}");
    }
    let health = scraper
        .send(
            scraper
                .http
                .get(format!("{}/healthz", scraper.base))
                .header("X-Forwarded-For", "203.0.113.9"),
        )
        .await;
    assert_eq!(health.status, 200, "/healthz answers anyone");

    // BankID gone: the next identification finds nobody, and the page is not ready.
    drop(h.sim);
    let r = anna.identify("196801642395", "user").await;
    let o = anna.wait_final(r.body["id"].as_str().unwrap()).await;
    assert_eq!(o["state"], "error", "{o}");
    let ready = scraper.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready
            .body
            .as_str()
            .unwrap()
            .starts_with("not ready: the last request to BankID failed"),
        "{}",
        ready.body
    );
    assert_eq!(
        scraper.get("/healthz").await.status,
        200,
        "the process is up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_chooses_the_security_code_the_id_document_check_and_signing() {
    let h = start(0.05, |_| {}).await;
    let anna = h.agent("anna").await;

    // Identify with a text in the app and both checks: the result says which took place.
    let r = anna
        .post(
            "/api/identify",
            json!({"personalNumber": "198503121116", "userVisibleData": "Samtal med kundtjänst, ärende 4711",
                   "requirePinCode": true, "requireIdDocument": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let doc = anna.wait_hint(&id, "userMrtd").await;
    assert_eq!(doc["step"], "document");
    assert_eq!(doc["callerMessage"]["id"], "RFA23");
    let done = anna.wait_final(&id).await;
    assert_eq!(done["state"], "complete");
    assert_eq!(done["mode"], "identify");
    assert_eq!(
        done["checks"],
        json!({"pinCodeRequired": true, "idDocumentRequired": true, "idDocumentChecked": true})
    );
    assert!(done["signedText"].is_null());
    let row = serde_json::to_value(h.sim.orders().pop().unwrap()).unwrap();
    assert_eq!(row["endpoint"], "phone/auth");
    assert_eq!(row["userVisibleData"], true);
    assert_eq!(row["requirement"], json!({"pinCode": true, "mrtd": true}));

    // Sign: the text the agent wrote comes back as approved.
    let text = "Jag godkänner ändringen av min adress till Storgatan 1, 123 45 Ort.";
    let r = anna
        .post(
            "/api/identify",
            json!({"personalNumber": "196801642395", "mode": "sign", "userVisibleData": text}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let done = anna.wait_final(r.body["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "complete");
    assert_eq!(done["mode"], "sign");
    assert_eq!(done["signedText"], text);
    assert_eq!(done["checks"]["idDocumentChecked"], false);
    assert_eq!(
        h.sim.orders().pop().unwrap().endpoint,
        bankid_sim::orders::Kind::PhoneSign
    );

    // The person whose document check fails.
    let r = anna
        .post(
            "/api/identify",
            json!({"personalNumber": "197904128886", "requireIdDocument": true}),
        )
        .await;
    let done = anna.wait_final(r.body["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "failed");
    assert_eq!(done["hintCode"], "mrtdVerificationFailed");
    assert!(done["agentText"]["sv"]
        .as_str()
        .unwrap()
        .contains("ID-handling"));

    // Refused before BankID: signing without a text, a bad mode, a text too long.
    let before = h.sim.orders().len();
    for (body, want) in [
        (
            json!({"personalNumber": "198503121116", "mode": "sign"}),
            "userVisibleData",
        ),
        (
            json!({"personalNumber": "198503121116", "mode": "sign", "userVisibleData": "   "}),
            "userVisibleData",
        ),
        (
            json!({"personalNumber": "198503121116", "mode": "approve"}),
            "mode",
        ),
        (
            json!({"personalNumber": "198503121116", "userVisibleData": "x".repeat(1001)}),
            "1000",
        ),
        (
            json!({"personalNumber": "198503121116", "userVisibleData": "ä".repeat(900)}),
            "too long for BankID",
        ),
    ] {
        let r = anna.post("/api/identify", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert!(
            r.body["message"].as_str().unwrap().contains(want),
            "{body}: {:?}",
            r.body
        );
    }
    assert_eq!(h.sim.orders().len(), before);
}
