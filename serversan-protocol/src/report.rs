//! Report v1: what an agent tells the server about its host.
//!
//! Sizes are bytes, times are unix seconds (UTC), rates are not sent: the
//! server derives network rates from the counters of consecutive reports, so a
//! lost report never produces a wrong rate. Fields a newer agent adds are kept
//! in [`Report::extra`] and stored, never silently dropped.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One system report, as sent in the body of `POST /v1/report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "ServerSan report v1")]
pub struct Report {
    /// Report format version; this schema describes version 1.
    pub version: u32,
    /// When the figures were collected (unix seconds). Older than the send
    /// time for reports that waited in the agent's spool.
    pub collected_at: i64,
    /// The host's name as it knows itself.
    pub hostname: String,
    /// Version of the agent that produced the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    pub os: Os,
    /// When the host booted (unix seconds).
    pub boot_time: i64,
    pub cpu: Cpu,
    /// Load averages; absent on systems without them (Windows).
    #[serde(default)]
    pub load: Option<Load>,
    pub memory: Memory,
    pub swap: Swap,
    /// Every real (non-pseudo, non-loop) mounted filesystem.
    #[serde(default)]
    pub filesystems: Vec<Filesystem>,
    /// Every network interface except loopback, with cumulative counters.
    #[serde(default)]
    pub network: Vec<NetInterface>,
    /// Primary IPv4 address, if any.
    #[serde(default)]
    pub ipv4: Option<String>,
    /// Primary IPv6 address, if any.
    #[serde(default)]
    pub ipv6: Option<String>,
    /// Number of processes running.
    pub process_count: u32,
    /// Logged-in sessions.
    #[serde(default)]
    pub sessions: Vec<Session>,
    /// Top processes by CPU usage, highest first.
    #[serde(default)]
    pub top_cpu: Vec<ProcessInfo>,
    /// Top processes by resident memory, highest first.
    #[serde(default)]
    pub top_memory: Vec<ProcessInfo>,
    /// Temperature sensors, where the host exposes them.
    #[serde(default)]
    pub temperatures: Vec<Temperature>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Os {
    /// Distribution or product name, e.g. "Debian GNU/Linux".
    pub name: String,
    /// Its version, e.g. "12".
    pub version: String,
    /// Kernel release, e.g. "6.1.0-26-amd64".
    pub kernel: String,
    /// Machine architecture, e.g. "x86_64" or "aarch64".
    pub arch: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cpu {
    pub model: String,
    pub logical_cores: u32,
    /// Current or nominal frequency, when known.
    #[serde(default)]
    pub frequency_mhz: Option<f64>,
    /// Busy share of all cores since the previous report, 0 to 100.
    pub usage_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Load {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Memory {
    pub total: u64,
    pub used: u64,
    pub available: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Swap {
    pub total: u64,
    pub used: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Filesystem {
    pub mount_point: String,
    pub fs_type: String,
    pub total: u64,
    pub used: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetInterface {
    pub interface: String,
    /// Bytes received since the interface came up (a counter).
    pub rx_bytes: u64,
    /// Bytes sent since the interface came up (a counter).
    pub tx_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    pub user: String,
    /// Terminal line, e.g. "pts/0".
    pub terminal: String,
    /// Remote host the session comes from, if remote.
    #[serde(default)]
    pub from: Option<String>,
    /// Login time (unix seconds).
    #[serde(default)]
    pub since: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    /// Share of one core, so up to 100 × logical cores.
    pub cpu_percent: f64,
    /// Resident memory.
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Temperature {
    pub label: String,
    pub celsius: f64,
}

impl Report {
    /// Memory in use as a percentage of total (0 when total is unknown).
    pub fn memory_percent(&self) -> f64 {
        percent(self.memory.used, self.memory.total)
    }

    /// Swap in use as a percentage of total (0 without swap).
    pub fn swap_percent(&self) -> f64 {
        percent(self.swap.used, self.swap.total)
    }

    /// The fullest filesystem's usage percentage, 0 when none are reported.
    pub fn max_disk_percent(&self) -> f64 {
        self.filesystems
            .iter()
            .map(|f| percent(f.used, f.total))
            .fold(0.0, f64::max)
    }

    /// Sum of all filesystems' sizes and usage.
    pub fn disk_totals(&self) -> (u64, u64) {
        self.filesystems.iter().fold((0u64, 0u64), |(t, u), f| {
            (t.saturating_add(f.total), u.saturating_add(f.used))
        })
    }

    /// Sum of all interfaces' counters.
    pub fn network_totals(&self) -> (u64, u64) {
        self.network.iter().fold((0u64, 0u64), |(rx, tx), n| {
            (rx.saturating_add(n.rx_bytes), tx.saturating_add(n.tx_bytes))
        })
    }

    /// An example report, realistic enough for tests, docs and load tests.
    pub fn example(collected_at: i64) -> Self {
        Report {
            version: crate::REPORT_VERSION,
            collected_at,
            hostname: "web-1.example.net".into(),
            agent_version: Some("0.1.0".into()),
            os: Os {
                name: "Debian GNU/Linux".into(),
                version: "12".into(),
                kernel: "6.1.0-26-amd64".into(),
                arch: "x86_64".into(),
            },
            boot_time: collected_at - 864_000,
            cpu: Cpu {
                model: "AMD EPYC 7763 64-Core Processor".into(),
                logical_cores: 4,
                frequency_mhz: Some(2445.0),
                usage_percent: 12.5,
            },
            load: Some(Load {
                one: 0.42,
                five: 0.37,
                fifteen: 0.30,
            }),
            memory: Memory {
                total: 8 << 30,
                used: 3 << 30,
                available: 5 << 30,
            },
            swap: Swap {
                total: 1 << 30,
                used: 64 << 20,
            },
            filesystems: vec![
                Filesystem {
                    mount_point: "/".into(),
                    fs_type: "ext4".into(),
                    total: 80 << 30,
                    used: 31 << 30,
                },
                Filesystem {
                    mount_point: "/boot/efi".into(),
                    fs_type: "vfat".into(),
                    total: 512 << 20,
                    used: 6 << 20,
                },
            ],
            network: vec![NetInterface {
                interface: "eth0".into(),
                rx_bytes: 912_345_678_901,
                tx_bytes: 123_456_789_012,
            }],
            ipv4: Some("203.0.113.10".into()),
            ipv6: Some("2001:db8::10".into()),
            process_count: 143,
            sessions: vec![Session {
                user: "admin".into(),
                terminal: "pts/0".into(),
                from: Some("198.51.100.7".into()),
                since: Some(collected_at - 3600),
            }],
            top_cpu: vec![
                ProcessInfo {
                    pid: 1234,
                    name: "nginx".into(),
                    cpu_percent: 8.5,
                    memory_bytes: 48 << 20,
                },
                ProcessInfo {
                    pid: 987,
                    name: "postgres".into(),
                    cpu_percent: 3.1,
                    memory_bytes: 512 << 20,
                },
            ],
            top_memory: vec![ProcessInfo {
                pid: 987,
                name: "postgres".into(),
                cpu_percent: 3.1,
                memory_bytes: 512 << 20,
            }],
            temperatures: vec![Temperature {
                label: "Package id 0".into(),
                celsius: 48.0,
            }],
            extra: BTreeMap::new(),
        }
    }

    /// [`Report::example`] as agent `agent` of a fleet sends it on its
    /// `seq`-th run: figures differ between agents and move over time, as a
    /// real fleet's do (counters only grow). What the load generator sends.
    pub fn example_in_fleet(agent: usize, seq: u64, collected_at: i64) -> Self {
        let mut r = Report::example(collected_at);
        let a = agent as u64;
        let wave = (a.wrapping_mul(7919) + seq.wrapping_mul(104_729)) % 1000;
        r.hostname = format!("host-{agent}.example.net");
        r.cpu.usage_percent = wave as f64 / 10.0;
        r.cpu.logical_cores = 1 << (agent % 5);
        if let Some(load) = r.load.as_mut() {
            load.one = wave as f64 / 250.0;
            load.five = load.one * 0.9;
            load.fifteen = load.one * 0.8;
        }
        r.memory.used = r.memory.total / 1000 * (200 + wave % 700);
        r.memory.available = r.memory.total - r.memory.used;
        r.swap.used = (wave % 64) << 20;
        for fs in &mut r.filesystems {
            fs.used = (fs.total / 1000 * (100 + (wave + a) % 850)).min(fs.total);
        }
        for net in &mut r.network {
            net.rx_bytes += seq * 7_340_032 + a;
            net.tx_bytes += seq * 1_048_576 + a;
        }
        r.process_count = 90 + u32::try_from(wave % 200).unwrap_or(0);
        for p in &mut r.top_cpu {
            p.cpu_percent = (wave % 400) as f64 / 10.0;
        }
        r
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The JSON schema of [`Report`], as written to `docs/report-v1.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Report)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips() {
        let r = Report::example(1_700_000_000);
        let json = serde_json::to_string(&r).expect("serializes");
        let back: Report = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, r);
    }

    #[test]
    fn unknown_fields_are_kept() {
        let mut v = serde_json::to_value(Report::example(1_700_000_000)).expect("value");
        v["gpu"] = serde_json::json!({"model": "X", "usage_percent": 3});
        let r: Report = serde_json::from_value(v.clone()).expect("parses");
        assert_eq!(r.extra["gpu"]["model"], "X");
        assert_eq!(serde_json::to_value(&r).expect("value"), v);
    }

    #[test]
    fn derived_figures() {
        let r = Report::example(1_700_000_000);
        assert!((r.memory_percent() - 37.5).abs() < 1e-9);
        assert!((r.max_disk_percent() - 31.0 * 100.0 / 80.0).abs() < 1e-9);
        assert_eq!(r.network_totals(), (912_345_678_901, 123_456_789_012));
    }
}
