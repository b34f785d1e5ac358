//! The OpenAPI 3.1 document of `/api/v1`, served at
//! `/api/v1/openapi.json` and rendered as the API reference page (`/api`).
//!
//! Bodies and responses are the JSON Schemas of the very types the handlers
//! read and write (schemars, from their serde attributes), so the document
//! cannot drift from the server; each operation lists only the errors it can
//! return. A router test checks that every path here is routed and every
//! route is here, and the test suite runs schemathesis against it.

use std::sync::LazyLock;

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::dags::DagSummary;
use crate::query::{SqlAnswer, SqlBody};
use crate::service::{BackfillBody, ClearBody};
use crate::service::{ClearRunBody, DagPatch, MarkBody, TriggerBody};
use crate::streams::StreamStatus;
use crate::transforms::TransformInfo;
use scheduler::actions::ActionReport;
use scheduler::backfill::Progress;
use scheduler::model::{
    BackfillDate, BackfillRecord, ImportError, LogLine, RunRecord, TaskInstance, TryRecord,
};

/// Schemas of the types under `#/components/schemas`: responses with the
/// serialize contract, request bodies with the deserialize one.
struct Schemas {
    out: SchemaGenerator,
    inp: SchemaGenerator,
}

impl Schemas {
    fn new() -> Schemas {
        let settings = |contract| {
            let mut s = SchemaSettings::draft2020_12();
            s.definitions_path = "/components/schemas".into();
            s.contract = contract;
            s
        };
        Schemas {
            out: settings(Contract::Serialize).into_generator(),
            inp: settings(Contract::Deserialize).into_generator(),
        }
    }

    /// A response type's schema (a `$ref` for named types).
    fn out<T: JsonSchema>(&mut self) -> Value {
        self.out.subschema_for::<T>().to_value()
    }

    /// A request body type's schema.
    fn inp<T: JsonSchema>(&mut self) -> Value {
        self.inp.subschema_for::<T>().to_value()
    }

    fn components(mut self) -> Map<String, Value> {
        let mut all = self.out.take_definitions(true);
        for (k, v) in self.inp.take_definitions(true) {
            all.entry(k).or_insert(v);
        }
        all
    }
}

fn p(name: &str, desc: &str, ty: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": desc, "schema": {"type": ty}})
}

fn q(name: &str, schema: Value, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema})
}

fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn error(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// What an operation can answer besides success.
#[derive(Clone, Copy)]
enum Errs {
    /// A read without path or query parameters.
    Read,
    /// A read of something named in the path, or with query parameters.
    ReadOne,
    /// A change (JSON body) of something named in the path or body.
    Change,
    /// A change that can collide with an existing run (trigger).
    ChangeConflict,
}

fn responses(errs: Errs, code: &str, desc: &str, schema: Value) -> Value {
    let mut r = Map::new();
    r.insert(
        code.into(),
        json!({"description": desc, "content": {"application/json": {"schema": schema}}}),
    );
    r.insert(
        "401".into(),
        error("The server has a token and the request has none (or a wrong one)"),
    );
    r.insert("403".into(), error("Refused: a cross-site request, or (without a token) a Host that is not a loopback name"));
    if !matches!(errs, Errs::Read) {
        r.insert(
            "400".into(),
            error(
                "A malformed path parameter, query parameter or JSON body (the message names it)",
            ),
        );
        r.insert(
            "404".into(),
            error("Not found (the message suggests the nearest id)"),
        );
    }
    if matches!(errs, Errs::Change | Errs::ChangeConflict) {
        r.insert("415".into(), error("Send Content-Type: application/json"));
        r.insert("422".into(), error("Invalid values (every problem listed)"));
    }
    if matches!(errs, Errs::ChangeConflict) {
        r.insert(
            "409".into(),
            error("A run already exists at that logical date"),
        );
    }
    Value::Object(r)
}

fn op(summary: &str, params: Vec<Value>, body: Option<Value>, responses: Value) -> Value {
    let mut o = json!({"summary": summary, "parameters": params, "responses": responses});
    if let Some(b) = body {
        o["requestBody"] =
            json!({"required": false, "content": {"application/json": {"schema": b}}});
    }
    o
}

fn dag_p() -> Value {
    p("dag_id", "DAG id", "string")
}

fn run_ps() -> Vec<Value> {
    vec![dag_p(), p("run_id", "Run id", "string")]
}

fn ti_ps() -> Vec<Value> {
    [run_ps(), vec![p("task_id", "Task id", "string")]].concat()
}

/// A DAG as `GET /dags/{dag_id}` returns it.
fn dag_schema() -> Value {
    let opt_date = json!({"type": ["string", "null"], "format": "date-time"});
    let task = object(
        json!({
            "task_id": {"type": "string"}, "kind": {"type": "string"},
            "depends_on": array(json!({"type": "string"})), "trigger_rule": {"type": "string"},
            "retries": {"type": "integer"}, "retry_delay_secs": {"type": "number"},
            "retry_exponential_backoff": {"type": "boolean"}, "max_retry_delay_secs": {"type": "number"},
            "execution_timeout_secs": {"type": ["number", "null"]}, "pool": {"type": "string"},
            "priority": {"type": "integer"}, "settings": {}
        }),
        &[
            "task_id",
            "kind",
            "depends_on",
            "trigger_rule",
            "retries",
            "pool",
            "priority",
        ],
    );
    object(
        json!({
            "dag_id": {"type": "string"}, "description": {"type": "string"}, "fileloc": {"type": "string"},
            "schedule": {"type": "string"}, "timezone": {"type": "string"},
            "start_date": opt_date, "end_date": opt_date, "catchup": {"type": "boolean"},
            "max_active_runs": {"type": "integer"}, "max_active_tasks": {"type": "integer"},
            "tags": array(json!({"type": "string"})), "params": {"type": "object"},
            "tasks": array(task), "source": {"type": "string"}, "is_paused": {"type": "boolean"}
        }),
        &["dag_id", "schedule", "timezone", "tasks", "is_paused"],
    )
}

/// The document, built once (it is the same for the life of the process).
pub(crate) fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(build);
    &DOCUMENT
}

