//! What each CLI command does, one file per command group. This module only
//! dispatches; the groups share nothing through it (shared pieces live in
//! [`crate::settings`], [`crate::shutdown`] and [`crate::output`]).

mod backfill;
mod config;
mod dags;
mod db;
mod dev;
mod generations;
mod lake;
mod pools;
mod runs;
mod scheduler;
mod sql;
mod standalone;
mod stream;
mod tasks;
mod transform;
mod view;
mod web;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Command;
use crate::settings::Settings;

/// Runs a command; the exit code says whether it succeeded.
pub async fn run(settings: &Settings, command: &Command) -> Result<ExitCode> {
    match command {
        Command::Standalone(a) => standalone::run(settings, a).await,
        Command::Scheduler(a) => scheduler::run(settings, a).await,
        Command::Db(c) => db::run(settings, c).await,
        Command::Dags(c) => dags::run(settings, c).await,
        Command::Trigger(a) => runs::trigger(settings, a).await,
        Command::Backfill(a) => backfill::run(settings, a).await,
        Command::Runs(c) => runs::run(settings, c).await,
        Command::Tasks(c) => tasks::run(settings, c).await,
        Command::Pools(c) => pools::run(settings, c).await,
        Command::Stream(c) => stream::run(settings, c).await,
        Command::Transform(c) => transform::run(settings, c).await,
        Command::View(c) => view::run(settings, c).await,
        Command::Lake(c) => lake::run(settings, c).await,
        Command::Sql(a) => sql::run(settings, a).await,
        Command::Config => config::run(settings).await,
        Command::Web(a) => web::run(settings, a).await,
        Command::Dev(c) => dev::run(c).await,
    }
}
