//! `bankid-ivr doctor [--config FILE] [--json]`: before the first call, whether this host can
//! identify callers. A checklist, each check ✓ (ok), ⚠ (warn: works today, act soon) or ✗
//! (fail, with its fix): the configuration, the client certificate and key, the certificate's
//! validity and chain, the trust anchor, name resolution, TCP, the mutual-TLS handshake, an
//! authenticated API call that creates no order (`collect` of a random orderRef, which BankID
//! answers `invalidParameters`), the clock against the server's `Date`, and the audit trail
//! (its database answers, the spool and the pseudonym key can be used, records waiting).
//!
//! The handshake is driven by hand over a `TcpStream` so that each failure has its own words:
//! a server certificate not from the trust anchor, a server refusing our certificate, and a
//! server that never asks for one (BankID always does). The probe's HTTP/1.1 request goes over
//! that same connection: under TLS 1.3 a server refuses a client certificate only after the
//! client has finished its half of the handshake, so the refusal arrives on the first read.
//!
//! Exit status: [`exit::OK`] when no check failed (warnings do not fail it), [`exit::FAILED`]
//! otherwise. Doctor never starts the embedded simulator, and no password is ever printed
//! (the library's messages never quote one; the configuration's `Debug` hides them).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bankid::certinfo::{utc, CertInfo, Validity};
use bankid::config::{Config, Endpoint, Identity};
use bankid::tls::{self, ClientIdentity};
use serde_json::json;

use crate::exit;

/// Arguments of `doctor`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Library configuration file (TOML); default: BANKID_* variables. Doctor never uses the
    /// embedded simulator.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// One JSON object on stdout: {"ok": bool, "checks": [{"name", "status", "detail", "fix"}]}.
    #[arg(long)]
    pub json: bool,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Ok,
    /// Passes today, needs action soon (e.g. the certificate expires within 30 days).
    Warn,
    /// Failed: identifications will not work until it is fixed.
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    fn mark(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warn => "⚠",
            Status::Fail => "✗",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `TLS handshake`.
    pub name: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a warning or failure (empty when ok).
    pub fix: String,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Ok,
        detail: detail.into(),
        fix: String::new(),
    }
}

fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Warn,
        detail: detail.into(),
        fix: fix.into(),
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        detail: detail.into(),
        fix: fix.into(),
    }
}

/// The configuration loads and is complete.
pub const CONFIGURATION: &str = "configuration";
/// The client certificate and key load (files readable, password right).
pub const IDENTITY: &str = "client identity";
/// The private key is the client certificate's.
pub const KEY_MATCH: &str = "certificate and key";
/// Validity and days left of the client certificate.
pub const CLIENT_CERT: &str = "client certificate";
/// The certificates in the client's file follow each other and are valid.
pub const CHAIN: &str = "certificate chain";
/// The root the server must chain to.
pub const TRUST: &str = "trust anchor";
/// The audit trail: its database answers, the spool and the key can be used.
pub const AUDIT: &str = "audit trail";
/// Name resolution of the server's host.
pub const DNS: &str = "name resolution";
/// A TCP connection to the server.
pub const TCP: &str = "TCP connect";
/// The mutual-TLS handshake.
pub const TLS: &str = "TLS handshake";
/// `collect` of a random orderRef.
pub const PROBE: &str = "API probe";
/// Local clock against the server's `Date`.
pub const CLOCK: &str = "clock";

/// Every check, in the order they run.
pub const CHECKS: [&str; 12] = [
    CONFIGURATION,
    IDENTITY,
    KEY_MATCH,
    CLIENT_CERT,
    CHAIN,
    TRUST,
    AUDIT,
    DNS,
    TCP,
    TLS,
    PROBE,
    CLOCK,
];

/// Clock skew above this is a warning.
pub const MAX_SKEW: Duration = Duration::from_secs(60);

const CONFIG_FIX: &str = "give --config FILE (TOML), or set BANKID_PRESET=test|production with \
the client certificate (BANKID_P12_FILE and BANKID_P12_PASSWORD, or BANKID_CERT_FILE and \
BANKID_KEY_FILE), or BANKID_URL with BANKID_CA_FILE and the client certificate; the keys are in \
the README's Configuration table";

