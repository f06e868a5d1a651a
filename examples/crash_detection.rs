//! Measures how fast a blocked endpoint notices that its peer died, and what
//! an idle blocked receiver costs.
//!
//! ```text
//! cargo run --release --example crash_detection
//! ```
//!
//! 1. A receiver is blocked in `recv`; the only sender's process is killed
//!    with SIGKILL: time until `recv` returns `Disconnected`.
//! 2. A sender is blocked in `send` on a full ring; the receiver's process
//!    is killed with SIGKILL: time until `send` returns `Disconnected`.
//! 3. A receiver blocked in `recv` for two seconds with an idle live sender:
//!    CPU time used.

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const ROUNDS: usize = 20;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("idle-sender") => {
            let _tx = shmpsc::Sender::<u64>::open(&args[2])?;
            println!("attached");
            std::io::stdout().flush()?;
            // Stay attached until killed.
            loop {
                std::thread::park();
            }
        }
        Some("receiver") => {
            let rx = shmpsc::Builder::new(&args[2])
                .capacity(4096)
                .receiver::<Vec<u8>>()?;
            println!("ready");
            std::io::stdout().flush()?;
            // Never receives: the ring fills up. Stay alive until killed.
            loop {
                std::thread::park();
                let _ = &rx;
            }
        }
        _ => {}
    }
    let exe = std::env::current_exe()?;
    println!(
        "liveness tick: {:?} (Builder::tick)\n",
        shmpsc::DEFAULT_TICK
    );

    // ---- 1. sender killed while the receiver is blocked in recv.
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("crash-detect-rx-{}-{round}", std::process::id());
        let rx = shmpsc::Builder::new(&name).receiver::<u64>()?;
        let mut child = Command::new(&exe)
            .args(["idle-sender", &name])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        assert_eq!(line.trim(), "attached");
        let pid = Pid::from_raw(child.id() as i32);
        let killer = std::thread::spawn(move || {
            // Let the receiver block first (not needed for correctness).
            std::thread::sleep(Duration::from_millis(20));
            let t0 = Instant::now();
            kill(pid, Signal::SIGKILL).unwrap();
            t0
        });
        let r = rx.recv();
        let t1 = Instant::now();
        let t0 = killer.join().unwrap();
        child.wait()?;
        assert_eq!(r, Err(shmpsc::RecvError::Disconnected));
        times.push(t1.duration_since(t0));
    }
    report(
        "sender killed -> blocked recv returns Disconnected",
        &mut times,
    );

    // ---- 2. receiver killed while a sender is blocked on a full ring.
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("crash-detect-tx-{}-{round}", std::process::id());
        let mut child = Command::new(&exe)
            .args(["receiver", &name])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        assert_eq!(line.trim(), "ready");
        let tx = shmpsc::Sender::<Vec<u8>>::open(&name)?;
        while tx.try_send(vec![7u8; 500]).is_ok() {}
        let pid = Pid::from_raw(child.id() as i32);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let t0 = Instant::now();
            kill(pid, Signal::SIGKILL).unwrap();
            t0
        });
        let r = tx.send(vec![7u8; 500]);
        let t1 = Instant::now();
        let t0 = killer.join().unwrap();
        child.wait()?;
        assert!(r.unwrap_err().is_disconnected());
        times.push(t1.duration_since(t0));
        drop(tx);
        let _ = shmpsc::remove(&name);
    }
    report(
        "receiver killed -> blocked send returns Disconnected",
        &mut times,
    );

    // ---- 3. idle cost of a blocked receiver.
    let name = format!("crash-detect-idle-{}", std::process::id());
    let (tx, rx) = shmpsc::channel::<u64>(&name)?;
    let before = getrusage(UsageWho::RUSAGE_SELF)?;
    let wall = Instant::now();
    let r = rx.recv_timeout(Duration::from_secs(2));
    let wall = wall.elapsed();
    let after = getrusage(UsageWho::RUSAGE_SELF)?;
    assert!(r.unwrap_err().is_timeout());
    let cpu = |u: &nix::sys::resource::Usage| {
        Duration::from_micros(
            (u.user_time().tv_sec() * 1_000_000 + u.user_time().tv_usec()) as u64
                + (u.system_time().tv_sec() * 1_000_000 + u.system_time().tv_usec()) as u64,
        )
    };
    let used = cpu(&after) - cpu(&before);
    println!(
        "idle receiver blocked in recv for {wall:.2?}: {used:?} of CPU = {:.3} % of a core",
        used.as_secs_f64() / wall.as_secs_f64() * 100.0
    );
    drop(tx);
    Ok(())
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let n = times.len();
    println!(
        "{what}\n  {n} rounds: min {:.1?}, median {:.1?}, max {:.1?}\n",
        times[0],
        times[n / 2],
        times[n - 1]
    );
}
