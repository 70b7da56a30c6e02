//! The audit trail from the C ABI: a host that only calls `bankid_start` still gets a record
//! per order, `bankid_start_options` version 3 adds the call's identifier and channel, and a
//! version-2 struct still works — into an SQLite file and into PostgreSQL. A test binary of
//! its own: the library has one global engine per process.

mod common;

use std::ffi::{c_char, CStr, CString};
use std::time::{Duration, Instant};

use bankid::audit::{Database, PseudonymKey, Row};
use bankid::ffi::bankid_status::*;
use bankid::ffi::*;
use bankid_sim::testdb::TestDb;
use common::audit_db;

const ANNA: &str = "198503121116";

fn last_error() -> String {
    let mut buf = [0 as c_char; 512];
    let mut len = 0usize;
    unsafe { bankid_last_error(buf.as_mut_ptr(), buf.len(), &mut len) };
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn wait_final(order: bankid_order) -> u32 {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let mut st = 0u32;
        assert_eq!(unsafe { bankid_poll(order, &mut st) }, BANKID_OK);
        if st != bankid_state::BANKID_STATE_PENDING as u32 || Instant::now() > until {
            return st;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn defaults() -> bankid_start_options {
    let mut o = std::mem::MaybeUninit::<bankid_start_options>::uninit();
    assert_eq!(
        unsafe { bankid_start_options_init(o.as_mut_ptr()) },
        BANKID_OK
    );
    unsafe { o.assume_init() }
}

const COMPLETE: u32 = bankid_state::BANKID_STATE_COMPLETE as u32;

/// Three identifications through the C ABI (plain `bankid_start`, version 3 with a call id
/// and a channel, a version-2 struct), then shutdown: three records in `database`.
fn orders_from_c(env: &common::Env, config: &str, database: &Database, key: &PseudonymKey) {
    let cfg = CString::new(env.write_toml(config).to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe { bankid_init(cfg.as_ptr()) },
        BANKID_OK,
        "{}",
        last_error()
    );
    let anna = CString::new(ANNA).unwrap();
    let mut order: bankid_order = 0;

    // A host that does nothing about the audit trail.
    assert_eq!(
        unsafe { bankid_start(anna.as_ptr(), 0, &mut order) },
        BANKID_OK
    );
    assert_eq!(wait_final(order), COMPLETE);
    assert_eq!(bankid_release(order), BANKID_OK);

    // Version 3: the call's identifier and the channel.
    let uniqueid = CString::new("1700000000.7").unwrap();
    let mut o = defaults();
    o.personal_number = anna.as_ptr();
    o.call_id = uniqueid.as_ptr();
    o.channel = bankid_channel::BANKID_CHANNEL_FLOW_RUN as u32;
    assert_eq!(
        unsafe { bankid_start_with(&o, &mut order) },
        BANKID_OK,
        "{}",
        last_error()
    );
    assert_eq!(wait_final(order), COMPLETE);
    assert_eq!(bankid_release(order), BANKID_OK);

    // A version-2 struct (up to require_id_document): what lies past it is never read.
    let mut v2 = defaults();
    v2.personal_number = anna.as_ptr();
    v2.struct_size = std::mem::offset_of!(bankid_start_options, call_id) as u32;
    v2.call_id = std::ptr::dangling::<c_char>();
    v2.channel = 99;
    assert_eq!(
        unsafe { bankid_start_with(&v2, &mut order) },
        BANKID_OK,
        "{}",
        last_error()
    );
    assert_eq!(wait_final(order), COMPLETE);
    assert_eq!(bankid_release(order), BANKID_OK);

    // Bad version-3 values start nothing and are not quoted back.
    let mut bad = defaults();
    bad.personal_number = anna.as_ptr();
    bad.channel = 9;
    assert_eq!(
        unsafe { bankid_start_with(&bad, &mut order) },
        BANKID_INVALID_ARGUMENT
    );
    assert!(last_error().contains("opts->channel 9"), "{}", last_error());
    let long = CString::new(format!("secret-call-{}", "x".repeat(200))).unwrap();
    bad.channel = 0;
    bad.call_id = long.as_ptr();
    assert_eq!(
        unsafe { bankid_start_with(&bad, &mut order) },
        BANKID_INVALID_ARGUMENT
    );
    assert!(
        last_error().contains("opts->call_id") && !last_error().contains("secret-call"),
        "{}",
        last_error()
    );
    // The shutdown writes what is queued and joins the writer.
    assert_eq!(bankid_shutdown(), BANKID_OK);

    let rows = audit_db::orders(database);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let sim_refs: Vec<String> = env.lab.orders().into_iter().map(|o| o.order_ref).collect();
    for r in &rows {
        assert_eq!(r.state, "complete");
        assert_eq!(r.pnr_masked, "850312-XXXX");
        assert_eq!(
            r.pnr_pseudonym,
            key.pseudonym(&bankid::Personnummer::parse(ANNA).unwrap())
        );
        assert!(sim_refs.contains(r.order_ref.as_ref().unwrap()), "{r:?}");
        let sent = env
            .lab
            .completion_sent(r.order_ref.as_deref().unwrap())
            .unwrap();
        let kept: serde_json::Value =
            serde_json::from_str(r.completion_data.as_deref().unwrap()).unwrap();
        assert_eq!(kept, sent);
    }
    let tagged: Vec<&Row> = rows.iter().filter(|r| r.call_id.is_some()).collect();
    assert_eq!(tagged.len(), 1, "{rows:#?}");
    assert_eq!(tagged[0].call_id.as_deref(), Some("1700000000.7"));
    assert_eq!(tagged[0].channel, "flow-run");
    assert_eq!(
        rows.iter().filter(|r| r.channel == "c-abi").count(),
        2,
        "plain bankid_start and the version-2 struct: {rows:#?}"
    );
}

#[test]
fn every_c_abi_order_is_recorded_in_sqlite_and_in_postgresql() {
    // SQLite: the lab's configuration keeps its audit database in the lab's directory.
    let env = common::sim();
    let file = Database::Sqlite(env.lab.audit_db_file());
    let key_file = env.lab.audit_key_file();
    // The key is made on first use; make it here to know it.
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    let key = PseudonymKey::load_or_create(&key_file).unwrap();
    orders_from_c(&env, "", &file, &key);

    // PostgreSQL: the same against a fresh database (a shared one needs the key given).
    let env = common::sim();
    let pg = TestDb::new();
    let key_file = env.dir().join("shared.key");
    let key = PseudonymKey::load_or_create(&key_file).unwrap();
    let config = format!(
        "audit_database = \"{}\"\naudit_key_file = \"{}\"\n",
        pg.url(),
        key_file.display()
    );
    orders_from_c(&env, &config, &Database::Postgres(pg.url().into()), &key);
}
