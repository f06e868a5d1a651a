//! A tokio daemon on shmpsc's async API (feature `async`): it spawns worker
//! processes (this same program, `worker ID`), receives their structured
//! records on one channel and their control messages on a second, with a
//! progress timer, all in one `tokio::select!`. One worker is killed with
//! SIGKILL half-way; the daemon carries on, and at the end prints how many
//! records each worker sent and it received.
//!
//! ```text
//! cargo run --release --features async --example async_daemon
//! ```

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shmpsc::{Builder, RecvError, Sender};

/// A worker's record.
#[derive(Serialize, Deserialize, Debug)]
struct Rec {
    worker: u32,
    seq: u64,
    level: u8,
    msg: String,
}

/// What workers tell the daemon on the control channel.
#[derive(Serialize, Deserialize, Debug)]
enum Control {
    /// The worker sent `sent` records (all `Ok`) and is exiting.
    Done { worker: u32, sent: u64 },
    /// The worker sent `sent` records and now waits to be killed.
    KillMe { worker: u32, pid: u32, sent: u64 },
}

const WORKERS: u32 = 4;
const RECORDS: u64 = 50_000;
/// The worker the daemon kills.
const VICTIM: u32 = 2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let id: u32 = args[2].parse().expect("worker id");
        worker(id, &args[3]);
        return;
    }
    daemon();
}

/// A worker: sends its records with `send_async` (a current-thread tokio
/// runtime), then reports on the control channel.
fn worker(id: u32, name: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let data = Sender::<Rec>::open(name).expect("open the data channel");
        let control = Sender::<Control>::open(&format!("{name}-ctl")).expect("open control");
        let count = if id == VICTIM { RECORDS / 2 } else { RECORDS };
        for seq in 0..count {
            let rec = Rec {
                worker: id,
                seq,
                level: (seq % 5) as u8,
                msg: format!("worker {id} did step {seq}"),
            };
            data.send_async(rec).await.expect("send");
        }
        if id == VICTIM {
            let pid = std::process::id();
            let report = Control::KillMe {
                worker: id,
                pid,
                sent: count,
            };
            control.send_async(report).await.expect("control");
            // Wait for the SIGKILL: stdin stays open until the daemon kills us.
            let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
        } else {
            let report = Control::Done {
                worker: id,
                sent: count,
            };
            control.send_async(report).await.expect("control");
        }
    });
}

fn daemon() {
    let name = format!("async-daemon-{}", std::process::id());
    let mut data = Builder::new(&name)
        .receiver::<Rec>()
        .expect("create the data channel");
    let mut control = Builder::new(&format!("{name}-ctl"))
        .receiver::<Control>()
        .expect("create the control channel");
    let exe = std::env::current_exe().expect("current_exe");
    let mut children: BTreeMap<u32, Child> = (0..WORKERS)
        .map(|id| {
            let child = Command::new(&exe)
                .args(["worker", &id.to_string(), &name])
                .stdin(Stdio::piped())
                .spawn()
                .expect("spawn a worker");
            (id, child)
        })
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (received, sent) = rt.block_on(async {
        let mut received: BTreeMap<u32, u64> = BTreeMap::new();
        let mut sent: BTreeMap<u32, String> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut control_open = true;
        loop {
            tokio::select! {
                r = data.recv_async() => match r {
                    Ok(rec) => {
                        let n = received.entry(rec.worker).or_default();
                        assert_eq!(rec.seq, *n, "worker {}: out of order", rec.worker);
                        *n += 1;
                    }
                    // Every worker exited or died, and every record is in.
                    Err(RecvError::Disconnected) => break,
                    Err(e) => eprintln!("skipped a record: {e}"),
                },
                c = control.recv_async(), if control_open => match c {
                    Ok(Control::Done { worker, sent: n }) => {
                        sent.insert(worker, n.to_string());
                    }
                    Ok(Control::KillMe { worker, pid, sent: n }) => {
                        println!("killing worker {worker} (pid {pid}) with SIGKILL");
                        if let Some(child) = children.get_mut(&worker) {
                            child.kill().expect("kill");
                        }
                        sent.insert(worker, format!("{n} (killed)"));
                    }
                    Err(RecvError::Disconnected) => control_open = false,
                    Err(e) => eprintln!("bad control message: {e}"),
                },
                _ = tick.tick() => {
                    let total: u64 = received.values().sum();
                    println!("progress: {total} records");
                }
            }
        }
        (received, sent)
    });
    for child in children.values_mut() {
        let _ = child.wait();
    }
    println!("{:>6}  {:>16}  {:>9}", "worker", "sent", "received");
    for id in 0..WORKERS {
        println!(
            "{id:>6}  {:>16}  {:>9}",
            sent.get(&id).map_or("?", String::as_str),
            received.get(&id).copied().unwrap_or(0)
        );
    }
    let expected = RECORDS * u64::from(WORKERS - 1) + RECORDS / 2;
    let total: u64 = received.values().sum();
    assert_eq!(total, expected, "records lost or duplicated");
    println!("all {total} records received, each once and in order per worker");
}
