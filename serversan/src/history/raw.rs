//! Reading the raw reports a chart or a rollup needs: only the figure
//! columns (never `detail`), through the `(server_id, collected_at)` index.

use crate::charts::{Sample, counter_rate};
use crate::storage::db::{Columns, with_pool};
use crate::storage::{Storage, StorageError};

/// The figures of one stored report, as columns give them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Figures {
    at: i64,
    cpu: f64,
    mem_used: i64,
    mem_total: i64,
    disk: f64,
    net_rx: i64,
    net_tx: i64,
    load: Option<(f64, f64, f64)>,
    cores: i64,
}

/// The report just before `from` (its counters give the first report's
/// network rate), then every report in `[from, to)`, by time: one range
/// scan of the `(server_id, collected_at)` index, from the previous
/// report's time, which its `MAX` finds at the index's edge. (A derived
/// `ORDER BY collected_at DESC LIMIT 1` instead made MariaDB walk back from
/// the server's newest report: 30 ms per bucket in a month-long backfill.)
/// Binds: server id, server id, from, from, to.
const RANGE_WITH_PREVIOUS: &str = "SELECT collected_at, cpu_percent, mem_used, mem_total, \
     disk_max_percent, net_rx, net_tx, load1, load5, load15, cpu_cores \
     FROM reports WHERE server_id = ? AND collected_at >= COALESCE( \
         (SELECT MAX(collected_at) FROM reports WHERE server_id = ? AND collected_at < ?), ?) \
     AND collected_at < ? ORDER BY collected_at";

fn figures_from_row(row: &impl Columns) -> Result<Figures, sqlx::Error> {
    let load = match (
        row.opt_float("load1")?,
        row.opt_float("load5")?,
        row.opt_float("load15")?,
    ) {
        (Some(one), Some(five), Some(fifteen)) => Some((one, five, fifteen)),
        _ => None,
    };
    Ok(Figures {
        at: row.int("collected_at")?,
        cpu: row.float("cpu_percent")?,
        mem_used: row.int("mem_used")?,
        mem_total: row.int("mem_total")?,
        disk: row.float("disk_max_percent")?,
        net_rx: row.int("net_rx")?,
        net_tx: row.int("net_tx")?,
        load,
        cores: row.uint32("cpu_cores")?,
    })
}

/// The samples of a server's reports collected in `[from, to)`, sorted by
/// time. Each report's network rate comes from its counters and those of
/// the report before it, even when that one is older than `from`.
pub async fn samples(
    storage: &Storage,
    server_id: i64,
    from: i64,
    to: i64,
) -> Result<Vec<Sample>, StorageError> {
    let rows: Vec<Figures> = with_pool!(storage.db(), pool => {
        let rows = sqlx::query(RANGE_WITH_PREVIOUS)
            .bind(server_id)
            .bind(server_id)
            .bind(from)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
        rows.iter().map(figures_from_row).collect::<Result<_, _>>()?
    });
    Ok(to_samples(&rows, from))
}

/// Samples of the rows at or after `from`; a row before `from` only lends
/// its counters.
fn to_samples(rows: &[Figures], from: i64) -> Vec<Sample> {
    let mut out = Vec::with_capacity(rows.len());
    let mut previous: Option<&Figures> = None;
    for f in rows {
        if f.at >= from {
            out.push(sample(f, previous));
        }
        previous = Some(f);
    }
    out
}

/// One report's sample. Memory is used over total (0 when the total is
/// unknown, as everywhere else); disk is the fullest filesystem.
fn sample(f: &Figures, previous: Option<&Figures>) -> Sample {
    let rate = |earlier: i64, later: i64| {
        let earlier = u64::try_from(earlier).ok()?;
        let later = u64::try_from(later).ok()?;
        counter_rate((previous?.at, earlier), (f.at, later))
    };
    // One counter going backwards means the interfaces were reset: neither
    // direction has an honest rate for that interval.
    let (net_rx, net_tx) =
        match previous.map(|p| (rate(p.net_rx, f.net_rx), rate(p.net_tx, f.net_tx))) {
            Some((Some(rx), Some(tx))) => (Some(rx), Some(tx)),
            _ => (None, None),
        };
    let mem = if f.mem_total > 0 {
        f.mem_used as f64 * 100.0 / f.mem_total as f64
    } else {
        0.0
    };
    Sample {
        at: f.at,
        cpu: Some(f.cpu),
        mem: Some(mem),
        disk: Some(f.disk),
        net_rx,
        net_tx,
        load1: f.load.map(|l| l.0),
        load5: f.load.map(|l| l.1),
        load15: f.load.map(|l| l.2),
        cores: u32::try_from(f.cores).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(at: i64, rx: i64, tx: i64) -> Figures {
        Figures {
            at,
            cpu: 5.0,
            mem_used: 1,
            mem_total: 4,
            disk: 70.0,
            net_rx: rx,
            net_tx: tx,
            load: None,
            cores: 2,
        }
    }

    #[test]
    fn rates_use_the_previous_report_and_skip_resets() {
        let rows = [
            figures(100, 1_000, 100),
            figures(160, 7_000, 3_100),
            figures(220, 500, 3_200),
            figures(280, 6_500, 3_800),
            figures(340, 12_500, 10),
        ];
        let s = to_samples(&rows, 150);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].at, 160);
        assert_eq!((s[0].net_rx, s[0].net_tx), (Some(100.0), Some(50.0)));
        assert_eq!(s[0].mem, Some(25.0));
        assert_eq!(s[0].load1, None);
        // A counter went backwards: the host rebooted; neither direction
        // has a rate for that interval.
        assert_eq!((s[1].net_rx, s[1].net_tx), (None, None));
        assert_eq!((s[2].net_rx, s[2].net_tx), (Some(100.0), Some(10.0)));
        assert_eq!((s[3].net_rx, s[3].net_tx), (None, None));
        // The first report of a server has no rate.
        assert_eq!(to_samples(&rows, 0)[0].net_rx, None);
    }
}