/// Over 120 lines on purpose: it is the API's table of contents, every path
/// with its parameters and answers in the order the reference shows them,
/// and splitting it would scatter that list.
fn build() -> Value {
    let mut s = Schemas::new();
    let limit = |max: i64, desc: &str| {
        q(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": max}),
            desc,
        )
    };
    let before = q(
        "before",
        json!({"type": "string", "format": "date-time"}),
        "Cursor: the `next_before` of the previous page (RFC 3339)",
    );
    let next_before = json!({"type": ["string", "null"], "format": "date-time"});
    let run = s.out::<RunRecord>();
    let ti = s.out::<TaskInstance>();
    let report = s.out::<ActionReport>();
    let bf = s.out::<BackfillRecord>();
    let progress = s.out::<Progress>();
    let stream = s.out::<StreamStatus>();
    let import_errors = array(s.out::<ImportError>());
    let with_progress = object(
        json!({"backfill": bf, "progress": progress, "finished": {"type": "boolean"}}),
        &["backfill", "progress", "finished"],
    );
    let mut backfill_one = with_progress.clone();
    backfill_one["properties"]["dates"] = array(s.out::<BackfillDate>());
    let plan = object(
        json!({"dry_run": {"const": true}, "plan": array(object(json!({
            "logical_date": {"type": "string", "format": "date-time"},
            "data_interval_end": {"type": "string", "format": "date-time"},
            "action": {"enum": ["create", "clear", "skip"]}}), &["logical_date", "data_interval_end", "action"]))}),
        &["dry_run", "plan"],
    );
    let created = object(
        json!({"backfill": bf, "dates": {"type": "integer"}}),
        &["backfill", "dates"],
    );
    let paths = json!({
        "/dags": {"get": op("Active DAGs with their next run, run counts and recent runs, and the import errors",
            vec![q("tag", json!({"type": "string"}), "Only DAGs with this tag")], None,
            responses(Errs::ReadOne, "200", "DAGs and import errors",
                object(json!({"dags": array(s.out::<DagSummary>()), "import_errors": import_errors.clone()}), &["dags", "import_errors"])))},
        "/dags/{dag_id}": {
            "get": op("A DAG: tasks, params, schedule, source (also a removed DAG's)", vec![dag_p()], None,
                responses(Errs::ReadOne, "200", "The DAG", dag_schema())),
            "patch": op("Pause or unpause", vec![dag_p()], Some(s.inp::<DagPatch>()),
                responses(Errs::Change, "200", "The DAG", dag_schema()))
        },
        "/dags/{dag_id}/runs": {
            "get": op("Runs, newest first (keyset pages)", vec![dag_p(), limit(500, "Page size (default 50)"), before.clone()], None,
                responses(Errs::ReadOne, "200", "A page of runs",
                    object(json!({"runs": array(run.clone()), "next_before": next_before}), &["runs", "next_before"]))),
            "post": op("Trigger a run with a conf (checked against the DAG's params)", vec![dag_p()], Some(s.inp::<TriggerBody>()),
                responses(Errs::ChangeConflict, "201", "The run", run.clone()))
        },
        "/dags/{dag_id}/runs/{run_id}": {"get": op("A run and its task instances", run_ps(), None,
            responses(Errs::ReadOne, "200", "The run",
                object(json!({"run": run, "task_instances": array(ti.clone())}), &["run", "task_instances"])))},
        "/dags/{dag_id}/runs/{run_id}/mark": {"post": op("Mark a run success or failed", run_ps(), Some(s.inp::<MarkBody>()),
            responses(Errs::Change, "200", "What changed", report.clone()))},
        "/dags/{dag_id}/runs/{run_id}/clear": {"post": op("Clear a run's tasks (all, or only the failed and upstream_failed ones) to run again", run_ps(),
            Some(s.inp::<ClearRunBody>()), responses(Errs::Change, "200", "What changed", report.clone()))},
        "/dags/{dag_id}/runs/{run_id}/tasks": {"get": op("Task instances of a run", run_ps(), None,
            responses(Errs::ReadOne, "200", "Task instances", object(json!({"task_instances": array(ti.clone())}), &["task_instances"])))},
        "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}": {"get": op("One task instance", ti_ps(), None,
            responses(Errs::ReadOne, "200", "The task instance", ti))},
        "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs": {"get": op("Log lines of one try (tail with `after`)",
            [ti_ps(), vec![
                q("try", json!({"type": "integer", "minimum": 1}), "Try number (default: the latest)"),
                q("after", json!({"type": "integer"}), "Only lines with a greater id"),
                limit(10_000, "At most this many lines (default 1000)")]].concat(), None,
            responses(Errs::ReadOne, "200", "Lines", object(json!({
                "try_number": {"type": "integer"}, "tries": {"type": "integer"}, "state": s.out::<scheduler::state::TaskState>(),
                "finished": {"type": "boolean"}, "lines": array(s.out::<LogLine>()), "next_after": {"type": ["integer", "null"]}}),
                &["try_number", "tries", "state", "finished", "lines", "next_after"])))},
        "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/tries": {"get": op("Every try of a task instance with its own state, times, host and error", ti_ps(), None,
            responses(Errs::ReadOne, "200", "Tries", object(json!({"tries": array(s.out::<TryRecord>())}), &["tries"])))},
        "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear": {"post": op("Clear a task (and optionally its downstream/upstream) to run again", ti_ps(),
            Some(s.inp::<ClearBody>()), responses(Errs::Change, "200", "What changed", report.clone()))},
        "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark": {"post": op("Mark a task success or failed", ti_ps(), Some(s.inp::<MarkBody>()),
            responses(Errs::Change, "200", "What changed", report))},
        "/backfills": {
            "get": op("Backfills, newest first, with progress", vec![
                    q("dag_id", json!({"type": "string"}), "Only this DAG"),
                    q("state", json!({"enum": ["running", "completed", "cancelled"]}), "Only backfills in this state"),
                    limit(500, "At most this many (default 50)")], None,
                responses(Errs::ReadOne, "200", "Backfills", object(json!({"backfills": array(with_progress)}), &["backfills"]))),
            "post": op("Create a backfill (or plan it with dry_run)", vec![], Some(s.inp::<BackfillBody>()),
                {
                    let mut r = responses(Errs::Change, "201", "The backfill, recorded: the schedulers run it", created);
                    r["200"] = json!({"description": "The plan (dry run): nothing was changed", "content": {"application/json": {"schema": plan}}});
                    r
                })
        },
        "/backfills/{id}": {"get": op("A backfill with its progress and dates", vec![p("id", "Backfill id", "integer")], None,
            responses(Errs::ReadOne, "200", "The backfill", backfill_one))},
        "/backfills/{id}/cancel": {"post": op("Cancel a backfill", vec![p("id", "Backfill id", "integer")], Some(json!({"type": "object"})),
            responses(Errs::Change, "200", "The backfill", object(json!({"backfill": bf}), &["backfill"])))},
        "/streams": {"get": op("Every stream: table, lag per partition, dead letters", vec![], None,
            responses(Errs::Read, "200", "Streams", object(json!({"streams": array(stream.clone())}), &["streams"])))},
        "/streams/{name}": {"get": op("One stream", vec![p("name", "Stream name", "string")], None,
            responses(Errs::ReadOne, "200", "The stream", stream))},
        "/transforms": {"get": op("Every transform: source version, checkpoint, versions behind, last commit, reference versions", vec![], None,
            responses(Errs::Read, "200", "Transforms", object(json!({"transforms": array(s.out::<TransformInfo>())}), &["transforms"])))},
        "/sql": {"post": op("Run a read-only SQL query over the lake's tables (DataFusion): rows with their column types, the total row count and the table versions read",
            vec![], Some(s.inp::<SqlBody>()),
            {
                let mut r = responses(Errs::Change, "200", "The answer", s.out::<SqlAnswer>());
                r["400"] = error("A malformed body, or a query that cannot run: `error.kind` says which (syntax, unknown_table, unknown_column, plan, not_allowed, timeout, memory_limit, execution), `error.line` and `error.column` where in the SQL");
                r["200"]["content"][lake::sql::wire::MEDIA_TYPE] = json!({"schema": {"type": "string", "format": "binary",
                    "description": "With `Accept: application/vnd.apache.arrow.stream`: the rows as an Arrow IPC stream (every row without a limit, any limit allowed). The schema's metadata carries `tributary.tables` (JSON: table → version) and `tributary.made_of` (JSON array), and with a limit `tributary.rows` and `tributary.elapsed_ms`. A failure part way ends the body without the stream's end marker."}});
                r["404"] = error("The server has no lake to query");
                r["409"] = error("An Arrow request's `x-tributary-project` header names another project than the one this server serves");
                r
            })},
        "/server": {"get": op("What this server is: the project it serves (its config file's path; `tributary sql` asks a server only of its own project), its version, whether it answers SQL", vec![], None,
            responses(Errs::Read, "200", "The server", object(json!({"project": {"type": ["string", "null"]}, "version": {"type": "string"}, "sql": {"type": "boolean"}}), &["project", "version", "sql"])))},
        "/import_errors": {"get": op("DAG files that failed to load (file:line:col messages)", vec![], None,
            responses(Errs::Read, "200", "Import errors", object(json!({"import_errors": import_errors}), &["import_errors"])))},
        "/openapi.json": {"get": op("This document", vec![], None,
            responses(Errs::Read, "200", "The OpenAPI document", json!({"type": "object"})))}
    });
    let mut schemas = s.components();
    schemas.insert(
        "Error".into(),
        object(
            json!({"error": object(json!({"status": {"type": "integer"}, "message": {"type": "string"}}), &["status", "message"])}),
            &["error"],
        ),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tributary REST API",
            "version": "1",
            "description": "DAGs, runs, task instances and their tries, logs, backfills, streams and SQL over the lake. With a token on the server, every request needs `Authorization: Bearer TOKEN` (reads too, unless `[web] anonymous_read`); changes take a JSON body (`{}` when there is nothing to say)."
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas
        },
        "security": [{}, {"bearer": []}],
        "paths": paths
    })
}

/// Each path of the document (split at `/`, `{…}` matching any segment)
/// with the methods it has, upper case.
static METHODS: LazyLock<Vec<(Vec<String>, Vec<String>)>> = LazyLock::new(|| {
    document()["paths"]
        .as_object()
        .map(|paths| {
            paths
                .iter()
                .map(|(path, ops)| {
                    let segs = path.split('/').map(str::to_string).collect();
                    let mut methods: Vec<String> = ops
                        .as_object()
                        .map(|o| o.keys().map(|m| m.to_uppercase()).collect())
                        .unwrap_or_default();
                    if methods.iter().any(|m| m == "GET") {
                        methods.push("HEAD".into());
                    }
                    (segs, methods)
                })
                .collect()
        })
        .unwrap_or_default()
});

/// The methods the API path (below `/api/v1`) has, or `None` when no path
/// of the document matches it.
pub(crate) fn allowed_methods(path: &str) -> Option<&'static [String]> {
    let segs: Vec<&str> = path.split('/').collect();
    METHODS.iter().find_map(|(tpl, methods)| {
        (tpl.len() == segs.len()
            && tpl
                .iter()
                .zip(&segs)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s))
        .then_some(methods.as_slice())
    })
}
