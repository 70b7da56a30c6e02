//! The keyed pseudonym of a personal number: HMAC-SHA-256 under a secret key, in hex. The
//! records hold it instead of the number, so a supervisor who types a number finds that
//! person's records, while the table alone names nobody (a 12-digit number is too easy to
//! guess for an unkeyed hash to hide it).
//!
//! Every host writing one database must use the same key, or a lookup misses the other hosts'
//! records; each record names its key by [`PseudonymKey::id`] so a changed key shows.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::personnummer::Personnummer;

/// The fewest key bytes accepted.
pub const MIN_KEY_BYTES: usize = 32;

/// A pseudonym key. Its bytes never appear in `Debug` or any message.
#[derive(Clone)]
pub struct PseudonymKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PseudonymKey({})", self.id())
    }
}

/// A key file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for KeyError {}

impl PseudonymKey {
    /// A key from its bytes (at least [`MIN_KEY_BYTES`]).
    pub fn from_bytes(key: &[u8]) -> Result<PseudonymKey, KeyError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError(format!(
                "the pseudonym key has {} bytes; at least {MIN_KEY_BYTES} are needed",
                key.len()
            )));
        }
        Ok(PseudonymKey { key: key.to_vec() })
    }

    /// Reads a key file: hex (64 or more digits; surrounding whitespace ignored, so
    /// `openssl rand -hex 32 > FILE` makes one). Errors name the file, never its content.
    pub fn load(path: &Path) -> Result<PseudonymKey, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError(format!("pseudonym key file {}: {e}", path.display())))?;
        let bytes = hex::decode(text.trim()).map_err(|_| {
            KeyError(format!(
                "pseudonym key file {}: not hex (make one with `openssl rand -hex 32`)",
                path.display()
            ))
        })?;
        PseudonymKey::from_bytes(&bytes)
            .map_err(|e| KeyError(format!("pseudonym key file {}: {e}", path.display())))
    }

    /// Reads the key file, or makes one with 32 random bytes (mode 0600) when there is none:
    /// the embedded SQLite default needs no set-up. The key is written whole (and synced) to a
    /// temporary file beside it, then hard-linked to the name: the name never shows an empty or
    /// partial key, and of two processes starting at once the second link fails and that
    /// process uses the first one's key.
    pub fn load_or_create(path: &Path) -> Result<PseudonymKey, KeyError> {
        use std::os::unix::fs::OpenOptionsExt;
        if path.exists() {
            return PseudonymKey::load(path);
        }
        let failed =
            |e: std::io::Error| KeyError(format!("pseudonym key file {}: {e}", path.display()));
        let key: [u8; 32] = rand::random();
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let temp = std::path::PathBuf::from(temp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut f| {
                f.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
                f.sync_all()
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(failed(e));
        }
        let linked = std::fs::hard_link(&temp, path);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
                        log::warn!("pseudonym key directory {}: fsync: {e}", dir.display());
                    }
                }
                log::info!("made a new pseudonym key in {}", path.display());
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed(e)),
        }
        PseudonymKey::load(path)
    }

    /// The pseudonym of `pnr`: 64 hex digits.
    pub fn pseudonym(&self, pnr: &Personnummer) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(pnr.as_str12().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Which key this is, without revealing it: the first 16 hex digits of SHA-256 of the key.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(&self.key)[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pnr(s: &str) -> Personnummer {
        Personnummer::parse(s).unwrap()
    }

    #[test]
    fn a_pseudonym_depends_on_the_number_and_the_key_and_not_on_how_it_was_typed() {
        let a = PseudonymKey::from_bytes(&[1; 32]).unwrap();
        let b = PseudonymKey::from_bytes(&[2; 32]).unwrap();
        let p = a.pseudonym(&pnr("198503121116"));
        assert_eq!(p.len(), 64);
        assert_eq!(p, a.pseudonym(&pnr("850312-1116")));
        assert_ne!(p, a.pseudonym(&pnr("196801642395")));
        assert_ne!(p, b.pseudonym(&pnr("198503121116")));
        assert!(!p.contains("850312"));
        assert_ne!(a.id(), b.id());
        assert!(!format!("{a:?}").contains("0101"));
    }

    #[test]
    fn processes_racing_to_make_the_key_all_get_the_same_one() {
        let dir = std::env::temp_dir().join(format!("bankid-key-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for round in 0..20 {
            let path = dir.join(format!("audit-{round}.key"));
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let ids: Vec<String> = (0..8)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        PseudonymKey::load_or_create(&path).map(|k| k.id())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap().unwrap())
                .collect();
            assert!(ids.iter().all(|id| *id == ids[0]), "round {round}: {ids:?}");
        }
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn key_files_are_made_once_private_and_bad_ones_refused_without_their_content() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("bankid-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.key");
        let made = PseudonymKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(PseudonymKey::load_or_create(&path).unwrap().id(), made.id());
        std::fs::write(&path, "abcd\n").unwrap();
        let e = PseudonymKey::load(&path).unwrap_err();
        assert!(e.0.contains("2 bytes") && !e.0.contains("abcd"), "{e}");
        std::fs::write(&path, "top secret words").unwrap();
        let e = PseudonymKey::load(&path).unwrap_err();
        assert!(e.0.contains("not hex") && !e.0.contains("secret"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
