//! The sender half under contention, on a busy CPU, across `fork`, and
//! when passed to a child: clones of one `Sender` that wait for room, timeouts
//! that must hold when the CPU is shared, a sender copied by `fork`, and the
//! descriptor that `Sender::pass_to` hands over.

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
/// thread: with the defect, the spin and yield phases ran in full before
/// the deadline was looked at, and each `sched_yield` handed the CPU to the
/// busy thread for a time slice (88 ms median). A deadline this close leaves
/// no room for a yield: the call must make none. (Counted, not timed; the
/// times are printed for information.)
#[test]
fn recv_timeout_holds_on_busy_cpu() {
    run_child_role(|_| ());
    let name = unique_name("busy-recv");
    let (tx, rx) = shmpsc::channel::<u8>(&name).unwrap();
    let (times, yields) = on_busy_cpu(move || {
        let before = shmpsc::test_hook_yields();
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
        (times, shmpsc::test_hook_yields() - before)
    });
    println!("median {:?} of {times:?}", median(times.clone()));
    assert_eq!(yields, 0, "recv_timeout(1 ms) yielded the CPU: {times:?}");
}

/// `send_timeout(0)` on a full ring, on a busy CPU: with the defect it spun
/// and yielded 64 times first (88-92 ms); a zero timeout must make one
/// attempt and no yield.
#[test]
fn zero_send_timeout_holds_on_busy_cpu() {
    run_child_role(|_| ());
    let name = unique_name("busy-send");
    let (tx, rx) = Builder::new(&name).capacity(4096).create::<u8>().unwrap();
    fill(&tx, &[0; 64]);
    let (times, yields) = on_busy_cpu(move || {
        let before = shmpsc::test_hook_yields();
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
        (times, shmpsc::test_hook_yields() - before)
    });
    println!("median {:?} of {times:?}", median(times.clone()));
    assert_eq!(yields, 0, "send_timeout(0) yielded the CPU: {times:?}");
}

// ------------------------------------------------- defect 7: fork

/// Child role: takes the sender passed by the test, forks, and sends two
/// messages while the forked copy tries to send and drops its copy. The
/// second send stops itself (test hook `claimed:2:stop`) between claim and
/// commit; the test lets the grandchild try while it is stopped.
fn role_fork_sender() {
    let tx = Sender::<()>::open(&channel_name()).expect("open");
    let ok_line = format!("\n{EVENT_MARK}g-tried ok\n");
    let refused_line = format!("\n{EVENT_MARK}g-tried refused\n");
    let other_line = format!("\n{EVENT_MARK}g-tried other\n");
    // SAFETY: the forked child only reads and writes raw descriptors,
    // tries one send (which must refuse without writing), drops its copy
    // of the sender and leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let mut buf = [0u8; 64];
            // Wait for the test's go-ahead on stdin, shared with the
            // parent (stopped by then).
            // SAFETY: reading into a buffer on our stack.
            unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            let line = match tx.send_bytes(b"g") {
                Ok(()) => &ok_line,
                Err(SendError::Rejected(_, r))
                    if r.to_string().contains("fork") && r.to_string().contains("Sender::open") =>
                {
                    &refused_line
                }
                Err(_) => &other_line,
            };
            // SAFETY: writing a buffer we own to our stdout.
            unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
            // The forked copy's drop must leave the parent's slot alone.
            drop(tx);
            // SAFETY: leaves at once, without running the parent's exit code.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            tx.send_bytes(b"p0").expect("send p0");
            tx.send_bytes(b"p1").expect("send p1");
            emit("sent");
            let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
            assert!(
                matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
                "{status:?}"
            );
        }
    }
}

/// A sender used on both sides of `fork`: the forked copy is refused (it
/// would share the slot's intent word), dropping it leaves the parent's
/// slot alone, and no message whose `send` returned `Ok` is lost. With the
/// defect, the grandchild's send overwrote the intent of the parent's
/// claim in progress, the receiver skipped that claim as dead, and the
/// parent's `p1` was lost.
#[test]
fn sender_used_across_fork_loses_nothing() {
    run_child_role(|role| match role {
        "fork_sender" => role_fork_sender(),
        other => panic!("unknown role {other:?}"),
    });
    let name = unique_name("fork");
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<()>().unwrap();
    let mut spawn = Spawn::new(
        "sender_used_across_fork_loses_nothing",
        "fork_sender",
        &name,
    );
    spawn.command().env("SHMPSC_TEST_HOOK", "claimed:2:stop");
    tx.pass_to(spawn.command()).unwrap();
    let mut p = spawn.spawn();
    drop(tx);
    let recv = |timeout| rx.recv_bytes_timeout_with(timeout, |b| b.to_vec());
    assert_eq!(recv(PROMPTLY), Ok(b"p0".to_vec()));
    p.wait_until_stopped();
    p.send_line("go");
    let g = p.expect_event("g-tried");
    // Many ticks pass while the parent is stopped mid-claim.
    let mut got = Vec::new();
    match recv(TICK * 40) {
        Ok(m) => got.push(m),
        Err(RecvTimeoutError::Timeout) => {}
        Err(e) => panic!("while the parent is stopped: {e:?}"),
    }
    p.signal(Signal::SIGCONT);
    p.expect_event("sent");
    p.wait_success();
    loop {
        match recv(PROMPTLY) {
            Ok(m) => got.push(m),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("draining: {e:?}"),
        }
    }
    let got: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(
        got.contains(&"p1".to_owned()),
        "the parent's Ok'd p1 was lost (grandchild: {g}); received after p0: {got:?}"
    );
    assert_eq!(
        g, "refused",
        "the forked copy must refuse to send, naming the fix"
    );
    assert_eq!(got, ["p1"]);
}

