//! Where the lake's tables are, and how a name in a query becomes a table
//! at a version.
//!
//! Tables live one folder each under the lake root; a stream may keep its
//! table under a lake of its own, so the catalog also holds per-table
//! locations. Nothing is opened until a query names a table: a lake with
//! hundreds of tables costs nothing to start.
//!
//! A name may carry a version or a time after `@` — `"users@12"`,
//! `"users@2026-11-21T10:00:00Z"` — read as of that commit (time travel).
//! In SQL such a name is a quoted identifier, because `@` is not an
//! identifier character.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::kernel::Add;

use super::error::SqlError;
use crate::LakeError;
use crate::table::Location;

/// Which commit of a table a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AsOf {
    /// The latest commit.
    Latest,
    /// A commit by version.
    Version(u64),
    /// The latest commit at or before a time.
    Time(DateTime<Utc>),
    /// A generation of a stream table (`crate::generation`): the live table
    /// while it is current, the live table as it last was while current,
    /// or its own table when it was never swapped in.
    Generation(u32),
    /// The newest generation of a stream table (`users@newest`): the one
    /// the latest replay writes, or the current one when none was made
    /// since.
    NewestGeneration,
}

/// A table name as a query writes it: `users`, `users@12`,
/// `users@2026-11-21T10:00:00Z`, `users@v2` (a generation), `users@newest`
/// (the newest generation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRef {
    /// The table's name (its folder under the lake).
    pub name: String,
    /// Which commit.
    pub as_of: AsOf,
}

impl TableRef {
    /// Parses a name with an optional `@version`, `@time` or `@vN`.
    pub fn parse(text: &str) -> Result<TableRef, String> {
        let (name, at) = match text.split_once('@') {
            Some((n, a)) => (n, Some(a)),
            None => (text, None),
        };
        if !crate::config::valid_name(name) {
            return Err(format!(
                "{text:?} is not a table name: use letters, digits, '_' or '-', then optionally @version or @time"
            ));
        }
        let as_of = match at {
            None => AsOf::Latest,
            Some(a) => {
                if let Ok(v) = a.parse::<u64>() {
                    AsOf::Version(v)
                } else if let Some(n) = crate::generation::parse_generation(a) {
                    AsOf::Generation(n)
                } else if a == "newest" {
                    AsOf::NewestGeneration
                } else if let Ok(t) = DateTime::parse_from_rfc3339(a) {
                    AsOf::Time(t.with_timezone(&Utc))
                } else {
                    return Err(format!(
                        "{text:?}: after `@` comes a version number (users@12), an RFC 3339 time (users@2026-11-21T10:00:00Z), a generation (users@v2) or the newest generation (users@newest), not {a:?}"
                    ));
                }
            }
        };
        Ok(TableRef {
            name: name.to_string(),
            as_of,
        })
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_of {
            AsOf::Latest => write!(f, "{}", self.name),
            AsOf::Version(v) => write!(f, "{}@{v}", self.name),
            AsOf::Generation(n) => write!(f, "{}@v{n}", self.name),
            AsOf::NewestGeneration => write!(f, "{}@newest", self.name),
            AsOf::Time(t) => write!(
                f,
                "{}@{}",
                self.name,
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        }
    }
}

/// A name a query may use, bound to a table other than the catalog's.
#[derive(Debug, Clone)]
pub enum Bound {
    /// A table as loaded (at its version), reading only these files.
    Files {
        /// The table, at the version to read.
        table: DeltaTable,
        /// The files to read (active in that version).
        files: Vec<Add>,
    },
    /// A table as loaded (at its version), all of it.
    Table(DeltaTable),
    /// An empty table of this schema.
    Empty(SchemaRef),
    /// Rows held in memory (a view's partial aggregates, kept between
    /// queries).
    Rows(Rows),
    /// The rows of another binding where `predicate` (SQL over its
    /// columns) holds.
    Where {
        /// The rows to filter.
        rows: Box<Bound>,
        /// The condition rows must meet.
        predicate: String,
    },
}

/// A query's rows, all of them, in memory.
#[derive(Debug, Clone)]
pub struct Rows {
    /// The columns.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl Rows {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory the rows hold.
    pub fn bytes(&self) -> usize {
        self.batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }
}

/// What a [`Layers`] may ask of the engine planning one of its names: the
/// catalog, and the rows of a query over bound tables (a view's partial
/// aggregates of the rows that arrived since it last looked).
#[async_trait::async_trait]
pub trait Run: Send + Sync {
    /// The catalog the engine reads.
    fn catalog(&self) -> &LakeCatalog;
    /// Runs `sql` with `bound` names, within the engine's limits.
    async fn rows(&self, sql: &str, bound: &BTreeMap<String, Bound>) -> Result<Rows, SqlError>;
}

/// Names under schemas other than the lake's own (`live.users_by_nation`),
/// answered by whoever declares them: each is SQL over bound tables, which
/// the engine plans as a view.
#[async_trait::async_trait]
pub trait Layers: Send + Sync + fmt::Debug {
    /// The schema names answered (`batch`, `speed`, `live`).
    fn schemas(&self) -> &'static [&'static str];
    /// The names declared, for listings and "did you mean".
    fn names(&self) -> Vec<String>;
    /// What `schema.name` is; `None` when nothing of that name is declared.
    async fn layer(
        &self,
        run: &dyn Run,
        schema: &str,
        name: &str,
    ) -> Result<Option<Layer>, SqlError>;
}

