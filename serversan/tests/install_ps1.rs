//! `install.ps1` without PowerShell (none can be installed here): the script
//! and every served variant must parse (tree-sitter's PowerShell grammar,
//! from PyPI), and its checks of codes and URLs must agree with the server's
//! and `install.sh`'s.
//!
//! Needs a Python with the `tree_sitter` and `tree_sitter_powershell`
//! modules: `SERVERSAN_TEST_PYTHON`, else `python3`. Missing in CI is a
//! failure.

use std::io::Write;
use std::process::{Command, Stdio};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serversan::install::{InstallSettings, router};
use serversan_protocol::AuthCode;
use tower::ServiceExt;

const PS1: &str = include_str!("../../install.ps1");
const SH: &str = include_str!("../../install.sh");

/// Prints one line per syntax error in the PowerShell read from stdin.
const PARSE: &str = r#"
import sys
import tree_sitter_powershell
from tree_sitter import Language, Parser
source = sys.stdin.buffer.read()
tree = Parser(Language(tree_sitter_powershell.language())).parse(source)
def walk(node):
    if node.type == "ERROR" or node.is_missing:
        print("line %d: %r" % (node.start_point[0] + 1, source[node.start_byte:node.end_byte][:60]))
    for child in node.children:
        walk(child)
walk(tree.root_node)
"#;

/// Prints 1 or 0 for each line of stdin: does it match the .NET pattern in
/// argv[1] (with `-cmatch`, so case-sensitive)? .NET's `\z` is Python's `\Z`.
const MATCH: &str = r#"
import re, sys
pattern = re.compile(sys.argv[1].replace("\\z", "\\Z"))
for line in sys.stdin.read().split("\n")[:-1]:
    print(1 if pattern.search(line) else 0)
"#;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn python() -> Option<String> {
    let python = std::env::var("SERVERSAN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import tree_sitter, tree_sitter_powershell"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !in_ci(),
            "{python} lacks tree_sitter/tree_sitter_powershell (pip install tree-sitter tree-sitter-powershell)"
        );
        eprintln!("skipped: {python} lacks tree_sitter/tree_sitter_powershell");
    }
    ok.then_some(python)
}

fn run_python(python: &str, program: &str, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

fn syntax_errors(python: &str, script: &str) -> String {
    run_python(python, PARSE, &[], script.as_bytes())
}

async fn served_ps1(public_url: &str) -> (StatusCode, String) {
    let app = router(InstallSettings {
        public_url: public_url.to_owned(),
        agent_dir: None,
    });
    let req = Request::get("/install.ps1").body(Body::empty()).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The single-quoted value assigned on the line starting with `prefix`.
fn quoted_value<'a>(script: &'a str, prefix: &str) -> &'a str {
    let line = script
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix}"));
    let rest = &line[prefix.len()..];
    let start = rest.find('\'').unwrap() + 1;
    let end = rest.rfind('\'').unwrap();
    &rest[start..end]
}

#[test]
fn the_script_parses() {
    let Some(python) = python() else { return };
    assert_eq!(syntax_errors(&python, PS1), "");
    // The check itself sees a broken script.
    let broken = PS1.replacen("function Get-AgentTask {", "function Get-AgentTask ", 1);
    assert_ne!(syntax_errors(&python, &broken), "");
    let unterminated = PS1.replacen(
        "$TaskName = 'ServerSan Agent'",
        "$TaskName = 'ServerSan Agent",
        1,
    );
    assert_ne!(syntax_errors(&python, &unterminated), "");
}

