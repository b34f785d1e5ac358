//! `tributary lake replay | verify TABLE@vN | swap | rollback | generations
//! | rebuild`: Kappa reprocessing (`lake::generation`) of a stream table
//! (here) or a transform's table (`derived`), and the rebuild's cascade to
//! what derives from a rebuilt table.

mod derived;
mod show;

use show::print_switch;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use lake::config::StreamSpec;
use lake::generation::{self, GenerationDiff, Replay, ReplayFrom, ReplayRequest, SwapOptions};
use lake::metrics::Metrics;
use lake::table::Location;

use crate::config::Project;
use crate::output;
use crate::settings::Settings;

/// The stream that writes `table`, and where the table lies.
fn stream_table(project: &Project, table: &str) -> Result<(Arc<StreamSpec>, Location)> {
    let stream = project
        .stream_of_table(table)
        .filter(|s| s.table == table)
        .ok_or_else(|| {
            anyhow!(
                "{table} is not the table of a stream declared in {}: generations are made by replaying a stream",
                project.source()
            )
        })?;
    let location = project.location(stream.lake.as_deref())?;
    Ok((stream, location))
}

/// The stream's declaration in `--config FILE` (the same stream, by name),
/// or the project's own.
fn declaration(
    project: &Project,
    live: &Arc<StreamSpec>,
    config: Option<&Path>,
) -> Result<(Arc<StreamSpec>, String)> {
    let Some(path) = config else {
        return Ok((live.clone(), project.source()));
    };
    let other = Project::load(Some(path))?;
    let spec = other.stream(&live.name).with_context(|| {
        format!(
            "{} must declare stream {} (the one that writes {})",
            path.display(),
            live.name,
            live.table
        )
    })?;
    Ok((spec, path.display().to_string()))
}

/// `users@v2` → ("users", 2).
pub fn parse_generation_ref(text: &str) -> Option<(&str, u32)> {
    let (table, g) = text.split_once('@')?;
    Some((table, generation::parse_generation(g)?))
}

/// `lake replay`.
pub async fn replay(
    settings: &Settings,
    table: &str,
    from: Option<&str>,
    config: Option<&Path>,
    fresh: bool,
) -> Result<ExitCode> {
    if let Some(t) = derived::transform_of(&settings.project, table) {
        derived::refuse_stream_flags(from, fresh)?;
        derived::replay(settings, &t, config).await?;
        return Ok(ExitCode::SUCCESS);
    }
    replay_generation(settings, table, from, config, fresh).await?;
    Ok(ExitCode::SUCCESS)
}

