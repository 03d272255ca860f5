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
//! Then, on per-host sequences a minute apart (see "Sequences and deltas
//! against a keyframe" below), the size when each report is compressed
//! against an earlier report of the same host, its keyframe: first as the
//! server stores them (`detail::encode_against`, format 2, a keyframe
//! every 45 minutes), then for fixed keyframe intervals of 10, 60 and 360
//! reports, with and without the v1 dictionary in front of the keyframe:
//! mean and median over all reports (keyframes included), and median,
//! p90 and max of the deltas.
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
            let back = detail::decode(&stored, columns, None)?;
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
    delta_sizes(&this_host, reports, &sets[1].1, &mut rng)?;
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

// ---------------------------------------------------------------------
// Sequences and deltas against a keyframe.
//
// The sets above draw every report's figures afresh (`moving`) or even
// every report's shape (`varied`): right for a fixed dictionary, which
// sees one report at a time, but not for compressing a report against an
// earlier one of the same host. The sets below are per-host sequences a
// minute apart: the shape stays (names, mount points, interfaces, pids),
// and each figure moves from its last value: filesystems fill or free a
// little, counters grow at a per-interface rate, resident sets drift by a
// few pages, processes now and then restart (new pid) or a short-lived one
// shows up, temperatures drift, sessions rarely change.

/// Report sequences per set, and reports per sequence (12 hours).
const SEQUENCES: usize = 6;
const SEQUENCE_LEN: usize = 720;

/// Keyframe intervals measured, in reports.
const INTERVALS: [usize; 3] = [10, 60, 360];

/// The format-1 dictionary, to get the compact JSON back from a detail.
const DICTIONARY_V1: &[u8] = include_bytes!("../src/storage/detail-dictionary-v1.txt");

/// A process of a simulated host.
#[derive(Clone)]
struct Proc {
    pid: u32,
    name: String,
    memory_bytes: u64,
    /// Mean CPU ticks (1/100 s) per minute.
    activity: u64,
}

/// A host whose reports follow each other a minute apart.
struct Host {
    report: Report,
    procs: Vec<Proc>,
    /// Per interface, bytes per second received and sent (mean).
    rates: Vec<(u64, u64)>,
    /// Whether the CPU frequency moves between reports (bare metal) or not
    /// (most VMs).
    frequency_moves: bool,
    base_frequency: Option<f64>,
    next_pid: u32,
}

impl Host {
    /// A host shaped like `base` (`varied == false`) or like another
    /// host's report (`varied`, as the `varied` set draws them).
    fn new(base: &Report, varied_shape: bool, rng: &mut Rng) -> Self {
        let mut report = if varied_shape {
            varied(base, 0, rng)
        } else {
            base.clone()
        };
        report.collected_at = base.collected_at;
        let mut procs: Vec<Proc> = Vec::new();
        for p in report.top_cpu.iter().chain(&report.top_memory) {
            if procs.iter().all(|q| q.pid != p.pid) {
                procs.push(Proc {
                    pid: p.pid,
                    name: p.name.clone(),
                    memory_bytes: p.memory_bytes,
                    activity: rng.below(3_000),
                });
            }
        }
        // The rest of a host's processes: mostly idle daemons.
        for name in [
            "systemd",
            "systemd-journald",
            "sshd",
            "cron",
            "dbus-daemon",
            "serversan-agent",
            "rsyslogd",
        ] {
            procs.push(Proc {
                pid: 200 + rng.below(2_000) as u32,
                name: name.to_owned(),
                memory_bytes: (4 << 20) + (rng.below(60 << 20) & !4095),
                activity: rng.below(40),
            });
        }
        let rates = report
            .network
            .iter()
            .map(|n| {
                if n.rx_bytes == 0 && n.tx_bytes == 0 {
                    (0, 0)
                } else if varied_shape {
                    (rng.below(10_000_000), rng.below(2_000_000))
                } else {
                    (rng.below(200_000), rng.below(50_000))
                }
            })
            .collect();
        let frequency_moves = varied_shape && rng.below(2) == 0;
        let base_frequency = report.cpu.frequency_mhz;
        Host {
            report,
            procs,
            rates,
            frequency_moves,
            base_frequency,
            next_pid: 20_000 + rng.below(100_000) as u32,
        }
    }

