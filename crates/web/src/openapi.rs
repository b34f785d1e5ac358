//! The OpenAPI 3.1 document of `/api/v1`, served at
//! `/api/v1/openapi.json`. A router test checks that every path here is
//! routed and every route is here.

use serde_json::{Value, json};

fn p(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": desc, "schema": {"type": "string"}})
}

fn q(name: &str, ty: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": ty}})
}

fn ok(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn errors() -> Value {
    let e = r("Error");
    json!({
        "400": ok("Malformed request (the message names the field)", e.clone()),
        "401": ok("A token is required for changes", e.clone()),
        "403": ok("Cross-site request refused", e.clone()),
        "404": ok("Not found", e.clone()),
        "409": ok("Conflict (a run already exists)", e.clone()),
        "415": ok("Send Content-Type: application/json", e.clone()),
        "422": ok("Invalid input (every problem listed)", e),
    })
}

fn op(summary: &str, params: Vec<Value>, req: Option<Value>, resp: Value) -> Value {
    let mut responses = errors();
    responses["200"] = resp;
    let mut o = json!({"summary": summary, "parameters": params, "responses": responses});
    if let Some(b) = req {
        o["requestBody"] = body(b);
    }
    o
}

fn dag_run_params() -> Vec<Value> {
    vec![p("dag_id", "DAG id"), p("run_id", "Run id")]
}

fn ti_params() -> Vec<Value> {
    vec![
        p("dag_id", "DAG id"),
        p("run_id", "Run id"),
        p("task_id", "Task id"),
    ]
}

/// The document.
pub(crate) fn document() -> Value {
    let obj = json!({"type": "object"});
    let mark = json!({"type": "object", "required": ["state"], "properties": {"state": {"enum": ["success", "failed"]}}});
    let paging = vec![
        q("limit", "integer", "Page size, 1 to 500 (default 50)"),
        q(
            "before",
            "string",
            "Cursor: the `next_before` of the previous page (RFC 3339)",
        ),
    ];
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tributary REST API",
            "version": "1",
            "description": "DAGs, runs, task instances, logs, backfills, streams and lake tables. Reads need no token; changes need `Authorization: Bearer TOKEN` when the server has a token, and a JSON body (`{}` when there is nothing to say)."
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {"status": {"type": "integer"}, "message": {"type": "string"}}}}},
                "Run": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "dag_id": {"type": "string"}, "run_id": {"type": "string"},
                    "run_type": {"enum": ["scheduled", "manual", "backfill"]}, "logical_date": {"type": "string", "format": "date-time"},
                    "data_interval": {"type": "object"}, "state": {"enum": ["queued", "running", "success", "failed"]},
                    "conf": {"type": "object"}, "created_at": {"type": "string"}, "start_date": {"type": ["string", "null"]},
                    "end_date": {"type": ["string", "null"]}, "backfill_id": {"type": ["integer", "null"]}}},
                "TaskInstance": {"type": "object", "properties": {
                    "task_id": {"type": "string"}, "state": {"enum": ["pending", "scheduled", "queued", "running", "success", "failed", "up_for_retry", "upstream_failed", "skipped"]},
                    "try_number": {"type": "integer"}, "max_tries": {"type": "integer"}, "start_date": {"type": ["string", "null"]},
                    "end_date": {"type": ["string", "null"]}, "duration_ms": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]}}},
                "Try": {"type": "object", "properties": {
                    "ti_id": {"type": "integer"}, "try_number": {"type": "integer"},
                    "state": {"enum": ["running", "success", "up_for_retry", "failed", "skipped", "interrupted"]},
                    "start_date": {"type": "string", "format": "date-time"}, "end_date": {"type": ["string", "null"]},
                    "duration_ms": {"type": ["integer", "null"]}, "hostname": {"type": ["string", "null"]},
                    "pid": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]}}},
                "ActionReport": {"type": "object", "properties": {"changed": {"type": "array", "items": {"type": "string"}}, "busy": {"type": "array", "items": {"type": "string"}}, "run_state": {"type": ["string", "null"]}}},
                "Backfill": {"type": "object", "properties": {"backfill": {"type": "object"}, "progress": {"type": "object"}, "finished": {"type": "integer"}}},
                "Stream": {"type": "object", "properties": {"name": {"type": "string"}, "state": {"type": "string"}, "version": {"type": ["integer", "null"]}, "rows": {"type": "integer"}, "total_lag": {"type": ["integer", "null"]}, "lag": {"type": "array"}, "partitions": {"type": "array"}}}
            }
        },
        "security": [{}, {"bearer": []}],
        "paths": {
            "/dags": {"get": op("List active DAGs with next run and recent runs", vec![q("tag", "string", "Only DAGs with this tag")], None,
                ok("DAGs and import errors", json!({"type": "object", "properties": {"dags": {"type": "array"}, "import_errors": {"type": "array"}}})))},
            "/dags/{dag_id}": {
                "get": op("A DAG: tasks, params, schedule, source", vec![p("dag_id", "DAG id")], None, ok("The DAG", obj.clone())),
                "patch": op("Pause or unpause", vec![p("dag_id", "DAG id")], Some(json!({"type": "object", "required": ["is_paused"], "properties": {"is_paused": {"type": "boolean"}}})), ok("The DAG", obj.clone()))
            },
            "/dags/{dag_id}/runs": {
                "get": op("Runs, newest first (keyset pages)", [vec![p("dag_id", "DAG id")], paging.clone()].concat(), None,
                    ok("A page of runs", json!({"type": "object", "properties": {"runs": {"type": "array", "items": r("Run")}, "next_before": {"type": ["string", "null"]}}}))),
                "post": op("Trigger a run with a conf (checked against the DAG's params)", vec![p("dag_id", "DAG id")],
                    Some(json!({"type": "object", "properties": {"conf": {"type": "object"}, "logical_date": {"type": "string"}}})), ok("The run (201 Created)", r("Run")))
            },
            "/dags/{dag_id}/runs/{run_id}": {"get": op("A run and its task instances", dag_run_params(), None,
                ok("Run", json!({"type": "object", "properties": {"run": r("Run"), "task_instances": {"type": "array", "items": r("TaskInstance")}}})))},
            "/dags/{dag_id}/runs/{run_id}/mark": {"post": op("Mark a run success or failed", dag_run_params(), Some(mark.clone()), ok("What changed", r("ActionReport")))},
            "/dags/{dag_id}/runs/{run_id}/clear": {"post": op("Clear a run's tasks (all, or only the failed and upstream_failed ones) to run again", dag_run_params(),
                Some(json!({"type": "object", "properties": {"failed_only": {"type": "boolean"}}})), ok("What changed", r("ActionReport")))},
            "/dags/{dag_id}/runs/{run_id}/tasks": {"get": op("Task instances of a run", dag_run_params(), None,
                ok("Task instances", json!({"type": "object", "properties": {"task_instances": {"type": "array", "items": r("TaskInstance")}}})))},
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}": {"get": op("One task instance", ti_params(), None, ok("Task instance", r("TaskInstance")))},
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs": {"get": op("Log lines of one try (tail with `after`)",
                [ti_params(), vec![q("try", "integer", "Try number (default: the latest)"), q("after", "integer", "Only lines with a greater id"), q("limit", "integer", "At most this many lines (1 to 10000, default 1000)")]].concat(), None,
                ok("Lines", json!({"type": "object", "properties": {"try_number": {"type": "integer"}, "tries": {"type": "integer"}, "finished": {"type": "boolean"}, "lines": {"type": "array"}, "next_after": {"type": ["integer", "null"]}}})))},
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/tries": {"get": op("Every try of a task instance with its own state, times, host and error", ti_params(), None,
                ok("Tries", json!({"type": "object", "properties": {"tries": {"type": "array", "items": r("Try")}}})))},
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear": {"post": op("Clear a task (and optionally its downstream/upstream) to run again", ti_params(),
                Some(json!({"type": "object", "properties": {"downstream": {"type": "boolean"}, "upstream": {"type": "boolean"}, "failed_only": {"type": "boolean"}}})), ok("What changed", r("ActionReport")))},
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark": {"post": op("Mark a task success or failed", ti_params(), Some(mark), ok("What changed", r("ActionReport")))},
            "/backfills": {
                "get": op("Backfills, newest first, with progress", vec![q("dag_id", "string", "Only this DAG"), q("state", "string", "running, completed or cancelled"), q("limit", "integer", "1 to 500")], None,
                    ok("Backfills", json!({"type": "object", "properties": {"backfills": {"type": "array", "items": r("Backfill")}}}))),
                "post": op("Create a backfill (or plan it with dry_run)", vec![],
                    Some(json!({"type": "object", "required": ["dag_id", "from", "to"], "properties": {
                        "dag_id": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"},
                        "reprocess": {"enum": ["missing", "failed", "all"]}, "max_active_runs": {"type": "integer", "minimum": 1},
                        "reverse": {"type": "boolean"}, "conf": {"type": "object"}, "dry_run": {"type": "boolean"}}})),
                    ok("The plan (dry run) or the backfill (201 Created)", obj.clone()))
            },
            "/backfills/{id}": {"get": op("A backfill with its dates", vec![p("id", "Backfill id")], None, ok("Backfill", r("Backfill")))},
            "/backfills/{id}/cancel": {"post": op("Cancel a backfill", vec![p("id", "Backfill id")], Some(obj.clone()), ok("Backfill", r("Backfill")))},
            "/streams": {"get": op("Every stream: table, lag per partition, dead letters", vec![], None,
                ok("Streams", json!({"type": "object", "properties": {"streams": {"type": "array", "items": r("Stream")}}})))},
            "/streams/{name}": {"get": op("One stream", vec![p("name", "Stream name")], None, ok("Stream", r("Stream")))},
            "/import_errors": {"get": op("DAG files that failed to load (file:line:col messages)", vec![], None, ok("Import errors", obj.clone()))},
            "/openapi.json": {"get": op("This document", vec![], None, ok("OpenAPI document", obj))}
        }
    })
}