// ------------------------------------------------- passing to a child

/// Child role: spawns a grandchild (`cat`, which lives until the test
/// closes this child's stdin, shared with it) *before* taking the sender it
/// was passed, reports the grandchild's pid, and exits without opening.
fn role_passed_spawns_grandchild() {
    // The grandchild is meant to outlive this child: once the child exits
    // it is reparented to the test process (a child subreaper), which
    // reaps it after closing its stdin.
    #[allow(clippy::zombie_processes)]
    let gc = std::process::Command::new("cat")
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawning cat");
    emit(format!("grandchild {}", gc.id()));
}

/// A sender passed with `pass_to` to a child that spawns a grandchild
/// before opening it, then exits: the grandchild must not inherit the
/// passed descriptor (which would keep the sender alive after the child is
/// gone), so the receiver sees `Disconnected` while the grandchild lives.
#[test]
fn passed_descriptor_not_inherited_by_grandchild() {
    run_child_role(|role| match role {
        "passed_spawns_grandchild" => role_passed_spawns_grandchild(),
        other => panic!("unknown role {other:?}"),
    });
    // Orphans of this process's children become its children, so the
    // grandchild can be waited for.
    nix::sys::prctl::set_child_subreaper(true).expect("becoming a child subreaper");
    let name = unique_name("pass-gc");
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u8>().unwrap();
    let mut spawn = Spawn::new(
        "passed_descriptor_not_inherited_by_grandchild",
        "passed_spawns_grandchild",
        &name,
    );
    tx.pass_to(spawn.command()).unwrap();
    let mut c = spawn.spawn();
    drop(tx);
    let gc: u32 = c.expect_event("grandchild").parse().unwrap();
    c.wait_success();
    let r = rx.recv_timeout(PROMPTLY);
    let gc_fds: Vec<String> = std::fs::read_dir(format!("/proc/{gc}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    // Let the grandchild end (its stdin is the child's, which we hold),
    // and reap it: it was reparented to this process.
    c.close_stdin();
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(gc as i32), None)
        .expect("waiting for the grandchild");
    assert!(
        matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );
    assert_eq!(
        r,
        Err(RecvTimeoutError::Disconnected),
        "the passed sender outlived the child: the grandchild holds {gc_fds:?}"
    );
}

/// Child role: opens the passed sender twice; the environment variable
/// that passed it is left in place (no `remove_var` from library code),
/// and the second open attaches a sender of its own.
fn role_passed_open_twice() {
    let name = channel_name();
    let vars = || {
        std::env::vars()
            .filter(|(k, _)| k.starts_with("SHMPSC_SENDER_"))
            .count()
    };
    assert_eq!(vars(), 1);
    let a = Sender::<u8>::open(&name).expect("first open");
    assert_eq!(vars(), 1, "Sender::open changed the environment");
    let b = Sender::<u8>::open(&name).expect("second open");
    a.send(1).unwrap();
    b.send(2).unwrap();
    let info = shmpsc::inspect(&name).unwrap();
    let me = std::process::id();
    assert_eq!(
        info.senders
            .iter()
            .filter(|s| s.pid == me && s.alive)
            .count(),
        2,
        "two opens must give two senders: {:?}",
        info.senders
    );
}

#[test]
fn passed_sender_taken_once_environment_untouched() {
    run_child_role(|role| match role {
        "passed_open_twice" => role_passed_open_twice(),
        other => panic!("unknown role {other:?}"),
    });
    let name = unique_name("pass-twice");
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u8>().unwrap();
    let mut spawn = Spawn::new(
        "passed_sender_taken_once_environment_untouched",
        "passed_open_twice",
        &name,
    );
    tx.pass_to(spawn.command()).unwrap();
    let mut c = spawn.spawn();
    drop(tx);
    c.wait_success();
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(PROMPTLY) {
            Ok(m) => got.push(m),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    got.sort();
    assert_eq!(got, [1, 2]);
}
