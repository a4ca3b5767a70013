//! Conformance against Sentry's own grouping results: every input in
//! `tests/fixtures/sentry-grouping/inputs` (copied from getsentry/sentry; its README says from
//! where and how) is grouped with the input's own project rules
//! (`_grouping.enhancements`, `_fingerprinting_rules`) and the primary hash is compared with the
//! one Sentry recorded (`manifest.json`). The test prints the score and the misses, and fails if
//! the score drops below what has been reached. `SHRIKE_GROUPING_SHOW=<name>` prints the full
//! variant trees of one fixture.

use shrike_grouping::{FingerprintRules, GroupingConfig, Rules, group};
use shrike_protocol::Event;
use std::path::PathBuf;

/// The number of fixtures whose primary hash matches today; raise it as grouping improves.
const BASELINE: usize = 69;

fn fixtures() -> PathBuf {
    // The manifest directory at run time: a test binary built from another checkout that shares
    // the target directory must not read that checkout's fixtures.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
        .join("tests/fixtures/sentry-grouping");
    assert!(
        dir.join("manifest.json").exists(),
        "fixtures not found at {}",
        dir.display()
    );
    dir
}

fn config_for(input: &serde_json::Value) -> GroupingConfig {
    let stack = input["_grouping"]["enhancements"].as_str().unwrap_or("");
    let stack = Rules::parse(stack).expect("fixture stack-trace rules parse");
    let fingerprints = FingerprintRules::from_json(&input["_fingerprinting_rules"])
        .expect("fixture fingerprint rules parse");
    GroupingConfig::with_rules(&stack, &fingerprints)
}

#[test]
fn primary_hashes_match_sentry() {
    let dir = fixtures();
    let manifest: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    let show = std::env::var("SHRIKE_GROUPING_SHOW").ok();
    let mut matched = Vec::new();
    let mut missed = Vec::new();
    for (name, entry) in &manifest {
        let expected = entry["primary_hash"].as_str().unwrap_or_default();
        let bytes = std::fs::read(dir.join("inputs").join(format!("{name}.json"))).expect("input");
        let raw: serde_json::Value = serde_json::from_slice(&bytes).expect("input json");
        let event = Event::parse(&bytes).expect("input parses as an event");
        let grouping = group(&event, &config_for(&raw));
        if show.as_deref() == Some(name.as_str()) {
            println!("{}", grouping.render());
            println!("primary: {} {}", grouping.primary().name, grouping.hash());
            println!("values: {:?}", grouping.primary().values);
        }
        if grouping.hash() == expected {
            matched.push(name.clone());
        } else {
            missed.push(format!(
                "{name} (sentry: {}, ours: {})",
                entry["primary_variant"].as_str().unwrap_or("?"),
                grouping.primary().name
            ));
        }
    }
    println!(
        "sentry grouping conformance: {} of {} primary hashes match",
        matched.len(),
        manifest.len()
    );
    for miss in &missed {
        println!("missed: {miss}");
    }
    assert_eq!(manifest.len(), 71);
    assert!(
        matched.len() >= BASELINE,
        "score dropped to {} (baseline {BASELINE})",
        matched.len()
    );
}
