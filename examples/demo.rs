//! shmpsc end to end, across real processes.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! Part 1 is the classic `std::sync::mpsc` example from the Rust book, with
//! the producer in another process. Part 2 is a worker pool: four worker
//! processes stream 100,000 messages each to the parent, one of them is
//! killed on purpose halfway, and the parent's `for` loop still ends by
//! itself once every worker is gone, with every message of each worker in
//! order.

use std::collections::BTreeMap;
use std::error::Error;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const WORKERS: u32 = 4;
const PER_WORKER: u64 = 100_000;
/// This worker kills itself (SIGKILL) after sending half of its messages.
const CRASHER: u32 = 2;

#[derive(Serialize, Deserialize, Debug)]
struct Sample {
    worker: u32,
    seq: u64,
    value: f64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("producer") => producer(&args[2]),
        Some("worker") => worker(&args[2], args[3].parse()?),
        _ => parent(),
    }
}

/// The Rust book's producer, in its own process.
fn producer(channel: &str) -> Result<(), Box<dyn Error>> {
    let tx = shmpsc::Sender::<String>::open(channel)?;
    let vals = [
        "a", "series", "of", "messages", "from", "another", "process",
    ];
    for val in vals {
        tx.send(val.to_string())?;
        thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

fn worker(channel: &str, id: u32) -> Result<(), Box<dyn Error>> {
    let tx = shmpsc::Sender::<Sample>::open(channel)?;
    for seq in 0..PER_WORKER {
        if id == CRASHER && seq == PER_WORKER / 2 {
            // Die without unwinding or running destructors, as a crash would.
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL)?;
        }
        tx.send(Sample {
            worker: id,
            seq,
            value: seq as f64 * 0.5,
        })?;
    }
    Ok(())
}

fn parent() -> Result<(), Box<dyn Error>> {
    let exe = std::env::current_exe()?;

    // ---- Part 1: the Rust book example, producer in another process.
    let name = format!("demo-book-{}", std::process::id());
    let (tx, rx) = shmpsc::channel::<String>(&name)?;
    let mut cmd = Command::new(&exe);
    cmd.args(["producer", &name]);
    tx.pass_to(&mut cmd)?; // the child is a sender from the start
    let mut child = cmd.spawn()?;
    drop(cmd);
    drop(tx); // now only the producer process holds the channel open
    println!("part 1: a producer process sends one word per second");
    for received in rx {
        println!("Got: {received}");
    }
    println!("part 1: the producer exited, so the loop ended");
    child.wait()?;

    // ---- Part 2: a worker pool, one worker crashes.
    let name = format!("demo-pool-{}", std::process::id());
    let (tx, rx) = shmpsc::Builder::new(&name)
        .capacity(1 << 20)
        .create::<Sample>()?;
    let mut children = Vec::new();
    for id in 0..WORKERS {
        let mut cmd = Command::new(&exe);
        cmd.args(["worker", &name, &id.to_string()]);
        tx.pass_to(&mut cmd)?;
        children.push((id, cmd.spawn()?));
    }
    drop(tx);
    println!(
        "\npart 2: {WORKERS} worker processes send {PER_WORKER} messages each; worker {CRASHER} is \
         killed with SIGKILL halfway"
    );
    let start = Instant::now();
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    let mut total = 0u64;
    for s in &rx {
        let expected = next.entry(s.worker).or_insert(0);
        assert_eq!(s.seq, *expected, "worker {} out of order", s.worker);
        assert_eq!(s.value, s.seq as f64 * 0.5);
        *expected += 1;
        total += 1;
    }
    let elapsed = start.elapsed();
    for (id, mut child) in children {
        let status = child.wait()?;
        let got = next.get(&id).copied().unwrap_or(0);
        println!("  worker {id}: {got:>6} messages, in order, gap-free; exit: {status}");
    }
    println!(
        "part 2: the loop ended by itself after {total} messages in {:.2?} ({:.2} M msg/s): \
         the crashed worker counted as a dropped sender",
        elapsed,
        total as f64 / elapsed.as_secs_f64() / 1e6
    );
    assert_eq!(next.len() as u32, WORKERS);
    for (&id, &n) in &next {
        if id == CRASHER {
            assert_eq!(n, PER_WORKER / 2);
        } else {
            assert_eq!(n, PER_WORKER);
        }
    }
    println!("demo OK");
    Ok(())
}
