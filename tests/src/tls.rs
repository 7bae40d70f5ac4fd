//! Test certificates for DoT and DoH, made at test time (never committed):
//! a throw-away CA and a server certificate it signed for
//! [`TEST_SERVER_NAME`] and 127.0.0.1, written as PEM files.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::TestResult;

/// The DNS name the test server certificate is for.
pub const TEST_SERVER_NAME: &str = "dns.test";

/// A CA and one server certificate, as PEM files in a directory.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate: what clients are told to trust.
    pub ca: PathBuf,
    /// The server's certificate chain (leaf, then the CA).
    pub cert: PathBuf,
    /// The server's private key (PKCS#8).
    pub key: PathBuf,
}

impl TestCerts {
    /// Makes a fresh CA and a server certificate for [`TEST_SERVER_NAME`]
    /// and 127.0.0.1, and writes `ca.pem`, `cert.pem` and `key.pem` into `dir`.
    pub fn generate(dir: &Path) -> TestResult<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kadns test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;

        let mut params = CertificateParams::new(vec![TEST_SERVER_NAME.to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(DnType::CommonName, TEST_SERVER_NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;

        let certs = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&certs.ca, ca.pem())?;
        std::fs::write(&certs.cert, format!("{}{}", cert.pem(), ca.pem()))?;
        std::fs::write(&certs.key, key.serialize_pem())?;
        Ok(certs)
    }
}
