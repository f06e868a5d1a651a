//! What idle async receivers cost: 64 channels, each with a live sender
//! and a task pending in `recv_async` on a tokio runtime, for a few
//! seconds; prints the CPU time the whole process used meanwhile (the
//! helper thread's liveness checks included), then wakes every task with
//! one message to show that they were all still waiting.
//!
//! ```text
//! cargo run --release --features async --example async_idle [SECONDS]
//! ```

use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};

const RECEIVERS: usize = 64;

fn cpu_time() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map_or(3, |s| s.parse().expect("SECONDS"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..RECEIVERS {
            let name = format!("async-idle-{}-{i}", std::process::id());
            let (tx, mut rx) = shmpsc::channel::<u64>(&name).expect("create");
            senders.push(tx);
            tasks.push(tokio::spawn(async move { rx.recv_async().await }));
        }
        // Let every task reach its wait (they are pending at once).
        tokio::task::yield_now().await;
        let (cpu0, t0) = (cpu_time(), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
        println!(
            "{RECEIVERS} idle async receivers for {:.1} s: {:.3} ms of CPU, {:.3} % of one core",
            wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e3,
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
        );
        for (i, tx) in senders.iter().enumerate() {
            tx.send(i as u64).expect("send");
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.expect("task"), Ok(i as u64));
        }
        println!("all {RECEIVERS} woke with their message");
    });
}
