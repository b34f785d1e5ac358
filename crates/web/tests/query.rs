//! SQL over the lake through the router: `POST /api/v1/sql` (rows, types,
//! limits, table versions, errors with their kind and place) and the Query
//! page (the answer, its chart, the tables list, the CSV download), on a
//! real Delta table in the test's lake folder.

mod common;

use std::sync::Arc;

use axum::http::{StatusCode, header};
use common::{Env, env, env_with, get, json_req, send};
use lake::deltalake::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use lake::deltalake::arrow::datatypes::{DataType, Field, Schema};
use serde_json::{Value, json};

/// Writes `people` (nation, age, score) into the test's lake: two commits.
async fn people(e: &Env) {
    let location = lake::table::Location::parse("lake", e.dir.path(), Default::default()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("nation", DataType::Utf8, false),
        Field::new("age", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
    ]));
    let batch = |nations: Vec<&str>, ages: Vec<i64>, scores: Vec<Option<f64>>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(nations)),
                Arc::new(Int64Array::from(ages)),
                Arc::new(Float64Array::from(scores)),
            ],
        )
        .unwrap()
    };
    std::fs::create_dir_all(e.dir.path().join("lake/people")).unwrap();
    let t = location.builder("people").unwrap().build().unwrap();
    let t = t
        .write(vec![batch(
            vec!["FR", "DE", "FR"],
            vec![30, 40, 50],
            vec![Some(1.5), None, Some(2.5)],
        )])
        .await
        .unwrap();
    t.write(vec![batch(vec!["US"], vec![20], vec![Some(4.0)])])
        .await
        .unwrap();
}

async fn sql(e: &Env, body: Value) -> (StatusCode, Value) {
    let r = send(&e.app, json_req("POST", "/api/v1/sql", body)).await;
    (r.status, r.json())
}

