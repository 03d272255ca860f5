-- Compact details: `detail` now holds bytes (a format byte, then what the
-- columns do not hold of the report, zstd-compressed; see
-- src/storage/detail.rs), so it becomes binary. Rows written before keep
-- their JSON text as the same bytes, which the server still reads (they
-- start with '{'). Rebuilds the table: on a large one this takes a while.
ALTER TABLE reports MODIFY detail MEDIUMBLOB NOT NULL;
