//! `wss://`: the generated CA verifies the server as `127.0.0.1` and as `localhost`, the gateway
//! speaks through TLS, and plaintext or junk on the TLS port is only a failed handshake.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use voice_sim::{ServerConfig, VoiceServer};

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("the CA PEM parses");
    roots.add(ca).expect("adds the CA");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn wss_with_the_generated_ca_for_ip_and_localhost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_path = dir.path().join("ca.pem");
    let server = VoiceServer::start(ServerConfig {
        tls: true,
        ca_pem_path: Some(ca_path.clone()),
        ..ServerConfig::default()
    })
    .await
    .expect("starts");
    assert!(server.ws_url().starts_with("wss://127.0.0.1:"));
    assert_eq!(server.ca_pem_path(), Some(ca_path.as_path()));
    let pem = std::fs::read_to_string(&ca_path).expect("CA written");
    assert_eq!(Some(pem.as_str()), server.ca_pem());
    let connector = tokio_rustls::TlsConnector::from(client_config(&pem));

    for name in ["127.0.0.1", "localhost"] {
        let tcp = tokio::net::TcpStream::connect(server.tcp_addr())
            .await
            .expect("tcp");
        let server_name = ServerName::try_from(name.to_owned()).expect("name");
        let tls = connector
            .connect(server_name, tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS as {name}: {e}"));
        let url = format!("wss://{name}:{}/?v=8", server.tcp_addr().port());
        let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("websocket over TLS");
        let hello = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("in time")
            .expect("a frame")
            .expect("ok");
        assert!(
            hello.to_text().expect("text").contains(r#""op":8"#),
            "{hello:?}"
        );
    }

    // Plain HTTP and junk on the TLS port: failed handshakes, nothing else.
    let mut plain = tokio::net::TcpStream::connect(server.tcp_addr())
        .await
        .expect("tcp");
    plain
        .write_all(b"GET /?v=8 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut junk = tokio::net::TcpStream::connect(server.tcp_addr())
        .await
        .expect("tcp");
    junk.write_all(&[0x16, 0x03, 0x01, 0xFF, 0xFF, 0, 0, 0])
        .await
        .expect("write");
    drop(junk);
    let (report, done) = server
        .wait_until(Duration::from_secs(3), |r| r.failed_handshakes >= 2)
        .await;
    assert!(done, "{report}");
    assert!(report.violations.is_empty(), "{report}");
}
