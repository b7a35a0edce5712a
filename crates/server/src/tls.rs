//! TLS on the listeners (rustls, ring): a certificate chain and key from PEM files, HTTP/2 and
//! HTTP/1.1 by ALPN, and a reload of both files on SIGHUP without dropping open connections
//! (new handshakes get the new certificate; a reload that fails keeps the old one).

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// The certificate in use, swapped whole on reload.
#[derive(Debug)]
struct Reloadable {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .with_context(|| format!("reading {}", cert_file.display()))?
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("parsing {}", cert_file.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate",
        cert_file.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading the private key in {}", key_file.display()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_file.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        anyhow::anyhow!(
            "the key in {} does not match the certificate: {e}",
            key_file.display()
        )
    })?;
    Ok(certified)
}

/// A listener's TLS: the acceptor and the handle that reloads its certificate.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certs: Arc<Reloadable>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_file", &self.certs.cert_file)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// TLS from a PEM certificate chain and key (PKCS#8, PKCS#1 or SEC1), TLS 1.2 and 1.3,
    /// ALPN `h2` then `http/1.1`.
    pub fn new(cert_file: &Path, key_file: &Path) -> Result<Self> {
        let certs = Arc::new(Reloadable {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(Arc::new(load(cert_file, key_file)?)),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Read the files again; on success new handshakes use them, on failure nothing changes.
    pub fn reload(&self) -> Result<()> {
        let fresh = Arc::new(load(&self.certs.cert_file, &self.certs.key_file)?);
        match self.certs.current.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}
