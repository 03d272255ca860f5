-- Smaller reports (measured in BENCHMARKS.md "Storage size"):
-- - `reports_collected_at` goes: retention finds old reports through the
--   primary key (ids follow arrival; see src/history/retention.rs), and
--   nothing else reads by `collected_at` alone.
-- SQLite stores integers in as few bytes as they need, so no column type
-- changes and nothing is rewritten. The index's pages go to the free list
-- and are reused by new rows (the file shrinks only with VACUUM).
DROP INDEX reports_collected_at;
