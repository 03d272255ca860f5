//! The `serversan` binary as operators use it: `serve`, `server add|list|delete`
//! (also while `serve` runs on the same SQLite file), `migrate` and
//! `check-config`.

mod common;

use common::binary::{Serve, code_from, run, stderr, stdout};
use common::{Agent, Backend, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_commands_work_while_serve_runs_on_the_same_sqlite_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("data.db").display());
    let env = [
        ("SERVERSAN_DATABASE_URL", url.as_str()),
        ("SERVERSAN_PUBLIC_URL", "https://mon.example.com"),
    ];
    let serve = Serve::start(dir.path(), &env).await;

    let added = run(
        dir.path(),
        &env,
        &["server", "add", "web1", "--owner", "42"],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let code = code_from(&added);
    assert!(
        stdout(&added).contains(&format!(
            "curl -fsSL https://mon.example.com/install.sh | sudo bash -s -- {code}"
        )),
        "{}",
        stdout(&added)
    );

    // The running server accepts the new code at once.
    let agent = Agent::new(code.clone(), &serve.url);
    let reply = agent.send(&common::report(1)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let listed = run(dir.path(), &env, &["server", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    let row = text
        .lines()
        .find(|l| l.contains("web1"))
        .unwrap_or_else(|| panic!("web1 listed: {text}"));
    assert!(row.starts_with("42 "), "{row}");
    assert!(row.contains(code.key_id()), "{row}");
    assert!(!text.contains(code.secret()), "list never shows secrets");
    let mine = run(dir.path(), &env, &["server", "list", "--owner", "7"]);
    assert!(stdout(&mine).contains("(no servers)"), "{}", stdout(&mine));

    let again = run(
        dir.path(),
        &env,
        &["server", "add", "WEB1", "--owner", "42"],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already has a server named"),
        "{}",
        stderr(&again)
    );
    let reserved = run(dir.path(), &env, &["server", "add", "all", "--owner", "42"]);
    assert!(!reserved.status.success());
    assert!(
        stderr(&reserved).contains("reserved"),
        "{}",
        stderr(&reserved)
    );
    let bad = run(dir.path(), &env, &["server", "add", "a/b", "--owner", "42"]);
    assert!(!bad.status.success());
    let no_owner = run(dir.path(), &env, &["server", "add", "x", "--owner", "0"]);
    assert!(!no_owner.status.success());

    let missing = run(
        dir.path(),
        &env,
        &["server", "delete", "nope", "--owner", "42"],
    );
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no server named nope"),
        "{}",
        stderr(&missing)
    );
    let deleted = run(
        dir.path(),
        &env,
        &["server", "delete", "web1", "--owner", "42"],
    );
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let refused = agent.send(&common::report(0)).await;
    assert_eq!(refused.status, 401, "a deleted server's code stops at once");

    let (status, log) = serve.stop();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{log}");
    assert_eq!(
        log.matches("no bot token").count(),
        1,
        "says once that the bot is off: {log}"
    );
    assert!(!log.contains(code.secret()), "secrets never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_commands_on_mysql() {
    let Some(db) = TestDb::create(Backend::MySql).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("SERVERSAN_DATABASE_URL", db.url.expose())];
    let added = run(dir.path(), &env, &["server", "add", "db-1", "--owner", "9"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let code = code_from(&added);
    let storage = db.storage().await;
    let key = storage.server_key(code.key_id()).await.expect("lookup");
    assert_eq!(key.map(|k| k.secret), Some(code.secret().to_owned()));
    let listed = run(dir.path(), &env, &["server", "list", "--owner", "9"]);
    assert!(stdout(&listed).contains("db-1"), "{}", stdout(&listed));
    let deleted = run(
        dir.path(),
        &env,
        &["server", "delete", "DB-1", "--owner", "9"],
    );
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert_eq!(storage.count_servers(9).await.expect("count"), 0);
}

#[test]
fn migrate_takes_an_existing_empty_file_and_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("touch");
    for path in [empty, dir.path().join("new.db")] {
        let url = format!("sqlite://{}", path.display());
        let out = run(
            dir.path(),
            &[("SERVERSAN_DATABASE_URL", &url)],
            &["migrate"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));
        assert!(std::fs::metadata(&path).expect("file").len() > 0);
    }
    // With nothing set, the default file lands in the working directory.
    let out = run(dir.path(), &[], &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("serversan.db").exists());
    // A relative sqlite:// path is relative to the working directory too.
    let out = run(
        dir.path(),
        &[("SERVERSAN_DATABASE_URL", "sqlite://rel.db")],
        &["migrate"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("rel.db").exists());
    // A directory that does not exist is a clear error.
    let out = run(
        dir.path(),
        &[("SERVERSAN_DATABASE_URL", "sqlite:///nonexistent-dir/x.db")],
        &["migrate"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn check_config_masks_secrets_and_the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("server.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:9000\"\n\
         bot_token = \"111:FILE-TOKEN-SECRET\"\n\
         database_url = \"mysql://app:db-password-123@db.internal:3306/serversan\"\n\
         min_report_interval = \"30s\"\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8 path");
    for how in ["flag", "env"] {
        let mut env = vec![
            ("SERVERSAN_LISTEN", "127.0.0.1:7777"),
            ("SERVERSAN_BOT_TOKEN", "222:ENV-TOKEN-SECRET"),
        ];
        let mut args = vec!["check-config"];
        if how == "flag" {
            args.extend(["--config", path]);
        } else {
            env.push(("SERVERSAN_CONFIG", path));
        }
        let out = run(dir.path(), &env, &args);
        assert!(out.status.success(), "{how}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("listen = \"127.0.0.1:7777\""),
            "{how}: {text}"
        );
        assert!(text.contains("from $SERVERSAN_LISTEN"), "{how}: {text}");
        assert!(
            text.contains("min_report_interval = \"30s\""),
            "{how}: {text}"
        );
        assert!(text.contains("bot_token = \"********\""), "{how}: {text}");
        assert!(
            text.contains("mysql://app:****@db.internal:3306/serversan"),
            "{text}"
        );
        for secret in ["FILE-TOKEN-SECRET", "ENV-TOKEN-SECRET", "db-password-123"] {
            assert!(!text.contains(secret), "{how}: {secret} shown: {text}");
            assert!(!stderr(&out).contains(secret));
        }
    }
}

#[test]
fn bad_configuration_stops_with_the_setting_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        &[("SERVERSAN_LISTEN", "somewhere")],
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("SERVERSAN_LISTEN"),
        "{}",
        stderr(&out)
    );
    let out = run(
        dir.path(),
        &[("SERVERSAN_CONFIG", "/nonexistent/server.toml")],
        &["serve"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/server.toml"),
        "{}",
        stderr(&out)
    );
}
