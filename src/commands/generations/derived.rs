//! The transform side of `lake replay | verify | swap | rollback |
//! rebuild`: a transform's table rebuilt from its lake source
//! (`lake::generation::derived`), and the cascade a rebuild runs through
//! what derives from a rebuilt table.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use lake::generation::derived::{self as gen_derived, DerivedDiff};
use lake::generation::{SwitchReport, swap::rollback_table};
use lake::sql::SqlEngine;
use lake::transform::TransformSpec;

use crate::config::Project;
use crate::output;
use crate::settings::Settings;

/// The transform that writes `table`, if one does.
pub fn transform_of(project: &Project, table: &str) -> Option<Arc<TransformSpec>> {
    project
        .transforms
        .iter()
        .find(|t| t.table == table)
        .cloned()
}

/// `--from` and `--new` mean something for a stream's table only.
pub fn refuse_stream_flags(from: Option<&str>, fresh: bool) -> Result<()> {
    if from.is_some() {
        bail!(
            "--from is for a stream's table: a transform's table is rebuilt from its source as it is now"
        );
    }
    if fresh {
        bail!("--new is for a stream's table: a transform's replay always starts a new generation");
    }
    Ok(())
}

/// The transform's declaration in `--config FILE` (the same transform, by
/// name, writing the same table), or the project's own.
fn declaration(t: &Arc<TransformSpec>, config: Option<&Path>) -> Result<Arc<TransformSpec>> {
    let Some(path) = config else {
        return Ok(t.clone());
    };
    let other = Project::load(Some(path))?;
    let spec = other.transform(&t.name).with_context(|| {
        format!(
            "{} must declare transform {} (the one that writes {})",
            path.display(),
            t.name,
            t.table
        )
    })?;
    if spec.table != t.table {
        bail!(
            "{} declares transform {} writing {}, but it writes {} here: a generation belongs to the same table",
            path.display(),
            t.name,
            spec.table,
            t.table
        );
    }
    Ok(spec)
}

fn engine(settings: &Settings) -> Result<SqlEngine> {
    crate::commands::transform::engine(&settings.project)
}

/// `lake replay` of a transform's table; returns the generation.
pub async fn replay(
    settings: &Settings,
    t: &Arc<TransformSpec>,
    config: Option<&Path>,
) -> Result<u32> {
    let spec = declaration(t, config)?;
    if !settings.json() {
        println!(
            "rebuilding {} from {} with transform {}",
            t.table, t.source, t.name
        );
    }
    let (n, summary) = gen_derived::replay_transform(&engine(settings)?, &spec).await?;
    if settings.json() {
        output::json(&serde_json::json!({
            "table": t.table,
            "generation": n,
            "source": t.source,
            "rows_in": summary.rows_in,
            "rows_out": summary.rows_out,
            "commits": summary.commits,
        }))?;
    } else {
        println!(
            "{}@v{n}: {} source rows in, {} rows out in {} commit(s)",
            t.table, summary.rows_in, summary.rows_out, summary.commits
        );
    }
    Ok(n)
}

/// `lake verify TABLE@vN` of a transform's table.
pub async fn verify(settings: &Settings, t: &TransformSpec, n: u32) -> Result<ExitCode> {
    let diff: DerivedDiff = gen_derived::verify_transform(&engine(settings)?, t, n).await?;
    if settings.json() {
        output::json(&diff)?;
    } else {
        for line in diff.summary() {
            println!("{line}");
        }
    }
    Ok(if diff.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `lake swap TABLE TABLE@vN` of a transform's table.
pub async fn swap(
    settings: &Settings,
    t: &Arc<TransformSpec>,
    n: u32,
    config: Option<&Path>,
    force: bool,
) -> Result<SwitchReport> {
    let spec = declaration(t, config)?;
    Ok(gen_derived::swap_transform(&engine(settings)?, &spec, n, force).await?)
}

/// `lake rollback` of a transform's table (its late-row table first).
pub async fn rollback(settings: &Settings, t: &TransformSpec) -> Result<SwitchReport> {
    let location = settings.project.catalog()?.location(&t.table).clone();
    let late = t.window.as_ref().map(|w| w.late_table.as_str());
    Ok(rollback_table(&location, &t.name, &t.table, late).await?)
}

/// Replay → verify → swap of one transform's table.
async fn rebuild_one(
    settings: &Settings,
    t: &Arc<TransformSpec>,
    config: Option<&Path>,
    no_swap: bool,
) -> Result<bool> {
    let n = replay(settings, t, config).await?;
    if verify(settings, t, n).await? != ExitCode::SUCCESS {
        bail!(
            "{}@v{n} failed verification: it and what derives from it are unchanged",
            t.table
        );
    }
    if no_swap {
        println!(
            "--no-swap: {}@v{n} is verified and waits: tributary lake swap {} {}@v{n}",
            t.table, t.table, t.table
        );
        return Ok(false);
    }
    let r = swap(settings, t, n, config, false).await?;
    super::show::print_switch(settings, "swapped", &r)?;
    Ok(true)
}

/// `lake rebuild` of a transform's table, then its cascade.
pub async fn rebuild(
    settings: &Settings,
    t: &Arc<TransformSpec>,
    config: Option<&Path>,
    no_swap: bool,
) -> Result<ExitCode> {
    if !rebuild_one(settings, t, config, no_swap).await? {
        return Ok(ExitCode::SUCCESS);
    }
    cascade(settings, &t.table).await
}

/// After `table` was rebuilt: rebuilds every transform that reads it, each
/// after its source (breadth first through the chain), then refreshes the
/// batch of every view over a rebuilt table.
pub async fn cascade(settings: &Settings, table: &str) -> Result<ExitCode> {
    let project = &settings.project;
    let mut rebuilt = vec![table.to_string()];
    let mut next = 0;
    while next < rebuilt.len() {
        let source = rebuilt[next].clone();
        next += 1;
        for t in project.transforms.iter().filter(|t| t.source == source) {
            if rebuilt.contains(&t.table) {
                continue;
            }
            println!(
                "transform {} reads {source}: rebuilding {}",
                t.name, t.table
            );
            rebuild_one(settings, t, None, false).await?;
            rebuilt.push(t.table.clone());
        }
    }
    let views: Vec<_> = project
        .views
        .iter()
        .filter(|v| rebuilt.contains(&v.source))
        .collect();
    if !views.is_empty() {
        let engine = engine(settings)?;
        for v in views {
            let r = lake::view::refresh(&engine, v)
                .await
                .map_err(|e| anyhow!("refreshing view {}: {e}", v.name))?;
            println!(
                "view {}: batch table {} refreshed from {} (version {}, {} groups over {})",
                r.view, r.table, v.source, r.version, r.rows, r.covers
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
