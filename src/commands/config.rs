//! `tributary config`: check the project config file and print what it
//! declares. It resolves everything a command would resolve when it runs
//! (`${VAR}` references, URLs, bind addresses, the web token), prints each
//! problem, and exits 1 when there is any, so CI can rely on it.

use std::process::ExitCode;

use anyhow::Result;

use crate::settings::Settings;

/// One line of the report: a label and its value, or the problem with it.
struct Line {
    label: &'static str,
    value: Result<String, String>,
}

fn line(label: &'static str, value: Result<String, String>) -> Line {
    Line { label, value }
}

/// `config`.
pub async fn run(settings: &Settings) -> Result<ExitCode> {
    let p = &settings.project;
    let mut lines = vec![
        line("config", Ok(p.source())),
        line(
            "metadata",
            match settings.database_problem() {
                Some(e) => Err(e.to_string()),
                None => Ok(settings.database_display()),
            },
        ),
        line(
            "dags folder",
            Ok(settings.dags_folder.display().to_string()),
        ),
        line("kafka", kafka_line(settings)),
        line(
            "lake",
            p.location(None).map(|l| l.root().to_string()).map_err(text),
        ),
        line("web", web_line(settings)),
        line("metrics", metrics_line(settings)),
        line("streams", Ok(p.streams.len().to_string())),
        line("transforms", transforms_line(settings).await),
        line("views", Ok(p.views.len().to_string())),
    ];
    for s in &p.streams {
        if let Some(lake) = &s.lake
            && let Err(e) = p.location(Some(lake))
        {
            lines.push(line(
                "stream lake",
                Err(format!("stream {:?}: {e:#}", s.name)),
            ));
        }
    }
    let mut problems = 0;
    for l in &lines {
        match &l.value {
            Ok(v) => println!("{:<12} {v}", l.label),
            Err(e) => {
                problems += 1;
                println!("{:<12} error: {e}", l.label);
            }
        }
    }
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
    for t in &p.transforms {
        println!(
            "  {}: {} → {} (every {})",
            t.name,
            t.source,
            t.table,
            humantime::format_duration(t.trigger)
        );
    }
    for v in &p.views {
        println!(
            "  {}: {} → batch table {} (live.{} = batch + speed{})",
            v.name,
            v.source,
            v.table,
            v.name,
            match v.merge {
                lake::view::Merge::Exact(_) => "",
                lake::view::Merge::Recompute => "; merge = recompute",
            }
        );
    }
    if problems > 0 {
        eprintln!(
            "{problems} problem{} in {}",
            if problems == 1 { "" } else { "s" },
            p.source()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("OK");
    Ok(ExitCode::SUCCESS)
}

/// The Kafka every other command uses, and what `standalone` uses when
/// neither the config nor `TRIBUTARY_KAFKA_BOOTSTRAP` names one.
fn kafka_line(settings: &Settings) -> Result<String, String> {
    let p = &settings.project;
    let bootstrap = p
        .kafka_source()
        .map(|k| k.bootstrap_servers)
        .map_err(text)?;
    let named = p.kafka.bootstrap_servers.is_some()
        || std::env::var_os("TRIBUTARY_KAFKA_BOOTSTRAP").is_some();
    Ok(if named {
        bootstrap
    } else {
        format!("{bootstrap} (standalone starts its in-memory dev broker instead)")
    })
}

/// The web server's address and token as `tributary web` would check them.
fn web_line(settings: &Settings) -> Result<String, String> {
    let p = &settings.project;
    let addr = super::web::bind_addr(None, p).map_err(text)?;
    let token = super::web::token(p).map_err(text)?;
    web::check_bind(&addr, token.as_deref()).map_err(|e| e.to_string())?;
    Ok(format!(
        "{addr}{}",
        if token.is_some() { " (token set)" } else { "" }
    ))
}

/// The transforms and views, their SQL checked against the tables they
/// read.
async fn transforms_line(settings: &Settings) -> Result<String, String> {
    let p = &settings.project;
    let engine = super::transform::engine(p).map_err(text)?;
    super::transform::check(settings, &engine, None)
        .await
        .map_err(text)?;
    Ok(p.transforms.len().to_string())
}

fn metrics_line(settings: &Settings) -> Result<String, String> {
    let bind = super::stream::metrics_bind(None, &settings.project);
    if bind == "off" {
        return Ok(bind);
    }
    super::stream::parse_metrics_bind(&bind)
        .map(|a| a.to_string())
        .map_err(text)
}

fn text(e: anyhow::Error) -> String {
    format!("{e:#}")
}
