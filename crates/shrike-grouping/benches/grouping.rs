//! Grouping throughput: real-shaped Python, JavaScript and Java events with 15 and 50 frames, and
//! Sentry's grouping fixtures. Run with `cargo bench -p shrike-grouping`; results and the
//! machine they were measured on are recorded in BENCHMARKS.md.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use shrike_grouping::{GroupingConfig, group};
use shrike_protocol::Event;
use std::hint::black_box;
use std::path::PathBuf;

fn frame(platform: &str, i: usize, in_app: bool) -> Value {
    match platform {
        "python" => json!({
            "filename": format!("app/module_{i}.py"),
            "abs_path": format!("/srv/app/app/module_{i}.py"),
            "module": format!("app.module_{i}"),
            "function": format!("handle_{i}"),
            "lineno": 10 + i,
            "context_line": format!("    result = handle_{}(request, user_id=user.id)", i + 1),
            "pre_context": ["def f():", "    x = 1"],
            "post_context": ["    return result"],
            "in_app": in_app,
            "vars": {"request": "<WSGIRequest: GET '/boom/'>", "i": i}
        }),
        "javascript" => json!({
            "filename": format!("/static/js/chunk-{i}.js"),
            "abs_path": format!("https://example.com/static/js/chunk-{i}.js"),
            "function": format!("Object.component{i}"),
            "lineno": 1,
            "colno": 1000 + i,
            "context_line": format!("const value = component{}(props);", i + 1),
            "in_app": in_app
        }),
        _ => json!({
            "filename": format!("Service{i}.java"),
            "module": format!("com.example.service.Service{i}$$EnhancerBySpringCGLIB$$1ebdddb0"),
            "function": format!("process{i}"),
            "lineno": 100 + i,
            "in_app": in_app
        }),
    }
}

fn event(platform: &str, frames: usize) -> Event {
    let frames: Vec<Value> = (0..frames)
        .map(|i| frame(platform, i, i >= frames / 2))
        .collect();
    let body = json!({
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "platform": platform,
        "level": "error",
        "message": "Order 12345 failed for user 42 at 2026-11-24T10:00:00Z",
        "exception": {"values": [{
            "type": "ValueError",
            "value": "invalid literal for int() with base 10: 'abc' (request 88ee7c66-29a9-4a4a-bc26-c72d76c5de14)",
            "mechanism": {"type": "generic", "handled": false},
            "stacktrace": {"frames": frames}
        }]},
        "breadcrumbs": {"values": [{"message": "GET /api", "category": "http"}]},
        "tags": {"release": "1.0", "browser": "Firefox"},
        "user": {"id": "42", "email": "a@example.com"}
    });
    Event::parse(body.to_string().as_bytes()).expect("benchmark event parses")
}

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
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/sentry-grouping/inputs");
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
