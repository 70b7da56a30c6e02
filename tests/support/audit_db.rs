//! The audit tables as a test reads them back, from a real SQLite file or a real PostgreSQL
//! database: one reader, shared by the library's and the tools' tests (`#[path]`-included).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bankid::audit::{db, Database, Row};
use sqlx::Row as _;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// Every order record, oldest first, with its evidence (`completion_data`) when there is one.
pub fn orders(database: &Database) -> Vec<Row> {
    block_on(async {
        let pool = db::connect(database, 1, Duration::from_secs(10))
            .await
            .expect("the audit database opens");
        let rows = sqlx::query(
            "SELECT o.id, o.started_at, o.finished_at, o.duration_ms, o.channel, o.agent, \
             o.call_id, o.caller_id, o.host, o.mode, o.call_initiator, o.state, o.hint_code, \
             o.error_code, o.order_ref, o.pnr_masked, o.pnr_pseudonym, o.pseudonym_key_id, \
             e.completion_data FROM audit_orders o \
             LEFT JOIN audit_evidence e ON e.order_id = o.id ORDER BY o.started_at, o.id",
        )
        .fetch_all(&pool)
        .await
        .expect("audit_orders reads");
        let out = rows
            .iter()
            .map(|r| Row {
                id: r.get("id"),
                started_at: r.get("started_at"),
                finished_at: r.get("finished_at"),
                duration_ms: r.get("duration_ms"),
                channel: r.get("channel"),
                agent: r.get("agent"),
                call_id: r.get("call_id"),
                caller_id: r.get("caller_id"),
                host: r.get("host"),
                mode: r.get("mode"),
                call_initiator: r.get("call_initiator"),
                state: r.get("state"),
                hint_code: r.get("hint_code"),
                error_code: r.get("error_code"),
                order_ref: r.get("order_ref"),
                pnr_masked: r.get("pnr_masked"),
                pnr_pseudonym: r.get("pnr_pseudonym"),
                pseudonym_key_id: r.get("pseudonym_key_id"),
                completion_data: r.get("completion_data"),
            })
            .collect();
        pool.close().await;
        out
    })
}

/// `SELECT count(*) …` of `table`.
pub fn count(database: &Database, table: &str) -> i64 {
    block_on(async {
        let pool = db::connect(database, 1, Duration::from_secs(10))
            .await
            .expect("the audit database opens");
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .expect("counts");
        pool.close().await;
        n
    })
}

/// Runs statements (test set-up: rows of the past).
pub fn execute(database: &Database, statements: &[String]) {
    block_on(async {
        let pool = db::connect(database, 1, Duration::from_secs(10))
            .await
            .expect("the audit database opens");
        for s in statements {
            sqlx::query(s).execute(&pool).await.expect(s);
        }
        pool.close().await;
    })
}

/// Waits (at most `within`) until `database` holds `n` order records; the records.
pub fn wait_for_orders(database: &Database, n: usize, within: Duration) -> Vec<Row> {
    let until = Instant::now() + within;
    loop {
        let rows = orders(database);
        if rows.len() >= n || Instant::now() >= until {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Records waiting in a spool directory (from the file names, as the writer counts them).
pub fn spooled(dir: &std::path::Path) -> usize {
    bankid::audit::spool::waiting_in(dir)
        .expect("the spool lists")
        .unwrap_or(0)
}

/// The records once what finished processes left in the spool is written. A short-lived
/// process (`identify`, `flow run`) flushes for at most 2 s before it exits; when its first
/// connect takes longer (PostgreSQL's login in a debug build on a loaded machine) its records
/// wait in the spool — not lost — for the next process's writer to replay. This is that next
/// writer, started with the same settings; it waits (up to a minute) until the spool is empty
/// and the database holds at least `n` records.
pub fn settle(settings: &bankid::audit::AuditSettings, n: usize) -> Vec<Row> {
    let database = settings.database.as_ref().expect("records are on");
    if spooled(&settings.spool_dir) == 0 && orders(database).len() >= n {
        return orders(database);
    }
    let audit = bankid::audit::Audit::start(settings)
        .expect("the writer starts")
        .expect("records are on");
    let until = Instant::now() + Duration::from_secs(60);
    while (spooled(&settings.spool_dir) > 0 || orders(database).len() < n) && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    audit.shutdown();
    orders(database)
}
