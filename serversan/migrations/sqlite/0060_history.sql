-- History for charts: rollups of the raw reports into 10-minute (width 600)
-- and 1-hour (width 3600) buckets per server, the progress of the job that
-- maintains them, and an index for pruning old reports by age.
-- A figure's avg and max are NULL when no report of the bucket had it
-- (load on Windows; network before the second report or after a counter
-- reset); net_samples and load_samples count the reports that had it.

CREATE TABLE history_rollups (
    server_id    INTEGER NOT NULL,
    -- Bucket width in seconds: 600 or 3600.
    width        INTEGER NOT NULL,
    -- Start of the bucket, unix seconds, a multiple of width.
    bucket_start INTEGER NOT NULL,
    -- Reports in the bucket (each has cpu, mem and disk).
    samples      INTEGER NOT NULL,
    -- Logical cores of the bucket's last report.
    cores        INTEGER NOT NULL,
    cpu_avg      REAL    NOT NULL,
    cpu_max      REAL    NOT NULL,
    mem_avg      REAL    NOT NULL,
    mem_max      REAL    NOT NULL,
    disk_avg     REAL    NOT NULL,
    disk_max     REAL    NOT NULL,
    net_samples  INTEGER NOT NULL,
    rx_avg       REAL,
    rx_max       REAL,
    tx_avg       REAL,
    tx_max       REAL,
    load_samples INTEGER NOT NULL,
    load1_avg    REAL,
    load1_max    REAL,
    load5_avg    REAL,
    load5_max    REAL,
    load15_avg   REAL,
    load15_max   REAL,
    PRIMARY KEY (server_id, width, bucket_start)
);

CREATE INDEX history_rollups_age ON history_rollups (width, bucket_start);

-- How far the rollup job has read `reports`, by report id, per width.
CREATE TABLE history_progress (
    width     INTEGER PRIMARY KEY,
    report_id INTEGER NOT NULL
);

INSERT INTO history_progress (width, report_id) VALUES (600, 0), (3600, 0);

CREATE INDEX reports_collected_at ON reports (collected_at);
