//! `tributary lake`: describe, verify, compact and vacuum lake tables; the
//! generation commands (replay, swap, rollback, rebuild) are in
//! `generations`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use lake::config::StreamSpec;
use lake::table::Location;
use lake::units::format_bytes;

use crate::cli::LakeCommand;
use crate::config::Project;
use crate::output;
use crate::settings::Settings;

/// The location of a table, and the stream that writes it (if declared).
fn table_location(project: &Project, table: &str) -> Result<(Location, Option<Arc<StreamSpec>>)> {
    if !lake::config::valid_name(table) {
        bail!("invalid table name {table:?}: use letters, digits, '_' or '-'");
    }
    let stream = project.stream_of_table(table);
    let location = project.location(stream.as_ref().and_then(|s| s.lake.as_deref()))?;
    Ok((location, stream))
}

/// `lake …`.
pub async fn run(settings: &Settings, c: &LakeCommand) -> Result<ExitCode> {
    match c {
        LakeCommand::Tables => tables(settings).await,
        LakeCommand::Ls { table, history } => ls(settings, table, *history).await,
        LakeCommand::Verify { table, against } => {
            match super::generations::parse_generation_ref(table) {
                Some((base, n)) => {
                    super::generations::verify(settings, base, n, against.as_deref()).await
                }
                None if against.is_some() => {
                    bail!("--against compares a generation (e.g. {table}@v2) with {table}")
                }
                None => verify(settings, table).await,
            }
        }
        LakeCommand::Replay {
            table,
            from,
            config,
            fresh,
        } => {
            super::generations::replay(settings, table, from.as_deref(), config.as_deref(), *fresh)
                .await
        }
        LakeCommand::Swap {
            table,
            generation,
            config,
            force,
            timeout,
        } => {
            super::generations::swap(
                settings,
                table,
                generation,
                config.as_deref(),
                *force,
                timeout,
            )
            .await
        }
        LakeCommand::Rollback { table } => super::generations::rollback(settings, table).await,
        LakeCommand::Generations { table } => super::generations::list(settings, table).await,
        LakeCommand::Rebuild {
            table,
            from,
            config,
            no_swap,
            timeout,
        } => {
            super::generations::rebuild(
                settings,
                table,
                from.as_deref(),
                config.as_deref(),
                *no_swap,
                timeout,
            )
            .await
        }
        LakeCommand::Optimize { table, target_size } => {
            optimize(settings, table, target_size).await
        }
        LakeCommand::Vacuum {
            table,
            retention,
            dry_run,
        } => vacuum(settings, table, retention, *dry_run).await,
    }
}

/// One row of `lake tables`.
#[derive(serde::Serialize)]
struct TableRow {
    name: String,
    stream: Option<String>,
    version: u64,
    files: u64,
    rows: u64,
    bytes: u64,
    partition_columns: Vec<String>,
    url: String,
}

