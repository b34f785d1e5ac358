//! `tributary backfill`: plan, record and follow backfills.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use scheduler::backfill::{self, Progress};
use scheduler::model::{BackfillRecord, BackfillState, DateAction, NewBackfill, Reprocess};
use scheduler::store::Store;
use scheduler::timetable::parse_datetime;
use serde_json::{Value, json};

use crate::cli::{BackfillArgs, BackfillCommand, ReprocessArg};
use crate::output::{self, opt_ts, ts};
use crate::settings::Settings;

/// `backfill …`.
pub async fn run(settings: &Settings, a: &BackfillArgs) -> Result<ExitCode> {
    let store = settings.store().await?;
    match &a.command {
        Some(BackfillCommand::List { dag }) => list(settings, store.as_ref(), dag.as_deref()).await,
        Some(BackfillCommand::Show { id, follow }) => {
            let bf = get(store.as_ref(), *id).await?;
            if *follow {
                return follow_progress(settings, store.as_ref(), bf).await;
            }
            show(settings, store.as_ref(), &bf).await
        }
        Some(BackfillCommand::Cancel { id }) => {
            let bf = backfill::cancel(store.as_ref(), *id).await?;
            println!("backfill {} cancelled", bf.id);
            show(settings, store.as_ref(), &bf).await
        }
        None => create(settings, store.as_ref(), a).await,
    }
}

async fn get(store: &dyn Store, id: i64) -> Result<BackfillRecord> {
    store
        .get_backfill(id)
        .await?
        .with_context(|| format!("backfill {id} not found (see `tributary backfill list`)"))
}