/// Runs `doctor`; returns the exit status.
pub fn run(args: Args) -> i32 {
    let checks = diagnose(args.config.as_deref());
    let healthy = checks.iter().all(|c| c.status != Status::Fail);
    if args.json {
        println!("{}", to_json(&checks));
    } else {
        print!("{}", to_text(&checks));
    }
    if healthy {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// The checklist as text: one `✓`/`⚠`/`✗` line per check, the fix indented under it.
pub fn to_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!("{} {}: {}\n", c.status.mark(), c.name, c.detail));
        if !c.fix.is_empty() {
            out.push_str(&format!("    fix: {}\n", c.fix));
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    if failed == 0 {
        out.push_str(&format!(
            "ready: this host can identify callers ({} checks, {warned} warnings)\n",
            checks.len()
        ));
    } else {
        let not_run = CHECKS.len().saturating_sub(checks.len());
        let not_run = if not_run > 0 {
            format!("; {not_run} not run: they need what failed")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "NOT ready: {failed} of {} checks failed ({warned} warnings{not_run})\n",
            checks.len()
        ));
    }
    out
}

/// The checklist as one JSON object: `{"ok", "checks": [{"name", "status", "detail", "fix"}]}`.
pub fn to_json(checks: &[Check]) -> String {
    let list: Vec<_> = checks
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "status": c.status.as_str(),
                "detail": c.detail,
                "fix": c.fix,
            })
        })
        .collect();
    json!({
        "ok": checks.iter().all(|c| c.status != Status::Fail),
        "checks": list,
    })
    .to_string()
}

/// Runs every check that can run; a check whose prerequisite failed is left out.
pub fn diagnose(config_file: Option<&Path>) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match configuration(config_file) {
        Ok((cfg, check)) => {
            checks.push(check);
            cfg
        }
        Err(check) => {
            checks.push(check);
            return checks;
        }
    };
    let now = SystemTime::now();
    let identity = match config.client_identity() {
        Ok(id) => {
            checks.push(ok(IDENTITY, identity_detail(&config.identity, &id)));
            Some(id)
        }
        Err(e) => {
            checks.push(fail(IDENTITY, e.0.clone(), identity_fix(&e.0)));
            None
        }
    };
    let certified = identity.as_ref().and_then(|id| match id.certified_key() {
        Ok(k) => {
            checks.push(ok(
                KEY_MATCH,
                "the private key belongs to the client certificate",
            ));
            Some(k)
        }
        Err(e) => {
            checks.push(fail(KEY_MATCH, key_detail(&config.identity, &e.0), KEY_FIX));
            None
        }
    });
    if let Some(id) = &identity {
        checks.extend(certificate_checks(id, now));
    }
    let roots = trust_anchor(&config, now, &mut checks);
    checks.push(audit_check(&config));
    let Some(target) = Target::from_url(config.url()) else {
        checks.push(fail(
            DNS,
            format!("cannot read a host from url {}", config.url()),
            "url must be https://HOST[:PORT]/rp/v6.0/",
        ));
        return checks;
    };
    let addrs = match resolve(&target) {
        Ok((addrs, check)) => {
            checks.push(check);
            addrs
        }
        Err(check) => {
            checks.push(check);
            return checks;
        }
    };
    let stream = match connect(&target, &addrs, config.connect_timeout) {
        Ok((s, check)) => {
            checks.push(check);
            s
        }
        Err(check) => {
            checks.push(check);
            return checks;
        }
    };
    let (Some(roots), Some(certified)) = (roots, certified) else {
        return checks;
    };
    checks.extend(handshake_and_probe(
        &config, &target, stream, roots, certified,
    ));
    checks
}

/// The audit trail as configured (see [`bankid::audit::check`]): nothing is created.
fn audit_check(config: &Config) -> Check {
    use bankid::audit::check::{check, Level};
    let f = check(
        &config.audit,
        config.connect_timeout.max(Duration::from_secs(2)),
    );
    match f.level {
        Level::Ok => ok(AUDIT, f.detail),
        Level::Warn => warn(AUDIT, f.detail, f.fix),
        Level::Fail => fail(AUDIT, f.detail, f.fix),
    }
}

