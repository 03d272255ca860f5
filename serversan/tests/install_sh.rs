//! `install.sh`, run for real with bash as root, always under `--root` in a
//! throwaway prefix laid out like a Debian system: the real /etc is never
//! touched. Also the script as the server serves it, fetched with curl and
//! piped into bash the way the one-line install does.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serversan::install::{InstallSettings, router};
use serversan_protocol::AuthCode;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../install.sh");
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SERVER: &str = "http://127.0.0.1:9";

/// The cron job for `code`: at its second of the minute.
fn cron_line(code: &str) -> String {
    format!(
        "* * * * * serversan sleep {}; exec /usr/local/bin/serversan-agent report >/dev/null 2>&1",
        report_second(code)
    )
}

/// The second of the minute the installer schedules `code`'s reports at:
/// POSIX `cksum` of the key id, modulo 60, computed here independently of
/// the script.
fn report_second(code: &str) -> u32 {
    let key_id = code.split('.').next().unwrap_or_default().as_bytes();
    let mut crc: u32 = 0;
    let mut feed = |byte: u8| {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    };
    key_id.iter().copied().for_each(&mut feed);
    let mut len = key_id.len();
    while len > 0 {
        feed((len & 0xff) as u8);
        len >>= 8;
    }
    !crc % 60
}

/// These tests create users and chown files (inside the prefix), which
/// needs root.
fn running_as_root() -> bool {
    common::running_as_root("the installer tests")
}

/// A command the tests rely on; missing is a failure in CI.
fn tool(name: &str) -> Option<PathBuf> {
    let found = PATH
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            !common::in_ci(),
            "{name} is not installed; CI must provide it"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}

fn new_code() -> String {
    AuthCode::generate().unwrap().to_string()
}

fn secret_of(code: &str) -> &str {
    code.split_once('.').unwrap().1
}

/// A fake root laid out like a Debian system before installation.
struct Prefix {
    dir: tempfile::TempDir,
    /// Agent binaries to install, outside the prefix.
    agents: tempfile::TempDir,
}

impl Prefix {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [
            "etc/cron.d",
            "etc/systemd/system",
            "usr/local/bin",
            "var/lib",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let dbs = [
            ("passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644),
            ("group", "root:x:0:\n", 0o644),
            ("shadow", "root:*:19000:0:99999:7:::\n", 0o640),
            ("gshadow", "root:*::\n", 0o640),
        ];
        for (name, content, mode) in dbs {
            for file in [name.to_owned(), format!("{name}-")] {
                let path = root.join("etc").join(file);
                std::fs::write(&path, content).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        Prefix {
            dir,
            agents: tempfile::tempdir().unwrap(),
        }
    }

    /// A fresh prefix, when running as root (see [`running_as_root`]).
    fn if_root() -> Option<Self> {
        running_as_root().then(Self::new)
    }

    /// An agent binary to install, told apart from others by `marker`.
    fn agent(&self, marker: &str) -> PathBuf {
        dummy_agent(self.agents.path(), marker)
    }

    /// `install.sh CODE --binary AGENT EXTRA... --root PREFIX`.
    fn install(&self, code: &str, agent: &Path, extra: &[&str]) -> Output {
        let mut args = vec![code, "--binary", agent.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn listing(&self) -> Listing {
        let mut entries = BTreeMap::new();
        walk(self.root(), self.root(), &mut entries);
        entries
    }

    fn run(&self, args: &[&str]) -> Output {
        let root = self.root().to_str().unwrap();
        let mut all = args.to_vec();
        all.extend(["--root", root]);
        run_script(Path::new(SCRIPT), &all)
    }

    /// The `serversan` entry of the prefix's passwd: (uid, gid, home, shell).
    fn agent_user(&self) -> Option<(u32, u32, String, String)> {
        self.read("etc/passwd").lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f[0] == "serversan").then(|| {
                (
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    f[5].to_owned(),
                    f[6].to_owned(),
                )
            })
        })
    }
}

/// What a path is: kind, mode, owner and, for files, their content (the
/// shadow tools rewrite their `-` backups, so those are compared by name).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    content: Option<Vec<u8>>,
}

type Listing = BTreeMap<String, Entry>;

fn walk(root: &Path, dir: &Path, out: &mut Listing) {
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let kind = if meta.is_dir() {
            'd'
        } else if meta.file_type().is_symlink() {
            'l'
        } else {
            'f'
        };
        let content = (kind == 'f' && !rel.ends_with('-')).then(|| std::fs::read(&path).unwrap());
        out.insert(
            rel,
            Entry {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                content,
            },
        );
        if kind == 'd' {
            walk(root, &path, out);
        }
    }
}

