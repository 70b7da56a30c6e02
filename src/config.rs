//! Configuration: where BankID is, how we prove who we are, and how orders behave.
//! From a TOML file ([`Config::from_file`]) or `BANKID_*` environment variables
//! ([`Config::from_env`]); the keys are listed in the README.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::certinfo::CertInfo;
use crate::messages::Language;
use crate::order::handles::MAX_SLOTS;
use crate::order::LimitSettings;
use crate::rp::CallInitiator;
use crate::tls::{self, ClientIdentity};

/// BankID's test environment root (CN=Test BankID SSL Root CA v1 Test).
pub const TEST_ROOT_PEM: &str = include_str!("roots/test-root.pem");
/// BankID's production root (CN=BankID SSL Root CA v1).
pub const PROD_ROOT_PEM: &str = include_str!("roots/prod-root.pem");
/// Test environment URL.
pub const TEST_URL: &str = "https://appapi2.test.bankid.com/rp/v6.0/";
/// Production URL.
pub const PROD_URL: &str = "https://appapi2.bankid.com/rp/v6.0/";

/// A configuration problem, naming the setting or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

impl From<tls::TlsError> for ConfigError {
    fn from(e: tls::TlsError) -> Self {
        ConfigError(e.0)
    }
}

/// Where BankID is and which root to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// BankID's test environment, its root embedded.
    Test,
    /// BankID production, its root embedded.
    Production,
    /// Any other `https://` URL (a simulator) with its CA file.
    Custom {
        /// Base URL ending in `/rp/v6.0/`.
        url: String,
        /// PEM trust anchor.
        ca_file: PathBuf,
    },
}

/// The RP's client identity, as configured (loaded when the engine starts).
#[derive(Clone, PartialEq, Eq)]
pub enum Identity {
    /// PEM certificate + PKCS#8 key (plain, or encrypted with the password).
    Pem {
        /// Certificate file.
        cert_file: PathBuf,
        /// Key file.
        key_file: PathBuf,
        /// For an encrypted key.
        key_password: Option<String>,
    },
    /// PKCS#12 file and its password.
    Pkcs12 {
        /// `.p12`/`.pfx` file.
        file: PathBuf,
        /// Its password.
        password: String,
    },
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Pem {
                cert_file,
                key_file,
                ..
            } => {
                write!(
                    f,
                    "Pem({}, {}, password hidden)",
                    cert_file.display(),
                    key_file.display()
                )
            }
            Identity::Pkcs12 { file, .. } => {
                write!(f, "Pkcs12({}, password hidden)", file.display())
            }
        }
    }
}

/// Everything the library needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where BankID is.
    pub endpoint: Endpoint,
    /// Who we are.
    pub identity: Identity,
    /// Default `callInitiator` for orders that do not say.
    pub call_initiator: CallInitiator,
    /// Time between collects while pending (2 s; at least 1 s against real BankID).
    pub poll_interval: Duration,
    /// Local deadline: every order is final by then, whatever BankID does.
    pub order_timeout: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Result text on success; `{pnr}`, `{pnr_masked}`, `{name}` are filled in.
    pub result_success: String,
    /// Result text otherwise.
    pub result_failed: String,
    /// The company name BankID shows the caller ("are you on a call with …?"): the display name
    /// in the RP certificate. Only used in our prompt and agent texts; empty: "us".
    pub company_name: String,
    /// Language of messages.
    pub language: Language,
    /// Final results nobody released are dropped after this long.
    pub result_ttl: Duration,
    /// Background worker threads of the internal runtime.
    pub worker_threads: usize,
    /// At most this many orders at once (live + unreleased).
    pub max_orders: usize,
    /// At most this many requests to BankID in flight, and so TLS connections open: a burst of
    /// starts queues briefly instead of opening a connection per order.
    pub max_connections: usize,
    /// Anti-vishing limits (declined-call block, orders per number and per caller ID).
    pub limits: LimitSettings,
    /// The audit trail: database, spool, pseudonym key, evidence, retention.
    pub audit: crate::audit::AuditSettings,
}

/// Default success text, exactly what agents see today.
pub const DEFAULT_RESULT_SUCCESS: &str =
    "Identification successful for social security number {pnr}";
/// Default failure text.
pub const DEFAULT_RESULT_FAILED: &str = "Identification failed";

/// The longest `company_name` accepted (characters).
pub const COMPANY_NAME_MAX: usize = 100;

