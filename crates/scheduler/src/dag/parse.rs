//! Parse a DAG file, validate it without I/O collecting every problem, and
//! build the [`Dag`].
//!
//! The file is parsed once into spanned TOML values; then the DAG-level keys,
//! each `[params.NAME]` and each `[[task]]` are deserialized on their own, so
//! one broken task does not hide the problems of the others. Semantic checks
//! (ids, graph, cycles, cron, time zone, dates, params, kind settings) run on
//! whatever parsed, and every problem becomes a [`Diagnostic`].

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use petgraph::graphmap::DiGraphMap;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::file::{DagHeader, DateValue, TASK_HEADER_KEYS, TaskHeader, TaskSettings};
use super::{Dag, Diagnostic, RetryPolicy, Task, TriggerRule, stable_hash};
use crate::conf::{Param, ParamDef, Params};
use crate::operator::{KindSettings, Kinds};
use crate::timetable::{Schedule, Timetable};

const DEFAULT_MAX_ACTIVE: u32 = 16;
const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(300);
const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(86_400);
/// The pool every task uses unless it names another.
pub const DEFAULT_POOL: &str = "default_pool";

/// A task as parsed: its id, the built task (None when its kind or
/// settings failed), and its upstream ids, all with positions.
type ParsedTask = (Spanned<String>, Option<Task>, Vec<Spanned<String>>);

/// Collects diagnostics for one file, turning byte spans into line:col.
struct Diags<'a> {
    file: String,
    source: &'a str,
    list: Vec<Diagnostic>,
}

impl<'a> Diags<'a> {
    fn err(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (line, col) = line_col(self.source, span.map_or(0, |s| s.start));
        self.list.push(Diagnostic {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        });
    }

    /// Deserializes a spanned value, recording the error (with a suggestion
    /// for unknown keys) and returning `None` on failure.
    fn de<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'a>>,
        what: &str,
        known: &[&str],
    ) -> Option<T> {
        let whole = value.span();
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = improve_serde_message(e.message(), known);
                self.err(e.span().or(Some(whole)), format!("{what}: {msg}"));
                None
            }
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..source.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Rewrites serde's "unknown field `x`, expected one of …" into a sentence
/// with a "did you mean" suggestion.
fn improve_serde_message(msg: &str, known: &[&str]) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some(name) = rest.split('`').next()
    {
        return match suggest(name, known) {
            Some(s) => format!("unknown key `{name}` (did you mean `{s}`?)"),
            None => format!("unknown key `{name}` (known keys: {})", known.join(", ")),
        };
    }
    msg.trim_end().to_string()
}