#[tokio::test]
async fn every_served_variant_parses_and_presets_the_url() {
    let Some(python) = python() else { return };
    for (url, want) in [
        ("https://mon.example", "https://mon.example"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        (
            "https://[2001:db8::1]:8443/a/b_c~d%20e/",
            "https://[2001:db8::1]:8443/a/b_c~d%20e",
        ),
    ] {
        let (status, script) = served_ps1(url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(quoted_value(&script, "$DefaultServer = "), want);
        assert_eq!(syntax_errors(&python, &script), "", "{url}");
    }
}

/// What the server serves, install.sh and install.ps1 must all accept the
/// same server URLs.
#[tokio::test]
async fn url_checks_agree_with_the_server() {
    let Some(python) = python() else { return };
    let urls = [
        "https://mon.example",
        "http://127.0.0.1:8080",
        "https://[::1]:8443/base/",
        "https://a.example/x_y~z%41-",
        "HTTPS://mon.example",
        "ftp://mon.example",
        "https://",
        "https:///x",
        "https://a'b",
        "https://a\"b",
        "https://a`b",
        "https://a$b",
        "https://a b",
        "https://a\tb",
        "https://a/?q",
        "https://a/#f",
        "https://u@a",
        "https://a;b",
        "https://a\\b",
    ];
    let pattern = quoted_value(PS1, "$UrlPattern = ");
    let input: String = urls.iter().map(|u| format!("{u}\n")).collect();
    let ps1 = run_python(&python, MATCH, &[pattern], input.as_bytes());
    for (url, ps1_ok) in urls.iter().zip(ps1.lines()) {
        let (status, _) = served_ps1(url).await;
        let served = status == StatusCode::OK;
        assert_eq!(
            ps1_ok == "1",
            served,
            "{url:?}: install.ps1 and the server disagree"
        );
        let sh = Command::new("bash")
            .args(["-c", "[[ $1 =~ $0 ]]"])
            .arg(quoted_value(SH, "readonly URL_RE="))
            .arg(url)
            .status()
            .unwrap()
            .success();
        assert_eq!(sh, served, "{url:?}: install.sh and the server disagree");
    }
}

/// Codes the server generates pass the installers' checks; codes it would
/// refuse do not.
#[test]
fn code_checks_agree_with_the_protocol() {
    let Some(python) = python() else { return };
    let good = AuthCode::generate().unwrap().to_string();
    let (key, secret) = good.split_once('.').unwrap();
    let mut codes = vec![
        good.clone(),
        format!("{}.{secret}", "K".repeat(8)),
        format!("{}.{secret}", "K".repeat(32)),
        format!("{}.{secret}", "K".repeat(7)),
        format!("{}.{secret}", "K".repeat(33)),
        format!("{key}.{}", &secret[..42]),
        format!("{key}.{secret}="),
        format!("{key}.{secret}+"),
        format!("{key}-x.{secret}"),
        format!("{key}.{secret}.x"),
        format!("{key}.{secret}\n"),
        format!("{key}{secret}"),
    ];
    // More codes straight from the generator.
    codes.extend((0..20).map(|_| AuthCode::generate().unwrap().to_string()));
    let pattern = quoted_value(PS1, "$CodePattern = ");
    let input: String = codes
        .iter()
        .map(|c| format!("{}\n", c.replace('\n', "\\n")))
        .collect();
    let ps1 = run_python(&python, MATCH, &[pattern], input.as_bytes());
    for (code, ps1_ok) in codes.iter().zip(ps1.lines()) {
        // The protocol's parser forgives surrounding whitespace; the
        // installers take the code exactly as the bot printed it.
        let protocol = code.trim() == code && code.parse::<AuthCode>().is_ok();
        let line = code.replace('\n', "\\n");
        let secret_len = line.split_once('.').map_or(0, |(_, s)| s.len());
        let ps1_ok = ps1_ok == "1" && secret_len % 4 != 1;
        assert_eq!(
            ps1_ok, protocol,
            "{line:?}: install.ps1 and the protocol disagree"
        );
    }
}

#[test]
fn the_task_and_the_acl_are_what_the_design_says() {
    // Scheduled Task: every minute, forever, as SYSTEM (by SID), the agent's
    // one-shot command.
    for needle in [
        "<Interval>PT1M</Interval>",
        "<UserId>$SystemSid</UserId>",
        "<Arguments>report</Arguments>",
        "<MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>",
        "$SystemSid = 'S-1-5-18'",
        "$AdministratorsSid = 'S-1-5-32-544'",
        // Inheritance removed, inherited rules dropped.
        "$acl.SetAccessRuleProtection($true, $false)",
        "Join-Path $env:ProgramData 'ServerSan'",
        "\"$Url/agent/$(Get-AgentPlatform)\"",
        "'AMD64' { return 'windows-x86_64' }",
    ] {
        assert!(PS1.contains(needle), "install.ps1 lacks {needle}");
    }
    assert_eq!(quoted_value(PS1, "$DefaultServer = "), "");
}
