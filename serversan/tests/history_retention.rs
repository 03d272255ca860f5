//! Retention on SQLite and on a real MariaDB: only history older than its
//! setting goes, in whole hours, never raw reports that are not rolled up
//! yet; `0` keeps everything; deleting a server deletes its history.

mod common;
mod history_support;

use std::time::Duration;

use common::Backend;
use history_support::*;
use serversan::charts::Period;
use serversan::history::{self, HistorySettings, Resolution};
use serversan_protocol::Report;

on_both_backends!(
    retention_removes_only_what_is_old,
    zero_keeps_everything,
    reports_wait_for_their_rollups,
    spooled_reports_go_once_they_arrived_before_the_cutoff,
    deleting_a_server_deletes_its_history,
    pruning_keeps_the_keyframes_of_what_remains,
);

const DAY: i64 = 86_400;

/// Five days of one report every 20 minutes.
async fn five_days(f: &Fixture) -> Vec<Report> {
    store_series(
        &f.storage,
        f.server.id,
        &mut Host::default(),
        times(T0 + 17, 1200, 5 * 72),
    )
    .await
}

async fn collected_times(f: &Fixture, server_id: i64) -> Vec<i64> {
    let mut t: Vec<i64> = f
        .storage
        .recent_reports(server_id, 100_000)
        .await
        .expect("reports")
        .iter()
        .map(|r| r.collected_at)
        .collect();
    t.sort();
    t
}

async fn bucket_starts(f: &Fixture, server_id: i64, resolution: Resolution) -> Vec<i64> {
    stored_rollups(&f.storage, server_id, resolution)
        .await
        .iter()
        .map(|b| b.start)
        .collect()
}

/// Runs the job until it has nothing left to do.
async fn maintain_fully(f: &Fixture, s: &HistorySettings, now: i64) {
    for _ in 0..50 {
        if !history::maintain(&f.storage, s, now)
            .await
            .expect("maintain")
            .more()
        {
            return;
        }
    }
    panic!("the job never caught up");
}

async fn retention_removes_only_what_is_old(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let reports = five_days(&f).await;
    let s = HistorySettings {
        raw_retention: Duration::from_secs(2 * DAY as u64),
        rollup_retention: Duration::from_secs(3 * DAY as u64),
        // Small batches: pruning takes several statements.
        batch: 25,
        ..settings()
    };
    // Half past noon on day 5: raw reports from before noon on day 3 go,
    // rollups of buckets from before noon on day 2.
    let now = T0 + 4 * DAY + 12 * 3600 + 1800;
    let all: Vec<i64> = reports.iter().map(|r| r.collected_at).collect();
    maintain_fully(&f, &s, now).await;

    let raw_cutoff = T0 + 2 * DAY + 12 * 3600;
    let kept: Vec<i64> = all.iter().copied().filter(|t| *t >= raw_cutoff).collect();
    assert!(kept.len() < all.len() && !kept.is_empty());
    assert_eq!(collected_times(&f, f.server.id).await, kept);

    let rollup_cutoff = T0 + DAY + 12 * 3600;
    for resolution in Resolution::ALL {
        let width = resolution.seconds();
        let mut want: Vec<i64> = all
            .iter()
            .map(|t| t.div_euclid(width) * width)
            // Buckets from before the cutoff are gone; those not ended
            // yet are not rolled up yet.
            .filter(|b| *b >= rollup_cutoff && *b + width < now)
            .collect();
        want.dedup();
        assert_eq!(
            bucket_starts(&f, f.server.id, resolution).await,
            want,
            "{resolution:?}"
        );
    }

    // The month chart still shows the pruned days, from the rollups.
    let chart = history::chart_history(&f.storage, f.server.id, Period::D30, now)
        .await
        .expect("chart");
    assert_eq!(chart.cpu.first().map(|p| p.at), Some(rollup_cutoff));
    assert!(chart.cpu.iter().all(|p| p.avg.is_some()));
}

async fn zero_keeps_everything(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let reports = five_days(&f).await;
    let s = HistorySettings {
        raw_retention: Duration::ZERO,
        rollup_retention: Duration::ZERO,
        ..settings()
    };
    let now = T0 + 400 * DAY;
    maintain_fully(&f, &s, now).await;
    assert_eq!(collected_times(&f, f.server.id).await.len(), reports.len());
    assert_eq!(
        bucket_starts(&f, f.server.id, Resolution::Hour).await.len(),
        5 * 24
    );
    assert_eq!(
        bucket_starts(&f, f.server.id, Resolution::TenMinutes)
            .await
            .len(),
        reports.len()
    );
}

async fn reports_wait_for_their_rollups(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let reports = five_days(&f).await;
    let s = HistorySettings {
        raw_retention: Duration::from_secs(DAY as u64),
        ..settings()
    };
    let now = T0 + 30 * DAY;
    // Pruning before the job has rolled anything up deletes nothing…
    let pass = history::prune(&f.storage, &s, now, 100)
        .await
        .expect("prune");
    assert_eq!(pass.reports, 0);
    assert_eq!(collected_times(&f, f.server.id).await.len(), reports.len());
    // …and once it has, the rollups hold what the reports said.
    maintain_fully(&f, &s, now).await;
    assert!(collected_times(&f, f.server.id).await.is_empty());
    let naive = naive_buckets(&expected(&reports), 3600);
    let stored = stored_rollups(&f.storage, f.server.id, Resolution::Hour).await;
    assert_rollups("hourly", &stored, &naive);
}