fn run_script(script: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script)
        .args(args)
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
fn assert_ok(output: &Output) {
    assert!(output.status.success(), "{}", text(output));
}

/// Failed with status 1, saying `message`.
#[track_caller]
fn assert_refused(output: &Output, message: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", text(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(message), "{}", text(output));
}

#[track_caller]
fn assert_never_printed(output: &Output, code: &str) {
    let all = text(output);
    if let Some((_, secret)) = code.split_once('.')
        && secret.len() >= 8
    {
        assert!(!all.contains(secret), "the secret was printed:\n{all}");
    }
    assert!(!all.contains(code), "the code was printed:\n{all}");
}

/// A real executable (so the ELF check passes) with a marker appended, so
/// the installed file can be told apart from any other.
fn dummy_agent(dir: &Path, marker: &str) -> PathBuf {
    let mut bytes = std::fs::read("/bin/true").unwrap();
    bytes.extend_from_slice(marker.as_bytes());
    let path = dir.join(format!("agent-{marker}"));
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[track_caller]
fn assert_entry(listing: &Listing, rel: &str, kind: char, mode: u32, owner: (u32, u32)) {
    let entry = listing
        .get(rel)
        .unwrap_or_else(|| panic!("{rel} is missing"));
    assert_eq!(entry.kind, kind, "{rel}");
    assert_eq!(entry.mode, mode, "{rel}: mode {:o}", entry.mode);
    assert_eq!((entry.uid, entry.gid), owner, "{rel}: owner");
}

fn added(before: &Listing, after: &Listing) -> BTreeSet<String> {
    after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Everything an install creates, whatever the schedule.
#[track_caller]
fn assert_installed(prefix: &Prefix, code: &str, server: &str, binary: &Path) -> (u32, u32) {
    let (uid, gid, home, shell) = prefix.agent_user().expect("no serversan user");
    assert!(uid > 0 && uid < 1000, "not a system uid: {uid}");
    assert_eq!(home, "/nonexistent");
    assert!(
        ["/usr/sbin/nologin", "/sbin/nologin", "/bin/false"].contains(&shell.as_str()),
        "{shell}"
    );
    let group = prefix.read("etc/group");
    assert!(
        group
            .lines()
            .any(|l| l.starts_with(&format!("serversan:x:{gid}:"))),
        "{group}"
    );
    let shadow = prefix.read("etc/shadow");
    let password = shadow
        .lines()
        .find_map(|l| l.strip_prefix("serversan:"))
        .expect("no shadow entry");
    assert!(
        password.starts_with('!') || password.starts_with('*'),
        "the agent user must not have a password: {password}"
    );

    let listing = prefix.listing();
    let agent = (uid, gid);
    assert_entry(&listing, "etc/serversan", 'd', 0o700, agent);
    assert_entry(&listing, "etc/serversan/auth.log", 'f', 0o600, agent);
    assert_entry(&listing, "etc/serversan/agent.toml", 'f', 0o600, agent);
    assert_entry(&listing, "var/lib/serversan", 'd', 0o700, agent);
    assert_entry(
        &listing,
        "usr/local/bin/serversan-agent",
        'f',
        0o755,
        (0, 0),
    );

    let stored = prefix.read("etc/serversan/auth.log");
    assert_eq!(stored, format!("{code}\n"));
    assert_eq!(stored.parse::<AuthCode>().unwrap().to_string(), code);

    let config: toml::Table = prefix.read("etc/serversan/agent.toml").parse().unwrap();
    assert_eq!(config["server"].as_str(), Some(server));

    assert_eq!(
        std::fs::read(prefix.path("usr/local/bin/serversan-agent")).unwrap(),
        std::fs::read(binary).unwrap()
    );
    // No temporary file is left behind anywhere.
    for name in listing.keys() {
        let file = name.rsplit('/').next().unwrap();
        assert!(!file.starts_with('.'), "left behind: {name}");
    }
    agent
}

#[test]
fn shellcheck_is_clean() {
    let Some(shellcheck) = tool("shellcheck") else {
        return;
    };
    let output = Command::new(shellcheck)
        .args(["--shell=bash", "--severity=style", SCRIPT])
        .output()
        .unwrap();
    assert_ok(&output);
}

#[test]
fn scripts_have_lf_endings_and_plain_ascii() {
    // Windows PowerShell 5.1 reads a BOM-less script as ANSI: ASCII is the
    // only encoding every PowerShell agrees on.
    for name in ["install.sh", "install.ps1"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.contains(&b'\r'), "{name} has CR line endings");
        assert!(bytes.is_ascii(), "{name} is not plain ASCII");
        assert!(bytes.ends_with(b"\n"), "{name} does not end with a newline");
    }
    let mode = std::fs::metadata(SCRIPT).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "install.sh is not executable");
}