impl Config {
    /// Whom the caller is on a call with, for prompts: `company_name`, or "oss"/"us".
    pub fn company_name_or_us(&self, lang: Language) -> &str {
        match (self.company_name.is_empty(), lang) {
            (false, _) => &self.company_name,
            (true, Language::Sv) => "oss",
            (true, Language::En) => "us",
        }
    }
}

const KEYS: &[&str] = &[
    "preset",
    "url",
    "ca_file",
    "cert_file",
    "key_file",
    "key_password",
    "p12_file",
    "p12_password",
    "call_initiator",
    "poll_interval_ms",
    "order_timeout_s",
    "request_timeout_ms",
    "connect_timeout_ms",
    "result_success",
    "result_failed",
    "company_name",
    "language",
    "result_ttl_s",
    "worker_threads",
    "max_orders",
    "max_connections",
    "declined_block_min",
    "max_orders_per_number_per_hour",
    "max_orders_per_caller_per_hour",
    "audit_database",
    "audit_spool_dir",
    "audit_spool_max_records",
    "audit_key_file",
    "audit_keep_evidence",
    "audit_retention_days",
];

/// Keys whose values are secrets: never quoted in any message (a PostgreSQL URL may hold a
/// password).
const SECRET_KEYS: &[&str] = &["key_password", "p12_password", "audit_database"];

/// The most days `audit_retention_days` takes (a century).
const MAX_RETENTION_DAYS: u64 = 36_500;
/// The most records `audit_spool_max_records` takes.
const MAX_SPOOL_RECORDS: u64 = 100_000_000;

impl Config {
    /// A configuration for a custom endpoint (e.g. the simulator) with defaults elsewhere.
    pub fn custom(url: &str, ca_file: &Path, identity: Identity) -> Config {
        Config {
            endpoint: Endpoint::Custom {
                url: url.to_string(),
                ca_file: ca_file.to_path_buf(),
            },
            identity,
            call_initiator: CallInitiator::User,
            poll_interval: Duration::from_secs(2),
            order_timeout: Duration::from_secs(200),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            result_success: DEFAULT_RESULT_SUCCESS.into(),
            result_failed: DEFAULT_RESULT_FAILED.into(),
            company_name: String::new(),
            language: Language::Sv,
            result_ttl: Duration::from_secs(600),
            worker_threads: 2,
            max_orders: 100_000,
            max_connections: 256,
            limits: LimitSettings::default(),
            // The state directory's SQLite file, spool and key (see audit::state_dir).
            audit: crate::audit::AuditSettings::defaults(),
        }
    }