/// A table a [`Layers`] answers: SQL over tables bound for it.
#[derive(Debug)]
pub struct Layer {
    /// The query.
    pub sql: String,
    /// Names in it bound to tables other than the catalog's.
    pub bound: BTreeMap<String, Bound>,
    /// What the answer is made of, said for the reader of the answer.
    pub made_of: String,
    /// Tables the layer read that its SQL does not name (a view's source,
    /// summarised in kept partials), with the versions read.
    pub read: BTreeMap<String, u64>,
}

/// A table's columns as the query page lists them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableColumns {
    /// Table name.
    pub name: String,
    /// Latest version.
    pub version: u64,
    /// Column names and Arrow types, in order.
    pub columns: Vec<(String, String)>,
    /// The columns the table is partitioned by.
    pub partition_columns: Vec<String>,
}

/// The lake's tables: a root where tables are folders, plus tables kept
/// elsewhere (a stream with its own `lake`).
#[derive(Debug, Clone)]
pub struct LakeCatalog {
    root: Location,
    elsewhere: BTreeMap<String, Location>,
    layers: Option<Arc<dyn Layers>>,
    kept: Kept,
}

/// Tables opened at their latest commit, kept (shared by the catalog's
/// clones) so that the next open reads only the commits made since: a
/// server answering many queries would otherwise replay each table's log
/// from its last checkpoint every time. Tables are never deleted and made
/// again under the same name (a Kappa swap commits to the same log), so a
/// kept table only ever moves forward.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<HashMap<String, DeltaTable>>>);

impl fmt::Debug for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_tuple("Kept").field(&names).finish()
    }
}

impl Kept {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DeltaTable>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept table brought up to its latest commit, if one is kept and
    /// its log still reads.
    async fn latest(&self, name: &str) -> Option<DeltaTable> {
        let mut t = self.lock().get(name).cloned()?;
        match t.update_incremental(None).await {
            Ok(()) => {
                self.keep(name, &t);
                Some(t)
            }
            Err(_) => {
                self.lock().remove(name);
                None
            }
        }
    }

    /// Keeps a table at its loaded version unless a later one is kept.
    fn keep(&self, name: &str, t: &DeltaTable) {
        let mut kept = self.lock();
        let newer = kept
            .get(name)
            .is_none_or(|k| k.version().unwrap_or(0) < t.version().unwrap_or(0));
        if newer {
            kept.insert(name.to_string(), t.clone());
        }
    }
}

impl LakeCatalog {
    /// A catalog of the tables under `root`.
    pub fn new(root: Location) -> LakeCatalog {
        LakeCatalog {
            root,
            elsewhere: BTreeMap::new(),
            layers: None,
            kept: Kept::default(),
        }
    }

    /// Adds names under other schemas (a project's views).
    pub fn with_layers(mut self, layers: Arc<dyn Layers>) -> LakeCatalog {
        self.layers = Some(layers);
        self
    }

    /// The names under other schemas, when any are declared.
    pub fn layers(&self) -> Option<&Arc<dyn Layers>> {
        self.layers.as_ref()
    }

    /// Adds a table that lives under another lake root.
    pub fn with_table(mut self, name: &str, location: Location) -> LakeCatalog {
        if location.root() != self.root.root() {
            self.elsewhere.insert(name.to_string(), location);
        }
        self
    }

    /// The lake root.
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// Where a table lives.
    pub fn location(&self, table: &str) -> &Location {
        self.elsewhere.get(table).unwrap_or(&self.root)
    }

    /// Opens a table at its latest commit; `None` when there is no such
    /// table.
    pub async fn latest(&self, name: &str) -> Result<Option<DeltaTable>, LakeError> {
        if let Some(t) = self.kept.latest(name).await {
            return Ok(Some(t));
        }
        let t = self.location(name).open(name).await?;
        if let Some(t) = &t {
            self.kept.keep(name, t);
        }
        Ok(t)
    }