/// The test's own `cksum` agrees with POSIX `cksum` (values from GNU
/// coreutils), and key ids spread over the whole minute.
#[test]
fn report_seconds_follow_cksum_and_cover_the_minute() {
    assert_eq!(report_second("abcdefgh12.secret"), 2_275_921_423 % 60);
    assert_eq!(report_second("Zq8xP2mK.secret"), 2_336_166_348 % 60);
    let seconds: BTreeSet<u32> = (0..3000)
        .map(|i| report_second(&format!("host{i:06}.x")))
        .collect();
    assert_eq!(seconds.len(), 60, "every second of the minute is used");
}

#[test]
fn installs_with_cron_in_a_prefix() {
    let Some(prefix) = Prefix::if_root() else {
        return;
    };
    let binary = prefix.agent("cron");
    let before = prefix.listing();
    let code = new_code();

    let output = prefix.install(&code, &binary, &["--server", SERVER]);
    assert_ok(&output);
    assert_never_printed(&output, &code);

    assert_installed(&prefix, &code, SERVER, &binary);
    let after = prefix.listing();
    assert_entry(&after, "etc/cron.d/serversan-agent", 'f', 0o644, (0, 0));
    let cron = prefix.read("etc/cron.d/serversan-agent");
    assert!(cron.ends_with('\n'), "cron needs a final newline");
    let jobs: Vec<&str> = cron
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains('='))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(jobs, [cron_line(&code)]);
    assert!(!cron.contains(secret_of(&code)));
    assert_eq!(
        added(&before, &after),
        set(&[
            "etc/cron.d/serversan-agent",
            "etc/serversan",
            "etc/serversan/agent.toml",
            "etc/serversan/auth.log",
            "usr/local/bin/serversan-agent",
            "var/lib/serversan",
        ])
    );
    assert!(before.keys().all(|k| after.contains_key(k)));
    // --root never starts anything.
    assert!(String::from_utf8_lossy(&output.stdout).contains("installed"));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("first report"));
}

