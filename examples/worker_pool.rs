//! A worker pool across processes: the parent spawns worker processes (this
//! same binary, re-executed), each sends its results over one shmpsc
//! channel, and the parent's `for result in rx` ends by itself when every
//! worker is gone, including one that crashes on purpose.
//!
//! ```text
//! cargo run --release --example worker_pool
//! cargo run --release --example worker_pool -- --workers 8 --jobs 64 --crash 3
//! ```
//!
//! The work: count the primes below 4,000,000, in jobs of 50,000 numbers,
//! dealt round-robin to the workers. Worker `--crash` (default 1) kills
//! itself with SIGKILL after sending 3 results. The parent notices the crash
//! twice: that worker's result count stops early (its missing jobs are
//! listed and computed again), and its exit status says it died of a signal.

use std::collections::BTreeMap;
use std::error::Error;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Numbers per job.
const SPAN: u64 = 50_000;
/// Results the crashing worker sends before it dies.
const CRASH_AFTER: usize = 3;

#[derive(Serialize, Deserialize, Debug)]
struct JobResult {
    worker: u32,
    pid: u32,
    job: u64,
    primes: u64,
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The primes in `[job * SPAN, (job + 1) * SPAN)`.
fn count_primes(job: u64) -> u64 {
    (job * SPAN..(job + 1) * SPAN)
        .filter(|&n| is_prime(n))
        .count() as u64
}

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, Box<dyn Error>> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        // worker CHANNEL ID CRASH JOB,JOB,...
        let jobs = args[5]
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<u64>, _>>()?;
        return worker(&args[2], args[3].parse()?, args[4] == "crash", &jobs);
    }
    let workers = arg(&args, "--workers", 4)? as u32;
    let jobs = arg(&args, "--jobs", 80)?;
    let crasher = arg(&args, "--crash", 1)? as u32;
    parent(workers.max(1), jobs, crasher)
}

fn worker(channel: &str, id: u32, crash: bool, jobs: &[u64]) -> Result<(), Box<dyn Error>> {
    // Picks up the sender the parent passed with `pass_to`.
    let tx = shmpsc::Sender::<JobResult>::open(channel)?;
    for (done, &job) in jobs.iter().enumerate() {
        if crash && done == CRASH_AFTER {
            // Die as a crash would: no unwinding, no destructors, no goodbye.
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL)?;
        }
        tx.send(JobResult {
            worker: id,
            pid: std::process::id(),
            job,
            primes: count_primes(job),
        })?;
    }
    Ok(())
}

fn parent(workers: u32, jobs: u64, crasher: u32) -> Result<(), Box<dyn Error>> {
    let exe = std::env::current_exe()?;
    let name = format!("worker-pool-{}", std::process::id());
    let (tx, rx) = shmpsc::channel::<JobResult>(&name)?;
    println!(
        "counting the primes below {} in {jobs} jobs on {workers} worker processes; worker \
         {crasher} will crash (SIGKILL) after {CRASH_AFTER} results",
        jobs * SPAN
    );

    let mut assigned: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for job in 0..jobs {
        assigned
            .entry((job % workers as u64) as u32)
            .or_default()
            .push(job);
    }
    let start = Instant::now();
    let mut children = Vec::new();
    for id in 0..workers {
        let list = assigned.get(&id).cloned().unwrap_or_default();
        let csv = list
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut cmd = Command::new(&exe);
        cmd.args([
            "worker",
            &name,
            &id.to_string(),
            if id == crasher { "crash" } else { "work" },
            &csv,
        ]);
        // Attach the worker's sender now, before it exists: the receiver
        // counts it from the start, so dropping our own sender below cannot
        // end the loop early, and a worker that dies counts as dropped.
        tx.pass_to(&mut cmd)?;
        let child = cmd.spawn()?;
        drop(cmd); // closes our copy of the passed descriptor
        children.push((id, child));
    }
    drop(tx);

    // Ends when every worker is gone: exited, or crashed.
    let mut results: BTreeMap<u32, Vec<JobResult>> = BTreeMap::new();
    for result in rx {
        results.entry(result.worker).or_default().push(result);
    }
    println!(
        "the receive loop ended by itself after {:.2?}: every worker is gone\n",
        start.elapsed()
    );

    println!("worker  pid       jobs  results  exit");
    let mut missing = Vec::new();
    for (id, mut child) in children {
        let status = child.wait()?;
        let got = results.get(&id).map_or(&[][..], Vec::as_slice);
        let want = &assigned[&id];
        let exit = match status.signal() {
            Some(sig) => format!(
                "CRASHED: killed by signal {sig} ({})",
                nix::sys::signal::Signal::try_from(sig).map_or("?", |s| s.as_str())
            ),
            None => format!("exited with {}", status.code().unwrap_or(-1)),
        };
        println!(
            "{id:>6}  {:<8}  {:>4}  {:>7}  {exit}",
            child.id(),
            want.len(),
            got.len()
        );
        // Results of one worker arrive in the order it sent them.
        assert!(got
            .iter()
            .map(|r| r.job)
            .eq(want.iter().copied().take(got.len())));
        missing.extend(want.iter().skip(got.len()).copied());
    }

    let mut total: u64 = results.values().flatten().map(|r| r.primes).sum();
    if !missing.is_empty() {
        println!(
            "\n{} jobs were lost with the crashed worker: {missing:?}; computing them here",
            missing.len()
        );
        total += missing.iter().map(|&j| count_primes(j)).sum::<u64>();
    }
    println!("\nprimes below {}: {total}", jobs * SPAN);
    Ok(())
}
