//! Conformance against Sentry's own grouping results: every input in
//! `../shared/fixtures/sentry-grouping/inputs` goes through normalization and fingerprinting, and
//! the hash is compared with the primary hash Sentry recorded (`manifest.json`). The test prints
//! the score and fails if it drops below the score already reached.

use shrike_protocol::Event;
use std::path::PathBuf;

/// The number of fixtures whose primary hash matches today; raise it as grouping improves.
const BASELINE: usize = 13;

fn fixtures() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/sentry-grouping");
    assert!(
        dir.join("manifest.json").exists(),
        "fixtures not found at {} (../shared beside the repo)",
        dir.display()
    );
    dir
}

#[test]
fn primary_hashes_match_sentry() {
    let dir = fixtures();
    let manifest: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    let mut matched = Vec::new();
    let mut missed = Vec::new();
    for (name, entry) in &manifest {
        let expected = entry["primary_hash"].as_str().unwrap_or_default();
        let input = std::fs::read(dir.join("inputs").join(format!("{name}.json"))).expect("input");
        let ours = Event::parse(&input)
            .map(|event| {
                let normalized =
                    shrike_normalizer::normalize(1, uuid::Uuid::nil(), 1_700_000_000_000, event);
                shrike_grouper::fingerprint(&normalized).hash
            })
            .unwrap_or_default();
        if ours == expected {
            matched.push(name.clone());
        } else {
            missed.push(format!(
                "{name} ({})",
                entry["primary_variant"].as_str().unwrap_or("?")
            ));
        }
    }
    println!(
        "sentry grouping conformance: {} of {} primary hashes match",
        matched.len(),
        manifest.len()
    );
    println!("matched: {matched:?}");
    println!("missed: {missed:?}");
    assert_eq!(manifest.len(), 71);
    assert!(
        matched.len() >= BASELINE,
        "score dropped to {} (baseline {BASELINE})",
        matched.len()
    );
}
