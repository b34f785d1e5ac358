//! Where tables live: a lake root (local folder, S3, in memory) with its
//! storage options, and the tables under it — open one, create one, list
//! them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::Schema;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore};
use futures::TryStreamExt;
use url::Url;

use crate::LakeError;

fn register_handlers() {
    crate::s3::register();
}

/// Where tables live: a root URL (`file:///…/`, `s3://bucket/prefix/`,
/// `memory:///`), storage options (S3 endpoint, credentials, …) and,
/// optionally, an object store rooted at "/" to use instead of building one
/// (in-memory lakes, and tests that wrap a real store to inject faults).
#[derive(Clone)]
pub struct Location {
    root: Url,
    options: HashMap<String, String>,
    store: Option<Arc<dyn ObjectStore>>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Options may hold credentials: show their keys only.
        f.debug_struct("Location")
            .field("root", &self.root.as_str())
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("custom_store", &self.store.is_some())
            .finish()
    }
}

/// The scheme of text such as `s3:/bucket` or `s3:bucket`: a URL scheme
/// followed by `:` but not `://`, which would otherwise become a folder
/// named `s3:`.
fn url_without_slashes(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once(':')?;
    let scheme_like = scheme.len() > 1
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (scheme_like && !rest.starts_with("//")).then_some(scheme)
}

/// Storage options must be ones the lake's object store reads: a misspelt
/// one would otherwise be ignored until the first write, or for ever.
fn check_options(root: &Url, options: &HashMap<String, String>) -> Result<(), LakeError> {
    for key in options.keys() {
        match root.scheme() {
            "s3" | "s3a" => crate::s3::check_option(key).map_err(LakeError::Config)?,
            _ => {
                return Err(LakeError::Config(format!(
                    "storage option {key:?}: a local lake ({}) takes no storage options",
                    root.as_str()
                )));
            }
        }
    }
    Ok(())
}

impl Location {
    /// Parses `s3://bucket/prefix`, `file:///abs/path`, `memory://` or a
    /// path (relative paths are taken from `base`).
    pub fn parse(
        text: &str,
        base: &Path,
        options: HashMap<String, String>,
    ) -> Result<Location, LakeError> {
        register_handlers();
        let text = text.trim();
        if text.is_empty() {
            return Err(LakeError::Config("lake location is empty".into()));
        }
        if let Some(scheme) = url_without_slashes(text) {
            return Err(LakeError::Config(format!(
                "lake location {text:?} is missing the `//` after `{scheme}:`: write {scheme}://bucket/prefix"
            )));
        }
        let mut root = if text.contains("://") {
            Url::parse(text)
                .map_err(|e| LakeError::Config(format!("lake location {text:?}: {e}")))?
        } else {
            let p = Path::new(text);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            let abs = if abs.is_absolute() {
                abs
            } else {
                std::env::current_dir()
                    .map_err(|e| {
                        LakeError::Config(format!(
                            "lake location {text:?}: no current directory: {e}"
                        ))
                    })?
                    .join(abs)
            };
            // Tidy `./` and `..` segments so URLs and messages read well.
            let abs = abs
                .components()
                .fold(std::path::PathBuf::new(), |mut acc, c| {
                    match c {
                        std::path::Component::CurDir => {}
                        std::path::Component::ParentDir => {
                            acc.pop();
                        }
                        other => acc.push(other),
                    }
                    acc
                });
            Url::from_directory_path(&abs).map_err(|()| {
                LakeError::Config(format!("lake location {text:?}: not a usable path"))
            })?
        };
        match root.scheme() {
            "file" | "s3" | "s3a" => {}
            "memory" => {
                return Ok(Location::with_store(
                    Url::parse("memory:///").expect("valid URL"),
                    Arc::new(object_store::memory::InMemory::new()),
                ));
            }
            other => {
                return Err(LakeError::Config(format!(
                    "lake location {text:?}: unsupported scheme {other:?} (use s3://, file:// or a path)"
                )));
            }
        }
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        check_options(&root, &options)?;
        Ok(Location {
            root,
            options,
            store: None,
        })
    }

