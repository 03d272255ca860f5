//! Collected figures against independent readings of the same host.
//! Tolerances allow for the host changing between the two readings.

#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serversan_agent::Collector;
use serversan_protocol::{Limits, validate_report};

const MIB: u64 = 1 << 20;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn meminfo() -> HashMap<String, u64> {
    std::fs::read_to_string("/proc/meminfo")
        .expect("meminfo")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((
                k.to_owned(),
                v.split_whitespace().next()?.parse::<u64>().ok()? * 1024,
            ))
        })
        .collect()
}

fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").expect("loadavg");
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(|x| x.parse().expect("number"))
        .collect();
    [v[0], v[1], v[2]]
}

fn statvfs(path: &str) -> (u64, u64) {
    let c = std::ffi::CString::new(path).expect("path");
    // SAFETY: valid path and out pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::statvfs(c.as_ptr(), &mut st) },
        0,
        "statvfs {path}"
    );
    let total = st.f_blocks as u64 * st.f_frsize as u64;
    (total, total - st.f_bfree as u64 * st.f_frsize as u64)
}

fn collect() -> serversan_protocol::Report {
    Collector::in_memory()
        .sample_duration(Duration::from_millis(50))
        .collect()
}

#[test]
fn report_is_valid() {
    let r = collect();
    validate_report(&r, now(), &Limits::default()).expect("valid report");
    assert!((now() - 5..=now()).contains(&r.collected_at));
}

#[test]
fn memory_matches_proc_meminfo() {
    let before = meminfo();
    let r = collect();
    let after = meminfo();
    assert_eq!(r.memory.total, before["MemTotal"]);
    assert_eq!(r.memory.used + r.memory.available, r.memory.total);
    let (lo, hi) = (
        before["MemAvailable"].min(after["MemAvailable"]),
        before["MemAvailable"].max(after["MemAvailable"]),
    );
    // 64 MiB: other processes allocate between the readings.
    assert!(
        r.memory.available + 64 * MIB >= lo && r.memory.available <= hi + 64 * MIB,
        "available {} vs {lo}..{hi}",
        r.memory.available
    );
    assert_eq!(r.swap.total, before["SwapTotal"]);
    assert!(r.swap.used <= r.swap.total);
}

#[test]
fn cores_match_nproc() {
    let nproc = std::thread::available_parallelism().expect("nproc").get() as u32;
    let r = collect();
    // nproc counts the CPUs this process may use; the report counts the
    // host's online CPUs. Equal on an unrestricted host such as CI's.
    assert!(r.cpu.logical_cores >= nproc);
    assert_eq!(r.cpu.logical_cores, nproc);
}

#[test]
fn load_matches_proc_loadavg() {
    let before = loadavg();
    let r = collect();
    let after = loadavg();
    let load = r.load.expect("Linux has load averages");
    for (got, (b, a)) in [load.one, load.five, load.fifteen]
        .into_iter()
        .zip(before.into_iter().zip(after))
    {
        assert!(
            got >= b.min(a) - 0.01 && got <= b.max(a) + 0.01,
            "{got} vs {b}/{a}"
        );
    }
}

#[test]
fn filesystems_match_statvfs_and_root_is_there() {
    let r = collect();
    assert!(!r.filesystems.is_empty());
    let root_dev = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/"));
    assert!(root_dev);
    assert!(
        r.filesystems.iter().any(|f| f.mount_point == "/"),
        "{:?}",
        r.filesystems
    );
    let mut seen = std::collections::HashSet::new();
    for fs in &r.filesystems {
        assert!(
            seen.insert(&fs.mount_point),
            "listed twice: {}",
            fs.mount_point
        );
        let (total, used) = statvfs(&fs.mount_point);
        assert_eq!(fs.total, total, "{}", fs.mount_point);
        assert!(
            fs.used.abs_diff(used) <= 256 * MIB,
            "{}: {} vs {used}",
            fs.mount_point,
            fs.used
        );
        assert!(
            ![
                "proc", "sysfs", "tmpfs", "devtmpfs", "cgroup", "cgroup2", "devpts"
            ]
            .contains(&fs.fs_type.as_str())
        );
    }
}

#[test]
fn network_counters_match_proc_net_dev_without_loopback() {
    let read = || -> HashMap<String, (u64, u64)> {
        std::fs::read_to_string("/proc/net/dev")
            .expect("net/dev")
            .lines()
            .skip(2)
            .filter_map(|l| {
                let (name, rest) = l.split_once(':')?;
                let f: Vec<u64> = rest
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                Some((name.trim().to_owned(), (f[0], f[8])))
            })
            .collect()
    };
    let before = read();
    let r = collect();
    let after = read();
    assert!(r.network.iter().all(|n| n.interface != "lo"));
    assert_eq!(
        r.network.len(),
        before.len() - usize::from(before.contains_key("lo"))
    );
    for n in &r.network {
        let (b, a) = (before[&n.interface], after[&n.interface]);
        assert!((b.0..=a.0).contains(&n.rx_bytes), "{}", n.interface);
        assert!((b.1..=a.1).contains(&n.tx_bytes), "{}", n.interface);
    }
}

