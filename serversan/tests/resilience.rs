//! The server under stress and failure: two instances sharing one MariaDB,
//! a hundred servers reporting at once, the database going away and coming
//! back, and clients too slow to be worth waiting for.

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::{Agent, Backend, Reply, TestDb, TestServer};
use serversan::config::Config;
use serversan::storage::{ServerName, Storage, StorageOptions, unix_now};
use tokio::net::TcpStream;

on_both_backends!(hundred_servers_report_at_once);

async fn hundred_servers_report_at_once(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let storage = db.storage().await;
    let server = TestServer::start(&db.config(), storage.clone()).await;
    let mut agents = Vec::new();
    for i in 0..100 {
        let name = ServerName::parse(&format!("host-{i:03}")).expect("name");
        let (_, code) = storage
            .create_server(1000 + i, &name)
            .await
            .expect("create");
        agents.push(Agent::new(code, &server.url));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for agent in agents {
        tasks.spawn(async move { agent.send(&common::report(1)).await });
    }
    let mut statuses = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.expect("task");
        statuses.push((reply.status, reply.body));
    }
    let failed: Vec<_> = statuses.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} refused: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert_eq!(storage.count_all_reports().await.expect("count"), 100);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_replayed_to_another_instance_is_refused() {
    let Some(db) = TestDb::create(Backend::MySql).await else {
        return;
    };
    let storage_a = db.storage().await;
    let storage_b = db.storage().await;
    let a = TestServer::start(&db.config(), storage_a.clone()).await;
    let b = TestServer::start(&db.config(), storage_b).await;
    let (_, code) = storage_a
        .create_server(1, &ServerName::parse("shared").expect("name"))
        .await
        .expect("create");
    let to_a = Agent::new(code.clone(), &a.url);
    let to_b = Agent::new(code, &b.url);
    let body = serde_json::to_vec(&common::report(30)).expect("json");
    let nonce = serversan_protocol::random_nonce().expect("nonce");
    let ts = unix_now();
    let first = Reply::from(to_a.signed(&body, ts, &nonce).send().await.expect("send")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let replay = Reply::from(to_b.signed(&body, ts, &nonce).send().await.expect("send")).await;
    assert_eq!(replay.status, 409, "{}", replay.body);
    // Racing the same fresh request at both at once: exactly one wins.
    let body = serde_json::to_vec(&common::report(0)).expect("json");
    let nonce = serversan_protocol::random_nonce().expect("nonce");
    let ts = unix_now();
    let (ra, rb) = tokio::join!(
        to_a.signed(&body, ts, &nonce).send(),
        to_b.signed(&body, ts, &nonce).send()
    );
    let mut statuses = [
        ra.expect("send").status().as_u16(),
        rb.expect("send").status().as_u16(),
    ];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    assert_eq!(storage_a.count_all_reports().await.expect("count"), 2);
    a.stop().await;
    b.stop().await;
}

/// Starts a server with its own storage handle from `config`, registers
/// one server through `direct` and sends a first report that must land.
async fn serve_one(config: &Config, direct: &Storage, name: &str) -> (TestServer, Agent) {
    let served = Storage::connect(&StorageOptions::from_config(config))
        .await
        .expect("connect");
    let server = TestServer::start(config, served).await;
    let (_, code) = direct
        .create_server(1, &ServerName::parse(name).expect("name"))
        .await
        .expect("create");
    let agent = Agent::new(code, &server.url);
    assert_eq!(agent.send(&common::report(60)).await.status, 200);
    (server, agent)
}

/// Sends fresh reports until one is accepted or `within` passes.
async fn until_accepted(agent: &Agent, within: Duration) -> Reply {
    let deadline = tokio::time::Instant::now() + within;
    let mut secs_ago = 0;
    loop {
        let reply = agent.send(&common::report(secs_ago)).await;
        if reply.status == 200 || tokio::time::Instant::now() > deadline {
            return reply;
        }
        secs_ago -= 1; // later than the last try, in case it was stored
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_going_away_answers_503_and_recovers() {
    let Some(db) = TestDb::create(Backend::MySql).await else {
        return;
    };
    let direct = db.storage().await;
    let proxy = Proxy::start().await;
    let mut config = db.config();
    config.database_url = proxy.url_of(&db);
    config.database_timeout = Duration::from_secs(1);
    let (server, agent) = serve_one(&config, &direct, "db-test").await;

    proxy.cut();
    let started = std::time::Instant::now();
    let down = agent.send(&common::report(30)).await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.header("retry-after"), Some("1"));
    assert!(!down.error().is_empty());
    assert!(started.elapsed() < Duration::from_secs(8), "503 came late");
    let health = common::get(&format!("{}/healthz", server.url)).await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(
        direct.count_all_reports().await.expect("count"),
        1,
        "503 stored nothing"
    );

    proxy.restore();
    let up = until_accepted(&agent, Duration::from_secs(15)).await;
    assert_eq!(up.status, 200, "recovered: {}", up.body);
    assert_eq!(direct.count_all_reports().await.expect("count"), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_another_process_answers_503_and_recovers() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let storage = db.storage().await;
    let mut config = db.config();
    config.sqlite_busy_timeout = Duration::from_millis(500);
    config.database_timeout = Duration::from_secs(2);
    let (server, agent) = serve_one(&config, &storage, "locked").await;

    // Another process (a backup, a stuck script) holds the write lock.
    let lock = db.hold_write_lock().await;
    let down = agent.send(&common::report(30)).await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.header("retry-after").is_some());
    lock.release().await;
    let up = until_accepted(&agent, Duration::from_secs(10)).await;
    assert_eq!(up.status, 200, "recovered: {}", up.body);
    assert_eq!(storage.count_all_reports().await.expect("count"), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let storage = db.storage().await;
    let mut config = db.config();
    config.header_read_timeout = Duration::from_secs(1);
    config.request_timeout = Duration::from_secs(1);
    let server = TestServer::start(&config, storage).await;

    // Headers that never end: the connection is closed.
    let started = std::time::Instant::now();
    let answer = common::raw_http(server.addr, b"POST /v1/report HTTP/1.1\r\nHost: x\r\n").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "held {:?}",
        started.elapsed()
    );
    assert!(!answer.contains("200 OK"), "{answer}");

    // A body that never ends: 408, as JSON.
    let started = std::time::Instant::now();
    let request = b"POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
        Content-Length: 1000\r\nX-Serversan-Key: abcdefgh12345678\r\n\
        X-Serversan-Timestamp: 1\r\nX-Serversan-Nonce: nonce-nonce-nonce-1\r\n\
        X-Serversan-Signature: 00\r\n\r\n{\"version\":";
    let answer = common::raw_http(server.addr, request).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "held {:?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");

    // Idle keep-alive connections do not linger either.
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(
        Duration::from_secs(4),
        tokio::io::AsyncReadExt::read(&mut idle, &mut buf),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection kept open"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let storage = db.storage().await;
    let server = TestServer::start(&db.config(), storage.clone()).await;
    let (_, code) = storage
        .create_server(1, &ServerName::parse("bye").expect("name"))
        .await
        .expect("create");
    let agent = Agent::new(code, &server.url);
    // A request whose body arrives slowly, in flight while shutdown begins.
    let body = serde_json::to_vec(&common::report(0)).expect("json");
    let nonce = serversan_protocol::random_nonce().expect("nonce");
    let signed = serversan_protocol::sign(&agent.code, unix_now(), &nonce, &body);
    let head = format!(
        "POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-Serversan-Key: {}\r\nX-Serversan-Timestamp: {}\r\n\
         X-Serversan-Nonce: {}\r\nX-Serversan-Signature: {}\r\n\r\n",
        body.len(),
        signed.key_id,
        signed.timestamp,
        signed.nonce,
        signed.signature
    );
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body[..10]).await.expect("part");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&body[10..]).await.expect("rest");
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stopping.await.expect("stopped");
    assert_eq!(storage.count_all_reports().await.expect("count"), 1);
}