    /// The next report, a minute after the last.
    fn step(&mut self, rng: &mut Rng) -> Report {
        let r = &mut self.report;
        r.collected_at += 60;
        r.cpu.usage_percent = rng.percent();
        if let Some(load) = r.load.as_mut() {
            load.one = rng.below(800) as f64 / 100.0;
            load.five = rng.below(800) as f64 / 100.0;
            load.fifteen = rng.below(800) as f64 / 100.0;
        }
        if self.frequency_moves {
            r.cpu.frequency_mhz = self
                .base_frequency
                .map(|f| ((f - 800.0).max(800.0) + rng.below(160_000) as f64 / 100.0).round());
        }
        let drift = |v: u64, step: u64, rng: &mut Rng| -> u64 {
            let d = rng.below(2 * step + 1);
            (v + d).saturating_sub(step)
        };
        r.memory.used = drift(r.memory.used, 64 << 20, rng).min(r.memory.total) & !1023;
        r.memory.available = r.memory.total - r.memory.used;
        for fs in &mut r.filesystems {
            fs.used = drift(fs.used, 32 << 20, rng).min(fs.total) & !4095;
        }
        for (net, &(rx, tx)) in r.network.iter_mut().zip(&self.rates) {
            net.rx_bytes += rx * (30 + rng.below(61));
            net.tx_bytes += tx * (30 + rng.below(61));
        }
        r.process_count = (r.process_count + rng.below(7) as u32).saturating_sub(3);
        // Now and then a process restarts (new pid) or a short-lived one
        // replaces another.
        if rng.below(20) == 0 {
            let k = rng.below(self.procs.len() as u64) as usize;
            self.next_pid += 1 + rng.below(500) as u32;
            self.procs[k].pid = self.next_pid;
            if rng.below(3) == 0 {
                self.procs[k].name = rng.pick(PROCESSES).to_owned();
                self.procs[k].activity = rng.below(3_000);
            }
        }
        for p in &mut self.procs {
            p.memory_bytes = drift(p.memory_bytes, p.memory_bytes / 100, rng).max(4096) & !4095;
        }
        let infos: Vec<ProcessInfo> = self
            .procs
            .iter()
            .map(|p| {
                let ticks = drift(p.activity, p.activity / 2 + 1, rng);
                ProcessInfo {
                    pid: p.pid,
                    name: p.name.clone(),
                    cpu_percent: (ticks as f64 / 60.0 * 100.0).round() / 100.0,
                    memory_bytes: p.memory_bytes,
                }
            })
            .collect();
        // As the agent picks them.
        let top = r.top_cpu.len().max(r.top_memory.len()).max(1);
        (r.top_cpu, r.top_memory) = serversan_agent::collect::rank_processes(infos, top);
        for t in &mut r.temperatures {
            let tenths = (t.celsius * 10.0).round() as u64;
            t.celsius = drift(tenths, 15, rng).clamp(250, 950) as f64 / 10.0;
        }
        if rng.below(240) == 0 {
            if r.sessions.is_empty() || rng.below(2) == 0 {
                r.sessions.push(Session {
                    user: rng.pick(USERS).to_owned(),
                    terminal: format!("pts/{}", r.sessions.len()),
                    from: Some(format!("198.51.100.{}", rng.below(255))),
                    since: Some(r.collected_at),
                });
            } else {
                r.sessions.pop();
            }
        }
        r.clone()
    }
}

