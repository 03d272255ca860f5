//! Size and cost of the stored `detail` (see `storage::detail`), on three
//! sets of reports:
//!
//! - `loadgen`: what `serversan-loadgen` sends (`Report::example_in_fleet`,
//!   variations of `Report::example`), which flatters a dictionary;
//! - `this-host`: this machine's real report (collected as `serversan-agent
//!   print` does) with its figures moving over time;
//! - `varied`: that real report with other hosts' shapes: 1–8 filesystems,
//!   1–6 interfaces, 0–3 sessions, 0–8 sensors and top processes drawn from
//!   pools that include names the dictionary does not hold (random pids,
//!   container interfaces and volume mounts with random ids).
//!
//! ```text
//! env -u RUST_BACKTRACE cargo run --release -p serversan --example detail_size -- \
//!     [--host-report FILE] [--reports N] [--dump DIR]
//! ```
//!
//! `--host-report FILE` takes the real report from a file (the output of
//! `serversan-agent print`; `serversan/examples/detail_size_host.json` is
//! the one measured in BENCHMARKS.md) instead of collecting this machine's.
//! Prints per set the compact JSON size, the encoded size (median, p90,
//! max) and the median encode and decode time per report (N reports per
//! set, default 2,000, each timed singly after a warm-up). `--dump DIR`
//! writes each set's reports as JSON lines (`DIR/SET.jsonl`) for
//! comparisons with other compressors.
//!
//! Figures move the way real ones do: sizes from /proc are multiples of
//! 1 KiB (memory) or 4 KiB (resident sets, filesystem blocks), percentages
//! have two decimals as the agent rounds them, counters only grow.

use std::time::Instant;

use serversan::storage::{Figures, detail};
use serversan_protocol::Report;
use serversan_protocol::report::{Filesystem, NetInterface, ProcessInfo, Session, Temperature};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut reports = 2_000usize;
    let mut dump: Option<std::path::PathBuf> = None;
    let mut host_report: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reports" => reports = args.next().ok_or("--reports N")?.parse()?,
            "--dump" => dump = Some(args.next().ok_or("--dump DIR")?.into()),
            "--host-report" => host_report = Some(args.next().ok_or("--host-report FILE")?.into()),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let this_host: Report = match &host_report {
        Some(path) => serde_json::from_slice(&std::fs::read(path)?)?,
        None => serversan_agent::collect::Collector::in_memory().collect(),
    };
    if let Some(dir) = &dump {
        std::fs::write(
            dir.join("host-report.json"),
            serde_json::to_string_pretty(&this_host)?,
        )?;
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let sets: [(&str, Vec<Report>); 3] = [
        (
            "loadgen",
            (0..reports)
                .map(|i| {
                    let seq = (i as u64 * 7) % 100;
                    Report::example_in_fleet(i % 1000, seq, 1_800_000_000 + 60 * seq as i64)
                })
                .collect(),
        ),
        (
            "this-host",
            (0..reports)
                .map(|i| moving(&this_host, i as i64, &mut rng))
                .collect(),
        ),
        (
            "varied",
            (0..reports)
                .map(|i| varied(&this_host, i as i64, &mut rng))
                .collect(),
        ),
    ];
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "set", "json", "median", "p90", "max", "ratio", "encode", "decode"
    );
    for (name, set) in &sets {
        if let Some(dir) = &dump {
            let lines: Vec<String> = set
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<_, _>>()?;
            std::fs::write(dir.join(format!("{name}.jsonl")), lines.join("\n") + "\n")?;
        }
        // Warm-up: the thread's zstd contexts and the dictionary.
        for r in set.iter().take(50) {
            detail::encode(r)?;
        }
        let mut json = Vec::new();
        let mut sizes = Vec::new();
        let mut encode_ns = Vec::new();
        let mut decode_ns = Vec::new();
        for r in set {
            json.push(serde_json::to_vec(r)?.len());
            let start = Instant::now();
            let stored = detail::encode(r)?;
            encode_ns.push(start.elapsed().as_nanos());
            sizes.push(stored.len());
            let figures = Figures::from_report(r);
            let columns = detail::Columns {
                collected_at: r.collected_at,
                figures: &figures,
            };
            let start = Instant::now();
            let back = detail::decode(&stored, columns)?;
            decode_ns.push(start.elapsed().as_nanos());
            if &back != r {
                return Err(format!("{name}: a report did not survive").into());
            }
        }
        let json_median = median(&mut json);
        let size_median = median(&mut sizes);
        println!(
            "{name:<10} {json_median:>7} B {size_median:>7} B {:>7} B {:>7} B {:>9.1}x {:>7.1} µs {:>7.1} µs",
            percentile(&mut sizes, 0.9),
            sizes.iter().max().copied().unwrap_or(0),
            json_median as f64 / size_median as f64,
            median(&mut encode_ns) as f64 / 1000.0,
            median(&mut decode_ns) as f64 / 1000.0,
        );
    }
    Ok(())
}

