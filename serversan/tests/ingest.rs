//! `POST /v1/report` over real HTTP against a server running in-process, on
//! SQLite and on a real MariaDB: what is accepted is stored with its
//! figures, and every refusal leaves storage exactly as it was.

mod common;

use std::time::Duration;

use common::{Agent, Backend, Reply, TestDb, TestServer};
use serversan::config::Config;
use serversan::storage::{ServerName, Storage, unix_now};
use serversan_protocol::{AuthCode, Report};

on_both_backends!(
    a_signed_report_is_stored,
    refusals_change_nothing,
    replayed_nonce_is_refused,
    too_frequent_reports_get_retry_after,
    hostnames_are_stored_verbatim,
    spooled_reports_land_in_one_run,
    framework_refusals_are_json,
    health_and_metrics,
    failed_auth_is_limited_per_ip,
    deleted_and_rotated_codes_stop_at_once,
    arrivals_are_capped_per_minute,
    used_nonces_are_pruned_in_the_background,
);

/// A running server with one registered server (owner 1, "web1").
struct Setup {
    _db: TestDb,
    storage: Storage,
    server: TestServer,
    agent: Agent,
    server_id: i64,
}

async fn setup(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Setup> {
    let db = TestDb::create(backend).await?;
    let storage = db.storage().await;
    let mut config = db.config();
    tweak(&mut config);
    let server = TestServer::start(&config, storage.clone()).await;
    let (row, code) = storage
        .create_server(1, &ServerName::parse("web1").expect("name"))
        .await
        .expect("create");
    let agent = Agent::new(code, &server.url);
    Some(Setup {
        _db: db,
        storage,
        server,
        agent,
        server_id: row.id,
    })
}

/// Everything a refusal must leave untouched.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    reports: i64,
    nonces: i64,
    last_collected_at: Option<i64>,
    last_seen_at: Option<i64>,
}

async fn snapshot(s: &Setup) -> Snapshot {
    let server = s
        .storage
        .get_server(s.server_id, 1)
        .await
        .expect("get")
        .expect("exists");
    Snapshot {
        reports: s.storage.count_all_reports().await.expect("count"),
        nonces: s.storage.count_nonces().await.expect("count"),
        last_collected_at: server.last_collected_at,
        last_seen_at: server.last_seen_at,
    }
}

fn body(report: &Report) -> Vec<u8> {
    serde_json::to_vec(report).expect("json")
}

fn nonce() -> String {
    serversan_protocol::random_nonce().expect("nonce")
}

async fn a_signed_report_is_stored(backend: Backend) {
    let Some(s) = setup(backend, |_| {}).await else {
        return;
    };
    let mut report = common::report(5);
    report.extra.insert(
        "future_field".into(),
        serde_json::json!({"kept": [1, 2.5, "x"]}),
    );
    let reply = s.agent.send(&report).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), serde_json::json!({"status": "ok"}));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("date").is_some(), "every answer has a Date");

    let row = s
        .storage
        .latest_report(s.server_id)
        .await
        .expect("latest")
        .expect("stored before the 200");
    assert_eq!(row.report().expect("rebuilt"), report, "lossless");
    assert_eq!(row.collected_at, report.collected_at);
    assert!((row.received_at - unix_now()).abs() <= 5);
    assert_eq!(row.figures.hostname, "web-1.example.net");
    assert_eq!(row.figures.mem_total, 8 << 30);
    assert_eq!(row.figures.mem_used, 3 << 30);
    assert_eq!(row.figures.swap_used, 64 << 20);
    assert!((row.figures.cpu_percent - 12.5).abs() < 1e-9);
    assert_eq!(row.figures.load15, Some(0.30));
    assert_eq!(row.figures.net_tx, 123_456_789_012);
    let server = s
        .storage
        .get_server(s.server_id, 1)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(server.last_collected_at, Some(report.collected_at));
    assert!(server.last_seen_at.is_some());
    s.server.stop().await;
}

