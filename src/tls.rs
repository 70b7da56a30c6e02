//! TLS for the RP API: the configured BankID root as the *only* trust anchor, and the RP's
//! client identity from PEM (plain or encrypted PKCS#8) or PKCS#12 (modern or legacy), all
//! parsed in-process.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS configuration problem. The text names the file or setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TlsError {}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{what} {}: {e}", path.display())))
}

/// The RP's client certificate chain and private key.
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientIdentity({} certificates, key hidden)",
            self.chain.len()
        )
    }
}

impl ClientIdentity {
    /// Certificate PEM file + PKCS#8 key PEM file (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY`
    /// with `password`).
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        password: Option<&str>,
    ) -> Result<ClientIdentity, TlsError> {
        let cert_pem = read(cert, "client certificate")?;
        let key_pem = read(key, "client key")?;
        ClientIdentity::from_pem(&cert_pem, &key_pem, password).map_err(|e| {
            TlsError(
                e.0.replace("{cert}", &cert.display().to_string())
                    .replace("{key}", &key.display().to_string()),
            )
        })
    }

    /// As [`ClientIdentity::from_pem_files`], from memory. Errors name `{cert}`/`{key}`.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        password: Option<&str>,
    ) -> Result<ClientIdentity, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError(format!("client certificate {{cert}}: not PEM: {e}")))?;
        if chain.is_empty() {
            return Err(TlsError(
                "client certificate {cert}: no CERTIFICATE in the file".into(),
            ));
        }
        let text = std::str::from_utf8(key_pem)
            .map_err(|_| TlsError("client key {key}: not a PEM text file".into()))?;
        let key = if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            let password = password.ok_or_else(|| {
                TlsError(
                    "client key {key} is encrypted: set key_password (BANKID_KEY_PASSWORD)".into(),
                )
            })?;
            let (_, doc) = pkcs8::der::Document::from_pem(text)
                .map_err(|e| TlsError(format!("client key {{key}}: bad PEM: {e}")))?;
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
                .map_err(|e| TlsError(format!("client key {{key}}: not encrypted PKCS#8: {e}")))?;
            let plain = info.decrypt(password).map_err(|_| {
                TlsError(
                    "client key {key}: wrong key_password, or an unsupported encryption".into(),
                )
            })?;
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec()))
        } else {
            PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|e| TlsError(format!("client key {{key}}: no private key found: {e}")))?
        };
        Ok(ClientIdentity { chain, key })
    }

    /// The leaf certificate's `notBefore` and `notAfter`, unix seconds.
    pub fn validity(&self) -> Result<crate::metrics::Validity, TlsError> {
        validity(&self.chain[0])
    }

    /// A PKCS#12 file (`.p12`/`.pfx`, AES or legacy RC2/3DES) with `password`.
    pub fn from_pkcs12_file(path: &Path, password: &str) -> Result<ClientIdentity, TlsError> {
        let data = read(path, "PKCS#12 file")?;
        ClientIdentity::from_pkcs12(&data, password)
            .map_err(|e| TlsError(e.0.replace("{p12}", &path.display().to_string())))
    }

    /// As [`ClientIdentity::from_pkcs12_file`], from memory. Errors name `{p12}`.
    pub fn from_pkcs12(data: &[u8], password: &str) -> Result<ClientIdentity, TlsError> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            data,
            password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| {
            let msg = e.to_string();
            if msg.to_ascii_lowercase().contains("mac")
                || msg.to_ascii_lowercase().contains("password")
            {
                TlsError(
                    "PKCS#12 file {p12}: wrong p12_password (the integrity check failed)".into(),
                )
            } else {
                TlsError(format!("PKCS#12 file {{p12}}: cannot be read: {msg}"))
            }
        })?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            TlsError("PKCS#12 file {p12}: holds no private key with a certificate".into())
        })?;
        let certs: Vec<CertificateDer<'static>> = chain
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect();
        if certs.is_empty() {
            return Err(TlsError(
                "PKCS#12 file {p12}: the key has no certificate".into(),
            ));
        }
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
        Ok(ClientIdentity { chain: certs, key })
    }
}

/// A DER certificate's `notBefore` and `notAfter`, unix seconds.
pub fn validity(der: &[u8]) -> Result<crate::metrics::Validity, TlsError> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| {
        TlsError(format!(
            "client certificate: not a readable X.509 certificate: {e}"
        ))
    })?;
    let v = cert.tbs_certificate().validity();
    let secs = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    Ok(crate::metrics::Validity {
        not_before: secs(v.not_before),
        not_after: secs(v.not_after),
    })
}

/// Reads the trust anchors from a PEM file; `what` names the setting in errors.
pub fn roots_from_pem(pem: &[u8], what: &str) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| TlsError(format!("{what}: not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("{what}: not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(TlsError(format!("{what}: no CERTIFICATE in it")));
    }
    Ok(roots)
}

/// The rustls client configuration: `roots` only (no system roots), TLS 1.2 and 1.3, our
/// client certificate, HTTP/1.1.
pub fn client_config(
    roots: rustls::RootCertStore,
    identity: ClientIdentity,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain, identity.key)
        .map_err(|e| {
            TlsError(format!(
                "client certificate and key do not work together: {e}"
            ))
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
