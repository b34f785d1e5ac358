//! The in-memory Kafka of `tributary dev kafka` and of `standalone` when no
//! cluster is configured: librdkafka's mock cluster.

/// librdkafka's in-process mock cluster, as an in-memory development broker
/// (it keeps about 5 MB per partition and loses everything on exit).
pub struct DevBroker {
    cluster: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

impl DevBroker {
    /// Starts it with `topics` created (name, partitions); others are created on first use.
    pub fn start(topics: &[(&str, i32)]) -> Result<DevBroker, String> {
        let cluster = rdkafka::mocking::MockCluster::new(1)
            .map_err(|e| format!("cannot start the dev broker: {e}"))?;
        for (t, p) in topics {
            cluster
                .create_topic(t, *p, 1)
                .map_err(|e| format!("cannot create topic {t}: {e}"))?;
        }
        Ok(DevBroker { cluster })
    }

    /// Its bootstrap address.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