/// The compact JSON inside a format-1 detail.
fn payload(stored: &[u8]) -> Result<Vec<u8>, Error> {
    let frame = stored.get(1..).ok_or("empty detail")?;
    Ok(zstd::bulk::Decompressor::with_dictionary(DICTIONARY_V1)?.decompress(frame, 1 << 20)?)
}

/// Bytes of an unsigned LEB128 varint.
fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Sizes (bytes) and times (ns) of one way of storing a set.
#[derive(Default)]
struct Measured {
    all: Vec<usize>,
    deltas: Vec<usize>,
    encode_ns: Vec<u128>,
    decode_ns: Vec<u128>,
}

impl Measured {
    fn print(&mut self, label: &str) {
        let mean = self.all.iter().sum::<usize>() as f64 / self.all.len().max(1) as f64;
        println!(
            "{label:<34} {:>5} B {mean:>7.1} B {:>5} B {:>5} B {:>5} B {:>7.1} µs {:>7.1} µs",
            median(&mut self.all),
            median(&mut self.deltas),
            percentile(&mut self.deltas, 0.9),
            self.deltas.iter().max().copied().unwrap_or(0),
            median(&mut self.encode_ns) as f64 / 1000.0,
            median(&mut self.decode_ns) as f64 / 1000.0,
        );
    }
}

