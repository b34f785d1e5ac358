//! Parse a DAG file, validate it without I/O collecting every problem, and
//! build the [`Dag`].
//!
//! The file is parsed once into spanned TOML values; then the DAG-level keys
//! ([`header`]), each `[params.NAME]` ([`params`]) and each `[[task]]`
//! ([`tasks`]) are deserialized on their own, so one broken task does not
//! hide the problems of the others. The graph checks ([`graph`]: ids,
//! upstreams, cycles) run on whatever parsed, and every problem becomes a
//! [`Diagnostic`] with file:line:col.

mod graph;
mod header;
mod params;
mod tasks;

use std::path::Path;

use diag::{Diagnostic, Diags, parse_document};
use toml::Spanned;
use toml::de::DeValue;

pub use self::tasks::DEFAULT_POOL;
use crate::conf::Params;
use crate::dag::file::DagHeader;
use crate::dag::{Dag, stable_hash};
use crate::operator::Kinds;
use crate::timetable::Timetable;

const DEFAULT_MAX_ACTIVE: u32 = 16;

/// Checks a DAG file's text; returns every problem (empty when valid).
pub fn validate_source(file: &Path, source: &str, kinds: &Kinds) -> Vec<Diagnostic> {
    parse_dag(file, source, kinds).err().unwrap_or_default()
}

/// Parses and validates a DAG file's text into a [`Dag`], or returns every
/// problem found, each with file:line:col.
pub fn parse_dag(file: &Path, source: &str, kinds: &Kinds) -> Result<Dag, Vec<Diagnostic>> {
    let mut d = Diags::new(file.display().to_string(), source);
    let Some(root) = parse_document(&mut d) else {
        return Err(d.into_vec());
    };
    let root_span = root.span();
    let mut table = root.into_inner();
    let tasks_value = table.remove("task");
    let params_value = table.remove("params");
    let header: Option<DagHeader> = d.de(
        Spanned::new(root_span.clone(), DeValue::Table(table)),
        "DAG",
        header::TABLE_KEYS,
    );
    let timing = header
        .as_ref()
        .map(|h| header::check_header(&mut d, h, root_span.clone()));
    let params = params_value
        .map(|p| params::parse_params(&mut d, p))
        .unwrap_or_default();
    let defaults = header
        .as_ref()
        .map(|h| h.defaults.clone())
        .unwrap_or_default();
    let parsed = tasks::parse_tasks(&mut d, tasks_value, root_span, &defaults, kinds);
    let graph = graph::check_graph(&mut d, parsed);

    let (Some(h), Some(timing), true) = (header, timing, d.is_empty()) else {
        return Err(d.into_sorted());
    };
    let Some(ordered) = graph.order() else {
        return Err(d.into_sorted());
    };
    let warnings = d.take_warnings();
    Ok(Dag {
        warnings,
        dag_id: h.dag_id.into_inner(),
        description: h.description,
        fileloc: file.to_path_buf(),
        source: source.to_string(),
        source_hash: stable_hash(source),
        timetable: Timetable {
            schedule: timing.schedule,
            tz: timing.tz,
            start: timing.start,
            end: timing.end,
            catchup: h.catchup,
        },
        max_active_runs: h.max_active_runs.unwrap_or(DEFAULT_MAX_ACTIVE),
        max_active_tasks: h.max_active_tasks.unwrap_or(DEFAULT_MAX_ACTIVE),
        tags: h.tags,
        params: Params(params),
        tasks: ordered.tasks,
        index: ordered.index,
        upstream: ordered.upstream,
        downstream: ordered.downstream,
    })
}