async fn refusals_change_nothing(backend: Backend) {
    let Some(s) = setup(backend, |c| {
        c.body_limit = serversan::config::ByteSize(4096)
    })
    .await
    else {
        return;
    };
    // One accepted report, so pacing state exists to be (not) disturbed.
    // (A media type with parameters, in any case, is JSON.)
    let first = common::report(100);
    let charset = s.agent.signed_as(
        &body(&first),
        unix_now(),
        &nonce(),
        &["Application/JSON; charset=utf-8"],
    );
    assert_eq!(
        Reply::from(charset.send().await.expect("send"))
            .await
            .status,
        200
    );
    let before = snapshot(&s).await;
    let now = unix_now();
    let good = body(&common::report(50));

    let mut cases: Vec<(&str, Reply, u16)> = Vec::new();

    // Bad signature and unknown key: byte-identical 401s.
    let wrong_secret = AuthCode::from_parts(
        s.agent.code.key_id(),
        AuthCode::generate().expect("rng").secret(),
    )
    .expect("code");
    let forged = Agent::new(wrong_secret, &s.agent.base_url);
    let bad_sig = Reply::from(
        forged
            .signed(&good, now, &nonce())
            .send()
            .await
            .expect("send"),
    )
    .await;
    let stranger = Agent::new(AuthCode::generate().expect("rng"), &s.agent.base_url);
    let unknown = Reply::from(
        stranger
            .signed(&good, now, &nonce())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        bad_sig.body, unknown.body,
        "unknown key and bad signature look the same"
    );
    assert_eq!(unknown.json()["reason"], "unauthorized");
    assert_eq!(
        bad_sig.header("content-type"),
        unknown.header("content-type")
    );
    cases.push(("bad signature", bad_sig, 401));
    cases.push(("unknown key", unknown, 401));

    // A valid signature over a different body.
    let sig = serversan_protocol::sign(&s.agent.code, now, "tampered-nonce-123456", &good);
    let tampered = s
        .agent
        .client
        .post(format!("{}/v1/report", s.agent.base_url))
        .header("content-type", "application/json")
        .header("x-serversan-key", sig.key_id)
        .header("x-serversan-timestamp", now.to_string())
        .header("x-serversan-nonce", sig.nonce)
        .header("x-serversan-signature", sig.signature)
        .body(body(&common::report(40)));
    cases.push((
        "tampered body",
        Reply::from(tampered.send().await.expect("send")).await,
        401,
    ));

    // Timestamps outside ±300 s, correctly signed. Taken afresh and 10 s
    // beyond the window: `now` is seconds old by here on a slow machine,
    // and a future timestamp that has come within the window is accepted.
    let stale = Reply::from(
        s.agent
            .signed(&good, unix_now() - 310, &nonce())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(stale.error().contains("behind"), "{}", stale.body);
    cases.push(("stale timestamp", stale, 401));
    let future = Reply::from(
        s.agent
            .signed(&good, unix_now() + 310, &nonce())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(future.error().contains("ahead"), "{}", future.body);
    cases.push(("future timestamp", future, 401));

    // Missing or malformed headers.
    let no_sig = s
        .agent
        .client
        .post(format!("{}/v1/report", s.agent.base_url))
        .header("content-type", "application/json")
        .header("x-serversan-key", s.agent.code.key_id())
        .header("x-serversan-timestamp", now.to_string())
        .header("x-serversan-nonce", nonce())
        .body(good.clone());
    let missing = Reply::from(no_sig.send().await.expect("send")).await;
    assert!(
        missing.error().contains("X-Serversan-Signature"),
        "{}",
        missing.body
    );
    cases.push(("missing signature", missing, 400));
    let short_nonce = Reply::from(
        s.agent
            .signed(&good, now, "short")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(
        short_nonce.error().contains("Nonce"),
        "{}",
        short_nonce.body
    );
    cases.push(("bad nonce", short_nonce, 400));

    // Wrong, missing or ambiguous content type, correctly signed.
    for (what, types) in [
        ("wrong content type", &["text/plain"][..]),
        ("no content type", &[][..]),
        ("two content types", &["application/json", "text/plain"][..]),
    ] {
        let request = s.agent.signed_as(&good, now, &nonce(), types);
        cases.push((
            what,
            Reply::from(request.send().await.expect("send")).await,
            415,
        ));
    }
    // Too large: by Content-Length, and streamed without one.
    let huge = vec![b' '; 5000];
    let large = Reply::from(
        s.agent
            .signed(&huge, now, &nonce())
            .send()
            .await
            .expect("send"),
    )
    .await;
    cases.push(("too large", large, 413));
    let sig = serversan_protocol::sign(&s.agent.code, now, "chunked-nonce-123456", b"");
    let head = format!(
        "POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nX-Serversan-Key: {}\r\nX-Serversan-Timestamp: {now}\r\n\
         X-Serversan-Nonce: {}\r\nX-Serversan-Signature: {}\r\n\r\n",
        sig.key_id, sig.nonce, sig.signature
    );
    let mut raw = head.into_bytes();
    for _ in 0..10 {
        raw.extend_from_slice(format!("{:x}\r\n{}\r\n", 1000, " ".repeat(1000)).as_bytes());
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = common::raw_http(s.server.addr, &raw).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");

    // Malformed JSON, out-of-range values, absurd strings: 400 naming the field.
    let malformed = Reply::from(
        s.agent
            .signed(b"{\"version\": 1, \"hostname\": ", now, &nonce())
            .send()
            .await
            .expect("send"),
    )
    .await;
    cases.push(("malformed JSON", malformed, 400));
    let mut v = serde_json::to_value(common::report(50)).expect("value");
    v["cpu"]["usage_percent"] = 250.0.into();
    let range = s
        .agent
        .send_body(&serde_json::to_vec(&v).expect("json"))
        .await;
    assert_eq!(range.json()["field"], "cpu.usage_percent", "{}", range.body);
    cases.push(("out of range", range, 400));
    let mut v = serde_json::to_value(common::report(50)).expect("value");
    v["filesystems"][1]["total"] = (-5).into();
    let negative = s
        .agent
        .send_body(&serde_json::to_vec(&v).expect("json"))
        .await;
    assert!(
        negative.error().starts_with("filesystems[1].total"),
        "{}",
        negative.body
    );
    cases.push(("negative size", negative, 400));
    let mut long = common::report(50);
    long.hostname = "h".repeat(300);
    let absurd = s.agent.send(&long).await;
    assert_eq!(absurd.json()["field"], "hostname", "{}", absurd.body);
    cases.push(("absurd string", absurd, 400));
    let mut old = common::report(8 * 86_400);
    old.boot_time = old.collected_at - 10;
    let too_old = s.agent.send(&old).await;
    assert_eq!(too_old.json()["field"], "collected_at");
    cases.push(("collected too long ago", too_old, 400));

    // A report collected before the last accepted one: never acceptable.
    let mut earlier = first.clone();
    earlier.collected_at -= 1;
    let out_of_order = s.agent.send(&earlier).await;
    assert!(
        out_of_order.error().starts_with("collected_at"),
        "{}",
        out_of_order.body
    );
    cases.push(("out of order", out_of_order, 400));

    for (what, reply, status) in &cases {
        assert_eq!(reply.status, *status, "{what}: {}", reply.body);
        assert!(!reply.error().is_empty(), "{what}");
        assert!(reply.header("date").is_some(), "{what}: Date header");
    }
    assert_eq!(snapshot(&s).await, before, "refusals changed storage");
    s.server.stop().await;
}

async fn replayed_nonce_is_refused(backend: Backend) {
    let Some(s) = setup(backend, |_| {}).await else {
        return;
    };
    let b = body(&common::report(30));
    let n = nonce();
    let ts = unix_now();
    let first = Reply::from(s.agent.signed(&b, ts, &n).send().await.expect("send")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let before = snapshot(&s).await;
    let replay = Reply::from(s.agent.signed(&b, ts, &n).send().await.expect("send")).await;
    assert_eq!(replay.status, 409, "{}", replay.body);
    // The same nonce with a new, valid report is a replay too.
    let other = body(&common::report(0));
    let reuse = Reply::from(s.agent.signed(&other, ts, &n).send().await.expect("send")).await;
    assert_eq!(reuse.status, 409, "{}", reuse.body);
    assert_eq!(snapshot(&s).await, before);
    s.server.stop().await;
}

async fn too_frequent_reports_get_retry_after(backend: Backend) {
    let Some(s) = setup(backend, |c| c.min_report_interval = Duration::from_secs(10)).await else {
        return;
    };
    let first = common::report(20);
    assert_eq!(s.agent.send(&first).await.status, 200);
    let before = snapshot(&s).await;
    let mut soon = first.clone();
    soon.collected_at += 3;
    let reply = s.agent.send(&soon).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("7"));
    assert_eq!(reply.json()["reason"], "too_soon");
    assert_eq!(
        snapshot(&s).await,
        before,
        "a refused report does not count"
    );
    let mut on_time = first.clone();
    on_time.collected_at += 10;
    assert_eq!(s.agent.send(&on_time).await.status, 200);
    s.server.stop().await;
}

async fn hostnames_are_stored_verbatim(backend: Backend) {
    let Some(s) = setup(backend, |_| {}).await else {
        return;
    };
    let names = [
        "'; DROP TABLE reports; --",
        "<script>alert(1)</script>&amp;<b>",
        "a\"b\\c`d%e_f?g",
        "Ω≈ç√ 🐇 сервер",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut r = common::report(100 - 20 * i as i64);
        r.hostname = (*name).to_owned();
        r.top_cpu[0].name = format!("{name} (process)");
        let reply = s.agent.send(&r).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
        let row = s
            .storage
            .latest_report(s.server_id)
            .await
            .expect("latest")
            .expect("some");
        assert_eq!(row.figures.hostname, *name);
        assert_eq!(row.report().expect("rebuilt"), r);
    }
    assert_eq!(
        s.storage.count_reports(s.server_id).await.expect("count"),
        4
    );
    s.server.stop().await;
}

async fn spooled_reports_land_in_one_run(backend: Backend) {
    let Some(s) = setup(backend, |_| {}).await else {
        return;
    };
    // An hour of reports spooled during an outage, sent back to back.
    for minutes_ago in (1..=50).rev() {
        let reply = s.agent.send(&common::report(minutes_ago * 60)).await;
        assert_eq!(reply.status, 200, "{minutes_ago}: {}", reply.body);
    }
    assert_eq!(
        s.storage.count_reports(s.server_id).await.expect("count"),
        50
    );
    s.server.stop().await;
}

async fn framework_refusals_are_json(backend: Backend) {
    let Some(s) = setup(backend, |_| {}).await else {
        return;
    };
    let not_found = common::get(&format!("{}/nope", s.server.url)).await;
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.error(), "not found");
    assert!(not_found.header("date").is_some());
    let wrong_method = common::get(&format!("{}/v1/report", s.server.url)).await;
    assert_eq!(wrong_method.status, 405);
    assert!(!wrong_method.error().is_empty());
    assert!(wrong_method.header("date").is_some());
    s.server.stop().await;
}

async fn health_and_metrics(backend: Backend) {
    let Some(s) = setup(backend, |_| {}).await else {
        return;
    };
    let health = common::get(&format!("{}/healthz", s.server.url)).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["database"], "ok");

    assert_eq!(s.agent.send(&common::report(0)).await.status, 200);
    let stranger = Agent::new(AuthCode::generate().expect("rng"), &s.server.url);
    assert_eq!(stranger.send(&common::report(0)).await.status, 401);
    let metrics = common::get(&format!("{}/metrics", s.server.url)).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("serversan_reports_total{outcome=\"accepted\"}"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("serversan_reports_total{outcome=\"unauthorized\"}")
    );
    assert!(
        metrics
            .body
            .contains("serversan_ingest_duration_seconds_bucket")
    );
    s.server.stop().await;
}

async fn failed_auth_is_limited_per_ip(backend: Backend) {
    let Some(s) = setup(backend, |c| {
        c.auth_failures_per_minute = 3;
        c.trusted_proxies = serversan::config::NetList(vec!["127.0.0.1".parse().expect("net")]);
    })
    .await
    else {
        return;
    };
    let stranger = Agent::new(AuthCode::generate().expect("rng"), &s.server.url);
    let from = |ip: &'static str, agent: &Agent, r: &Report| {
        agent
            .signed(&body(r), unix_now(), &nonce())
            .header("x-forwarded-for", ip)
    };
    let r = common::report(0);
    for _ in 0..3 {
        let reply = Reply::from(
            from("203.0.113.9", &stranger, &r)
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    let limited = Reply::from(
        from("203.0.113.9", &stranger, &r)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.header("retry-after").is_some());
    // Another client, and the genuine agent's key, are not affected.
    let reply = Reply::from(
        from("198.51.100.1", &s.agent, &r)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    s.server.stop().await;
}

async fn deleted_and_rotated_codes_stop_at_once(backend: Backend) {
    let Some(s) = setup(backend, |_| {}).await else {
        return;
    };
    assert_eq!(s.agent.send(&common::report(100)).await.status, 200);
    let new_code = s
        .storage
        .rotate_code(s.server_id, 1)
        .await
        .expect("rotate")
        .expect("rotated");
    // The old key was verified a moment ago, so this instance may still
    // hold it: the store itself must refuse it, and store nothing.
    let old = s.agent.send(&common::report(80)).await;
    assert_eq!(old.status, 401, "{}", old.body);
    let unknown = Agent::new(AuthCode::generate().expect("rng"), &s.server.url)
        .send(&common::report(80))
        .await;
    assert_eq!(
        old.body, unknown.body,
        "indistinguishable from an unknown key"
    );
    assert_eq!(s.agent.send(&common::report(70)).await.status, 401);
    assert_eq!(
        s.storage.count_reports(s.server_id).await.expect("count"),
        1
    );
    assert_eq!(s.storage.count_nonces().await.expect("count"), 1);
    let renewed = Agent::new(new_code, &s.server.url);
    assert_eq!(renewed.send(&common::report(60)).await.status, 200);
    assert!(
        s.storage
            .delete_server(s.server_id, 1)
            .await
            .expect("delete")
    );
    let gone = renewed.send(&common::report(40)).await;
    assert_eq!(gone.status, 401, "{}", gone.body);
    assert_eq!(s.storage.count_all_reports().await.expect("count"), 0);
    s.server.stop().await;
}

async fn arrivals_are_capped_per_minute(backend: Backend) {
    let Some(s) = setup(backend, |c| c.max_reports_per_minute = 3).await else {
        return;
    };
    for minutes_ago in [40, 30, 20] {
        let reply = s.agent.send(&common::report(minutes_ago * 60)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let before = snapshot(&s).await;
    let capped = s.agent.send(&common::report(10 * 60)).await;
    assert_eq!(capped.status, 429, "{}", capped.body);
    assert_eq!(capped.json()["reason"], "rate_capped");
    let retry: u64 = capped
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("integer seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(snapshot(&s).await, before);
    s.server.stop().await;
}

async fn used_nonces_are_pruned_in_the_background(backend: Backend) {
    let Some(s) = setup(backend, |c| {
        c.timestamp_skew = Duration::from_secs(1);
        c.prune_interval = Duration::from_millis(200);
    })
    .await
    else {
        return;
    };
    assert_eq!(s.agent.send(&common::report(0)).await.status, 200);
    assert_eq!(s.storage.count_nonces().await.expect("count"), 1);
    // The nonce is kept while its timestamp could still be accepted, then
    // forgotten by the pruner.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.storage.count_nonces().await.expect("count") > 0 {
        assert!(std::time::Instant::now() < deadline, "nonce never pruned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.server.stop().await;
}