    /// Reads `BANKID_*` environment variables (`BANKID_URL`, `BANKID_CA_FILE`, …).
    pub fn from_env() -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = KEYS
            .iter()
            .filter_map(|k| {
                let var = format!("BANKID_{}", k.to_ascii_uppercase());
                std::env::var(&var)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(|v| (k.to_string(), v))
            })
            .collect();
        Config::from_map(&map, |k| format!("BANKID_{}", k.to_ascii_uppercase()))
    }

    /// Whether any BankID endpoint is configured in the environment (`BANKID_PRESET` or `BANKID_URL`).
    pub fn env_is_configured() -> bool {
        ["BANKID_PRESET", "BANKID_URL"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
    }

    /// Reads a TOML file with the same keys in lower case (`url = "…"`, `poll_interval_ms = 2000`).
    /// Relative paths in it are relative to the file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("configuration file {}: {e}", path.display())))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| ConfigError(toml_error(path, &text, &e)))?;
        let mut map = HashMap::new();
        for (k, v) in table {
            if !KEYS.contains(&k.as_str()) {
                return Err(ConfigError(format!(
                    "configuration file {}: unknown key {k:?}",
                    path.display()
                )));
            }
            let s = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError(format!(
                    "configuration file {}: {k} must be a string, a number or true/false, not {}",
                    path.display(),
                    other.type_str()
                )))
                }
            };
            map.insert(k, s);
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for k in [
            "ca_file",
            "cert_file",
            "key_file",
            "p12_file",
            "audit_spool_dir",
            "audit_key_file",
        ] {
            if let Some(v) = map.get_mut(k) {
                if Path::new(v.as_str()).is_relative() {
                    *v = base.join(&*v).display().to_string();
                }
            }
        }
        // A plain SQLite path too (not a URL, not "off").
        if let Some(v) = map.get_mut("audit_database") {
            let plain = !v.contains(':') && !v.trim().eq_ignore_ascii_case("off");
            if plain && Path::new(v.trim()).is_relative() {
                *v = base.join(v.trim()).display().to_string();
            }
        }
        let file = path.display().to_string();
        Config::from_map(&map, |k| format!("{k} in {file}"))
    }

    fn from_map(
        map: &HashMap<String, String>,
        name: impl Fn(&str) -> String,
    ) -> Result<Config, ConfigError> {
        let get = |k: &str| map.get(k).map(String::as_str);
        let bad = |k: &str, why: &str| ConfigError(format!("{}: {why}", name(k)));
        let endpoint = match (get("preset"), get("url")) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "url",
                    &format!("give either {} or a url, not both", name("preset")),
                ))
            }
            (Some(p), None) => match p.to_ascii_lowercase().as_str() {
                "test" => Endpoint::Test,
                "production" | "prod" => Endpoint::Production,
                other => {
                    return Err(bad(
                        "preset",
                        &format!("{other:?} is not test or production"),
                    ))
                }
            },
            (None, Some(url)) => {
                if url.starts_with("http://") {
                    return Err(bad(
                        "url",
                        "http:// is refused: BankID needs https:// with mutual TLS",
                    ));
                }
                if !url.starts_with("https://") {
                    return Err(bad("url", "must start with https://"));
                }
                let ca = get("ca_file").ok_or_else(|| {
                    bad(
                        "ca_file",
                        &format!("required with {} (the server's CA, PEM)", name("url")),
                    )
                })?;
                Endpoint::Custom {
                    url: url.to_string(),
                    ca_file: PathBuf::from(ca),
                }
            }
            (None, None) => {
                return Err(ConfigError(format!(
                    "no BankID endpoint: set {} (test/production) or {} with {}",
                    name("preset"),
                    name("url"),
                    name("ca_file")
                )))
            }
        };
        let identity = match (get("p12_file"), get("cert_file"), get("key_file")) {
            (Some(f), None, None) => Identity::Pkcs12 {
                file: PathBuf::from(f),
                password: get("p12_password")
                    .ok_or_else(|| {
                        bad(
                            "p12_password",
                            &format!("required with {}", name("p12_file")),
                        )
                    })?
                    .to_string(),
            },
            (None, Some(c), Some(k)) => Identity::Pem {
                cert_file: PathBuf::from(c),
                key_file: PathBuf::from(k),
                key_password: get("key_password").map(str::to_string),
            },
            (None, Some(_), None) => {
                return Err(bad("key_file", "missing (the client certificate's key)"))
            }
            (None, None, Some(_)) => {
                return Err(bad("cert_file", "missing (the client certificate)"))
            }
            (None, None, None) => {
                return Err(ConfigError(format!(
                    "no client certificate: set {} + {}, or {} + {}",
                    name("cert_file"),
                    name("key_file"),
                    name("p12_file"),
                    name("p12_password")
                )))
            }
            _ => {
                return Err(bad(
                    "p12_file",
                    &format!("give a PKCS#12 file or {}, not both", name("cert_file")),
                ))
            }
        };
        let number = |k: &str, default: u64| -> Result<u64, ConfigError> {
            get(k).map_or(Ok(default), |v| {
                v.trim()
                    .parse()
                    .map_err(|_| bad(k, &format!("{v:?} is not a whole number")))
            })
        };
        // Faster than once a second only against a server on this machine (a simulator):
        // anything else may be BankID behind another name.
        let local = matches!(&endpoint, Endpoint::Custom { url, .. } if is_loopback_url(url));
        let poll_ms = number("poll_interval_ms", 2000)?;
        if poll_ms < 1000 && !local {
            return Err(bad(
                "poll_interval_ms",
                "BankID must not be collected more often than once a second \
                 (faster is allowed only for a url on this machine's loopback)",
            ));
        }
        if poll_ms == 0 {
            return Err(bad("poll_interval_ms", "must be at least 1"));
        }
        let mut cfg = Config::custom("", Path::new(""), identity);
        cfg.endpoint = endpoint;
        cfg.poll_interval = Duration::from_millis(poll_ms);
        cfg.order_timeout = Duration::from_secs(number("order_timeout_s", 200)?.max(1));
        cfg.request_timeout = Duration::from_millis(number("request_timeout_ms", 10_000)?.max(1));
        cfg.connect_timeout = Duration::from_millis(number("connect_timeout_ms", 5_000)?.max(1));
        cfg.result_ttl = Duration::from_secs(number("result_ttl_s", 600)?.max(1));
        cfg.worker_threads = number("worker_threads", 2)?.clamp(1, 64) as usize;
        cfg.max_orders = number("max_orders", 100_000)?.clamp(1, MAX_SLOTS as u64) as usize;
        cfg.max_connections = number("max_connections", 256)?.clamp(1, 4096) as usize;
        let defaults = LimitSettings::default();
        cfg.limits = LimitSettings {
            declined_block: Duration::from_secs(
                number("declined_block_min", defaults.declined_block.as_secs() / 60)?
                    .min(7 * 24 * 60)
                    * 60,
            ),
            per_number: number("max_orders_per_number_per_hour", defaults.per_number.into())?
                .min(u32::MAX.into()) as u32,
            per_caller: number("max_orders_per_caller_per_hour", defaults.per_caller.into())?
                .min(u32::MAX.into()) as u32,
        };
        if let Some(v) = get("call_initiator") {
            cfg.call_initiator = CallInitiator::parse(v)
                .ok_or_else(|| bad("call_initiator", "must be user or RP"))?;
        }
        if let Some(v) = get("language") {
            cfg.language = Language::parse(v).ok_or_else(|| bad("language", "must be sv or en"))?;
        }
        if let Some(v) = get("result_success") {
            cfg.result_success = v.to_string();
        }
        if let Some(v) = get("result_failed") {
            cfg.result_failed = v.to_string();
        }
        if let Some(v) = get("company_name") {
            let v = v.trim();
            if v.chars().count() > COMPANY_NAME_MAX || v.chars().any(char::is_control) {
                return Err(bad(
                    "company_name",
                    "must be at most 100 characters without control characters",
                ));
            }
            cfg.company_name = v.to_string();
        }
        cfg.audit = audit_settings(cfg.audit, &get, &bad, &number)?;
        Ok(cfg)
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        match &self.endpoint {
            Endpoint::Test => TEST_URL,
            Endpoint::Production => PROD_URL,
            Endpoint::Custom { url, .. } => url,
        }
    }

    /// Loads the trust anchor and identity and builds the rustls configuration.
    pub fn tls_config(&self) -> Result<rustls::ClientConfig, ConfigError> {
        Ok(self.tls_config_and_certificate()?.0)
    }

    /// As [`Config::tls_config`], with what the client certificate says (for the engine's
    /// expiry warnings; `None` if it cannot be parsed, which the TLS stack judges on its own).
    pub fn tls_config_and_certificate(
        &self,
    ) -> Result<(rustls::ClientConfig, Option<CertInfo>), ConfigError> {
        let (pem, what) = self.trust_anchor_pem()?;
        let roots = tls::roots_from_pem(&pem, &what)?;
        let identity = self.client_identity()?;
        let cert = identity
            .chain()
            .first()
            .and_then(|c| CertInfo::from_der(c, "client certificate").ok());
        Ok((tls::client_config(roots, identity)?, cert))
    }

    /// The trust anchor's PEM text and what it is (`embedded test root`, `ca_file PATH`).
    pub fn trust_anchor_pem(&self) -> Result<(Vec<u8>, String), ConfigError> {
        Ok(match &self.endpoint {
            Endpoint::Test => (TEST_ROOT_PEM.into(), "embedded test root".into()),
            Endpoint::Production => (PROD_ROOT_PEM.into(), "embedded production root".into()),
            Endpoint::Custom { ca_file, .. } => {
                let pem = std::fs::read(ca_file)
                    .map_err(|e| ConfigError(format!("ca_file {}: {e}", ca_file.display())))?;
                (pem, format!("ca_file {}", ca_file.display()))
            }
        })
    }

    /// Loads the client certificate and key (decrypting them with the configured password).
    pub fn client_identity(&self) -> Result<ClientIdentity, ConfigError> {
        Ok(match &self.identity {
            Identity::Pem {
                cert_file,
                key_file,
                key_password,
            } => ClientIdentity::from_pem_files(cert_file, key_file, key_password.as_deref())?,
            Identity::Pkcs12 { file, password } => {
                ClientIdentity::from_pkcs12_file(file, password)?
            }
        })
    }
}

