//! The `serversan` binary as a child process: `serve` started and stopped
//! like a service, other commands run with a clean environment.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serversan_protocol::AuthCode;

pub const BIN: &str = env!("CARGO_BIN_EXE_serversan");

/// The binary with a clean environment: only what the test sets.
pub fn serversan(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    serversan(dir, env)
        .args(args)
        .output()
        .expect("run serversan")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `serve` child process, stopped with SIGTERM on drop.
pub struct Serve {
    pub child: Child,
    pub url: String,
    pub log: std::path::PathBuf,
}

impl Serve {
    pub async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_on(dir, env, free_port()).await
    }

    /// `serve` on a given local port (to come back where agents expect it).
    pub async fn start_on(dir: &Path, env: &[(&str, &str)], port: u16) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let log = dir.join("serve.log");
        let mut env = env.to_vec();
        env.push(("SERVERSAN_LISTEN", &listen));
        let child = serversan(dir, &env)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn serve");
        let serve = Self {
            child,
            url: format!("http://{listen}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/healthz", serve.url)).await
                && r.status() == 200
            {
                return serve;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not come up: {}",
                std::fs::read_to_string(&serve.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then the exit status and the log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        (status, log)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The auth code on the last line of `server add`'s output.
pub fn code_from(out: &Output) -> AuthCode {
    let text = stdout(out);
    let last = text.lines().last().expect("a last line");
    last.parse()
        .unwrap_or_else(|e| panic!("last line {last:?} is not an auth code ({e}): {text}"))
}