/// The closest candidate to `name` by edit distance, if close enough.
pub fn suggest<'k>(name: &str, candidates: &[&'k str]) -> Option<&'k str> {
    candidates
        .iter()
        .map(|c| (levenshtein(name, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

const DAG_KEYS: &[&str] = &[
    "dag_id",
    "description",
    "schedule",
    "timezone",
    "start_date",
    "end_date",
    "catchup",
    "max_active_runs",
    "max_active_tasks",
    "tags",
    "defaults",
    "params",
    "task",
];

/// Checks a DAG file's text; returns every problem (empty when valid).
pub fn validate_source(file: &Path, source: &str, kinds: &Kinds) -> Vec<Diagnostic> {
    parse_dag(file, source, kinds).err().unwrap_or_default()
}

/// Parses and validates a DAG file's text into a [`Dag`], or returns every
/// problem found, each with file:line:col.
pub fn parse_dag(file: &Path, source: &str, kinds: &Kinds) -> Result<Dag, Vec<Diagnostic>> {
    let mut d = Diags {
        file: file.display().to_string(),
        source,
        list: Vec::new(),
    };
    let (root, syntax) = DeTable::parse_recoverable(source);
    if !syntax.is_empty() {
        for e in syntax {
            d.err(e.span(), format!("TOML syntax: {}", e.message().trim_end()));
        }
        return Err(d.list);
    }
    let root_span = root.span();
    let mut table = root.into_inner();
    let tasks_value = table.remove("task");
    let params_value = table.remove("params");
    let header: Option<DagHeader> = d.de(
        Spanned::new(root_span.clone(), DeValue::Table(table)),
        "DAG",
        DAG_KEYS,
    );

    // Time zone and dates.
    let mut tz = Tz::UTC;
    let mut schedule = Schedule::None;
    let (mut start, mut end) = (None, None);
    if let Some(h) = &header {
        if !valid_id(h.dag_id.get_ref()) {
            d.err(
                Some(h.dag_id.span()),
                format!(
                    "invalid dag_id {:?}: use 1 to 250 letters, digits, '_', '-' or '.'",
                    h.dag_id.get_ref()
                ),
            );
        }
        if let Some(z) = &h.timezone {
            match z.get_ref().parse::<Tz>() {
                Ok(t) => tz = t,
                Err(_) => d.err(
                    Some(z.span()),
                    format!("unknown time zone {:?}: use an IANA name such as \"Europe/Paris\" or \"UTC\"", z.get_ref()),
                ),
            }
        }
        if let Some(s) = &h.schedule {
            match Schedule::parse(s.get_ref()) {
                Ok(sch) => schedule = sch,
                Err(e) => d.err(Some(s.span()), e),
            }
        }
        start = h
            .start_date
            .as_ref()
            .and_then(|v| date_in_tz(&mut d, v, tz, "start_date"));
        end = h
            .end_date
            .as_ref()
            .and_then(|v| date_in_tz(&mut d, v, tz, "end_date"));
        if let (Some(s), Some(e), Some(ev)) = (start, end, &h.end_date)
            && e < s
        {
            d.err(
                Some(ev.span()),
                format!("end_date ({e}) is before start_date ({s})"),
            );
        }
        for (key, v) in [
            ("max_active_runs", h.max_active_runs),
            ("max_active_tasks", h.max_active_tasks),
        ] {
            if v == Some(0) {
                d.err(Some(root_span.clone()), format!("{key} must be at least 1"));
            }
        }
        check_settings(&mut d, &h.defaults, Some(root_span.clone()), "[defaults]");
    }

    // Params.
    let mut params = BTreeMap::new();
    if let Some(pv) = params_value {
        let span = pv.span();
        match pv.into_inner() {
            DeValue::Table(t) => {
                for (name, value) in t {
                    let vspan = value.span();
                    let label = format!("param {:?}", name.get_ref());
                    if let Some(def) = d.de::<ParamDef>(
                        value,
                        &label,
                        &[
                            "type",
                            "default",
                            "description",
                            "enum",
                            "minimum",
                            "maximum",
                        ],
                    ) {
                        match Param::from_def(name.get_ref(), def) {
                            Ok(p) => {
                                params.insert(name.get_ref().to_string(), p);
                            }
                            Err(problems) => {
                                for p in problems {
                                    d.err(Some(vspan.clone()), p);
                                }
                            }
                        }
                    }
                }
            }
            _ => d.err(
                Some(span),
                "`params` must be a table of [params.NAME] tables",
            ),
        }
    }

    // Tasks.
    let mut tasks: Vec<ParsedTask> = Vec::new();
    let task_values: Vec<Spanned<DeValue>> = match tasks_value.map(|v| (v.span(), v.into_inner())) {
        None => {
            d.err(
                Some(root_span.clone()),
                "the DAG has no tasks: add at least one [[task]] table",
            );
            Vec::new()
        }
        Some((_, DeValue::Array(a))) => a.iter().cloned().collect(),
        Some((span, _)) => {
            d.err(
                Some(span),
                "`task` must be an array of tables: write each task as [[task]]",
            );
            Vec::new()
        }
    };
    let defaults = header
        .as_ref()
        .map(|h| h.defaults.clone())
        .unwrap_or_default();
    for (n, tv) in task_values.into_iter().enumerate() {
        let tspan = tv.span();
        let DeValue::Table(t) = tv.into_inner() else {
            d.err(
                Some(tspan),
                format!("task #{}: expected a table ([[task]])", n + 1),
            );
            continue;
        };
        let (mut common, mut rest) = (DeTable::new(), DeTable::new());
        for (k, v) in t {
            if TASK_HEADER_KEYS.contains(&k.get_ref().as_ref()) {
                common.insert(k, v);
            } else {
                rest.insert(k, v);
            }
        }
        let label_id = common
            .get("id")
            .and_then(|v| match v.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                _ => None,
            })
            .map_or_else(|| format!("task #{}", n + 1), |id| format!("task {id:?}"));
        let Some(th) = d.de::<TaskHeader>(
            Spanned::new(tspan.clone(), DeValue::Table(common)),
            &label_id,
            TASK_HEADER_KEYS,
        ) else {
            continue;
        };
        if !valid_id(th.id.get_ref()) {
            d.err(
                Some(th.id.span()),
                format!(
                    "invalid task id {:?}: use 1 to 250 letters, digits, '_', '-' or '.'",
                    th.id.get_ref()
                ),
            );
        }
        check_settings(&mut d, &th.settings, Some(tspan.clone()), &label_id);
        let Some(kind) = kinds.get(th.kind.get_ref()) else {
            let names = kinds.names();
            let hint = match suggest(th.kind.get_ref(), &names) {
                Some(s) => format!("did you mean {s:?}?"),
                None => format!("known kinds: {}", names.join(", ")),
            };
            d.err(
                Some(th.kind.span()),
                format!(
                    "{label_id}: unknown task kind {:?} ({hint})",
                    th.kind.get_ref()
                ),
            );
            tasks.push((th.id, None, th.depends_on));
            continue;
        };
        let ks = KindSettings {
            value: Spanned::new(tspan.clone(), DeValue::Table(rest)),
            source,
        };
        let operator = match kind.build(&ks) {
            Ok(op) => op,
            Err(errs) => {
                for e in errs {
                    let msg = improve_serde_message(&e.message, &[]);
                    let msg = if msg.starts_with("unknown key") {
                        let key = msg.split('`').nth(1).unwrap_or_default();
                        let mut all: Vec<&str> = TASK_HEADER_KEYS.to_vec();
                        let schema = kind.settings_schema();
                        let props: Vec<String> = schema
                            .get("properties")
                            .and_then(|p| p.as_object())
                            .map(|o| o.keys().cloned().collect())
                            .unwrap_or_default();
                        all.extend(props.iter().map(String::as_str));
                        match suggest(key, &all) {
                            Some(s) => format!(
                                "unknown key `{key}` for a {} task (did you mean `{s}`?)",
                                kind.name()
                            ),
                            None => format!("unknown key `{key}` for a {} task", kind.name()),
                        }
                    } else {
                        msg
                    };
                    d.err(e.span.or(Some(tspan.clone())), format!("{label_id}: {msg}"));
                }
                // Still part of the graph, so dependents are checked correctly.
                tasks.push((th.id, None, th.depends_on));
                continue;
            }
        };
        let s = merge(&defaults, &th.settings);
        let task = Task {
            id: th.id.get_ref().clone(),
            kind: th.kind.get_ref().clone(),
            depends_on: th.depends_on.iter().map(|x| x.get_ref().clone()).collect(),
            retry: RetryPolicy {
                retries: s.retries.unwrap_or(0),
                retry_delay: s.retry_delay.map_or(DEFAULT_RETRY_DELAY, |x| x.0),
                exponential_backoff: s.retry_exponential_backoff.unwrap_or(false),
                max_retry_delay: s.max_retry_delay.map_or(DEFAULT_MAX_RETRY_DELAY, |x| x.0),
            },
            execution_timeout: s.execution_timeout.map(|x| x.0),
            trigger_rule: s.trigger_rule.unwrap_or(TriggerRule::AllSuccess),
            pool: s.pool.clone().unwrap_or_else(|| DEFAULT_POOL.to_string()),
            priority: s.priority.unwrap_or(1),
            settings: ks.to_json(),
            operator,
        };
        tasks.push((th.id, Some(task), th.depends_on));
    }

    // Graph: duplicate ids, unknown upstreams, cycles.
    let mut first_at: HashMap<String, Range<usize>> = HashMap::new();
    let mut unique: Vec<ParsedTask> = Vec::new();
    for (id, task, deps) in tasks {
        if let Some(prev) = first_at.get(id.get_ref()) {
            let (line, _) = line_col(source, prev.start);
            d.err(
                Some(id.span()),
                format!(
                    "duplicate task id {:?} (first defined on line {line})",
                    id.get_ref()
                ),
            );
            continue;
        }
        first_at.insert(id.get_ref().clone(), id.span());
        unique.push((id, task, deps));
    }
    let ids: Vec<&str> = unique
        .iter()
        .map(|(id, _, _)| id.get_ref().as_str())
        .collect();
    let mut graph: DiGraphMap<usize, ()> = DiGraphMap::new();
    for i in 0..unique.len() {
        graph.add_node(i);
    }
    for (i, (id, _, deps)) in unique.iter().enumerate() {
        let mut seen = Vec::new();
        for dep in deps {
            let name = dep.get_ref().as_str();
            if name == id.get_ref() {
                d.err(Some(dep.span()), format!("task {name:?} depends on itself"));
            } else if seen.contains(&name) {
                d.err(
                    Some(dep.span()),
                    format!("task {:?} lists {name:?} twice in depends_on", id.get_ref()),
                );
            } else if let Some(j) = ids.iter().position(|x| *x == name) {
                graph.add_edge(j, i, ());
            } else {
                let hint = suggest(name, &ids)
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                d.err(
                    Some(dep.span()),
                    format!(
                        "task {:?} depends on unknown task {name:?}{hint}",
                        id.get_ref()
                    ),
                );
            }
            seen.push(name);
        }
    }
    for scc in petgraph::algo::tarjan_scc(&graph) {
        if scc.len() > 1 {
            let path = cycle_path(&graph, &scc);
            let names: Vec<&str> = path.iter().map(|&i| ids[i]).collect();
            d.err(
                Some(unique[path[0]].0.span()),
                format!("tasks form a cycle: {} → {}", names.join(" → "), names[0]),
            );
        }
    }

    d.list.sort_by_key(|x| (x.line, x.col));
    let Some(h) = header else { return Err(d.list) };
    if !d.list.is_empty() {
        return Err(d.list);
    }
    let order = petgraph::algo::toposort(&graph, None).map_err(|_| d.list.clone())?;
    let mut pos_of = vec![0; unique.len()];
    for (p, &i) in order.iter().enumerate() {
        pos_of[i] = p;
    }
    // No diagnostics means every task built.
    let mut slots: Vec<Option<Task>> = unique.into_iter().map(|(_, t, _)| t).collect();
    let tasks: Vec<Task> = order
        .iter()
        .map(|&i| slots[i].take().expect("each index once"))
        .collect();
    let index: HashMap<String, usize> = tasks
        .iter()
        .enumerate()
        .map(|(p, t)| (t.id.clone(), p))
        .collect();
    let upstream: Vec<Vec<usize>> = tasks
        .iter()
        .map(|t| t.depends_on.iter().map(|dep| index[dep.as_str()]).collect())
        .collect();
    let mut downstream = vec![Vec::new(); tasks.len()];
    for (i, ups) in upstream.iter().enumerate() {
        for &u in ups {
            downstream[u].push(i);
        }
    }
    Ok(Dag {
        dag_id: h.dag_id.into_inner(),
        description: h.description,
        fileloc: file.to_path_buf(),
        source: source.to_string(),
        source_hash: stable_hash(source),
        timetable: Timetable {
            schedule,
            tz,
            start,
            end,
            catchup: h.catchup,
        },
        max_active_runs: h.max_active_runs.unwrap_or(DEFAULT_MAX_ACTIVE),
        max_active_tasks: h.max_active_tasks.unwrap_or(DEFAULT_MAX_ACTIVE),
        tags: h.tags,
        params: Params(params),
        tasks,
        index,
        upstream,
        downstream,
    })
}

/// A cycle through the nodes of a strongly connected component, as a path.
fn cycle_path(graph: &DiGraphMap<usize, ()>, scc: &[usize]) -> Vec<usize> {
    let start = *scc.iter().min().expect("non-empty");
    let mut path = vec![start];
    let mut seen = vec![start];
    let mut cur = start;
    loop {
        let mut next: Vec<usize> = graph.neighbors(cur).filter(|n| scc.contains(n)).collect();
        next.sort_unstable();
        if next.contains(&start) && path.len() > 1 {
            return path;
        }
        match next.into_iter().find(|n| !seen.contains(n)) {
            Some(n) => {
                path.push(n);
                seen.push(n);
                cur = n;
            }
            None => {
                // Every neighbour is already on the path: the cycle closes there.
                let back = graph
                    .neighbors(cur)
                    .find(|n| path.contains(n))
                    .unwrap_or(start);
                let from = path.iter().position(|&p| p == back).unwrap_or(0);
                return path[from..].to_vec();
            }
        }
    }
}

fn merge(defaults: &TaskSettings, task: &TaskSettings) -> TaskSettings {
    TaskSettings {
        retries: task.retries.or(defaults.retries),
        retry_delay: task.retry_delay.or(defaults.retry_delay),
        retry_exponential_backoff: task
            .retry_exponential_backoff
            .or(defaults.retry_exponential_backoff),
        max_retry_delay: task.max_retry_delay.or(defaults.max_retry_delay),
        execution_timeout: task.execution_timeout.or(defaults.execution_timeout),
        trigger_rule: task.trigger_rule.or(defaults.trigger_rule),
        pool: task.pool.clone().or_else(|| defaults.pool.clone()),
        priority: task.priority.or(defaults.priority),
    }
}

fn check_settings(d: &mut Diags<'_>, s: &TaskSettings, span: Option<Range<usize>>, what: &str) {
    if s.execution_timeout.is_some_and(|t| t.0.is_zero()) {
        d.err(
            span.clone(),
            format!("{what}: execution_timeout must be longer than zero"),
        );
    }
    if s.pool.as_deref().is_some_and(|p| !valid_id(p)) {
        d.err(
            span,
            format!(
                "{what}: invalid pool name {:?}",
                s.pool.as_deref().unwrap_or_default()
            ),
        );
    }
}

/// Converts a date setting to UTC: dates and local datetimes are read in `tz`.
fn date_in_tz(
    d: &mut Diags<'_>,
    v: &Spanned<DateValue>,
    tz: Tz,
    key: &str,
) -> Option<DateTime<Utc>> {
    let parsed = match v.get_ref() {
        DateValue::Toml(dt) => Ok(*dt),
        DateValue::Text(s) => s
            .parse::<toml::value::Datetime>()
            .map_err(|e| e.to_string()),
    };
    let result = parsed.and_then(|dt| crate::timetable::datetime_in_tz(&dt, tz));
    match result {
        Ok(t) => Some(t),
        Err(e) => {
            d.err(
                Some(v.span()),
                format!("invalid {key}: {e}; write a date like 2026-11-01 or 2026-11-01T06:00:00Z"),
            );
            None
        }
    }
}
