//! HTTPS and WSS on the HTTP port: browsers on other machines give camera
//! access only to secure pages. The certificate is the operator's
//! (`--tls-cert`/`--tls-key`, PEM) or, for trials on a LAN, one made at start
//! for the addresses clients use (`--tls-self-signed`), whose SHA-256
//! fingerprint the server prints so a visitor can check what the browser's
//! warning shows.
//!
//! HTTP/1.1 only (ALPN `http/1.1`), like the plain listener: the WebSocket
//! upgrade is an HTTP/1.1 request.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files: the certificate chain, leaf first, and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// Made at start for these names and addresses.
    SelfSigned,
}

/// The TLS side of the HTTP listener, ready to accept.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate, as browsers show it
    /// (`AB:CD:...`).
    pub fingerprint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read --tls-cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read --tls-key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("--tls-cert {0} holds no certificate")]
    NoCert(PathBuf),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(String),
}

impl Tls {
    /// Loads or makes the certificate; `names` are the host names and
    /// addresses a self-signed one is for.
    pub fn new(source: &TlsSource, names: &[String]) -> Result<Tls, TlsError> {
        let (chain, key) = match source {
            TlsSource::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
            TlsSource::SelfSigned => self_signed(names)?,
        };
        let fingerprint = fingerprint(&chain[0]);
        let mut config = ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint,
        })
    }
}

/// The names a self-signed certificate covers: `localhost`, loopback, and
/// the addresses the server is reached at (the unspecified one stands for
/// none).
pub fn self_signed_names(addresses: &[IpAddr]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for ip in addresses.iter().filter(|ip| !ip.is_unspecified()) {
        let name = ip.to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Cert {
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(path.to_path_buf()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

type CertAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn self_signed(names: &[String]) -> Result<CertAndKey, TlsError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    Ok((vec![made.cert.der().clone()], key.into()))
}

/// `AB:CD:…`: the SHA-256 of `cert`'s DER, as browsers show it.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_covers_the_advertised_addresses() {
        let names = self_signed_names(&["10.99.0.1".parse().unwrap(), "0.0.0.0".parse().unwrap()]);
        assert_eq!(names, ["localhost", "127.0.0.1", "::1", "10.99.0.1"]);
        let tls = Tls::new(&TlsSource::SelfSigned, &names).unwrap();
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1, "{}", tls.fingerprint);
    }

    #[test]
    fn unreadable_or_empty_files_are_refused_with_the_flag_named() {
        let dir = std::env::temp_dir().join(format!("cascade-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a pem file\n").unwrap();
        let missing = dir.join("missing.pem");
        let err = Tls::new(
            &TlsSource::Files {
                cert: missing.clone(),
                key: missing.clone(),
            },
            &[],
        )
        .err()
        .expect("a missing certificate is refused");
        assert!(err.to_string().contains("--tls-cert"), "{err}");
        let err = Tls::new(
            &TlsSource::Files {
                cert: empty.clone(),
                key: empty,
            },
            &[],
        )
        .err()
        .expect("a file without a certificate is refused");
        assert!(matches!(err, TlsError::NoCert(_)), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pem_files_load_and_keep_their_fingerprint() {
        let made = rcgen::generate_simple_self_signed(vec!["meet.example.org".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("cascade-tls-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let tls = Tls::new(&TlsSource::Files { cert, key }, &[]).unwrap();
        assert_eq!(tls.fingerprint, fingerprint(made.cert.der()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
