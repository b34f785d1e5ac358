//! Router tests: the whole application (`web::app`) called without a socket,
//! on a real SQLite metadata store (and PostgreSQL for the list endpoints),
//! with DAGs parsed by the real task kinds. Every endpoint, auth, CSRF and
//! the escaping of hostile strings.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{TimeZone, Utc};
use scheduler::model::{Change, TiPatch};
use scheduler::state::TaskState;
use scheduler::store::{Store, scratch};
use serde_json::json;

mod common;

use common::*;

#[tokio::test]
async fn dag_list_escapes_hostile_text_and_shows_import_errors() {
    let e = env().await;
    let r = get(&e.app, "/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("pipeline"));
    assert!(!r.body.contains(HOSTILE), "raw script in the page");
    assert!(
        r.body.contains("Loads &#60;script&#62;alert(&#39;x&#39;)"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("broken.toml:4:8"),
        "import error with file:line:col: {}",
        r.body
    );
    // A first visit gets a CSRF cookie, and the forms carry the same value.
    let c = r.cookies();
    let csrf = c
        .iter()
        .find_map(|c| c.strip_prefix("tributary_csrf="))
        .and_then(|c| c.split(';').next())
        .expect("csrf cookie");
    assert!(r.body.contains(&format!("name=\"_csrf\" value=\"{csrf}\"")));
    // Tag filter.
    assert!(get(&e.app, "/?tag=etl").await.body.contains("pipeline"));
    let none = get(&e.app, "/?tag=nothing").await;
    assert!(!none.body.contains("class=\"dag-id\""));
    assert!(none.body.contains("No DAGs with tag"));
}

#[tokio::test]
async fn hostile_conf_and_logs_are_escaped_everywhere() {
    let e = env().await;
    // Params reject unknown keys, so the hostile text goes into a declared one.
    let run = trigger(&e, json!({"mode": "fast"}), "2026-02-01T00:00:00Z").await;
    let run_id = run["run_id"].as_str().unwrap();
    let ti = e
        .store
        .get_task_instance("pipeline", run_id, "extract")
        .await
        .unwrap()
        .unwrap();
    e.store
        .append_logs(ti.id, 1, &[(Utc::now(), format!("oops {HOSTILE}"))])
        .await
        .unwrap();
    let href = format!(
        "/dags/pipeline/runs/{}/tasks/extract",
        run_id.replace('+', "%2B")
    );
    let page = get(&e.app, &href).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("oops &#60;script&#62;"), "{}", page.body);
    assert!(!page.body.contains(HOSTILE));
    // Unknown ids are echoed escaped in error pages too.
    let p = get(&e.app, "/dags/%3Cscript%3E").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(!p.body.contains("<script>"));
    assert!(p.body.contains("&#60;script&#62;"), "{}", p.body);
}

#[tokio::test]
async fn every_openapi_path_is_routed() {
    let e = env().await;
    let run = trigger(&e, json!({}), "2026-02-01T00:00:00Z").await;
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let bf = send(
        &e.app,
        json_req(
            "POST",
            "/api/v1/backfills",
            json!({"dag_id": "pipeline", "from": "2026-01-01", "to": "2026-01-03"}),
        ),
    )
    .await;
    assert_eq!(bf.status, StatusCode::CREATED, "{}", bf.body);
    let doc = get(&e.app, "/api/v1/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{} paths", paths.len());
    for (p, ops) in paths {
        let uri = format!(
            "/api/v1{}",
            p.replace("{dag_id}", "pipeline")
                .replace("{run_id}", &run_id.replace('+', "%2B"))
                .replace("{task_id}", "extract")
                .replace("{id}", "1")
                .replace("{name}", "nope")
        );
        for method in ops.as_object().unwrap().keys() {
            let r = if method == "get" {
                get(&e.app, &uri).await
            } else {
                // An empty object: either accepted or refused with a
                // message, but never "no such route".
                send(&e.app, json_req(&method.to_uppercase(), &uri, json!({}))).await
            };
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            let err = r.json()["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(
                !err.contains("no such API endpoint"),
                "{method} {uri} is documented but not routed"
            );
            if method == "get" && !uri.ends_with("/nope") {
                assert_eq!(r.status, StatusCode::OK, "GET {uri}: {}", r.body);
            }
        }
    }
    let r = get(&e.app, "/api/v1/dagz").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openapi.json")
    );
}

