//! The schema migrations of each backend, compiled into the binary.
//!
//! Built here rather than with `sqlx::migrate!`: the macro needs sqlx's
//! proc-macro crate, which compiles the PostgreSQL and SQLite drivers (and
//! SQLite's C source) a second time for the build host. What sqlx records
//! per migration — version, description from the file name, SHA-384
//! checksum of the text — is the same, so databases migrated by either
//! build stay valid for the other.

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(file name, text)` of each migration, in version order.
type Files = &'static [(&'static str, &'static str)];

const POSTGRES: Files = &[
    (
        "0001_init.sql",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_backfills.sql",
        include_str!("../../../migrations/postgres/0002_backfills.sql"),
    ),
    (
        "0003_task_tries.sql",
        include_str!("../../../migrations/postgres/0003_task_tries.sql"),
    ),
    (
        "0004_claim_order.sql",
        include_str!("../../../migrations/postgres/0004_claim_order.sql"),
    ),
];

const SQLITE: Files = &[
    (
        "0001_init.sql",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        "0002_backfills.sql",
        include_str!("../../../migrations/sqlite/0002_backfills.sql"),
    ),
    (
        "0003_task_tries.sql",
        include_str!("../../../migrations/sqlite/0003_task_tries.sql"),
    ),
    (
        "0004_claim_order.sql",
        include_str!("../../../migrations/sqlite/0004_claim_order.sql"),
    ),
];

/// PostgreSQL's migrations.
pub(super) static PG_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| migrator(POSTGRES));
/// SQLite's migrations.
pub(super) static SQLITE_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| migrator(SQLITE));

/// A migrator over `files` named as sqlx names them: `<version>_<words>.sql`.
fn migrator(files: Files) -> Migrator {
    let migrations = files
        .iter()
        .map(|(name, sql)| {
            let (version, rest) = name.split_once('_').expect("named <version>_<words>.sql");
            Migration::new(
                version.parse().expect("numeric migration version"),
                Cow::Owned(rest.trim_end_matches(".sql").replace('_', " ")),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                sql.starts_with("-- no-transaction"),
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the migrations folders is compiled in, in order, so a
    /// new migration cannot be forgotten here.
    #[test]
    fn every_migration_file_is_listed() {
        for (dir, files) in [("postgres", POSTGRES), ("sqlite", SQLITE)] {
            let path = format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
            let mut on_disk: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            on_disk.sort();
            let listed: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
            assert_eq!(on_disk, listed, "{dir}");
        }
        let versions: Vec<i64> = PG_MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(versions, [1, 2, 3, 4]);
        assert_eq!(PG_MIGRATIONS.iter().next().unwrap().description, "init");
    }
}
