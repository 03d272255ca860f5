//! The load generator against a real server on SQLite: every report it
//! sends is stored, replays of one signed request are refused but once, and
//! direct mode stores through the storage layer.

use std::process::{Command, Output};

use serversan::config::{Config, DatabaseUrl};
use serversan::storage::{Storage, StorageOptions};
use serversan::web::RunningServer;

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_serversan-loadgen"))
        .args(args)
        .output()
        .expect("run serversan-loadgen")
}

async fn loadgen_async(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = loadgen(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .expect("join")
}

async fn reports_of(storage: &Storage, owner: i64) -> Vec<i64> {
    let mut counts = Vec::new();
    for server in storage.list_servers(owner).await.expect("list") {
        counts.push(storage.count_reports(server.id).await.expect("count"));
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_lands_and_replays_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("serversan.db").display());
    let config = Config {
        database_url: db.parse::<DatabaseUrl>().expect("sqlite url"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..Config::default()
    };
    let storage = Storage::connect(&StorageOptions::from_config(&config))
        .await
        .expect("connect");
    storage.migrate().await.expect("migrate");
    let server = RunningServer::start(&config, storage.clone())
        .await
        .expect("server starts");
    let url = format!("http://{}", server.addr);
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["http", "--url", &url, "--database-url", &db]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    // 10 agents, 20 reports each, 8 in flight.
    let (ok, out) = loadgen_async(args(&[
        "--owner",
        "11",
        "--agents",
        "10",
        "--count",
        "200",
        "--concurrency",
        "8",
    ]))
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("200: 200 ("), "{out}");
    assert!(out.contains("not 200: none"), "{out}");
    assert_eq!(reports_of(&storage, 11).await, vec![20; 10], "{out}");

    // One request sent 60 times over 8 connections: one 200, 59 × 409.
    let (ok, out) = loadgen_async(args(&[
        "--replay",
        "--owner",
        "12",
        "--agents",
        "1",
        "--count",
        "60",
        "--concurrency",
        "8",
    ]))
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("200: 1 ("), "{out}");
    assert!(out.contains("not 200: 409 x59"), "{out}");
    assert_eq!(reports_of(&storage, 12).await, vec![1], "{out}");

    server.shutdown().await;

    // Direct mode writes the same rows without HTTP.
    let (ok, out) = loadgen_async(
        [
            "direct",
            "--database-url",
            &db,
            "--owner",
            "13",
            "--agents",
            "5",
            "--count",
            "50",
            "--concurrency",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("stored: 50 ("), "{out}");
    assert_eq!(reports_of(&storage, 13).await, vec![10; 5], "{out}");
    assert_eq!(storage.count_all_reports().await.expect("count"), 251);
}

#[test]
fn a_run_that_is_refused_fails() {
    // A run where no request is answered reports it and exits non-zero.
    let dir = tempfile::tempdir().expect("tempdir");
    let codes = dir.path().join("codes");
    let code = serversan_protocol::AuthCode::generate().expect("code");
    std::fs::write(&codes, format!("{code}\n")).expect("write");
    // Nothing listens on port 9 of loopback: transport errors, exit 1.
    let out = loadgen(&[
        "http",
        "--url",
        "http://127.0.0.1:9",
        "--codes",
        codes.to_str().expect("utf-8 path"),
        "--count",
        "3",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("transport error x3"), "{text}");
}