/// The `audit_*` keys over `defaults` (the state directory's files): where records go, the
/// spool, the pseudonym key, evidence and retention. A shared (PostgreSQL) database needs
/// `audit_key_file` given explicitly: every host writing it must use the same key.
fn audit_settings<'a>(
    defaults: crate::audit::AuditSettings,
    get: &impl Fn(&str) -> Option<&'a str>,
    bad: &impl Fn(&str, &str) -> ConfigError,
    number: &impl Fn(&str, u64) -> Result<u64, ConfigError>,
) -> Result<crate::audit::AuditSettings, ConfigError> {
    let mut audit = defaults;
    let path = |k: &str| -> Result<Option<PathBuf>, ConfigError> {
        match get(k).map(str::trim) {
            None => Ok(None),
            Some(v) if Path::new(v).is_absolute() => Ok(Some(PathBuf::from(v))),
            Some(_) => Err(bad(k, "must be an absolute path")),
        }
    };
    if let Some(v) = get("audit_database") {
        audit.database = if v.trim().eq_ignore_ascii_case("off") {
            None
        } else {
            Some(
                v.parse::<crate::audit::Database>()
                    .map_err(|e| bad("audit_database", &e.0))?,
            )
        };
    }
    if let Some(p) = path("audit_spool_dir")? {
        audit.spool_dir = p;
    }
    match path("audit_key_file")? {
        Some(p) => audit.key_file = p,
        None if audit.database.as_ref().is_some_and(|d| d.is_shared()) => {
            return Err(bad(
                "audit_key_file",
                "required with a shared (PostgreSQL) audit_database: every host writing it \
                 must use the same pseudonym key (make one with `openssl rand -hex 32 > FILE`, \
                 mode 0600, and give it to each host)",
            ))
        }
        None => {}
    }
    let max = number(
        "audit_spool_max_records",
        crate::audit::DEFAULT_SPOOL_MAX_RECORDS as u64,
    )?;
    if !(1..=MAX_SPOOL_RECORDS).contains(&max) {
        return Err(bad(
            "audit_spool_max_records",
            &format!("must be 1 to {MAX_SPOOL_RECORDS}"),
        ));
    }
    audit.spool_max_records = max as usize;
    if let Some(v) = get("audit_keep_evidence") {
        audit.keep_evidence = match v.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(bad("audit_keep_evidence", "must be true or false")),
        };
    }
    let days = number(
        "audit_retention_days",
        crate::audit::DEFAULT_RETENTION_DAYS.into(),
    )?;
    if !(1..=MAX_RETENTION_DAYS).contains(&days) {
        return Err(bad(
            "audit_retention_days",
            &format!("must be 1 to {MAX_RETENTION_DAYS} (records cannot be kept for 0 days)"),
        ));
    }
    audit.retention_days = days as u32;
    Ok(audit)
}