fn configuration(config_file: Option<&Path>) -> Result<(Config, Check), Check> {
    match bankid_backend::simulator_asked(false) {
        Ok(false) => {}
        Ok(true) => {
            return Err(fail(
                CONFIGURATION,
                "BANKID_SIMULATOR=1 is set: identify and fastagi would use the embedded \
                 simulator (no real identities), or refuse to start with BankID configured too",
                "unset BANKID_SIMULATOR on a host that answers real callers; doctor checks \
                 only a configured BankID",
            ))
        }
        Err(e) => return Err(fail(CONFIGURATION, e.to_string(), "unset BANKID_SIMULATOR")),
    }
    let (loaded, source) = match config_file {
        Some(path) => (
            Config::from_file(path),
            format!("configuration file {}", path.display()),
        ),
        None if Config::env_is_configured() => (Config::from_env(), "BANKID_* variables".into()),
        None => {
            return Err(fail(
                CONFIGURATION,
                "no BankID configured (no --config, no BANKID_PRESET or BANKID_URL)",
                CONFIG_FIX,
            ))
        }
    };
    match loaded {
        Ok(cfg) => {
            let endpoint = match &cfg.endpoint {
                Endpoint::Test => "BankID test (preset)".to_string(),
                Endpoint::Production => "BankID production (preset)".to_string(),
                Endpoint::Custom { .. } => "custom url".to_string(),
            };
            let detail = format!("{source}: {} — {endpoint}", cfg.url());
            Ok((cfg, ok(CONFIGURATION, detail)))
        }
        Err(e) => Err(fail(
            CONFIGURATION,
            e.0,
            "correct the setting named above; the keys are in the README's Configuration table",
        )),
    }
}

fn identity_detail(identity: &Identity, loaded: &ClientIdentity) -> String {
    let n = loaded.chain().len();
    let certs = if n == 1 {
        "1 certificate".to_string()
    } else {
        format!("{n} certificates")
    };
    match identity {
        Identity::Pem {
            cert_file,
            key_file,
            key_password,
        } => format!(
            "{} ({certs}) with key {} ({})",
            cert_file.display(),
            key_file.display(),
            if key_password.is_some() {
                "encrypted PKCS#8, decrypted"
            } else {
                "PKCS#8"
            }
        ),
        Identity::Pkcs12 { file, .. } => {
            format!(
                "PKCS#12 {} ({certs} and the key, decrypted)",
                file.display()
            )
        }
    }
}

fn identity_fix(error: &str) -> String {
    if error.contains("wrong p12_password") {
        "set p12_password (BANKID_P12_PASSWORD) to the password that came with the file".into()
    } else if error.contains("wrong key_password") || error.contains("set key_password") {
        "set key_password (BANKID_KEY_PASSWORD) to the key's password".into()
    } else if error.contains("No such file") || error.contains("ermission denied") {
        "check the path, and that the user the services run as may read the file (ls -l)".into()
    } else {
        "give the certificate as PEM with its PKCS#8 key (plain or encrypted), or the bank's \
         PKCS#12 file"
            .into()
    }
}

const KEY_FIX: &str = "use the key this certificate was issued for (for a PKCS#12 file, the \
file as the bank delivered it); compare `openssl x509 -noout -pubkey -in CERT` with \
`openssl pkey -pubout -in KEY`";

fn key_detail(identity: &Identity, error: &str) -> String {
    match identity {
        Identity::Pem {
            cert_file,
            key_file,
            ..
        } => format!(
            "{error}: {} is not the key of {}",
            key_file.display(),
            cert_file.display()
        ),
        Identity::Pkcs12 { file, .. } => format!("{error} (PKCS#12 {})", file.display()),
    }
}

