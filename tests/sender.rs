//! The sender half under contention, on a busy CPU, across `fork`, and
//! when passed to a child: clones of one `Sender` that wait for room, timeouts
//! that must hold when the CPU is shared, a sender copied by `fork`, and the
//! descriptor that `Sender::pass_to` hands over.

// Helpers for the tests that the following commits add.
#![allow(unused_imports, dead_code)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{channel_name, emit, run_child_role, unique_name, Spawn};
use nix::sys::signal::Signal;
use shmpsc::{
    Builder, RecvTimeoutError, SendError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};

/// A short liveness tick, so a test sees many liveness checks quickly.
const TICK: Duration = Duration::from_millis(5);
/// Bound for things that must happen "at once" but, with the defect, wait
/// for something that never happens in the test (a hang): only a guard.
const PROMPTLY: Duration = Duration::from_secs(10);
/// The event mark of `common::emit`, for the forked grandchild, which
/// writes its event with one `write(2)` (no locks taken after `fork`).
const EVENT_MARK: &str = "@@shmpsc-test-event@@ ";

// --------------------------------------------------------------- helpers

/// Fills the ring with `try_send_bytes` until it reports `Full`; returns
/// how many records went in.
fn fill<T>(tx: &Sender<T>, record: &[u8]) -> usize {
    let mut n = 0;
    loop {
        match tx.try_send_bytes(record) {
            Ok(()) => n += 1,
            Err(TrySendError::Full(_)) => return n,
            Err(e) => panic!("try_send_bytes while filling: {e:?}"),
        }
        assert!(n < 1_000_000, "the ring never reported Full");
    }
}

/// Waits (at most `PROMPTLY`) until thread `tid` of this process is asleep
/// (state `S`) for many consecutive polls: blocked, not spinning or
/// yielding. Panics with `what` otherwise.
fn wait_until_asleep(tid: i32, what: &str) {
    let path = format!("/proc/self/task/{tid}/stat");
    let deadline = Instant::now() + PROMPTLY;
    let mut asleep = 0u32;
    while asleep < 10_000 {
        let stat = std::fs::read_to_string(&path).unwrap();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if state == Some('S') {
            asleep += 1;
        } else {
            asleep = 0;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: thread {tid} did not stay asleep (it spins or yields) within \
             {PROMPTLY:?}; last stat: {stat}"
        );
        std::thread::yield_now();
    }
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: `set` is a plain C bitmask on our stack, fully initialised by
    // CPU_ZERO; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A CPU this thread may run on.
fn some_allowed_cpu() -> usize {
    // SAFETY: as in `pin_to`; sched_getaffinity writes into `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .expect("no CPU allowed")
    }
}

/// Runs `f` on a thread pinned to one CPU that another thread keeps busy
/// (a CPU-bound loop pinned to the same CPU), and returns its result.
fn on_busy_cpu<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let cpu = some_allowed_cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let (running_tx, running) = mpsc::channel();
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            pin_to(cpu);
            running_tx.send(()).unwrap();
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })
    };
    running.recv().unwrap();
    let worker = std::thread::spawn(move || {
        pin_to(cpu);
        f()
    });
    let r = worker.join();
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    r.unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

// ------------------------------------------------ defect 4: clones waiting

/// A clone's `try_send` and `send_timeout` do not wait behind another
/// clone's `send` blocked on a full ring: they report `Full` / `Timeout` at
/// once (with the defect they returned only when the receiver drained).
#[test]
fn clone_try_send_not_blocked_by_blocked_send() {
    run_child_role(|_| ());
    let name = unique_name("clone-try");
    // A tick far longer than the guard: nothing may rely on it here.
    let (tx, rx) = Builder::new(&name)
        .capacity(4096)
        .tick(Duration::from_secs(30))
        .create::<()>()
        .unwrap();
    let filled = fill(&tx, &[7; 100]);
    let (tid_tx, tid) = mpsc::channel();
    let blocked = {
        let tx = tx.clone();
        std::thread::spawn(move || {
            tid_tx.send(common::current_tid()).unwrap();
            tx.send_bytes(&[8; 100]).map_err(|e| format!("{e:?}"))
        })
    };
    wait_until_asleep(tid.recv().unwrap(), "the blocked send");

    let (done_tx, done) = mpsc::channel();
    let other = {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let t = match tx.try_send_bytes(&[9; 100]) {
                Err(TrySendError::Full(_)) => "full".to_owned(),
                r => format!("{r:?}"),
            };
            done_tx.send(t).unwrap();
            let s = match tx.send_timeout((), Duration::from_millis(1)) {
                Err(SendTimeoutError::Timeout(_)) => "timeout".to_owned(),
                r => format!("{r:?}"),
            };
            done_tx.send(s).unwrap();
        })
    };
    let first = done.recv_timeout(PROMPTLY);
    let second = first
        .as_ref()
        .ok()
        .and_then(|_| done.recv_timeout(PROMPTLY).ok());
    // Drain, so that every thread ends whatever happened.
    let mut got = 0;
    while got < filled + 1 {
        rx.recv_bytes_with(|_| ()).unwrap();
        got += 1;
    }
    other.join().unwrap();
    assert_eq!(blocked.join().unwrap(), Ok(()));
    assert_eq!(
        first.as_deref(),
        Ok("full"),
        "a clone's try_send waited for another clone's blocked send"
    );
    assert_eq!(
        second.as_deref(),
        Some("timeout"),
        "a clone's send_timeout waited for another clone's blocked send"
    );
    drop(tx);
    let _ = rx.try_recv_bytes_with(|_| ());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

