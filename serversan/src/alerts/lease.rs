//! Holding a database lease for as long as this process is alive.
//!
//! Work that must happen once across all instances (the alert scheduler,
//! the outbox sender) runs only while [`LeaseHandle::is_held`] says so. A
//! background task renews the row every third of the lease time through
//! [`Storage::try_lease`] (a compare-and-set `UPDATE … WHERE holder = ? OR
//! expires_at < ?`). The holder trusts itself for two thirds of the lease
//! time after each renewal, so it stops working before another instance
//! can take over; the others try every sixth of the lease time, so a dead
//! holder's lease is taken within the lease time of its last renewal (plus
//! up to a second: the table stores whole seconds).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::storage::{Storage, unix_now};

/// A lease this process competes for.
#[derive(Clone)]
pub struct LeaseHandle {
    inner: Arc<Shared>,
}

struct Shared {
    name: String,
    holder: String,
    /// Until when this process may act as the holder.
    valid_until: Mutex<Option<Instant>>,
    acquired: Notify,
}

impl LeaseHandle {
    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This process's identity in the `leases` table.
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// Whether this process holds the lease right now.
    pub fn is_held(&self) -> bool {
        let until = *self
            .inner
            .valid_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    /// Waits until this process holds the lease.
    pub async fn acquired(&self) {
        loop {
            let notified = self.inner.acquired.notified();
            if self.is_held() {
                return;
            }
            notified.await;
        }
    }

    fn set(&self, until: Option<Instant>) {
        *self
            .inner
            .valid_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = until;
        if until.is_some() {
            self.inner.acquired.notify_waiters();
        }
    }
}

/// Competes for the lease `name` as `holder` until `shutdown` is
/// cancelled, then releases it if held. The lease time is rounded up to whole seconds (the table
/// stores unix seconds) and is at least one second.
pub fn hold(
    storage: Storage,
    name: &str,
    holder: String,
    lease_time: Duration,
    shutdown: CancellationToken,
) -> (LeaseHandle, JoinHandle<()>) {
    let handle = LeaseHandle {
        inner: Arc::new(Shared {
            name: name.to_owned(),
            holder,
            valid_until: Mutex::new(None),
            acquired: Notify::new(),
        }),
    };
    let ttl = Duration::from_secs(lease_time.as_secs_f64().ceil().max(1.0) as u64);
    let task = tokio::spawn(renew(storage, handle.clone(), ttl, shutdown));
    (handle, task)
}

async fn renew(storage: Storage, lease: LeaseHandle, ttl: Duration, shutdown: CancellationToken) {
    let every = ttl / 3;
    loop {
        let started = Instant::now();
        match storage
            .try_lease(lease.name(), lease.holder(), unix_now(), ttl)
            .await
        {
            Ok(true) => {
                if !lease.is_held() {
                    tracing::info!(lease = lease.name(), "lease taken");
                }
                lease.set(Some(started + every * 2));
            }
            Ok(false) => {
                if lease.is_held() {
                    tracing::warn!(lease = lease.name(), "lease lost to another instance");
                }
                lease.set(None);
            }
            // Keep the current validity: it runs out on its own if the
            // database stays away.
            Err(e) => tracing::warn!(lease = lease.name(), "cannot renew the lease: {e}"),
        }
        let next = if lease.is_held() { every } else { every / 2 };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(started + next) => {}
        }
    }
    let was_held = lease.is_held();
    lease.set(None);
    if was_held && let Err(e) = storage.release_lease(lease.name(), lease.holder()).await {
        tracing::warn!(lease = lease.name(), "cannot release the lease: {e}");
    }
}
