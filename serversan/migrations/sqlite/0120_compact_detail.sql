-- Compact details: `detail` now holds bytes (a format byte, then what the
-- columns do not hold of the report, zstd-compressed; see
-- src/storage/detail.rs). Nothing to change here: the column is declared
-- TEXT, and SQLite stores a BLOB bound to a TEXT-affinity column as a BLOB,
-- unconverted (affinity converts only numbers to text), so new rows hold
-- their bytes exactly and rows written before keep their JSON text, which
-- the server still reads (it starts with '{'). Changing the declared type
-- would copy the whole table for no gain. This file exists so both
-- backends carry the same migration versions.
SELECT 1;
