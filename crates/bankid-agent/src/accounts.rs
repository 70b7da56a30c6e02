//! Agent accounts: a TOML file of names, argon2 password hashes and roles.
//!
//! ```toml
//! [[agent]]
//! name = "anna"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//!
//! [[agent]]
//! name = "sara"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! role = "supervisor"
//! ```
//!
//! An entry without `role` is an agent, so files written before roles existed keep working
//! and nobody gains a right by omission. Supervisors may also use the agent page; the
//! supervisor view (records, charts, evidence) is theirs alone.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use crate::error::StartupError;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    #[serde(default)]
    agent: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    password_hash: String,
    /// Absent: an agent.
    #[serde(default, skip_serializing_if = "Role::is_agent")]
    role: Role,
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Identifies callers on the agent page.
    #[default]
    Agent,
    /// Also sees the supervisor view: every record, the charts, the evidence.
    Supervisor,
}

impl Role {
    /// `agent` or `supervisor`, as in the accounts file, the session table and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
        }
    }

    /// The inverse of [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Agent, Role::Supervisor]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    fn is_agent(&self) -> bool {
        *self == Role::Agent
    }
}

/// One account as held in memory: the hash to verify and the role.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    password_hash: String,
    role: Role,
}

/// The agents who may log in.
#[derive(Debug, Clone)]
pub struct Accounts {
    by_name: HashMap<String, Account>,
    /// Verified against when the name is unknown, so that both cases cost the same.
    dummy_hash: String,
}

/// What the first run created.
#[derive(Debug, Clone)]
pub struct FirstAccount {
    /// The agent name.
    pub name: String,
    /// The generated password (shown once, stored only as a hash).
    pub password: String,
}

