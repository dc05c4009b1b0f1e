//! The rustls client configuration for the voice websocket: webpki roots plus the configured
//! extra roots, the aws-lc-rs provider (rustls's default and recommended one; post-quantum key
//! exchange preferred). Each adapter wraps it in its websocket library's connector.

use std::sync::{Arc, Mutex, PoisonError};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::JoinError;

/// How many distinct root sets keep their configuration (a process rarely has more than one).
const KEPT_CONFIGURATIONS: usize = 8;

/// The TLS client configuration for `extra_roots`: the webpki roots plus every certificate in
/// `extra_roots` (each entry PEM, one or more certificates).
///
/// Built once per distinct set of extra roots and shared by every connection that uses it: a
/// configuration holds the parsed root store and the TLS session cache, some 30 KiB, which
/// thousands of connections must not each repeat (sharing the cache also lets reconnections
/// resume TLS sessions).
pub fn tls_client_config(extra_roots: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, JoinError> {
    type Kept = Vec<(Vec<Vec<u8>>, Arc<rustls::ClientConfig>)>;
    static KEPT: Mutex<Kept> = Mutex::new(Vec::new());
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, config)) = kept
        .iter()
        .find(|(roots, _)| roots.as_slice() == extra_roots)
    {
        return Ok(Arc::clone(config));
    }
    let config = build(extra_roots)?;
    if kept.len() >= KEPT_CONFIGURATIONS {
        kept.remove(0);
    }
    kept.push((extra_roots.to_vec(), Arc::clone(&config)));
    Ok(config)
}

fn build(extra_roots: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, JoinError> {
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
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| JoinError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_configuration_per_set_of_roots() {
        let a = tls_client_config(&[]).unwrap();
        let b = tls_client_config(&[]).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let bad = tls_client_config(&[
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec(),
        ]);
        assert!(matches!(bad, Err(JoinError::Tls(_))));
    }
}
