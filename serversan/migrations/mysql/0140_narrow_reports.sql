-- Smaller reports (measured in BENCHMARKS.md "Storage size"):
-- - `reports_collected_at` goes: retention finds old reports through the
--   primary key (ids follow arrival; see src/history/retention.rs), and
--   nothing else reads by `collected_at` alone. About 47 bytes a report.
-- - `cpu_cores` and `process_count` hold a u32 in the report, which
--   INT UNSIGNED holds exactly: 8 bytes a report, no value can be lost.
-- - On MariaDB only (the executable comment is a comment to anything
--   else), page compression: InnoDB compresses each page with zlib when it
--   writes it to disk and punches the freed blocks out of the file (needs a
--   file system with hole punching: ext4, XFS, btrfs). Halves the file for
--   about 7% more mariadbd CPU per report. The saving shows in the file's
--   allocated size (information_schema.INNODB_SYS_TABLESPACES
--   ALLOCATED_SIZE, `du`), not in data_length. `ALTER TABLE reports
--   PAGE_COMPRESSED = 0` undoes it.
-- Rebuilds the table (copies every row): on a large one this takes a while
-- and needs room for a second copy.
ALTER TABLE reports
    DROP INDEX reports_collected_at,
    MODIFY cpu_cores INT UNSIGNED NOT NULL,
    MODIFY process_count INT UNSIGNED NOT NULL
    /*M!100104 , PAGE_COMPRESSED = 1 */;