    /// A location over a given object store, rooted at "/" of that store.
    pub fn with_store(root: Url, store: Arc<dyn ObjectStore>) -> Location {
        register_handlers();
        let mut root = root;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Location {
            root,
            options: HashMap::new(),
            store: Some(store),
        }
    }

    /// Adds storage options.
    pub fn with_options(mut self, options: HashMap<String, String>) -> Location {
        self.options.extend(options);
        self
    }

    /// The root URL.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The URL of a table.
    pub fn table_url(&self, table: &str) -> Url {
        self.root
            .join(&format!("{table}/"))
            .expect("table names are URL-safe")
    }

    /// A table handle on this location (not loaded).
    pub fn builder(&self, table: &str) -> Result<DeltaTableBuilder, LakeError> {
        let url = self.table_url(table);
        let mut b =
            DeltaTableBuilder::from_url(url.clone())?.with_storage_options(self.options.clone());
        if let Some(store) = &self.store {
            b = b.with_storage_backend(store.clone(), url);
        }
        Ok(b)
    }

    /// Opens an existing table at its latest version; `None` when there is
    /// no table there.
    pub async fn open(&self, table: &str) -> Result<Option<DeltaTable>, LakeError> {
        let url = self.table_url(table);
        if url.scheme() == "file"
            && let Ok(dir) = url.to_file_path()
            && !dir.join("_delta_log").is_dir()
        {
            return Ok(None);
        }
        let mut t = self.builder(table)?.build()?;
        match t.load().await {
            Ok(()) => Ok(Some(t)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens an existing table at its latest version; no table there is
    /// [`LakeError::NoTable`].
    pub async fn open_existing(&self, table: &str) -> Result<DeltaTable, LakeError> {
        self.open(table)
            .await?
            .ok_or_else(|| LakeError::NoTable(table.to_string(), self.table_url(table).to_string()))
    }

    /// Opens a table at a version.
    pub async fn open_at(&self, table: &str, version: u64) -> Result<DeltaTable, LakeError> {
        let mut t = self.builder(table)?.build()?;
        t.load_version(version).await?;
        Ok(t)
    }

    /// Creates a local table's folder (object stores need none).
    pub fn create_folder(&self, table: &str) -> Result<(), LakeError> {
        let url = self.table_url(table);
        if url.scheme() == "file"
            && let Ok(dir) = url.to_file_path()
        {
            std::fs::create_dir_all(&dir)
                .map_err(|e| LakeError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        Ok(())
    }

    /// Opens a table, creating it with this schema and partitioning if it
    /// does not exist. An existing table must have the same columns.
    pub async fn open_or_create(
        &self,
        table: &str,
        schema: &Schema,
        partition_by: &[String],
    ) -> Result<DeltaTable, LakeError> {
        self.open_or_create_with(table, schema, partition_by, &[])
            .await
    }

    /// [`open_or_create`](Self::open_or_create) that sets these table
    /// properties (Delta `configuration`) on a table it creates.
    pub async fn open_or_create_with(
        &self,
        table: &str,
        schema: &Schema,
        partition_by: &[String],
        properties: &[(String, String)],
    ) -> Result<DeltaTable, LakeError> {
        if let Some(t) = self.open(table).await? {
            check_compatible(table, &t, schema, partition_by)?;
            return Ok(t);
        }
        self.create_folder(table)?;
        let delta_schema: StructType = schema.try_into_kernel().map_err(|e| {
            LakeError::Config(format!(
                "table {table}: schema not representable in Delta: {e}"
            ))
        })?;
        let t = self.builder(table)?.build()?;
        let created = t
            .create()
            .with_table_name(table)
            .with_columns(delta_schema.fields().cloned())
            .with_partition_columns(partition_by.to_vec())
            .with_save_mode(deltalake::protocol::SaveMode::Ignore)
            .with_configuration_property(deltalake::TableProperty::CheckpointInterval, Some("50"))
            // Our own properties (`tributary.*`) are not Delta's.
            .with_raise_if_key_not_exists(properties.is_empty())
            .with_configuration(
                properties
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect::<Vec<_>>(),
            )
            .await;
        match created {
            Ok(t) => Ok(t),
            // Another writer created it first: use theirs.
            Err(e) => match self.open(table).await? {
                Some(t) => {
                    check_compatible(table, &t, schema, partition_by)?;
                    Ok(t)
                }
                None => Err(e.into()),
            },
        }
    }
}

/// Refuses a table whose columns or partitioning differ from a
/// declaration's.
pub(crate) fn check_compatible(
    name: &str,
    t: &DeltaTable,
    schema: &Schema,
    partition_by: &[String],
) -> Result<(), LakeError> {
    let snap = t.snapshot()?;
    let have: Vec<String> = snap
        .schema()
        .fields()
        .map(|f| f.name().to_string())
        .collect();
    let want: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let parts: Vec<String> = snap.metadata().partition_columns().to_vec();
    if have != want || parts != partition_by {
        return Err(LakeError::Config(format!(
            "table {name} exists with columns [{}] partitioned by [{}], but its declaration (stream or transform) gives [{}] partitioned by [{}]; \
             write to a new table, replay it into a new generation (`tributary lake replay {name} --config …`), \
             or, if a generation made with another declaration was swapped in (`tributary lake generations {name}`), declare that one",
            have.join(", "),
            parts.join(", "),
            want.join(", "),
            partition_by.join(", ")
        )));
    }
    Ok(())
}

// Listing.
impl Location {
    /// The names of the folders directly under the root.
    pub async fn children(&self) -> Result<Vec<String>, LakeError> {
        if let Some(dir) = self.local_dir() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => {
                    return Err(LakeError::Config(format!(
                        "cannot list {}: {e}",
                        dir.display()
                    )));
                }
            };
            let mut out = Vec::new();
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            return Ok(out);
        }
        let (store, prefix) = self.root_store()?;
        let listing = store.list_with_delimiter(prefix.as_ref()).await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Whether a table folder holds a Delta log.
    pub async fn open_log_exists(&self, table: &str) -> Result<bool, LakeError> {
        if let Some(dir) = self.local_dir() {
            return Ok(dir.join(table).join("_delta_log").is_dir());
        }
        let (store, prefix) = self.root_store()?;
        let log = match prefix {
            Some(p) => p.clone().join(table).join("_delta_log"),
            None => object_store::path::Path::from(table).join("_delta_log"),
        };
        let first = store.list(Some(&log)).try_next().await?;
        Ok(first.is_some())
    }

    /// The local folder of a `file://` lake.
    fn local_dir(&self) -> Option<std::path::PathBuf> {
        (self.root.scheme() == "file" && self.store.is_none())
            .then(|| self.root.to_file_path().ok())
            .flatten()
    }

    /// An object store and the root's path in it.
    fn root_store(
        &self,
    ) -> Result<(Arc<dyn ObjectStore>, Option<object_store::path::Path>), LakeError> {
        if let Some(store) = &self.store {
            let store = store.clone();
            let path = object_store::path::Path::from(self.root.path());
            let path = (!path.as_ref().is_empty()).then_some(path);
            return Ok((store, path));
        }
        let storage = DeltaTableBuilder::from_url(self.root.clone())?
            .with_storage_options(self.options.clone())
            .build_storage()?;
        Ok((storage.object_store(None), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let base = Path::new("/srv/project");
        let l = Location::parse("lake", base, HashMap::new()).unwrap();
        assert_eq!(
            l.table_url("users").as_str(),
            "file:///srv/project/lake/users/"
        );
        let l = Location::parse("s3://bucket/prefix", base, HashMap::new()).unwrap();
        assert_eq!(l.table_url("users").as_str(), "s3://bucket/prefix/users/");
        assert!(Location::parse("ftp://x", base, HashMap::new()).is_err());
        assert!(Location::parse(" ", base, HashMap::new()).is_err());
    }
}
