//! The local spool: where records wait, on disk, until the database has them. Every batch is
//! written here first and removed only after its transaction committed, so a database outage,
//! a crash or a `kill -9` between an identification and its commit loses nothing: the next
//! writer (this process reconnecting, or the next one to start) replays what it finds.
//!
//! One file per batch, `<unix ms>-<pid>-<random>-<records>.batch`: a header line, then one JSON
//! [`Row`] per line. It is written under a temporary name, fsynced, renamed into place and the
//! directory fsynced, so a file under its final name is always whole. The directory is 0700
//! and every file 0600: evidence holds whole personal numbers and names.
//!
//! Several processes may share a spool (each `bankid-ivr identify` is one): a file may be
//! replayed by two of them at once, which is harmless — the insert is `ON CONFLICT (id) DO
//! NOTHING` — and the second removal finds nothing. The record count is in the file name, so
//! the spool's size is known from a directory listing, without reading a file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::Row;

/// The largest spool file read back (a batch holds at most a few hundred records of at most
/// one BankID answer each); a larger one is set aside, not read into memory.
const MAX_FILE_BYTES: u64 = 256 << 20;
/// The format version in each file's header line.
const VERSION: u32 = 1;
/// Temporary files older than this were left by a process that died while writing: removed.
const STALE_TEMP_SECS: u64 = 3600;

/// What went wrong with the spool.
#[derive(Debug)]
pub enum SpoolError {
    /// The spool holds `waiting` records and the batch of `batch` would pass the limit.
    Full {
        /// Records waiting now.
        waiting: usize,
        /// The batch refused.
        batch: usize,
        /// `audit_spool_max_records`.
        max: usize,
    },
    /// The file system said no.
    Io(String),
    /// A spool file is not one this version wrote whole (it is set aside as `.bad`).
    Corrupt(String),
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Full {
                waiting,
                batch,
                max,
            } => write!(
                f,
                "the audit spool is full: {waiting} records wait, {batch} more would pass \
                 audit_spool_max_records = {max}"
            ),
            SpoolError::Io(e) | SpoolError::Corrupt(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for SpoolError {}

/// A batch file in the spool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpoolFile {
    name: String,
    records: usize,
}

impl SpoolFile {
    /// Its file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many records it holds (from its name).
    pub fn records(&self) -> usize {
        self.records
    }

