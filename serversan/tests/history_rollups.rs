//! Rollups on SQLite and on a real MariaDB: they say exactly what the raw
//! reports say (recomputed here the naive way), buckets are rolled up only
//! once they ended, late reports make their bucket be recomputed, work goes
//! in small batches, and the scheduled job does it under its lease.

mod common;
mod history_support;

use std::time::Duration;

use common::Backend;
use history_support::*;
use serversan::history::{self, HISTORY_LEASE, HistorySettings, Resolution};
use serversan::storage::unix_now;
use tokio_util::sync::CancellationToken;

on_both_backends!(
    rollups_equal_a_recomputation_from_raw_reports,
    open_buckets_wait_and_late_reports_are_rolled_in,
    small_batches_get_through_a_backlog,
    two_passes_at_once_agree,
    the_scheduled_job_rolls_up_under_its_lease,
);

/// Everything stored for the fixture's server, both resolutions, checked
/// against the naive buckets of `reports`.
async fn assert_all_rollups(f: &Fixture, reports: &[serversan_protocol::Report]) {
    let expected = expected(reports);
    for resolution in Resolution::ALL {
        let stored = stored_rollups(&f.storage, f.server.id, resolution).await;
        let naive = naive_buckets(&expected, resolution.seconds());
        assert_rollups(&format!("{resolution:?}"), &stored, &naive);
    }
}

async fn rollups_equal_a_recomputation_from_raw_reports(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut host = Host::default();
    // Three hours of one report a minute with a reboot (counters back to
    // zero), a stretch without load averages, and a 40-minute outage.
    let mut reports =
        store_series(&f.storage, f.server.id, &mut host, times(T0 + 17, 60, 70)).await;
    host.reboot();
    host.load = false;
    reports.extend(
        store_series(
            &f.storage,
            f.server.id,
            &mut host,
            times(T0 + 70 * 60 + 17, 60, 30),
        )
        .await,
    );
    host.load = true;
    reports.extend(
        store_series(
            &f.storage,
            f.server.id,
            &mut host,
            times(T0 + 140 * 60 + 17, 60, 45),
        )
        .await,
    );
    let last = reports.last().expect("reports").collected_at;

    let done = history::maintain(&f.storage, &settings(), last + 3600 + 60)
        .await
        .expect("maintain");
    assert!(!done.more());
    assert_eq!(done.rollup.reports, 2 * reports.len() as u64);
    assert_all_rollups(&f, &reports).await;
    // The outage left no buckets: 40 minutes without reports.
    let ten = history::rollups(
        &f.storage,
        f.server.id,
        Resolution::TenMinutes,
        T0 + 6000,
        T0 + 8400,
    )
    .await
    .expect("rollups");
    assert!(ten.is_empty(), "{ten:?}");

    // Running again changes nothing.
    let again = history::maintain(&f.storage, &settings(), last + 7200)
        .await
        .expect("maintain");
    assert_eq!(again.rollup.buckets, 0);
    assert_all_rollups(&f, &reports).await;
}

async fn open_buckets_wait_and_late_reports_are_rolled_in(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let s = HistorySettings {
        settle: Duration::from_secs(60),
        ..settings()
    };
    let mut host = Host::default();
    // 00:00:17 … 00:09:17, then 00:10:17 … 00:12:17.
    let mut reports =
        store_series(&f.storage, f.server.id, &mut host, times(T0 + 17, 60, 13)).await;

    // At 00:10:30 the first bucket has ended but has not settled: nothing.
    let early = history::maintain(&f.storage, &s, T0 + 630)
        .await
        .expect("maintain");
    assert_eq!(early.rollup.buckets, 0);
    // At 00:11:00 it has; the second bucket is still open, the hour too.
    history::maintain(&f.storage, &s, T0 + 660)
        .await
        .expect("maintain");
    let ten = stored_rollups(&f.storage, f.server.id, Resolution::TenMinutes).await;
    assert_eq!(
        ten.iter().map(|b| (b.start, b.samples)).collect::<Vec<_>>(),
        [(T0, 10)]
    );
    let hour = stored_rollups(&f.storage, f.server.id, Resolution::Hour).await;
    assert!(hour.is_empty());

    // The agent was cut off: it spooled reports for 00:13 … 00:39 and
    // delivers them at 01:30, into buckets that have ended long ago.
    for at in times(T0 + 13 * 60 + 17, 60, 27) {
        let report = host.report(at);
        store(&f.storage, f.server.id, &report, T0 + 5400 - at).await;
        reports.push(report);
    }
    // Until they settle they do not make buckets be rolled up (the bucket
    // of the reports already there is, from everything stored by then).
    history::maintain(&f.storage, &s, T0 + 5401)
        .await
        .expect("maintain");
    let ten = stored_rollups(&f.storage, f.server.id, Resolution::TenMinutes).await;
    assert_eq!(
        ten.iter().map(|b| (b.start, b.samples)).collect::<Vec<_>>(),
        [(T0, 10), (T0 + 600, 10)]
    );
    // Then every bucket they fall in is computed, the hour included.
    history::maintain(&f.storage, &s, T0 + 5460)
        .await
        .expect("maintain");
    assert_all_rollups(&f, &reports).await;
}

