//! The one door to the audit database: which kinds are accepted, how a connection is made,
//! and the versioned migrations (`migrations/*.sql`, compiled in), run on every connect.
//!
//! SQLite (a file, the embedded default) and PostgreSQL (shared by several IVR hosts and
//! agent-page instances) go through sqlx's `Any` driver, so every query is written once: the
//! SQL is the subset both speak (`$1` placeholders, `ON CONFLICT DO NOTHING`, `BIGINT`, `TEXT`).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

/// The schema, versioned; the same files for every database kind.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where the audit trail is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file, created (with its directory) when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL server: `postgres://user:password@host:port/database`.
    Postgres(String),
}

impl std::fmt::Debug for Database {
    /// Never shows a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Database {
    /// The file, or the URL with any password replaced by `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Database::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, and any `password=` in
/// the query string blanked. The userinfo ends at the LAST `@` before the path: a password
/// with an unencoded `@` is hidden whole.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority_end = before_query
        .rfind('@')
        .map(|at| {
            at + before_query[at..]
                .find('/')
                .unwrap_or(before_query.len() - at)
        })
        .unwrap_or(0);
    let (authority, path) = before_query.split_at(authority_end);
    let mut out = format!("{scheme}://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:***@{host}")),
            None => out.push_str(&format!("{userinfo}@{host}")),
        },
        None => out.push_str(authority),
    }
    out.push_str(path);
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A database setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseError(pub String);

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for DatabaseError {}

impl FromStr for Database {
    type Err = DatabaseError;

    /// `postgres://…` / `postgresql://…`, `sqlite:PATH` / `sqlite://PATH`, or an absolute path
    /// (SQLite). Anything else (a MySQL URL, a relative path) is refused by name.
    fn from_str(s: &str) -> Result<Database, DatabaseError> {
        let s = s.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Database::Postgres(s.to_string()));
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .unwrap_or(s);
        if path.contains("://") {
            return Err(DatabaseError(format!(
                "{} is not a database this version keeps records in: give postgres://… or an \
                 SQLite file (an absolute path)",
                redact(s)
            )));
        }
        let path = Path::new(path);
        if !path.is_absolute() {
            return Err(DatabaseError(format!(
                "the SQLite file {} must be an absolute path",
                path.display()
            )));
        }
        Ok(Database::Sqlite(path.to_path_buf()))
    }
}

impl Database {
    /// Whether several hosts can share it (and so need one pseudonym key between them).
    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    pub(crate) fn connect_options(&self) -> Result<AnyConnectOptions, DatabaseError> {
        let url = match self {
            Database::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
            Database::Postgres(url) => url.clone(),
        };
        AnyConnectOptions::from_str(&url)
            .map_err(|e| DatabaseError(format!("audit database {self}: {e}")))
    }
}

/// Installs sqlx's drivers for `Any`, once per process.
pub(crate) fn prepare_drivers() {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
}

/// Installs sqlx's drivers for `Any` (once per process) and, for SQLite, creates the file's
/// directory (mode 0700) when missing: what every connection needs first.
pub(crate) fn prepare(db: &Database) -> Result<(), DatabaseError> {
    prepare_drivers();
    if let Database::Sqlite(path) = db {
        if let Some(dir) = path.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    DatabaseError(format!("audit database directory {}: {e}", dir.display()))
                })?;
        }
        // The file holds evidence with whole personal numbers: made 0600 here, whatever the
        // umask, before SQLite opens it (SQLite gives its -wal and -shm the file's mode).
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| DatabaseError(format!("audit database {}: {e}", path.display())))?;
    }
    Ok(())
}

/// After a connection is made: the -wal and -shm SQLite made beside `db` are 0600 too (should
/// an SQLite build not copy the file's mode). Best effort: a file another user owns is left.
pub(crate) fn restrict_sqlite_side_files(db: &Database) {
    use std::os::unix::fs::PermissionsExt;
    if let Database::Sqlite(path) = db {
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = PathBuf::from(side);
            if let Ok(meta) = std::fs::metadata(&side) {
                if meta.permissions().mode() & 0o077 != 0 {
                    if let Err(e) =
                        std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600))
                    {
                        log::warn!("audit database {}: chmod 0600: {e}", side.display());
                    }
                }
            }
        }
    }
}

