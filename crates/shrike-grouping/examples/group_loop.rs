//! Groups one benchmark event many times, for instruction counts that do not depend on machine
//! noise: `valgrind --tool=callgrind target/release/examples/group_loop python 15 10000`.

#[path = "../benches/support/events.rs"]
mod events;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let platform = args.next().unwrap_or_else(|| "python".into());
    let frames = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let event = events::event(&platform, frames);
    let config = shrike_grouping::GroupingConfig::default();
    let mut total = 0;
    for _ in 0..count {
        total += shrike_grouping::group(std::hint::black_box(&event), &config)
            .hash()
            .len();
    }
    println!("{total}");
}
