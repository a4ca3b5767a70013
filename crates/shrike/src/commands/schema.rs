//! `shrike migrate` and `shrike topics create`: preparing ClickHouse and Kafka.

use crate::config::Config;

/// `shrike migrate`: applies pending ClickHouse migrations (starting the local server for the
/// time it takes when no URL is configured and no `shrike up` runs it).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let (store, _local) = crate::store::start(config).await?;
    let applied = store.migrate().await?;
    println!("applied migrations: {applied:?}");
    Ok(())
}

/// `shrike topics create`: creates Shrike's Kafka topics, or confirms they exist.
pub async fn create_topics(config: &Config) -> anyhow::Result<()> {
    let kafka = config.kafka()?;
    let created = crate::pipeline::create_topics(kafka).await?;
    shrike_bus::kafka::validate_topics(kafka, &shrike_messages::Topic::NAMES)?;
    println!(
        "created {} topics; all {} exist",
        created.len(),
        shrike_messages::Topic::NAMES.len()
    );
    Ok(())
}
