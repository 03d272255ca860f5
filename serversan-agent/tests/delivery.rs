//! The real agent binary against a signature-checking test server.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Host, TestServer, dead_url, now, stderr};
use serversan_protocol::{AuthCode, Limits, validate_report};

const REINSTALL: &str =
    "this server was deleted or reinstalled: run /reinstall in the bot and install again";

fn host_and_server() -> (Host, TestServer) {
    let mut host = Host::new("");
    let server = TestServer::start(std::slice::from_ref(&host.code));
    host.server_url = server.url.clone();
    (host, server)
}

#[test]
fn report_sends_one_signed_valid_report_and_says_nothing() {
    let (host, server) = host_and_server();
    let before = now();
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "a successful cron run prints nothing");
    let got = server.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.signature_ok);
    assert_eq!(r.key_id, host.code.key_id());
    assert_eq!(r.content_type, "application/json");
    assert!((before..=now()).contains(&r.timestamp));
    let report = r.report.as_ref().expect("a report body");
    validate_report(report, now(), &Limits::default()).expect("valid");
    assert!((before..=now()).contains(&report.collected_at));
}

#[test]
fn outage_of_three_runs_then_everything_arrives_in_order_freshly_signed() {
    let (mut host, server) = host_and_server();
    let up_url = host.server_url.clone();
    host.server_url = dead_url();
    for run in 0..3 {
        if run == 2 {
            // The third run reaches a server that is up but cannot store.
            host.server_url = up_url.clone();
            server.always(503);
        }
        let out = host.agent(&["report"]);
        assert_eq!(out.status.code(), Some(5), "run {run}: {}", stderr(&out));
        assert!(stderr(&out).contains("kept"), "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(1_050));
    }
    let spooled: Vec<i64> = host.spooled().iter().map(|r| r.collected_at).collect();
    assert_eq!(spooled.len(), 3);
    assert_eq!(server.received().len(), 1, "only the 503 run reached it");

    server.always(200);
    let resend_from = now();
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = server.stored();
    assert_eq!(stored.len(), 4, "three spooled and the fresh one");
    let collected: Vec<i64> = stored
        .iter()
        .map(|r| r.report.as_ref().expect("report").collected_at)
        .collect();
    assert_eq!(
        &collected[..3],
        &spooled[..],
        "original collection times, oldest first"
    );
    assert!(collected.windows(2).all(|w| w[0] < w[1]), "{collected:?}");
    assert!(
        stored
            .iter()
            .all(|r| r.signature_ok && r.timestamp >= resend_from)
    );
    let received = server.received();
    let nonces: HashSet<&str> = received.iter().map(|r| r.nonce.as_str()).collect();
    assert_eq!(nonces.len(), 5, "every request has its own nonce");
    assert!(host.spooled().is_empty());
}

#[test]
fn a_full_spool_drops_the_oldest() {
    let mut host = Host::new(&dead_url());
    host.set("SERVERSAN_SPOOL_MAX_REPORTS", "2");
    let mut names = Vec::new();
    for _ in 0..3 {
        let out = host.agent(&["report"]);
        assert_eq!(out.status.code(), Some(5));
        let mut now_names: Vec<String> = std::fs::read_dir(host.spool_dir())
            .expect("spool")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        now_names.sort();
        names.push(now_names);
    }
    let (first, last) = (&names[1], &names[2]);
    assert_eq!(first.len(), 2);
    assert_eq!(last.len(), 2);
    assert!(!last.contains(&first[0]), "the oldest went");
    assert!(last.contains(&first[1]));
    let out = host.agent(&["report"]);
    assert!(
        stderr(&out).contains("dropped the oldest"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_refused_spooled_report_is_dropped_and_the_rest_flow() {
    let (host, server) = host_and_server();
    server.always(503);
    for _ in 0..2 {
        assert_eq!(host.agent(&["report"]).status.code(), Some(5));
    }
    let spooled = host.spooled();
    assert_eq!(spooled.len(), 2);
    server.always(200);
    server.error_message("filesystems[0].total: larger than expected");
    server.then(&[400]);
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("dropped the spooled report"), "{err}");
    assert!(err.contains("filesystems[0].total"), "{err}");
    let stored: Vec<i64> = server
        .stored()
        .iter()
        .map(|r| r.report.as_ref().expect("report").collected_at)
        .collect();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0], spooled[1].collected_at);
    assert!(host.spooled().is_empty());
}

#[test]
fn unauthorized_keeps_the_report_says_what_to_do_and_backs_off() {
    let (mut host, server) = host_and_server();
    server.always(401);
    for run in 1..=2 {
        let out = host.agent(&["report"]);
        assert_eq!(out.status.code(), Some(4));
        assert!(stderr(&out).contains(REINSTALL), "{}", stderr(&out));
        assert_eq!(host.spooled().len(), run, "the report is kept");
    }
    assert_eq!(server.received().len(), 2);
    // Refused twice: the third run does not knock (at most hourly) but still
    // keeps its report and still says what to do.
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains(REINSTALL), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("next attempt in 60 min"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.received().len(), 2, "no request during the back-off");
    assert_eq!(host.spooled().len(), 3);

    // Reinstalling (a new code) tries at once and delivers everything.
    let new_code = AuthCode::generate().expect("rng");
    let server2 = TestServer::start(std::slice::from_ref(&new_code));
    host.server_url = server2.url.clone();
    host.reinstall(new_code);
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server2.stored().len(), 4);
    assert!(host.spooled().is_empty());
}

