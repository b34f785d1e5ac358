//! `lake_maintenance`: keeps a table quick to read on a schedule —
//! `optimize` (compact small files, optionally Z-ordered), then a
//! `checkpoint` (readers replay fewer commits), then `vacuum` (delete files
//! the table stopped referencing more than `retain` ago). Each step is
//! safe to repeat, so a retry simply does the steps again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use scheduler::duration::Dur;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Lake, Problems};

/// Files compacted toward this size unless `target_size` says otherwise.
pub const DEFAULT_TARGET_SIZE: &str = "256MiB";

/// Unreferenced files younger than this are kept (Delta's own default):
/// a reader still on an older version can finish.
pub const DEFAULT_RETAIN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Settings of a `lake_maintenance` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeMaintenanceSettings {
    /// The table.
    pub table: String,
    /// Compact small files (default true).
    pub optimize: Option<bool>,
    /// Size files are compacted toward, e.g. `"128MiB"`. Default 256MiB.
    pub target_size: Option<String>,
    /// Cluster each partition's files on these columns (Z-order) while
    /// compacting.
    #[serde(default)]
    pub zorder_by: Vec<String>,
    /// Write a checkpoint of the latest version (default true).
    pub checkpoint: Option<bool>,
    /// Delete files the table no longer references (default true).
    pub vacuum: Option<bool>,
    /// Keep unreferenced files younger than this. Default 7 days.
    pub retain: Option<Dur>,
}

/// The `lake_maintenance` kind.
pub struct LakeMaintenanceKind(pub Lake);

/// The `lake_maintenance` operator.
#[derive(Debug)]
pub struct LakeMaintenance {
    lake: Lake,
    table: String,
    /// `Some(target size)` when optimizing.
    optimize: Option<u64>,
    zorder_by: Vec<String>,
    checkpoint: bool,
    /// `Some(retention)` when vacuuming.
    vacuum: Option<Duration>,
}

impl TaskKind for LakeMaintenanceKind {
    fn name(&self) -> &'static str {
        "lake_maintenance"
    }
    fn summary(&self) -> &'static str {
        "Optimizes (compacts, optionally Z-orders), checkpoints and vacuums a lake table."
    }
    fn settings_schema(&self) -> serde_json::Value {
        crate::kind_settings::schema::<LakeMaintenanceSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: LakeMaintenanceSettings = settings.checked()?;
        let mut p = Problems::new(settings);
        p.table_name("table", &s.table);
        let optimize = s.optimize.unwrap_or(true);
        let target = p.size("target_size", s.target_size.as_deref(), DEFAULT_TARGET_SIZE);
        if !optimize && (s.target_size.is_some() || !s.zorder_by.is_empty()) {
            p.at(
                "optimize",
                "`target_size` and `zorder_by` are for `optimize = true`",
            );
        }
        let vacuum = s.vacuum.unwrap_or(true);
        if !vacuum && s.retain.is_some() {
            p.at("retain", "`retain` is for `vacuum = true`");
        }
        let checkpoint = s.checkpoint.unwrap_or(true);
        if !optimize && !vacuum && !checkpoint {
            p.at(
                "table",
                "every step is off: set `optimize`, `checkpoint` or `vacuum`",
            );
        }
        p.finish(|| {
            let op: Arc<dyn Operator> = Arc::new(LakeMaintenance {
                lake: self.0.clone(),
                table: s.table,
                optimize: optimize.then_some(target),
                zorder_by: s.zorder_by,
                checkpoint,
                vacuum: vacuum.then(|| s.retain.map_or(DEFAULT_RETAIN, |d| d.0)),
            });
            Some(op)
        })
    }
}

fn lake_error(step: &str, table: &str, e: lake::LakeError) -> TaskError {
    match e {
        lake::LakeError::NoTable(..) => TaskError::Fatal(format!("{step} {table}: {e}")),
        e => TaskError::Retryable(format!("{step} {table}: {e}")),
    }
}

#[async_trait]
impl Operator for LakeMaintenance {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let catalog = self.lake.catalog()?;
        let location = catalog.location(&self.table);
        let table = self.table.as_str();
        super::unless_cancelled(&ctx, async {
            if let Some(target) = self.optimize {
                let r = lake::tools::optimize(location, table, target, &self.zorder_by)
                    .await
                    .map_err(|e| lake_error("optimizing", table, e))?;
                ctx.log.line(format!(
                    "optimize: {} files compacted into {} in {} partitions{} (version {})",
                    r.files_removed,
                    r.files_added,
                    r.partitions_optimized,
                    if self.zorder_by.is_empty() {
                        String::new()
                    } else {
                        format!(", Z-ordered by {}", self.zorder_by.join(", "))
                    },
                    r.version
                ));
            }
            if self.checkpoint {
                let v = lake::tools::checkpoint(location, table)
                    .await
                    .map_err(|e| lake_error("checkpointing", table, e))?;
                ctx.log.line(format!("checkpoint: written at version {v}"));
            }
            if let Some(retain) = self.vacuum {
                let deleted = lake::tools::vacuum(location, table, retain, false)
                    .await
                    .map_err(|e| lake_error("vacuuming", table, e))?;
                ctx.log.line(format!(
                    "vacuum: {} unreferenced files older than {} deleted",
                    deleted.len(),
                    humantime::format_duration(retain)
                ));
            }
            Ok(())
        })
        .await?;
        Ok(TaskOutcome::Success)
    }
}
