//! `[[task]]` tables: each deserialized on its own (common keys, then the
//! kind's settings), merged with `[defaults]`, and built into a [`Task`].
//! A task whose kind or settings fail still joins the graph, so its
//! dependents are checked correctly.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use diag::{Diags, serde_message, suggest};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::dag::file::{TASK_HEADER_KEYS, TaskHeader, TaskSettings};
use crate::dag::{RetryPolicy, Task, TriggerRule};
use crate::operator::{KindSettings, Kinds, Operator, TaskKind};

const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(300);
const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(86_400);
/// The pool every task uses unless it names another.
pub const DEFAULT_POOL: &str = "default_pool";

/// A valid DAG, task or pool id: 1 to 250 letters, digits, `_`, `-`, `.`.
pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A task as parsed: its id, the built task (None when its kind or
/// settings failed), and its upstream ids, all with positions.
pub(super) type ParsedTask = (Spanned<String>, Option<Task>, Vec<Spanned<String>>);

/// The `task` array's tables.
pub(super) fn parse_tasks<'a>(
    d: &mut Diags<'a>,
    value: Option<Spanned<DeValue<'a>>>,
    root_span: Range<usize>,
    defaults: &TaskSettings,
    kinds: &Kinds,
) -> Vec<ParsedTask> {
    let task_values: Vec<Spanned<DeValue>> = match value.map(|v| (v.span(), v.into_inner())) {
        None => {
            d.err(
                Some(root_span),
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
    task_values
        .into_iter()
        .enumerate()
        .filter_map(|(n, tv)| parse_task(d, n, tv, defaults, kinds))
        .collect()
}

/// A kind's settings error in user words; an unknown key gets a
/// suggestion from the keys a task of this kind accepts.
fn kind_settings_message(message: &str, kind: &dyn TaskKind) -> String {
    let msg = serde_message(message, &[]);
    // Only an unknown key of the task table itself ("unknown key `k` (…)"),
    // not one of a nested table ("unknown key `k` in `env` (…)").
    let Some(key) = msg
        .strip_prefix("unknown key `")
        .and_then(|rest| rest.split_once("` ("))
        .map(|(key, _)| key)
    else {
        return msg;
    };
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
}

/// Task number `n` (from 0), or `None` when not even its id parsed.
fn parse_task<'a>(
    d: &mut Diags<'a>,
    n: usize,
    tv: Spanned<DeValue<'a>>,
    defaults: &TaskSettings,
    kinds: &Kinds,
) -> Option<ParsedTask> {
    let source = d.source();
    let tspan = tv.span();
    let DeValue::Table(t) = tv.into_inner() else {
        d.err(
            Some(tspan),
            format!("task #{}: expected a table ([[task]])", n + 1),
        );
        return None;
    };
    let (mut common, mut rest) = (DeTable::new(), DeTable::new());
    for (k, v) in t {
        if TASK_HEADER_KEYS.contains(&k.get_ref().as_ref()) {
            common.insert(k, v);
        } else {
            rest.insert(k, v);
        }
    }
    let raw_id = common.get("id").and_then(|v| {
        let id = v.get_ref().as_str()?;
        Some(Spanned::new(v.span(), id.to_string()))
    });
    let raw_kind = common
        .get("kind")
        .and_then(|v| v.get_ref().as_str().map(str::to_string));
    let label_id = raw_id.as_ref().map_or_else(
        || format!("task #{}", n + 1),
        |id| format!("task {:?}", id.get_ref()),
    );
    let rest = KindSettings {
        value: Spanned::new(tspan.clone(), DeValue::Table(rest)),
        source,
        file: std::path::PathBuf::from(d.file()),
        warnings: Default::default(),
    };
    let Some(th) = d.de::<TaskHeader>(
        Spanned::new(tspan.clone(), DeValue::Table(common)),
        &label_id,
        &[],
    ) else {
        // The common keys are wrong: the kind's settings are still checked,
        // and the task still joins the graph by its id.
        if let Some(kind) = raw_kind.as_deref().and_then(|k| kinds.get(k)) {
            build_operator(d, kind.as_ref(), &rest, &tspan, &label_id);
        }
        return raw_id.map(|id| (id, None, Vec::new()));
    };
    if !valid_id(th.id.get_ref()) {
        d.err(
            Some(th.id.span()),
            format!(
                "invalid task id {:?}: use 1 to 250 letters, digits, '_', '-' or '.'",
                diag::cut(th.id.get_ref(), 80)
            ),
        );
    }
    check_settings(d, &th.settings, defaults, Some(tspan.clone()), &label_id);
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
                diag::cut(th.kind.get_ref(), 80)
            ),
        );
        return Some((th.id, None, th.depends_on));
    };
    let Some(operator) = build_operator(d, kind.as_ref(), &rest, &tspan, &label_id) else {
        // Still part of the graph, so dependents are checked correctly.
        return Some((th.id, None, th.depends_on));
    };
    let ks = rest;
    let s = merge(defaults, &th.settings);
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
    Some((th.id, Some(task), th.depends_on))
}

/// The kind's operator from the task's own settings, recording every
/// problem with them.
fn build_operator(
    d: &mut Diags<'_>,
    kind: &dyn TaskKind,
    settings: &KindSettings<'_>,
    tspan: &Range<usize>,
    label_id: &str,
) -> Option<Arc<dyn Operator>> {
    let built = kind.build(settings);
    for w in settings.warnings.take() {
        d.warn(
            w.span.or(Some(tspan.clone())),
            format!("{label_id}: {}", w.message),
        );
    }
    match built {
        Ok(op) => Some(op),
        Err(errs) => {
            for e in errs {
                let msg = kind_settings_message(&e.message, kind);
                let span = e
                    .span
                    .or_else(|| settings.span_named_in(&e.message))
                    .unwrap_or_else(|| tspan.clone());
                d.err(Some(span), format!("{label_id}: {msg}"));
            }
            None
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

/// Checks of task settings a schema cannot express; `s` is read over
/// `defaults`, as the task will run.
pub(super) fn check_settings(
    d: &mut Diags<'_>,
    s: &TaskSettings,
    defaults: &TaskSettings,
    span: Option<Range<usize>>,
    what: &str,
) {
    let both = merge(defaults, s);
    let delay = both.retry_delay.map_or(DEFAULT_RETRY_DELAY, |x| x.0);
    let max = both
        .max_retry_delay
        .map_or(DEFAULT_MAX_RETRY_DELAY, |x| x.0);
    if max < delay {
        d.err(
            span.clone(),
            format!(
                "{what}: max_retry_delay ({}) is shorter than retry_delay ({}): \
                 the first retry would already wait longer than the bound",
                humantime::format_duration(max),
                humantime::format_duration(delay)
            ),
        );
    }
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
