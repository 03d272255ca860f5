//! A small HTTP server standing in for `serversan serve` in delivery tests:
//! it verifies each request's signature with the protocol crate and answers
//! with whatever status the test scripts.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serversan_protocol::{AuthCode, Report, verify_signature};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub key_id: String,
    pub timestamp: i64,
    pub nonce: String,
    pub signature_ok: bool,
    pub content_type: String,
    pub report: Option<Report>,
    pub status: u16,
}

#[derive(Default)]
struct Script {
    queue: VecDeque<u16>,
    default_status: Option<u16>,
    retry_after: Option<u64>,
    date_offset_secs: i64,
    error_message: String,
}

pub struct TestServer {
    pub url: String,
    codes: Vec<AuthCode>,
    script: Arc<Mutex<Script>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl TestServer {
    /// Starts on a free loopback port, accepting requests signed with any of
    /// `codes`.
    pub fn start(codes: &[AuthCode]) -> Self {
        Self::start_with(codes, None)
    }

    /// Like [`TestServer::start`], speaking HTTPS with the test certificate
    /// in `tests/fixtures` (signed by `tests/fixtures/ca.pem`).
    pub fn start_tls(codes: &[AuthCode]) -> Self {
        Self::start_with(codes, Some(tls_config()))
    }

    fn start_with(codes: &[AuthCode], tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
        let server = TestServer {
            url,
            codes: codes.to_vec(),
            script: Arc::default(),
            received: Arc::default(),
        };
        let (codes, script, received) = (
            server.codes.clone(),
            server.script.clone(),
            server.received.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = match &tls {
                    Some(config) => match rustls::ServerConnection::new(config.clone()) {
                        Ok(conn) => handle(
                            rustls::StreamOwned::new(conn, stream),
                            &codes,
                            &script,
                            &received,
                        ),
                        Err(_) => continue,
                    },
                    None => handle(stream, &codes, &script, &received),
                };
            }
        });
        server
    }

    /// Answers the next requests with these statuses, then with the default.
    pub fn then(&self, statuses: &[u16]) {
        self.script.lock().expect("lock").queue.extend(statuses);
    }

    /// Answers every request (once the queue is empty) with `status`.
    pub fn always(&self, status: u16) {
        self.script.lock().expect("lock").default_status = Some(status);
    }

    pub fn retry_after(&self, secs: u64) {
        self.script.lock().expect("lock").retry_after = Some(secs);
    }

    /// Makes the `Date` header this many seconds off the real time.
    pub fn date_offset(&self, secs: i64) {
        self.script.lock().expect("lock").date_offset_secs = secs;
    }

    pub fn error_message(&self, message: &str) {
        self.script.lock().expect("lock").error_message = message.to_owned();
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Reports the server stored (answered 200), in arrival order.
    pub fn stored(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.status == 200)
            .collect()
    }
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("certificate");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    Arc::new(config)
}

/// The test CA that signed the HTTPS server's certificate.
pub fn test_ca_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ca.pem")
}

fn handle<S: Read + Write>(
    mut stream: S,
    codes: &[AuthCode],
    script: &Mutex<Script>,
    received: &Mutex<Vec<Received>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut stream);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let header = |name: &str| {
        headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    drop(reader);

    let key_id = header("x-serversan-key");
    let timestamp: i64 = header("x-serversan-timestamp").parse().unwrap_or(0);
    let nonce = header("x-serversan-nonce");
    let signature = header("x-serversan-signature");
    let signature_ok = codes.iter().any(|c| {
        c.key_id() == key_id
            && verify_signature(c.secret(), &key_id, timestamp, &nonce, &body, &signature)
    });
    let report = serde_json::from_slice::<Report>(&body).ok();

    let (status, retry_after, offset, message) = {
        let mut s = script.lock().expect("lock");
        let status = s.queue.pop_front().or(s.default_status).unwrap_or(200);
        (
            status,
            s.retry_after,
            s.date_offset_secs,
            s.error_message.clone(),
        )
    };
    // A bad signature is always refused, whatever the script says.
    let status = if signature_ok { status } else { 401 };
    received.lock().expect("lock").push(Received {
        key_id,
        timestamp,
        nonce,
        signature_ok,
        content_type: header("content-type"),
        report,
        status,
    });

    let date = SystemTime::now()
        .checked_add(Duration::from_secs(offset.max(0) as u64))
        .and_then(|t| t.checked_sub(Duration::from_secs((-offset).max(0) as u64)))
        .unwrap_or_else(SystemTime::now);
    let answer = if status == 200 {
        r#"{"status":"ok"}"#.to_owned()
    } else {
        serde_json::json!({ "error": if message.is_empty() { format!("status {status}") } else { message } })
            .to_string()
    };
    let mut response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Date: {}\r\nConnection: close\r\n",
        answer.len(),
        httpdate::fmt_http_date(date)
    );
    if let Some(secs) = retry_after.filter(|_| matches!(status, 429 | 503)) {
        response.push_str(&format!("Retry-After: {secs}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&answer);
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// A throwaway host: auth file, empty agent.toml, state directory.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub code: AuthCode,
    pub server_url: String,
    pub extra_env: Vec<(String, String)>,
}

impl Host {
    pub fn new(server_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let code = AuthCode::generate().expect("rng");
        std::fs::write(dir.path().join("auth.log"), format!("{code}\n")).expect("auth file");
        std::fs::write(dir.path().join("agent.toml"), "").expect("agent.toml");
        Host {
            dir,
            code,
            server_url: server_url.to_owned(),
            extra_env: Vec::new(),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir().join("spool")
    }

    pub fn auth_file(&self) -> PathBuf {
        self.dir.path().join("auth.log")
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.extra_env.push((name.to_owned(), value.to_owned()));
    }

    /// Replaces the auth code, as a reinstall does.
    pub fn reinstall(&mut self, code: AuthCode) {
        std::fs::write(self.auth_file(), format!("{code}\n")).expect("auth file");
        self.code = code;
    }

    /// Runs the real agent binary with this host's environment.
    pub fn agent(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_serversan-agent"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SERVERSAN_AUTH_FILE", self.auth_file())
            .env("SERVERSAN_SERVER_URL", &self.server_url)
            .env("SERVERSAN_STATE_DIR", self.state_dir())
            .env("SERVERSAN_AGENT_CONFIG", self.dir.path().join("agent.toml"))
            .env("SERVERSAN_CPU_SAMPLE_MS", "20")
            .env("SERVERSAN_CONNECT_TIMEOUT_SECS", "2")
            .env("SERVERSAN_TIMEOUT_SECS", "5");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd.output().expect("agent runs")
    }

    /// Spooled report bodies, oldest first.
    pub fn spooled(&self) -> Vec<Report> {
        spooled_in(&self.spool_dir())
    }
}

pub fn spooled_in(dir: &Path) -> Vec<Report> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "json"));
    names.retain(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    });
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("a report"))
        .collect()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A loopback URL where nothing listens (the server is down).
pub fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}
