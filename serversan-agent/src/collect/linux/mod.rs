//! Linux: every figure read straight from /proc, /sys and /etc (measured
//! cheaper than a general-purpose crate; see BENCHMARKS.md).

mod fs;
mod net;
mod procfs;
mod sensors;
mod utmp;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serversan_protocol::report::{Cpu, Load, Memory, Os, Swap};
use serversan_protocol::{Limits, REPORT_VERSION, Report};

use super::{Counters, ProcSample, clean_text, unix_now};

/// Reads a small kernel file. Plain `read` calls until the end: std's
/// `read_to_string` first asks the file's size and position (two more
/// syscalls per file, which /proc answers with 0 anyway).
fn read(path: &str) -> Option<String> {
    read_at_most(path, usize::MAX)
}

/// Reads up to `limit` bytes (rounded up to a 4 KiB chunk): the start of a
/// file the kernel generates as it is read (on a 128-core host, all of
/// /proc/cpuinfo is ~200 KiB of formatting for one model name).
fn read_at_most(path: &str, limit: usize) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < limit {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The counters rates are computed from: CPU time and every process's ticks.
pub(crate) fn read_counters() -> Counters {
    let stat = procfs::parse_stat(&read("/proc/stat").unwrap_or_default());
    // SAFETY: sysconf has no preconditions.
    let (hz, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    Counters {
        boot_time: stat.boot_time,
        taken_at: unix_now(),
        cpu_busy: stat.busy,
        cpu_total: stat.total,
        ticks_per_sec: u64::try_from(hz).unwrap_or(100),
        cores: stat.cpus.max(1),
        processes: processes(u64::try_from(page).unwrap_or(4096)),
    }
}

/// Every process's ticks, start, name and resident memory, sorted by pid.
fn processes(page_size: u64) -> Vec<ProcSample> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut buf = [0u8; 2048];
    let mut out: Vec<ProcSample> = dir
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            // One read: the kernel hands the whole line to a buffer this
            // size. A process may exit between listing and reading: skip it.
            let n = File::open(format!("/proc/{pid}/stat"))
                .ok()?
                .read(&mut buf)
                .ok()?;
            let s = procfs::parse_pid_stat(std::str::from_utf8(&buf[..n]).ok()?)?;
            Some(ProcSample {
                pid,
                start: s.start,
                ticks: s.ticks,
                name: clean_text(&s.name, 256),
                memory_bytes: s.rss_pages.saturating_mul(page_size),
            })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// Everything but the rates, as of `counters`.
pub(crate) fn collect_static(counters: &Counters) -> Report {
    let limits = Limits::default();
    let (model, frequency_mhz) =
        procfs::parse_cpuinfo(&read_at_most("/proc/cpuinfo", 8192).unwrap_or_default());
    let (os_name, os_version) = procfs::parse_os_release(
        &read("/etc/os-release")
            .or_else(|| read("/usr/lib/os-release"))
            .unwrap_or_default(),
    );
    let mem = procfs::parse_meminfo(&read("/proc/meminfo").unwrap_or_default());
    let load = procfs::parse_loadavg(&read("/proc/loadavg").unwrap_or_default())
        .map(|(one, five, fifteen)| Load { one, five, fifteen });
    let text = |s: Option<String>, fallback: &str| {
        let s = clean_text(s.as_deref().unwrap_or(""), limits.max_string_len);
        if s.is_empty() { fallback.to_owned() } else { s }
    };
    let mut network = procfs::parse_net_dev(&read("/proc/net/dev").unwrap_or_default());
    network.truncate(limits.max_interfaces);
    for n in &mut network {
        n.interface = clean_text(&n.interface, limits.max_string_len);
    }
    Report {
        version: REPORT_VERSION,
        collected_at: counters.taken_at,
        hostname: text(read("/proc/sys/kernel/hostname"), "localhost"),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        os: Os {
            name: text(os_name, "Linux"),
            version: text(os_version, ""),
            kernel: text(read("/proc/sys/kernel/osrelease"), ""),
            arch: std::env::consts::ARCH.to_owned(),
        },
        boot_time: counters.boot_time.clamp(0, counters.taken_at),
        cpu: Cpu {
            model: text(model, std::env::consts::ARCH),
            logical_cores: counters.cores,
            frequency_mhz,
            usage_percent: 0.0,
        },
        load,
        memory: Memory {
            total: mem.total,
            used: mem.total - mem.available,
            available: mem.available,
        },
        swap: Swap {
            total: mem.swap_total,
            used: mem.swap_total - mem.swap_free,
        },
        filesystems: fs::filesystems(
            &read("/proc/self/mountinfo").unwrap_or_default(),
            limits.max_filesystems,
            limits.max_path_len,
        ),
        network,
        ipv4: net::primary_ipv4().map(|a| a.to_string()),
        ipv6: net::primary_ipv6().map(|a| a.to_string()),
        process_count: u32::try_from(counters.processes.len()).unwrap_or(u32::MAX),
        sessions: utmp::sessions(limits.max_sessions),
        top_cpu: Vec::new(),
        top_memory: Vec::new(),
        temperatures: sensors::temperatures(Path::new("/sys/class"), limits.max_temperatures),
        extra: Default::default(),
    }
}
