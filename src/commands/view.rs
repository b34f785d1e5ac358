//! `tributary view`: list the declared Lambda views and refresh a batch.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::ViewCommand;
use crate::output;
use crate::settings::Settings;

/// `view …`.
pub async fn run(settings: &Settings, c: &ViewCommand) -> Result<ExitCode> {
    let project = &settings.project;
    match c {
        ViewCommand::List => {
            let catalog = project.catalog()?;
            let mut statuses = Vec::new();
            for spec in &project.views {
                statuses.push(lake::view::status(spec, &catalog).await?);
            }
            if settings.json() {
                return output::json(&statuses).map(|()| ExitCode::SUCCESS);
            }
            let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            let rows: Vec<Vec<String>> = statuses
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.source.clone(),
                        s.table.clone(),
                        s.merge.to_string(),
                        opt(s.batch_version),
                        s.covers.clone().unwrap_or_else(|| "never refreshed".into()),
                        opt(s.source_version),
                    ]
                })
                .collect();
            output::table(
                &[
                    "VIEW",
                    "SOURCE",
                    "BATCH TABLE",
                    "MERGE",
                    "BATCH VERSION",
                    "BATCH COVERS",
                    "SOURCE VERSION",
                ],
                &rows,
            );
            if rows.is_empty() {
                println!("(no [[view]] in {})", project.source());
            }
            Ok(ExitCode::SUCCESS)
        }
        ViewCommand::Refresh { name } => {
            let spec = project.view(name)?;
            let engine = super::transform::engine(project)?;
            super::transform::check(settings, &engine, None).await?;
            let r = lake::view::refresh(&engine, &spec)
                .await
                .with_context(|| format!("view {name}: refresh"))?;
            if settings.json() {
                output::json(&r)?;
            } else {
                println!(
                    "view {}: batch table {} v{}: {} groups over {} ({} ms)",
                    r.view, r.table, r.version, r.rows, r.covers, r.elapsed_ms
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
