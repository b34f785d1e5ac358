//! A Kafka for tests: librdkafka's mock cluster (it keeps only about 5 MB
//! per partition, so keep backlogs small) and producers that return only
//! once every record is delivered.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, FutureProducer, FutureRecord, Producer,
};

/// How long one delivery may take before a producer gives up.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends in flight at once before the producers wait for a group.
const IN_FLIGHT: usize = 1000;

/// A mock cluster of one broker with the given topics.
pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockKafka {
    /// Starts the cluster and creates `topics` as (name, partitions).
    pub fn start(topics: &[(&str, i32)]) -> MockKafka {
        let cluster = MockCluster::new(1).expect("mock cluster starts");
        for (topic, partitions) in topics {
            cluster
                .create_topic(topic, *partitions, 1)
                .unwrap_or_else(|e| panic!("create topic {topic}: {e}"));
        }
        MockKafka { cluster }
    }

    /// Its bootstrap address.
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// An idempotent producer to it.
    pub fn producer(&self) -> FutureProducer {
        producer(&self.bootstrap())
    }

    /// The cluster itself, to inject request errors.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}

/// An idempotent producer to `bootstrap`.
pub fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces each `(key, value)` (the key spreads records over partitions)
/// and waits for every delivery; panics on a failed one.
pub async fn produce_keyed<K: ToString>(
    p: &FutureProducer,
    topic: &str,
    records: impl IntoIterator<Item = (K, Vec<u8>)>,
) {
    send_all(
        records
            .into_iter()
            .map(|(key, value)| (Some(key.to_string()), None, value)),
        p,
        topic,
    )
    .await
}

/// Produces each value to an explicit partition and waits for every delivery.
pub async fn produce_to(
    p: &FutureProducer,
    topic: &str,
    records: impl IntoIterator<Item = (i32, Vec<u8>)>,
) {
    send_all(
        records
            .into_iter()
            .map(|(partition, value)| (None, Some(partition), value)),
        p,
        topic,
    )
    .await
}

async fn send_all(
    records: impl Iterator<Item = (Option<String>, Option<i32>, Vec<u8>)>,
    p: &FutureProducer,
    topic: &str,
) {
    let mut in_flight = Vec::new();
    for (key, partition, value) in records {
        let p = p.clone();
        let topic = topic.to_string();
        in_flight.push(async move {
            let mut record = FutureRecord::<String, _>::to(&topic).payload(&value);
            if let Some(key) = &key {
                record = record.key(key);
            }
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            p.send(record, DELIVERY_TIMEOUT)
                .await
                .map_err(|(e, _)| e)
                .unwrap_or_else(|e| panic!("delivery to {topic}: {e}"));
        });
        if in_flight.len() >= IN_FLIGHT {
            futures::future::join_all(std::mem::take(&mut in_flight)).await;
        }
    }
    futures::future::join_all(in_flight).await;
}

/// Produces `(key, value)` records from a thread without a runtime
/// (idempotent, then flushed), for brokers driven from blocking tests.
///
/// `one_record_batches` puts every record in a batch of its own: Tansu 0.6
/// answers a fetch from an offset inside a record batch with the *next*
/// batch, so a consumer resuming mid-batch there skips records;
/// single-record batches keep every resume point at a batch start.
pub fn produce_blocking(
    bootstrap: &str,
    topic: &str,
    records: impl IntoIterator<Item = (String, String)>,
    one_record_batches: bool,
) {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    if one_record_batches {
        cfg.set("batch.num.messages", "1").set("linger.ms", "0");
    }
    let p: BaseProducer = cfg.create().expect("producer");
    for (key, value) in records {
        loop {
            match p.send(BaseRecord::to(topic).key(&key).payload(&value)) {
                Ok(()) => break,
                Err((e, _)) if e.to_string().contains("Queue full") => {
                    p.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("produce to {topic}: {e}"),
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60))
        .expect("every record delivered");
}
