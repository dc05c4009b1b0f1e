//! The rustls client configuration for the voice websocket: webpki roots plus the configured
//! extra roots, the ring provider. Each adapter wraps it in its websocket library's connector.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::JoinError;

/// Builds the TLS client configuration (once per connection): the webpki roots plus every
/// certificate in `extra_roots` (each entry PEM, one or more certificates).
pub fn tls_client_config(extra_roots: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, JoinError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_roots {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| JoinError::Tls(format!("bad PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| JoinError::Tls(format!("unusable root certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| JoinError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