/// Per-host sequences, each report's detail compressed against its
/// keyframe's compact JSON as a raw-content zstd dictionary (star: every
/// delta refers to the last keyframe, never to another delta). A delta's
/// size counts a format byte and the keyframe's `collected_at` as a
/// zigzag varint of the difference to the report's own; keyframes are
/// plain format-1 details. `with_v1`: the dictionary is the v1 dictionary
/// followed by the keyframe's JSON (nearest last, the cheapest offsets).
///
/// `drawn` is the `this-host` set cut into sequences: names and pids stay
/// but every figure is drawn afresh, the worst case for a delta.
fn delta_sizes(
    base: &Report,
    reports: usize,
    drawn: &[Report],
    rng: &mut Rng,
) -> Result<(), Error> {
    let sequences = reports.div_ceil(SEQUENCE_LEN).max(SEQUENCES);
    println!();
    println!(
        "per-host sequences: {sequences} hosts x {SEQUENCE_LEN} reports a minute apart; \
         star deltas against a keyframe every K reports"
    );
    println!(
        "{:<34} {:>7} {:>9} {:>7} {:>7} {:>7} {:>10} {:>10}",
        "set / scheme", "median", "mean", "δ med", "δ p90", "δ max", "encode", "decode"
    );
    let mut compressor = zstd::bulk::Compressor::new(5)?;
    let mut decompressor = zstd::bulk::Decompressor::new()?;
    let mut sets: Vec<(&str, Vec<Vec<Report>>)> = vec![(
        "this-host drawn",
        drawn.chunks(SEQUENCE_LEN).map(<[Report]>::to_vec).collect(),
    )];
    for (name, varied_shape) in [("host-seq", false), ("varied-seq", true)] {
        let hosts: Vec<Vec<Report>> = (0..sequences)
            .map(|_| {
                let mut host = Host::new(base, varied_shape, rng);
                (0..SEQUENCE_LEN).map(|_| host.step(rng)).collect()
            })
            .collect();
        sets.push((name, hosts));
    }
    for (name, hosts) in &sets {
        // Format 1 alone, for comparison.
        let mut plain = Measured::default();
        let mut stored: Vec<Vec<(Vec<u8>, Vec<u8>)>> = Vec::new();
        for seq in hosts {
            let mut encoded = Vec::new();
            for r in seq {
                let start = Instant::now();
                let detail = detail::encode(r)?;
                plain.encode_ns.push(start.elapsed().as_nanos());
                let figures = Figures::from_report(r);
                let columns = detail::Columns {
                    collected_at: r.collected_at,
                    figures: &figures,
                };
                let start = Instant::now();
                let back = detail::decode(&detail, columns, None)?;
                plain.decode_ns.push(start.elapsed().as_nanos());
                if &back != r {
                    return Err(format!("{name}: a report did not survive").into());
                }
                plain.all.push(detail.len());
                plain.deltas.push(detail.len());
                let json = payload(&detail)?;
                encoded.push((detail, json));
            }
            stored.push(encoded);
        }
        plain.print(&format!("{name} format 1"));
        // As the server stores them (`detail::encode_against`, format 2):
        // a keyframe serves the reports arriving within 45 minutes
        // (`storage::keyframes`), unless a delta is not worth it. Times
        // include everything: the JSON, the keyframe's decompression, the
        // delta; decoding the report back with its keyframe.
        let mut stored_as = Measured::default();
        for seq in hosts {
            let mut key: Option<(i64, Vec<u8>)> = None;
            for r in seq {
                let start = Instant::now();
                let encoded = match &key {
                    Some((at, detail)) if r.collected_at - at < 45 * 60 => {
                        let keyframe = detail::Keyframe {
                            collected_at: *at,
                            detail,
                        };
                        detail::encode_against(r, keyframe)?
                    }
                    _ => detail::Encoded::Keyframe(detail::encode(r)?),
                };
                stored_as.encode_ns.push(start.elapsed().as_nanos());
                let figures = Figures::from_report(r);
                let columns = detail::Columns {
                    collected_at: r.collected_at,
                    figures: &figures,
                };
                let (bytes, back) = match encoded {
                    detail::Encoded::Keyframe(bytes) => {
                        key = Some((r.collected_at, bytes.clone()));
                        let start = Instant::now();
                        let back = detail::decode(&bytes, columns, None)?;
                        stored_as.decode_ns.push(start.elapsed().as_nanos());
                        (bytes, back)
                    }
                    detail::Encoded::Delta(bytes) => {
                        let keyframe = key.as_ref().map(|(_, k)| k.as_slice());
                        let start = Instant::now();
                        let back = detail::decode(&bytes, columns, keyframe)?;
                        stored_as.decode_ns.push(start.elapsed().as_nanos());
                        stored_as.deltas.push(bytes.len());
                        (bytes, back)
                    }
                };
                if &back != r {
                    return Err(format!("{name}: a report did not survive").into());
                }
                stored_as.all.push(bytes.len());
            }
        }
        stored_as.print(&format!("{name} stored (format 2)"));
        for with_v1 in [false, true] {
            for interval in INTERVALS {
                let mut m = Measured::default();
                for (seq, encoded) in hosts.iter().zip(&stored) {
                    let mut dictionary = Vec::new();
                    let mut key_at = 0;
                    for (i, (r, (detail, json))) in seq.iter().zip(encoded).enumerate() {
                        if i % interval == 0 {
                            dictionary.clear();
                            if with_v1 {
                                dictionary.extend_from_slice(DICTIONARY_V1);
                            }
                            dictionary.extend_from_slice(json);
                            key_at = r.collected_at;
                            m.all.push(detail.len());
                            continue;
                        }
                        let start = Instant::now();
                        compressor.set_dictionary(5, &dictionary)?;
                        let frame = compressor.compress(json)?;
                        m.encode_ns.push(start.elapsed().as_nanos());
                        let start = Instant::now();
                        decompressor.set_dictionary(&dictionary)?;
                        let back = decompressor.decompress(&frame, 1 << 20)?;
                        m.decode_ns.push(start.elapsed().as_nanos());
                        if &back != json {
                            return Err(format!("{name}: a delta did not survive").into());
                        }
                        let gap = r.collected_at - key_at;
                        let zigzag = ((gap << 1) ^ (gap >> 63)) as u64;
                        let size = 1 + varint_len(zigzag) + frame.len();
                        m.all.push(size);
                        m.deltas.push(size);
                    }
                }
                let dict = if with_v1 { "v1+key" } else { "key" };
                m.print(&format!("{name} K={interval} {dict}"));
            }
        }
    }
    Ok(())
}
