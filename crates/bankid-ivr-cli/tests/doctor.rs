//! `bankid-ivr doctor`, the real binary against real simulators over mutual TLS, one test per
//! failure it must name: each asserts the ✗ (or ⚠) line, its fix, the exit status, and that
//! no password is ever printed. Certificates are made at test time, signed by the simulator's
//! CA where the case needs BankID to accept the issuer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bankid_sim::{Lab, SimCerts, SimConfig, CLIENT_PASSWORD};

const BIN: &str = env!("CARGO_BIN_EXE_bankid-ivr");
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const WRONG_PASSWORD: &str = "not-the-password-7431";

/// Every check a healthy configuration passes, in order.
const ALL_CHECKS: [&str; 12] = [
    "configuration",
    "client identity",
    "certificate and key",
    "client certificate",
    "certificate chain",
    "trust anchor",
    "audit trail",
    "name resolution",
    "TCP connect",
    "TLS handshake",
    "API probe",
    "clock",
];

fn lab() -> Lab {
    Lab::start(SimConfig {
        speed: 0.01,
        ..Default::default()
    })
    .unwrap()
}

/// `bankid-ivr` with no BANKID_* variable inherited from the test's environment.
fn clean_command() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("BANKID_") {
            c.env_remove(k);
        }
    }
    c
}

struct Run {
    code: i32,
    out: String,
}

fn run(mut c: Command) -> Run {
    let o: Output = c.output().unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for secret in [CLIENT_PASSWORD, WRONG_PASSWORD] {
        assert!(!out.contains(secret), "a password was printed:\n{out}");
    }
    Run {
        code: o.status.code().unwrap_or(-1),
        out,
    }
}

fn doctor(config: &Path, extra: &[&str]) -> Run {
    let mut c = clean_command();
    c.arg("doctor").arg("--config").arg(config).args(extra);
    run(c)
}

/// A configuration file in the lab's directory: the simulator's url, the lab's audit files
/// (unless `body` sets `audit_database`), then `body`.
fn config(lab: &Lab, name: &str, body: &str) -> PathBuf {
    let path = lab.dir().join(name);
    let audit = if body.contains("audit_database") {
        String::new()
    } else {
        format!(
            "audit_database = {:?}\naudit_spool_dir = {:?}\naudit_key_file = {:?}\n",
            lab.audit_db_file().display().to_string(),
            lab.audit_spool_dir().display().to_string(),
            lab.audit_key_file().display().to_string()
        )
    };
    std::fs::write(
        &path,
        format!("url = \"{}\"\n{audit}{body}\n", lab.base_url()),
    )
    .unwrap();
    path
}

/// A client certificate from the simulator's CA, valid from `not_before` to `not_after`,
/// written as `NAME.pem` / `NAME.key` into the lab's directory.
fn issue(lab: &Lab, name: &str, not_before: SystemTime, not_after: SystemTime) {
    let certs = SimCerts::load_or_generate(lab.dir()).unwrap();
    let (pem, key) = certs
        .issue_client(&format!("doctor test {name}"), not_before, not_after)
        .unwrap();
    std::fs::write(lab.dir().join(format!("{name}.pem")), pem).unwrap();
    std::fs::write(lab.dir().join(format!("{name}.key")), key).unwrap();
}

/// The line of check `name` with `mark`, and the fix under it (empty if none).
fn line<'a>(r: &'a Run, mark: &str, name: &str) -> (&'a str, &'a str) {
    let prefix = format!("{mark} {name}: ");
    let mut lines = r.out.lines();
    while let Some(l) = lines.next() {
        if l.starts_with(&prefix) {
            let fix = lines
                .next()
                .and_then(|f| f.strip_prefix("    fix: "))
                .unwrap_or("");
            return (l, fix);
        }
    }
    panic!("no line {prefix:?} in:\n{}", r.out);
}

fn assert_fails(r: &Run, name: &str, detail: &str, fix: &str) {
    assert_eq!(r.code, 1, "exit status:\n{}", r.out);
    let (l, f) = line(r, "✗", name);
    assert!(
        l.contains(detail),
        "{name}: {detail:?} not in {l:?}\n{}",
        r.out
    );
    assert!(
        f.contains(fix),
        "{name}: fix {fix:?} not in {f:?}\n{}",
        r.out
    );
    assert!(r.out.contains("NOT ready:"), "{}", r.out);
}