#[test]
fn auth_back_off_ends_after_the_retry_interval() {
    let (mut host, server) = host_and_server();
    host.set("SERVERSAN_AUTH_RETRY_SECS", "1");
    server.always(401);
    host.agent(&["report"]);
    host.agent(&["report"]);
    std::thread::sleep(Duration::from_millis(2_100));
    host.agent(&["report"]);
    assert_eq!(
        server.received().len(),
        3,
        "tried again once the interval passed"
    );
}

#[test]
fn a_wrong_clock_is_named_with_its_size() {
    let (host, server) = host_and_server();
    server.always(401);
    server.error_message(
        "X-Serversan-Timestamp is 600 seconds ahead of the server's clock (at most 300 allowed)",
    );
    server.date_offset(-600);
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert!(err.contains("clock is"), "{err}");
    assert!(
        err.contains("600 s ahead") || err.contains("599 s ahead") || err.contains("601 s ahead"),
        "{err}"
    );
    assert_eq!(host.spooled().len(), 1);
}

#[test]
fn too_frequent_waits_for_retry_after_without_error() {
    let (host, server) = host_and_server();
    server.always(429);
    server.retry_after(30);
    let out = host.agent(&["report"]);
    assert!(
        out.status.success(),
        "429 is not a failure: {}",
        stderr(&out)
    );
    assert_eq!(host.spooled().len(), 1);
    let out = host.agent(&["report"]);
    assert!(out.status.success());
    assert_eq!(server.received().len(), 1, "Retry-After is honoured");
    assert_eq!(host.spooled().len(), 2);
}

#[test]
fn a_reused_nonce_is_signed_again() {
    let (host, server) = host_and_server();
    server.then(&[409]);
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = server.received();
    assert_eq!(got.len(), 2);
    assert_ne!(got[0].nonce, got[1].nonce);
    assert_eq!(server.stored().len(), 1);
}

#[test]
fn an_unreachable_server_is_named_and_the_report_kept() {
    let host = Host::new(&dead_url());
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains("server unreachable"),
        "{}",
        stderr(&out)
    );
    assert_eq!(host.spooled().len(), 1);
}

#[test]
fn setup_mistakes_are_explained() {
    let mut host = Host::new("http://127.0.0.1:9");
    std::fs::remove_file(host.auth_file()).expect("rm");
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no auth file"), "{}", stderr(&out));

    std::fs::write(host.auth_file(), "not-a-code\n").expect("write");
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("does not hold a valid auth code"),
        "{}",
        stderr(&out)
    );

    host.reinstall(AuthCode::generate().expect("rng"));
    host.server_url = String::new();
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no server URL"), "{}", stderr(&out));

    host.server_url = "mon.example".into();
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("https://"), "{}", stderr(&out));

    let out = host.agent(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_second_run_while_one_holds_the_lock_only_spools() {
    let (host, server) = host_and_server();
    std::fs::create_dir_all(host.state_dir()).expect("mkdir");
    let lock = std::fs::File::create(host.state_dir().join("lock")).expect("lock file");
    lock.lock().expect("lock");
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("in progress"), "{}", stderr(&out));
    assert!(server.received().is_empty());
    assert_eq!(host.spooled().len(), 1);
    drop(lock);
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.stored().len(), 2);
}

#[test]
fn leftover_temporary_files_are_never_sent() {
    let (host, server) = host_and_server();
    std::fs::create_dir_all(host.spool_dir()).expect("mkdir");
    let half = host
        .spool_dir()
        .join(".tmp-1-2-000000000001-00000000000000000001.json");
    std::fs::write(&half, b"{\"version\":1,\"collec").expect("write");
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.received().len(), 1, "only the fresh report");
    assert!(!half.exists(), "the leftover is cleaned up");
}

#[test]
fn version_and_print_need_no_configuration() {
    let mut host = Host::new("");
    std::fs::remove_file(host.auth_file()).expect("rm");
    std::fs::write(host.dir.path().join("agent.toml"), "this is not toml").expect("write");
    host.set("SERVERSAN_STATE_DIR", "/nonexistent/state");
    let out = host.agent(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("serversan-agent {}", env!("CARGO_PKG_VERSION"))
    );
    let out = host.agent(&["print"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\n  \"hostname\""), "pretty-printed");
    let report = serversan_protocol::parse_report(text.as_bytes()).expect("a report");
    validate_report(&report, now(), &Limits::default()).expect("valid");
    assert!(!std::path::Path::new("/nonexistent/state").exists());
}

