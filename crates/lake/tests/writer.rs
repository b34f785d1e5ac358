//! The streaming writer against librdkafka's mock cluster and real object
//! stores (local folder, in-memory, and a local folder wrapped to fail).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use lake::table::{CommitOutcome, DeltaTableHandle, Location, OffsetUpdate, app_id};
use lake::tools;
use testkit::kafka::{MockKafka, produce_keyed, produce_to};
use testkit::wait_for;
use tokio_util::sync::CancellationToken;

fn local(dir: &tempfile::TempDir) -> Location {
    Location::parse(dir.path().to_str().unwrap(), dir.path(), Default::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_continue_the_table_stops_the_writer_and_loses_nothing() {
    // The first lifetime: 300 records over two partitions, all landed.
    let first = MockKafka::start(&[("events", 2)]);
    let records = |range: std::ops::Range<u64>| range.map(|i| (i, good(i).into_bytes()));
    produce_keyed(&first.producer(), "events", records(0..300)).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec("events", "");
    let s = run_until_caught_up(options(spec.clone(), local(&dir), first.bootstrap(), true)).await;
    assert_eq!(s.rows_written, 300);
    let before = verified(&local(&dir)).await;

    // A new broker (what a restarted dev broker or a re-created topic
    // looks like): fewer records than the table already holds. Before,
    // the writer resumed past them and dropped every new record silently.
    let second = MockKafka::start(&[("events", 2)]);
    produce_keyed(&second.producer(), "events", records(1000..1020)).await;
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        lake::writer::run(
            options(spec.clone(), local(&dir), second.bootstrap(), false),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("the writer stops by itself")
    .expect_err("the writer refuses the new log");
    let message = err.to_string();
    assert!(matches!(err, lake::LakeError::LogMismatch(_)), "{message}");
    assert!(
        message.contains("table \"events\" holds offsets up to"),
        "{message}"
    );
    assert!(
        message.contains("`tributary stream reset-offsets events`"),
        "{message}"
    );
    // Nothing was written or skipped: the table is as it was.
    let after = verified(&local(&dir)).await;
    assert_eq!(after.version, before.version);
    assert_eq!(after.rows_read, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_go_to_the_dead_letter_table_and_restarts_resume_from_the_log() {
    let broker = MockKafka::start(&[("events", 4)]);
    let p = broker.producer();
    // 2,000 good records and 40 bad ones of several kinds, interleaved.
    let mut values: Vec<(u64, Vec<u8>)> = (0..2000).map(|i| (i, good(i).into_bytes())).collect();
    for i in 0..40u64 {
        let bad: &[u8] = match i % 4 {
            0 => b"not json",
            1 => br#"{"id": "seven", "nation": "FR", "at": "2026-11-21T00:00:00Z"}"#,
            2 => br#"{"nation": "FR", "at": "2026-11-21T00:00:00Z"}"#,
            _ => &[0xff, 0xfe],
        };
        values.insert((i * 50) as usize, (10_000 + i, bad.to_vec()));
    }
    produce_keyed(&p, "events", values).await;

    let dir = tempfile::tempdir().unwrap();
    let spec = spec("events", "rotation = { max_rows = 300 }");
    let s = run_until_caught_up(options(spec.clone(), local(&dir), broker.bootstrap(), true)).await;
    assert_eq!(s.records_in, 2040);
    assert_eq!(s.rows_written, 2000);
    assert_eq!(s.rejected, 40);
    assert!(s.commits >= 4, "{s:?}");

    let report = verified(&local(&dir)).await;
    assert_eq!(report.rows_read, 2000);
    assert_eq!(report.rejected_read, 40);
    assert_eq!(report.partitions.len(), 4);

    // Nothing new: a second run commits nothing and reads nothing new.
    let s2 =
        run_until_caught_up(options(spec.clone(), local(&dir), broker.bootstrap(), true)).await;
    assert_eq!((s2.records_in, s2.commits), (0, 0), "{s2:?}");

    // More records: only they are written.
    produce_keyed(
        &p,
        "events",
        (2000..2500).map(|i| (i, good(i).into_bytes())),
    )
    .await;
    let s3 =
        run_until_caught_up(options(spec.clone(), local(&dir), broker.bootstrap(), true)).await;
    assert_eq!(s3.records_in, 500, "{s3:?}");
    let report = verified(&local(&dir)).await;
    assert_eq!(report.rows_read, 2500);

    // The table is partitioned as declared.
    let info = tools::describe(&local(&dir), "events", Some("events"), 5)
        .await
        .unwrap();
    assert_eq!(info.rows, 2500);
    assert_eq!(info.partition_columns, vec!["nation", "date"]);
    assert!(
        info.partitions.contains_key("nation=FR/date=2026-11-21"),
        "{:?}",
        info.partitions.keys()
    );
    assert_eq!(info.offsets.len(), 4);
    let dead_rows: Vec<_> = std::fs::read_dir(dir.path().join("events_dead_letter"))
        .unwrap()
        .collect();
    assert!(
        dead_rows.len() >= 2,
        "dead-letter table has data files and a log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_commits_everything_buffered() {
    let broker = MockKafka::start(&[("events", 2)]);
    let dir = tempfile::tempdir().unwrap();
    // Nothing would be flushed for an hour: only the stop commits.
    let opts = options(
        spec("events", "rotation = { max_age = \"1h\" }"),
        local(&dir),
        broker.bootstrap(),
        false,
    );
    let metrics = opts.metrics.clone();
    let stop = CancellationToken::new();
    let run = tokio::spawn(lake::writer::run(opts, stop.clone()));
    produce_keyed(
        &broker.producer(),
        "events",
        (0..700).map(|i| (i, good(i).into_bytes())),
    )
    .await;
    wait_for("700 records received", || {
        metrics.records_in.load(Ordering::Relaxed) == 700
    })
    .await;
    assert_eq!(metrics.commits.load(Ordering::Relaxed), 0);
    stop.cancel();
    let s = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(s.rows_written, 700);
    let report = verified(&local(&dir)).await;
    assert_eq!(report.rows_read, 700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_cannot_commit_offsets_someone_else_moved() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec("events", "");
    let (mut a, _) = lake::writer::open_tables(&spec, &local(&dir))
        .await
        .unwrap();
    let (mut b, _) = lake::writer::open_tables(&spec, &local(&dir))
        .await
        .unwrap();
    let p0 = app_id("events", "events", 0);
    let p1 = app_id("events", "events", 1);
    let upd = |id: &str, expected, last| OffsetUpdate {
        app_id: id.to_string(),
        expected,
        last,
    };
    assert!(matches!(
        a.commit(vec![], &[upd(&p0, None, 99)], "events", 1)
            .await
            .unwrap(),
        CommitOutcome::Committed { .. }
    ));
    // B never saw A's commit: its claim on p0 from scratch is refused.
    let out = b
        .commit(vec![], &[upd(&p0, None, 49)], "events", 1)
        .await
        .unwrap();
    assert_eq!(out, CommitOutcome::Fenced(vec![(p0.clone(), Some(99))]));
    // A commit on another partition from the stale handle goes through
    // (after re-reading the log), and so does the right continuation.
    assert!(matches!(
        b.commit(vec![], &[upd(&p1, None, 10)], "events", 2)
            .await
            .unwrap(),
        CommitOutcome::Committed { .. }
    ));
    assert!(matches!(
        b.commit(vec![], &[upd(&p0, Some(99), 150)], "events", 3)
            .await
            .unwrap(),
        CommitOutcome::Committed { .. }
    ));
    // And now A is the stale one.
    let out = a
        .commit(vec![], &[upd(&p0, Some(99), 120)], "events", 2)
        .await
        .unwrap();
    assert_eq!(out, CommitOutcome::Fenced(vec![(p0.clone(), Some(150))]));
    // Reopening reads every offset from the log (checkpoint + commits).
    let t = local(&dir).open("events").await.unwrap().unwrap();
    let h = DeltaTableHandle::new("events", t).await.unwrap();
    assert_eq!((h.offset(&p0), h.offset(&p1)), (Some(150), Some(10)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_commits_cross_checkpoints_and_offsets_survive() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec("events", "");
    let (mut a, _) = lake::writer::open_tables(&spec, &local(&dir))
        .await
        .unwrap();
    let p0 = app_id("events", "events", 0);
    let mut expected = None;
    // The table checkpoints every 50 commits.
    for i in 0..120 {
        let u = OffsetUpdate {
            app_id: p0.clone(),
            expected,
            last: i * 10 + 9,
        };
        assert!(matches!(
            a.commit(vec![], &[u], "events", i).await.unwrap(),
            CommitOutcome::Committed { .. }
        ));
        expected = Some(i * 10 + 9);
    }
    assert!(
        dir.path()
            .join("events/_delta_log/_last_checkpoint")
            .exists()
    );
    let t = local(&dir).open("events").await.unwrap().unwrap();
    let h = DeltaTableHandle::new("events", t).await.unwrap();
    assert_eq!(h.offset(&p0), Some(1199));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_failures_lose_nothing() {
    let broker = MockKafka::start(&[("events", 3)]);
    produce_keyed(
        &broker.producer(),
        "events",
        (0..1500).map(|i| (i, good(i).into_bytes())),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let root = url::Url::from_directory_path(dir.path()).unwrap();
    let faulty = Faulty::new(Arc::new(object_store::local::LocalFileSystem::new()));
    faulty.delay_ms.store(5, Ordering::SeqCst);
    let location = Location::with_store(root.clone(), faulty.clone());
    let spec = spec("events", "rotation = { max_rows = 200 }");
    // Let the tables be created and a few commits land, then fail puts.
    faulty.fail_from.store(12, Ordering::SeqCst);
    faulty.fail_until.store(14, Ordering::SeqCst);
    let first = tokio::time::timeout(
        Duration::from_secs(120),
        lake::writer::run(
            options(spec.clone(), location.clone(), broker.bootstrap(), true),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    let err = first.expect_err("an injected put failure stops the run");
    assert!(err.to_string().contains("injected failure"), "{err}");
    // Restart (the store works again): everything arrives exactly once.
    let s = run_until_caught_up(options(
        spec.clone(),
        location.clone(),
        broker.bootstrap(),
        true,
    ))
    .await;
    assert!(s.rows_written > 0 && s.rows_written < 1500, "{s:?}");
    let report = verified(&location).await;
    assert_eq!(report.rows_read, 1500);
    // Files written but never committed are invisible, and vacuum removes them.
    let files_on_disk = walk(&dir.path().join("events"))
        .iter()
        .filter(|p| p.ends_with(".parquet") && !p.contains("_delta_log"))
        .count();
    let info = tools::describe(&location, "events", Some("events"), 1)
        .await
        .unwrap();
    assert!(files_on_disk as u64 >= info.files);
    let removed = tools::vacuum(&location, "events", Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(removed.len() as u64, files_on_disk as u64 - info.files);
    verified(&location).await;
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_request_errors_are_survived() {
    use rdkafka::types::RDKafkaRespErr;
    let broker = MockKafka::start(&[("events", 2)]);
    produce_keyed(
        &broker.producer(),
        "events",
        (0..800).map(|i| (i, good(i).into_bytes())),
    )
    .await;
    // Fetches and offset commits fail for a while; the client retries.
    broker.cluster().request_errors(
        rdkafka::types::RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 6],
    );
    broker.cluster().request_errors(
        rdkafka::types::RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 4],
    );
    let dir = tempfile::tempdir().unwrap();
    let s = run_until_caught_up(options(
        spec("events", "rotation = { max_rows = 100 }"),
        local(&dir),
        broker.bootstrap(),
        true,
    ))
    .await;
    assert_eq!(s.rows_written, 800);
    verified(&local(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_lake_and_optimize() {
    let broker = MockKafka::start(&[("events", 2)]);
    produce_keyed(
        &broker.producer(),
        "events",
        (0..600).map(|i| (i, good(i).into_bytes())),
    )
    .await;
    let location =
        Location::parse("memory://", std::path::Path::new("/"), Default::default()).unwrap();
    let s = run_until_caught_up(options(
        spec("events", "rotation = { max_rows = 40 }"),
        location.clone(),
        broker.bootstrap(),
        true,
    ))
    .await;
    assert_eq!(s.rows_written, 600);
    let before = tools::describe(&location, "events", None, 1).await.unwrap();
    assert!(before.files > 8, "{}", before.files);
    let r = tools::optimize(&location, "events", 64 << 20, &[])
        .await
        .unwrap();
    assert!(r.files_removed > r.files_added, "{r:?}");
    let after = tools::describe(&location, "events", None, 1).await.unwrap();
    assert_eq!(after.rows, 600);
    assert_eq!(after.files, before.partitions.len() as u64);
    let report = tools::verify(&location, "events", Some("events_dead_letter"), None)
        .await
        .unwrap();
    assert!(report.ok(), "{:#?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_in_one_group_hand_partitions_over_exactly_once() {
    let broker = MockKafka::start(&[("events", 4)]);
    let p = broker.producer();
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(
        "events",
        "rotation = { max_rows = 100, max_age = \"200ms\" }",
    );

    // Writer A alone.
    let a_opts = options(spec.clone(), local(&dir), broker.bootstrap(), false);
    let a_metrics = a_opts.metrics.clone();
    let a = tokio::spawn(lake::writer::run(a_opts, CancellationToken::new()));
    produce_keyed(&p, "events", (0..1000).map(|i| (i, good(i).into_bytes()))).await;
    wait_for("A commits", || {
        a_metrics.commits.load(Ordering::Relaxed) > 0
    })
    .await;

    // Writer B joins: the group rebalances and partitions move.
    let b_stop = CancellationToken::new();
    let b_opts = options(spec.clone(), local(&dir), broker.bootstrap(), false);
    let b_metrics = b_opts.metrics.clone();
    let b = tokio::spawn(lake::writer::run(b_opts, b_stop.clone()));
    produce_keyed(
        &p,
        "events",
        (1000..2000).map(|i| (i, good(i).into_bytes())),
    )
    .await;
    wait_for("B commits", || {
        b_metrics.commits.load(Ordering::Relaxed) > 0
    })
    .await;

    // A dies without flushing (its task is dropped mid-flight).
    a.abort();
    let _ = a.await;
    produce_keyed(
        &p,
        "events",
        (2000..3000).map(|i| (i, good(i).into_bytes())),
    )
    .await;
    b_stop.cancel();
    b.await.unwrap().unwrap();

    // Whatever is left, a last writer catches up on.
    run_until_caught_up(options(spec.clone(), local(&dir), broker.bootstrap(), true)).await;
    let report = verified(&local(&dir)).await;
    assert_eq!(report.rows_read, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_within_budget_with_1000_partitions_and_skew() {
    let broker = MockKafka::start(&[("events", 1000)]);
    let p = broker.producer();
    // Half the records go to 10 hot partitions, half spread over all 1000.
    let values = (0..40_000u64).map(|i| {
        let part = if i % 2 == 0 {
            (i / 2 % 10) as i32
        } else {
            (i / 2 % 1000) as i32
        };
        (part, good(i).into_bytes())
    });
    produce_to(&p, "events", values).await;
    let dir = tempfile::tempdir().unwrap();
    let budget = 1u64 << 20;
    let opts = options(
        spec(
            "events",
            "memory_budget = \"1MiB\"\nrotation = { max_age = \"1h\", max_rows = 10000000 }",
        ),
        local(&dir),
        broker.bootstrap(),
        true,
    );
    let metrics = opts.metrics.clone();
    let s = run_until_caught_up(opts).await;
    assert_eq!(s.rows_written, 40_000);
    let peak = metrics.peak_buffered_bytes.load(Ordering::Relaxed);
    assert!(
        peak <= budget + budget / 4,
        "peak {peak} bytes over a {budget}-byte budget"
    );
    assert!(s.commits > 5, "the budget forced several flushes: {s:?}");
    let report = verified(&local(&dir)).await;
    assert_eq!(report.partitions.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_have_dictionaries_only_where_values_repeat() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let broker = MockKafka::start(&[("events", 1)]);
    produce_keyed(
        &broker.producer(),
        "events",
        (0..3000).map(|i| (i, good(i).into_bytes())),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let s = run_until_caught_up(options(
        spec("events", ""),
        local(&dir),
        broker.bootstrap(),
        true,
    ))
    .await;
    assert_eq!(s.rows_written, 3000);
    let files: Vec<String> = walk(&dir.path().join("events"))
        .into_iter()
        .filter(|p| p.ends_with(".parquet") && !p.contains("_delta_log"))
        .collect();
    // `good` ties the day to the nation: four (nation, date) partitions.
    assert_eq!(files.len(), 4, "{files:?}");
    for f in &files {
        let reader = SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
        let meta = reader.metadata();
        let rg = meta.row_group(0);
        let has_dictionary = |name: &str| {
            let i = rg
                .columns()
                .iter()
                .position(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("no column {name} in {f}"));
            rg.column(i).dictionary_page_offset().is_some()
        };
        // Every id and offset is new; the topic and partition repeat.
        assert!(!has_dictionary("id"), "{f}");
        assert!(!has_dictionary("_offset"), "{f}");
        assert!(has_dictionary("_topic"), "{f}");
        assert!(has_dictionary("_partition"), "{f}");
    }
    verified(&local(&dir)).await;
}
