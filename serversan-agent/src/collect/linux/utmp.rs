//! Logged-in sessions from the utmp file (what `who` reads), parsed directly.

use serversan_protocol::report::Session;

/// Where glibc systems keep the current logins.
pub const UTMP_PATH: &str = "/run/utmp";

/// glibc's `struct utmp` on 64-bit Linux (x86_64, aarch64, riscv64...):
/// 384 bytes, times as 32-bit fields for compatibility with 32-bit programs.
const RECORD: usize = 384;
const USER_PROCESS: i16 = 7;

/// Sessions of live user processes in a utmp file's bytes. `alive` says
/// whether a pid still exists, so entries left by a crash are skipped.
pub fn parse(bytes: &[u8], alive: impl Fn(i32) -> bool, max: usize) -> Vec<Session> {
    bytes
        .chunks_exact(RECORD)
        .filter_map(|r| {
            let kind = i16::from_ne_bytes([r[0], r[1]]);
            let pid = i32::from_ne_bytes([r[4], r[5], r[6], r[7]]);
            if kind != USER_PROCESS || !alive(pid) {
                return None;
            }
            let line = c_string(&r[8..40]);
            let user = c_string(&r[44..76]);
            let host = c_string(&r[76..332]);
            let sec = i32::from_ne_bytes([r[340], r[341], r[342], r[343]]);
            let clean = |s: &str| crate::collect::clean_text(s, 256);
            Some(Session {
                user: clean(&user),
                terminal: clean(&line),
                from: (!host.is_empty()).then(|| clean(&host)),
                since: (sec > 0).then_some(i64::from(sec)),
            })
        })
        .take(max)
        .collect()
}

fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Reads the system's sessions; none when the file is absent (containers,
/// systems that keep logins only in systemd-logind).
pub fn sessions(max: usize) -> Vec<Session> {
    match std::fs::read(UTMP_PATH) {
        Ok(bytes) => parse(
            &bytes,
            |pid| pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists(),
            max,
        ),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
pub(crate) fn record(kind: i16, pid: i32, line: &str, user: &str, host: &str, sec: i32) -> Vec<u8> {
    let mut r = vec![0u8; RECORD];
    r[0..2].copy_from_slice(&kind.to_ne_bytes());
    r[4..8].copy_from_slice(&pid.to_ne_bytes());
    r[8..8 + line.len()].copy_from_slice(line.as_bytes());
    r[44..44 + user.len()].copy_from_slice(user.as_bytes());
    r[76..76 + host.len()].copy_from_slice(host.as_bytes());
    r[340..344].copy_from_slice(&sec.to_ne_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_processes_of_live_pids_only() {
        let mut bytes = record(2, 0, "~", "reboot", "6.1.0", 1_699_000_000); // BOOT_TIME
        bytes.extend(record(
            USER_PROCESS,
            100,
            "pts/0",
            "admin",
            "198.51.100.7",
            1_700_000_000,
        ));
        bytes.extend(record(USER_PROCESS, 200, "tty1", "root", "", 1_700_000_100));
        bytes.extend(record(
            USER_PROCESS,
            300,
            "pts/1",
            "gone",
            "x",
            1_700_000_200,
        ));
        bytes.extend(record(8, 400, "pts/2", "", "", 1)); // DEAD_PROCESS
        bytes.extend([0u8; 10]); // a torn trailing record is ignored
        let sessions = parse(&bytes, |pid| pid != 300, 256);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].user, "admin");
        assert_eq!(sessions[0].terminal, "pts/0");
        assert_eq!(sessions[0].from.as_deref(), Some("198.51.100.7"));
        assert_eq!(sessions[0].since, Some(1_700_000_000));
        assert_eq!(sessions[1].from, None);
        assert_eq!(parse(&bytes, |_| true, 1).len(), 1, "bounded");
    }
}