/// An argon2id hash of `password` in PHC string form.
pub fn hash_password(password: &str) -> String {
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// A random password of 20 letters and digits.
pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

impl Accounts {
    /// Reads the accounts file. Errors name the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Accounts, StartupError> {
        let file = read_file(path)?;
        let mut by_name = HashMap::new();
        for (i, e) in file.agent.into_iter().enumerate() {
            let bad = |problem: &str| {
                StartupError::accounts(path, format!("agent #{} ({:?}): {problem}", i + 1, e.name))
            };
            if !valid_name(&e.name) {
                return Err(bad("a name is 1–64 letters, digits, '.', '_', '-' or '@'"));
            }
            if PasswordHash::new(&e.password_hash).is_err() {
                return Err(bad(
                    "password_hash is not a PHC hash string (make one with `bankid-agent add-agent NAME`)",
                ));
            }
            let account = Account {
                password_hash: e.password_hash.clone(),
                role: e.role,
            };
            if by_name
                .insert(e.name.to_ascii_lowercase(), account)
                .is_some()
            {
                return Err(bad("the name appears twice"));
            }
        }
        if by_name.is_empty() {
            return Err(StartupError::accounts(
                path,
                "no [[agent]] entries; add one with `bankid-agent add-agent NAME`",
            ));
        }
        Ok(Accounts {
            by_name,
            dummy_hash: hash_password(&generate_password()),
        })
    }

    /// Loads the file, or — when it does not exist — creates it with one agent, `agent`, and a
    /// generated password, which is returned so it can be shown once.
    pub fn load_or_create(path: &Path) -> Result<(Accounts, Option<FirstAccount>), StartupError> {
        if path.exists() {
            return Ok((Accounts::load(path)?, None));
        }
        let password = generate_password();
        add_agent(path, "agent", &password, Role::Agent)?;
        Ok((
            Accounts::load(path)?,
            Some(FirstAccount {
                name: "agent".into(),
                password,
            }),
        ))
    }

    /// Agents from (name, password) pairs, for tests and embedding.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Accounts {
        let with_roles: Vec<_> = pairs.iter().map(|(n, p)| (*n, *p, Role::Agent)).collect();
        Accounts::from_entries(&with_roles)
    }

    /// Accounts from (name, password, role), for tests and embedding.
    pub fn from_entries(entries: &[(&str, &str, Role)]) -> Accounts {
        Accounts {
            by_name: entries
                .iter()
                .map(|(n, p, role)| {
                    let account = Account {
                        password_hash: hash_password(p),
                        role: *role,
                    };
                    (n.to_ascii_lowercase(), account)
                })
                .collect(),
            dummy_hash: hash_password(&generate_password()),
        }
    }

    /// The canonical (lower-case) name if `name` and `password` match an account. Takes about
    /// as long for an unknown name as for a wrong password. CPU-heavy: call off the async
    /// threads.
    pub fn verify(&self, name: &str, password: &str) -> Option<String> {
        let key = name.trim().to_ascii_lowercase();
        let (hash, known) = match self.by_name.get(&key) {
            Some(a) => (a.password_hash.as_str(), true),
            None => (self.dummy_hash.as_str(), false),
        };
        let parsed = PasswordHash::new(hash).ok()?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        (ok && known).then_some(key)
    }

    /// The role of the agent of this (canonical, lower-case) name, if there is one.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.by_name.get(name).map(|a| a.role)
    }

    /// Whether the agent of this (canonical, lower-case) name exists here with the same
    /// password hash and role as in `other` (not removed, password not reset, role unchanged).
    pub fn same_entry(&self, name: &str, other: &Accounts) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|a| other.by_name.get(name) == Some(a))
    }

    /// A fingerprint of the entry of this (canonical, lower-case) name: hex SHA-256 of its
    /// password hash and role. A session keeps the one it was made from; any other value now
    /// (the entry removed, its password reset, its role changed) ends the session.
    pub fn fingerprint(&self, name: &str) -> Option<String> {
        use sha2::{Digest, Sha256};
        self.by_name.get(name).map(|a| {
            let mut h = Sha256::new();
            h.update(a.password_hash.as_bytes());
            h.update(b"\n");
            h.update(a.role.as_str().as_bytes());
            hex::encode(h.finalize())
        })
    }

    /// Accounts with these (name, password hash, role) entries as they are, hashes unchecked:
    /// for unit tests that need accounts but no logins (argon2 is slow in debug builds).
    #[cfg(test)]
    pub(crate) fn with_hashes(entries: &[(&str, &str, Role)]) -> Accounts {
        Accounts {
            by_name: entries
                .iter()
                .map(|(n, h, role)| {
                    let account = Account {
                        password_hash: h.to_string(),
                        role: *role,
                    };
                    (n.to_ascii_lowercase(), account)
                })
                .collect(),
            dummy_hash: String::new(),
        }
    }

    /// Whether an agent of this (canonical, lower-case) name is in the file.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Every (canonical, lower-case) name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// How many agents there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Adds an account to the accounts file (creating it, readable by its owner only), or replaces
/// the password of an existing one. The role is set to `role` either way: resetting a
/// supervisor's password without `--supervisor` makes them an agent (no right is kept by
/// accident).
pub fn add_agent(path: &Path, name: &str, password: &str, role: Role) -> Result<(), StartupError> {
    if !valid_name(name) {
        return Err(StartupError::AgentName(name.to_string()));
    }
    let mut file = if path.exists() {
        read_file(path)?
    } else {
        AccountsFile::default()
    };
    let hash = hash_password(password);
    match file
        .agent
        .iter_mut()
        .find(|e| e.name.eq_ignore_ascii_case(name))
    {
        Some(e) => {
            e.password_hash = hash;
            e.role = role;
        }
        None => file.agent.push(Entry {
            name: name.to_string(),
            password_hash: hash,
            role,
        }),
    }
    let body = toml::to_string(&file).map_err(|e| StartupError::accounts(path, e.to_string()))?;
    let text = format!(
        "# bankid-agent accounts: argon2id password hashes; role = \"supervisor\" for the\n# supervisor view (none: an agent). Add or reset one with `bankid-agent add-agent NAME`\n# (`--supervisor NAME` for a supervisor).\n\n{body}"
    );
    write_private(path, &text).map_err(|e| StartupError::io(path, e))
}