#[test]
fn installs_with_a_systemd_timer_in_a_prefix() {
    let Some(prefix) = Prefix::if_root() else {
        return;
    };
    let binary = prefix.agent("systemd");
    let before = prefix.listing();
    let code = new_code();

    let output = prefix.install(
        &code,
        &binary,
        &["--systemd", "--server", "https://mon.example/ss/"],
    );
    assert_ok(&output);
    assert_never_printed(&output, &code);
    assert_installed(&prefix, &code, "https://mon.example/ss", &binary);

    let after = prefix.listing();
    let service_path = "etc/systemd/system/serversan-agent.service";
    let timer_path = "etc/systemd/system/serversan-agent.timer";
    assert_entry(&after, service_path, 'f', 0o644, (0, 0));
    assert_entry(&after, timer_path, 'f', 0o644, (0, 0));
    let service = prefix.read(service_path);
    for line in [
        "Type=oneshot",
        "User=serversan",
        "Group=serversan",
        "ExecStart=/usr/local/bin/serversan-agent report",
        "ReadWritePaths=/var/lib/serversan",
    ] {
        assert!(service.lines().any(|l| l == line), "{line} in\n{service}");
    }
    let timer = prefix.read(timer_path);
    let at = format!("OnCalendar=*-*-* *:*:{:02}", report_second(&code));
    for line in [
        at.as_str(),
        "Unit=serversan-agent.service",
        "WantedBy=timers.target",
    ] {
        assert!(timer.lines().any(|l| l == line), "{line} in\n{timer}");
    }
    // Written, not enabled: nothing outside the prefix, no wants link.
    assert_eq!(
        added(&before, &after),
        set(&[
            service_path,
            timer_path,
            "etc/serversan",
            "etc/serversan/agent.toml",
            "etc/serversan/auth.log",
            "usr/local/bin/serversan-agent",
            "var/lib/serversan",
        ])
    );

    // systemd itself accepts both units (pointed at the installed binary,
    // since the real /usr/local/bin has none).
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let units = tempfile::tempdir().unwrap();
    let installed = prefix.path("usr/local/bin/serversan-agent");
    std::fs::write(
        units.path().join("serversan-agent.service"),
        service.replace(
            "/usr/local/bin/serversan-agent",
            installed.to_str().unwrap(),
        ),
    )
    .unwrap();
    std::fs::write(units.path().join("serversan-agent.timer"), &timer).unwrap();
    let output = Command::new(analyze)
        .arg("verify")
        .arg(units.path().join("serversan-agent.service"))
        .arg(units.path().join("serversan-agent.timer"))
        .output()
        .unwrap();
    assert_ok(&output);
    assert!(output.stderr.is_empty(), "{}", text(&output));
}

#[test]
fn rerunning_replaces_the_code_and_keeps_everything_else() {
    let Some(prefix) = Prefix::if_root() else {
        return;
    };
    let binary = prefix.agent("v1");
    let first = new_code();
    assert_ok(&prefix.install(&first, &binary, &["--server", SERVER]));
    let agent = assert_installed(&prefix, &first, SERVER, &binary);
    let installed = prefix.listing();

    // The same again changes nothing at all.
    assert_ok(&prefix.install(&first, &binary, &["--server", SERVER]));
    assert_eq!(prefix.listing(), installed);

    // A new code (/reinstall) replaces the old one; no --server: the
    // configured server stays.
    let second = new_code();
    let output = prefix.install(&second, &binary, &[]);
    assert_ok(&output);
    assert_never_printed(&output, &second);
    assert_eq!(assert_installed(&prefix, &second, SERVER, &binary), agent);
    let mut want = installed.clone();
    want.get_mut("etc/serversan/auth.log").unwrap().content =
        Some(format!("{second}\n").into_bytes());
    // The new key id has its own second of the minute.
    let cron_path = "etc/cron.d/serversan-agent";
    let cron = prefix.read(cron_path);
    assert!(cron.lines().any(|l| l == cron_line(&second)), "{cron}");
    want.get_mut(cron_path).unwrap().content = Some(cron.into_bytes());
    assert_eq!(prefix.listing(), want);

    // Settings a user added to agent.toml survive; a new agent binary and a
    // new server replace the old ones.
    let toml_path = prefix.path("etc/serversan/agent.toml");
    let mut config = prefix.read("etc/serversan/agent.toml");
    config.push_str("ca_file = \"/etc/serversan/ca.pem\"\n\n[extra]\nserver = \"kept\"\n");
    std::fs::write(&toml_path, config).unwrap();
    let newer = prefix.agent("v2");
    let third = new_code();
    assert_ok(&prefix.install(&third, &newer, &["--server", "https://other.example"]));
    assert_installed(&prefix, &third, "https://other.example", &newer);
    let config: toml::Table = prefix.read("etc/serversan/agent.toml").parse().unwrap();
    assert_eq!(config["ca_file"].as_str(), Some("/etc/serversan/ca.pem"));
    assert_eq!(config["extra"]["server"].as_str(), Some("kept"));
    let text = prefix.read("etc/serversan/agent.toml");
    assert_eq!(
        text.matches("# ServerSan agent settings").count(),
        1,
        "{text}"
    );
}