    /// `…-<records>.batch` → the file, for names this module made.
    fn parse(name: &str) -> Option<SpoolFile> {
        let stem = name.strip_suffix(".batch")?;
        if stem.starts_with('.') {
            return None;
        }
        let records = stem.rsplit('-').next()?.parse().ok()?;
        Some(SpoolFile {
            name: name.to_string(),
            records,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    bankid_audit_spool: u32,
    records: usize,
}

/// The spool directory of one writer.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_records: usize,
    /// Records waiting, as of the last listing plus what this writer added and removed since.
    waiting: usize,
}

impl Spool {
    /// Opens `dir`, creating it (and its parents) with mode 0700 when missing; an existing
    /// directory is made 0700. Counts what waits there and removes temporary files that a
    /// process dying mid-write left behind.
    pub fn open(dir: &Path, max_records: usize) -> Result<Spool, SpoolError> {
        let io = |e: io::Error| SpoolError::Io(format!("audit spool {}: {e}", dir.display()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let meta = std::fs::metadata(dir).map_err(io)?;
        if !meta.is_dir() {
            return Err(SpoolError::Io(format!(
                "audit spool {} is not a directory",
                dir.display()
            )));
        }
        if meta.permissions().mode() & 0o777 != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_records,
            waiting: 0,
        };
        spool.remove_stale_temporaries();
        spool.rescan().map_err(io)?;
        Ok(spool)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records waiting (as of the last [`Spool::rescan`], with this writer's own changes).
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Lists the directory again (other processes may have added or replayed files).
    pub fn rescan(&mut self) -> io::Result<usize> {
        self.waiting = self.list()?.iter().map(SpoolFile::records).sum();
        Ok(self.waiting)
    }

    /// Every batch file, oldest first (names start with the time).
    pub fn list(&self) -> io::Result<Vec<SpoolFile>> {
        let mut files: Vec<SpoolFile> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| SpoolFile::parse(e.file_name().to_str()?))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Writes `rows` as one batch file, durably (fsync of the file and the directory), unless
    /// that would take the spool past its limit.
    pub fn append(&mut self, rows: &[Row]) -> Result<SpoolFile, SpoolError> {
        if self.waiting + rows.len() > self.max_records {
            // Others may have replayed meanwhile: count again before refusing.
            let _ = self.rescan();
            if self.waiting + rows.len() > self.max_records {
                return Err(SpoolError::Full {
                    waiting: self.waiting,
                    batch: rows.len(),
                    max: self.max_records,
                });
            }
        }
        let io = |e: io::Error| SpoolError::Io(format!("audit spool {}: {e}", self.dir.display()));
        let mut text = serde_json::to_string(&Header {
            bankid_audit_spool: VERSION,
            records: rows.len(),
        })
        .map_err(|e| SpoolError::Io(e.to_string()))?;
        text.push('\n');
        for row in rows {
            text.push_str(&serde_json::to_string(row).map_err(|e| SpoolError::Io(e.to_string()))?);
            text.push('\n');
        }
        let unique = format!(
            "{:013}-{}-{:016x}",
            super::record::UnixMs::now().0.max(0),
            std::process::id(),
            rand::random::<u64>()
        );
        let temp = self.dir.join(format!(".tmp-{unique}"));
        let file = SpoolFile {
            name: format!("{unique}-{}.batch", rows.len()),
            records: rows.len(),
        };
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&temp, self.dir.join(&file.name))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(io(e));
        }
        // Renamed: the batch is in the spool (and will be replayed) even should the directory
        // fsync fail, so it is reported spooled, not lost; only a power cut now could undo it.
        if let Err(e) = sync_dir(&self.dir) {
            log::warn!(
                "audit spool {}: fsync of the directory after writing {}: {e}",
                self.dir.display(),
                file.name
            );
        }
        self.waiting += file.records;
        Ok(file)
    }

    /// Reads a batch back. A file that is not whole (or not ours) is an error, and is renamed
    /// to `.bad` so it is not read again; an operator can look at it.
    pub fn read(&self, file: &SpoolFile) -> Result<Vec<Row>, SpoolError> {
        let path = self.dir.join(&file.name);
        let corrupt = |why: String| {
            let _ = std::fs::rename(&path, self.dir.join(format!("{}.bad", file.name)));
            SpoolError::Corrupt(format!(
                "audit spool file {} set aside as .bad: {why}",
                path.display()
            ))
        };
        let f = match File::open(&path) {
            Ok(f) => f,
            // Replayed and removed by another process meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SpoolError::Io(format!("{}: {e}", path.display()))),
        };
        let mut lines = BufReader::new(f.take(MAX_FILE_BYTES + 1)).lines();
        let header: Header = match lines.next() {
            Some(Ok(l)) => serde_json::from_str(&l).map_err(|e| corrupt(e.to_string()))?,
            _ => return Err(corrupt("no header".into())),
        };
        if header.bankid_audit_spool != VERSION || header.records != file.records {
            return Err(corrupt(format!(
                "header says version {} with {} records",
                header.bankid_audit_spool, header.records
            )));
        }
        let mut rows = Vec::with_capacity(header.records.min(4096));
        for line in lines {
            let line = line.map_err(|e| corrupt(e.to_string()))?;
            rows.push(serde_json::from_str::<Row>(&line).map_err(|e| corrupt(e.to_string()))?);
        }
        if rows.len() != header.records {
            return Err(corrupt(format!(
                "{} of {} records",
                rows.len(),
                header.records
            )));
        }
        Ok(rows)
    }

    /// Removes a batch whose records the database has. Already gone (another process replayed
    /// it) is fine.
    pub fn remove(&mut self, file: &SpoolFile) -> Result<(), SpoolError> {
        match std::fs::remove_file(self.dir.join(&file.name)) {
            Ok(()) => self.waiting = self.waiting.saturating_sub(file.records),
            // Another process got there first: count again rather than guess.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = self.rescan();
            }
            Err(e) => {
                return Err(SpoolError::Io(format!(
                    "audit spool {}: {e}",
                    self.dir.join(&file.name).display()
                )))
            }
        }
        Ok(())
    }

    /// Forgets a file [`Spool::read`] set aside.
    pub fn forget(&mut self, file: &SpoolFile) {
        self.waiting = self.waiting.saturating_sub(file.records);
    }

    fn remove_stale_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let stale = e
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(".tmp-"))
                && e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > STALE_TEMP_SECS);
            if stale {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Makes the next directory fsync on this thread fail (a test of what follows a rename).
    pub(crate) static FAIL_DIR_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    if FAIL_DIR_SYNC.with(|f| f.replace(false)) {
        return Err(io::Error::other("injected fsync failure"));
    }
    File::open(dir)?.sync_all()
}

/// The files set aside as `.bad` in the spool at `dir` (their records were counted lost),
/// for `bankid-ivr doctor`; none when there is no such directory.
pub fn set_aside_in(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut bad = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".bad") {
            bad.push(name);
        }
    }
    bad.sort();
    Ok(bad)
}

