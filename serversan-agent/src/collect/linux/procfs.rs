//! Parsers for the /proc and /etc files the Linux collector reads. Pure
//! functions over text, so each is tested against captured samples.

use serversan_protocol::report::NetInterface;

/// What the aggregate lines of `/proc/stat` say.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stat {
    /// Busy and total ticks over all CPUs.
    pub busy: u64,
    pub total: u64,
    /// Number of `cpuN` lines: the online logical CPUs.
    pub cpus: u32,
    pub boot_time: i64,
    pub processes_running: u32,
}

pub fn parse_stat(text: &str) -> Stat {
    let mut stat = Stat::default();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if key == "cpu" {
            let v: Vec<u64> = fields.take(8).map(|f| f.parse().unwrap_or(0)).collect();
            // user nice system idle iowait irq softirq steal; guest time is
            // already inside user and nice.
            let total: u64 = v.iter().sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            stat.total = total;
            stat.busy = total.saturating_sub(idle);
        } else if key.starts_with("cpu") {
            stat.cpus += 1;
        } else if key == "btime" {
            stat.boot_time = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        } else if key == "procs_running" {
            stat.processes_running = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        }
    }
    stat
}

/// Memory figures in bytes from `/proc/meminfo`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

pub fn parse_meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    let (mut free, mut buffers, mut cached, mut have_available) = (0, 0, 0, false);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let kib: u64 = rest
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bytes = kib.saturating_mul(1024);
        match key {
            "MemTotal" => m.total = bytes,
            "MemAvailable" => {
                m.available = bytes;
                have_available = true;
            }
            "MemFree" => free = bytes,
            "Buffers" => buffers = bytes,
            "Cached" => cached = bytes,
            "SwapTotal" => m.swap_total = bytes,
            "SwapFree" => m.swap_free = bytes,
            _ => {}
        }
    }
    if !have_available {
        // Kernels before 3.14 lack MemAvailable; this is what `free` did then.
        m.available = free + buffers + cached;
    }
    m.available = m.available.min(m.total);
    m.swap_free = m.swap_free.min(m.swap_total);
    m
}

/// `(one, five, fifteen)` from `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<(f64, f64, f64)> {
    let mut f = text.split_ascii_whitespace().map(|v| v.parse::<f64>().ok());
    let (one, five, fifteen) = (f.next()??, f.next()??, f.next()??);
    [one, five, fifteen]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0)
        .then_some((one, five, fifteen))
}

/// The CPU model and the mean current frequency from `/proc/cpuinfo`.
pub fn parse_cpuinfo(text: &str) -> (Option<String>, Option<f64>) {
    let mut model = None;
    let (mut mhz_sum, mut mhz_count) = (0.0, 0u32);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            // x86 says "model name"; some ARM kernels "Model" or "Hardware".
            "model name" | "Model" | "Hardware" | "cpu model"
                if model.is_none() && !value.is_empty() =>
            {
                model = Some(value.to_owned());
            }
            "cpu MHz" => {
                if let Ok(v) = value.parse::<f64>()
                    && v.is_finite()
                    && v > 0.0
                {
                    mhz_sum += v;
                    mhz_count += 1;
                }
            }
            _ => {}
        }
    }
    let mhz = (mhz_count > 0).then(|| super::super::round2(mhz_sum / f64::from(mhz_count)));
    (model, mhz)
}

/// `(NAME, VERSION_ID)` from `/etc/os-release`, falling back to `VERSION`
/// for the version (rolling distributions have no `VERSION_ID`).
pub fn parse_os_release(text: &str) -> (Option<String>, Option<String>) {
    let (mut name, mut version_id, mut version) = (None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match key.trim() {
            "NAME" => name = Some(value),
            "VERSION_ID" => version_id = Some(value),
            "VERSION" => version = Some(value),
            _ => {}
        }
    }
    (name, version_id.or(version))
}

fn unquote(v: &str) -> String {
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v);
    v.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// Every interface in `/proc/net/dev` except loopback.