#[test]
fn a_healthy_configuration_passes_every_check_in_every_identity_form() {
    let lab = lab();
    let forms = [
        ("pem", "cert_file = \"client.pem\"\nkey_file = \"client.key\"".to_string()),
        (
            "encrypted",
            format!(
                "cert_file = \"client.pem\"\nkey_file = \"client-encrypted.key\"\nkey_password = \"{CLIENT_PASSWORD}\""
            ),
        ),
        (
            "p12",
            format!("p12_file = \"client.p12\"\np12_password = \"{CLIENT_PASSWORD}\""),
        ),
        (
            "legacy",
            format!("p12_file = \"client-legacy.p12\"\np12_password = \"{CLIENT_PASSWORD}\""),
        ),
    ];
    for (form, body) in forms {
        let file = config(
            &lab,
            &format!("{form}.toml"),
            &format!("ca_file = \"ca.pem\"\n{body}"),
        );
        let r = doctor(&file, &[]);
        assert_eq!(r.code, 0, "{form}:\n{}", r.out);
        for name in ALL_CHECKS {
            line(&r, "✓", name);
        }
        assert!(
            !r.out.contains('✗') && !r.out.contains('⚠'),
            "{form}:\n{}",
            r.out
        );
        assert!(r
            .out
            .contains("ready: this host can identify callers (12 checks, 0 warnings)"));
        let (probe, _) = line(&r, "✓", "API probe");
        assert!(probe.contains("HTTP 400 invalidParameters"), "{probe}");
    }
    // No order was created by any of the probes.
    assert_eq!(lab.orders().len(), 0);

    let file = lab.dir().join("pem.toml");
    let r = doctor(&file, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.out);
    let v: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(v["ok"], true);
    let checks = v["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ALL_CHECKS);
    for c in checks {
        assert_eq!(c["status"], "ok", "{c}");
        assert!(!c["detail"].as_str().unwrap().is_empty(), "{c}");
        assert_eq!(c["fix"], "", "{c}");
    }
}

#[test]
fn with_nothing_configured_it_names_the_settings_and_never_uses_the_simulator() {
    let mut c = clean_command();
    c.arg("doctor");
    let r = run(c);
    assert_fails(
        &r,
        "configuration",
        "no BankID configured",
        "BANKID_PRESET=test|production",
    );
    let (_, fix) = line(&r, "✗", "configuration");
    assert!(
        fix.contains("--config FILE") && fix.contains("BANKID_P12_FILE"),
        "{fix}"
    );

    let mut c = clean_command();
    c.args(["doctor", "--json"]).env("BANKID_SIMULATOR", "1");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["checks"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["checks"][0]["status"], "fail");
    assert!(
        v["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("BANKID_SIMULATOR=1"),
        "{v}"
    );
}

#[test]
fn an_incomplete_configuration_names_the_missing_setting() {
    let lab = lab();
    let file = config(
        &lab,
        "bankid.toml",
        "ca_file = \"ca.pem\"\ncert_file = \"client.pem\"",
    );
    let r = doctor(&file, &[]);
    assert_fails(
        &r,
        "configuration",
        "key_file in",
        "README's Configuration table",
    );
}

#[test]
fn an_expired_client_certificate_fails_and_says_renew() {
    let lab = lab();
    let now = SystemTime::now();
    issue(&lab, "expired", now - DAY * 60, now - DAY);
    let file = config(
        &lab,
        "bankid.toml",
        "ca_file = \"ca.pem\"\ncert_file = \"expired.pem\"\nkey_file = \"expired.key\"",
    );
    let r = doctor(&file, &[]);
    assert_fails(
        &r,
        "client certificate",
        "expired on",
        "install a renewed RP certificate",
    );
    // And the server says so too.
    assert_fails(
        &r,
        "TLS handshake",
        "refused our client certificate",
        "BankID refuses",
    );
}

#[test]
fn a_client_certificate_not_yet_valid_fails_and_points_at_the_clock() {
    let lab = lab();
    let now = SystemTime::now();
    issue(&lab, "future", now + DAY * 10, now + DAY * 400);
    let file = config(
        &lab,
        "bankid.toml",
        "ca_file = \"ca.pem\"\ncert_file = \"future.pem\"\nkey_file = \"future.key\"",
    );
    let r = doctor(&file, &[]);
    assert_fails(
        &r,
        "client certificate",
        "is not valid before",
        "check this host's clock",
    );
}

#[test]
fn a_certificate_expiring_within_30_days_warns_but_passes() {
    let lab = lab();
    let now = SystemTime::now();
    issue(
        &lab,
        "soon",
        now - DAY,
        now + DAY * 10 + Duration::from_secs(3600),
    );
    let file = config(
        &lab,
        "bankid.toml",
        "ca_file = \"ca.pem\"\ncert_file = \"soon.pem\"\nkey_file = \"soon.key\"",
    );
    let r = doctor(&file, &[]);
    assert_eq!(r.code, 0, "a warning does not fail the exit:\n{}", r.out);
    let (l, fix) = line(&r, "⚠", "client certificate");
    assert!(l.contains("expires in 10 days"), "{l}");
    assert!(fix.contains("order a renewed RP certificate"), "{fix}");
    assert!(r
        .out
        .contains("ready: this host can identify callers (12 checks, 1 warnings)"));
    let r = doctor(&file, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["checks"][3]["status"], "warn", "{v}");
}

#[test]
fn the_engine_warns_when_the_certificate_expires_within_30_days() {
    let lab = lab();
    let now = SystemTime::now();
    issue(
        &lab,
        "soon",
        now - DAY,
        now + DAY * 10 + Duration::from_secs(3600),
    );
    let file = config(
        &lab,
        "bankid.toml",
        "ca_file = \"ca.pem\"\ncert_file = \"soon.pem\"\nkey_file = \"soon.key\"\npoll_interval_ms = 20",
    );
    let mut c = clean_command();
    c.args(["identify", "--config"])
        .arg(&file)
        .arg("198503121116");
    let r = run(c);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out
            .contains("the BankID client certificate (CN=doctor test soon) expires in 10 days"),
        "{}",
        r.out
    );
}

#[test]
fn a_server_certificate_from_another_ca_is_a_wrong_ca() {
    let lab = lab();
    let other = self::lab();
    let ca = other.ca_file();
    let file = config(
        &lab,
        "bankid.toml",
        &format!(
            "ca_file = \"{}\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"",
            ca.display()
        ),
    );
    let r = doctor(&file, &[]);
    assert_fails(
        &r,
        "TLS handshake",
        "not from the trust anchor",
        "set ca_file to the CA",
    );
    let (l, _) = line(&r, "✗", "TLS handshake");
    assert!(
        l.contains(&ca.display().to_string()),
        "names the anchor: {l}"
    );
    line(&r, "✓", "TCP connect");
}

#[test]
fn a_key_that_is_not_the_certificates_fails() {
    let lab = lab();
    let now = SystemTime::now();
    issue(&lab, "other", now - DAY, now + DAY * 100);
    let file = config(
        &lab,
        "bankid.toml",
        "ca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"other.key\"",
    );
    let r = doctor(&file, &[]);
    assert_fails(
        &r,
        "certificate and key",
        "does not belong to the client certificate",
        "openssl pkey -pubout",
    );
    let (l, _) = line(&r, "✗", "certificate and key");
    assert!(l.contains("other.key") && l.contains("client.pem"), "{l}");
}

#[test]
fn a_wrong_password_is_its_own_failure_and_never_printed() {
    let lab = lab();
    let file = config(
        &lab,
        "p12.toml",
        &format!(
            "ca_file = \"ca.pem\"\np12_file = \"client.p12\"\np12_password = \"{WRONG_PASSWORD}\""
        ),
    );
    let r = doctor(&file, &[]);
    assert_fails(
        &r,
        "client identity",
        "wrong p12_password",
        "BANKID_P12_PASSWORD",
    );
    let r = doctor(&file, &["--json"]);
    assert!(r.out.contains("wrong p12_password"), "{}", r.out);

    let file = config(
        &lab,
        "pem.toml",
        &format!(
            "ca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client-encrypted.key\"\nkey_password = \"{WRONG_PASSWORD}\""
        ),
    );
    let r = doctor(&file, &[]);
    assert_fails(
        &r,
        "client identity",
        "wrong key_password",
        "BANKID_KEY_PASSWORD",
    );
}

#[test]
fn nothing_listening_is_a_refused_connection() {
    let lab = lab();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let path = lab.dir().join("bankid.toml");
    std::fs::write(
        &path,
        format!(
            "url = \"https://127.0.0.1:{port}/rp/v6.0/\"\nca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"\n"
        ),
    )
    .unwrap();
    let r = doctor(&path, &[]);
    assert_fails(
        &r,
        "TCP connect",
        "nothing listening",
        &format!("nothing listens on port {port}"),
    );
    let (l, _) = line(&r, "✗", "TCP connect");
    assert!(l.contains("connection refused"), "{l}");
    line(&r, "✓", "name resolution");
}

#[test]
fn a_host_that_does_not_resolve_is_a_name_resolution_failure() {
    let lab = lab();
    let path = lab.dir().join("bankid.toml");
    std::fs::write(
        &path,
        "url = \"https://bankid-doctor-test.invalid/rp/v6.0/\"\nca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"\n",
    )
    .unwrap();
    let r = doctor(&path, &[]);
    assert_fails(
        &r,
        "name resolution",
        "cannot resolve bankid-doctor-test.invalid",
        "DNS",
    );
}

/// A TLS server with the simulator's server certificate that never asks for a client
/// certificate (what a TLS-terminating proxy in the way looks like).
fn server_without_client_auth(lab: &Lab) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(lab.dir().join("server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(lab.dir().join("server.key")).unwrap();
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            let mut buf = [0u8; 4096];
            if tls.read(&mut buf).is_ok() {
                let _ = tls.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 33\r\nconnection: close\r\n\r\n{\"errorCode\":\"invalidParameters\"}");
            }
        }
    });
    addr
}

