//! Throughput, N sender processes -> 1 receiver process, for shmpsc and its
//! peers (see `common/mod.rs`): every combination of path (serde, bytes),
//! N (1, 2, 4) and message size (16 B, 64 B, 1 KiB, 64 KiB).
//!
//! ```text
//! cargo bench --bench throughput                          # everything, about 5 minutes on 2 cores
//! cargo bench --bench throughput -- 'serde/64B/1to1'      # one group
//! cargo bench --bench throughput -- 'shmpsc'              # one peer
//! ```
//!
//! Benchmark ids are `throughput/<path>/<size>B/<N>to1/<peer>`; criterion
//! reports time and rate per message (all senders together). The processes
//! of a benchmark start once; each criterion sample is one round in which
//! every sender sends its share and the receiver counts them in
//! (`iter_custom`: the parent times the round).

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Path, Peer, ThroughputRig, SENDERS, SIZES};
use criterion::{Criterion, Throughput};

fn main() {
    if common::child_main() {
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    for path in Path::ALL {
        for &n in &SENDERS {
            for &size in &SIZES {
                let mut g = c.benchmark_group(format!("throughput/{}/{size}B/{n}to1", path.name()));
                g.throughput(Throughput::Elements(1));
                for peer in Peer::ALL {
                    // Started on first use, so that filtered-out benchmarks
                    // start no process.
                    let mut rig: Option<ThroughputRig> = None;
                    g.bench_function(peer.name(), |b| {
                        b.iter_custom(|iters| {
                            let rig =
                                rig.get_or_insert_with(|| ThroughputRig::new(peer, path, size, n));
                            let per_sender = iters.div_ceil(n as u64).max(1);
                            let d = rig.round(per_sender);
                            // Rounding up sent a few more than `iters`.
                            d.mul_f64(iters as f64 / (per_sender * n as u64) as f64)
                        })
                    });
                }
                g.finish();
            }
        }
    }
    c.final_summary();
}
