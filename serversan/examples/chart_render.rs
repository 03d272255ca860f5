//! Chart rendering benchmark, and sample pictures to look at.
//!
//! ```text
//! cargo run --release -p serversan --example chart_render -- [--runs N] [--out DIR]
//! ```
//!
//! Times `render_png` alone (data already in memory) for a 24 h chart of
//! 1,440 one-minute reports and a 30 d chart of 720 hourly buckets, and
//! prints the median of N runs (default 31). With `--out`, also writes a
//! PNG of every metric for both periods into DIR.

use std::time::{Duration, Instant};

use serversan::charts::{
    ChartRequest, History, Metric, Period, Point, Sample, TimeZone, counter_rate, render_png,
};

/// Thu 2026-11-05 14:32:10 UTC.
const END: i64 = 1_793_889_130;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut runs = 31usize;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().ok_or("--runs needs a number")?.parse()?,
            "--out" => out = Some(args.next().ok_or("--out needs a directory")?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    // One report a minute for 30 days: without gaps for timing, with a
    // 3-hour outage 10 hours ago for the pictures.
    let steady = synthetic_samples(30 * 24 * 60, 60, false);
    let day_raw = raw_day(&steady);
    let started = Instant::now();
    let month_steady = History::from_samples(&steady, Period::D30, END);
    let downsample = started.elapsed();
    assert_eq!(day_raw.cpu.len(), 1440);
    // 720 hourly buckets in view, plus the one the window starts inside.
    assert_eq!(month_steady.cpu.len(), 721);

    let request = |metric, period, history: &History| ChartRequest {
        server: "web-1.example".to_owned(),
        metric,
        period,
        end: END,
        zone: TimeZone::utc(),
        history: history.clone(),
    };

    println!("render_png, median of {runs} runs (min .. max):");
    for (name, req) in [
        (
            "24h cpu, 1,440 raw points",
            request(Metric::Cpu, Period::H24, &day_raw),
        ),
        (
            "24h net, 1,440 raw points x2",
            request(Metric::Net, Period::H24, &day_raw),
        ),
        (
            "24h all, 1,440 raw points x8",
            request(Metric::All, Period::H24, &day_raw),
        ),
        (
            "30d cpu, 720 hourly buckets",
            request(Metric::Cpu, Period::D30, &month_steady),
        ),
        (
            "30d all, 720 hourly buckets x8",
            request(Metric::All, Period::D30, &month_steady),
        ),
    ] {
        let (median, min, max, bytes) = measure(&req, runs)?;
        println!(
            "  {name:<32} {:>6.2} ms  ({:.2} .. {:.2})  {} KiB",
            ms(median),
            ms(min),
            ms(max),
            bytes / 1024
        );
    }
    println!(
        "History::from_samples, 43,200 samples -> 30d buckets: {:.2} ms (one run)",
        ms(downsample)
    );

    if let Some(dir) = out {
        std::fs::create_dir_all(&dir)?;
        let outage = synthetic_samples(30 * 24 * 60, 60, true);
        let day = History::from_samples(&outage, Period::H24, END);
        let month = History::from_samples(&outage, Period::D30, END);
        for (period, history) in [(Period::H24, &day), (Period::D30, &month)] {
            for metric in Metric::CHOICES {
                let png = render_png(&request(metric, period, history))?;
                let path = format!("{dir}/{metric}-{period}.png");
                std::fs::write(&path, png)?;
                println!("wrote {path}");
            }
        }
        let empty = render_png(&request(Metric::Cpu, Period::H1, &History::default()))?;
        std::fs::write(format!("{dir}/empty.png"), empty)?;
    }
    Ok(())
}

/// The last 24 hours as raw one-minute points, as the raw reports table
/// holds them (1,440 is more than `MAX_POINTS`, so `from_samples` would
/// average them into 2-minute buckets).
fn raw_day(samples: &[Sample]) -> History {
    let recent: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at > END - Period::H24.seconds())
        .collect();
    let line = |read: fn(&Sample) -> Option<f64>| -> Vec<Point> {
        recent.iter().map(|s| Point::raw(s.at, read(s))).collect()
    };
    History {
        step: 60,
        cpu: line(|s| s.cpu),
        mem: line(|s| s.mem),
        disk: line(|s| s.disk),
        net_rx: line(|s| s.net_rx),
        net_tx: line(|s| s.net_tx),
        load1: line(|s| s.load1),
        load5: line(|s| s.load5),
        load15: line(|s| s.load15),
        cores: Some(4),
    }
}

fn measure(
    request: &ChartRequest,
    runs: usize,
) -> Result<(Duration, Duration, Duration, usize), Box<dyn std::error::Error>> {
    let bytes = render_png(request)?.len(); // warm-up: font registration, caches
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let png = render_png(request)?;
        times.push(started.elapsed());
        std::hint::black_box(png);
    }
    times.sort();
    Ok((
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        bytes,
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A plausible server: a daily CPU wave with noise and spikes, slowly
/// filling memory and disk, bursty traffic from counters, and an outage.
fn synthetic_samples(count: i64, every: i64, with_outage: bool) -> Vec<Sample> {
    let mut seed = 0x5eed_u64;
    let mut noise = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / f64::from(u32::MAX >> 1)
    };
    let outage = (END - 10 * 3600 - 3 * 3600)..(END - 10 * 3600);
    let (mut rx, mut tx) = (0u64, 0u64);
    let mut previous: Option<(i64, u64, u64)> = None;
    let mut samples = Vec::new();
    for i in (0..count).rev() {
        let at = END - i * every;
        let hour = (at % 86_400) as f64 / 3600.0;
        let wave = (std::f64::consts::PI * (hour - 8.0) / 12.0).sin().max(0.0);
        let spike = if noise() > 0.995 { 40.0 } else { 0.0 };
        let cpu = (8.0 + 45.0 * wave + 10.0 * noise() + spike).min(100.0);
        rx += (2_000_000.0 * (0.2 + wave) * every as f64 * (0.5 + noise())) as u64;
        tx += (400_000.0 * (0.2 + wave) * every as f64 * (0.5 + noise())) as u64;
        if with_outage && outage.contains(&at) {
            previous = None;
            continue;
        }
        let (net_rx, net_tx) = match previous {
            Some((t, r, x)) => (
                counter_rate((t, r), (at, rx)),
                counter_rate((t, x), (at, tx)),
            ),
            None => (None, None),
        };
        previous = Some((at, rx, tx));
        let load1 = 4.0 * cpu / 100.0 * (0.8 + 0.4 * noise());
        samples.push(Sample {
            at,
            cpu: Some(cpu),
            mem: Some(40.0 + 20.0 * (i as f64 / count as f64) + 5.0 * wave + noise()),
            disk: Some(71.0 - 6.0 * (i as f64 / count as f64)),
            net_rx,
            net_tx,
            load1: Some(load1),
            load5: Some(load1 * 0.9 + 0.1),
            load15: Some(load1 * 0.8 + 0.2),
            cores: Some(4),
        });
    }
    samples
}