#[test]
fn https_with_the_ca_file_delivers() {
    let mut host = Host::new("");
    let server = TestServer::start_tls(std::slice::from_ref(&host.code));
    host.server_url = server.url.replace("127.0.0.1", "localhost");
    host.set(
        "SERVERSAN_CA_FILE",
        common::test_ca_file().to_str().expect("utf-8"),
    );
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.stored().len(), 1);
    assert!(server.stored()[0].signature_ok);
}

#[test]
fn https_refuses_a_certificate_outside_the_trusted_roots() {
    let mut host = Host::new("");
    let server = TestServer::start_tls(std::slice::from_ref(&host.code));
    host.server_url = server.url.clone();
    // No CA file: the built-in web roots do not know the test CA.
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );
    assert!(
        server.received().is_empty(),
        "nothing was sent over the untrusted connection"
    );
    assert_eq!(host.spooled().len(), 1);

    // A CA file that holds no certificate is a setup mistake, named.
    let bogus = host.dir.path().join("ca.pem");
    std::fs::write(&bogus, "not a certificate\n").expect("write");
    host.set("SERVERSAN_CA_FILE", bogus.to_str().expect("utf-8"));
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no PEM certificate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_reports_every_interval_until_stopped() {
    let (host, server) = host_and_server();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_serversan-agent"));
    cmd.args(["run", "--interval", "1"])
        .env_clear()
        .env("SERVERSAN_AUTH_FILE", host.auth_file())
        .env("SERVERSAN_SERVER_URL", &host.server_url)
        .env("SERVERSAN_STATE_DIR", host.state_dir())
        .env("SERVERSAN_AGENT_CONFIG", host.dir.path().join("agent.toml"))
        .env("SERVERSAN_CPU_SAMPLE_MS", "20");
    let mut child = cmd.spawn().expect("daemon starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.stored().len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("stop the daemon");
    let _ = child.wait();
    let stored = server.stored();
    assert!(stored.len() >= 3, "{} reports", stored.len());
    let times: Vec<i64> = stored
        .iter()
        .map(|r| r.report.as_ref().expect("report").collected_at)
        .collect();
    // In order, not necessarily a second apart: at a 1 s interval on a
    // loaded machine, a collection delayed past a second boundary can
    // share its second with the next one (seen in CI: [t, t, t + 1]).
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(times.last() > times.first(), "{times:?}");

    let out = host.agent(&["run"]);
    assert_eq!(out.status.code(), Some(2), "run needs an interval");
    let out = host.agent(&["run", "--interval", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_redirect_is_not_followed_and_is_named() {
    let (host, server) = host_and_server();
    server.then(&[301]);
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("redirect (301)"), "{}", stderr(&out));
    assert_eq!(server.received().len(), 1, "not followed");
    assert_eq!(host.spooled().len(), 1);
}

#[test]
fn a_report_too_frequent_for_good_gives_way_to_the_next() {
    let (host, server) = host_and_server();
    server.always(503);
    host.agent(&["report"]);
    assert_eq!(host.spooled().len(), 1);
    // The spooled report is "too frequent" (collected too soon after one
    // the server holds); the fresh one is fine: it is stored and the
    // spooled one, which can never be stored now, is dropped.
    server.always(200);
    server.then(&[429]);
    let out = host.agent(&["report"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("too frequent"), "{}", stderr(&out));
    assert_eq!(server.stored().len(), 1);
    assert!(host.spooled().is_empty());
}

#[test]
fn two_too_frequent_answers_in_a_row_stop_the_run() {
    let (host, server) = host_and_server();
    server.always(503);
    for _ in 0..3 {
        host.agent(&["report"]);
    }
    assert_eq!(host.spooled().len(), 3);
    let before = server.received().len();
    server.always(429);
    let out = host.agent(&["report"]);
    assert!(
        out.status.success(),
        "429 is not a failure: {}",
        stderr(&out)
    );
    assert_eq!(
        server.received().len() - before,
        2,
        "stopped after two 429s"
    );
    assert_eq!(host.spooled().len(), 4, "everything kept, in order");
}

#[test]
fn a_server_that_never_answers_is_cut_at_the_timeout() {
    // Accepts connections and reads, but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut host = Host::new(&format!("http://{}", listener.local_addr().expect("addr")));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    host.set("SERVERSAN_TIMEOUT_SECS", "1");
    let started = std::time::Instant::now();
    let out = host.agent(&["report"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "cut by the timeout"
    );
    assert!(
        stderr(&out).to_lowercase().contains("timeout"),
        "{}",
        stderr(&out)
    );
    assert_eq!(host.spooled().len(), 1);
}