pub fn parse_net_dev(text: &str) -> Vec<NetInterface> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name.is_empty() || name == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_ascii_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            Some(NetInterface {
                interface: name.to_owned(),
                rx_bytes: *f.first()?,
                tx_bytes: *f.get(8)?,
            })
        })
        .collect()
}

/// One process's figures from `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq)]
pub struct PidStat {
    pub name: String,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// Start time in clock ticks after boot.
    pub start: u64,
    pub rss_pages: u64,
}

pub fn parse_pid_stat(text: &str) -> Option<PidStat> {
    // The name sits in parentheses and may itself hold ")" or spaces: it
    // ends at the last ")".
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15, starttime 22,
    // rss 24.
    let num = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(PidStat {
        name,
        ticks: num(11)?.saturating_add(num(12)?),
        start: num(19)?,
        rss_pages: rest
            .get(21)
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(0, |v| v.max(0) as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat() {
        let s = parse_stat(
            "cpu  100 5 50 800 40 1 2 2 7 0\ncpu0 50 2 25 400 20 0 1 1 0 0\n\
             cpu1 50 3 25 400 20 1 1 1 0 0\nintr 1 2\nbtime 1700000000\nprocs_running 3\n",
        );
        assert_eq!(s.total, 1000);
        assert_eq!(s.busy, 160);
        assert_eq!(s.cpus, 2);
        assert_eq!(s.boot_time, 1_700_000_000);
        assert_eq!(s.processes_running, 3);
    }

    #[test]
    fn meminfo_with_and_without_available() {
        let m = parse_meminfo(
            "MemTotal:  1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nBuffers: 10 kB\n\
             Cached: 200 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\n",
        );
        assert_eq!(m.total, 1_024_000);
        assert_eq!(m.available, 614_400);
        assert_eq!((m.swap_total, m.swap_free), (51_200, 20_480));
        let old =
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n");
        assert_eq!(old.available, 310 * 1024);
    }

    #[test]
    fn loadavg() {
        assert_eq!(
            parse_loadavg("0.42 0.37 0.30 1/123 4567\n"),
            Some((0.42, 0.37, 0.30))
        );
        assert_eq!(parse_loadavg("garbage"), None);
    }

    #[test]
    fn cpuinfo_model_and_mean_frequency() {
        let (model, mhz) = parse_cpuinfo(
            "processor\t: 0\nmodel name\t: AMD EPYC 7763\ncpu MHz\t\t: 2000.000\n\n\
             processor\t: 1\nmodel name\t: AMD EPYC 7763\ncpu MHz\t\t: 3000.000\n",
        );
        assert_eq!(model.as_deref(), Some("AMD EPYC 7763"));
        assert_eq!(mhz, Some(2500.0));
        assert_eq!(
            parse_cpuinfo("processor : 0\nBogoMIPS : 50\n"),
            (None, None)
        );
    }

    #[test]
    fn os_release() {
        let (n, v) = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(
            (n.as_deref(), v.as_deref()),
            (Some("Debian GNU/Linux"), Some("12"))
        );
        let (n, v) = parse_os_release("NAME=Arch\nVERSION='rolling'\n");
        assert_eq!(
            (n.as_deref(), v.as_deref()),
            (Some("Arch"), Some("rolling"))
        );
    }

    #[test]
    fn net_dev_skips_loopback() {
        let v = parse_net_dev(
            "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n\
             \x20   lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n\
             \x20 eth0: 1234 10 0 0 0 0 0 0 5678 20 0 0 0 0 0 0\n",
        );
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].interface.as_str(), v[0].rx_bytes, v[0].tx_bytes),
            ("eth0", 1234, 5678)
        );
    }

    #[test]
    fn pid_stat_with_awkward_name() {
        let s = parse_pid_stat(
            "42 (we) ird) S 1 42 42 0 -1 4194560 100 0 0 0 70 30 0 0 20 0 1 0 5000 1000000 250 \
             18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0",
        )
        .expect("parses");
        assert_eq!(s.name, "we) ird");
        assert_eq!(s.ticks, 100);
        assert_eq!(s.start, 5000);
        assert_eq!(s.rss_pages, 250);
        assert!(parse_pid_stat("42 (x) S 1").is_none());
    }
}