/// The client certificate's validity, and the chain in the file.
fn certificate_checks(identity: &ClientIdentity, now: SystemTime) -> Vec<Check> {
    let mut infos = Vec::new();
    for (i, der) in identity.chain().iter().enumerate() {
        match CertInfo::from_der(der, &format!("certificate {} in the file", i + 1)) {
            Ok(info) => infos.push(info),
            Err(e) => {
                return vec![fail(
                    CLIENT_CERT,
                    e.0,
                    "the file must hold the X.509 client certificate the bank issued",
                )]
            }
        }
    }
    let Some(leaf) = infos.first() else {
        return vec![fail(
            CLIENT_CERT,
            "no certificate",
            "give the client certificate",
        )];
    };
    let span = format!("valid {} to {}", utc(leaf.not_before), utc(leaf.not_after));
    let cert = match leaf.validity(now) {
        Validity::Valid { days_left } => ok(
            CLIENT_CERT,
            format!("{}, {span}, {days_left} days left", leaf.subject),
        ),
        Validity::ExpiresSoon { days_left } => warn(
            CLIENT_CERT,
            format!("{} expires in {days_left} days ({span})", leaf.subject),
            format!(
                "order a renewed RP certificate from the bank now and install it before {}; \
                 BankID refuses an expired one",
                utc(leaf.not_after)
            ),
        ),
        Validity::Expired => fail(
            CLIENT_CERT,
            format!(
                "{} expired on {} ({span})",
                leaf.subject,
                utc(leaf.not_after)
            ),
            "install a renewed RP certificate from the bank: BankID refuses an expired one",
        ),
        Validity::NotYetValid => fail(
            CLIENT_CERT,
            format!(
                "{} is not valid before {} ({span})",
                leaf.subject,
                utc(leaf.not_before)
            ),
            "check this host's clock (timedatectl; enable NTP), or install the certificate \
             that is valid today",
        ),
    };
    vec![cert, chain_check(&infos, now)]
}

fn chain_check(infos: &[CertInfo], now: SystemTime) -> Check {
    for pair in infos.windows(2) {
        if pair[0].issuer != pair[1].subject {
            return fail(
                CHAIN,
                format!(
                    "{} is issued by {}, but the next certificate in the file is {}",
                    pair[0].subject, pair[0].issuer, pair[1].subject
                ),
                "put the client certificate first, then each issuer in order",
            );
        }
    }
    for info in &infos[1..] {
        match info.validity(now) {
            Validity::Expired | Validity::NotYetValid => {
                return fail(
                    CHAIN,
                    format!(
                        "issuer {} in the file is valid only {} to {}",
                        info.subject,
                        utc(info.not_before),
                        utc(info.not_after)
                    ),
                    "replace the file with the bank's current certificate chain",
                )
            }
            Validity::ExpiresSoon { .. } | Validity::Valid { .. } => {}
        }
    }
    let path = infos
        .iter()
        .map(|i| i.subject.as_str())
        .collect::<Vec<_>>()
        .join(" ← ");
    match infos.last() {
        Some(root) if root.issuer == root.subject => {
            ok(CHAIN, format!("{path} (in order, up to its root)"))
        }
        Some(last) => ok(
            CHAIN,
            format!(
                "{path} ← {} (not in the file: BankID checks that part)",
                last.issuer
            ),
        ),
        None => ok(CHAIN, path),
    }
}

fn trust_anchor(
    config: &Config,
    now: SystemTime,
    checks: &mut Vec<Check>,
) -> Option<rustls::RootCertStore> {
    let fix = match &config.endpoint {
        Endpoint::Custom { .. } => "ca_file must be the PEM CA certificate of the server at url",
        _ => "reinstall bankid-ivr: the embedded BankID root is damaged",
    };
    let loaded = config.trust_anchor_pem().and_then(|(pem, what)| {
        let roots = tls::roots_from_pem(&pem, &what)?;
        let infos = CertInfo::from_pem(&pem, &what)?;
        Ok((roots, infos, what))
    });
    let (roots, infos, what) = match loaded {
        Ok(x) => x,
        Err(e) => {
            checks.push(fail(TRUST, e.0, fix));
            return None;
        }
    };
    let names: Vec<String> = infos.iter().map(|i| i.subject.clone()).collect();
    let detail = format!("{what}: {}", names.join("; "));
    let check = match infos
        .iter()
        .map(|i| (i, i.validity(now)))
        .find(|(_, v)| !matches!(v, Validity::Valid { .. }))
    {
        None => ok(TRUST, detail),
        Some((i, Validity::ExpiresSoon { days_left })) => warn(
            TRUST,
            format!("{detail}; {} expires in {days_left} days", i.subject),
            "get the server's renewed CA before it expires",
        ),
        Some((i, _)) => fail(
            TRUST,
            format!(
                "{detail}; {} is valid only {} to {}",
                i.subject,
                utc(i.not_before),
                utc(i.not_after)
            ),
            fix,
        ),
    };
    checks.push(check);
    Some(roots)
}

