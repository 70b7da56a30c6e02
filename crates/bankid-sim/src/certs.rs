//! Test PKI: a CA, a server certificate for `localhost`/`127.0.0.1`, and an RP client
//! certificate, written in the shapes BankID hands out (PEM, encrypted PKCS#8, PKCS#12).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Password of `client-encrypted.key` and `client.p12`, the same as BankID's public test certificate.
pub const CLIENT_PASSWORD: &str = "qwerty123";

/// Every file name in a certificates directory.
pub const FILES: [&str; 9] = [
    "ca.pem",
    "ca.key",
    "server.pem",
    "server.key",
    "client.pem",
    "client.key",
    "client-encrypted.key",
    "client.p12",
    "client-legacy.p12",
];

/// The simulator's PKI, all as PEM text or DER bytes.
#[derive(Clone)]
pub struct SimCerts {
    /// The CA certificate clients trust (`ca.pem`).
    pub ca_pem: String,
    ca_key_pem: String,
    /// The server certificate (`server.pem`), signed by the CA.
    pub server_pem: String,
    server_key_pem: String,
    /// The RP client certificate (`client.pem`), signed by the CA.
    pub client_pem: String,
    /// Its key as unencrypted PKCS#8 (`client.key`).
    pub client_key_pem: String,
    /// Its key as PKCS#8 encrypted with [`CLIENT_PASSWORD`] (`client-encrypted.key`).
    pub client_encrypted_key_pem: String,
    /// Certificate + key as PKCS#12 (AES-256, PBES2), password [`CLIENT_PASSWORD`] (`client.p12`).
    pub client_p12: Vec<u8>,
    /// The same with legacy 3DES encryption, as old bank-issued files are (`client-legacy.p12`).
    pub client_legacy_p12: Vec<u8>,
    /// Where the files were written or read, if anywhere.
    pub dir: Option<PathBuf>,
}

impl fmt::Debug for SimCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCerts")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A certificate problem, naming the file or step.
#[derive(Debug)]
pub struct CertError(pub String);

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for CertError {}

fn err(what: &str, e: impl fmt::Display) -> CertError {
    CertError(format!("{what}: {e}"))
}

/// A CA key and certificate that can sign leaf certificates.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
}

fn new_ca(common_name: &str) -> Result<(Ca, String), CertError> {
    let key = KeyPair::generate().map_err(|e| err("generating CA key", e))?;
    let params = ca_params(common_name)?;
    let cert = params.self_signed(&key).map_err(|e| err("signing CA", e))?;
    Ok((Ca { params, key }, cert.pem()))
}

/// The CA's parameters: the same for a new CA and for one read back with its key, so a
/// certificate issued later names exactly the subject of `ca.pem`.
fn ca_params(common_name: &str) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "bankid-sim");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

const CA_NAME: &str = "bankid-sim Test Root CA";

fn leaf(
    ca: &Ca,
    names: Vec<String>,
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, KeyPair), CertError> {
    let key = KeyPair::generate().map_err(|e| err("generating key", e))?;
    let mut params = CertificateParams::new(names).map_err(|e| err("certificate names", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| err("signing certificate", e))?;
    Ok((cert.pem(), key))
}

/// A client certificate for `common_name` signed by a *fresh* CA that the simulator does not
/// trust: (certificate PEM, PKCS#8 key PEM). For tests of refused handshakes.
pub fn untrusted_client() -> Result<(String, String), CertError> {
    let (ca, _) = new_ca("Untrusted CA")?;
    let (pem, key) = leaf(
        &ca,
        vec![],
        "Untrusted RP",
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    Ok((pem, key.serialize_pem()))
}

fn pem_der(pem_text: &str, what: &str) -> Result<Vec<u8>, CertError> {
    use rustls_pki_types::pem::PemObject;
    if pem_text.contains("PRIVATE KEY") {
        rustls_pki_types::PrivateKeyDer::from_pem_slice(pem_text.as_bytes())
            .map(|k| k.secret_der().to_vec())
            .map_err(|e| err(what, e))
    } else {
        rustls_pki_types::CertificateDer::from_pem_slice(pem_text.as_bytes())
            .map(|c| c.to_vec())
            .map_err(|e| err(what, e))
    }
}

fn encrypt_pkcs8(key_der: &[u8]) -> Result<String, CertError> {
    use pkcs8::der::pem::LineEnding;
    use rand::RngCore;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    rand::rng().fill_bytes(&mut iv);
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &salt, &iv)
        .map_err(|e| err("PBES2 parameters", e))?;
    let info = pkcs8::PrivateKeyInfo::try_from(key_der).map_err(|e| err("PKCS#8 key", e))?;
    let doc = info
        .encrypt_with_params(params, CLIENT_PASSWORD)
        .map_err(|e| err("encrypting PKCS#8 key", e))?;
    doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map(|p| p.to_string())
        .map_err(|e| err("encrypted key PEM", e))
}

fn pkcs12(
    cert_pem: &str,
    key_der: &[u8],
    ca_pem: &str,
    algo: p12_keystore::EncryptionAlgorithm,
) -> Result<Vec<u8>, CertError> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let cert = Certificate::from_der(&pem_der(cert_pem, "client certificate")?)
        .map_err(|e| err("client certificate", e))?;
    let ca = Certificate::from_der(&pem_der(ca_pem, "CA certificate")?)
        .map_err(|e| err("CA certificate", e))?;
    let key = PrivateKey::from_der(key_der).map_err(|e| err("client key", e))?;
    let chain = PrivateKeyChain::new(b"bankid-sim-rp".to_vec(), key, vec![cert, ca]);
    let mut store = KeyStore::new();
    store.add_entry("bankid-sim rp", KeyStoreEntry::PrivateKeyChain(chain));
    store
        .writer(CLIENT_PASSWORD)
        .encryption_algorithm(algo)
        .write()
        .map_err(|e| err("writing PKCS#12", e))
}