async fn create(settings: &Settings, store: &dyn Store, a: &BackfillArgs) -> Result<ExitCode> {
    let (Some(dag_id), Some(from), Some(to)) = (&a.dag_id, &a.from, &a.to) else {
        bail!("backfill needs a DAG id, --from and --to");
    };
    let bag = settings.synced_bag(store).await?;
    let dag = bag.get(dag_id)?;
    let tz = dag.timetable.tz;
    let from_d = parse_datetime(from, tz).map_err(|e| anyhow::anyhow!("--from {from:?}: {e}"))?;
    let to_d = parse_datetime(to, tz).map_err(|e| anyhow::anyhow!("--to {to:?}: {e}"))?;
    let conf: Value = match &a.conf {
        Some(t) => {
            serde_json::from_str(t).with_context(|| format!("--conf is not valid JSON: {t}"))?
        }
        None => json!({}),
    };
    let reprocess = match a.reprocess {
        ReprocessArg::Missing => Reprocess::Missing,
        ReprocessArg::Failed => Reprocess::Failed,
        ReprocessArg::All => Reprocess::All,
    };
    let nb = NewBackfill {
        dag_id: dag.dag_id.clone(),
        from_date: from_d,
        to_date: to_d,
        reprocess,
        max_active_runs: a.max_active_runs,
        reverse: a.reverse,
        conf,
    };
    if a.dry_run {
        let plan = backfill::dry_run(store, &dag, &nb).await?;
        if settings.json() {
            let v: Vec<Value> = plan
                .iter()
                .map(|(i, act)| json!({"logical_date": i.start, "data_interval_end": i.end, "action": act}))
                .collect();
            output::json(&v)?;
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = plan
            .iter()
            .map(|(i, act)| vec![ts(i.start), ts(i.end), act.to_string()])
            .collect();
        output::table(
            &["LOGICAL DATE (UTC)", "INTERVAL END (UTC)", "ACTION"],
            &rows,
        );
        let n = |x| plan.iter().filter(|(_, a)| *a == x).count();
        println!(
            "dry run: {} date(s): {} to create, {} to clear and re-run, {} left alone; nothing was changed",
            plan.len(),
            n(DateAction::Create),
            n(DateAction::Clear),
            n(DateAction::Skip)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (bf, plan) = backfill::create(store, &dag, &nb).await?;
    if settings.json() && a.detach {
        output::json(&bf)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "backfill {} of {}: {} date(s) from {} to {} (reprocess {}, {} at a time{})",
        bf.id,
        bf.dag_id,
        plan.len(),
        ts(bf.from_date),
        ts(bf.to_date),
        bf.reprocess,
        bf.max_active_runs,
        if bf.reverse { ", newest first" } else { "" }
    );
    if a.detach {
        println!(
            "detached: the schedulers run it; follow with `tributary backfill show {} --follow`",
            bf.id
        );
        return Ok(ExitCode::SUCCESS);
    }
    follow_progress(settings, store, bf).await
}

fn line(p: &Progress) -> String {
    format!(
        "{} done · {} failed · {} running · {} queued · {} pending{}",
        p.success + p.skipped,
        p.failed,
        p.running,
        p.queued,
        p.pending,
        if p.cancelled > 0 {
            format!(" · {} cancelled", p.cancelled)
        } else {
            String::new()
        }
    )
}

/// Shows live progress until the backfill ends (Ctrl-C detaches; the backfill goes on).
async fn follow_progress(
    settings: &Settings,
    store: &dyn Store,
    bf: BackfillRecord,
) -> Result<ExitCode> {
    let tty = std::io::stdout().is_terminal() && !settings.json();
    let bar = indicatif::ProgressBar::hidden();
    if tty {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stdout());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }
    let mut changes = store.changes(scheduler::store::Wake::OnAnyChange).await?;
    let started = Instant::now();
    let mut last = String::new();
    let first_finished =
        Progress::of(&store.backfill_dates(bf.id, None, None, false).await?).finished();
    loop {
        let cur = get(store, bf.id).await?;
        let p = Progress::of(&store.backfill_dates(bf.id, None, None, false).await?);
        let done = p.finished();
        let rate = (done.saturating_sub(first_finished)) as f64
            / started.elapsed().as_secs_f64().max(0.001);
        let eta = if rate > 0.0 && done < p.total {
            format!(
                " · ETA {}",
                humantime::format_duration(Duration::from_secs(
                    ((p.total - done) as f64 / rate) as u64
                ))
            )
        } else {
            String::new()
        };
        let msg = format!("{}{eta}", line(&p));
        if tty {
            // Message first: a redraw between the two calls then shows
            // matching figures.
            bar.set_message(msg);
            bar.set_length(p.total as u64);
            bar.set_position(done as u64);
        } else if line(&p) != last {
            println!("{}/{} {}", done, p.total, line(&p));
            last = line(&p);
        }
        if cur.state != BackfillState::Running {
            bar.finish();
            println!("backfill {} {}: {}", cur.id, cur.state, line(&p));
            return Ok(if p.failed > 0 || cur.state == BackfillState::Cancelled {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                bar.abandon();
                println!("detached: backfill {} goes on; `tributary backfill show {} --follow` to watch again", bf.id, bf.id);
                return Ok(ExitCode::SUCCESS);
            }
            _ = tokio::time::timeout(Duration::from_secs(1), changes.next()) => {}
        }
    }
}

async fn list(settings: &Settings, store: &dyn Store, dag: Option<&str>) -> Result<ExitCode> {
    let all = store.list_backfills(dag, None, 100).await?;
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for bf in &all {
        let p = Progress::of(&store.backfill_dates(bf.id, None, None, false).await?);
        rows.push(vec![
            bf.id.to_string(),
            bf.dag_id.clone(),
            format!("{} → {}", ts(bf.from_date), ts(bf.to_date)),
            bf.reprocess.to_string(),
            bf.state.to_string(),
            format!("{}/{}", p.finished(), p.total),
            opt_ts(Some(bf.created_at)),
        ]);
        items.push(json!({"backfill": bf, "progress": p}));
    }
    if settings.json() {
        output::json(&items)?;
    } else {
        output::table(
            &[
                "ID",
                "DAG",
                "RANGE (UTC)",
                "REPROCESS",
                "STATE",
                "DONE",
                "CREATED",
            ],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(settings: &Settings, store: &dyn Store, bf: &BackfillRecord) -> Result<ExitCode> {
    let dates = store.backfill_dates(bf.id, None, None, bf.reverse).await?;
    let p = Progress::of(&dates);
    if settings.json() {
        output::json(&json!({"backfill": bf, "progress": p, "dates": dates}))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "backfill {} of {} — {} — {}",
        bf.id,
        bf.dag_id,
        bf.state,
        line(&p)
    );
    let rows: Vec<Vec<String>> = dates
        .iter()
        .map(|d| {
            vec![
                ts(d.logical_date),
                d.action.to_string(),
                d.state.to_string(),
                d.run_state.map_or("-".into(), |s| s.to_string()),
            ]
        })
        .collect();
    output::table(&["LOGICAL DATE (UTC)", "ACTION", "STATE", "RUN"], &rows);
    Ok(ExitCode::SUCCESS)
}