/// Host and port of the base URL, and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port (443 unless given).
    pub port: u16,
    /// The authority as written (`Host:` header).
    pub authority: String,
    /// Path of the base URL, ending in `/`.
    pub path: String,
}

impl Target {
    /// Reads `https://HOST[:PORT]/PATH`.
    pub fn from_url(url: &str) -> Option<Target> {
        let rest = url.strip_prefix("https://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || authority.is_empty() {
            return None;
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => 443,
                None => return None,
            };
            (h.to_string(), port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()?),
                None => (authority.to_string(), 443),
            }
        };
        if host.is_empty() {
            return None;
        }
        let mut path = path.split(['?', '#']).next().unwrap_or("/").to_string();
        if !path.ends_with('/') {
            path.push('/');
        }
        Some(Target {
            host,
            port,
            authority: authority.to_string(),
            path,
        })
    }

    /// Whether the host is one of BankID's own (their roots are embedded in the presets).
    fn is_bankid(&self) -> bool {
        let h = self.host.to_ascii_lowercase();
        h == "bankid.com" || h.ends_with(".bankid.com")
    }
}

fn resolve(target: &Target) -> Result<(Vec<SocketAddr>, Check), Check> {
    let fix = "check the host name in url and this host's DNS (/etc/resolv.conf); BankID is \
               appapi2.bankid.com (production) and appapi2.test.bankid.com (test)";
    match (target.host.as_str(), target.port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                return Err(fail(DNS, format!("{} has no address", target.host), fix));
            }
            let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            let detail = format!("{} → {}", target.host, list.join(", "));
            Ok((addrs, ok(DNS, detail)))
        }
        Err(e) => Err(fail(
            DNS,
            format!("cannot resolve {}: {e}", target.host),
            fix,
        )),
    }
}

fn connect(
    target: &Target,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, Check), Check> {
    let mut errors = Vec::new();
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok((s, ok(TCP, format!("connected to {addr}")))),
            Err(e) => errors.push((*addr, e)),
        }
    }
    let refused = errors
        .iter()
        .all(|(_, e)| e.kind() == std::io::ErrorKind::ConnectionRefused);
    let list: Vec<String> = errors
        .iter()
        .map(|(a, e)| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => format!("{a}: connection refused"),
            std::io::ErrorKind::TimedOut => format!("{a}: no answer within {timeout:?}"),
            _ => format!("{a}: {e}"),
        })
        .collect();
    let fix = if refused {
        format!(
            "nothing listens on port {} there: check url's host and port (BankID: 443), and \
             that the server is running",
            target.port
        )
    } else {
        format!(
            "allow outgoing TCP to {}:{} in the firewall (or its proxy), or raise \
             connect_timeout_ms",
            target.host, target.port
        )
    };
    let what = if refused {
        "nothing listening"
    } else {
        "no connection"
    };
    Err(fail(TCP, format!("{what}: {}", list.join("; ")), fix))
}

/// A client certificate resolver that remembers whether the server asked for one.
#[derive(Debug)]
struct Recording {
    key: Arc<rustls::sign::CertifiedKey>,
    asked: AtomicBool,
}

