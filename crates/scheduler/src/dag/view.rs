//! The JSON view of a DAG: one shape for `tributary dags show -o json` and
//! `GET /api/v1/dags/{dag_id}` (Airflow's names: `fileloc`, `task_id`).

use serde_json::{Value, json};

use super::Dag;

impl Dag {
    /// The DAG as JSON: its settings, params, tasks (in topological order,
    /// with retry and timeout settings in seconds) and source.
    pub fn to_json(&self) -> Value {
        let tt = &self.timetable;
        json!({
            "dag_id": self.dag_id,
            "description": self.description,
            "fileloc": self.fileloc,
            "schedule": tt.schedule.as_text(),
            "timezone": tt.tz.name(),
            "start_date": tt.start,
            "end_date": tt.end,
            "catchup": tt.catchup,
            "max_active_runs": self.max_active_runs,
            "max_active_tasks": self.max_active_tasks,
            "tags": self.tags,
            "params": self.params.0,
            "tasks": self.tasks.iter().map(|t| json!({
                "task_id": t.id,
                "kind": t.kind,
                "depends_on": t.depends_on,
                "trigger_rule": t.trigger_rule.as_str(),
                "retries": t.retry.retries,
                "retry_delay_secs": t.retry.retry_delay.as_secs_f64(),
                "retry_exponential_backoff": t.retry.exponential_backoff,
                "max_retry_delay_secs": t.retry.max_retry_delay.as_secs_f64(),
                "execution_timeout_secs": t.execution_timeout.map(|d| d.as_secs_f64()),
                "pool": t.pool,
                "priority": t.priority,
                "settings": t.settings,
            })).collect::<Vec<_>>(),
            "source": self.source,
        })
    }
}