#[test]
fn the_schedule_switches_with_the_flag_and_stays_without_one() {
    let Some(prefix) = Prefix::if_root() else {
        return;
    };
    let binary = prefix.agent("switch");
    let cron = prefix.path("etc/cron.d/serversan-agent");
    let timer = prefix.path("etc/systemd/system/serversan-agent.timer");
    let service = prefix.path("etc/systemd/system/serversan-agent.service");

    assert_ok(&prefix.install(&new_code(), &binary, &["--server", SERVER, "--systemd"]));
    assert!(timer.exists() && service.exists() && !cron.exists());
    // /reinstall's line has no flag: the timer stays.
    assert_ok(&prefix.install(&new_code(), &binary, &[]));
    assert!(timer.exists() && service.exists() && !cron.exists());
    assert_ok(&prefix.install(&new_code(), &binary, &["--cron"]));
    assert!(cron.exists() && !timer.exists() && !service.exists());
    assert_ok(&prefix.install(&new_code(), &binary, &[]));
    assert!(cron.exists() && !timer.exists() && !service.exists());

    let output = prefix.install(&new_code(), &binary, &["--cron", "--systemd"]);
    assert_refused(&output, "choose one of --systemd and --cron");
}

#[test]
fn malformed_codes_change_nothing_and_are_never_echoed() {
    let Some(prefix) = Prefix::if_root() else {
        return;
    };
    let binary = prefix.agent("bad-code");
    let before = prefix.listing();
    let good = new_code();
    let (key, secret) = good.split_once('.').unwrap();
    let bad = [
        "nodot".to_owned(),
        "abcdefgh.".to_owned(),
        format!(".{secret}"),
        format!("short.{secret}"),
        format!("{}.{secret}", "k".repeat(33)),
        format!("key-with-dash.{secret}"),
        format!("{key}.{}", &secret[..42]),
        format!("{key}.{secret}xy"), // 45 characters: no whole number of bytes
        format!("{key}.{}+", &secret[..43]),
        format!("{key}.{}/", &secret[..43]),
        format!("{key}.{secret}="),
        format!("{key}.{secret}.extra"),
        format!("{key}.{secret} "),
        format!("{key}.{secret}\nrm -rf /"),
        format!("{key}.{secret}'; touch /tmp/serversan-pwned; '"),
        format!("{key}.{}", "A".repeat(200)),
    ];
    for code in &bad {
        let output = prefix.install(code, &binary, &["--server", SERVER]);
        assert_refused(&output, "not a ServerSan auth code");
        assert_never_printed(&output, code);
        assert_eq!(prefix.listing(), before, "{code:?} changed the prefix");
    }
    assert!(!Path::new("/tmp/serversan-pwned").exists());

    let output = prefix.run(&["--server", SERVER]);
    assert_refused(&output, "the auth code is missing");
    let output = prefix.run(&[&good, &good, "--server", SERVER]);
    assert_refused(&output, "more than one auth code");
    assert_never_printed(&output, &good);
    assert_eq!(prefix.listing(), before);
}