#[test]
fn a_server_that_does_not_ask_for_a_client_certificate_is_not_bankid() {
    let lab = lab();
    let addr = server_without_client_auth(&lab);
    let path = lab.dir().join("bankid.toml");
    std::fs::write(
        &path,
        format!(
            "url = \"https://127.0.0.1:{}/rp/v6.0/\"\nca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"\n",
            addr.port()
        ),
    )
    .unwrap();
    let r = doctor(&path, &[]);
    assert_fails(
        &r,
        "TLS handshake",
        "the server did not ask for a client certificate: it is not BankID",
        "url must reach BankID directly",
    );
    assert!(
        !r.out.contains("API probe"),
        "no probe to a server that is not BankID:\n{}",
        r.out
    );
}

#[test]
fn a_client_certificate_the_server_does_not_trust_is_refused() {
    let lab = lab();
    let (pem, key) = bankid_sim::certs::untrusted_client().unwrap();
    std::fs::write(lab.dir().join("untrusted.pem"), pem).unwrap();
    std::fs::write(lab.dir().join("untrusted.key"), key).unwrap();
    let file = config(
        &lab,
        "bankid.toml",
        "ca_file = \"ca.pem\"\ncert_file = \"untrusted.pem\"\nkey_file = \"untrusted.key\"",
    );
    let r = doctor(&file, &[]);
    assert_fails(
        &r,
        "TLS handshake",
        "the server refused our client certificate",
        "BankID refuses this client certificate",
    );
    line(&r, "✓", "client certificate");
}