#[tokio::test]
async fn api_trigger_checks_conf_and_reports_clear_errors() {
    let e = env().await;
    let bad = send(
        &e.app,
        json_req(
            "POST",
            "/api/v1/dags/pipeline/runs",
            json!({"conf": {"count": 99, "mode": "turbo", "extra": 1}}),
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let msg = bad.json()["error"]["message"].as_str().unwrap().to_string();
    for needle in ["count", "turbo", "extra"] {
        assert!(msg.contains(needle), "{needle} in {msg}");
    }
    let run = trigger(&e, json!({"count": 5}), "2026-03-01T00:00:00Z").await;
    assert_eq!(run["conf"]["count"], 5);
    assert_eq!(run["state"], "queued");
    // Same logical date again: conflict.
    let dup = send(
        &e.app,
        json_req(
            "POST",
            "/api/v1/dags/pipeline/runs",
            json!({"logical_date": "2026-03-01T00:00:00Z"}),
        ),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.body);
    // Malformed JSON names the place; unknown fields are refused.
    let broken = send(
        &e.app,
        Request::post("/api/v1/dags/pipeline/runs")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"conf\": {"))
            .unwrap(),
    )
    .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert!(
        broken.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column")
    );
    let unknown = send(
        &e.app,
        json_req("POST", "/api/v1/dags/pipeline/runs", json!({"cnof": {}})),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.body.contains("cnof"));
    // Not JSON: refused before anything happens.
    let text = send(
        &e.app,
        Request::post("/api/v1/dags/pipeline/runs")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let unknown_dag = send(
        &e.app,
        json_req("POST", "/api/v1/dags/nope/runs", json!({})),
    )
    .await;
    assert_eq!(unknown_dag.status, StatusCode::NOT_FOUND);
    // Internals never leak: no SQL, no file paths of the server.
    assert!(!unknown_dag.body.to_lowercase().contains("sql"));
}

#[tokio::test]
async fn runs_are_paged_by_key_without_gaps_or_overlap() {
    for url in [None, Some(pg_url().await)] {
        let e = env_with(url, None).await;
        for d in 1..=7 {
            trigger(&e, json!({}), &format!("2026-04-{d:02}T00:00:00Z")).await;
        }
        let mut seen = Vec::new();
        let mut uri = "/api/v1/dags/pipeline/runs?limit=3".to_string();
        loop {
            let page = get(&e.app, &uri).await.json();
            let runs = page["runs"].as_array().unwrap();
            assert!(runs.len() <= 3);
            seen.extend(
                runs.iter()
                    .map(|r| r["logical_date"].as_str().unwrap().to_string()),
            );
            match page["next_before"].as_str() {
                Some(b) => {
                    uri = format!(
                        "/api/v1/dags/pipeline/runs?limit=3&before={}",
                        b.replace('+', "%2B").replace(':', "%3A")
                    )
                }
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.reverse();
        sorted.dedup();
        assert_eq!(seen, sorted, "newest first, no duplicates");
        assert_eq!(seen.len(), 7);
        let bad = get(&e.app, "/api/v1/dags/pipeline/runs?limit=0").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let bad = get(&e.app, "/api/v1/dags/pipeline/runs?before=yesterday").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.body.contains("RFC 3339"));
        // The grid pages the same way: 7 runs fit on one page.
        let grid = get(&e.app, "/dags/pipeline").await;
        assert_eq!(grid.body.matches("class=\"cell state-").count(), 7 * 4);
        assert!(!grid.body.contains("older runs"));
    }
}

async fn pg_url() -> String {
    scratch::postgres_database(&scratch::admin_url())
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/test.sh starts it)")
}

#[tokio::test]
async fn task_actions_logs_and_run_marks() {
    let e = env().await;
    let run = trigger(&e, json!({}), "2026-05-01T00:00:00Z").await;
    let rid = run["run_id"].as_str().unwrap().replace('+', "%2B");
    let base = format!("/api/v1/dags/pipeline/runs/{rid}");
    let r = send(
        &e.app,
        json_req(
            "POST",
            &format!("{base}/tasks/extract/mark"),
            json!({"state": "failed"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["changed"], json!(["extract"]));
    let bad = send(
        &e.app,
        json_req(
            "POST",
            &format!("{base}/tasks/extract/mark"),
            json!({"state": "green"}),
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Clear with downstream: the failed task and everything after it.
    let c = send(
        &e.app,
        json_req(
            "POST",
            &format!("{base}/tasks/extract/clear"),
            json!({"downstream": true}),
        ),
    )
    .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let changed = c.json()["changed"].as_array().unwrap().len();
    assert!(changed >= 1, "{}", c.body);
    let tis = get(&e.app, &format!("{base}/tasks")).await.json();
    assert_eq!(tis["task_instances"].as_array().unwrap().len(), 4);
    assert_eq!(tis["task_instances"][0]["task_id"], "extract", "DAG order");
    // Logs with a tail cursor.
    let ti = e
        .store
        .get_task_instance("pipeline", run["run_id"].as_str().unwrap(), "extract")
        .await
        .unwrap()
        .unwrap();
    let lines: Vec<_> = (0..5).map(|i| (Utc::now(), format!("line {i}"))).collect();
    e.store.append_logs(ti.id, 1, &lines).await.unwrap();
    let l = get(&e.app, &format!("{base}/tasks/extract/logs?try=1&limit=2"))
        .await
        .json();
    assert_eq!(l["lines"].as_array().unwrap().len(), 2);
    let after = l["next_after"].as_i64().unwrap();
    let rest = get(
        &e.app,
        &format!("{base}/tasks/extract/logs?try=1&after={after}"),
    )
    .await
    .json();
    assert_eq!(rest["lines"].as_array().unwrap().len(), 3);
    assert_eq!(rest["lines"][0]["line"], "line 2");
    let missing = get(&e.app, &format!("{base}/tasks/extract/logs?try=9")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Mark the run: tasks that have not started follow.
    let m = send(
        &e.app,
        json_req("POST", &format!("{base}/mark"), json!({"state": "success"})),
    )
    .await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.body);
    assert_eq!(m.json()["run_state"], "success");
    let g = get(&e.app, &base).await.json();
    assert_eq!(g["run"]["state"], "success");
    // The run page draws the graph's tasks and offers the actions.
    let page = get(&e.app, &format!("/dags/pipeline/runs/{rid}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Mark run failed"));
    assert!(page.body.contains("/tasks/extract/clear"));
}

#[tokio::test]
async fn pause_and_backfills_through_api_and_forms() {
    let e = env().await;
    let p = send(
        &e.app,
        json_req("PATCH", "/api/v1/dags/pipeline", json!({"is_paused": true})),
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(
        e.store
            .get_dag("pipeline")
            .await
            .unwrap()
            .unwrap()
            .is_paused
    );
    let r = send(
        &e.app,
        form(
            "/dags/pipeline/pause",
            "paused=false&next=%2Fdags%2Fpipeline",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/dags/pipeline");
    assert!(
        !e.store
            .get_dag("pipeline")
            .await
            .unwrap()
            .unwrap()
            .is_paused
    );
    assert!(
        r.cookies()
            .iter()
            .any(|c| c.starts_with("tributary_flash=pipeline"))
    );
    // Dry run through the form: a plan, nothing recorded.
    let plan = send(
        &e.app,
        form(
            "/dags/pipeline/backfills",
            "from=2026-01-01&to=2026-01-05&reprocess=missing&max_active_runs=2&action=plan",
        ),
    )
    .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    assert!(
        plan.body.contains("5 date(s): 5 to create"),
        "{}",
        plan.body
    );
    assert!(
        e.store
            .list_backfills(None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Bad input is shown with the form kept.
    let bad = send(
        &e.app,
        form(
            "/dags/pipeline/backfills",
            "from=2026-01-05&to=2026-01-01&action=create",
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("before"), "{}", bad.body);
    assert!(bad.body.contains("value=\"2026-01-05\""));
    // Create, list with progress, cancel.
    let ok = send(
        &e.app,
        form(
            "/dags/pipeline/backfills",
            "from=2026-01-01&to=2026-01-05&action=create",
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let list = get(&e.app, "/api/v1/backfills?dag_id=pipeline")
        .await
        .json();
    let b = &list["backfills"][0];
    assert_eq!(b["progress"]["total"], 5);
    assert_eq!(b["backfill"]["state"], "running");
    let id = b["backfill"]["id"].as_i64().unwrap();
    let page = get(&e.app, "/dags/pipeline/backfills").await;
    assert!(page.body.contains(&format!("/backfills/{id}/cancel")));
    let c = send(&e.app, form(&format!("/backfills/{id}/cancel"), "")).await;
    assert_eq!(c.status, StatusCode::SEE_OTHER);
    let one = get(&e.app, &format!("/api/v1/backfills/{id}")).await.json();
    assert_eq!(one["backfill"]["state"], "cancelled");
    assert_eq!(one["dates"].as_array().unwrap().len(), 5);
    let bad_state = get(&e.app, "/api/v1/backfills?state=done").await;
    assert_eq!(bad_state.status, StatusCode::BAD_REQUEST);
    assert!(bad_state.body.contains("running, completed, cancelled"));
}

#[tokio::test]
async fn trigger_form_is_generated_from_params_and_validates() {
    let e = env().await;
    let f = get(&e.app, "/dags/pipeline/trigger").await;
    assert!(f.body.contains("name=\"p.count\""));
    assert!(f.body.contains("type=\"number\""));
    assert!(
        f.body.contains("<option value=\"&#34;fast&#34;\""),
        "{}",
        f.body
    );
    let bad = send(
        &e.app,
        form("/dags/pipeline/trigger", "p.count=lots&p.mode="),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("&#34;lots&#34; is not a whole number"),
        "{}",
        bad.body
    );
    let out = send(&e.app, form("/dags/pipeline/trigger", "p.count=42")).await;
    assert_eq!(out.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        out.body.contains("count:"),
        "bound named at its field: {}",
        out.body
    );
    let ok = send(
        &e.app,
        form(
            "/dags/pipeline/trigger",
            "p.count=4&p.mode=%22fast%22&logical_date=2026-06-01T00%3A00%3A00",
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let to = ok.headers[header::LOCATION].to_str().unwrap().to_string();
    assert!(
        to.starts_with("/dags/pipeline/runs/manual__2026-06-01"),
        "{to}"
    );
    let run = e.store.list_runs("pipeline", 1).await.unwrap().remove(0);
    assert_eq!(run.conf, json!({"count": 4, "mode": "fast"}));
    assert_eq!(
        run.logical_date,
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
    );
    // The flash message shows once on the run page, HTML-escaped.
    let flash = ok
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("tributary_flash="))
        .unwrap();
    let value = flash.split(';').next().unwrap().to_string();
    let page = send(
        &e.app,
        Request::get(&to)
            .header(header::COOKIE, value)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(page.body.contains("triggered pipeline"), "{}", page.body);
    assert!(
        page.cookies()
            .iter()
            .any(|c| c.starts_with("tributary_flash=;"))
    );
}

#[tokio::test]
async fn csrf_and_cross_site_requests_are_refused() {
    let e = env().await;
    let no_field = send(
        &e.app,
        Request::post("/dags/pipeline/pause")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, "tributary_csrf=tok123")
            .body(Body::from("paused=true"))
            .unwrap(),
    )
    .await;
    assert_eq!(no_field.status, StatusCode::FORBIDDEN);
    assert!(no_field.body.contains("CSRF"));
    let mismatch = send(
        &e.app,
        Request::post("/dags/pipeline/pause")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, "tributary_csrf=tok123")
            .body(Body::from("_csrf=other&paused=true"))
            .unwrap(),
    )
    .await;
    assert_eq!(mismatch.status, StatusCode::FORBIDDEN);
    let mut cross = form("/dags/pipeline/pause", "paused=true");
    cross
        .headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(send(&e.app, cross).await.status, StatusCode::FORBIDDEN);
    let mut api_cross = json_req("PATCH", "/api/v1/dags/pipeline", json!({"is_paused": true}));
    api_cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let r = send(&e.app, api_cross).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cross-site")
    );
    assert!(
        !e.store
            .get_dag("pipeline")
            .await
            .unwrap()
            .unwrap()
            .is_paused,
        "nothing changed"
    );
}

const TOKEN: &str = "s3cret-s3cret-s3cret";

fn with_bearer(mut r: Request<Body>, token: &str) -> Request<Body> {
    r.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    r
}

#[tokio::test]
async fn a_token_guards_every_request_but_the_probes() {
    let e = env_with(None, Some(TOKEN)).await;
    let anywhere: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
    assert!(web::check_bind(&anywhere, None).is_err());
    assert!(web::check_bind(&anywhere, Some(TOKEN)).is_ok());
    let short = web::check_bind(&"127.0.0.1:8080".parse().unwrap(), Some("t")).unwrap_err();
    assert!(short.to_string().contains("at least 16"), "{short}");
    assert!(web::check_bind(&"127.0.0.1:8080".parse().unwrap(), None).is_ok());
    // Reads need the token too: DAG code, conf and logs are not public.
    let r = get(&e.app, "/api/v1/dags").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token")
    );
    let r = send(
        &e.app,
        with_bearer(
            Request::get("/api/v1/dags").body(Body::empty()).unwrap(),
            TOKEN,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let page = get(&e.app, "/dags/pipeline?tab=code").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers[header::LOCATION],
        "/login?next=%2Fdags%2Fpipeline%3Ftab%3Dcode"
    );
    assert!(!page.body.contains("kind = \"noop\""));
    for open in ["/healthz", "/login", "/static/app.css"] {
        assert_eq!(get(&e.app, open).await.status, StatusCode::OK, "{open}");
    }
    // No writers run in this server: no metrics, but not a refusal either.
    assert_eq!(get(&e.app, "/metrics").await.status, StatusCode::NOT_FOUND);
    let patch = || json_req("PATCH", "/api/v1/dags/pipeline", json!({"is_paused": true}));
    let r = send(&e.app, patch()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer")
    );
    let wrong = with_bearer(patch(), "nope");
    assert_eq!(send(&e.app, wrong).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&e.app, with_bearer(patch(), TOKEN)).await.status,
        StatusCode::OK
    );
    // The UI: a form without the token cookie goes to the login page...
    let r = send(&e.app, form("/dags/pipeline/pause", "paused=false")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.headers[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );
    // ...which refuses a wrong token and keeps the right one in a cookie.
    let bad = send(&e.app, form("/login", "token=nope&next=%2F")).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let ok = send(
        &e.app,
        form("/login", &format!("token={TOKEN}&next=%2Fdags%2Fpipeline")),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.headers[header::LOCATION], "/dags/pipeline");
    let cookie = ok
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("tributary_token="))
        .unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let mut with_cookie = form("/dags/pipeline/pause", "paused=false");
    with_cookie.headers_mut().insert(
        header::COOKIE,
        format!("tributary_csrf=tok123; tributary_token={TOKEN}")
            .parse()
            .unwrap(),
    );
    let r = send(&e.app, with_cookie).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // The login cookie opens the pages as well.
    let mut page = Request::get("/dags/pipeline?tab=code")
        .body(Body::empty())
        .unwrap();
    page.headers_mut().insert(
        header::COOKIE,
        format!("tributary_token={TOKEN}").parse().unwrap(),
    );
    let page = send(&e.app, page).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("noop"), "{}", page.body);
    assert!(
        !e.store
            .get_dag("pipeline")
            .await
            .unwrap()
            .unwrap()
            .is_paused
    );
    // An open redirect is not possible through `next`.
    let evil = send(
        &e.app,
        form("/login", &format!("token={TOKEN}&next=%2F%2Fevil.example")),
    )
    .await;
    assert_eq!(evil.headers[header::LOCATION], "/");
}

#[tokio::test]
async fn anonymous_reads_open_the_pages_but_not_the_changes() {
    let e = env_with_reads(None, Some(TOKEN), true).await;
    assert_eq!(get(&e.app, "/api/v1/dags").await.status, StatusCode::OK);
    assert_eq!(get(&e.app, "/dags/pipeline").await.status, StatusCode::OK);
    let patch = json_req("PATCH", "/api/v1/dags/pipeline", json!({"is_paused": true}));
    assert_eq!(send(&e.app, patch).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn log_tail_streams_new_lines_until_the_try_ends() {
    let e = env().await;
    let run = trigger(&e, json!({}), "2026-07-01T00:00:00Z").await;
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let ti = e
        .store
        .get_task_instance("pipeline", &run_id, "extract")
        .await
        .unwrap()
        .unwrap();
    let running = TiPatch {
        try_number: Some(1),
        start_date: Change::Set(Utc::now()),
        ..TiPatch::default()
    };
    assert!(
        e.store
            .update_ti(ti.id, TaskState::Pending, TaskState::Running, &running)
            .await
            .unwrap()
    );
    e.store
        .append_logs(ti.id, 1, &[(Utc::now(), "before".into())])
        .await
        .unwrap();
    // The page says the tail is live.
    let href = format!(
        "/dags/pipeline/runs/{}/tasks/extract",
        run_id.replace('+', "%2B")
    );
    let page = get(&e.app, &href).await;
    assert!(page.body.contains("data-sse="), "{}", page.body);
    let app = e.app.clone();
    let uri = format!("{href}/log/stream?try=1&after=0");
    let tail = tokio::spawn(async move { get(&app, &uri).await });
    // Written while the browser watches, then the try ends.
    e.store
        .append_logs(ti.id, 1, &[(Utc::now(), "during <b>".into())])
        .await
        .unwrap();
    let done = TiPatch {
        end_date: Change::Set(Utc::now()),
        ..TiPatch::default()
    };
    assert!(
        e.store
            .update_ti(ti.id, TaskState::Running, TaskState::Success, &done)
            .await
            .unwrap()
    );
    let r = tail.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let b = &r.body;
    let (i1, i2, i3) = (
        b.find("before").unwrap(),
        b.find("during <b>").expect("line written during the tail"),
        b.find("event: end").unwrap(),
    );
    assert!(i1 < i2 && i2 < i3, "{b}");
    // A reconnecting browser resumes after the last id it saw.
    let last_id: i64 = b
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|v| v.trim().parse().unwrap())
        .next()
        .unwrap();
    let resumed = send(
        &e.app,
        Request::get(format!("{href}/log/stream?try=1"))
            .header("last-event-id", last_id.to_string())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(!resumed.body.contains("before"));
    assert!(resumed.body.contains("during"));
}

#[tokio::test]
async fn graph_is_laid_out_in_layers_and_coloured_by_the_selected_run() {
    let e = env().await;
    let run = trigger(&e, json!({}), "2026-08-01T00:00:00Z").await;
    let run_id = run["run_id"].as_str().unwrap();
    let rec = e.store.get_dag("pipeline").await.unwrap().unwrap();
    let dag = scheduler::dag::parse_dag(Path::new(&rec.fileloc), &rec.source, &tasks::registry())
        .unwrap();
    let g = web::svg::graph(&dag, |t| (t == "extract").then(|| "success".to_string()));
    let x = |id: &str| g.nodes.iter().find(|n| n.id == id).unwrap().x;
    assert!(x("extract") < x("left"));
    assert_eq!(x("left"), x("right"));
    assert!(x("right") < x("load"));
    assert_eq!(g.edges.len(), 4);
    assert_eq!(g.nodes[0].state, "success");
    assert_eq!(g.nodes[1].state, "none");
    assert!(g.width >= x("load") + web::svg::NODE_W);
    // The page draws it, with the newest run selected.
    let page = get(&e.app, "/dags/pipeline").await;
    assert_eq!(page.body.matches("<g class=\"node").count(), 4);
    assert!(page.body.contains(&format!("(run {run_id})")));
    let code = get(&e.app, "/dags/pipeline/code").await;
    assert!(code.body.contains("kind = &#34;noop&#34;"), "{}", code.body);
}

#[tokio::test]
async fn health_and_static_assets() {
    let e = env().await;
    let h = get(&e.app, "/healthz").await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json()["database"], "sqlite");
    let css = get(&e.app, "/static/app.css").await;
    assert!(
        css.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = get(&e.app, "/static/app.js").await;
    assert!(js.body.contains("EventSource"));
    // Pages load nothing from other hosts.
    let page = get(&e.app, "/").await;
    assert!(!page.body.contains("http://") && !page.body.contains("https://"));
    assert_eq!(get(&e.app, "/metrics").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&e.app, "/nowhere").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_token_only_loopback_names_are_answered() {
    let e = env().await;
    // DNS rebinding: a page on attacker.example whose name now resolves to
    // 127.0.0.1. Before, this paused the DAG.
    let rebind = |host: &str| {
        let mut r = json_req("PATCH", "/api/v1/dags/pipeline", json!({"is_paused": true}));
        let h = r.headers_mut();
        h.insert(header::HOST, host.parse().unwrap());
        h.insert(header::ORIGIN, format!("http://{host}").parse().unwrap());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        r
    };
    let r = send(&e.app, rebind("attacker.example:8080")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("loopback names only"),
        "{}",
        r.body
    );
    assert!(
        !e.store
            .get_dag("pipeline")
            .await
            .unwrap()
            .unwrap()
            .is_paused
    );
    // Reads too: DAG code and logs are open on loopback without a token.
    let mut page = Request::get("/dags/pipeline?tab=code")
        .body(Body::empty())
        .unwrap();
    page.headers_mut()
        .insert(header::HOST, "attacker.example:8080".parse().unwrap());
    assert_eq!(send(&e.app, page).await.status, StatusCode::FORBIDDEN);
    for ok in [
        "127.0.0.1:8080",
        "localhost:8080",
        "[::1]:8080",
        "app.localhost",
    ] {
        let mut g = Request::get("/api/v1/dags").body(Body::empty()).unwrap();
        g.headers_mut().insert(header::HOST, ok.parse().unwrap());
        let r = send(&e.app, g).await;
        assert_eq!(r.status, StatusCode::OK, "{ok}");
        assert_eq!(r.headers["x-frame-options"], "DENY");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
    }
    let r = send(&e.app, rebind("127.0.0.1:8080")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        e.store
            .get_dag("pipeline")
            .await
            .unwrap()
            .unwrap()
            .is_paused
    );
}

#[tokio::test]
async fn a_method_a_path_does_not_have_gets_405_before_any_body_check() {
    let e = env().await;
    for (method, uri) in [
        ("TRACE", "/api/v1/dags"),
        ("DELETE", "/api/v1/dags/pipeline"),
        ("PUT", "/dags/pipeline"),
        ("POST", "/api/v1/dags"),
        ("PATCH", "/api/v1/dags/pipeline/runs"),
    ] {
        let r = send(
            &e.app,
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {}",
            r.body
        );
        assert!(r.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }
    let r = send(&e.app, json_req("POST", "/api/v1/dags", json!({}))).await;
    assert_eq!(r.headers[header::ALLOW], "GET, HEAD");
    assert!(
        r.body
            .contains("POST is not allowed on /api/v1/dags: use GET, HEAD"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_api_link_opens_a_readable_reference_of_every_operation() {
    let e = env().await;
    let home = get(&e.app, "/").await;
    assert!(
        home.body.contains("<a href=\"/api\" >API</a>"),
        "{}",
        home.body
    );
    let page = get(&e.app, "/api").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let doc = get(&e.app, "/api/v1/openapi.json").await.json();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            assert!(
                page.body.contains(&format!(
                    "<span class=\"method method-{m}\">{m}</span> <code>/api/v1{path}</code></h2>"
                )),
                "{m} {path} is on the page"
            );
        }
    }
    // Bodies and answers read as types, with their fields listed below.
    assert!(
        page.body
            .contains("<code>{ next_before: string (date-time) | null, runs: [RunRecord] }</code>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"schema-TaskInstance\""));
    assert!(
        page.body
            .contains("<code>&quot;success&quot; | &quot;failed&quot;</code>")
            || page.body.contains("&#34;success&#34; | &#34;failed&#34;")
    );
}