#[test]
fn unusable_servers_and_binaries_change_nothing() {
    let Some(prefix) = Prefix::if_root() else {
        return;
    };
    let binary = prefix.agent("bad-server");
    let before = prefix.listing();
    let code = new_code();
    for url in [
        "http://x'; touch /tmp/serversan-pwned; '",
        "http://x\"; touch /tmp/serversan-pwned; \"",
        "https://a/$(touch /tmp/serversan-pwned)",
        "https://a b",
        "https://a/?q=1",
        "ftp://mon.example",
        "mon.example",
        "https://",
    ] {
        let output = prefix.install(&code, &binary, &["--server", url]);
        assert_refused(&output, "the server URL must look like");
        assert_eq!(prefix.listing(), before, "{url:?} changed the prefix");
    }
    assert!(!Path::new("/tmp/serversan-pwned").exists());

    // No server anywhere.
    let output = prefix.install(&code, &binary, &[]);
    assert_refused(&output, "no server URL");

    // A binary that is not an executable, or not there.
    let script = prefix.agents.path().join("not-elf");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let output = prefix.install(&code, &script, &["--server", SERVER]);
    assert_refused(&output, "is not a Linux executable");
    let output = prefix.install(
        &code,
        Path::new("/nonexistent/agent"),
        &["--server", SERVER],
    );
    assert_refused(&output, "is not a file");
    // A server that has no agent to download.
    let output = prefix.run(&[&code, "--server", SERVER]);
    assert_refused(&output, "could not download the agent");
    assert_never_printed(&output, &code);

    // A relative prefix.
    let output = run_script(
        Path::new(SCRIPT),
        &[&code, "--server", SERVER, "--root", "relative/dir"],
    );
    assert_refused(&output, "--root must be an absolute path");
    assert_eq!(prefix.listing(), before);
}

#[test]
fn refuses_to_run_without_root() {
    let Some(prefix) = Prefix::if_root() else {
        return;
    };
    let Some(setpriv) = tool("setpriv") else {
        return;
    };
    let before = prefix.listing();
    let code = new_code();
    // The script is read through stdin, as from curl, by an unprivileged user.
    let output = Command::new(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-s",
            "--",
        ])
        .args([code.as_str(), "--server", SERVER, "--root"])
        .arg(prefix.root())
        .env("PATH", PATH)
        .stdin(std::fs::File::open(SCRIPT).unwrap())
        .output()
        .unwrap();
    assert_refused(&output, "must run as root");
    assert!(String::from_utf8_lossy(&output.stderr).contains("sudo"));
    assert_never_printed(&output, &code);
    assert_eq!(prefix.listing(), before);
}

#[test]
fn uninstall_leaves_the_prefix_as_it_was() {
    for schedule in ["--cron", "--systemd"] {
        let Some(prefix) = Prefix::if_root() else {
            return;
        };
        let binary = prefix.agent("uninstall");
        let before = prefix.listing();
        // Nothing installed yet: uninstalling is a no-op, not an error.
        assert_ok(&prefix.run(&["--uninstall"]));
        assert_eq!(prefix.listing(), before);

        let code = new_code();
        let args = ["--server", SERVER, schedule];
        assert_ok(&prefix.install(&code, &binary, &args));
        assert_ok(&prefix.install(&code, &binary, &args));
        // State the agent wrote is removed too.
        std::fs::write(prefix.path("var/lib/serversan/spool-1.json"), "{}").unwrap();
        assert_ne!(prefix.listing(), before);

        let output = prefix.run(&["--uninstall"]);
        assert_ok(&output);
        assert_eq!(prefix.listing(), before, "{schedule}");
        assert!(prefix.agent_user().is_none());
        assert!(!prefix.read("etc/group").contains("serversan"));
        assert_ok(&prefix.run(&["--uninstall"]));
        assert_eq!(prefix.listing(), before, "{schedule}");
    }
}

/// Mounts copies over /etc, /usr/local/bin and /var/lib, then runs bash
/// with the remaining arguments: the installer sees a whole system and
/// changes only the copies.
const MOUNT_AND_RUN: &str = r#"mount --bind "$1" /etc && mount --bind "$2" /usr/local/bin &&
mount --bind "$3" /var/lib && shift 3 && exec bash "$@""#;

