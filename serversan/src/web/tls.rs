//! Native HTTPS: the certificate and key are read from PEM files and read
//! again when the files change (checked at most once per interval, on a new
//! connection), so a renewal by certbot or similar needs no restart. A
//! renewal that cannot be loaded is logged and the previous certificate
//! stays in use.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::WebError;

/// A TLS acceptor serving the certificate in `cert` with the key in `key`.
pub fn acceptor(cert: &Path, key: &Path, check_every: Duration) -> Result<TlsAcceptor, WebError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = ReloadingCert::load(cert, key, check_every, provider.clone())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Modification times of the two files, to notice a renewal.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

struct Current {
    key: Arc<CertifiedKey>,
    stamp: Stamp,
    checked: Instant,
}

struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    check_every: Duration,
    provider: Arc<CryptoProvider>,
    current: RwLock<Current>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    fn load(
        cert: &Path,
        key: &Path,
        check_every: Duration,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, WebError> {
        let stamp = stamp(cert, key);
        let certified = load_pair(cert, key, &provider)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            check_every,
            provider,
            current: RwLock::new(Current {
                key: Arc::new(certified),
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    fn reload_if_changed(&self) {
        {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            if current.checked.elapsed() < self.check_every {
                return;
            }
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.checked.elapsed() < self.check_every {
            return;
        }
        current.checked = Instant::now();
        let stamp = stamp(&self.cert, &self.key);
        if stamp == current.stamp {
            return;
        }
        // Remember the new stamp either way, so a broken renewal is
        // reported once rather than on every connection.
        current.stamp = stamp;
        match load_pair(&self.cert, &self.key, &self.provider) {
            Ok(key) => {
                current.key = Arc::new(key);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(
                "TLS certificate changed but cannot be used, keeping the previous one: {e}"
            ),
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.reload_if_changed();
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        Some(current.key.clone())
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, WebError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| WebError::TlsFile {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read("certificate", cert)?;
    let key_pem = read("key", key)?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(WebError::TlsEmpty {
            what: "certificate",
            path: cert.to_owned(),
        });
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| WebError::TlsEmpty {
            what: "key",
            path: key.to_owned(),
        })?;
    Ok(CertifiedKey::from_der(chain, key_der, provider)?)
}
