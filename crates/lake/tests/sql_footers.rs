//! The engine keeps each file's Parquet footer *with* its page index across
//! queries (`lake::sql` `page_index.rs`): a filtered query caches both, so
//! later queries read neither again, and answers stay right.

use std::sync::Arc;

use lake::deltalake::arrow::array::{Float64Array, Int64Array, RecordBatch};
use lake::deltalake::arrow::datatypes::{DataType, Field, Schema};
use lake::sql::{LakeCatalog, Limits, SqlEngine};
use lake::table::Location;

/// `points`: one file per commit, `files` commits of `rows` rows each; ids
/// 0.. in order, latitude = id - half of all rows (so half are negative).
async fn points(location: &Location, files: i64, rows: i64) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("latitude", DataType::Float64, false),
    ]));
    let half = files * rows / 2;
    for f in 0..files {
        let ids = f * rows..(f + 1) * rows;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(ids.clone())),
                Arc::new(Float64Array::from_iter_values(
                    ids.map(|i| (i - half) as f64),
                )),
            ],
        )
        .unwrap();
        let t = location.open("points").await.unwrap();
        let t = match t {
            Some(t) => t,
            None => location.builder("points").unwrap().build().unwrap(),
        };
        t.write(vec![batch]).await.unwrap();
    }
}

async fn count(engine: &SqlEngine, sql: &str) -> i64 {
    let a = engine.plan(sql).await.unwrap().collect(None).await.unwrap();
    lake::sql::encode::cells(&a.batches).unwrap()[0][0]
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_filtered_query_keeps_every_files_page_index_with_its_footer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lake/points")).unwrap();
    let location = Location::parse("lake", dir.path(), Default::default()).unwrap();
    points(&location, 4, 250).await;
    let engine = SqlEngine::new(LakeCatalog::new(location), Limits::default()).unwrap();
    assert_eq!(engine.cached_footers().files, 0);

    // A filter page statistics could prune (so DataFusion reads page
    // indexes) that no file's statistics in the log rule out (so every
    // file is opened).
    let n = count(&engine, "SELECT count(*) FROM points WHERE latitude > -400").await;
    assert_eq!(n, (0..1000).filter(|i| i - 500 > -400).count() as i64);
    let first = engine.cached_footers();
    assert_eq!(first.files, 4, "{first:?}");
    assert_eq!(first.with_page_index, 4, "{first:?}");

    // Later queries find both in the cache and still answer right.
    let n = count(&engine, "SELECT count(*) FROM points WHERE id >= 600").await;
    assert_eq!(n, 400);
    let n = count(
        &engine,
        "SELECT count(*) FROM points WHERE latitude <= -100",
    )
    .await;
    assert_eq!(n, (0..1000).filter(|i| i - 500 <= -100).count() as i64);
    let later = engine.cached_footers();
    assert_eq!(later.files, 4, "{later:?}");
    assert_eq!(later.with_page_index, 4, "{later:?}");
}
