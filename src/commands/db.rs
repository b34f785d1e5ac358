//! `tributary db`: metadata database maintenance.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::DbCommand;
use crate::settings::Settings;

/// `db …`.
pub async fn run(settings: &Settings, c: &DbCommand) -> Result<ExitCode> {
    match c {
        DbCommand::Migrate => {
            settings.sql_store().await?;
            println!(
                "metadata database {} is up to date",
                settings.database_display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