async fn small_batches_get_through_a_backlog(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let other = add_server(&f.storage, OWNER + 1, "db1").await;
    let mut host = Host::default();
    let mut other_host = Host::default();
    let mut reports = Vec::new();
    // Two servers reporting every 5 minutes for 5 hours, interleaved.
    for at in times(T0 + 17, 300, 60) {
        let r = host.report(at);
        store(&f.storage, f.server.id, &r, 2).await;
        reports.push(r);
        store(&f.storage, other.id, &other_host.report(at + 5), 2).await;
    }
    let s = HistorySettings {
        batch: 7,
        ..settings()
    };
    let now = T0 + 8 * 3600;
    let mut passes = 0;
    loop {
        passes += 1;
        let done = history::maintain(&f.storage, &s, now)
            .await
            .expect("maintain");
        if !done.more() {
            break;
        }
        assert!(passes < 10, "the backlog never ends");
    }
    // 120 reports in batches of 7, 20 batches a pass: more than one pass.
    assert!(passes > 1, "{passes}");
    assert_all_rollups(&f, &reports).await;
}

async fn two_passes_at_once_agree(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut host = Host::default();
    let reports = store_series(&f.storage, f.server.id, &mut host, times(T0 + 17, 120, 90)).await;
    let s = HistorySettings {
        batch: 10,
        ..settings()
    };
    let now = T0 + 6 * 3600;
    // As after a lost lease: two instances doing the same work at once.
    let (a, b) = tokio::join!(
        history::maintain(&f.storage, &s, now),
        history::maintain(&f.storage, &s, now),
    );
    a.expect("first pass");
    b.expect("second pass");
    while history::maintain(&f.storage, &s, now)
        .await
        .expect("maintain")
        .more()
    {}
    assert_all_rollups(&f, &reports).await;
}

async fn the_scheduled_job_rolls_up_under_its_lease(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    // Recent reports: the job uses the real clock.
    let first = (unix_now() - 3 * 3600).div_euclid(3600) * 3600 + 17;
    let mut host = Host::default();
    let reports = store_series(&f.storage, f.server.id, &mut host, times(first, 300, 12)).await;
    // Another instance holds the lease: the job waits.
    assert!(
        f.storage
            .try_lease(
                HISTORY_LEASE,
                "other-instance",
                unix_now(),
                Duration::from_secs(2)
            )
            .await
            .expect("lease")
    );
    let s = HistorySettings {
        interval: Duration::from_millis(200),
        ..settings()
    };
    let shutdown = CancellationToken::new();
    let job = tokio::spawn(history::run(
        f.storage.clone(),
        s,
        "this-instance".into(),
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let hour = stored_rollups(&f.storage, f.server.id, Resolution::Hour).await;
    assert!(hour.is_empty(), "the job ran without the lease");
    // Once the other lease expires, this instance takes over and catches up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let hour = stored_rollups(&f.storage, f.server.id, Resolution::Hour).await;
        if !hour.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never rolled up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    job.await.expect("job stops");
    assert_all_rollups(&f, &reports).await;
    // It gave the lease back on the way out.
    assert!(
        f.storage
            .try_lease(
                HISTORY_LEASE,
                "third-instance",
                unix_now(),
                Duration::from_secs(60)
            )
            .await
            .expect("lease")
    );
}
