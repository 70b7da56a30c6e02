//! The audit writer's cost: records per second and CPU per record through [`Audit`] into one
//! SQLite file and into one PostgreSQL database (the test cluster named by
//! `BANKID_TEST_POSTGRES`, a fresh database on it), each record with BankID-sized evidence. A
//! benchmark, not a test: `bash bench/run.sh` runs it (figures in bench/README.md).
//!
//! ```sh
//! cargo build --release --example audit_bench
//! target/release/examples/audit_bench --burst 50000 --one-by-one 2000 [--postgres]
//! ```
//!
//! Two ways of writing, each printed as one line of `key=value` figures:
//! - `burst`: `--burst` records handed over at once (as when many calls end together): the
//!   writer takes up to 256 per batch, one spool file and one transaction each.
//! - `one-by-one`: `--one-by-one` records, each handed over and flushed before the next (a quiet
//!   line): every record pays its own spool fsync, transaction and commit fsync.
//!
//! CPU is this process's (every thread, the writer's and SQLite's included: the process CPU
//! clock); a PostgreSQL server's own CPU is not in it.

use std::time::{Duration, Instant};

use bankid::audit::{
    Audit, AuditSettings, CallContext, Channel, Database, Evidence, PseudonymKey, Record, RecordId,
    UnixMs,
};
use bankid::rp::{CallInitiator, HintCode};
use bankid::{Mode, Personnummer, State};

struct Args {
    burst: usize,
    one_by_one: usize,
    postgres: bool,
}

fn args() -> Args {
    let mut a = Args {
        burst: 50_000,
        one_by_one: 2_000,
        postgres: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = || v.get(i + 1).and_then(|s| s.parse().ok());
        match v[i].as_str() {
            "--burst" => a.burst = val().expect("--burst N"),
            "--one-by-one" => a.one_by_one = val().expect("--one-by-one N"),
            "--postgres" => {
                a.postgres = true;
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}; see the example's doc"),
        }
        i += 2;
    }
    a
}

/// CPU time of the whole process (all threads, also those that ended).
fn cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// completionData as BankID sends it: about 2.4 KiB (signature and OCSP response in base64).
fn evidence(i: usize) -> Evidence {
    let json = format!(
        r#"{{"user":{{"personalNumber":"198503121116","name":"Anna Andersson","givenName":"Anna","surname":"Andersson"}},"device":{{"ipAddress":"192.0.2.10","uhi":"OZvYM9VvyiAmG7NA5jU5zqGcVpo="}},"bankIdIssueDate":"2024-01-15Z","signature":"{}","ocspResponse":"{}"}}"#,
        format!("PD94bWwg{i:08}").repeat(110),
        format!("MIIHdgoBAKCCB28w{i:08}").repeat(40)
    );
    let raw = serde_json::value::RawValue::from_string(json).expect("valid JSON");
    Evidence::from_raw(&raw)
}

fn record(i: usize, key: &PseudonymKey, pnr: &Personnummer, ctx: &CallContext) -> Record {
    let now = UnixMs::now();
    Record {
        id: RecordId::random(),
        started_at: UnixMs(now.0 - 8000),
        finished_at: now,
        duration_ms: 8000,
        channel: ctx.channel,
        agent: None,
        call_id: Some(format!("1700000000.{i}")),
        caller_id: Some("46700000000".into()),
        host: bankid::audit::record::host_name().to_string(),
        mode: Mode::Identify,
        call_initiator: CallInitiator::User,
        state: State::Complete,
        hint_code: Some(HintCode::UserSign),
        failure: None,
        order_ref: Some(format!("{:032x}", rand::random::<u128>())),
        pnr_masked: pnr.masked(),
        pnr_pseudonym: key.pseudonym(pnr),
        pseudonym_key_id: key.id(),
        evidence: Some(evidence(i)),
    }
}

/// Waits until the writer has committed `n` records in all.
fn wait_written(audit: &Audit, n: u64) {
    let until = Instant::now() + Duration::from_secs(600);
    while audit.metrics().written.get() < n {
        assert!(Instant::now() < until, "the writer stopped writing");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn run(label: &str, database: Database, dir: &std::path::Path, a: &Args) {
    let mut settings = AuditSettings::in_dir(dir);
    settings.database = Some(database);
    std::fs::create_dir_all(dir).expect("the bench's directory");
    let key = PseudonymKey::load_or_create(&settings.key_file).expect("a key");
    let audit = Audit::start(&settings)
        .expect("the writer starts")
        .expect("records are on");
    let pnr = Personnummer::parse("198503121116").unwrap();
    let ctx = CallContext {
        channel: Channel::FastAgi,
        ..Default::default()
    };
    // Connected, schema made.
    audit.submit(record(0, &key, &pnr, &ctx));
    wait_written(&audit, 1);
    let mut written = 1u64;

    let records: Vec<Record> = (0..a.burst).map(|i| record(i, &key, &pnr, &ctx)).collect();
    let (t0, c0) = (Instant::now(), cpu());
    for r in records {
        audit.submit(r);
    }
    written += a.burst as u64;
    wait_written(&audit, written);
    let (wall, used) = (t0.elapsed(), cpu() - c0);
    print(label, "burst", a.burst, wall, used);

    let records: Vec<Record> = (0..a.one_by_one)
        .map(|i| record(i, &key, &pnr, &ctx))
        .collect();
    let (t0, c0) = (Instant::now(), cpu());
    for r in records {
        audit.submit(r);
        assert!(audit.flush(Duration::from_secs(30)), "a flush timed out");
    }
    written += a.one_by_one as u64;
    wait_written(&audit, written);
    let (wall, used) = (t0.elapsed(), cpu() - c0);
    print(label, "one-by-one", a.one_by_one, wall, used);
    assert_eq!(audit.metrics().lost.get(), 0, "records were lost");
    audit.shutdown();
}

fn print(label: &str, how: &str, n: usize, wall: Duration, used: Duration) {
    println!(
        "database={label} mode={how} records={n} seconds={:.2} per_second={:.0} cpu_per_record_us={:.1}",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        used.as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    let a = args();
    let dir = std::env::temp_dir().join(format!("bankid-audit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run(
        "sqlite",
        Database::Sqlite(dir.join("sqlite/audit.db")),
        &dir.join("sqlite"),
        &a,
    );
    if a.postgres {
        let pg = bankid_sim::testdb::TestDb::new();
        run(
            "postgresql",
            Database::Postgres(pg.url().to_string()),
            &dir.join("pg"),
            &a,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
