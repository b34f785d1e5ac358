//! The settings every command runs with, resolved once at start.
//!
//! Each value comes from the first of: a command-line flag, its environment
//! variable (clap reads both), `tributary.toml`, the built-in default; and
//! `${VAR}` references in config values are resolved here, so a command
//! never re-derives where a setting came from. Commands receive a
//! `&Settings` and open what they need through it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use scheduler::dagbag::DagBag;
use scheduler::operator::Kinds;
use scheduler::store::{SqlStore, Store};

use crate::cli::{Cli, Output};
use crate::config::Project;

/// The default metadata database: a SQLite file in `.tributary/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://.tributary/tributary.db";

/// The default DAGs folder.
pub const DEFAULT_DAGS_FOLDER: &str = "dags";

/// Resolved settings (flags → environment → config → defaults).
pub struct Settings {
    /// The metadata database URL with `${VAR}`s resolved (it may hold a
    /// password: show it through [`Settings::database_display`]), or why it
    /// cannot be resolved — an error only for commands that open the store.
    database_url: Result<String, String>,
    /// The folder (or file) of DAG TOML files.
    pub dags_folder: PathBuf,
    /// Output format of list and show commands.
    pub output: Output,
    /// `tributary.toml` (or the built-in config).
    pub project: Project,
    /// The task kinds DAGs may use.
    pub kinds: Kinds,
}

/// The lake tasks' view of the project's streams (the generation kinds
/// replay, verify and swap their tables). A stream whose lake cannot be
/// resolved is left out: its tasks fail naming the table.
fn with_streams(lake: tasks::Lake, project: &Project) -> tasks::Lake {
    let tables = project
        .streams
        .iter()
        .filter_map(|s| {
            let location = project.location(s.lake.as_deref()).ok()?;
            Some(tasks::StreamTable {
                spec: s.clone(),
                location,
            })
        })
        .collect();
    lake.with_streams(tables, Arc::new(TaskProject(project.clone())))
}

/// The project as the generation task kinds ask it: its Kafka cluster,
/// resolved when a task runs, and the stream declarations of other config
/// files, relative to the project's folder (their `config`).
struct TaskProject(Project);

impl tasks::StreamProject for TaskProject {
    fn kafka(&self) -> Result<lake::kafka::KafkaSource, String> {
        self.0.kafka_source().map_err(|e| format!("{e:#}"))
    }

    fn stream(&self, config: &str, stream: &str) -> Result<Arc<lake::config::StreamSpec>, String> {
        let path = self.0.base_dir.join(config);
        let other = Project::load(Some(&path)).map_err(|e| format!("{e:#}"))?;
        other.stream(stream).map_err(|e| {
            format!(
                "{e:#} ({} must declare the stream that writes the table)",
                path.display()
            )
        })
    }
}

impl Settings {
    /// Resolves the global flags against the config file they name.
    pub fn resolve(cli: &Cli) -> Result<Settings> {
        if cli.output == Output::Csv && !matches!(cli.command, crate::cli::Command::Sql(_)) {
            bail!("-o csv is for `tributary sql`; other commands print `table` or `json`");
        }
        let project = Project::load(cli.config.as_deref())?;
        let raw_url = cli
            .database_url
            .clone()
            .or_else(|| project.database_url.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        let database_url = crate::config::resolve(&raw_url, "database_url")
            .map_err(|e| format!("{e:#}"))
            .and_then(|url| scheduler::store::check_database_url(&url).map(|()| url));
        let dags_folder = cli
            .dags_folder
            .clone()
            .or_else(|| {
                project
                    .dags_folder
                    .as_ref()
                    .map(|d| project.base_dir.join(d))
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DAGS_FOLDER));
        let lake = match project.catalog() {
            Ok(catalog) => tasks::Lake::new(catalog).with_views(project.views.clone()),
            Err(e) => tasks::Lake::unavailable(format!("{e:#}")),
        };
        let lake = with_streams(lake, &project);
        Ok(Settings {
            database_url,
            dags_folder,
            output: cli.output,
            project,
            kinds: tasks::registry_with(lake),
        })
    }

    /// Whether output is JSON for programs (else tables for people).
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// The database URL without its password, for messages.
    pub fn database_display(&self) -> String {
        match &self.database_url {
            Ok(url) => scheduler::store::redact(url),
            Err(e) => format!("error: {e}"),
        }
    }

    /// Whether the metadata database is there to be opened: always for
    /// PostgreSQL, for SQLite only when its file exists (opening would create it).
    pub fn database_exists(&self) -> bool {
        match &self.database_url {
            Ok(url) => scheduler::store::sqlite_path(url)
                .is_none_or(|path| std::path::Path::new(path).is_file()),
            Err(_) => false,
        }
    }

    /// Why the metadata database URL is unusable, if it is.
    pub fn database_problem(&self) -> Option<&str> {
        self.database_url.as_ref().err().map(String::as_str)
    }

    /// Opens the metadata store and applies pending migrations.
    pub async fn sql_store(&self) -> Result<SqlStore> {
        let url = self.database_url.as_deref().map_err(|e| anyhow!("{e}"))?;
        let store = SqlStore::connect(url).await.with_context(|| {
            format!(
                "cannot open the metadata database {}",
                self.database_display()
            )
        })?;
        store.migrate().await?;
        Ok(store)
    }

    /// [`Settings::sql_store`] behind the `Store` trait.
    pub async fn store(&self) -> Result<Arc<dyn Store>> {
        Ok(Arc::new(self.sql_store().await?))
    }

    /// Loads the DAGs folder (every file parsed and validated).
    pub fn bag(&self) -> Result<DagBag> {
        let folder = &self.dags_folder;
        if !folder.exists() {
            bail!(
                "DAGs folder {} does not exist (set --dags-folder or TRIBUTARY_DAGS_FOLDER)",
                folder.display()
            );
        }
        Ok(DagBag::load(std::slice::from_ref(folder), &self.kinds)?)
    }

    /// Loads the DAGs folder and records it in the store, like a scheduler would.
    pub async fn synced_bag(&self, store: &dyn Store) -> Result<DagBag> {
        let bag = self.bag()?;
        bag.sync(store).await?;
        Ok(bag)
    }
}
