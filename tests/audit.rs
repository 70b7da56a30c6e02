//! The audit trail through the engine, against real databases: an SQLite file and a fresh
//! PostgreSQL database on the test cluster (`BANKID_TEST_POSTGRES`; `scripts/test.sh` starts
//! one). Every order ends as one record with its fields and BankID's evidence; records wait in
//! the spool through an outage and land exactly once; a full spool loses records loudly;
//! retention purges; nothing the database does holds up `poll`.

mod common;

use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bankid::audit::{CallContext, Channel, Database, PseudonymKey, Row};
use bankid::order::Error;
use bankid::{Config, Engine, Personnummer, StartOptions, State};
use bankid_sim::testdb::TestDb;
use common::audit_db;

const ANNA: &str = "198503121116";
/// Declines the call in the app (userDeclinedCall).
const DECLINER: &str = "197709083336";

/// ERROR lines the library logged, for the tests that say something must be logged.
fn errors_logged() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if r.level() == log::Level::Error {
                errors_logged()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(r.args().to_string());
            }
        }
        fn flush(&self) {}
    }
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = log::set_boxed_logger(Box::new(Capture));
        log::set_max_level(log::LevelFilter::Warn);
    });
    LINES.get_or_init(|| Mutex::new(Vec::new()))
}

/// The lab's configuration with records in `database`; for PostgreSQL the pseudonym key is
/// made first (a shared database never makes one itself).
fn config(env: &common::Env, database: Database) -> Config {
    let mut c = env.config();
    if database.is_shared() {
        PseudonymKey::load_or_create(&c.audit.key_file).unwrap();
    }
    c.audit.database = Some(database);
    c
}

fn pnr(s: &str) -> Personnummer {
    Personnummer::parse(s).unwrap()
}

/// Starts an order, waits until it is final and releases it.
fn identify(engine: &Engine, who: &str, opts: StartOptions) -> bankid::OrderView {
    let id = engine.start(&pnr(who), opts).unwrap();
    let v = engine.wait(id, Duration::from_secs(20)).unwrap();
    engine.release(id).unwrap();
    v
}

fn agent_call() -> StartOptions {
    StartOptions {
        caller_id: Some("46700000000".into()),
        context: CallContext {
            channel: Channel::Agent,
            agent: Some("anna".into()),
            call_id: Some("1700000000.1".into()),
        },
        ..Default::default()
    }
}

fn sqlite(env: &common::Env) -> Database {
    Database::Sqlite(env.dir().join("records/audit.db"))
}

/// An identification, a declined call and the refusal that follows it, through one engine:
/// three records with every field as the order had it.
fn three_orders_are_recorded(env: &common::Env, database: Database) {
    let cfg = config(env, database.clone());
    let key = cfg.audit.key_file.clone();
    let engine = Engine::new(cfg).unwrap();
    let done = identify(&engine, ANNA, agent_call());
    assert_eq!(done.state, State::Complete);
    let declined = identify(&engine, DECLINER, StartOptions::default());
    assert_eq!(declined.state, State::Failed);
    match engine.start(&pnr(DECLINER), StartOptions::default()) {
        Err(Error::Refused(_)) => {}
        other => panic!("a declined number is refused next: {other:?}"),
    }
    // They reach the database while the engine runs (a loaded machine may need more than the
    // shutdown's flush bound to connect); the shutdown then closes it and joins the writer.
    audit_db::wait_for_orders(&database, 3, Duration::from_secs(60));
    engine.shutdown();

    let rows = audit_db::orders(&database);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let key = PseudonymKey::load(&key).unwrap();
    let by_state = |state: &str, pnr_masked: &str| -> Row {
        rows.iter()
            .find(|r| r.state == state && r.pnr_masked == pnr_masked)
            .unwrap_or_else(|| panic!("no {state} record for {pnr_masked}: {rows:#?}"))
            .clone()
    };
    let sim_ref = |masked: &str| -> Vec<String> {
        env.lab
            .orders()
            .into_iter()
            .filter(|o| o.personal_number_masked.as_deref() == Some(masked))
            .map(|o| o.order_ref)
            .collect()
    };

    let ok = by_state("complete", "850312-XXXX");
    assert_eq!(ok.id.len(), 32);
    assert_eq!(ok.channel, "agent");
    assert_eq!(ok.agent.as_deref(), Some("anna"));
    assert_eq!(ok.call_id.as_deref(), Some("1700000000.1"));
    assert_eq!(ok.caller_id.as_deref(), Some("46700000000"));
    assert_eq!(ok.mode, "identify");
    assert_eq!(ok.call_initiator, "user");
    assert_eq!(ok.error_code, None);
    assert_eq!(ok.pnr_pseudonym, key.pseudonym(&pnr(ANNA)));
    assert_eq!(ok.pseudonym_key_id, key.id());
    assert!(!ok.host.is_empty());
    assert!(ok.started_at <= ok.finished_at);
    assert_eq!(ok.finished_at - ok.started_at, ok.duration_ms);
    assert_eq!(sim_ref("850312-XXXX"), vec![ok.order_ref.clone().unwrap()]);
    let sent = env
        .lab
        .completion_sent(ok.order_ref.as_deref().unwrap())
        .expect("the simulator sent completionData");
    let kept: serde_json::Value =
        serde_json::from_str(ok.completion_data.as_deref().expect("evidence kept")).unwrap();
    assert_eq!(kept, sent, "the evidence is what BankID sent");
    assert_eq!(kept["user"]["personalNumber"], ANNA);
    assert_eq!(done.order_ref, ok.order_ref);

    let failed = by_state("failed", "770908-XXXX");
    assert_eq!(failed.channel, "c-abi", "the default channel");
    assert_eq!(failed.hint_code.as_deref(), Some("userDeclinedCall"));
    assert_eq!(failed.agent, None);
    assert_eq!(failed.completion_data, None);
    assert_eq!(failed.pnr_pseudonym, key.pseudonym(&pnr(DECLINER)));
    assert_eq!(sim_ref("770908-XXXX"), vec![failed.order_ref.unwrap()]);

    let refused = by_state("error", "770908-XXXX");
    assert_eq!(
        refused.error_code.as_deref(),
        Some("refused-declinedRecently")
    );
    assert_eq!(refused.order_ref, None, "nothing reached BankID");
    assert_eq!(refused.pnr_pseudonym, failed.pnr_pseudonym);
    assert_eq!(audit_db::count(&database, "audit_evidence"), 1);
}

