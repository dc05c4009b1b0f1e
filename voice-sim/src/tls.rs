//! A throw-away certificate authority and a server certificate for `127.0.0.1` and `localhost`,
//! generated at start so clients can speak `wss://` to the loopback server.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::SimError;

/// The generated CA and the rustls server configuration built from it.
pub struct TlsMaterial {
    /// The CA certificate in PEM (give it to clients, e.g. `NODE_EXTRA_CA_CERTS`).
    pub ca_pem: String,
    /// The CA certificate in DER.
    pub ca_der: CertificateDer<'static>,
    /// The server configuration (certificate chain: leaf, CA).
    pub server_config: Arc<rustls::ServerConfig>,
}

impl TlsMaterial {
    /// Generates a CA and a leaf certificate valid for `127.0.0.1`, `::1` and `localhost`.
    pub fn generate() -> Result<Self, SimError> {
        let tls = |e: rcgen::Error| SimError::Tls(e.to_string());
        let ca_key = KeyPair::generate().map_err(tls)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "voice-sim loopback CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls)?;

        let leaf_key = KeyPair::generate().map_err(tls)?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).map_err(tls)?;
        leaf.subject_alt_names.push(SanType::IpAddress(
            "127.0.0.1"
                .parse()
                .map_err(|_| SimError::Tls("ip".into()))?,
        ));
        leaf.subject_alt_names.push(SanType::IpAddress(
            "::1".parse().map_err(|_| SimError::Tls("ip".into()))?,
        ));
        leaf.distinguished_name
            .push(DnType::CommonName, "voice-sim loopback server");
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf.signed_by(&leaf_key, &ca).map_err(tls)?;

        let ca_der = ca.der().clone();
        let chain = vec![leaf_cert.der().clone(), ca_der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SimError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| SimError::Tls(e.to_string()))?;
        Ok(Self {
            ca_pem: ca.pem(),
            ca_der,
            server_config: Arc::new(server_config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_pem_ca_and_a_server_config() {
        let material = TlsMaterial::generate().expect("generates");
        assert!(material.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!material.ca_der.is_empty());
    }
}