/// Replays into a generation; returns its number.
async fn replay_generation(
    settings: &Settings,
    table: &str,
    from: Option<&str>,
    config: Option<&Path>,
    fresh: bool,
) -> Result<u32> {
    let project = &settings.project;
    let (live, location) = stream_table(project, table)?;
    let (spec, source) = declaration(project, &live, config)?;
    let from = from
        .map(|f| ReplayFrom::parse(f, &live.topics))
        .transpose()
        .map_err(|e| anyhow!("--from: {e}"))?;
    let kafka = project.kafka_source()?;
    let r = generation::prepare(
        &location,
        &kafka,
        ReplayRequest {
            live: &live,
            spec: &spec,
            from,
            fresh,
            config: source,
        },
    )
    .await?;
    println!(
        "{} {table}@v{}: {}",
        if r.resumed {
            "resuming"
        } else {
            "replaying into"
        },
        r.generation,
        r.made_by
    );
    if let Some(f) = &r.refilled {
        println!("{}", f.summary(table));
    }
    let summary = run_replay(settings, &location, &r).await?;
    let info = lake::tools::describe(&location, &r.spec.table, Some(&live.name), 0).await?;
    if settings.json() {
        output::json(&serde_json::json!({
            "table": table,
            "generation": r.generation,
            "resumed": r.resumed,
            "made_by": r.made_by,
            "version": info.version,
            "rows": info.rows,
            "files": info.files,
            "rejected": summary.rejected,
            "offsets": info.offsets,
            "refilled": r.refilled,
        }))?;
    } else {
        println!(
            "{table}@v{}: {} rows in {} files (version {}), {} dead letters this run; caught up with {}",
            r.generation,
            info.rows,
            info.files,
            info.version,
            summary.rejected,
            info.offsets
                .iter()
                .map(|(k, v)| format!("{k} ≤ {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "next: tributary lake verify {table}@v{} --against {table}, then tributary lake swap {table} {table}@v{}",
            r.generation, r.generation
        );
    }
    Ok(r.generation)
}

/// Runs the replay until it has caught up with the end offsets seen at its
/// start, showing offsets done / to do, records/s and ETA.
async fn run_replay(
    settings: &Settings,
    location: &Location,
    r: &Replay,
) -> Result<lake::writer::RunSummary> {
    let kafka = settings.project.kafka_source()?;
    let metrics = Arc::new(Metrics::default()).stream(&r.spec.name);
    let tty = std::io::stderr().is_terminal() && !settings.json();
    let bar = indicatif::ProgressBar::hidden();
    if tty {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} offsets · {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }
    let mut last_line = Instant::now();
    let summary = generation::progress::run(
        location,
        &kafka,
        r,
        metrics,
        crate::shutdown::on_signals(),
        |t| {
            let msg = format!("{:.0} records/s · ETA {}", t.records_per_s, eta(t.eta));
            if tty {
                bar.set_length(t.total as u64);
                bar.set_position(t.done as u64);
                bar.set_message(msg);
            } else if last_line.elapsed() >= Duration::from_secs(10) && !settings.json() {
                last_line = Instant::now();
                println!("{}/{} offsets · {msg}", t.done, t.total);
            }
        },
    )
    .await?;
    bar.finish_and_clear();
    Ok(summary)
}

fn eta(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| humantime::format_duration(d).to_string())
}

/// `lake verify TABLE@vN [--against TABLE]`.
pub async fn verify(
    settings: &Settings,
    table: &str,
    n: u32,
    against: Option<&str>,
) -> Result<ExitCode> {
    if let Some(a) = against
        && a != table
    {
        bail!("--against {a}: {table}@v{n} is compared with its own live table, {table}");
    }
    if let Some(t) = derived::transform_of(&settings.project, table) {
        return derived::verify(settings, &t, n).await;
    }
    let (live, location) = stream_table(&settings.project, table)?;
    let diff = generation::verify_against(&location, &live, n).await?;
    if settings.json() {
        output::json(&diff)?;
    } else {
        print_diff(&diff);
    }
    Ok(if diff.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_diff(d: &GenerationDiff) {
    let rows: Vec<Vec<String>> = d
        .partitions
        .iter()
        .map(|p| {
            vec![
                format!("{}/{}", p.topic, p.partition),
                format!("{}..={}", p.from, p.to),
                p.live_rows.to_string(),
                p.generation_rows.to_string(),
                p.live_rejected.to_string(),
                p.generation_rejected.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "TOPIC/PARTITION",
            "COMMON OFFSETS",
            "LIVE ROWS",
            "NEW ROWS",
            "LIVE DEAD",
            "NEW DEAD",
        ],
        &rows,
    );
    for line in d.summary() {
        println!("{line}");
    }
}

/// `lake swap TABLE TABLE@vN`.
pub async fn swap(
    settings: &Settings,
    table: &str,
    to: &str,
    config: Option<&Path>,
    force: bool,
    timeout: &str,
) -> Result<ExitCode> {
    let Some((base, n)) = parse_generation_ref(to).filter(|(b, _)| *b == table) else {
        bail!("{to:?}: name a generation of {table}, as {table}@v2");
    };
    if let Some(t) = derived::transform_of(&settings.project, table) {
        let report = derived::swap(settings, &t, n, config, force).await?;
        return print_switch(settings, "swapped", &report);
    }
    let (live, location) = stream_table(&settings.project, base)?;
    let (spec, _) = declaration(&settings.project, &live, config)?;
    let timeout = humantime::parse_duration(timeout)
        .map_err(|e| anyhow!("--timeout {timeout:?}: {e} (e.g. 10m)"))?;
    let metrics = Arc::new(Metrics::default());
    let report = generation::swap(
        SwapOptions {
            location,
            kafka: settings.project.kafka_source()?,
            metrics: metrics.stream(&live.name),
            live: live.clone(),
            spec,
            generation: n,
            force,
            timeout,
        },
        crate::shutdown::on_signals(),
    )
    .await?;
    print_switch(settings, "swapped", &report)
}

/// `lake rollback TABLE`.
pub async fn rollback(settings: &Settings, table: &str) -> Result<ExitCode> {
    let report = match derived::transform_of(&settings.project, table) {
        Some(t) => derived::rollback(settings, &t).await?,
        None => {
            let (live, location) = stream_table(&settings.project, table)?;
            generation::rollback(&location, &live).await?
        }
    };
    print_switch(settings, "rolled back", &report)
}

/// `lake generations TABLE`.
pub async fn list(settings: &Settings, table: &str) -> Result<ExitCode> {
    let location = match derived::transform_of(&settings.project, table) {
        Some(_) => settings.project.catalog()?.location(table).clone(),
        None => stream_table(&settings.project, table)?.1,
    };
    let gens = generation::generations(&location, table).await?;
    if settings.json() {
        output::json(&gens)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = gens
        .iter()
        .map(|g| {
            vec![
                format!("{table}@v{}", g.generation),
                serde_json::to_value(g.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                g.rows.to_string(),
                g.files.to_string(),
                g.created.map(output::ts).unwrap_or_default(),
                match g.verified {
                    Some(true) => "passed".into(),
                    Some(false) => "FAILED".into(),
                    None => "-".into(),
                },
                g.made_by.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "GENERATION",
            "STATE",
            "ROWS",
            "FILES",
            "CREATED",
            "VERIFIED",
            "MADE BY",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// `lake rebuild TABLE`: replay → verify → swap, then the same for every
/// transform that derives from the table (in order), then a refresh of
/// every view over a rebuilt table.
pub async fn rebuild(
    settings: &Settings,
    table: &str,
    from: Option<&str>,
    config: Option<&Path>,
    no_swap: bool,
    timeout: &str,
) -> Result<ExitCode> {
    if let Some(t) = derived::transform_of(&settings.project, table) {
        derived::refuse_stream_flags(from, false)?;
        return derived::rebuild(settings, &t, config, no_swap).await;
    }
    // An unfinished replay of the same shape is resumed (a rebuild killed
    // half way goes on where it stopped).
    let n = replay_generation(settings, table, from, config, false).await?;
    let verified = verify(settings, table, n, Some(table)).await?;
    if verified != ExitCode::SUCCESS {
        bail!("{table}@v{n} failed verification: the live table is unchanged");
    }
    if no_swap {
        println!(
            "--no-swap: {table}@v{n} is verified and waits: tributary lake swap {table} {table}@v{n}"
        );
        return Ok(ExitCode::SUCCESS);
    }
    swap(
        settings,
        table,
        &format!("{table}@v{n}"),
        config,
        false,
        timeout,
    )
    .await?;
    derived::cascade(settings, table).await
}
