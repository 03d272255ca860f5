//! Native HTTPS: the server answers over TLS with the configured
//! certificate, picks up a renewed certificate without a restart, and keeps
//! the old one when a renewal is broken.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TestDb, TestServer};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn der(pem_file: &str) -> CertificateDer<'static> {
    let pem = std::fs::read(fixture(pem_file)).expect("fixture");
    rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .expect("a certificate")
        .expect("valid PEM")
}

/// Connects over TLS trusting only the test CA; returns the certificate
/// the server presented and its answer to `GET /healthz`.
async fn fetch(addr: std::net::SocketAddr) -> (CertificateDer<'static>, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der("ca.pem")).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a certificate")
        .clone()
        .into_owned();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer).await;
    (presented, answer)
}

fn install(dir: &Path, pair: &str) {
    // Write-then-rename, as certificate tools do.
    for (from, to) in [
        (format!("{pair}.pem"), "cert.pem"),
        (format!("{pair}.key"), "key.pem"),
    ] {
        let tmp = dir.join(format!("{to}.tmp"));
        std::fs::copy(fixture(&from), &tmp).expect("copy");
        std::fs::rename(&tmp, dir.join(to)).expect("rename");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_certificate_reload() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    install(dir.path(), "a");
    let mut config = db.config();
    config.tls_cert = Some(dir.path().join("cert.pem"));
    config.tls_key = Some(dir.path().join("key.pem"));
    config.tls_reload_interval = Duration::from_millis(100);
    let server = TestServer::start(&config, db.storage().await).await;

    let (cert, answer) = fetch(server.addr).await;
    assert_eq!(cert, der("a.pem"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Plain HTTP on the TLS port gets no answer.
    let plain = common::raw_http(server.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!plain.contains("200 OK"), "{plain}");

    // A renewal is used from the next connection on.
    tokio::time::sleep(Duration::from_millis(50)).await;
    install(dir.path(), "b");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (cert, answer) = fetch(server.addr).await;
    assert_eq!(cert, der("b.pem"), "renewed certificate served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A broken renewal (key of another certificate) keeps the last good one.
    std::fs::copy(fixture("a.key"), dir.path().join("key.pem")).expect("copy");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (cert, _) = fetch(server.addr).await;
    assert_eq!(cert, der("b.pem"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_the_start_with_a_clear_error() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = db.config();
    config.tls_cert = Some(fixture("a.pem"));
    config.tls_key = Some(dir.path().join("missing.key"));
    let err = serversan::web::RunningServer::start(&config, db.storage().await)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("missing.key"), "{err}");
    config.tls_key = Some(fixture("b.key"));
    let err = serversan::web::RunningServer::start(&config, db.storage().await)
        .await
        .err()
        .expect("mismatched key refused");
    assert!(err.to_string().contains("TLS"), "{err}");
}
