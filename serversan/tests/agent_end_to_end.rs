//! The real `serversan-agent` binary against the real `serversan serve`:
//! a report lands in storage; an outage spools reports that all arrive, in
//! order, with their collection times, once the server is back; a deleted
//! server's agent is told what to do; and the one-line install served by a
//! running server makes this host appear in storage.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::binary::{BIN, Serve, code_from, free_port, run, stderr, stdout};
use serversan::config::{Config, DatabaseUrl, SettingValue};
use serversan::storage::{Storage, StorageOptions};

/// The agent binary beside `serversan` in the target directory, built on
/// demand when only this package's tests were built.
fn agent_binary() -> PathBuf {
    let dir = Path::new(BIN).parent().expect("target dir");
    let agent = dir.join("serversan-agent");
    if !agent.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "serversan-agent", "--bin", "serversan-agent"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building serversan-agent failed");
    }
    assert!(agent.is_file(), "{} is missing", agent.display());
    agent
}

struct Host {
    dir: tempfile::TempDir,
    db_url: String,
}

impl Host {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_url = format!("sqlite://{}", dir.path().join("serversan.db").display());
        Host { dir, db_url }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SERVERSAN_DATABASE_URL", self.db_url.clone()),
            // Reports from one-shot runs a second apart must all be stored.
            ("SERVERSAN_MIN_REPORT_INTERVAL", "1s".into()),
        ]
    }

    async fn serve(&self, extra: &[(&'static str, String)], port: u16) -> Serve {
        let mut env = self.env();
        env.extend_from_slice(extra);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Serve::start_on(self.dir.path(), &env, port).await
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(&[], args)
    }

    fn cli_with(&self, extra: &[(&'static str, String)], args: &[&str]) -> Output {
        let mut env = self.env();
        env.extend_from_slice(extra);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = run(self.dir.path(), &env, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    }

    /// A server added through the admin path; its code written where the
    /// agent reads it.
    fn add_server(&self, name: &str, owner: &str) -> PathBuf {
        let out = self.cli(&["server", "add", name, "--owner", owner]);
        let code = code_from(&out);
        let auth = self.dir.path().join(format!("{name}.auth"));
        std::fs::write(&auth, format!("{code}\n")).expect("write auth file");
        auth
    }

    fn agent(&self, auth: &Path, server_url: &str) -> Output {
        // Everything comes from the environment; the file is empty.
        let config = self.dir.path().join("agent.toml");
        std::fs::write(&config, "").expect("write agent.toml");
        Command::new(agent_binary())
            .arg("report")
            .env_clear()
            .env("SERVERSAN_AUTH_FILE", auth)
            .env("SERVERSAN_SERVER_URL", server_url)
            .env("SERVERSAN_STATE_DIR", self.dir.path().join("agent-state"))
            .env("SERVERSAN_AGENT_CONFIG", &config)
            .env("SERVERSAN_CPU_SAMPLE_MS", "20")
            .stdin(Stdio::null())
            .output()
            .expect("run serversan-agent")
    }

    async fn storage(&self) -> Storage {
        let config = Config {
            database_url: DatabaseUrl::parse(&self.db_url).expect("url"),
            ..Config::default()
        };
        Storage::connect(&StorageOptions::from_config(&config))
            .await
            .expect("open storage")
    }

    /// `collected_at` of every stored report of `name`, oldest first.
    async fn stored(&self, name: &str, owner: i64) -> Vec<(i64, String)> {
        let storage = self.storage().await;
        let server = storage
            .find_server(owner, name)
            .await
            .expect("query")
            .expect("server exists");
        let mut rows = storage
            .recent_reports(server.id, 1000)
            .await
            .expect("reports");
        rows.sort_by_key(|r| r.collected_at);
        let out = rows
            .iter()
            .map(|r| (r.collected_at, r.report().expect("rebuild").hostname))
            .collect();
        storage.close().await;
        out
    }
}

fn this_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_the_real_agent_is_stored() {
    let host = Host::new();
    let serve = host.serve(&[], free_port()).await;
    let auth = host.add_server("web-1", "42");

    let out = host.agent(&auth, &serve.url);
    assert!(
        out.status.success(),
        "agent failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let stored = host.stored("web-1", 42).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].1, this_hostname());
    let now = serversan::storage::unix_now();
    assert!(
        (now - stored[0].0).abs() < 60,
        "collected_at {}",
        stored[0].0
    );

    // The list shows the server as seen.
    let listed = stdout(&host.cli(&["server", "list"]));
    assert!(listed.contains("web-1"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_spooled_during_an_outage_arrive_in_order_with_their_times() {
    let host = Host::new();
    let serve = host.serve(&[], free_port()).await;
    let url = serve.url.clone();
    let auth = host.add_server("db-1", "7");
    let (status, _) = serve.stop();
    assert!(status.success(), "serve did not stop cleanly: {status}");

    // Three runs with the server down: each report is kept (exit 5).
    let mut spooled_at = Vec::new();
    for _ in 0..3 {
        let before = serversan::storage::unix_now();
        let out = host.agent(&auth, &url);
        assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
        spooled_at.push(before);
        std::thread::sleep(Duration::from_millis(1100));
    }
    let spool = host.dir.path().join("agent-state");
    assert!(spool.is_dir());

    // Back up (same address): the next run sends the three, then a fresh one.
    let port: u16 = url.rsplit(':').next().expect("port").parse().expect("port");
    let _serve = host.serve(&[], port).await;
    let out = host.agent(&auth, &url);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let stored = host.stored("db-1", 7).await;
    assert_eq!(stored.len(), 4, "{stored:?}");
    for (i, at) in spooled_at.iter().enumerate() {
        // Each spooled report kept its own collection time (taken during
        // its run, not at delivery).
        assert!(
            (stored[i].0 - at).abs() <= 1,
            "report {i} collected at {} but its run was at {at}",
            stored[i].0
        );
    }
    assert!(stored.windows(2).all(|w| w[0].0 < w[1].0), "{stored:?}");
    assert!(stored[3].0 > spooled_at[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_server_s_agent_is_told_to_reinstall() {
    let host = Host::new();
    let serve = host.serve(&[], free_port()).await;
    let auth = host.add_server("gone", "9");
    assert!(host.agent(&auth, &serve.url).status.success());

    host.cli(&["server", "delete", "gone", "--owner", "9"]);
    let out = host.agent(&auth, &serve.url);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("/reinstall"), "{text}");
}

/// `curl -fsSL <public_url>/install.sh | bash -s -- CODE` from a running
/// server, without `--root`, in a private mount namespace over copies of
/// /etc, /usr/local/bin and /var/lib (the host's own are never touched):
/// the installer downloads the agent from the server, runs the first report
/// as the `serversan` user, and the host appears in storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_line_install_makes_this_host_appear() {
    if !common::running_as_root("the one-line install test") {
        return;
    }
    let host = Host::new();
    let world = host.dir.path().join("world");
    for d in ["bin", "var-lib", "agents"] {
        std::fs::create_dir_all(world.join(d)).expect("mkdir");
    }
    std::fs::set_permissions(host.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::set_permissions(&world, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let copied = Command::new("cp")
        .args(["-a", "/etc"])
        .arg(world.join("etc"))
        .status()
        .expect("cp");
    assert!(copied.success());
    std::fs::create_dir_all(world.join("etc/cron.d")).expect("cron.d");
    let platform = format!("linux-{}", std::env::consts::ARCH);
    std::fs::copy(agent_binary(), world.join("agents").join(&platform)).expect("copy agent");

    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let settings = [
        ("SERVERSAN_PUBLIC_URL", public.clone()),
        (
            "SERVERSAN_AGENT_DIR",
            world.join("agents").display().to_string(),
        ),
    ];
    let serve = host.serve(&settings, port).await;
    let out = host.cli_with(&settings, &["server", "add", "laptop", "--owner", "5"]);
    let code = code_from(&out);
    let line = format!("curl -fsSL {public}/install.sh | bash -s -- {code}");
    assert!(
        stdout(&out).contains(&format!("{public}/install.sh | sudo bash -s -- {code}")),
        "server add shows the one-line install: {}",
        stdout(&out)
    );

    // Bind the copies over the real paths, then run the user's line.
    let script = r#"set -e
mount --bind "$1/etc" /etc
mkdir -p /usr/local/bin
mount --bind "$1/bin" /usr/local/bin
mount --bind "$1/var-lib" /var/lib
eval "$2""#;
    let started = Instant::now();
    let install = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            script,
            "_",
        ])
        .arg(&world)
        .arg(&line)
        .stdin(Stdio::null())
        .output()
        .expect("run the install line");
    let text = format!("{}{}", stdout(&install), stderr(&install));
    assert!(install.status.success(), "install failed: {text}");
    assert!(!text.contains(code.secret()), "the code was echoed: {text}");

    let stored = host.stored("laptop", 5).await;
    assert_eq!(stored.len(), 1, "the first report did not land: {text}");
    assert_eq!(stored[0].1, this_hostname());
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(world.join("etc/cron.d/serversan-agent").is_file());
    let host_passwd = std::fs::read_to_string("/etc/passwd").expect("passwd");
    assert!(!host_passwd.lines().any(|l| l.starts_with("serversan:")));
    drop(serve);
}
