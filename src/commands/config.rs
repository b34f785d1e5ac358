//! `tributary config`: check the project config file and print what it
//! declares.

use std::process::ExitCode;

use anyhow::Result;

use crate::settings::Settings;

/// `config`.
pub fn run(settings: &Settings) -> Result<ExitCode> {
    let p = &settings.project;
    println!("config       {}", p.source());
    println!("metadata     {}", settings.database_display());
    println!("dags folder  {}", settings.dags_folder.display());
    println!(
        "kafka        {}",
        p.kafka_bootstrap()
            .unwrap_or_else(|e| format!("error: {e}"))
    );
    println!(
        "lake         {}",
        p.location(None)
            .map(|l| l.root().to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    );
    println!(
        "web          {}{}",
        p.web.bind.as_deref().unwrap_or("127.0.0.1:8080"),
        if p.web.token.is_some() {
            " (token set)"
        } else {
            ""
        }
    );
    println!("streams      {}", p.streams.len());
    for s in &p.streams {
        println!(
            "  {}: {} → {} (partition by {}; dead letters → {})",
            s.name,
            s.topics.join(","),
            s.table,
            s.partition_by
                .iter()
                .map(|x| x.name())
                .collect::<Vec<_>>()
                .join(", "),
            s.dead_letter_table
        );
    }
    println!("OK");
    Ok(ExitCode::SUCCESS)
}