/// Records waiting in the spool at `dir`, for `bankid-ivr doctor` (`None`: no such directory).
pub fn waiting_in(dir: &Path) -> io::Result<Option<usize>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(Some(
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| SpoolFile::parse(e.file_name().to_str()?))
                .map(|f| f.records)
                .sum(),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> Row {
        Row {
            id: id.into(),
            started_at: 1,
            finished_at: 2,
            duration_ms: 1,
            channel: "c-abi".into(),
            agent: None,
            call_id: None,
            caller_id: None,
            host: "h".into(),
            mode: "identify".into(),
            call_initiator: "user".into(),
            state: "complete".into(),
            hint_code: None,
            error_code: None,
            order_ref: Some("r".into()),
            pnr_masked: "850312-XXXX".into(),
            pnr_pseudonym: "p".into(),
            pseudonym_key_id: "k".into(),
            completion_data: Some("{\"user\":{}}".into()),
        }
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bankid-spool-{tag}-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn batches_are_private_whole_counted_and_read_back_in_order() {
        let d = dir("order");
        let mut s = Spool::open(&d.join("spool"), 10).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(s.dir()), 0o700);
        let a = s.append(&[row("a"), row("b")]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = s.append(&[row("c")]).unwrap();
        assert_eq!(s.waiting(), 3);
        assert_eq!(mode(&s.dir().join(a.name())), 0o600);
        assert_eq!(s.list().unwrap(), vec![a.clone(), b.clone()]);
        let ids: Vec<String> = s.read(&a).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["a", "b"]);
        // Another process sees the same count from the names alone.
        assert_eq!(waiting_in(s.dir()).unwrap(), Some(3));
        assert_eq!(Spool::open(s.dir(), 10).unwrap().waiting(), 3);
        s.remove(&a).unwrap();
        s.remove(&a).unwrap();
        assert_eq!(s.waiting(), 1);
        assert_eq!(s.list().unwrap(), vec![b]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_full_spool_refuses_and_a_broken_file_is_set_aside() {
        let d = dir("full");
        let mut s = Spool::open(&d, 2).unwrap();
        s.append(&[row("a"), row("b")]).unwrap();
        match s.append(&[row("c")]) {
            Err(SpoolError::Full {
                waiting: 2,
                batch: 1,
                max: 2,
            }) => {}
            other => panic!("{other:?}"),
        }
        let f = s.list().unwrap().remove(0);
        let path = d.join(f.name());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert!(matches!(s.read(&f), Err(SpoolError::Corrupt(_))));
        assert!(!path.exists());
        assert!(d.join(format!("{}.bad", f.name())).exists());
        assert_eq!(s.list().unwrap(), vec![]);
        assert_eq!(set_aside_in(&d).unwrap(), vec![format!("{}.bad", f.name())]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_directory_fsync_after_the_rename_still_counts_the_batch_spooled() {
        let d = dir("dirsync");
        let mut s = Spool::open(&d, 10).unwrap();
        FAIL_DIR_SYNC.with(|f| f.set(true));
        let f = s.append(&[row("a")]).expect("renamed, so spooled");
        assert!(
            !FAIL_DIR_SYNC.with(|f| f.get()),
            "the injected failure was reached"
        );
        assert_eq!(s.waiting(), 1);
        assert_eq!(s.list().unwrap(), vec![f]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
