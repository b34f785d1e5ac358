//! The scheduler crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the scheduler crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A DAG file has problems; each diagnostic names file:line:col.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    InvalidDag(Vec<crate::dag::Diagnostic>),
    /// A DAG id that is not known; `hint` says " (did you mean …?)" or
    /// which DAGs there are.
    #[error("DAG {dag_id:?} not found{hint}")]
    DagNotFound {
        /// The id asked for.
        dag_id: String,
        /// A suggestion or the known ids, starting with a space or empty.
        hint: String,
    },
    /// A run that is not known; `hint` says " (did you mean …?)" or how to
    /// list the DAG's runs.
    #[error("run {run_id:?} of DAG {dag_id:?} not found{hint}")]
    RunNotFound {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
        /// A suggestion, starting with a space, or empty.
        hint: String,
    },
    /// A task id the run does not have; `hint` suggests one or lists them.
    #[error("run {run_id:?} of DAG {dag_id:?} has no task {task_id:?}{hint}")]
    TaskNotFound {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
        /// Task id asked for.
        task_id: String,
        /// A suggestion or the run's task ids, starting with a space.
        hint: String,
    },
    /// A run already exists at that logical date or with that run id.
    #[error("DAG {dag_id:?} already has a run {what}")]
    RunExists {
        /// DAG id.
        dag_id: String,
        /// What collided (run id or logical date).
        what: String,
    },
    /// A manual run's conf does not fit the DAG's params.
    #[error("invalid conf for DAG {dag_id:?}:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    InvalidConf {
        /// DAG id.
        dag_id: String,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A state transition the state machine forbids.
    #[error(transparent)]
    IllegalTransition(#[from] crate::state::IllegalTransition),
    /// Bad user input that is not a DAG file (CLI arguments, pool names…).
    #[error("{0}")]
    Invalid(String),
    /// Reading a file or folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("metadata database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Result with the scheduler's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
