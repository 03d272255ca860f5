//! Per-client-IP limit on failed authentication.
//!
//! Generous on purpose: a misconfigured host retrying once a minute, or a
//! few of them behind one NAT, must never be locked out. It exists to stop
//! a flood of garbage from costing a database lookup each. It is never
//! keyed by key id: a key lockout would let anyone silence a victim's server
//! by sending bad signatures under its key id.
//!
//! Kept in this process's memory: it sheds load arriving at this instance,
//! which is what it protects. IPv6 clients are counted per /64, the block a
//! single host usually controls.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired ones are swept out.
const SWEEP_AT: usize = 50_000;

/// Fixed-window counter of failures per client.
#[derive(Debug)]
pub struct AuthFailureLimiter {
    limit: u32,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl AuthFailureLimiter {
    /// `limit` failures per `window`; a limit of 0 disables the limiter.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `ip` used up its failures for now.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match clients.get(&client_key(ip)) {
            Some(w) if now.duration_since(w.started) < self.window && w.failures >= self.limit => {
                let left = self.window.saturating_sub(now.duration_since(w.started));
                Err(left.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed authentication from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        if self.limit == 0 {
            return;
        }
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= SWEEP_AT {
            let window = self.window;
            clients.retain(|_, w| now.duration_since(w.started) < window);
        }
        let entry = clients.entry(client_key(ip)).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(entry.started) >= self.window {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }
}

/// IPv4 addresses as they are; IPv6 by their /64 network.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn limits_after_the_allowance_and_forgets_after_the_window() {
        let limiter = AuthFailureLimiter::new(3, Duration::from_millis(200));
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
            limiter.record_failure(a);
        }
        assert_eq!(limiter.check(a), Err(1));
        assert!(
            limiter.check(ip("192.0.2.2")).is_ok(),
            "other clients unaffected"
        );
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.check(a).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let limiter = AuthFailureLimiter::new(1, Duration::from_secs(60));
        limiter.record_failure(ip("2001:db8:1:2::1"));
        assert!(limiter.check(ip("2001:db8:1:2::ffff")).is_err());
        assert!(limiter.check(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn zero_disables() {
        let limiter = AuthFailureLimiter::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            limiter.record_failure(ip("192.0.2.1"));
        }
        assert!(limiter.check(ip("192.0.2.1")).is_ok());
    }
}