impl rustls::client::ResolvesClientCert for Recording {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::SeqCst);
        Some(self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The rustls error inside an I/O error, if any.
fn tls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

fn describe_tls_failure(e: &std::io::Error, trust: &str, target: &Target) -> (String, String) {
    use rustls::{AlertDescription as A, CertificateError as C};
    let renew = "BankID refuses this client certificate: it must be an RP certificate the bank \
                 issued for this environment (test certificates only with preset = \"test\"), \
                 valid today and not revoked";
    match tls_error(e) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension => (
                format!(
                    "the server's certificate is not from the trust anchor ({trust}): wrong CA ({c:?})"
                ),
                if target.is_bankid() {
                    "use preset = \"test\" or \"production\" for BankID's own hosts (their roots are embedded)".into()
                } else {
                    "set ca_file to the CA that issued the server's certificate".into()
                },
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => (
                format!("the server's certificate is not for {}", target.host),
                "url must name the host the server's certificate is for (for BankID, its own host name)".into(),
            ),
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => (
                format!("the server's certificate is not valid now ({c:?})"),
                "check this host's clock (timedatectl); if it is right, the server's certificate has expired".into(),
            ),
            other => (
                format!("the server's certificate was rejected: {other:?}"),
                "check url and ca_file".into(),
            ),
        },
        Some(rustls::Error::AlertReceived(alert)) => {
            let why = match alert {
                A::CertificateExpired => "it says our certificate has expired",
                A::UnknownCA => "it does not know our certificate's issuer",
                A::CertificateRevoked => "it says our certificate is revoked",
                A::CertificateRequired => "it wanted a client certificate",
                A::BadCertificate | A::CertificateUnknown | A::UnsupportedCertificate => {
                    "it does not accept our certificate"
                }
                A::AccessDenied => "access denied",
                _ => "",
            };
            let alert = format!("{alert:?}");
            let detail = if why.is_empty() {
                format!("the server ended the handshake with the alert {alert}")
            } else {
                format!("the server refused our client certificate: {why} (alert {alert})")
            };
            (detail, renew.into())
        }
        Some(other) => (
            format!("TLS failed: {other}"),
            "check that url is BankID's RP API (HTTPS with mutual TLS)".into(),
        ),
        None => match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => (
                format!("the server closed the connection during the handshake ({e})"),
                format!(
                    "check that {}:{} is BankID's HTTPS port and not another service; a server \
                     that drops us here may also be refusing our client certificate",
                    target.host, target.port
                ),
            ),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => (
                "no TLS answer in time".into(),
                format!(
                    "check that {}:{} speaks TLS; raise request_timeout_ms on a slow link",
                    target.host, target.port
                ),
            ),
            _ => (format!("TLS failed: {e}"), "check url".into()),
        },
    }
}

/// A random version 4 UUID: an orderRef BankID never issued.
fn random_order_ref() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// An HTTP/1.1 response as read off the wire.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads a whole response; `data` ends where the server closed the connection.
    fn parse(data: &[u8]) -> Option<Response> {
        let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&data[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let mut parts = status_line.split(' ');
        if !parts.next()?.starts_with("HTTP/1.") {
            return None;
        }
        let status = parts.next()?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut r = Response {
            status,
            headers,
            body: data[end + 4..].to_vec(),
        };
        if r.header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            r.body = dechunk(&r.body);
        } else if let Some(n) = r.header("content-length").and_then(|n| n.parse().ok()) {
            r.body.truncate(n);
        }
        Some(r)
    }

    fn error_code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("errorCode")?.as_str().map(str::to_string)
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..i])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size.filter(|s| *s > 0) else {
            break;
        };
        let start = i + 2;
        let Some(chunk) = data.get(start..start + size) else {
            break;
        };
        out.extend_from_slice(chunk);
        data = data.get(start + size + 2..).unwrap_or(&[]);
    }
    out
}

/// At most this much of an answer is read.
const MAX_RESPONSE: usize = 1 << 20;

