//! Grouping throughput: real-shaped Python, JavaScript and Java events with 15 and 50 frames, and
//! Sentry's grouping fixtures. Run with `cargo bench -p shrike-grouping`; results and the
//! machine they were measured on are recorded in BENCHMARKS.md.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use events::event;
use shrike_grouping::{GroupingConfig, group};
use shrike_protocol::Event;
use std::hint::black_box;
use std::path::PathBuf;

#[path = "support/events.rs"]
mod events;

// The `shrike` binary runs on mimalloc; measure with the allocator production uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn synthetic(c: &mut Criterion) {
    let config = GroupingConfig::default();
    let mut group_bench = c.benchmark_group("group");
    group_bench.throughput(Throughput::Elements(1));
    for platform in ["python", "javascript", "java"] {
        for frames in [15, 50] {
            let e = event(platform, frames);
            group_bench.bench_with_input(
                BenchmarkId::new(platform, format!("{frames}-frames")),
                &e,
                |b, e| b.iter(|| black_box(group(black_box(e), &config).hash().len())),
            );
        }
    }
    group_bench.finish();
}

fn fixtures(c: &mut Criterion) {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
        .join("tests/fixtures/sentry-grouping/inputs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no fixtures at {}; skipping", dir.display());
        return;
    };
    let events: Vec<Event> = entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| Event::parse(&bytes).ok())
        .collect();
    let config = GroupingConfig::default();
    let mut bench = c.benchmark_group("fixtures");
    bench.throughput(Throughput::Elements(events.len() as u64));
    bench.bench_function("all-71", |b| {
        b.iter(|| {
            for e in &events {
                black_box(group(e, &config).hash().len());
            }
        })
    });
    bench.finish();
}

criterion_group!(benches, synthetic, fixtures);
criterion_main!(benches);
