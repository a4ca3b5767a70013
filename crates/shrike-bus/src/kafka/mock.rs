//! librdkafka's in-process mock cluster: a real Kafka-protocol broker, reachable by other
//! processes on its loopback bootstrap address. For fault injection in tests and
//! `shrike dev kafka`; never for data anyone needs: it lives in memory, dies with the process and
//! keeps at most 5 MiB per partition.

use super::KafkaConfig;
use crate::BusError;
use crate::TopicName;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer as _};

/// A running mock cluster; stops when dropped.
pub struct MockKafka {
    owner: BaseProducer,
    brokers: i32,
}

impl MockKafka {
    /// Starts a cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> Result<Self, BusError> {
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.to_string())
            .create()
            .map_err(|e| BusError::Setup(e.to_string()))?;
        let mock = MockKafka { owner, brokers };
        mock.disable_initial_rebalance_delay();
        Ok(mock)
    }

    #[allow(unsafe_code)]
    fn disable_initial_rebalance_delay(&self) {
        // The mock delays a new group's first rebalance by 3 s; tests join groups often.
        // SAFETY: `native_ptr` is the live client that owns the mock cluster, and the mock
        // cluster pointer is checked for null before use; both outlive this call.
        unsafe {
            let cluster =
                rdkafka_sys::rd_kafka_handle_mock_cluster(self.owner.client().native_ptr());
            if !cluster.is_null() {
                rdkafka_sys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
            }
        }
    }

    /// The bootstrap address clients connect to.
    pub fn bootstrap_servers(&self) -> String {
        self.owner
            .client()
            .mock_cluster()
            .map(|m| m.bootstrap_servers())
            .unwrap_or_default()
    }

    /// Creates `topics` (with `config`'s prefix) with `partitions` partitions (the mock's admin
    /// API is not usable, so topics are created through the mock interface).
    pub fn create_topics(
        &self,
        config: &KafkaConfig,
        topics: &[TopicName],
        partitions: i32,
    ) -> Result<(), BusError> {
        let mock = self.cluster()?;
        for topic in topics {
            mock.create_topic(&config.topic_name(topic), partitions, self.brokers.min(3))
                .map_err(|e| BusError::Setup(e.to_string()))?;
        }
        Ok(())
    }

    /// Makes `broker` (1-based) the leader of `topic`'s `partition` (with `config`'s prefix).
    pub fn set_leader(
        &self,
        config: &KafkaConfig,
        topic: TopicName,
        partition: i32,
        broker: i32,
    ) -> Result<(), BusError> {
        let mock = self.cluster()?;
        mock.partition_leader(&config.topic_name(topic), partition, Some(broker))
            .map_err(|e| BusError::Setup(e.to_string()))
    }

    /// Takes one broker (1-based) down (true) or brings it back (false).
    pub fn set_broker_down(&self, broker: i32, down: bool) -> Result<(), BusError> {
        let mock = self.cluster()?;
        let result = if down {
            mock.broker_down(broker)
        } else {
            mock.broker_up(broker)
        };
        result.map_err(|e| BusError::Setup(e.to_string()))
    }

    fn cluster(&self) -> Result<MockCluster<'_, DefaultProducerContext>, BusError> {
        self.owner
            .client()
            .mock_cluster()
            .ok_or(BusError::Setup("no mock cluster".into()))
    }

    /// Takes every broker down (true) or brings them back (false).
    pub fn set_down(&self, down: bool) -> Result<(), BusError> {
        for broker in 1..=self.brokers {
            self.set_broker_down(broker, down)?;
        }
        Ok(())
    }
}
