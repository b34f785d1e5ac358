//! DAGs: the TOML file format ([`file`]), parsing and validation into a
//! [`Dag`] ([`parse`]), and the task graph.
//!
//! Parsing never stops at the first problem: every problem found in a file
//! becomes a [`Diagnostic`] naming file, line and column.

pub mod file;
pub mod parse;
mod view;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::conf::Params;
use crate::operator::Operator;
use crate::timetable::Timetable;

pub use diag::Diagnostic;
pub use parse::{parse_dag, validate_source};

/// When a task runs, given the states of its upstream tasks (Airflow's names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream succeeded (the default).
    #[default]
    AllSuccess,
    /// Every upstream failed or was upstream_failed.
    AllFailed,
    /// Every upstream finished, whatever the outcome.
    AllDone,
    /// At least one upstream succeeded (runs as soon as one does).
    OneSuccess,
    /// At least one upstream failed (runs as soon as one does).
    OneFailed,
    /// Every upstream finished and none failed (success or skipped).
    NoneFailed,
    /// Every upstream finished, none failed, and at least one succeeded.
    NoneFailedMinOneSuccess,
    /// Runs at once, whatever the upstream tasks do.
    Always,
}

impl TriggerRule {
    /// The snake_case name used in DAG files.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::AllDone => "all_done",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::Always => "always",
        }
    }
}

/// Retry policy of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first try (so `retries + 1` tries in all).
    pub retries: u32,
    /// Delay before the first retry.
    pub retry_delay: Duration,
    /// Double the delay after each failed try.
    pub exponential_backoff: bool,
    /// Upper bound of the delay.
    pub max_retry_delay: Duration,
}

impl RetryPolicy {
    /// Delay before the try after `failed_try` (1-based) failed.
    pub fn delay_after(&self, failed_try: u32) -> Duration {
        let base = self.retry_delay;
        let d = if self.exponential_backoff {
            let factor = 2u32.saturating_pow(failed_try.saturating_sub(1).min(31));
            base.checked_mul(factor).unwrap_or(Duration::MAX)
        } else {
            base
        };
        d.min(self.max_retry_delay)
    }
}

/// One validated task.
#[derive(Clone)]
pub struct Task {
    /// Task id, unique in its DAG.
    pub id: String,
    /// Task kind (`shell`, `noop`, …).
    pub kind: String,
    /// Upstream task ids.
    pub depends_on: Vec<String>,
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// Limit of one try's wall time.
    pub execution_timeout: Option<Duration>,
    /// When the task runs given its upstream states.
    pub trigger_rule: TriggerRule,
    /// Pool whose slots the task uses.
    pub pool: String,
    /// Higher runs first when slots are short.
    pub priority: i32,
    /// Kind-specific settings, as JSON (shown by `dags show`; secrets stay as `${VAR}`).
    pub settings: serde_json::Value,
    /// What the task does.
    pub operator: Arc<dyn Operator>,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A validated DAG: tasks in topological order and the graph's adjacency.
#[derive(Debug, Clone)]
pub struct Dag {
    /// DAG id, unique across the DAGs folder.
    pub dag_id: String,
    /// Free text.
    pub description: String,
    /// The file it came from.
    pub fileloc: PathBuf,
    /// The file's text (shown in the UI's code view).
    pub source: String,
    /// Stable hash of `source`, to notice changes.
    pub source_hash: String,
    /// Schedule, time zone, start/end, catchup.
    pub timetable: Timetable,
    /// Runs that may be queued or running at once.
    pub max_active_runs: u32,
    /// Task instances of this DAG that may run at once, over all runs.
    pub max_active_tasks: u32,
    /// Free-form labels for filtering.
    pub tags: Vec<String>,
    /// Typed params: the schema of a manual run's conf.
    pub params: Params,
    /// Tasks in a topological order.
    pub tasks: Vec<Task>,
    /// What is valid but probably not meant (`{{ … }}` in a command, …),
    /// with positions; `dags validate` prints them.
    pub warnings: Vec<Diagnostic>,
    index: HashMap<String, usize>,
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
}

impl Dag {
    /// The task with this id.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.index.get(id).map(|&i| &self.tasks[i])
    }

    /// Position of a task in [`Dag::tasks`].
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Upstream positions of the task at position `i`.
    pub fn upstream_of(&self, i: usize) -> &[usize] {
        &self.upstream[i]
    }

    /// Downstream positions of the task at position `i`.
    pub fn downstream_of(&self, i: usize) -> &[usize] {
        &self.downstream[i]
    }

    /// Whether the task at position `i` has no downstream task.
    pub fn is_leaf(&self, i: usize) -> bool {
        self.downstream[i].is_empty()
    }

    /// Every task reachable downstream of `i` (not including `i`).
    pub fn all_downstream(&self, i: usize) -> Vec<usize> {
        self.reach(i, &self.downstream)
    }

    /// Every task reachable upstream of `i` (not including `i`).
    pub fn all_upstream(&self, i: usize) -> Vec<usize> {
        self.reach(i, &self.upstream)
    }

    fn reach(&self, i: usize, adj: &[Vec<usize>]) -> Vec<usize> {
        let mut seen = vec![false; self.tasks.len()];
        let mut stack = adj[i].clone();
        let mut out = Vec::new();
        while let Some(j) = stack.pop() {
            if !std::mem::replace(&mut seen[j], true) {
                out.push(j);
                stack.extend(&adj[j]);
            }
        }
        out.sort_unstable();
        out
    }

    /// Layer of each task for drawing left to right: longest path from a root.
    pub fn layers(&self) -> Vec<usize> {
        let mut layer = vec![0; self.tasks.len()];
        for i in 0..self.tasks.len() {
            for &u in &self.upstream[i] {
                layer[i] = layer[i].max(layer[u] + 1);
            }
        }
        layer
    }
}

/// Stable 64-bit FNV-1a hash, hex: the same text gives the same hash in every build.
pub fn stable_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            retries: 5,
            retry_delay: Duration::from_secs(10),
            exponential_backoff: true,
            max_retry_delay: Duration::from_secs(60),
        };
        let d: Vec<u64> = (1..=5).map(|t| p.delay_after(t).as_secs()).collect();
        assert_eq!(d, vec![10, 20, 40, 60, 60]);
        let flat = RetryPolicy {
            exponential_backoff: false,
            ..p
        };
        assert_eq!(flat.delay_after(4).as_secs(), 10);
        assert_eq!(p.delay_after(200), Duration::from_secs(60));
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(""), "cbf29ce484222325");
        assert_ne!(stable_hash("a"), stable_hash("b"));
    }
}
