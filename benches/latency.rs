//! One-way latency by ping-pong between two processes, for shmpsc and its
//! peers (see `common/mod.rs`), with a spinning receiver (`try_recv` loop)
//! and a sleeping one (blocking `recv`), 64 B messages.
//!
//! ```text
//! cargo bench --bench latency                 # everything, about a minute
//! cargo bench --bench latency -- 'spin/'      # spinning receivers only
//! ```
//!
//! Benchmark ids are `latency/<spin|block>/<peer>-<path>`; criterion's time
//! per iteration is the mean one-way latency (half a round trip). After
//! criterion, the bench prints percentiles (p50, p99, p99.9, max) from an
//! HDR histogram of a dedicated run of each benchmark that ran.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{LatencyRig, Percentiles, Wait, LATENCY_ROWS, LATENCY_SIZE};
use criterion::Criterion;

/// Round trips of the percentile run after each benchmark.
const SAMPLES: u64 = 50_000;

fn main() {
    if common::child_main() {
        return;
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let mut table: Vec<(String, Percentiles)> = Vec::new();
    for wait in Wait::ALL {
        let mut g = c.benchmark_group(format!("latency/{}", wait.name()));
        for (peer, path) in LATENCY_ROWS {
            let id = format!("{}-{}", peer.name(), path.name());
            let mut rig: Option<LatencyRig> = None;
            g.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    rig.get_or_insert_with(|| LatencyRig::new(peer, path, LATENCY_SIZE, wait))
                        .ping(iters)
                })
            });
            // Only for benchmarks that ran (not filtered out).
            if let Some(rig) = rig.as_mut() {
                rig.reset();
                rig.ping(SAMPLES);
                table.push((format!("{}/{id}", wait.name()), rig.percentiles()));
            }
        }
        g.finish();
    }
    c.final_summary();
    if !table.is_empty() {
        println!(
            "\none-way latency, {LATENCY_SIZE} B, {SAMPLES} round trips each (ns)\n\
             {:<28} {:>9} {:>9} {:>9} {:>9}",
            "benchmark", "p50", "p99", "p99.9", "max"
        );
        for (id, p) in table {
            println!(
                "{id:<28} {:>9} {:>9} {:>9} {:>9}",
                p.p50, p.p99, p.p999, p.max
            );
        }
    }
}
