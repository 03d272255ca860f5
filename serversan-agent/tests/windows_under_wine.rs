//! The Windows build of the agent, run under Wine by `tests/windows.sh`
//! (which cross-builds it and sets the variables below). Ignored in the
//! ordinary test run: it needs the mingw toolchain and Wine.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Host, TestServer, dead_url, now, stderr};
use serversan_protocol::{Limits, parse_report, validate_report};

fn var(name: &str) -> PathBuf {
    PathBuf::from(
        std::env::var_os(name).unwrap_or_else(|| panic!("{name} is set by tests/windows.sh")),
    )
}

/// Runs the .exe under Wine with the host's environment (Wine passes
/// environment variables through; Unix paths resolve through drive Z:).
fn wine(host: &Host, args: &[&str]) -> Output {
    let mut cmd = Command::new("wine");
    cmd.arg(var("SERVERSAN_WINDOWS_AGENT"))
        .args(args)
        .env("SERVERSAN_AUTH_FILE", host.auth_file())
        .env("SERVERSAN_SERVER_URL", &host.server_url)
        .env("SERVERSAN_STATE_DIR", host.state_dir())
        .env("SERVERSAN_AGENT_CONFIG", host.dir.path().join("agent.toml"))
        .env("SERVERSAN_CPU_SAMPLE_MS", "20")
        .env("SERVERSAN_CONNECT_TIMEOUT_SECS", "2")
        .env("SERVERSAN_TIMEOUT_SECS", "10");
    cmd.output().expect("wine runs")
}

#[test]
#[ignore = "run by tests/windows.sh (needs mingw and wine)"]
fn printed_windows_report_is_valid_and_plausible() {
    let text = std::fs::read(var("SERVERSAN_WINDOWS_REPORT")).expect("printed report");
    let r = parse_report(&text).expect("a report");
    validate_report(&r, now(), &Limits::default()).expect("valid");
    println!("{}", String::from_utf8_lossy(&text));
    assert!(r.os.name.contains("Windows"), "{}", r.os.name);
    assert!(r.cpu.logical_cores >= 1);
    assert!(r.memory.total > 0 && r.memory.available > 0);
    assert!(!r.filesystems.is_empty(), "drive C: at least");
    assert!(
        r.filesystems
            .iter()
            .all(|f| f.total > 0 && f.used <= f.total)
    );
    assert!(r.process_count >= 1);
    // Wine shows the Linux host's interfaces; loopback is left out.
    assert!(!r.network.is_empty(), "{:?}", r.network);
    assert!(
        r.network.iter().all(|n| n.interface != "lo"),
        "{:?}",
        r.network
    );
    assert!(r.load.is_none(), "Windows has no load average");
    assert!(r.boot_time > 0 && r.boot_time <= r.collected_at);
}

#[test]
#[ignore = "run by tests/windows.sh (needs mingw and wine)"]
fn windows_agent_delivers_and_spools() {
    let mut host = Host::new(&dead_url());
    let server = TestServer::start(std::slice::from_ref(&host.code));

    let out = wine(&host, &["report"]);
    assert_eq!(out.status.code(), Some(5), "server down: {}", stderr(&out));
    assert_eq!(host.spooled().len(), 1, "kept in the spool");

    host.server_url = server.url.clone();
    let out = wine(&host, &["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = server.stored();
    assert_eq!(stored.len(), 2, "the spooled report and a fresh one");
    assert!(stored.iter().all(|r| r.signature_ok));
    let report = stored[1].report.as_ref().expect("report");
    validate_report(report, now(), &Limits::default()).expect("valid");
    assert!(report.os.name.contains("Windows"));
    assert!(host.spooled().is_empty());
}
