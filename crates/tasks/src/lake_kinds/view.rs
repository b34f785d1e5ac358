//! `lake_view`: refreshes a Lambda view's batch table (`[[view]]` in the
//! project config) from its source's latest version, so `live.<view>`
//! reads fewer speed rows. One commit replaces the batch and records what
//! it covers, so a retry simply refreshes again and a reader never sees a
//! half-done refresh.

use std::sync::Arc;

use async_trait::async_trait;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Lake, Problems};

/// Memory the refresh's query may use unless `memory_limit` says otherwise.
const DEFAULT_MEMORY: &str = "1GiB";

/// Settings of a `lake_view` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeViewSettings {
    /// The view (a `[[view]]` of the project config).
    pub view: String,
    /// Memory the refresh's query may use (default 1GiB).
    pub memory_limit: Option<String>,
}

/// The `lake_view` kind.
pub struct LakeViewKind(pub Lake);

/// The `lake_view` operator.
#[derive(Debug)]
pub struct LakeView {
    lake: Lake,
    view: String,
    memory: u64,
}

impl TaskKind for LakeViewKind {
    fn name(&self) -> &'static str {
        "lake_view"
    }
    fn summary(&self) -> &'static str {
        "Refreshes a Lambda view's batch table from its source (live.<view> then reads fewer speed rows)."
    }
    fn settings_schema(&self) -> serde_json::Value {
        crate::kind_settings::schema::<LakeViewSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: LakeViewSettings = settings.checked()?;
        let mut p = Problems::new(settings);
        p.table_name("view", &s.view);
        if self.0.knows_views() && !self.0.views().iter().any(|v| v.name == s.view) {
            let names: Vec<&str> = self.0.views().iter().map(|v| v.name.as_str()).collect();
            let hint = diag::suggest(&s.view, &names)
                .map(|n| format!(" (did you mean {n:?}?)"))
                .unwrap_or_default();
            p.at(
                "view",
                format!(
                    "no view {:?} in the project config{hint}; declared: {}",
                    s.view,
                    if names.is_empty() {
                        "none ([[view]] in tributary.toml)".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            );
        }
        let memory = p.size("memory_limit", s.memory_limit.as_deref(), DEFAULT_MEMORY);
        p.finish(|| {
            let op: Arc<dyn Operator> = Arc::new(LakeView {
                lake: self.0.clone(),
                view: s.view,
                memory,
            });
            Some(op)
        })
    }
}

#[async_trait]
impl Operator for LakeView {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let catalog = self.lake.catalog()?;
        let Some(spec) = self.lake.views().iter().find(|v| v.name == self.view) else {
            return Err(TaskError::Fatal(format!(
                "no view {:?} in the project config",
                self.view
            )));
        };
        let engine = super::engine(catalog, self.memory)?;
        let r = super::unless_cancelled(&ctx, async {
            lake::view::refresh(&engine, spec)
                .await
                .map_err(|e| super::task_error(&e, &format!("refreshing view {}", spec.name)))
        })
        .await?;
        ctx.log.line(format!(
            "view {}: batch table {} v{}: {} groups over {} ({} ms)",
            r.view, r.table, r.version, r.rows, r.covers, r.elapsed_ms
        ));
        Ok(TaskOutcome::Success)
    }
}