#[test]
fn a_start_refused_for_too_many_open_orders_is_recorded_like_a_limit_refusal() {
    let env = common::sim();
    let database = sqlite(&env);
    let mut cfg = config(&env, database.clone());
    cfg.max_orders = 1;
    let engine = Engine::new(cfg).unwrap();
    let held = engine.start(&pnr(ANNA), StartOptions::default()).unwrap();
    match engine.start(&pnr(DECLINER), agent_call()) {
        Err(Error::TooManyOrders) => {}
        other => panic!("one order is open: {other:?}"),
    }
    engine.wait(held, Duration::from_secs(20)).unwrap();
    engine.release(held).unwrap();
    engine.shutdown();
    let rows = audit_db::orders(&database);
    let refused: Vec<&Row> = rows.iter().filter(|r| r.state == "error").collect();
    assert_eq!(refused.len(), 1, "{rows:#?}");
    let refused = refused[0];
    assert_eq!(refused.error_code.as_deref(), Some("refused-tooManyOrders"));
    assert_eq!(refused.pnr_masked, "770908-XXXX");
    assert_eq!(refused.order_ref, None, "nothing reached BankID");
    assert_eq!(refused.channel, "agent");
    assert_eq!(refused.agent.as_deref(), Some("anna"));
    assert_eq!(rows.len(), 2, "{rows:#?}");
}

#[test]
fn every_order_lands_in_sqlite_with_its_fields_and_bankids_evidence() {
    let env = common::sim();
    three_orders_are_recorded(&env, sqlite(&env));
}

#[test]
fn every_order_lands_in_postgresql_with_its_fields_and_bankids_evidence() {
    let env = common::sim();
    let pg = TestDb::new();
    three_orders_are_recorded(&env, Database::Postgres(pg.url().into()));
}

/// Every file of an SQLite database (with its WAL), as bytes.
fn database_bytes(file: &Path) -> Vec<u8> {
    let dir = file.parent().unwrap();
    let name = file.file_name().unwrap().to_str().unwrap();
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_str().unwrap().starts_with(name) {
            all.extend(std::fs::read(e.path()).unwrap());
        }
    }
    all
}