fn read_file(path: &Path) -> Result<AccountsFile, StartupError> {
    let text = std::fs::read_to_string(path).map_err(|e| StartupError::io(path, e))?;
    toml::from_str(&text).map_err(|e| StartupError::accounts(path, e.message()))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_creates_a_working_account_and_later_runs_read_it() {
        let dir = std::env::temp_dir().join(format!("agent-acc-{}", std::process::id()));
        let path = dir.join("agents.toml");
        let _ = std::fs::remove_dir_all(&dir);
        let (acc, first) = Accounts::load_or_create(&path).unwrap();
        let first = first.expect("a first account");
        assert_eq!(
            acc.verify("agent", &first.password).as_deref(),
            Some("agent")
        );
        assert_eq!(
            acc.verify("Agent", &first.password).as_deref(),
            Some("agent")
        );
        assert_eq!(acc.verify("agent", "wrong"), None);
        assert_eq!(acc.verify("nobody", &first.password), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&first.password), "only the hash is stored");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "accounts file is private: {mode:o}");
        }
        let (_, again) = Accounts::load_or_create(&path).unwrap();
        assert!(again.is_none());
        add_agent(&path, "bertil", "hemligt-lösen", Role::Agent).unwrap();
        let acc = Accounts::load(&path).unwrap();
        assert_eq!(acc.len(), 2);
        assert!(acc.verify("bertil", "hemligt-lösen").is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn roles_are_kept_in_the_file_and_an_entry_without_one_is_an_agent() {
        let dir = std::env::temp_dir().join(format!("agent-acc-roles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agents.toml");
        // A file from before roles: no role key at all.
        let h = hash_password("x");
        std::fs::write(
            &path,
            format!("[[agent]]\nname = \"anna\"\npassword_hash = \"{h}\"\n"),
        )
        .unwrap();
        let before = Accounts::load(&path).unwrap();
        assert_eq!(before.role("anna"), Some(Role::Agent));
        add_agent(&path, "Sara", "s", Role::Supervisor).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("role = \"supervisor\""), "{text}");
        assert_eq!(
            text.matches("\nrole =").count(),
            1,
            "agents get no role line: {text}"
        );
        let after = Accounts::load(&path).unwrap();
        assert_eq!(after.role("sara"), Some(Role::Supervisor));
        assert_eq!(after.role("anna"), Some(Role::Agent));
        assert_eq!(after.role("nobody"), None);
        assert!(after.same_entry("anna", &before));
        // Resetting without --supervisor makes an agent, and a changed role is another entry.
        add_agent(&path, "sara", "t", Role::Agent).unwrap();
        let demoted = Accounts::load(&path).unwrap();
        assert_eq!(demoted.role("sara"), Some(Role::Agent));
        assert!(!demoted.same_entry("sara", &after));
        std::fs::write(
            &path,
            format!("[[agent]]\nname = \"a\"\npassword_hash = \"{h}\"\nrole = \"admin\"\n"),
        )
        .unwrap();
        let err = Accounts::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("unknown variant") && err.contains("supervisor"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("agent-acc-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agents.toml");
        for (text, want) in [
            (
                "[[agent]]\nname = \"a\"\npassword_hash = \"secret\"\n",
                "PHC",
            ),
            (
                "[[agent]]\nname = \"a b\"\npassword_hash = \"x\"\n",
                "a name is",
            ),
            ("", "no [[agent]] entries"),
            ("[[agent]]\nname = \"a\"\n", "password_hash"),
            ("agent = 3", "invalid type"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Accounts::load(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains("agents.toml"), "{err}");
        }
        let h = hash_password("x");
        std::fs::write(
            &path,
            format!("[[agent]]\nname = \"a\"\npassword_hash = \"{h}\"\n[[agent]]\nname = \"A\"\npassword_hash = \"{h}\"\n"),
        )
        .unwrap();
        assert!(Accounts::load(&path)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
