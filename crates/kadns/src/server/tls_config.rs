//! The stub's TLS identity for DoT and DoH: a PEM certificate chain and its
//! private key, read once at start and turned into rustls server configs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN protocol id of DNS over TLS (RFC 7858, registered by IANA).
pub const ALPN_DOT: &[u8] = b"dot";

/// ALPN protocol ids offered for DNS over HTTPS: HTTP/2 first (RFC 8484
/// requires it), HTTP/1.1 for clients without it.
pub const ALPN_DOH: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Largest certificate or key file read, in bytes: a chain of a few
/// certificates is a few KiB, so anything larger is the wrong file.
const MAX_PEM_FILE: u64 = 1 << 20;

/// Why the TLS certificate or key cannot be used. Each variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("cannot read TLS {what} {}: {source}", path.display())]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than any certificate chain or key.
    #[error("TLS {what} {} is larger than {MAX_PEM_FILE} bytes: not a PEM file", path.display())]
    TooLarge {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A file holds no PEM block of the kind needed, or a malformed one.
    #[error("TLS {what} {}: {reason}", path.display())]
    Pem {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate and the key do not make a usable identity (the key
    /// does not match the certificate, or is of an unsupported kind).
    #[error("TLS certificate {} with key {}: {source}", cert.display(), key.display())]
    Identity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// `--dot-listen` or `--doh-listen` is set but `--tls-cert` or
    /// `--tls-key` is not.
    #[error(
        "an encrypted DNS listener needs both --tls-cert and --tls-key ([dns] tls_cert, tls_key)"
    )]
    Missing,
}

/// A certificate chain and its key, checked to match.
///
/// ```no_run
/// use kadns::TlsIdentity;
/// let identity = TlsIdentity::load("/etc/kadns/cert.pem".as_ref(), "/etc/kadns/key.pem".as_ref())?;
/// let dot = identity.server_config(&[kadns::ALPN_DOT]);
/// # Ok::<(), kadns::TlsConfigError>(())
/// ```
#[derive(Debug)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// Reads the PEM certificate chain at `cert` (leaf first) and the PEM
    /// private key at `key` (PKCS#8, PKCS#1 or SEC1), and checks that the key
    /// belongs to the leaf certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsConfigError> {
        let cert_pem = read_bounded("certificate", cert)?;
        let pem_error = |what: &'static str, path: &Path, reason: String| TlsConfigError::Pem {
            what,
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error("certificate", cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_error(
                "certificate",
                cert,
                "no CERTIFICATE block in the file".into(),
            ));
        }
        let key_pem = read_bounded("key", key)?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            let reason = match e {
                pem::Error::NoItemsFound => {
                    "no PRIVATE KEY block (PKCS#8, RSA or EC) in the file".into()
                }
                other => other.to_string(),
            };
            pem_error("key", key, reason)
        })?;
        let identity = Self {
            chain,
            key: private,
        };
        // Build once now, so that a key that does not match fails at start.
        identity
            .try_server_config(&[])
            .map_err(|source| TlsConfigError::Identity {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })?;
        Ok(identity)
    }

    /// A rustls server config for this identity offering the `alpn`
    /// protocols (TLS 1.2 and 1.3, the `ring` provider, no client auth).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let config = self
            .try_server_config(alpn)
            .expect("the identity was checked to build a server config in load");
        Arc::new(config)
    }

    fn try_server_config(&self, alpn: &[&[u8]]) -> Result<ServerConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

fn read_bounded(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    let read = |source| TlsConfigError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > MAX_PEM_FILE {
        return Err(TlsConfigError::TooLarge {
            what,
            path: path.to_owned(),
        });
    }
    std::fs::read(path).map_err(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn good_pair_loads_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["dns.test".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["dns.test".into()]).unwrap();
        let cert = write(dir.path(), "cert.pem", &one.cert.pem());
        let key = write(dir.path(), "key.pem", &one.key_pair.serialize_pem());
        let identity = TlsIdentity::load(&cert, &key).unwrap();
        let config = identity.server_config(ALPN_DOH);
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        let missing = dir.path().join("nope.pem");
        let err = TlsIdentity::load(&missing, &key).unwrap_err();
        assert!(matches!(
            err,
            TlsConfigError::Read {
                what: "certificate",
                ..
            }
        ));
        assert!(err.to_string().contains("nope.pem"), "{err}");

        // The key file given as the certificate: no CERTIFICATE block.
        let err = TlsIdentity::load(&key, &key).unwrap_err();
        assert!(
            err.to_string().contains("no CERTIFICATE block") && err.to_string().contains("key.pem"),
            "{err}"
        );
        // The certificate given as the key.
        let err = TlsIdentity::load(&cert, &cert).unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY block"), "{err}");
        // A key of another certificate.
        let wrong = write(dir.path(), "wrong.pem", &other.key_pair.serialize_pem());
        let err = TlsIdentity::load(&cert, &wrong).unwrap_err();
        assert!(matches!(err, TlsConfigError::Identity { .. }), "{err}");
        assert!(err.to_string().contains("wrong.pem"), "{err}");
        // A truncated certificate.
        let pem = one.cert.pem();
        let torn = write(dir.path(), "torn.pem", &pem[..pem.len() / 2]);
        let err = TlsIdentity::load(&torn, &key).unwrap_err();
        assert!(
            matches!(
                err,
                TlsConfigError::Pem {
                    what: "certificate",
                    ..
                }
            ),
            "{err}"
        );
    }
}
