-- History for charts: rollups of the raw reports into 10-minute (width 600)
-- and 1-hour (width 3600) buckets per server, the progress of the job that
-- maintains them, and an index for pruning old reports by age.
-- A figure's avg and max are NULL when no report of the bucket had it
-- (load on Windows; network before the second report or after a counter
-- reset); net_samples and load_samples count the reports that had it.

CREATE TABLE history_rollups (
    server_id    BIGINT NOT NULL,
    -- Bucket width in seconds: 600 or 3600.
    width        BIGINT NOT NULL,
    -- Start of the bucket, unix seconds, a multiple of width.
    bucket_start BIGINT NOT NULL,
    -- Reports in the bucket (each has cpu, mem and disk).
    samples      BIGINT NOT NULL,
    -- Logical cores of the bucket's last report.
    cores        BIGINT NOT NULL,
    cpu_avg      DOUBLE NOT NULL,
    cpu_max      DOUBLE NOT NULL,
    mem_avg      DOUBLE NOT NULL,
    mem_max      DOUBLE NOT NULL,
    disk_avg     DOUBLE NOT NULL,
    disk_max     DOUBLE NOT NULL,
    net_samples  BIGINT NOT NULL,
    rx_avg       DOUBLE NULL,
    rx_max       DOUBLE NULL,
    tx_avg       DOUBLE NULL,
    tx_max       DOUBLE NULL,
    load_samples BIGINT NOT NULL,
    load1_avg    DOUBLE NULL,
    load1_max    DOUBLE NULL,
    load5_avg    DOUBLE NULL,
    load5_max    DOUBLE NULL,
    load15_avg   DOUBLE NULL,
    load15_max   DOUBLE NULL,
    PRIMARY KEY (server_id, width, bucket_start),
    KEY history_rollups_age (width, bucket_start)
) ENGINE = InnoDB;

-- How far the rollup job has read `reports`, by report id, per width.
CREATE TABLE history_progress (
    width     BIGINT NOT NULL PRIMARY KEY,
    report_id BIGINT NOT NULL
) ENGINE = InnoDB;

INSERT INTO history_progress (width, report_id) VALUES (600, 0), (3600, 0);

-- Online on InnoDB: ingest goes on while an existing table is indexed.
CREATE INDEX reports_collected_at ON reports (collected_at);