#[test]
fn host_identity_matches_the_kernel() {
    let r = collect();
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    assert_eq!(
        unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) },
        0
    );
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    assert_eq!(r.hostname, String::from_utf8_lossy(&buf[..end]));
    // SAFETY: uname fills the struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::uname(&mut u) }, 0);
    // SAFETY: release is NUL-terminated.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    assert_eq!(r.os.kernel, release.to_string_lossy());
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .expect("uptime")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number");
    let boot = now() as f64 - uptime;
    assert!(
        (r.boot_time as f64 - boot).abs() <= 3.0,
        "{} vs {boot}",
        r.boot_time
    );
    if let Ok(osr) = std::fs::read_to_string("/etc/os-release") {
        let version = osr
            .lines()
            .find_map(|l| l.strip_prefix("VERSION_ID="))
            .map(|v| v.trim_matches('"').to_owned());
        if let Some(v) = version {
            assert_eq!(r.os.version, v);
        }
    }
}

#[test]
fn process_count_matches_proc() {
    let count = || {
        std::fs::read_dir("/proc")
            .expect("proc")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .count() as i64
    };
    let before = count();
    let r = collect();
    let after = count();
    let got = i64::from(r.process_count);
    assert!(
        got >= before.min(after) - 20 && got <= before.max(after) + 20,
        "{got} vs {before}/{after}"
    );
    assert_eq!(r.top_memory.len(), 5.min(got as usize));
    assert!(
        r.top_memory
            .windows(2)
            .all(|w| w[0].memory_bytes >= w[1].memory_bytes)
    );
    // The largest resident process, read independently, heads the list.
    let largest = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let kib: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some(kib * 1024)
        })
        .max()
        .unwrap_or(0);
    assert!(
        r.top_memory[0].memory_bytes.abs_diff(largest) <= 64 * MIB,
        "{:?} vs {largest}",
        r.top_memory[0]
    );
}

/// (busy, total) ticks of all CPUs from /proc/stat.
fn cpu_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").expect("stat");
    let v: Vec<u64> = text
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().expect("number"))
        .collect();
    let total: u64 = v.iter().sum();
    (total - v[3] - v[4], total)
}

/// utime + stime of this process, in ticks.
fn own_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let rest: Vec<&str> = text[text.rfind(')').expect("name") + 2..]
        .split(' ')
        .collect();
    rest[11].parse::<u64>().expect("utime") + rest[12].parse::<u64>().expect("stime")
}

#[test]
fn cpu_usage_and_top_cpu_match_proc_stat_over_a_busy_interval() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut first =
        Collector::with_state_dir(state.path()).sample_duration(Duration::from_millis(50));
    first.collect();
    let ((busy0, total0), own0, t0) = (cpu_ticks(), own_ticks(), Instant::now());
    first.save().expect("save counters");
    assert!(state.path().join("counters.json").exists());

    // Burn CPU for a while; the next one-shot collector measures since the
    // saved counters and so must see it, without sampling itself.
    let until = Instant::now() + Duration::from_millis(800);
    let spin = std::thread::spawn(move || {
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        x
    });
    let _ = spin.join();
    let started = Instant::now();
    let r = Collector::with_state_dir(state.path())
        .sample_duration(Duration::from_secs(30))
        .collect();
    let ((busy1, total1), own1, elapsed) = (cpu_ticks(), own_ticks(), t0.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "used the saved counters, no sample"
    );

    // Host usage: the same figure from /proc/stat over (nearly) the same
    // window; 10 points of slack for the few milliseconds between readings.
    let expected = (busy1 - busy0) as f64 * 100.0 / (total1 - total0) as f64;
    assert!(
        (r.cpu.usage_percent - expected).abs() <= 10.0,
        "usage {} vs {expected}",
        r.cpu.usage_percent
    );

    // This process burnt most of a core; it is in the top list with about
    // that share, unless five busier processes crowded it out (a loaded
    // machine), in which case the list's last entry is no smaller.
    let hz = 100.0; // USER_HZ on every Linux architecture
    let own = (own1 - own0) as f64 / hz / elapsed.as_secs_f64() * 100.0;
    let me = std::process::id();
    match r.top_cpu.iter().find(|p| p.pid == me) {
        Some(mine) => assert!((mine.cpu_percent - own).abs() <= 20.0, "{mine:?} vs {own}"),
        None => {
            assert_eq!(r.top_cpu.len(), 5, "{:?}", r.top_cpu);
            assert!(
                r.top_cpu[4].cpu_percent + 20.0 >= own,
                "{:?} vs {own}",
                r.top_cpu
            );
        }
    }
    assert!(
        r.top_cpu
            .windows(2)
            .all(|w| w[0].cpu_percent >= w[1].cpu_percent)
    );
}
