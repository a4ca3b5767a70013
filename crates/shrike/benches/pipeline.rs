//! The per-event work of each pipeline stage, on realistic 5 KB Python events from the load-test
//! generator (1,000 different events, cycled): parsing the envelope (ingest), normalizing and
//! grouping a raw event into its bus message (normalizer), and for the grouper decoding what a
//! batch keeps of that message (its summary) and, when the batch is written, its ClickHouse row.
//! Run with `cargo bench -p shrike --bench pipeline`; results are in BENCHMARKS.md.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;
use shrike_bus::Record;
use shrike_load::scenario::{CountRange, EventMix, PlatformWeights, SizeRange};
use shrike_messages::{Topic, pb};
use shrike_normalizer::Projects;
use std::hint::black_box;
use uuid::Uuid;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: u64 = 1_000;

fn events() -> Vec<(Uuid, Vec<u8>)> {
    let mix = EventMix {
        platforms: PlatformWeights {
            python: 1,
            javascript: 0,
            java: 0,
            rust: 0,
        },
        issues: 100,
        issue_skew: 1.0,
        frames: CountRange { min: 15, max: 15 },
        size: SizeRange {
            min_bytes: 5120,
            max_bytes: 5120,
        },
        releases: 5,
        gzip: false,
        pool: 0,
    };
    let generator = shrike_load::generator::Generator::new(&mix, 7, "bench");
    (0..EVENTS)
        .map(|seq| {
            let id = Uuid::from_u128(u128::from(seq) + 1);
            let (_, _, json) = generator.event_json(seq, id, 1_795_514_400.0 + seq as f64);
            (id, json)
        })
        .collect()
}

fn record(payload: Bytes) -> Record {
    Record {
        topic: Topic::RawEvents.name(),
        partition: 0,
        offset: 0,
        generation: 0,
        key: Bytes::new(),
        payload,
    }
}

fn stages(c: &mut Criterion) {
    let events = events();
    let envelopes: Vec<Bytes> = events
        .iter()
        .map(|(id, json)| {
            Bytes::from(shrike_load::envelope::event_envelope(
                *id,
                "2026-11-24T10:00:00Z",
                json,
            ))
        })
        .collect();
    let raw: Vec<Record> = events
        .iter()
        .map(|(id, json)| {
            record(shrike_messages::encode(&pb::RawEvent {
                meta: Some(shrike_messages::meta(1, *id, 1_795_514_400_000)),
                payload: Bytes::from(json.clone()),
            }))
        })
        .collect();
    let projects = Projects::default();
    let normalized: Vec<Bytes> = raw
        .iter()
        .map(|r| {
            shrike_messages::encode(
                &shrike_normalizer::process(r, &projects, false).expect("normalizes"),
            )
        })
        .collect();

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("ingest-envelope-parse", |b| {
        b.iter(|| {
            i = (i + 1) % envelopes.len();
            let envelope =
                shrike_protocol::envelope::Envelope::parse(envelopes[i].clone()).expect("parses");
            black_box(envelope.items.len())
        })
    });
    group.bench_function("normalizer-process", |b| {
        b.iter(|| {
            i = (i + 1) % raw.len();
            let message =
                shrike_normalizer::process(&raw[i], &projects, false).expect("normalizes");
            black_box(shrike_messages::encode(&message).len())
        })
    });
    group.bench_function("normalizer-process-whole", |b| {
        b.iter(|| {
            i = (i + 1) % raw.len();
            let message = shrike_normalizer::process(&raw[i], &projects, true).expect("normalizes");
            black_box(shrike_messages::encode(&message).len())
        })
    });
    // The parts of the whole event's preparation, each on its own.
    let values: Vec<serde_json::Value> = events
        .iter()
        .map(|(_, json)| serde_json::from_slice(json).expect("json"))
        .collect();
    group.bench_function("whole-parse", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            let value: serde_json::Value = serde_json::from_slice(&events[i].1).expect("json");
            black_box(value.is_object())
        })
    });
    let scrubber = shrike_normalization::Scrubber::default();
    group.bench_function("whole-scrub-trim", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % values.len();
                values[i].clone()
            },
            |mut value| {
                let mut meta = shrike_normalization::meta::Meta::default();
                if let serde_json::Value::Object(event) = &mut value {
                    scrubber.scrub(event, &mut meta);
                    shrike_normalization::trim::trim(event, &mut meta);
                }
                black_box(meta.is_empty())
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("whole-typed-view", |b| {
        b.iter(|| {
            i = (i + 1) % values.len();
            let event = shrike_protocol::Event::deserialize(&values[i]).expect("event");
            black_box(event.exception.len())
        })
    });
    group.bench_function("whole-serialize", |b| {
        b.iter(|| {
            i = (i + 1) % values.len();
            black_box(serde_json::to_vec(&values[i]).expect("json").len())
        })
    });
    group.bench_function("grouper-batch-summary", |b| {
        b.iter(|| {
            i = (i + 1) % normalized.len();
            let p = shrike_grouper::rows::pending(&normalized[i], 0).expect("decodes");
            black_box(p.event.summary.title.len())
        })
    });
    group.bench_function("grouper-decode-to-row", |b| {
        b.iter(|| {
            i = (i + 1) % normalized.len();
            let row = shrike_grouper::rows::event_row(&normalized[i]).expect("decodes");
            black_box(row.frame_functions.len())
        })
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