/// Old reports are found by id (ids follow arrival), so a report that
/// arrived long after it was collected goes once its arrival, too, is
/// older than the cutoff; the reports around it go on time.
async fn spooled_reports_go_once_they_arrived_before_the_cutoff(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let spooling = add_server(&f.storage, OWNER + 1, "spooling").await;
    // Five days of reports of the first server (received 2 s after they
    // were collected) and, in arrival order among them, one collected on
    // day 2 that arrived on day 4.
    let mut host = Host::default();
    let mut reports = store_series(
        &f.storage,
        f.server.id,
        &mut host,
        times(T0 + 17, 1200, 4 * 72),
    )
    .await;
    let spooled = Host::default().report(T0 + DAY + 17);
    store(&f.storage, spooling.id, &spooled, 3 * DAY).await;
    reports.extend(
        store_series(
            &f.storage,
            f.server.id,
            &mut host,
            times(T0 + 4 * DAY + 17, 1200, 72),
        )
        .await,
    );
    let s = HistorySettings {
        raw_retention: Duration::from_secs(2 * DAY as u64),
        batch: 25,
        ..settings()
    };
    // Cutoff at noon on day 3: the spooled report was collected before it
    // but arrived after it.
    let now = T0 + 4 * DAY + 12 * 3600 + 1800;
    maintain_fully(&f, &s, now).await;
    let raw_cutoff = T0 + 2 * DAY + 12 * 3600;
    let kept: Vec<i64> = reports
        .iter()
        .map(|r| r.collected_at)
        .filter(|t| *t >= raw_cutoff)
        .collect();
    assert_eq!(collected_times(&f, f.server.id).await, kept);
    assert_eq!(
        collected_times(&f, spooling.id).await,
        [spooled.collected_at]
    );
    // Two days on, its arrival is older than the cutoff too.
    maintain_fully(&f, &s, now + 2 * DAY).await;
    assert!(collected_times(&f, spooling.id).await.is_empty());
    // It was rolled up before it went.
    let hourly = stored_rollups(&f.storage, spooling.id, Resolution::Hour).await;
    assert_eq!(hourly.len(), 1);
}

async fn deleting_a_server_deletes_its_history(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let other = add_server(&f.storage, OWNER + 1, "keep").await;
    let mut host = Host::default();
    store_series(&f.storage, f.server.id, &mut host, times(T0 + 17, 600, 30)).await;
    store_series(
        &f.storage,
        other.id,
        &mut Host::default(),
        times(T0 + 29, 600, 30),
    )
    .await;
    maintain_fully(&f, &settings(), T0 + DAY).await;
    assert!(
        !bucket_starts(&f, f.server.id, Resolution::Hour)
            .await
            .is_empty()
    );

    assert!(
        f.storage
            .delete_server(f.server.id, OWNER)
            .await
            .expect("delete")
    );
    for resolution in Resolution::ALL {
        assert!(bucket_starts(&f, f.server.id, resolution).await.is_empty());
        assert_eq!(
            bucket_starts(&f, other.id, resolution).await.len(),
            if resolution == Resolution::Hour {
                5
            } else {
                30
            }
        );
    }
    assert_eq!(
        f.storage.count_reports(f.server.id).await.expect("count"),
        0
    );
    assert_eq!(f.storage.count_reports(other.id).await.expect("count"), 30);
    let chart = history::chart_history(&f.storage, f.server.id, Period::D7, T0 + DAY)
        .await
        .expect("chart");
    assert!(chart.cpu.is_empty());
    // The job running afterwards does not bring any of it back.
    maintain_fully(&f, &settings(), T0 + 2 * DAY).await;
    assert!(
        bucket_starts(&f, f.server.id, Resolution::TenMinutes)
            .await
            .is_empty()
    );
}

/// A report every 10 minutes: a keyframe serves the reports arriving in
/// the 45 minutes after it, so keyframes come every 50 minutes and drift
/// across hours; the one at 11:50 on day 2 has its deltas after the noon
/// cutoff. Pruning (in small statements, so keyframes and their deltas
/// fall into different ones) keeps exactly that keyframe of the older
/// rows, and every remaining row reads back as the report stored.
async fn pruning_keeps_the_keyframes_of_what_remains(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let reports = store_series(
        &f.storage,
        f.server.id,
        &mut Host::default(),
        times(T0 + 17, 600, 3 * 144),
    )
    .await;
    let s = HistorySettings {
        raw_retention: Duration::from_secs(DAY as u64),
        batch: 7,
        ..settings()
    };
    let now = T0 + 2 * DAY + 12 * 3600 + 1800;
    maintain_fully(&f, &s, now).await;

    let cutoff = T0 + DAY + 12 * 3600;
    let rows = f
        .storage
        .recent_reports(f.server.id, 100_000)
        .await
        .expect("reports");
    for row in &rows {
        let report = row.report().expect("every remaining row decodes");
        let sent = reports.iter().find(|r| r.collected_at == row.collected_at);
        assert_eq!(Some(&report), sent);
    }
    let older: Vec<(i64, u8)> = rows
        .iter()
        .filter(|r| r.collected_at < cutoff)
        .map(|r| (r.collected_at, r.detail[0]))
        .collect();
    assert_eq!(older, [(cutoff - 600 + 17, 1)], "only the keyframe stays");
    let newer = reports.iter().filter(|r| r.collected_at >= cutoff).count();
    assert_eq!(rows.len(), newer + 1);
    let deltas = rows.iter().filter(|r| r.detail[0] == 2).count();
    assert!(deltas > newer / 2, "{deltas} deltas of {newer}");
}
