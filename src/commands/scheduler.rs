//! `tributary scheduler`: the scheduling loop and executor until Ctrl-C /
//! SIGTERM. `standalone` runs the same loop with its services around it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use scheduler::dagbag::DagBag;
use scheduler::scheduling::{Scheduler, SchedulerConfig};
use scheduler::store::Store;
use tokio_util::sync::CancellationToken;

use crate::cli::SchedulerArgs;
use crate::settings::Settings;

/// A scheduler ready to run: its store opened (and, on SQLite, the
/// one-scheduler lock held) and its DAGs folder loaded once.
pub struct SchedulerProcess {
    /// The store the loop runs on (the web UI `standalone` serves shares it).
    pub store: Arc<dyn Store>,
    /// The DAGs as loaded at start (the loop reloads them itself).
    pub bag: DagBag,
    config: SchedulerConfig,
    /// Held for the life of the process (SQLite: one scheduler at a time).
    _exclusive: Option<std::fs::File>,
}

impl SchedulerProcess {
    /// Opens the store, takes the scheduler lock and loads the DAGs.
    pub async fn open(settings: &Settings, a: &SchedulerArgs) -> Result<SchedulerProcess> {
        let sql = settings.sql_store().await?;
        let exclusive = sql.exclusive_scheduler_lock()?;
        let bag = settings.bag()?;
        Ok(SchedulerProcess {
            store: Arc::new(sql),
            bag,
            config: SchedulerConfig {
                dags: vec![settings.dags_folder.clone()],
                parallelism: usize::from(a.parallelism),
                dag_refresh: Duration::from_secs(a.dag_refresh_secs),
                ..SchedulerConfig::default()
            },
            _exclusive: exclusive,
        })
    }

    /// Prints the import errors, then runs the loop until `shutdown`.
    pub async fn run(self, settings: &Settings, shutdown: CancellationToken) -> Result<()> {
        for d in self.bag.diagnostics() {
            eprintln!("import error: {d}");
        }
        Scheduler::new(self.store, settings.kinds.clone(), self.config)
            .run(shutdown)
            .await?;
        Ok(())
    }
}

/// `scheduler`.
pub async fn run(settings: &Settings, a: &SchedulerArgs) -> Result<ExitCode> {
    let process = SchedulerProcess::open(settings, a).await?;
    process.run(settings, crate::shutdown::on_signals()).await?;
    Ok(ExitCode::SUCCESS)
}
