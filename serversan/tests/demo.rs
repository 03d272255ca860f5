//! `serversan demo` as a newcomer runs it: commands typed on standard input
//! reach the real bot handlers, and the in-process agent's report of this
//! machine is there to see.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::binary::BIN;

#[test]
fn the_demo_answers_typed_commands_about_this_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(BIN)
        .args(["demo", "--interval", "1", "--dir"])
        .arg(dir.path().join("demo"))
        .env_clear()
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"/list\n/stat this-host\n1\n/add <b>bad</b>\n/chart this-host cpu 1h\n/quit\n")
        .expect("type commands");
    let out = child.wait_with_output().expect("demo ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert!(text.contains("ServerSan demo"), "{text}");
    // /list: the demo's own server, online thanks to the agent.
    assert!(text.contains("this-host · online"), "{text}");
    // /stat: figures from this machine's report.
    assert!(
        text.contains(&format!("Host {}", hostname.trim())),
        "{text}"
    );
    assert!(text.contains("[1] Refresh"), "{text}");
    // Pressing [1] refreshed in place.
    assert!(
        text.contains("(Updated)") || text.matches("Host ").count() >= 2,
        "{text}"
    );
    // A bad name is refused with a reason, and nothing is added.
    assert!(!text.contains("Server <b>bad</b> added"), "{text}");
    assert!(dir.path().join("demo/demo.db").is_file());
    // /chart: the PNG is saved where the demo says.
    let chart = dir.path().join("demo/charts/chart-1.png");
    assert!(
        text.contains(&format!("chart saved to {}", chart.display())),
        "{text}"
    );
    let png = std::fs::read(&chart).expect("chart file");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}