fn handshake_and_probe(
    config: &Config,
    target: &Target,
    mut sock: TcpStream,
    roots: rustls::RootCertStore,
    certified: Arc<rustls::sign::CertifiedKey>,
) -> Vec<Check> {
    let trust = config
        .trust_anchor_pem()
        .map(|(_, what)| what)
        .unwrap_or_default();
    let recording = Arc::new(Recording {
        key: certified,
        asked: AtomicBool::new(false),
    });
    let tls_config = match tls::client_config_with_resolver(roots, recording.clone()) {
        Ok(c) => c,
        Err(e) => return vec![fail(TLS, e.0, "report this: the TLS setup failed")],
    };
    let name = match rustls::pki_types::ServerName::try_from(target.host.clone()) {
        Ok(n) => n,
        Err(e) => {
            return vec![fail(
                TLS,
                format!("{} is not a host name: {e}", target.host),
                "fix url",
            )]
        }
    };
    let mut conn = match rustls::ClientConnection::new(Arc::new(tls_config), name) {
        Ok(c) => c,
        Err(e) => return vec![fail(TLS, format!("TLS setup: {e}"), "check url")],
    };
    let _ = sock.set_read_timeout(Some(config.request_timeout));
    let _ = sock.set_write_timeout(Some(config.request_timeout));
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            let (detail, fix) = describe_tls_failure(&e, &trust, target);
            return vec![fail(TLS, detail, fix)];
        }
    }
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let server = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| CertInfo::from_der(c, "server certificate").ok())
        .map(|i| i.subject)
        .unwrap_or_else(|| "?".into());
    if !recording.asked.load(Ordering::SeqCst) {
        return vec![fail(
            TLS,
            format!(
                "{version} with {server} (from {trust}), but the server did not ask for a \
                 client certificate: it is not BankID, which always does"
            ),
            format!(
                "url must reach BankID directly: something else answers at {}:{} (a proxy \
                 terminating TLS?)",
                target.host, target.port
            ),
        )];
    }
    let mut stream = rustls::StreamOwned::new(conn, sock);
    let body = json!({ "orderRef": random_order_ref() }).to_string();
    let request = format!(
        "POST {}collect HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: bankid-ivr-doctor\r\n\r\n{body}",
        target.path,
        target.authority,
        body.len()
    );
    let sent_at = SystemTime::now();
    let mut data = Vec::new();
    let read = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .and_then(|()| {
            let mut buf = [0u8; 8192];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        data.extend_from_slice(&buf[..n]);
                        if data.len() > MAX_RESPONSE {
                            return Ok(());
                        }
                    }
                    // A server that closes without close_notify after a whole answer is fine.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::UnexpectedEof
                            && Response::parse(&data).is_some() =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(e),
                }
            }
        });
    let received_at = SystemTime::now();
    let tls_ok = ok(
        TLS,
        format!(
            "{version}; server {server} (from {trust}); our client certificate was asked for \
             and accepted"
        ),
    );
    if let Err(e) = read {
        if data.is_empty() {
            let (detail, fix) = describe_tls_failure(&e, &trust, target);
            // Under TLS 1.3 a refused client certificate surfaces here, after the handshake.
            if matches!(tls_error(&e), Some(rustls::Error::AlertReceived(_))) {
                return vec![fail(TLS, detail, fix)];
            }
            return vec![
                tls_ok,
                fail(
                    PROBE,
                    format!("no answer to collect: {detail}"),
                    "run doctor again; if it persists, check the link to BankID",
                ),
            ];
        }
    }
    let Some(resp) = Response::parse(&data) else {
        return vec![
            tls_ok,
            fail(
                PROBE,
                "the answer to collect was not HTTP/1.1",
                "url must be BankID's RP API",
            ),
        ];
    };
    vec![
        tls_ok,
        probe_check(&resp, target),
        clock_check(&resp, sent_at, received_at),
    ]
}

fn probe_check(resp: &Response, target: &Target) -> Check {
    let code = resp.error_code();
    let said = match &code {
        Some(c) => format!("HTTP {} {c}", resp.status),
        None => format!("HTTP {}", resp.status),
    };
    match (resp.status, code.as_deref()) {
        (400, Some("invalidParameters")) => ok(
            PROBE,
            format!(
                "collect of a random orderRef answered {said}: BankID reached and our \
                 certificate accepted (no order created)"
            ),
        ),
        (401 | 403, _) => fail(
            PROBE,
            format!("collect answered {said}: BankID does not accept this RP certificate"),
            "the certificate must be your RP certificate with an active BankID agreement at \
             the bank; a test certificate works only with preset = \"test\", a production one \
             only with preset = \"production\"",
        ),
        (404, _) => fail(
            PROBE,
            format!("collect answered {said} at {}collect", target.path),
            "url must end in /rp/v6.0/",
        ),
        (503, _) | (429, _) => fail(
            PROBE,
            format!("collect answered {said}: BankID is busy or in maintenance"),
            "run doctor again later",
        ),
        _ => fail(
            PROBE,
            format!("collect answered {said}, not 400 invalidParameters"),
            "url must be BankID's RP API v6 (…/rp/v6.0/)",
        ),
    }
}