/// A stand-in system for one test in a private mount namespace.
struct Namespace {
    world: tempfile::TempDir,
    unshare: PathBuf,
}

impl Namespace {
    fn new(unshare: PathBuf) -> Self {
        let world = tempfile::tempdir().unwrap();
        // The agent user must reach the working directories inside.
        std::fs::set_permissions(world.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = Command::new("cp")
            .args(["-a", "/etc"])
            .arg(world.path().join("etc"))
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::create_dir_all(world.path().join("etc/cron.d")).unwrap();
        std::fs::create_dir(world.path().join("bin")).unwrap();
        std::fs::create_dir(world.path().join("var-lib")).unwrap();
        Namespace { world, unshare }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.world.path().join(rel)
    }

    /// A directory holding the `report` script that a `/bin/sh` posing as
    /// the agent runs for `serversan-agent report`.
    fn report_script(&self, name: &str, script: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("report"), script).unwrap();
        std::fs::set_permissions(dir.join("report"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        dir
    }

    /// `install.sh ARGS` without `--root`, from `cwd`.
    fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(&self.unshare)
            .args([
                "--mount",
                "--propagation",
                "private",
                "bash",
                "-c",
                MOUNT_AND_RUN,
                "_",
            ])
            .arg(self.path("etc"))
            .arg(self.path("bin"))
            .arg(self.path("var-lib"))
            .arg(SCRIPT)
            .args(args)
            .current_dir(cwd)
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn user_dbs(&self) -> Vec<(String, Vec<u8>)> {
        ["passwd", "group", "shadow", "gshadow"]
            .iter()
            .map(|db| {
                (
                    db.to_string(),
                    std::fs::read(self.path(&format!("etc/{db}"))).unwrap(),
                )
            })
            .collect()
    }
}

/// Without `--root`: `useradd` on the system's own files, the first report
/// run as the agent user, `userdel` on uninstall. The run happens in a
/// private mount namespace over copies of /etc, /usr/local/bin and /var/lib,
/// so the host's own are never touched.
#[test]
fn installs_for_real_in_a_private_mount_namespace() {
    if !running_as_root() {
        return;
    }
    let Some(unshare) = tool("unshare") else {
        return;
    };
    let ns = Namespace::new(unshare);
    let dbs = ns.user_dbs();
    // /bin/sh as the agent: `serversan-agent report` runs ./report.
    let shell = ns.path("sh-posing-as-agent");
    std::fs::copy("/bin/sh", &shell).unwrap();
    let accepted = ns.report_script(
        "accepting",
        "id -un > /var/lib/serversan/first-report\n\
         test -r /etc/serversan/auth.log && echo can-read-code >> /var/lib/serversan/first-report\n",
    );
    let refused = ns.report_script("refusing", "echo 'server said no' >&2\nexit 3\n");
    let shell = shell.to_str().unwrap();

    let code = new_code();
    let output = ns.run(&accepted, &[&code, "--server", SERVER, "--binary", shell]);
    assert_ok(&output);
    assert_never_printed(&output, &code);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("the server accepted the first report"),
        "{}",
        text(&output)
    );
    let passwd = String::from_utf8(std::fs::read(ns.path("etc/passwd")).unwrap()).unwrap();
    let uid: u32 = passwd
        .lines()
        .find_map(|l| l.strip_prefix("serversan:x:"))
        .and_then(|rest| rest.split(':').next())
        .expect("no serversan user")
        .parse()
        .unwrap();
    let first = ns.path("var-lib/serversan/first-report");
    assert_eq!(
        std::fs::read_to_string(&first).unwrap(),
        "serversan\ncan-read-code\n"
    );
    assert_eq!(std::fs::metadata(&first).unwrap().uid(), uid);
    assert_eq!(
        std::fs::read_to_string(ns.path("etc/serversan/auth.log")).unwrap(),
        format!("{code}\n")
    );
    assert!(ns.path("etc/cron.d/serversan-agent").is_file());
    assert!(ns.path("bin/serversan-agent").is_file());
    // The host's own files never saw any of it.
    let host = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!host.lines().any(|l| l.starts_with("serversan:")));

