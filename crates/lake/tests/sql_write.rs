//! `lake::sql::write`: a query's answer into a table in every mode, on a
//! real local lake — interval writes replace one day only, merge upserts,
//! and a write whose identity (`txn`) the table already holds is not done
//! twice (the retry-after-crash case).

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use lake::deltalake::arrow::array::{
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use lake::deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use lake::sql::{LakeCatalog, Limits, SqlEngine, WriteMode, WriteSpec, write::write};
use lake::table::Location;

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap()
}

/// `events`: ids 0..n, nations FR/DE/US in turn, one event per hour from
/// 2026-11-21 00:00 UTC.
async fn events(location: &Location, n: i64) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("nation", DataType::Utf8, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let nations = ["FR", "DE", "US"];
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| nations[(i % 3) as usize]),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|i| day(21).timestamp_micros() + i * 3_600_000_000),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap();
    let t = location.builder("events").unwrap().build().unwrap();
    t.write(vec![batch]).await.unwrap();
}

async fn scalar(engine: &SqlEngine, sql: &str) -> String {
    let a = engine.plan(sql).await.unwrap().collect(None).await.unwrap();
    lake::sql::encode::cells(&a.batches).unwrap()[0][0].clone()
}

fn spec(mode: WriteMode, run: &str, version: i64) -> WriteSpec {
    WriteSpec {
        table: "daily".into(),
        mode,
        partition_by: vec!["day".into()],
        txn: (
            format!("tributary-task:users_daily:by_nation:{run}"),
            version,
        ),
        also: Vec::new(),
        parquet: None,
        once: true,
    }
}

const DAILY: &str = "SELECT nation, date_trunc('day', at) AS day, count(*) AS n FROM events \
                     WHERE at >= TIMESTAMP '{s}' AND at < TIMESTAMP '{e}' GROUP BY 1, 2";

fn daily(d: u32) -> String {
    DAILY
        .replace("{s}", &day(d).to_rfc3339())
        .replace("{e}", &day(d + 1).to_rfc3339())
}

fn interval(d: u32) -> WriteMode {
    WriteMode::Interval {
        column: "day".into(),
        start: day(d),
        end: day(d + 1),
    }
}

#[tokio::test]
async fn interval_writes_replace_their_day_only_and_a_recorded_write_is_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lake/events")).unwrap();
    let location = Location::parse("lake", dir.path(), Default::default()).unwrap();
    events(&location, 72).await; // three days, 24 events each
    let catalog = LakeCatalog::new(location.clone());
    let engine = SqlEngine::new(catalog.clone(), Limits::default()).unwrap();

    for d in [21, 22, 23] {
        let q = engine.plan(&daily(d)).await.unwrap();
        let r = write(&catalog, q, &spec(interval(d), &format!("run{d}"), 1))
            .await
            .unwrap();
        assert!(!r.already_committed);
        assert_eq!(r.read.get("events"), Some(&0));
    }
    assert_eq!(scalar(&engine, "SELECT sum(n) FROM daily").await, "72");
    assert_eq!(scalar(&engine, "SELECT count(*) FROM daily").await, "9");

    // The same write again (a retry after a crash between the commit and
    // the task's end): the table already holds it, nothing is written.
    let before = scalar(&engine, "SELECT count(*) FROM daily").await;
    let q = engine.plan(&daily(22)).await.unwrap();
    let r = write(&catalog, q, &spec(interval(22), "run22", 1))
        .await
        .unwrap();
    assert!(r.already_committed, "{r:?}");
    assert_eq!(scalar(&engine, "SELECT count(*) FROM daily").await, before);
    let version_before = r.version;

    // A re-run of day 22 with other numbers (a new try): day 22's rows are
    // replaced, the other days stay as they were.
    let rerun = daily(22).replace("count(*) AS n", "count(*) * 10 AS n");
    let q = engine.plan(&rerun).await.unwrap();
    let r = write(&catalog, q, &spec(interval(22), "run22", 2))
        .await
        .unwrap();
    assert!(
        !r.already_committed && r.version == version_before + 1,
        "{r:?}"
    );
    assert_eq!(
        scalar(
            &engine,
            "SELECT sum(n) FROM daily WHERE day = TIMESTAMP '2026-11-22T00:00:00Z'"
        )
        .await,
        "240"
    );
    assert_eq!(
        scalar(
            &engine,
            "SELECT sum(n) FROM daily WHERE day <> TIMESTAMP '2026-11-22T00:00:00Z'"
        )
        .await,
        "48"
    );

    // Rows outside the run's interval are refused, the table unchanged.
    let q = engine.plan(&daily(23)).await.unwrap();
    let e = write(&catalog, q, &spec(interval(21), "wrong", 1))
        .await
        .unwrap_err();
    assert!(e.message.contains("outside the run's interval"), "{e}");
    assert_eq!(scalar(&engine, "SELECT sum(n) FROM daily").await, "288");
}

#[tokio::test]
async fn append_once_per_identity_merge_upserts_and_overwrite_replaces() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lake/events")).unwrap();
    let location = Location::parse("lake", dir.path(), Default::default()).unwrap();
    events(&location, 30).await;
    let catalog = LakeCatalog::new(location);
    let engine = SqlEngine::new(catalog.clone(), Limits::default()).unwrap();
    let by_nation = "SELECT nation, count(*) AS n FROM events GROUP BY nation";
    let to = |mode, run: &str, v| WriteSpec {
        table: "by_nation".into(),
        partition_by: Vec::new(),
        ..spec(mode, run, v)
    };

    for (run, v) in [("a", 1), ("a", 1), ("b", 1)] {
        let q = engine.plan(by_nation).await.unwrap();
        write(&catalog, q, &to(WriteMode::Append, run, v))
            .await
            .unwrap();
    }
    // Run a twice (the second time already recorded), run b once.
    assert_eq!(scalar(&engine, "SELECT count(*) FROM by_nation").await, "6");

    let merge = WriteMode::Merge {
        unique_key: vec!["nation".into()],
    };
    let q = engine
        .plan("SELECT 'FR' AS nation, CAST(99 AS BIGINT) AS n UNION ALL SELECT 'NL', CAST(1 AS BIGINT)")
        .await
        .unwrap();
    let r = write(&catalog, q, &to(merge, "m", 1)).await.unwrap();
    assert_eq!(r.rows, 2, "{r:?}");
    // Both FR rows updated, NL inserted.
    assert_eq!(
        scalar(&engine, "SELECT count(*) FROM by_nation WHERE n = 99").await,
        "2"
    );
    assert_eq!(scalar(&engine, "SELECT count(*) FROM by_nation").await, "7");

    let q = engine.plan(by_nation).await.unwrap();
    write(&catalog, q, &to(WriteMode::Overwrite, "o", 1))
        .await
        .unwrap();
    assert_eq!(scalar(&engine, "SELECT count(*) FROM by_nation").await, "3");
    assert_eq!(scalar(&engine, "SELECT sum(n) FROM by_nation").await, "30");
}