/// Whether `url`'s host is on this machine's loopback (`localhost`, 127.0.0.0/8, `[::1]`).
fn is_loopback_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A TOML syntax error as file, line, column, key and reason — never the offending text: the
/// parser's own message quotes the line, which may hold a password.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let mut msg = format!("configuration file {}", path.display());
    if let Some(span) = e.span() {
        let before = text.get(..span.start.min(text.len())).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        msg.push_str(&format!(", line {line}, column {column}"));
        let line_text = text.lines().nth(line - 1).unwrap_or("");
        if let Some((key, _)) = line_text.split_once('=') {
            let key = key.trim().trim_matches('"');
            let plain = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            if plain {
                msg.push_str(&format!(" (key {key})"));
            }
        }
    }
    // The parser's reason is its first line; it may still quote a value, so any line that
    // holds a secret key's value is checked and, if quoted, left out.
    let reason = e.message().lines().next().unwrap_or("").trim();
    let leaks = SECRET_KEYS.iter().any(|k| {
        text.lines()
            .filter(|l| l.trim_start().starts_with(k))
            .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim().trim_matches('"')))
            .any(|v| !v.is_empty() && reason.contains(v))
    });
    if leaks || reason.is_empty() {
        msg.push_str(": not valid TOML");
    } else {
        msg.push_str(&format!(": {reason}"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn env_name(k: &str) -> String {
        format!("BANKID_{}", k.to_ascii_uppercase())
    }

    #[test]
    fn errors_name_the_setting() {
        let e = Config::from_map(&map(&[("url", "http://x/"), ("ca_file", "a")]), env_name)
            .unwrap_err();
        assert!(e.0.starts_with("BANKID_URL: http:// is refused"), "{e}");
        let e = Config::from_map(&map(&[("url", "https://x/")]), env_name).unwrap_err();
        assert!(e.0.starts_with("BANKID_CA_FILE: required"), "{e}");
        let e = Config::from_map(&map(&[("preset", "test"), ("cert_file", "c")]), env_name)
            .unwrap_err();
        assert!(e.0.starts_with("BANKID_KEY_FILE: missing"), "{e}");
        let e =
            Config::from_map(&map(&[("preset", "test"), ("p12_file", "c")]), env_name).unwrap_err();
        assert!(e.0.starts_with("BANKID_P12_PASSWORD: required"), "{e}");
        let e = Config::from_map(
            &map(&[
                ("preset", "production"),
                ("p12_file", "c"),
                ("p12_password", "p"),
                ("poll_interval_ms", "200"),
            ]),
            env_name,
        )
        .unwrap_err();
        assert!(e.0.contains("once a second"), "{e}");
        let e = Config::from_map(&map(&[("preset", "staging")]), env_name).unwrap_err();
        assert!(e.0.starts_with("BANKID_PRESET"), "{e}");
    }

    #[test]
    fn presets_embed_the_real_roots() {
        let cfg = Config::from_map(
            &map(&[
                ("preset", "test"),
                ("p12_file", "x.p12"),
                ("p12_password", "p"),
            ]),
            env_name,
        )
        .unwrap();
        assert_eq!(cfg.url(), TEST_URL);
        assert_eq!(
            tls::roots_from_pem(TEST_ROOT_PEM.as_bytes(), "t")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            tls::roots_from_pem(PROD_ROOT_PEM.as_bytes(), "p")
                .unwrap()
                .len(),
            1
        );
        // Debug never shows the password.
        assert!(!format!("{cfg:?}").contains("\"p\""));
    }

    #[test]
    fn toml_errors_name_line_and_key_but_never_a_secret() {
        let dir = std::env::temp_dir().join(format!("bankid-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bankid.toml");
        let cases = [
            (
                "preset = \"test\"\np12_file = \"x.p12\"\np12_password = \"s3cr3t\\q\"\n",
                3,
                "p12_password",
            ),
            (
                "preset = \"test\"\np12_password = \"s3cr3t\"\np12_password = \"s3cr3t\"\n",
                3,
                "p12_password",
            ),
            (
                "key_password = \"s3cr3t\nurl = \"https://x/\"\n",
                1,
                "key_password",
            ),
            ("key_password = s3cr3t\n", 1, "key_password"),
        ];
        for (text, line, key) in cases {
            std::fs::write(&file, text).unwrap();
            let e = Config::from_file(&file).unwrap_err().0;
            assert!(!e.contains("s3cr3t"), "the password leaked: {e}");
            assert!(e.contains(&file.display().to_string()), "{e}");
            assert!(e.contains(&format!("line {line}, column")), "{e}");
            assert!(e.contains(&format!("(key {key})")), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fast_collects_only_against_a_server_on_this_machine() {
        let with = |url: &str| {
            Config::from_map(
                &map(&[
                    ("url", url),
                    ("ca_file", "ca.pem"),
                    ("cert_file", "c"),
                    ("key_file", "k"),
                    ("poll_interval_ms", "20"),
                ]),
                env_name,
            )
        };
        for url in [
            "https://127.0.0.1:8443/rp/v6.0/",
            "https://127.0.0.2/rp/v6.0/",
            "https://localhost:1/rp/v6.0/",
            "https://[::1]:9/rp/v6.0/",
        ] {
            assert!(with(url).is_ok(), "{url}");
        }
        for url in [
            "https://bankid.example.com/rp/v6.0/",
            "https://10.0.0.5:8443/rp/v6.0/",
            "https://127.0.0.1.example.com/rp/v6.0/",
            "https://localhost@evil.example/rp/v6.0/",
        ] {
            let e = with(url).unwrap_err();
            assert!(e.0.contains("once a second"), "{url}: {e}");
        }
    }

    fn with_audit(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all = vec![
            ("preset", "test"),
            ("p12_file", "/x.p12"),
            ("p12_password", "p"),
        ];
        all.extend_from_slice(pairs);
        Config::from_map(&map(&all), env_name)
    }

    #[test]
    fn audit_settings_default_to_the_state_directory_and_are_checked() {
        use crate::audit::{AuditSettings, Database};
        let cfg = with_audit(&[]).unwrap();
        assert_eq!(cfg.audit, AuditSettings::defaults());
        let cfg = with_audit(&[
            ("audit_database", "sqlite:/srv/bankid/a.db"),
            ("audit_spool_dir", "/srv/bankid/spool"),
            ("audit_key_file", "/srv/bankid/k"),
            ("audit_spool_max_records", "10"),
            ("audit_keep_evidence", "false"),
            ("audit_retention_days", "90"),
        ])
        .unwrap();
        assert_eq!(
            cfg.audit,
            AuditSettings {
                database: Some(Database::Sqlite("/srv/bankid/a.db".into())),
                spool_dir: "/srv/bankid/spool".into(),
                spool_max_records: 10,
                key_file: "/srv/bankid/k".into(),
                keep_evidence: false,
                retention_days: 90,
            }
        );
        assert_eq!(
            with_audit(&[("audit_database", "off")])
                .unwrap()
                .audit
                .database,
            None
        );
        // A shared database needs the key given: every host must use the same.
        let pg = ("audit_database", "postgres://audit:s3cret@db/bankid");
        let e = with_audit(&[pg]).unwrap_err();
        assert!(e.0.starts_with("BANKID_AUDIT_KEY_FILE: required"), "{e}");
        assert!(!e.0.contains("s3cret"), "{e}");
        assert!(
            !e.0.contains("  "),
            "a line continuation lost its break: {e}"
        );
        assert!(e.0.contains("it must use the same"), "{e}");
        let cfg = with_audit(&[pg, ("audit_key_file", "/etc/bankid/audit.key")]).unwrap();
        assert!(cfg.audit.database.unwrap().is_shared());
        assert!(
            !format!("{:?}", with_audit(&[pg, ("audit_key_file", "/k")]).unwrap())
                .contains("s3cret")
        );
        for (k, v, why) in [
            ("audit_retention_days", "0", "must be 1 to"),
            ("audit_spool_max_records", "0", "must be 1 to"),
            ("audit_keep_evidence", "yes", "true or false"),
            ("audit_spool_dir", "spool", "absolute path"),
            ("audit_key_file", "audit.key", "absolute path"),
            ("audit_database", "mysql://u:pw@h/db", "not a database"),
            ("audit_database", "audit.db", "absolute path"),
        ] {
            let e = with_audit(&[(k, v)]).unwrap_err();
            let name = env_name(k);
            assert!(
                e.0.starts_with(&format!("{name}:")) && e.0.contains(why),
                "{k}: {e}"
            );
            assert!(!e.0.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn audit_paths_in_a_file_are_relative_to_it_and_keep_evidence_takes_a_boolean() {
        let dir = std::env::temp_dir().join(format!("bankid-cfg-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bankid.toml");
        std::fs::write(
            &file,
            "preset = \"test\"\np12_file = \"x.p12\"\np12_password = \"p\"\n\
             audit_database = \"records/audit.db\"\naudit_spool_dir = \"spool\"\n\
             audit_key_file = \"audit.key\"\naudit_keep_evidence = false\n",
        )
        .unwrap();
        let cfg = Config::from_file(&file).unwrap();
        assert_eq!(
            cfg.audit.database,
            Some(crate::audit::Database::Sqlite(dir.join("records/audit.db")))
        );
        assert_eq!(cfg.audit.spool_dir, dir.join("spool"));
        assert_eq!(cfg.audit.key_file, dir.join("audit.key"));
        assert!(!cfg.audit.keep_evidence);
        std::fs::write(&file, "preset = \"test\"\naudit_keep_evidence = [true]\n").unwrap();
        let e = Config::from_file(&file).unwrap_err();
        assert!(e.0.contains("audit_keep_evidence must be"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_readme_lists_exactly_the_keys_the_loader_accepts() {
        let readme = include_str!("../README.md");
        let table: Vec<&str> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| key (file) |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        let mut listed: Vec<String> = table
            .iter()
            .flat_map(|row| {
                let first = row.split('|').nth(1).unwrap_or("");
                first
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        listed.sort();
        let mut keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
        keys.sort();
        assert_eq!(listed, keys, "README configuration table vs KEYS");
    }
}
