//! Sessions, login counters and agent actions in the audit database: two agent-page instances
//! on one real PostgreSQL database behave as one (log in on A, use the cookie on B, log out on
//! B and A knows; failed logins count across both), the table holds only the cookie's hash,
//! every action is recorded with numbers masked, and with the database down nothing is done.

mod common;

use std::time::{Duration, Instant};

use bankid_agent::accounts::{Accounts, Role};
use bankid_agent::limits::Limit;
use bankid_sim::testdb::TestDb;
use common::{
    shared_records, start_recorded, Client, Harness, Records, PASSWORD_A, PASSWORD_B, PASSWORD_S,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The session cookie's value from a login answer.
fn token_of(r: &common::Reply) -> String {
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

/// A client of `h` that sends this session cookie and CSRF token (a browser whose requests a
/// load balancer sent to another instance).
fn with_session(h: &Harness, token: &str, csrf: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "cookie",
        format!("bankid_agent_session={token}").parse().unwrap(),
    );
    Client {
        http: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap(),
        base: h.base.clone(),
        csrf: Some(csrf.to_string()),
    }
}

fn limit(max: usize, secs: u64) -> Limit {
    Limit {
        max,
        per: Duration::from_secs(secs),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_share_sessions_logouts_and_the_login_limit() {
    let db = TestDb::new();
    let (records, _key) = shared_records(&db);
    let again = match &records {
        Records::Shared(d, k) => Records::Shared(d.clone(), k.clone()),
        _ => unreachable!(),
    };
    let a = start_recorded(0.05, records, |o| o.login_limit = limit(3, 600)).await;
    let b = start_recorded(0.05, again, |o| o.login_limit = limit(3, 600)).await;
    assert!(a.app.shares_sessions() && b.app.shares_sessions());

    // Log in on A; B knows the session, its agent, role and CSRF token.
    let mut on_a = a.client();
    let login = on_a.login("anna", PASSWORD_A).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let token = token_of(&login);
    let csrf = on_a.csrf.clone().unwrap();
    let on_b = with_session(&b, &token, &csrf);
    let s = on_b.get("/api/session").await;
    assert_eq!(
        (&s.body["loggedIn"], &s.body["agent"], &s.body["role"]),
        (&json!(true), &json!("anna"), &json!("agent"))
    );
    assert_eq!(s.body["csrf"], csrf.as_str());
    // B identifies for her, and names her to its engine.
    let started = on_b.identify("198503121116", "user").await;
    assert_eq!(started.status, 201, "{}", started.body);
    let done = on_b.wait_final(started.body["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "complete");
    // A supervisor logged in on B is a supervisor on A as well.
    let mut sara = b.client();
    let login = sara.login("sara", PASSWORD_S).await;
    assert_eq!(login.status, 200);
    let sara_on_a = with_session(&a, &token_of(&login), sara.csrf.as_ref().unwrap());
    let r = sara_on_a.post("/api/supervisor/records", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The table holds the hash of the cookie's secret, never the secret.
    let rows = sqlx::query("SELECT token_hash, agent, role FROM agent_sessions ORDER BY agent")
        .fetch_all(a.pool())
        .await
        .unwrap();
    let hashes: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get("token_hash"), r.get("agent"), r.get("role")))
        .collect();
    assert_eq!(hashes.len(), 2, "{hashes:?}");
    assert_eq!(hashes[0].0, hex::encode(Sha256::digest(token.as_bytes())));
    assert_eq!(
        (hashes[0].1.as_str(), hashes[0].2.as_str()),
        ("anna", "agent")
    );
    assert_eq!(
        (hashes[1].1.as_str(), hashes[1].2.as_str()),
        ("sara", "supervisor")
    );
    let dump = db.query("SELECT * FROM agent_sessions");
    assert!(!dump.contains(&token), "the cookie's secret is not stored");

    // Log out on B: A no longer knows the session.
    assert_eq!(on_b.post("/api/logout", json!({})).await.status, 200);
    assert_eq!(on_a.get("/api/session").await.body["loggedIn"], false);
    assert_eq!(on_a.identify("198503121116", "user").await.status, 401);

    // Failed logins count on both: two on A, one on B, and the fourth is refused on either.
    let mut guesser = a.client();
    assert_eq!(guesser.login("bertil", "x").await.status, 401);
    assert_eq!(guesser.login("bertil", "y").await.status, 401);
    let mut elsewhere = b.client();
    assert_eq!(elsewhere.login("bertil", "z").await.status, 401);
    for c in [&mut guesser, &mut elsewhere] {
        let r = c.login("bertil", PASSWORD_B).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(r.headers.get("retry-after").is_some());
    }
    // Another name is not affected.
    assert_eq!(a.client().login("anna", PASSWORD_A).await.status, 200);

    // Both instances wrote their events into the one table.
    let events = a.events().await;
    let count = |action: &str| events.iter().filter(|e| e.1 == action).count();
    assert_eq!(count("login"), 3, "{events:?}");
    assert_eq!(count("logout"), 1);
    assert_eq!(
        count("login-failed"),
        5,
        "three wrong passwords, two refused"
    );
    assert_eq!(count("identify-started"), 1);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_shared_session_ends_and_its_row_goes() {
    let h = start_recorded(0.05, Records::Sqlite, |o| {
        o.session_idle = Duration::from_millis(600)
    })
    .await;
    let anna = h.agent("anna").await;
    // Requests keep it alive beyond the idle time…
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(anna.get("/api/session").await.body["loggedIn"], true);
    }
    // …and without them it ends.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(anna.get("/api/session").await.body["loggedIn"], false);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM agent_sessions")
        .fetch_one(h.pool())
        .await
        .unwrap();
    assert_eq!(n, 0, "removed on sight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_actions_are_recorded_with_numbers_masked() {
    let h = start_recorded(0.05, Records::Sqlite, |_| {}).await;
    let mut anna = h.client();
    assert_eq!(anna.login("anna", "wrong").await.status, 401);
    assert_eq!(anna.login("anna", PASSWORD_A).await.status, 200);
    // Identified, then one that waits for the caller, cancelled.
    let r = anna.identify("8503121116", "user").await;
    assert_eq!(r.status, 201, "{}", r.body);
    anna.wait_final(r.body["id"].as_str().unwrap()).await;
    h.sim.set_scenario(
        "197709083336",
        bankid_sim::Scenario {
            steps: vec![bankid_sim::Step {
                hint_code: "userCallConfirm".into(),
                ms: 3_000_000,
            }],
            outcome: "complete".into(),
        },
    );
    let slow = anna.identify("770908-3336", "RP").await;
    assert_eq!(slow.status, 201, "{}", slow.body);
    let id = slow.body["id"].as_str().unwrap();
    anna.wait_hint(id, "userCallConfirm").await;
    let cancelled = anna
        .post(&format!("/api/orders/{id}/cancel"), json!({}))
        .await;
    assert_eq!(cancelled.status, 200);
    assert_eq!(anna.post("/api/logout", json!({})).await.status, 200);

    let order_ref = h
        .sim
        .orders()
        .into_iter()
        .find(|o| o.personal_number_masked.as_deref() == Some("770908-XXXX"))
        .unwrap()
        .order_ref;
    let events = h.events().await;
    let anna_s = |action: &str, pnr: Option<&str>, order: Option<&str>| {
        (
            "anna".to_string(),
            action.to_string(),
            pnr.map(str::to_string),
            order.map(str::to_string),
        )
    };
    assert_eq!(
        events,
        vec![
            anna_s("login-failed", None, None),
            anna_s("login", None, None),
            anna_s("identify-started", Some("850312-XXXX"), None),
            anna_s("identify-started", Some("770908-XXXX"), None),
            anna_s("identify-cancelled", Some("770908-XXXX"), Some(&order_ref)),
            anna_s("logout", None, None),
        ]
    );
    let rows = sqlx::query("SELECT remote, host FROM audit_agent_events")
        .fetch_all(h.pool())
        .await
        .unwrap();
    for r in &rows {
        assert_eq!(r.get::<String, _>("remote"), "127.0.0.1");
        assert!(!r.get::<String, _>("host").is_empty());
    }
    // The engine's records of both orders name the agent page and the agent.
    let until = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let rows: Vec<(String, Option<String>, String, String)> = sqlx::query(
            "SELECT channel, agent, state, pnr_masked FROM audit_orders ORDER BY started_at",
        )
        .fetch_all(h.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("channel"),
                r.get("agent"),
                r.get("state"),
                r.get("pnr_masked"),
            )
        })
        .collect();
        if rows.len() >= 2 || Instant::now() > until {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let agent = Some("anna".to_string());
    assert_eq!(
        records,
        vec![
            (
                "agent".into(),
                agent.clone(),
                "complete".into(),
                "850312-XXXX".into()
            ),
            ("agent".into(), agent, "failed".into(), "770908-XXXX".into()),
        ]
    );
    // The whole number is nowhere in the events.
    let all: Vec<String> = sqlx::query(
        "SELECT agent || action || coalesce(pnr_masked, '') || coalesce(order_id, '') || coalesce(remote, '') AS t \
         FROM audit_agent_events",
    )
    .fetch_all(h.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("t"))
    .collect();
    for whole in ["8503121116", "7709083336", "850312-1116"] {
        assert!(all.iter().all(|t| !t.contains(whole)), "{whole}: {all:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_a_newer_accounts_file_ends_sessions_of_changed_accounts_everywhere() {
    let db = TestDb::new();
    let (records, _key) = shared_records(&db);
    let copy = |r: &Records| match r {
        Records::Shared(d, k) => Records::Shared(d.clone(), k.clone()),
        _ => unreachable!(),
    };
    let (again, newer) = (copy(&records), copy(&records));
    let a = start_recorded(0.05, records, |_| {}).await;
    let mut anna = a.client();
    assert_eq!(anna.login("anna", PASSWORD_A).await.status, 200);
    let sara = a.agent("sara").await;
    // A restarted instance that got the new file: anna's password reset, sara demoted.
    let reset = Accounts::from_entries(&[
        ("anna", "nytt-lösen", Role::Agent),
        ("sara", PASSWORD_S, Role::Agent),
    ]);
    let c = start_recorded(0.05, newer, |o| o.accounts = reset).await;
    let on_c = |client: &Client| Client {
        http: client.http.clone(),
        base: c.base.clone(),
        csrf: client.csrf.clone(),
    };
    let r = on_c(&anna).identify("198503121116", "user").await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("not_logged_in"))
    );
    let r = on_c(&sara).post("/api/supervisor/records", json!({})).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("not_logged_in"))
    );
    // Ended in the shared table, so on A too.
    assert_eq!(anna.get("/api/session").await.body["loggedIn"], false);
    assert_eq!(sara.get("/supervisor").await.status, 401);
    // A and B, not given the new file, of course still trust their own: a new login with the
    // old password works there and on B — but not on C. Every instance needs the same file.
    let b = start_recorded(0.05, again, |_| {}).await;
    assert_eq!(anna.login("anna", PASSWORD_A).await.status, 200);
    let on_b = Client {
        http: anna.http.clone(),
        base: b.base.clone(),
        csrf: anna.csrf.clone(),
    };
    assert_eq!(on_b.get("/api/session").await.body["loggedIn"], true);
    assert_eq!(
        on_c(&anna).get("/api/session").await.body["loggedIn"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_number_typed_as_the_user_name_is_never_stored_whole() {
    let h = start_recorded(0.05, Records::Sqlite, |_| {}).await;
    let mut c = h.client();
    for typed in ["198503121116", "850312-1116", "8503121117x", "Anna"] {
        assert_eq!(c.login(typed, "wrong").await.status, 401, "{typed}");
    }
    let agents: Vec<String> = h.events().await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        agents,
        vec![
            "(unknown) 850312-XXXX",
            "(unknown) 850312-XXXX",
            "(unknown) 85… (11 characters)",
            "anna",
        ]
    );
    // Nor in the failed-login counters.
    let buckets: Vec<String> = sqlx::query_scalar("SELECT bucket FROM agent_rate_limits")
        .fetch_all(h.pool())
        .await
        .unwrap();
    assert!(
        buckets.contains(&"login-name:anna".to_string()),
        "{buckets:?}"
    );
    for whole in ["8503121116", "850312-1116", "8503121117"] {
        assert!(buckets.iter().all(|b| !b.contains(whole)), "{buckets:?}");
    }
    // The counter of an unknown name still counts that name.
    for _ in 0..4 {
        c.login("198503121116", "wrong").await;
    }
    assert_eq!(c.login("198503121116", "wrong").await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_agent_or_a_changed_role_ends_shared_sessions_at_the_reload() {
    use bankid_agent::accounts::add_agent;
    let dir = std::env::temp_dir().join(format!("agent-shared-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agents.toml");
    add_agent(&file, "anna", PASSWORD_A, Role::Agent).unwrap();
    add_agent(&file, "bertil", PASSWORD_B, Role::Agent).unwrap();
    add_agent(&file, "sara", PASSWORD_S, Role::Supervisor).unwrap();
    let loaded = Accounts::load(&file).unwrap();
    let h = start_recorded(0.05, Records::Sqlite, |o| o.accounts = loaded).await;
    let anna = h.agent("anna").await;
    let bertil = h.agent("bertil").await;
    let sara = h.agent("sara").await;
    // Bertil leaves the file; Sara becomes an agent; Anna's entry stays as it was.
    let mut text: toml::Table = std::fs::read_to_string(&file).unwrap().parse().unwrap();
    text["agent"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["name"].as_str() != Some("bertil"));
    std::fs::write(&file, toml::to_string(&text).unwrap()).unwrap();
    add_agent(&file, "sara", PASSWORD_S, Role::Agent).unwrap();
    h.app.replace_accounts(Accounts::load(&file).unwrap()).await;
    assert_eq!(bertil.get("/api/session").await.body["loggedIn"], false);
    assert_eq!(sara.get("/api/session").await.body["loggedIn"], false);
    let left: Vec<String> = sqlx::query_scalar("SELECT agent FROM agent_sessions")
        .fetch_all(h.pool())
        .await
        .unwrap();
    assert_eq!(left, vec!["anna".to_string()]);
    assert_eq!(anna.get("/api/session").await.body["loggedIn"], true);
    // Sara logs in again as what she now is.
    let again = h.agent("sara").await;
    assert_eq!(again.get("/api/session").await.body["role"], "agent");
    assert_eq!(
        again
            .post("/api/supervisor/records", json!({}))
            .await
            .status,
        403
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_nothing_is_done_and_the_page_is_told_so() {
    let db = TestDb::new();
    let (records, _key) = shared_records(&db);
    let h = start_recorded(0.05, records, |_| {}).await;
    let anna = h.agent("anna").await;
    db.cut_off();
    let until = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = anna.identify("198503121116", "user").await;
        if r.status != 201 || Instant::now() > until {
            break r;
        }
    };
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (503, Some("store_unavailable")),
        "{}",
        r.body
    );
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("nothing was done"));
    let orders_before = h.sim.orders().len();
    let mut fresh = h.client();
    let login = fresh.login("bertil", PASSWORD_B).await;
    assert_eq!(
        login.status, 503,
        "no session without its store: {}",
        login.body
    );
    assert!(login.headers.get("set-cookie").is_none());
    assert_eq!(
        h.sim.orders().len(),
        orders_before,
        "nothing reached BankID"
    );
    db.restore();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let s = anna.get("/api/session").await;
        if s.status == 200 {
            assert_eq!(s.body["loggedIn"], true, "the session outlived the outage");
            break;
        }
        assert!(Instant::now() < until, "the database came back: {}", s.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = anna.identify("198503121116", "user").await;
    assert_eq!(r.status, 201, "{}", r.body);
    drop(h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identification_limit_counts_across_instances_too() {
    let db = TestDb::new();
    let (records, _key) = shared_records(&db);
    let again = match &records {
        Records::Shared(d, k) => Records::Shared(d.clone(), k.clone()),
        _ => unreachable!(),
    };
    let a = start_recorded(0.05, records, |o| o.identify_limit = limit(2, 600)).await;
    let b = start_recorded(0.05, again, |o| o.identify_limit = limit(2, 600)).await;
    let mut on_a = a.client();
    let login = on_a.login("anna", PASSWORD_A).await;
    let on_b = with_session(&b, &token_of(&login), on_a.csrf.as_ref().unwrap());
    assert_eq!(on_a.identify("198503121116", "user").await.status, 201);
    assert_eq!(on_b.identify("196801642395", "user").await.status, 201);
    for c in [&on_a, &on_b] {
        let r = c.identify("199908072391", "user").await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.body["error"], "too_many_identifications");
    }
    // Another agent has a count of her own.
    let bertil = b.agent("bertil").await;
    assert_eq!(bertil.identify("199908072391", "user").await.status, 201);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_and_spent_counters_are_swept_from_postgres() {
    let db = TestDb::new();
    let (records, _key) = shared_records(&db);
    let again = match &records {
        Records::Shared(d, k) => Records::Shared(d.clone(), k.clone()),
        _ => unreachable!(),
    };
    // The first instance makes the schema; rows as an instance that died would leave them.
    let a = start_recorded(0.05, records, |_| {}).await;
    let old = common::now_ms() - 24 * 3_600_000;
    db.query(&format!(
        "INSERT INTO agent_sessions (token_hash, agent, csrf, created_at, expires_at, role) \
         VALUES ('dead', 'anna', 'x', {old}, {old}, 'agent'); \
         INSERT INTO agent_rate_limits (bucket, window_start, hits) VALUES \
         ('login-name:old_one', {old}, 3), ('login-address:192.0.2.1', {old}, 9), \
         ('identify:anna', {old}, 1), ('login-name:fresh_one', {}, 1)",
        common::now_ms()
    ));
    // A second instance sweeps at its first housekeeping tick.
    let b = start_recorded(0.05, again, |_| {}).await;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let left =
            db.query("SELECT string_agg(bucket, ',' ORDER BY bucket) FROM agent_rate_limits");
        let sessions = db.query("SELECT count(*) FROM agent_sessions");
        if left == "login-name:fresh_one" && sessions == "0" {
            break;
        }
        assert!(Instant::now() < until, "left: {left}; sessions: {sessions}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((a, b));
}
