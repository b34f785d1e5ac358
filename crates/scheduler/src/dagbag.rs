//! The DAG bag: every DAG file of a folder, parsed; broken files become
//! import errors instead of stopping the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::dag::{Dag, Diagnostic, parse_dag};
use crate::model::{DagRecord, ImportError};
use crate::operator::Kinds;
use crate::store::Store;
use crate::{Error, Result};

/// The DAGs of a folder and the files that failed.
#[derive(Debug, Clone, Default)]
pub struct DagBag {
    /// Valid DAGs by id.
    pub dags: BTreeMap<String, Arc<Dag>>,
    /// Problems per file that failed (a file with any problem contributes no DAG).
    pub errors: BTreeMap<PathBuf, Vec<Diagnostic>>,
}

/// The `*.toml` files of a folder (not recursive), sorted; or the file itself.
pub fn dag_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.extension().is_some_and(|e| e == "toml") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

impl DagBag {
    /// Parses every DAG file under `paths` (files or folders).
    pub fn load(paths: &[PathBuf], kinds: &Kinds) -> Result<DagBag> {
        let mut bag = DagBag::default();
        let mut seen_in: BTreeMap<String, PathBuf> = BTreeMap::new();
        for root in paths {
            for file in dag_files(root)? {
                let source = match std::fs::read_to_string(&file) {
                    Ok(s) => s,
                    Err(e) => {
                        bag.errors.insert(
                            file.clone(),
                            vec![Diagnostic {
                                file: file.display().to_string(),
                                line: 1,
                                col: 1,
                                message: format!("cannot read the file: {e}"),
                            }],
                        );
                        continue;
                    }
                };
                match parse_dag(&file, &source, kinds) {
                    Ok(dag) => {
                        if let Some(first) = seen_in.get(&dag.dag_id) {
                            let (line, col) =
                                diag::line_col(&source, source.find("dag_id").unwrap_or(0));
                            bag.errors.insert(
                                file.clone(),
                                vec![Diagnostic {
                                    file: file.display().to_string(),
                                    line,
                                    col,
                                    message: format!(
                                        "dag_id {:?} is already defined in {}",
                                        dag.dag_id,
                                        first.display()
                                    ),
                                }],
                            );
                        } else {
                            seen_in.insert(dag.dag_id.clone(), file.clone());
                            bag.dags.insert(dag.dag_id.clone(), Arc::new(dag));
                        }
                    }
                    Err(diags) => {
                        bag.errors.insert(file.clone(), diags);
                    }
                }
            }
        }
        Ok(bag)
    }

    /// Every diagnostic of every file, in file order.
    pub fn diagnostics(&self) -> Vec<&Diagnostic> {
        self.errors.values().flatten().collect()
    }

    /// Records the bag in the store (DAGs, inactive ones, import errors).
    pub async fn sync(&self, store: &dyn Store) -> Result<()> {
        let records: Vec<DagRecord> = self.dags.values().map(|d| record_of(d)).collect();
        let errors: Vec<ImportError> = self
            .errors
            .iter()
            .map(|(f, diags)| ImportError {
                fileloc: f.display().to_string(),
                message: diags
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            })
            .collect();
        store.sync_dags(&records, &errors).await
    }

    /// The DAG with this id, or a clear error naming the import error if its
    /// file is broken.
    pub fn get(&self, dag_id: &str) -> Result<Arc<Dag>> {
        self.dags.get(dag_id).cloned().ok_or_else(|| {
            if self.errors.is_empty() {
                let ids: Vec<&str> = self.dags.keys().map(String::as_str).collect();
                let hint = match diag::suggest(dag_id, &ids) {
                    Some(s) => format!(" (did you mean {s:?}?)"),
                    None if ids.is_empty() => " (the DAGs folder has no DAGs)".to_string(),
                    None if ids.len() <= 20 => format!(" (DAGs: {})", ids.join(", ")),
                    None => " (`tributary dags list` lists them)".to_string(),
                };
                Error::DagNotFound {
                    dag_id: dag_id.to_string(),
                    hint,
                }
            } else {
                Error::Invalid(format!(
                    "DAG {dag_id:?} not found; {} DAG file(s) failed to load:\n{}",
                    self.errors.len(),
                    self.diagnostics()
                        .iter()
                        .map(|d| format!("  {d}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ))
            }
        })
    }
}

/// The database record of a DAG (paused flag left to the store).
pub fn record_of(d: &Dag) -> DagRecord {
    DagRecord {
        dag_id: d.dag_id.clone(),
        fileloc: d.fileloc.display().to_string(),
        source_hash: d.source_hash.clone(),
        source: d.source.clone(),
        description: d.description.clone(),
        schedule: d.timetable.schedule.as_text().to_string(),
        timezone: d.timetable.tz.name().to_string(),
        tags: d.tags.clone(),
        max_active_runs: i64::from(d.max_active_runs),
        max_active_tasks: i64::from(d.max_active_tasks),
        is_paused: false,
        is_active: true,
    }
}
