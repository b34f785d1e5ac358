//! `lake_load`: a seed — a small CSV or JSON reference file kept next to
//! the DAG (`file = "seeds/nations.csv"`) — becomes a lake table, replaced
//! whole on each run (so a retry or a re-run gives the same table, and an
//! edit of the file lands on the next run). The file is read and its
//! columns inferred when the DAG is loaded, so a broken seed is reported
//! by `dags validate` at the `file` key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use lake::seed::SeedFormat;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Lake, Problems};

/// Settings of a `lake_load` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeLoadSettings {
    /// The seed file, relative to the DAG file's folder.
    pub file: String,
    /// The table it becomes.
    pub table: String,
    /// `csv` (a header line) or `json` (an array of objects, or one object
    /// per line). Default: from the file's extension.
    pub format: Option<String>,
    /// Partition columns of the table.
    #[serde(default)]
    pub partition_by: Vec<String>,
}

/// The `lake_load` kind.
pub struct LakeLoadKind(pub Lake);

/// The `lake_load` operator.
#[derive(Debug)]
pub struct LakeLoad {
    lake: Lake,
    path: PathBuf,
    shown: String,
    format: SeedFormat,
    table: String,
    partition_by: Vec<String>,
}

impl TaskKind for LakeLoadKind {
    fn name(&self) -> &'static str {
        "lake_load"
    }
    fn summary(&self) -> &'static str {
        "Loads a seed file (CSV or JSON reference data) into a lake table, replacing it."
    }
    fn settings_schema(&self) -> serde_json::Value {
        crate::kind_settings::schema::<LakeLoadSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: LakeLoadSettings = settings.checked()?;
        let mut p = Problems::new(settings);
        p.table_name("table", &s.table);
        let dir = settings.dag_file().parent().unwrap_or(Path::new("."));
        let path = dir.join(&s.file);
        let format = match s.format.as_deref() {
            Some(f) => SeedFormat::parse(f).or_else(|| {
                p.at("format", format!("format {f:?}: write \"csv\" or \"json\""));
                None
            }),
            None => SeedFormat::from_path(&path).or_else(|| {
                p.at(
                    "file",
                    format!(
                        "file {:?}: cannot tell its format from the extension; name it .csv or .json, or set `format`",
                        s.file
                    ),
                );
                None
            }),
        };
        if let Some(f) = format {
            match lake::seed::read(&path, f) {
                Ok((schema, _)) => {
                    for c in &s.partition_by {
                        if schema.field_with_name(c).is_err() {
                            let columns: Vec<&str> =
                                schema.fields().iter().map(|f| f.name().as_str()).collect();
                            p.at(
                                "partition_by",
                                format!(
                                    "partition_by column {c:?} is not in {} (columns: {})",
                                    s.file,
                                    columns.join(", ")
                                ),
                            );
                        }
                    }
                }
                Err(e) => p.at("file", format!("file: {e}")),
            }
        }
        p.finish(|| {
            let op: Arc<dyn Operator> = Arc::new(LakeLoad {
                lake: self.0.clone(),
                path,
                shown: s.file,
                format: format?,
                table: s.table,
                partition_by: s.partition_by,
            });
            Some(op)
        })
    }
}

#[async_trait]
impl Operator for LakeLoad {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let catalog = self.lake.catalog()?;
        // Read again: an edit since the DAG was loaded takes effect now.
        let (schema, batches) = lake::seed::read(&self.path, self.format)
            .map_err(|e| TaskError::Fatal(e.to_string()))?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let app_id = super::app_id(&ctx, &self.table);
        let version = super::unless_cancelled(&ctx, async {
            lake::sql::write::overwrite_batches(
                catalog,
                &self.table,
                batches,
                &self.partition_by,
                (&app_id, 0),
            )
            .await
            .map_err(|e| super::task_error(&e, &format!("loading {}", self.shown)))
        })
        .await?;
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        ctx.log.line(format!(
            "loaded {rows} rows of {} ({}) into table {} (version {version})",
            self.shown,
            columns.join(", "),
            self.table
        ));
        Ok(TaskOutcome::Success)
    }
}
