//! Opening the voice websocket over TLS (rustls, webpki roots plus configured extra roots).

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::JoinError;

/// The websocket type used by the driver.
pub(crate) type VoiceSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// DAVE proposals and welcomes grow with call size; stay well above what Discord sends.
const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// Builds the TLS client configuration once per connection.
pub(crate) fn tls_connector(extra_roots: &[Vec<u8>]) -> Result<Connector, JoinError> {
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
    Ok(Connector::Rustls(Arc::new(config)))
}

/// Opens the websocket at `url` (`ws://` or `wss://`).
pub(crate) async fn open(
    url: String,
    connector: Connector,
) -> Result<VoiceSocket, tokio_tungstenite::tungstenite::Error> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    let (socket, _response) =
        tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, Some(connector))
            .await?;
    Ok(socket)
}