fn clock_check(resp: &Response, sent_at: SystemTime, received_at: SystemTime) -> Check {
    let Some(date) = resp.header("date") else {
        return warn(
            CLOCK,
            "the server sent no Date header: the clock was not compared",
            "make sure NTP runs on this host (timedatectl)",
        );
    };
    let Ok(server) = httpdate::parse_http_date(date) else {
        return warn(
            CLOCK,
            format!("the server's Date {date:?} is not an HTTP date"),
            "make sure NTP runs on this host (timedatectl)",
        );
    };
    // The Date has whole seconds, taken between our request and the answer.
    let local = sent_at + received_at.duration_since(sent_at).unwrap_or_default() / 2;
    let (skew, ahead) = match local.duration_since(server) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    let secs = skew.as_secs();
    if skew <= MAX_SKEW {
        ok(
            CLOCK,
            format!("within {} s of the server's Date", secs.max(1)),
        )
    } else {
        warn(
            CLOCK,
            format!(
                "this host's clock is {secs} s {} the server's Date ({date})",
                if ahead { "ahead of" } else { "behind" }
            ),
            "synchronise the clock (timedatectl set-ntp true, or chrony): certificate validity \
             and the days left are judged by it",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_path() {
        let t = Target::from_url("https://appapi2.bankid.com/rp/v6.0/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("appapi2.bankid.com", 443));
        assert_eq!(t.path, "/rp/v6.0/");
        let t = Target::from_url("https://127.0.0.1:8443/rp/v6.0/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("127.0.0.1", 8443, "127.0.0.1:8443")
        );
        let t = Target::from_url("https://[::1]:9/rp/v6.0").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9, "/rp/v6.0/")
        );
        assert!(Target::from_url("http://x/").is_none());
        assert!(Target::from_url("https://u@x/").is_none());
        assert!(Target::from_url("https://x:y/").is_none());
    }

    #[test]
    fn order_refs_are_v4_uuids() {
        let a = random_order_ref();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]), "{a}");
        assert_ne!(a, random_order_ref());
    }

    #[test]
    fn responses_plain_and_chunked() {
        let r = Response::parse(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 29\r\ndate: Tue, 01 Dec 2026 08:00:00 GMT\r\n\r\n{\"errorCode\":\"invalidParameters\"}",
        );
        // content-length shorter than the body: cut there (and the JSON no longer parses).
        assert_eq!(r.unwrap().error_code(), None);
        let r = Response::parse(
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"err\r\n1c\r\norCode\":\"invalidParameters\"}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.error_code().as_deref(), Some("invalidParameters"));
        assert!(Response::parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_none());
    }

    #[test]
    fn the_text_has_a_mark_per_check_and_a_fix_per_problem() {
        let checks = vec![
            ok(DNS, "x → 1.2.3.4"),
            warn(CLIENT_CERT, "expires in 3 days", "renew"),
            fail(TCP, "nothing listening", "start it"),
        ];
        let text = to_text(&checks);
        assert!(text.contains("✓ name resolution: x → 1.2.3.4\n"), "{text}");
        assert!(text.contains("⚠ client certificate: expires in 3 days\n    fix: renew\n"));
        assert!(text.contains("✗ TCP connect: nothing listening\n    fix: start it\n"));
        assert!(
            text.ends_with(
                "NOT ready: 1 of 3 checks failed (1 warnings; 9 not run: they need what failed)\n"
            ),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&to_json(&checks)).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["checks"][1]["status"], "warn");
        assert_eq!(v["checks"][2]["fix"], "start it");
        assert_eq!(v["checks"][0]["fix"], "");
    }
}