const PEM: &str = "ca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"";

#[test]
fn the_audit_trail_check_warns_of_records_waiting_in_the_spool() {
    let lab = lab();
    let file = config(&lab, "spooled.toml", PEM);
    let mut spool = bankid::audit::spool::Spool::open(&lab.audit_spool_dir(), 10).unwrap();
    let row = bankid::audit::Row {
        id: "0".repeat(32),
        started_at: 1,
        finished_at: 2,
        duration_ms: 1,
        channel: "fastagi".into(),
        agent: None,
        call_id: None,
        caller_id: None,
        host: "h".into(),
        mode: "identify".into(),
        call_initiator: "user".into(),
        state: "complete".into(),
        hint_code: None,
        error_code: None,
        order_ref: None,
        pnr_masked: "850312-XXXX".into(),
        pnr_pseudonym: "p".into(),
        pseudonym_key_id: "k".into(),
        completion_data: None,
    };
    spool.append(&[row.clone(), row]).unwrap();
    let r = doctor(&file, &[]);
    assert_eq!(r.code, 0, "a warning does not fail it:\n{}", r.out);
    let (l, fix) = line(&r, "⚠", "audit trail");
    assert!(l.contains("2 waiting"), "{l}");
    assert!(fix.contains("2 record(s) wait in the spool"), "{fix}");
    // Doctor made nothing: no database file, no key.
    assert!(!lab.audit_db_file().exists() && !lab.audit_key_file().exists());
}

#[test]
fn the_audit_trail_check_fails_for_an_unreachable_database_and_a_missing_shared_key() {
    let lab = lab();
    let key = lab.dir().join("shared.key");
    let body = |db: &str| {
        format!(
            "{PEM}\naudit_database = \"{db}\"\naudit_key_file = \"{}\"\naudit_spool_dir = \"{}\"",
            key.display(),
            lab.audit_spool_dir().display()
        )
    };
    // A shared database never makes its key: it must be given to every host.
    let file = config(
        &lab,
        "nokey.toml",
        &body("postgres://audit:s3cret@127.0.0.1:1/bankid"),
    );
    let r = doctor(&file, &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert_fails(&r, "audit trail", "shared.key", "the same on every host");
    assert!(!r.out.contains("s3cret"), "{}", r.out);
    bankid::audit::PseudonymKey::load_or_create(&key).unwrap();
    let r = doctor(&file, &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert_fails(
        &r,
        "audit trail",
        "127.0.0.1:1",
        "records wait in the spool",
    );
    assert!(!r.out.contains("s3cret"), "{}", r.out);
    // A real one answers; its schema is made at the next start.
    let pg = bankid_sim::testdb::TestDb::new();
    let file = config(&lab, "pg.toml", &body(pg.url()));
    let r = doctor(&file, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    let (l, _) = line(&r, "✓", "audit trail");
    assert!(l.contains("brought up to date at the next start"), "{l}");
    assert_eq!(
        pg.query("SELECT count(*) FROM pg_tables WHERE tablename = 'audit_orders'"),
        "0",
        "doctor changed the database"
    );
}
