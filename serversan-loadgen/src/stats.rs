//! What a run achieved: throughput, latency percentiles, and every answer
//! that was not a 200, by status.

use std::collections::BTreeMap;
use std::time::Duration;

/// Outcomes collected by one worker, merged at the end.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of each answered request, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Answers by HTTP status (200 included); transport errors under 0.
    pub by_status: BTreeMap<u16, u64>,
    /// The first few transport errors, as text.
    pub errors: Vec<String>,
    /// The first answer of each refusal status, to show why.
    pub first_refusal: BTreeMap<u16, String>,
}

impl Tally {
    pub fn record(&mut self, status: u16, latency: Duration) {
        *self.by_status.entry(status).or_default() += 1;
        self.latencies_us
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn record_error(&mut self, error: String) {
        *self.by_status.entry(0).or_default() += 1;
        if self.errors.len() < 5 {
            self.errors.push(error);
        }
    }

    /// Keeps the first refusal body seen for `status`.
    pub fn note_refusal(&mut self, status: u16, body: &[u8]) {
        self.first_refusal
            .entry(status)
            .or_insert_with(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    }

    pub fn merge(&mut self, other: Tally) {
        for (status, body) in other.first_refusal {
            self.first_refusal.entry(status).or_insert(body);
        }
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.by_status {
            *self.by_status.entry(status).or_default() += n;
        }
        for e in other.errors {
            if self.errors.len() < 5 {
                self.errors.push(e);
            }
        }
    }

    pub fn count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Prints the summary; `what` names the accepted unit ("200", "stored").
    pub fn print(&mut self, what: &str, elapsed: Duration) {
        self.latencies_us.sort_unstable();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ok = self.count(200);
        println!(
            "requests: {} in {:.2} s; {what}: {ok} ({:.0} reports/s)",
            self.total(),
            secs,
            ok as f64 / secs
        );
        let ms = |q: f64| percentile(&self.latencies_us, q) as f64 / 1000.0;
        println!(
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            ms(0.50),
            ms(0.90),
            ms(0.99),
            ms(1.0)
        );
        let refused: Vec<String> = self
            .by_status
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(s, n)| match s {
                0 => format!("transport error x{n}"),
                s => format!("{s} x{n}"),
            })
            .collect();
        if refused.is_empty() {
            println!("not {what}: none");
        } else {
            println!("not {what}: {}", refused.join(", "));
        }
        for (status, body) in &self.first_refusal {
            println!("  first {status}: {body}");
        }
        for e in &self.errors {
            println!("  error: {e}");
        }
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank; 0 when empty.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.0), 7);
    }
}