impl SimCerts {
    /// Generates a fresh PKI.
    pub fn generate() -> Result<SimCerts, CertError> {
        let (ca, ca_pem) = new_ca(CA_NAME)?;
        let (server_pem, server_key) = leaf(
            &ca,
            vec!["localhost".into(), "127.0.0.1".into()],
            "bankid-sim server",
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_pem, client_key) = leaf(
            &ca,
            vec![],
            "bankid-sim RP (test)",
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let client_key_der = client_key.serialize_der();
        Ok(SimCerts {
            client_encrypted_key_pem: encrypt_pkcs8(&client_key_der)?,
            client_p12: pkcs12(
                &client_pem,
                &client_key_der,
                &ca_pem,
                p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            )?,
            client_legacy_p12: pkcs12(
                &client_pem,
                &client_key_der,
                &ca_pem,
                p12_keystore::EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            )?,
            ca_key_pem: ca.key.serialize_pem(),
            client_key_pem: client_key.serialize_pem(),
            server_key_pem: server_key.serialize_pem(),
            ca_pem,
            server_pem,
            client_pem,
            dir: None,
        })
    }

    /// Reuses the files in `dir` when all are there, otherwise generates a new PKI and writes it.
    pub fn load_or_generate(dir: &Path) -> Result<SimCerts, CertError> {
        if FILES.iter().all(|f| dir.join(f).is_file()) {
            let text = |f: &str| {
                fs::read_to_string(dir.join(f))
                    .map_err(|e| err(&dir.join(f).display().to_string(), e))
            };
            let bytes = |f: &str| {
                fs::read(dir.join(f)).map_err(|e| err(&dir.join(f).display().to_string(), e))
            };
            return Ok(SimCerts {
                ca_pem: text("ca.pem")?,
                ca_key_pem: text("ca.key")?,
                server_pem: text("server.pem")?,
                server_key_pem: text("server.key")?,
                client_pem: text("client.pem")?,
                client_key_pem: text("client.key")?,
                client_encrypted_key_pem: text("client-encrypted.key")?,
                client_p12: bytes("client.p12")?,
                client_legacy_p12: bytes("client-legacy.p12")?,
                dir: Some(dir.to_path_buf()),
            });
        }
        let mut certs = SimCerts::generate()?;
        certs.write(dir)?;
        Ok(certs)
    }

    /// Writes every file into `dir` (created if missing) and remembers it.
    pub fn write(&mut self, dir: &Path) -> Result<(), CertError> {
        fs::create_dir_all(dir).map_err(|e| err(&dir.display().to_string(), e))?;
        let files: [(&str, &[u8]); 9] = [
            ("ca.pem", self.ca_pem.as_bytes()),
            ("ca.key", self.ca_key_pem.as_bytes()),
            ("server.pem", self.server_pem.as_bytes()),
            ("server.key", self.server_key_pem.as_bytes()),
            ("client.pem", self.client_pem.as_bytes()),
            ("client.key", self.client_key_pem.as_bytes()),
            (
                "client-encrypted.key",
                self.client_encrypted_key_pem.as_bytes(),
            ),
            ("client.p12", &self.client_p12),
            ("client-legacy.p12", &self.client_legacy_p12),
        ];
        for (name, data) in files {
            let path = dir.join(name);
            fs::write(&path, data).map_err(|e| err(&path.display().to_string(), e))?;
        }
        self.dir = Some(dir.to_path_buf());
        Ok(())
    }

    /// A client certificate for `common_name` signed by this CA and valid from `not_before` to
    /// `not_after` (which may lie in the past or the future): (certificate PEM, PKCS#8 key PEM).
    /// For tests of expired, not yet valid and soon expiring certificates.
    pub fn issue_client(
        &self,
        common_name: &str,
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> Result<(String, String), CertError> {
        let ca = Ca {
            params: ca_params(CA_NAME)?,
            key: KeyPair::from_pem(&self.ca_key_pem).map_err(|e| err("ca.key", e))?,
        };
        let key = KeyPair::generate().map_err(|e| err("generating key", e))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| err("certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let issuer = Issuer::from_params(&ca.params, &ca.key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| err("signing certificate", e))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Path of one of [`FILES`] when the certificates live in a directory.
    pub fn path(&self, file: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(file))
    }

    /// The rustls server configuration: this server certificate, and client certificates
    /// required and verified against the CA.
    pub(crate) fn server_config(&self) -> Result<rustls::ServerConfig, CertError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots
                .add(ca.map_err(|e| err("ca.pem", e))?)
                .map_err(|e| err("ca.pem", e))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| err("client verifier", e))?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.server_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| err("server.pem", e))?;
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .map_err(|e| err("server.key", e))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err("TLS versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| err("server certificate", e))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }
}