#[test]
fn without_evidence_keeping_no_whole_personal_number_or_name_is_stored() {
    let env = common::sim();
    let database = sqlite(&env);
    let mut cfg = config(&env, database.clone());
    cfg.audit.keep_evidence = false;
    let engine = Engine::new(cfg).unwrap();
    let v = identify(&engine, ANNA, StartOptions::default());
    assert_eq!(v.state, State::Complete);
    let name = v.completion.unwrap().user.name;
    engine.shutdown();
    let rows = audit_db::orders(&database);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, "complete");
    assert_eq!(rows[0].completion_data, None);
    assert_eq!(audit_db::count(&database, "audit_evidence"), 0);
    let Database::Sqlite(file) = &database else {
        unreachable!()
    };
    let bytes = database_bytes(file);
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("850312-XXXX"), "the masked number is there");
    assert!(!has(ANNA), "the whole personal number is stored");
    assert!(!has(&name), "the name is stored");
}

/// Waits until the spool at `dir` holds `n` records.
fn wait_spooled(dir: &Path, n: usize) {
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while audit_db::spooled(dir) < n {
        assert!(
            std::time::Instant::now() < until,
            "{n} record(s) never reached the spool"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn records_wait_in_the_spool_through_an_outage_and_land_exactly_once() {
    let env = common::sim();
    let pg = TestDb::new();
    let database = Database::Postgres(pg.url().into());
    let cfg = config(&env, database.clone());
    let spool = cfg.audit.spool_dir.clone();
    let engine = Engine::new(cfg).unwrap();
    // Connected first: one record goes straight through.
    identify(&engine, ANNA, StartOptions::default());
    assert_eq!(
        audit_db::wait_for_orders(&database, 1, Duration::from_secs(20)).len(),
        1
    );
    pg.cut_off();
    let during = [
        identify(&engine, "196801642395", StartOptions::default()),
        identify(&engine, DECLINER, StartOptions::default()),
    ];
    assert_eq!(during[0].state, State::Complete);
    assert_eq!(during[1].state, State::Failed);
    wait_spooled(&spool, 2);
    pg.restore();
    let rows = audit_db::wait_for_orders(&database, 3, Duration::from_secs(60));
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while audit_db::spooled(&spool) > 0 {
        assert!(
            std::time::Instant::now() < until,
            "the spool was not emptied"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    engine.shutdown();
    assert_eq!(audit_db::orders(&database).len(), 3);
    let m = common::parse_metrics(&engine.metrics_text());
    assert_eq!(
        common::sample(&m, "bankid_audit_records_written_total", &[]),
        3.0
    );
    assert!(common::sample(&m, "bankid_audit_write_errors_total", &[]) >= 1.0);
    assert_eq!(common::sample(&m, "bankid_audit_records_spooled", &[]), 0.0);
}

#[test]
fn a_spool_file_replayed_after_its_commit_adds_nothing() {
    let env = common::sim();
    let pg = TestDb::new();
    let database = Database::Postgres(pg.url().into());
    let cfg = config(&env, database.clone());
    let spool = cfg.audit.spool_dir.clone();
    let kept = env.dir().join("kept");
    std::fs::create_dir(&kept).unwrap();

    let engine = Engine::new(cfg.clone()).unwrap();
    pg.cut_off();
    identify(&engine, ANNA, StartOptions::default());
    wait_spooled(&spool, 1);
    // A copy of the batch file as it waits, to put back once the database has it.
    let files: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let copy = kept.join(files[0].file_name().unwrap());
    std::fs::copy(&files[0], &copy).unwrap();
    pg.restore();
    assert_eq!(
        audit_db::wait_for_orders(&database, 1, Duration::from_secs(60)).len(),
        1
    );
    engine.shutdown();
    assert_eq!(audit_db::spooled(&spool), 0);

    // The committed batch again, as a second process sharing the spool might find it.
    std::fs::copy(&copy, spool.join(copy.file_name().unwrap())).unwrap();
    let again = Engine::new(cfg).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while audit_db::spooled(&spool) > 0 {
        assert!(std::time::Instant::now() < until, "not replayed");
        std::thread::sleep(Duration::from_millis(20));
    }
    again.shutdown();
    assert_eq!(audit_db::orders(&database).len(), 1);
    assert_eq!(audit_db::count(&database, "audit_evidence"), 1);
}

#[test]
fn a_full_spool_loses_a_record_with_an_error_line_and_a_count() {
    let errors = errors_logged();
    let env = common::sim();
    let pg = TestDb::new();
    let database = Database::Postgres(pg.url().into());
    let mut cfg = config(&env, database.clone());
    cfg.audit.spool_max_records = 1;
    let spool = cfg.audit.spool_dir.clone();
    pg.cut_off();
    let engine = Engine::new(cfg).unwrap();
    identify(&engine, ANNA, StartOptions::default());
    wait_spooled(&spool, 1);
    identify(&engine, "196801642395", StartOptions::default());
    let lost = || {
        common::sample(
            &common::parse_metrics(&engine.metrics_text()),
            "bankid_audit_records_lost_total",
            &[],
        )
    };
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while lost() < 1.0 {
        assert!(
            std::time::Instant::now() < until,
            "the loss was not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lost(), 1.0);
    let lines = errors.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("LOST") && l.contains("680164-XXXX")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("audit_spool_max_records = 1")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("196801642395")),
        "a whole number was logged"
    );
    pg.restore();
    let rows = audit_db::wait_for_orders(&database, 1, Duration::from_secs(60));
    engine.shutdown();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].pnr_masked, "850312-XXXX", "the spooled one landed");
}

/// Rows of the past and of today, then an engine: its writer purges at start.
fn retention_purges(env: &common::Env, database: Database) {
    let now = bankid::audit::UnixMs::now().0;
    let day = 86_400_000i64;
    let order = |id: &str, finished: i64| {
        format!(
            "INSERT INTO audit_orders (id, started_at, finished_at, duration_ms, channel, host, \
             mode, call_initiator, state, pnr_masked, pnr_pseudonym, pseudonym_key_id) VALUES \
             ('{id}', {finished}, {finished}, 0, 'c-abi', 'h', 'identify', 'user', 'complete', \
             '850312-XXXX', 'p', 'k')"
        )
    };
    let evidence = |id: &str| {
        format!("INSERT INTO audit_evidence (order_id, completion_data) VALUES ('{id}', '{{}}')")
    };
    audit_db::execute(
        &database,
        &[
            order("old", now - 400 * day),
            evidence("old"),
            order("edge", now - 29 * day),
            evidence("edge"),
            order("new", now),
            evidence("new"),
            format!(
                "INSERT INTO audit_agent_events (id, at, agent, action, host) VALUES \
                 ('e-old', {}, 'anna', 'login', 'h'), ('e-new', {now}, 'anna', 'login', 'h')",
                now - 400 * day
            ),
            format!(
                "INSERT INTO agent_sessions (token_hash, agent, csrf, created_at, expires_at) \
                 VALUES ('gone', 'anna', 'c', {}, {}), ('live', 'anna', 'c', {now}, {})",
                now - 2 * day,
                now - day,
                now + day
            ),
        ],
    );
    let mut cfg = config(env, database.clone());
    cfg.audit.retention_days = 30;
    let engine = Engine::new(cfg).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while audit_db::count(&database, "audit_orders") != 2 {
        assert!(std::time::Instant::now() < until, "nothing was purged");
        std::thread::sleep(Duration::from_millis(50));
    }
    engine.shutdown();
    let ids: Vec<String> = audit_db::orders(&database)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["edge", "new"]);
    assert_eq!(audit_db::count(&database, "audit_evidence"), 2);
    assert_eq!(audit_db::count(&database, "audit_agent_events"), 1);
    assert_eq!(audit_db::count(&database, "agent_sessions"), 1);
}

#[test]
fn retention_purges_old_records_and_their_evidence_in_sqlite_and_keeps_new_ones() {
    let env = common::sim();
    retention_purges(&env, sqlite(&env));
}

#[test]
fn retention_purges_old_records_and_their_evidence_in_postgresql_and_keeps_new_ones() {
    let env = common::sim();
    let pg = TestDb::new();
    retention_purges(&env, Database::Postgres(pg.url().into()));
}

#[test]
fn orders_run_and_poll_answers_while_the_database_hangs() {
    // A "PostgreSQL server" that accepts connections and never says a word.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("postgres://audit:pw@{}/bankid", hole.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in hole.incoming().take(8) {
            conns.push(c);
        }
        conns
    });
    let env = common::sim();
    let cfg = config(&env, Database::Postgres(url));
    let spool = cfg.audit.spool_dir.clone();
    let engine = Engine::new(cfg).unwrap();
    let a = identify(&engine, ANNA, StartOptions::default());
    let b = identify(&engine, DECLINER, StartOptions::default());
    assert_eq!((a.state, b.state), (State::Complete, State::Failed));
    wait_spooled(&spool, 2);
    engine.shutdown();
    // Nothing reached the database; nothing was lost either.
    assert_eq!(audit_db::spooled(&spool), 2);
    let m = common::parse_metrics(&engine.metrics_text());
    assert_eq!(
        common::sample(&m, "bankid_audit_records_lost_total", &[]),
        0.0
    );
    assert_eq!(
        common::sample(&m, "bankid_audit_records_written_total", &[]),
        0.0
    );
    drop(held);
}