/// Two clones blocked on a full ring both sleep (neither spins on the
/// other), and both complete once the receiver drains, without waiting for
/// a liveness tick (30 s here): the clones' shared sleeper bit stays set
/// while either sleeps.
#[test]
fn two_clones_blocked_both_sleep_and_both_wake() {
    run_child_role(|_| ());
    let name = unique_name("clone-sleep");
    let (tx, rx) = Builder::new(&name)
        .capacity(4096)
        .tick(Duration::from_secs(30))
        .create::<()>()
        .unwrap();
    let filled = fill(&tx, &[1; 200]);
    let (done_tx, done) = mpsc::channel();
    let mut threads = Vec::new();
    for i in 0..2u8 {
        let tx = tx.clone();
        let (tid_tx, tid) = mpsc::channel();
        let done_tx = done_tx.clone();
        threads.push(std::thread::spawn(move || {
            tid_tx.send(common::current_tid()).unwrap();
            let r = tx.send_bytes(&[10 + i; 200]).is_ok();
            done_tx.send(r).unwrap();
        }));
        wait_until_asleep(tid.recv().unwrap(), "a clone blocked in send");
    }
    // Receive everything: the first records make room for both.
    for _ in 0..filled {
        rx.recv_bytes_with(|_| ()).unwrap();
    }
    let woken: Vec<_> = (0..2).map(|_| done.recv_timeout(PROMPTLY)).collect();
    for _ in 0..woken.iter().filter(|r| r.is_ok()).count() {
        rx.recv_bytes_with(|_| ()).unwrap();
    }
    if woken.iter().any(|r| r.is_err()) {
        // Let the stragglers end before failing: room for them.
        for _ in 0..2 {
            let _ = rx.recv_bytes_timeout_with(Duration::from_secs(60), |_| ());
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        woken,
        [Ok(true), Ok(true)],
        "both blocked clones must complete once there is room"
    );
}

// ------------------------------------------- defect 6: timeouts, busy CPU

/// `recv_timeout(1 ms)` on an empty channel, on a CPU shared with a busy
/// thread, returns close to its deadline (with the defect, the spin and
/// yield phases ran in full first: 88 ms median).
#[test]
fn recv_timeout_holds_on_busy_cpu() {
    run_child_role(|_| ());
    let name = unique_name("busy-recv");
    let (tx, rx) = shmpsc::channel::<u8>(&name).unwrap();
    let times = on_busy_cpu(move || {
        let times: Vec<Duration> = (0..9)
            .map(|_| {
                let t = Instant::now();
                assert_eq!(
                    rx.recv_timeout(Duration::from_millis(1)),
                    Err(RecvTimeoutError::Timeout)
                );
                t.elapsed()
            })
            .collect();
        drop((tx, rx));
        times
    });
    let m = median(times.clone());
    println!("median {m:?} of {times:?}");
    assert!(
        m < Duration::from_millis(30),
        "recv_timeout(1 ms) took {m:?} (median) on a busy CPU: {times:?}"
    );
}

/// `send_timeout(0)` on a full ring, on a busy CPU, returns at once (with
/// the defect: 88-92 ms).
#[test]
fn zero_send_timeout_holds_on_busy_cpu() {
    run_child_role(|_| ());
    let name = unique_name("busy-send");
    let (tx, rx) = Builder::new(&name).capacity(4096).create::<u8>().unwrap();
    fill(&tx, &[0; 64]);
    let times = on_busy_cpu(move || {
        let times: Vec<Duration> = (0..9)
            .map(|_| {
                let t = Instant::now();
                assert!(matches!(
                    tx.send_timeout(1, Duration::ZERO),
                    Err(SendTimeoutError::Timeout(1))
                ));
                t.elapsed()
            })
            .collect();
        drop((tx, rx));
        times
    });
    let m = median(times.clone());
    println!("median {m:?} of {times:?}");
    assert!(
        m < Duration::from_millis(30),
        "send_timeout(0) on a full ring took {m:?} (median) on a busy CPU: {times:?}"
    );
}
