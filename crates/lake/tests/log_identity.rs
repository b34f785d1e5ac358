//! Which log the table's offsets belong to: a topic re-created (or a
//! cluster replaced) whose new log has already grown past the committed
//! offset looks fine by offsets alone; the fingerprint of the record at the
//! committed offset tells it apart. The writer refuses, loses nothing, and
//! `reset-offsets` continues with the new log.

mod common;

use std::time::Duration;

use common::*;
use lake::kafka::OffsetReader;
use lake::table::Location;
use testkit::kafka::{MockKafka, produce_keyed};
use tokio_util::sync::CancellationToken;

fn local(dir: &tempfile::TempDir) -> Location {
    Location::parse(dir.path().to_str().unwrap(), dir.path(), Default::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_grown_past_the_committed_offset_is_refused_then_continued() {
    let records = |range: std::ops::Range<u64>| range.map(|i| (i, good(i).into_bytes()));
    let first = MockKafka::start(&[("events", 2)]);
    produce_keyed(&first.producer(), "events", records(0..300)).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec("events", "");
    let s = run_until_caught_up(options(spec.clone(), local(&dir), first.bootstrap(), true)).await;
    assert_eq!(s.rows_written, 300);
    let info = lake::tools::describe(&local(&dir), "events", Some("events"), 0)
        .await
        .unwrap();
    assert_eq!(
        info.fingerprints.keys().collect::<Vec<_>>(),
        info.offsets.keys().collect::<Vec<_>>(),
        "a fingerprint beside every committed offset"
    );
    let before = verified(&local(&dir)).await;

    // The same topic name, a new log, already longer than the old one:
    // every committed offset exists in it, holding other records.
    let second = MockKafka::start(&[("events", 2)]);
    produce_keyed(&second.producer(), "events", records(5000..6000)).await;
    let opts = options(spec.clone(), local(&dir), second.bootstrap(), true);
    let ranges = OffsetReader::new(&opts.kafka)
        .unwrap()
        .log_ranges(&["events".to_string()], Duration::from_secs(10))
        .unwrap();
    for (tp, r) in &ranges {
        let committed = info.offsets[&tp.to_string()];
        assert!(
            r.end > committed + 1,
            "{tp}: the new log is longer ({r:?} vs {committed})"
        );
    }
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        lake::writer::run(opts.clone(), CancellationToken::new()),
    )
    .await
    .expect("the writer stops by itself")
    .expect_err("the writer refuses the new log");
    let message = err.to_string();
    assert!(matches!(err, lake::LakeError::LogMismatch(_)), "{message}");
    assert!(
        message.contains("is not the one the table recorded")
            && message.contains("`tributary stream reset-offsets events`"),
        "{message}"
    );
    let after = verified(&local(&dir)).await;
    assert_eq!(after.version, before.version, "nothing was written");
    assert_eq!(after.rows_read, 300);

    // The documented command: a new lifetime from the new log's first record.
    let reset = lake::lifetimes::reset_offsets(&local(&dir), &spec, &ranges)
        .await
        .unwrap()
        .expect("the table has offsets to reset");
    assert_eq!(reset.partitions.len(), 2);
    let s = run_until_caught_up(opts).await;
    assert_eq!(s.rows_written, 1000, "every record of the new log, once");
    let report = verified(&local(&dir)).await;
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.rows_read, 1300);
    // And the new log's fingerprints replace the forgotten ones.
    let info = lake::tools::describe(&local(&dir), "events", Some("events"), 0)
        .await
        .unwrap();
    assert_eq!(info.fingerprints.len(), 2);
}