fn median<T: Ord + Copy + Default>(v: &mut [T]) -> T {
    percentile(v, 0.5)
}

fn percentile<T: Ord + Copy + Default>(v: &mut [T], p: f64) -> T {
    v.sort_unstable();
    if v.is_empty() {
        return T::default();
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A small fixed-seed generator: the same reports on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, pool: &[&'a str]) -> &'a str {
        pool[self.below(pool.len() as u64) as usize]
    }
    /// A percentage as the agent sends it (rounded to two decimals).
    fn percent(&mut self) -> f64 {
        self.below(10_001) as f64 / 100.0
    }
    fn hex(&mut self, chars: usize) -> String {
        format!("{:016x}", self.next())[..chars.min(16)].to_owned()
    }
}

/// `base` a minute later `i` times: figures move, names stay.
fn moving(base: &Report, i: i64, rng: &mut Rng) -> Report {
    let mut r = base.clone();
    r.collected_at = base.collected_at + 60 * i;
    r.cpu.usage_percent = rng.percent();
    if let Some(load) = r.load.as_mut() {
        load.one = rng.below(800) as f64 / 100.0;
        load.five = rng.below(800) as f64 / 100.0;
        load.fifteen = rng.below(800) as f64 / 100.0;
    }
    r.memory.used = rng.below(r.memory.total.max(1)) & !1023;
    r.memory.available = r.memory.total - r.memory.used;
    for fs in &mut r.filesystems {
        fs.used = rng.below(fs.total.max(1)) & !4095;
    }
    for net in &mut r.network {
        net.rx_bytes += rng.below(50_000_000) * i as u64;
        net.tx_bytes += rng.below(5_000_000) * i as u64;
    }
    r.process_count = 100 + rng.below(400) as u32;
    for p in r.top_cpu.iter_mut().chain(r.top_memory.iter_mut()) {
        p.cpu_percent = (rng.percent() / 4.0 * 100.0).round() / 100.0;
        p.memory_bytes = rng.below(4 << 30) & !4095;
    }
    for t in &mut r.temperatures {
        t.celsius = 30.0 + rng.below(500) as f64 / 10.0;
    }
    for s in &mut r.sessions {
        s.since = s.since.map(|_| r.collected_at - rng.below(86_400) as i64);
    }
    r
}

const PROCESSES: &[&str] = &[
    "nginx",
    "postgres",
    "mysqld",
    "java",
    "node",
    "python3",
    "dockerd",
    "containerd",
    "redis-server",
    "php-fpm8.2",
    "systemd",
    "sshd",
    "beam.smp",
    "ruby",
    "sidekiq",
    "puma",
    "celery",
    "clickhouse-server",
    "minio",
    "vault",
    "consul",
    "traefik",
    "envoy",
    "coredns",
    "containerd-shim-runc-v2",
    "influxd",
    "telegraf",
    "zabbix_agentd",
    "perl",
    "bash",
    "code-server",
    "gitlab-runner",
    "jenkins",
    "rabbitmq-server",
    "memcached",
    "varnishd",
    "squid",
    "named",
    "dovecot",
    "opendkim",
    "clamd",
    "amavisd",
    "ffmpeg",
    "transmission-daemon",
    "plexmediaserver",
    "nextcloud-cron",
    "backup.sh",
    "rsync",
];
const MOUNTS: &[&str] = &[
    "/home",
    "/var",
    "/srv",
    "/data",
    "/opt",
    "/backup",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/log",
    "/mnt/storage",
    "/media/disk1",
    "/srv/www",
];
const FS_TYPES: &[&str] = &[
    "ext4", "xfs", "btrfs", "zfs", "nfs4", "overlay", "cifs", "f2fs",
];
const INTERFACES: &[&str] = &[
    "eth1",
    "ens3",
    "ens18",
    "enp3s0",
    "eno1",
    "eno2",
    "bond0",
    "vlan100",
    "docker0",
    "wg0",
    "tun0",
    "virbr0",
    "cni0",
    "flannel.1",
    "tailscale0",
];
const SENSORS: &[&str] = &[
    "Package id 0",
    "Core 0",
    "Core 1",
    "Core 2",
    "Core 3",
    "Tctl",
    "Tccd1",
    "Composite",
    "acpitz",
    "iwlwifi_1",
    "nvme Sensor 1",
    "pch_cannonlake",
];
const USERS: &[&str] = &["root", "admin", "deploy", "ubuntu", "alice", "bob", "ci"];

/// `base` reshaped like another host's report: other filesystems,
/// interfaces, sessions, sensors and processes, some with names no
/// dictionary can know.
fn varied(base: &Report, i: i64, rng: &mut Rng) -> Report {
    let mut r = moving(base, i, rng);
    r.hostname = format!("node-{}.{}.internal", rng.hex(6), rng.hex(4));
    r.cpu.logical_cores = 1 << rng.below(7);
    r.filesystems.truncate(1);
    for _ in 0..rng.below(8) {
        let mount_point = match rng.below(5) {
            0 => format!("/mnt/volume_{}_{:02}", rng.hex(4), rng.below(20)),
            1 => format!(
                "/var/lib/kubelet/pods/{}-{}/volumes",
                rng.hex(8),
                rng.hex(4)
            ),
            _ => rng.pick(MOUNTS).to_owned(),
        };
        let total = ((1 << 30) + rng.below(4 << 40)) & !4095;
        r.filesystems.push(Filesystem {
            mount_point,
            fs_type: rng.pick(FS_TYPES).to_owned(),
            total,
            used: rng.below(total) & !4095,
        });
    }
    r.network.truncate(1);
    for _ in 0..rng.below(6) {
        let interface = match rng.below(4) {
            0 => format!("veth{}", rng.hex(7)),
            1 => format!("br-{}", rng.hex(12)),
            _ => rng.pick(INTERFACES).to_owned(),
        };
        r.network.push(NetInterface {
            interface,
            rx_bytes: rng.below(1 << 42),
            tx_bytes: rng.below(1 << 40),
        });
    }
    r.sessions = (0..rng.below(4))
        .map(|k| Session {
            user: rng.pick(USERS).to_owned(),
            terminal: format!("pts/{k}"),
            from: Some(format!("198.51.100.{}", rng.below(255))),
            since: Some(r.collected_at - rng.below(86_400) as i64),
        })
        .collect();
    r.temperatures = (0..rng.below(9))
        .map(|_| Temperature {
            label: rng.pick(SENSORS).to_owned(),
            celsius: 25.0 + rng.below(600) as f64 / 10.0,
        })
        .collect();
    let process = |rng: &mut Rng| {
        let name = if rng.below(6) == 0 {
            format!("worker-{}", rng.hex(6))
        } else {
            rng.pick(PROCESSES).to_owned()
        };
        ProcessInfo {
            pid: 1 + rng.below(4_000_000) as u32,
            name,
            cpu_percent: (rng.percent() / 4.0 * 100.0).round() / 100.0,
            memory_bytes: rng.below(8 << 30) & !4095,
        }
    };
    r.top_cpu = (0..5).map(|_| process(rng)).collect();
    r.top_memory = (0..5).map(|_| process(rng)).collect();
    r
}
