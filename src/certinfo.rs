//! What a certificate says about itself: subject, issuer, validity and days left. Used by
//! `bankid-ivr doctor` and by the engine, which warns at start and once a day while the client
//! certificate expires within [`EXPIRY_WARNING_DAYS`] (a bank renews an RP certificate by hand,
//! and an expired one stops every identification at once).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::tls::TlsError;

/// A certificate expiring within this many days is worth a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The parts of an X.509 certificate an operator needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. `CN=bankid-sim RP (test), O=…`.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

/// Where a certificate stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// `not_before` is still ahead.
    NotYetValid,
    /// `not_after` has passed.
    Expired,
    /// Valid, with fewer than [`EXPIRY_WARNING_DAYS`] whole days left.
    ExpiresSoon {
        /// Whole days left (0 on the last day).
        days_left: i64,
    },
    /// Valid for [`EXPIRY_WARNING_DAYS`] days or more.
    Valid {
        /// Whole days left.
        days_left: i64,
    },
}

fn system_time(t: x509_cert::time::Time) -> SystemTime {
    UNIX_EPOCH + t.to_unix_duration()
}

/// `t` as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::personnummer::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl CertInfo {
    /// Reads a DER certificate; `what` names it in the error.
    pub fn from_der(der: &[u8], what: &str) -> Result<CertInfo, TlsError> {
        // RustCrypto's parser: no global state (x509-parser's lazily built OID registry is never
        // freed, which valgrind reports and every dlopen/dlclose of the library would leak).
        use x509_cert::der::Decode;
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| TlsError(format!("{what}: not an X.509 certificate: {e}")))?;
        let tbs = cert.tbs_certificate();
        Ok(CertInfo {
            subject: tbs.subject().to_string(),
            issuer: tbs.issuer().to_string(),
            not_before: system_time(tbs.validity().not_before),
            not_after: system_time(tbs.validity().not_after),
        })
    }

    /// Every certificate in a PEM text, in order; `what` names it in errors.
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Vec<CertInfo>, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let mut out = Vec::new();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TlsError(format!("{what}: not PEM: {e}")))?;
            out.push(CertInfo::from_der(&cert, what)?);
        }
        Ok(out)
    }

    /// Whole days from `now` to the end of validity; negative once expired.
    pub fn days_left(&self, now: SystemTime) -> i64 {
        match self.not_after.duration_since(now) {
            Ok(left) => (left.as_secs() / DAY.as_secs()) as i64,
            Err(e) => -((e.duration().as_secs().div_ceil(DAY.as_secs())) as i64),
        }
    }

    /// Where the certificate stands at `now`.
    pub fn validity(&self, now: SystemTime) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else {
            let days_left = self.days_left(now);
            if days_left < EXPIRY_WARNING_DAYS {
                Validity::ExpiresSoon { days_left }
            } else {
                Validity::Valid { days_left }
            }
        }
    }

    /// The engine's log line for the client certificate at `now`, if one is due: expired, not
    /// yet valid, or expiring within [`EXPIRY_WARNING_DAYS`].
    pub fn expiry_warning(&self, now: SystemTime) -> Option<String> {
        let until = utc(self.not_after);
        match self.validity(now) {
            Validity::Valid { .. } => None,
            Validity::ExpiresSoon { days_left } => Some(format!(
                "the BankID client certificate ({}) expires in {days_left} days, on {until}: \
                 order a new one from the bank and install it before then",
                self.subject
            )),
            Validity::Expired => Some(format!(
                "the BankID client certificate ({}) expired on {until}: BankID refuses every \
                 request until a renewed certificate is installed",
                self.subject
            )),
            Validity::NotYetValid => Some(format!(
                "the BankID client certificate ({}) is not valid before {}: check the clock, \
                 or install the certificate in use today",
                self.subject,
                utc(self.not_before)
            )),
        }
    }
}

/// Logs [`CertInfo::expiry_warning`] now, if due.
pub fn log_expiry(cert: &CertInfo) {
    if let Some(w) = cert.expiry_warning(SystemTime::now()) {
        log::warn!("{w}");
    }
}

/// Logs [`CertInfo::expiry_warning`] once a day (the first a day from now) for as long as the
/// runtime it is spawned on runs.
pub async fn daily_expiry_warnings(cert: CertInfo) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + DAY, DAY);
    loop {
        tick.tick().await;
        log_expiry(&cert);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: SystemTime, not_after: SystemTime) -> CertInfo {
        CertInfo {
            subject: "CN=RP".into(),
            issuer: "CN=CA".into(),
            not_before,
            not_after,
        }
    }

    #[test]
    fn validity_and_days_left() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let c = cert(now - DAY, now + DAY * 29 + Duration::from_secs(60));
        assert_eq!(c.validity(now), Validity::ExpiresSoon { days_left: 29 });
        let c = cert(now - DAY, now + DAY * 30);
        assert_eq!(c.validity(now), Validity::Valid { days_left: 30 });
        let c = cert(now - DAY * 2, now - Duration::from_secs(1));
        assert_eq!(c.validity(now), Validity::Expired);
        assert_eq!(c.days_left(now), -1);
        let c = cert(now + Duration::from_secs(1), now + DAY * 400);
        assert_eq!(c.validity(now), Validity::NotYetValid);
    }

    #[test]
    fn the_warning_says_when_and_what_to_do() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(cert(now - DAY, now + DAY * 31).expiry_warning(now), None);
        let w = cert(now - DAY, now + DAY * 10 + Duration::from_secs(5))
            .expiry_warning(now)
            .unwrap();
        assert!(
            w.contains("CN=RP") && w.contains("expires in 10 days"),
            "{w}"
        );
        assert!(w.contains("2027-01-"), "{w}");
        let w = cert(now - DAY * 10, now - DAY).expiry_warning(now).unwrap();
        assert!(w.contains("expired on"), "{w}");
        let w = cert(now + DAY, now + DAY * 10).expiry_warning(now).unwrap();
        assert!(w.contains("not valid before"), "{w}");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "2024-02-29 12:34:56 UTC"
        );
        assert_eq!(
            utc(UNIX_EPOCH - Duration::from_secs(86_400)),
            "1969-12-31 00:00:00 UTC"
        );
    }

    #[test]
    fn reads_a_generated_certificate() {
        let certs = bankid_sim::SimCerts::generate().unwrap();
        let infos = CertInfo::from_pem(certs.client_pem.as_bytes(), "client.pem").unwrap();
        assert_eq!(infos.len(), 1);
        assert!(
            infos[0].subject.contains("CN=bankid-sim RP (test)"),
            "{infos:?}"
        );
        assert!(
            infos[0].issuer.contains("CN=bankid-sim Test Root CA"),
            "{infos:?}"
        );
        assert!(infos[0].not_before <= SystemTime::now());
        let e = CertInfo::from_der(b"junk", "x.pem").unwrap_err();
        assert!(e.0.starts_with("x.pem: not an X.509 certificate"), "{e}");
    }
}