    // A server that refuses: installed all the same, and the user is told.
    let second = new_code();
    let output = ns.run(&refused, &[&second, "--binary", shell]);
    assert_ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server said no"), "{}", text(&output));
    assert!(
        stderr.contains("the first report did not reach the server (exit status 3"),
        "{}",
        text(&output)
    );
    assert_eq!(
        std::fs::read_to_string(ns.path("etc/serversan/auth.log")).unwrap(),
        format!("{second}\n")
    );

    let output = ns.run(&refused, &["--uninstall"]);
    assert_ok(&output);
    assert_eq!(ns.user_dbs(), dbs);
    for gone in [
        "etc/serversan",
        "etc/cron.d/serversan-agent",
        "bin/serversan-agent",
        "var-lib/serversan",
    ] {
        assert!(!ns.path(gone).exists(), "{gone} is left");
    }
}

/// The name `install.sh` downloads for this machine.
fn this_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        "arm" => "armv7",
        "x86" => "i686",
        "riscv64" => "riscv64",
        other => panic!("no agent platform for {other}"),
    };
    format!("linux-{arch}")
}

/// The install routes on a real socket; the base URL they preset is their own.
async fn serve_install_routes(agent_dir: &Path, path: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}{path}", listener.local_addr().unwrap());
    let routes = router(InstallSettings {
        public_url: format!("{base}/"),
        agent_dir: Some(agent_dir.to_path_buf()),
    });
    let app = if path.is_empty() {
        routes
    } else {
        axum::Router::new().nest(path, routes)
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_script_installs_from_its_own_server() {
    if !running_as_root() {
        return;
    }
    let Some(curl) = tool("curl") else {
        return;
    };
    let agents = tempfile::tempdir().unwrap();
    let dummy = dummy_agent(agents.path(), "served");
    std::fs::rename(&dummy, agents.path().join(this_platform())).unwrap();
    let served_binary = agents.path().join(this_platform());

    for path in ["", "/monitor"] {
        let base = serve_install_routes(agents.path(), path).await;
        let prefix = Prefix::new();
        let code = new_code();
        let root = prefix.root().to_owned();
        let (pipe_code, pipe_base, curl) = (code.clone(), base.clone(), curl.clone());
        // Exactly the one-line install, less sudo (already root), plus --root.
        let output = tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .args(["-c", "set -o pipefail; \"$0\" -fsSL \"$1/install.sh\" | bash -s -- \"$2\" --root \"$3\""])
                .arg(curl)
                .arg(&pipe_base)
                .arg(&pipe_code)
                .arg(&root)
                .env("PATH", PATH)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert_ok(&output);
        assert_never_printed(&output, &code);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!(
                "downloading the agent from {base}/agent/{}",
                this_platform()
            )),
            "{stdout}"
        );
        assert_installed(&prefix, &code, &base, &served_binary);
    }
}

#[tokio::test]
async fn the_served_script_is_valid_bash_for_any_accepted_url() {
    use tower::ServiceExt;
    for url in [
        "https://mon.example",
        "http://127.0.0.1:8080/",
        "https://[2001:db8::1]:8443/a/b_c~d%20e/",
    ] {
        let app = router(InstallSettings {
            public_url: url.to_owned(),
            agent_dir: None,
        });
        let req = axum::http::Request::get("/install.sh")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let script = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(script.path(), &body).unwrap();
        let output = Command::new("bash")
            .arg("-n")
            .arg(script.path())
            .output()
            .unwrap();
        assert_ok(&output);
        let want = url.trim_end_matches('/');
        let preset = String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| {
                l.strip_prefix("DEFAULT_SERVER='")?
                    .strip_suffix('\'')
                    .map(str::to_owned)
            })
            .unwrap();
        assert_eq!(preset, want);
    }
}