async fn tables(settings: &Settings) -> Result<ExitCode> {
    let catalog = settings.project.catalog()?;
    let mut rows = Vec::new();
    for name in catalog.list().await? {
        let stream = settings.project.stream_of_table(&name);
        let info = lake::tools::describe(catalog.location(&name), &name, None, 0).await?;
        rows.push(TableRow {
            stream: stream.map(|s| {
                if s.table == name {
                    s.name.clone()
                } else {
                    format!("{} (dead letters)", s.name)
                }
            }),
            name,
            version: info.version,
            files: info.files,
            rows: info.rows,
            bytes: info.bytes,
            partition_columns: info.partition_columns,
            url: info.url,
        });
    }
    if settings.json() {
        return output::json(&rows).map(|()| ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!(
            "no tables under {} yet (a stream writer or a lake_sql task creates them)",
            catalog.root().root()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.version.to_string(),
                r.files.to_string(),
                r.rows.to_string(),
                format_bytes(r.bytes),
                format!("[{}]", r.partition_columns.join(", ")),
                r.stream.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::table(
        &[
            "TABLE",
            "VERSION",
            "FILES",
            "ROWS",
            "SIZE",
            "PARTITIONED BY",
            "WRITTEN BY",
        ],
        &cells,
    );
    Ok(ExitCode::SUCCESS)
}

async fn ls(settings: &Settings, table: &str, history: usize) -> Result<ExitCode> {
    let (location, stream) = table_location(&settings.project, table)?;
    let info = lake::tools::describe(
        &location,
        table,
        stream.as_ref().map(|s| s.name.as_str()),
        history,
    )
    .await?;
    if settings.json() {
        return output::json(&info).map(|()| ExitCode::SUCCESS);
    }
    println!("table {}  ({})", info.name, info.url);
    println!(
        "version {}  files {}  rows {}  size {}  partitioned by [{}]",
        info.version,
        info.files,
        info.rows,
        format_bytes(info.bytes),
        info.partition_columns.join(", ")
    );
    println!();
    let rows: Vec<Vec<String>> = info
        .partitions
        .iter()
        .map(|(p, i)| {
            vec![
                p.clone(),
                i.files.to_string(),
                i.rows.to_string(),
                format_bytes(i.bytes),
            ]
        })
        .collect();
    output::table(&["PARTITION", "FILES", "ROWS", "SIZE"], &rows);
    if !info.offsets.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = info
            .offsets
            .iter()
            .map(|(tp, o)| vec![tp.clone(), o.to_string()])
            .collect();
        output::table(&["TOPIC/PARTITION", "LAST OFFSET"], &rows);
    }
    println!();
    let rows: Vec<Vec<String>> = info
        .history
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.timestamp_ms
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(output::ts)
                    .unwrap_or_default(),
                v.operation.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["VERSION", "COMMITTED", "OPERATION"], &rows);
    Ok(ExitCode::SUCCESS)
}

async fn verify(settings: &Settings, table: &str) -> Result<ExitCode> {
    let (location, stream) = table_location(&settings.project, table)?;
    let dead = stream
        .as_ref()
        .filter(|s| s.table == *table)
        .map(|s| s.dead_letter_table.clone());
    let report = lake::tools::verify(
        &location,
        table,
        dead.as_deref(),
        stream.as_ref().map(|s| s.name.as_str()),
    )
    .await?;
    let mut report = report;
    let broker = match &stream {
        Some(s) if s.table == *table => {
            // The fingerprints of the version verified, not the latest: a
            // writer committing meanwhile would pair them with older offsets.
            let fingerprints = std::mem::take(&mut report.fingerprints);
            Some(check_against_broker(settings, s, fingerprints, &mut report).await)
        }
        _ => None,
    };
    if settings.json() {
        output::json(&report)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .partitions
            .iter()
            .map(|p| {
                vec![
                    format!("{}/{}", p.topic, p.partition),
                    p.first.to_string(),
                    p.last.to_string(),
                    p.committed.map_or("-".into(), |c| c.to_string()),
                    p.rows.to_string(),
                    p.rejected.to_string(),
                ]
            })
            .collect();
        output::table(
            &[
                "TOPIC/PARTITION",
                "FIRST",
                "LAST",
                "COMMITTED",
                "ROWS",
                "DEAD LETTERS",
            ],
            &rows,
        );
        println!(
            "table {} version {}: {} rows read, {} rows in the log, {} dead letters",
            report.table,
            report.version,
            report.rows_read,
            report.rows_in_log,
            report.rejected_read
        );
        let reset = report.partitions.iter().filter(|p| p.lifetimes > 1).count();
        if reset > 0 {
            let most = report
                .partitions
                .iter()
                .map(|p| p.lifetimes)
                .max()
                .unwrap_or(1);
            println!(
                "{reset} partition(s) hold rows of up to {most} Kafka log lifetimes (offsets reset by \
                 `stream reset-offsets` or a standalone restart): each offset is checked once per lifetime"
            );
        }
        if let Some(note) = &broker {
            println!("{note}");
        }
        for p in &report.problems {
            println!("PROBLEM: {p}");
        }
        if report.ok() {
            println!(
                "OK: every offset is held exactly once, contiguous up to the committed offset"
            );
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Adds a problem for every partition whose broker log cannot continue the
/// table's committed offset (a new broker, a re-created topic, records
/// deleted unread); returns a line saying what was checked. An unreachable
/// broker is a note, not a failure: the table alone was verified.
async fn check_against_broker(
    settings: &Settings,
    stream: &StreamSpec,
    fingerprints: std::collections::BTreeMap<String, i64>,
    report: &mut lake::tools::VerifyReport,
) -> String {
    let kafka = match settings.project.kafka_source() {
        Ok(k) => k,
        Err(e) => return format!("broker not checked: {e:#}"),
    };
    let topics = stream.topics.clone();
    let committed: std::collections::HashMap<(String, i32), i64> = report
        .partitions
        .iter()
        .filter_map(|p| Some(((p.topic.clone(), p.partition), p.committed?)))
        .collect();
    let looked = tokio::task::spawn_blocking(move || {
        lake::kafka::OffsetReader::new(&kafka)?.check_logs(
            &topics,
            |tp| {
                committed
                    .get(&(tp.topic.to_string(), tp.partition))
                    .copied()
            },
            |tp| fingerprints.get(&tp.to_string()).copied(),
            std::time::Duration::from_secs(5),
        )
    })
    .await;
    let check = match looked {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return format!("broker not checked (unreachable?): {e}"),
        Err(e) => return format!("broker not checked: {e}"),
    };
    let found = check.mismatches;
    let ranges = check.ranges;
    let n = found.len();
    for m in found {
        report
            .problems
            .push(format!("Kafka: {}", m.explain(&stream.name, &stream.table)));
    }
    format!(
        "broker checked: {} partition(s) of {}, {n} whose log cannot continue the table",
        ranges.len(),
        stream.topics.join(", ")
    )
}

async fn optimize(settings: &Settings, table: &str, target_size: &str) -> Result<ExitCode> {
    let target =
        lake::units::parse_bytes(target_size).map_err(|e| anyhow!("--target-size: {e}"))?;
    let (location, _) = table_location(&settings.project, table)?;
    let r = lake::tools::optimize(&location, table, target, &[]).await?;
    if settings.json() {
        return output::json(&r).map(|()| ExitCode::SUCCESS);
    }
    println!(
        "optimized {table}: {} files compacted into {} across {} partitions (version {})",
        r.files_removed, r.files_added, r.partitions_optimized, r.version
    );
    Ok(ExitCode::SUCCESS)
}

async fn vacuum(
    settings: &Settings,
    table: &str,
    retention: &str,
    dry_run: bool,
) -> Result<ExitCode> {
    let keep = humantime::parse_duration(retention)
        .map_err(|e| anyhow!("--retention {retention:?}: {e} (e.g. 7d, 12h)"))?;
    let (location, _) = table_location(&settings.project, table)?;
    let files = lake::tools::vacuum(&location, table, keep, dry_run).await?;
    if settings.json() {
        return output::json(&serde_json::json!({ "dry_run": dry_run, "files": files }))
            .map(|()| ExitCode::SUCCESS);
    }
    for f in &files {
        println!("{}{f}", if dry_run { "would delete " } else { "deleted " });
    }
    println!(
        "{} file(s) {}",
        files.len(),
        if dry_run {
            "would be deleted"
        } else {
            "deleted"
        }
    );
    Ok(ExitCode::SUCCESS)
}
