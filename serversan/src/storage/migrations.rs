//! Schema migrations, one folder per backend (`migrations/sqlite`,
//! `migrations/mysql`), embedded in the binary so a deployed server needs no
//! files beside it. Both folders carry the same versions; a test checks that
//! every file is listed here and that the two lists match.
//!
//! On MySQL, sqlx's migrator serializes concurrent migrations with
//! `GET_LOCK`, which is per node on Galera: start one instance first when
//! upgrading a cluster.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(version, description, SQL)` of each migration.
type Source = (i64, &'static str, &'static str);

const SQLITE: &[Source] = &[
    (
        1,
        "core",
        include_str!("../../migrations/sqlite/0001_core.sql"),
    ),
    (
        60,
        "history",
        include_str!("../../migrations/sqlite/0060_history.sql"),
    ),
    (
        100,
        "alerts",
        include_str!("../../migrations/sqlite/0100_alerts.sql"),
    ),
    (
        120,
        "compact_detail",
        include_str!("../../migrations/sqlite/0120_compact_detail.sql"),
    ),
    (
        140,
        "narrow_reports",
        include_str!("../../migrations/sqlite/0140_narrow_reports.sql"),
    ),
];

const MYSQL: &[Source] = &[
    (
        1,
        "core",
        include_str!("../../migrations/mysql/0001_core.sql"),
    ),
    (
        60,
        "history",
        include_str!("../../migrations/mysql/0060_history.sql"),
    ),
    (
        100,
        "alerts",
        include_str!("../../migrations/mysql/0100_alerts.sql"),
    ),
    (
        120,
        "compact_detail",
        include_str!("../../migrations/mysql/0120_compact_detail.sql"),
    ),
    (
        140,
        "narrow_reports",
        include_str!("../../migrations/mysql/0140_narrow_reports.sql"),
    ),
];

fn migrator(sources: &[Source]) -> Migrator {
    Migrator::with_migrations(
        sources
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

pub(crate) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

pub(crate) fn mysql() -> Migrator {
    migrator(MYSQL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(backend: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_file_is_embedded_and_backends_match() {
        for (backend, list) in [("sqlite", SQLITE), ("mysql", MYSQL)] {
            let names = files(backend);
            assert_eq!(names.len(), list.len(), "{backend}: {names:?}");
            for (name, (version, description, _)) in names.iter().zip(list) {
                assert_eq!(name, &format!("{version:04}_{description}.sql"));
            }
        }
        let versions = |l: &[Source]| l.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(MYSQL));
    }
}
