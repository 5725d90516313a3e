//! HTTPS and WSS on the HTTP port (issue 14): with the operator's PEM
//! certificate a verifying TLS client (rustls, trusting only that
//! certificate) loads the bundled client and joins a room over WSS, and a
//! plain-HTTP client gets no answer; `--tls-self-signed` serves a
//! certificate for the loopback address whose SHA-256 is the fingerprint the
//! server reports (checked with OpenSSL). Chromium over `https://` is
//! `tests/browser`'s.

use cascade_test_support as common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cascade::signal::tls::TlsSource;
use futures_util::{SinkExt, StreamExt};
use openssl::hash::MessageDigest;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

/// A certificate for `localhost` in PEM files under a fresh directory.
fn operator_certificate() -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("cascade-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, made.cert.der().clone())
}

/// A rustls client that trusts `root` only.
fn connector(root: CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_to(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    connector
        .connect(name, tcp)
        .await
        .expect("the TLS handshake verifies")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_serve_with_the_operators_certificate() {
    let (cert, key, der) = operator_certificate();
    let server = common::server::start(1, |c| {
        c.tls = Some(TlsSource::Files { cert, key });
    })
    .await;
    let addr = server.http_addr();
    assert!(server.tls_fingerprint().is_some());
    let connector = connector(der);

    let mut https = tls_to(addr, &connector).await;
    https
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    https.read_to_string(&mut page).await.ok();
    assert!(
        page.starts_with("HTTP/1.1 200"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(
        page.contains("<html") || page.contains("<!doctype"),
        "the bundled client"
    );

    let stream = tls_to(addr, &connector).await;
    let url = format!("wss://localhost:{}/ws", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket upgrade over TLS");
    let join = r#"{"type":"join","version":1,"room":"secure","name":"Alice"}"#;
    ws.send(Message::text(join)).await.unwrap();
    let joined = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                if text.contains(r#""type":"joined""#) {
                    return text.to_string();
                }
            }
        }
        String::new()
    })
    .await
    .expect("joined within 10 s");
    assert!(joined.contains("secure"), "{joined}");
    ws.close(None).await.ok();

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut reply)).await;
    assert!(
        !reply.starts_with(b"HTTP/"),
        "plain HTTP answered: {:?}",
        String::from_utf8_lossy(&reply)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_is_the_one_whose_fingerprint_the_server_reports() {
    let server = common::server::start(1, |c| c.tls = Some(TlsSource::SelfSigned)).await;
    let addr = server.http_addr();
    let reported = server.tls_fingerprint().expect("a fingerprint").to_string();
    let (digest, ips, answer) = tokio::task::spawn_blocking(move || {
        let mut builder = SslConnector::builder(SslMethod::tls()).unwrap();
        builder.set_verify(SslVerifyMode::NONE);
        let connector = builder.build();
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        let mut tls = connector.connect("127.0.0.1", tcp).expect("TLS handshake");
        let cert = tls.ssl().peer_certificate().expect("a certificate");
        let digest = cert.digest(MessageDigest::sha256()).unwrap();
        let ips: Vec<Vec<u8>> = cert
            .subject_alt_names()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.ipaddress().map(<[u8]>::to_vec))
                    .collect()
            })
            .unwrap_or_default();
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        tls.read_to_string(&mut answer).ok();
        (digest.to_vec(), ips, answer)
    })
    .await
    .unwrap();
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(hex.join(":"), reported);
    assert!(
        ips.contains(&vec![127, 0, 0, 1]),
        "SAN IP 127.0.0.1: {ips:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.shutdown().await;
}