/// The settings of every new SQLite connection. WAL: readers (the supervisor page) never wait
/// for the writer; the busy timeout lets several processes (each `identify`) write one file;
/// FULL: a committed record survives a power cut.
pub(crate) async fn set_up_sqlite(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA busy_timeout = 10000",
        "PRAGMA foreign_keys = ON",
    ] {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Opens a pool of at most `max_connections` to `db` (creating an SQLite file and its
/// directory, mode 0700, when missing) and brings the schema up to date. Fails rather than
/// waits longer than `timeout` for the server.
pub async fn connect(
    db: &Database,
    max_connections: u32,
    timeout: Duration,
) -> Result<AnyPool, DatabaseError> {
    prepare(db)?;
    let sqlite = matches!(db, Database::Sqlite(_));
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    set_up_sqlite(conn).await?;
                }
                Ok(())
            })
        })
        .acquire_timeout(timeout)
        .connect_with(db.connect_options()?)
        .await
        .map_err(|e| DatabaseError(format!("audit database {db}: {e}")))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| DatabaseError(format!("audit database {db}: migration: {e}")))?;
    restrict_sqlite_side_files(db);
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_settings_are_parsed_and_passwords_never_shown() {
        let pg: Database = "postgres://audit:s3cret@db.example:5432/bankid"
            .parse()
            .unwrap();
        assert!(pg.is_shared());
        assert_eq!(
            pg.to_string(),
            "postgres://audit:***@db.example:5432/bankid"
        );
        assert!(!format!("{pg:?}").contains("s3cret"));
        assert_eq!(
            "/var/lib/bankid/audit.db".parse::<Database>().unwrap(),
            Database::Sqlite("/var/lib/bankid/audit.db".into())
        );
        assert_eq!(
            "sqlite:///var/lib/bankid/audit.db"
                .parse::<Database>()
                .unwrap(),
            Database::Sqlite("/var/lib/bankid/audit.db".into())
        );
        let e = "mysql://u:pw@h/db".parse::<Database>().unwrap_err();
        assert!(
            e.0.contains("mysql://u:***@h/db") && !e.0.contains("pw@"),
            "{e}"
        );
        assert!("audit.db"
            .parse::<Database>()
            .unwrap_err()
            .0
            .contains("absolute"));
    }

    #[test]
    fn redact_hides_a_password_with_an_at_sign_and_one_in_the_query_string() {
        assert_eq!(
            redact("postgres://u:p@ss@w0rd@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact("postgres://u@h/db?password=x&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgres://u:a@b@h/db?sslmode=disable&PASSWORD=y@z"),
            "postgres://u:***@h/db?sslmode=disable&PASSWORD=***"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://h/db?x=1"), "postgres://h/db?x=1");
        assert_eq!(redact("postgres://u:s@h"), "postgres://u:***@h");
        let db = Database::Postgres("postgres://u:top@secret@h/db?password=other".into());
        let shown = format!("{db} {db:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("other"),
            "{shown}"
        );
    }

    #[test]
    fn a_new_sqlite_file_and_its_wal_and_shm_are_0600_under_umask_022() {
        use std::os::unix::fs::PermissionsExt;
        // 022 is the usual umask (so other tests running meanwhile see what they always see).
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        let dir = std::env::temp_dir().join(format!("bankid-audit-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for (name, via_store) in [("pool.db", false), ("store.db", true)] {
            let file = dir.join(name);
            let db = Database::Sqlite(file.clone());
            rt.block_on(async {
                if via_store {
                    let store = crate::audit::store::Store::open(&db, Duration::from_secs(5))
                        .await
                        .unwrap();
                    let wal = PathBuf::from(format!("{}-wal", file.display()));
                    assert_eq!(mode(&wal), 0o600, "{}", wal.display());
                    store.close().await;
                } else {
                    let pool = connect(&db, 1, Duration::from_secs(5)).await.unwrap();
                    for side in ["-wal", "-shm"] {
                        let p = PathBuf::from(format!("{}{side}", file.display()));
                        assert_eq!(mode(&p), 0o600, "{}", p.display());
                    }
                    pool.close().await;
                }
            });
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_new_sqlite_file_gets_the_schema_and_a_second_connect_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("bankid-audit-db-{}", std::process::id()));
        let db = Database::Sqlite(dir.join("sub/audit.db"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = connect(&db, 1, Duration::from_secs(5)).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_orders")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(n, 0);
            pool.close().await;
            let pool = connect(&db, 1, Duration::from_secs(5)).await.unwrap();
            let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(applied as usize, MIGRATOR.iter().count());
            pool.close().await;
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