    /// Opens a table as of a commit; `None` when there is no such table.
    pub async fn open(&self, r: &TableRef) -> Result<Option<DeltaTable>, LakeError> {
        let location = self.location(&r.name);
        if r.as_of == AsOf::Latest {
            return self.latest(&r.name).await;
        }
        // Checks existence the cheap way first.
        if !location.open_log_exists(&r.name).await? {
            return Ok(None);
        }
        match r.as_of {
            AsOf::Generation(n) => return self.generation(&r.name, Some(n)).await.map(Some),
            AsOf::NewestGeneration => return self.generation(&r.name, None).await.map(Some),
            _ => {}
        }
        let mut t = location.builder(&r.name)?.build()?;
        let loaded = match r.as_of {
            AsOf::Version(v) => t
                .load_version(v)
                .await
                .map_err(|e| (format!("no version {v}"), e)),
            AsOf::Time(at) => t
                .load_with_datetime(at)
                .await
                .map_err(|e| (format!("no version at or before {}", at.to_rfc3339()), e)),
            AsOf::Latest | AsOf::Generation(_) | AsOf::NewestGeneration => {
                unreachable!("opened above")
            }
        };
        loaded.map_err(|(what, e)| {
            LakeError::Config(format!(
                "table {}: {what} ({})",
                r.name,
                first_line(&e.to_string())
            ))
        })?;
        Ok(Some(t))
    }

    /// Generation `n` of a table (`None`: the newest): the live table while
    /// it is current, the live table at its last version while current,
    /// else its own table.
    async fn generation(&self, name: &str, n: Option<u32>) -> Result<DeltaTable, LakeError> {
        use crate::generation::{Ledger, Source, storage_name};
        let location = self.location(name);
        let live = self
            .latest(name)
            .await?
            .ok_or_else(|| LakeError::Config(format!("no table {name}")))?;
        let ledger = Ledger::of(name, &live).await?;
        let n = match n {
            Some(n) => n,
            None => crate::generation::newest(location, name, &ledger).await?,
        };
        let own = match ledger.source(n) {
            Source::Live => return Ok(live),
            Source::LiveAt(v) => return location.open_at(name, v).await,
            Source::Own if n >= 2 => location.open(&storage_name(name, n)).await?,
            Source::Own => None,
        };
        own.ok_or_else(|| {
            LakeError::Config(format!(
                "table {name} has no generation {n} (it is at generation {}; `tributary lake generations {name}` lists them)",
                ledger.current
            ))
        })
    }

    /// A table's latest version and its columns (name, Arrow type), or
    /// `None` when there is no such table.
    pub async fn columns(&self, name: &str) -> Result<Option<TableColumns>, LakeError> {
        let Some(t) = self.latest(name).await? else {
            return Ok(None);
        };
        let snap = t.snapshot()?;
        let schema = snap.snapshot().arrow_schema();
        Ok(Some(TableColumns {
            name: name.to_string(),
            version: t.version().unwrap_or(0),
            columns: schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().to_string()))
                .collect(),
            partition_columns: snap.metadata().partition_columns().to_vec(),
        }))
    }

    /// The names of every Delta table in the lake, sorted: the folders
    /// under the root that hold a `_delta_log`, and the tables kept
    /// elsewhere that exist.
    pub async fn list(&self) -> Result<Vec<String>, LakeError> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for candidate in self.root.children().await? {
            if crate::config::valid_name(&candidate)
                && !self.elsewhere.contains_key(&candidate)
                && self.root.open_log_exists(&candidate).await?
            {
                names.insert(candidate);
            }
        }
        for (name, location) in &self.elsewhere {
            if location.open_log_exists(name).await? {
                names.insert(name.clone());
            }
        }
        Ok(names.into_iter().collect())
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_and_times_parse_and_print_back() {
        let r = TableRef::parse("users").unwrap();
        assert_eq!(r.as_of, AsOf::Latest);
        assert_eq!(r.to_string(), "users");
        let r = TableRef::parse("users@12").unwrap();
        assert_eq!(r.as_of, AsOf::Version(12));
        assert_eq!(r.to_string(), "users@12");
        let r = TableRef::parse("users@2026-11-21T10:00:00+01:00").unwrap();
        assert_eq!(r.to_string(), "users@2026-11-21T09:00:00Z");
        let r = TableRef::parse("users@v2").unwrap();
        assert_eq!(r.as_of, AsOf::Generation(2));
        assert_eq!(r.to_string(), "users@v2");
        let r = TableRef::parse("users@newest").unwrap();
        assert_eq!(r.as_of, AsOf::NewestGeneration);
        assert_eq!(r.to_string(), "users@newest");
    }

    #[test]
    fn a_bad_suffix_or_name_says_what_is_expected() {
        let e = TableRef::parse("users@yesterday").unwrap_err();
        assert!(
            e.contains("version number") && e.contains("\"yesterday\""),
            "{e}"
        );
        let e = TableRef::parse("a/b").unwrap_err();
        assert!(e.contains("not a table name"), "{e}");
    }
}
