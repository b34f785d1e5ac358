//! `noop`: a task that succeeds at once. Useful for joins, stand-ins in a
//! graph being designed, and measuring the scheduler's own overhead.

use std::sync::Arc;

use async_trait::async_trait;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// `noop` takes no settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoopSettings {}

/// The `noop` kind.
pub struct NoopKind;

/// The `noop` operator.
#[derive(Debug)]
pub struct Noop;

#[async_trait]
impl Operator for Noop {
    async fn execute(&self, _ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        Ok(TaskOutcome::Success)
    }
}

impl TaskKind for NoopKind {
    fn name(&self) -> &'static str {
        "noop"
    }
    fn summary(&self) -> &'static str {
        "Does nothing and succeeds: joins, stand-ins while designing a graph, scheduler benchmarks."
    }
    fn settings_schema(&self) -> serde_json::Value {
        crate::kind_settings::schema::<NoopSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let _: NoopSettings = settings.checked()?;
        Ok(Arc::new(Noop))
    }
}