#[tokio::test]
async fn the_api_answers_with_rows_types_counts_and_the_versions_read() {
    let e = env().await;
    people(&e).await;
    let (status, v) = sql(
        &e,
        json!({"sql": "SELECT nation, count(*) AS n, avg(age) AS mean_age FROM people GROUP BY nation ORDER BY nation"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v:#}");
    assert_eq!(
        v["rows"],
        json!([["DE", 1, 40.0], ["FR", 2, 40.0], ["US", 1, 20.0]])
    );
    assert_eq!(v["columns"][0]["name"], "nation");
    assert_eq!(v["columns"][1]["type"], "Int64");
    assert_eq!(v["columns"][1]["numeric"], true);
    assert_eq!(v["columns"][0]["numeric"], false);
    assert_eq!(v["row_count"], 3);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["tables"], json!({"people": 1}));

    // A limit keeps the first rows and counts the rest; time travel reads
    // the first commit.
    let (_, v) = sql(
        &e,
        json!({"sql": "SELECT age FROM people ORDER BY age", "limit": 2}),
    )
    .await;
    assert_eq!(v["rows"], json!([[20], [30]]));
    assert_eq!(
        (v["row_count"].as_u64(), v["truncated"].as_bool()),
        (Some(4), Some(true))
    );
    let (_, v) = sql(
        &e,
        json!({"sql": "SELECT count(*) AS n, sum(score) AS s FROM \"people@0\""}),
    )
    .await;
    assert_eq!(v["rows"], json!([[3, 4.0]]));
    assert_eq!(v["tables"], json!({"people@0": 0}));
}

#[tokio::test]
async fn bad_queries_get_400_with_their_kind_and_place() {
    let e = env().await;
    people(&e).await;
    let cases = [
        ("SELECT nation\nFROM people WHERE", "syntax"),
        ("SELECT * FROM peoples", "unknown_table"),
        ("SELECT natoin FROM people", "unknown_column"),
        ("INSERT INTO people VALUES ('NL', 1, 1.0)", "not_allowed"),
        ("DROP TABLE people", "not_allowed"),
    ];
    for (q, kind) in cases {
        let (status, v) = sql(&e, json!({"sql": q})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {v:#}");
        assert_eq!(v["error"]["kind"], kind, "{q}: {v:#}");
    }
    let (_, v) = sql(&e, json!({"sql": "SELECT * FROM peoples"})).await;
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("did you mean \"people\"?"), "{m}");
    let (_, v) = sql(&e, json!({"sql": "SELECT natoin FROM people"})).await;
    assert_eq!(
        (v["error"]["line"].as_u64(), v["error"]["column"].as_u64()),
        (Some(1), Some(8)),
        "{v:#}"
    );
    let (_, v) = sql(&e, json!({"sql": "SELECT nation\nFROM people WHERE"})).await;
    assert_eq!(v["error"]["line"], 2, "{v:#}");
    let (status, v) = sql(&e, json!({"sql": "SELECT 1", "limit": 20000})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10000"),
        "{v:#}"
    );
    let (status, _) = sql(&e, json!({"query": "SELECT 1"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing was written.
    let (_, v) = sql(&e, json!({"sql": "SELECT count(*) FROM people"})).await;
    assert_eq!(v["rows"], json!([[4]]));
}

#[tokio::test]
async fn the_query_page_shows_rows_a_chart_the_tables_and_a_csv_link() {
    let e = env().await;
    people(&e).await;
    let q = "SELECT nation, count(*) AS n FROM people GROUP BY nation ORDER BY nation";
    let r = get(&e.app, &format!("/query?sql={}", urlencode(q))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("<td>DE</td><td class=\"num\">1</td>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("id=\"query-chart\" class=\"chart-bar\""),
        "{}",
        r.body
    );
    assert_eq!(r.body.matches("<rect class=\"bar").count(), 3);
    assert!(r.body.contains("3 rows in"), "{}", r.body);
    assert!(r.body.contains("read people v1"), "{}", r.body);
    // The side list: the table and its columns, to click into the box.
    assert!(r.body.contains("data-insert=\"people\""), "{}", r.body);
    assert!(r.body.contains("data-insert=\"score\""), "{}", r.body);
    let csv_href = format!("/query.csv?sql={}", urlencode(q));
    assert!(r.body.contains(&csv_href.replace('&', "&amp;")) || r.body.contains(&csv_href));

    let r = get(&e.app, &csv_href).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(r.body, "nation,n\nDE,1\nFR,2\nUS,1\n");

    // A bad query shows its error on the page, the SQL kept in the box.
    let r = get(
        &e.app,
        &format!("/query?sql={}", urlencode("SELECT * FROM peple")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("did you mean &quot;people&quot;?")
            || r.body.contains("did you mean &#34;people&#34;?"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("SELECT * FROM peple</textarea>"),
        "{}",
        r.body
    );

    // Without a query: the box, an example and the tables.
    let r = get(&e.app, "/query").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("SELECT * FROM people LIMIT 10"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn with_a_token_queries_need_it() {
    let e = env_with(None, Some("0123456789abcdef-token")).await;
    let (status, _) = sql(&e, json!({"sql": "SELECT 1"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut req = json_req("POST", "/api/v1/sql", json!({"sql": "SELECT 1 AS one"}));
    req.headers_mut().insert(
        header::AUTHORIZATION,
        "Bearer 0123456789abcdef-token".parse().unwrap(),
    );
    let r = send(&e.app, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["rows"], json!([[1]]));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /api/v1/sql` asked for Arrow: the status, content type and body.
async fn arrow(e: &Env, body: Value, project: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = json_req("POST", "/api/v1/sql", body);
    req.headers_mut()
        .insert(header::ACCEPT, lake::sql::wire::MEDIA_TYPE.parse().unwrap());
    if let Some(p) = project {
        req.headers_mut()
            .insert(lake::sql::wire::PROJECT_HEADER, p.parse().unwrap());
    }
    let r = e.app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let kind = r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, kind, bytes)
}

/// The batches of an IPC stream and what its schema says.
fn decode(bytes: Vec<u8>) -> (lake::sql::wire::AnswerMeta, Vec<RecordBatch>) {
    let mut decoder = lake::deltalake::arrow::ipc::reader::StreamDecoder::new();
    let mut buf = lake::deltalake::arrow::buffer::Buffer::from_vec(bytes);
    let mut batches = Vec::new();
    while !buf.is_empty() {
        if let Some(b) = decoder.decode(&mut buf).unwrap() {
            batches.push(b);
        }
    }
    decoder.finish().unwrap();
    let (meta, _) = lake::sql::wire::AnswerMeta::detach(&decoder.schema().unwrap()).unwrap();
    (meta, batches)
}

#[tokio::test]
async fn an_arrow_answer_carries_every_row_or_a_counted_few_and_what_was_read() {
    let e = env().await;
    people(&e).await;
    let q = "SELECT nation, age FROM people ORDER BY age";
    let (status, kind, bytes) = arrow(&e, json!({"sql": q}), None).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::OK, lake::sql::wire::MEDIA_TYPE)
    );
    let (meta, batches) = decode(bytes);
    let ages: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(ages, vec![20, 30, 40, 50], "every row, no limit");
    assert_eq!(meta.tables.get("people"), Some(&1));
    assert_eq!(meta.rows, None, "a streamed answer is not counted ahead");

    // A limit beyond the JSON answer's 10,000 is allowed; the rest counted.
    let (_, _, bytes) = arrow(&e, json!({"sql": q, "limit": 2}), None).await;
    let (meta, batches) = decode(bytes);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    assert_eq!(meta.rows, Some(4));
    assert!(meta.elapsed.is_some());
    let (status, _, _) = arrow(&e, json!({"sql": q, "limit": 50_000}), None).await;
    assert_eq!(status, StatusCode::OK);

    // A bad query is a JSON error with its place, as without Arrow.
    let (status, kind, bytes) = arrow(&e, json!({"sql": "SELECT nmae FROM people"}), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(kind.starts_with("application/json"), "{kind}");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (v["error"]["line"].as_u64(), v["error"]["column"].as_u64()),
        (Some(1), Some(8))
    );

    // A request naming another project is refused: this server serves none.
    let (status, _, bytes) = arrow(&e, json!({"sql": q}), Some("/elsewhere/tributary.toml")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&bytes).contains("/elsewhere/tributary.toml"));
    let server = get(&e.app, "/api/v1/server").await.json();
    assert_eq!(server["project"], Value::Null);
    assert_eq!(server["sql"], json!(true));
}
