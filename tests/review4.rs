//! Independent review 4 (the ring restructure): reproducers. Each test
//! states the promise it checks and the interleaving it forces. Every wait
//! is bounded (a guard against hangs); nothing is timed.

mod common;
mod raw;

use std::time::Duration;

use common::{channel_name, emit, param, run_child_role, unique_name, Spawn};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{fork, ForkResult, Pid};
use shmpsc::{Builder, SendTimeoutError, Sender};

const TICK: Duration = Duration::from_millis(50);

/// In a forked child of a (single-test-thread) child process: says it runs
/// (a byte on `started`: the fork handlers ran before `fork` returned
/// here), then blocks on raw `read(0)` until the test closes our stdin,
/// then leaves at once. Only async-signal-safe calls.
fn forked_copy_idles(started: i32) -> ! {
    // SAFETY: writes one byte from our stack to a pipe we own.
    unsafe { libc::write(started, [1u8].as_ptr().cast(), 1) };
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
    }
    // SAFETY: leaves without running the parent's exit code.
    unsafe { libc::_exit(0) }
}

/// Forks a child that keeps this process's endpoint copies and idles
/// (`forked_copy_idles`); returns once it runs, and emits `forked <pid>`.
fn fork_idle_copy() {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is ours to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the forked child makes only async-signal-safe calls.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => forked_copy_idles(fds[1]),
        ForkResult::Parent { child } => {
            let mut b = [0u8; 1];
            // SAFETY: reads one byte into our stack buffer, then closes
            // the pipe's two ends, which we own.
            unsafe {
                assert_eq!(
                    libc::read(fds[0], b.as_mut_ptr().cast(), 1),
                    1,
                    "fork started"
                );
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
            emit(format!("forked {child}"));
        }
    }
}

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        // Opens a sender, forks a child that only keeps its copy of the
        // sender (it never sends), then sends once: run with a hook that
        // kills this process inside the send.
        "fork_then_send" => {
            let tx = Sender::<u64>::open(&name).expect("open");
            fork_idle_copy();
            let _ = tx.send(1);
            emit("survived");
        }
        // Opens a sender and sends once: run with a hook that kills it
        // inside the send.
        "send_once" => {
            let tx = Sender::<u64>::open(&name).expect("open");
            let v: u64 = param("value");
            let _ = tx.send(v);
            emit("survived");
        }
        // Creates the receiver, forks a child that only keeps its copy of
        // the receiver, and waits to be killed.
        "fork_receiver" => {
            let rx = Builder::new(&name)
                .capacity(4096)
                .tick(TICK)
                .receiver::<u64>()
                .expect("create");
            fork_idle_copy();
            emit("ready");
            common::wait_for_stdin_eof();
            drop(rx);
        }
        other => panic!("unknown role {other:?}"),
    }
}

fn kill_pid(pid: &str) {
    let pid: i32 = pid.trim().parse().expect("pid");
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Guarantee 3 ("no process, killed at any instruction, can wedge the
/// channel: a claim that a dead sender left half-written is skipped") and
/// the failure model ("sender killed: its half-written claim skipped within
/// one tick"), with a sender whose process had forked.
///
/// A process opens a sender and forks a child that never touches it (any
/// worker that forks a helper does this); the sender's copy in the child
/// refuses to send. The process is then killed between its claim and its
/// header. The child's inherited descriptor shares the open file
/// description that holds the slot's liveness lock, so the kernel never
/// releases it: the receiver judges the dead claim live and never skips it,
/// and every later message (here one from another, live sender) is stuck
/// behind it for as long as the forked child lives.
#[test]
fn killed_sender_whose_fork_lives_wedges_the_receiver() {
    run_child_role(run_role);
    let test = "killed_sender_whose_fork_lives_wedges_the_receiver";
    let name = unique_name("fork-claim");
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u64>().unwrap();
    let mut spawn = Spawn::new(test, "fork_then_send", &name);
    spawn.command().env("SHMPSC_TEST_HOOK", "claimed:1:kill");
    let mut c = spawn.spawn();
    let grandchild = c.expect_event("forked");
    let status = c.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the hook kills the sender between claim and header"
    );
    // A live sender's message lands behind the dead claim. The first
    // `try_recv` runs liveness maintenance (none ran yet), which skips a
    // dead claim at once.
    tx.send(2).unwrap();
    let while_fork_lives = rx.try_recv();
    kill_pid(&grandchild);
    assert_eq!(
        while_fork_lives,
        Ok(2),
        "a dead sender's claim was judged live because a forked copy of its \
         sender (which may not send) kept the slot lock"
    );
}

/// Guarantee 3 for senders ("a sender never waits forever on a dead
/// receiver"; failure model: "receiver killed: blocked senders get
/// Disconnected within one tick"), with a receiver whose process had
/// forked. The forked copy of the receiver receives nothing (by design),
/// but its inherited descriptor keeps the receiver lock, so a sender
/// blocked on the full ring keeps waiting, and no receiver can take over.
#[test]
fn killed_receiver_whose_fork_lives_blocks_senders() {
    run_child_role(run_role);
    let test = "killed_receiver_whose_fork_lives_blocks_senders";
    let name = unique_name("fork-rx");
    let mut c = Spawn::new(test, "fork_receiver", &name).spawn();
    let grandchild = c.expect_event("forked");
    c.expect_event("ready");
    let tx = Builder::new(&name)
        .tick(TICK)
        .open_sender::<u64>()
        .expect("open");
    let mut n = 0u64;
    while tx.try_send(n).is_ok() {
        n += 1;
        assert!(n < 10_000, "the ring never filled");
    }
    c.kill();
    // Blocked on the full ring: the sender asks the kernel every tick (40
    // ticks is a bound against a hang, not a timing claim).
    let r = tx.send_timeout(n, TICK * 40);
    let state = shmpsc::inspect(&name).map(|i| i.receiver);
    // The dead receiver's settings (a 4 KiB ring): a takeover keeps them.
    let taken = Builder::new(&name)
        .capacity(4096)
        .tick(TICK)
        .receiver::<u64>();
    kill_pid(&grandchild);
    assert!(
        matches!(r, Err(SendTimeoutError::Disconnected(_))),
        "a sender blocked on a dead receiver's full ring got {r:?}: the \
         receiver's forked copy kept its lock"
    );
    assert_eq!(state.ok(), Some(shmpsc::ReceiverState::Dead));
    let rx = taken.expect("a new receiver takes the dead one's channel over");
    assert!(rx.was_taken_over());
}

/// The failure model: "sender killed (any instruction): its half-written
/// claim skipped within one tick". Several senders killed after writing
/// their "in progress" header leave adjacent dead claims; liveness
/// maintenance skipped one claim per run, and the next run waited a tick
/// (`maintain_if_due`), so `k` dead claims cost `k - 1` ticks on top of the
/// first skip. One run must skip them all: the first `try_recv` (whose
/// maintenance is due, none ran yet) gets the live message behind them.
#[test]
fn adjacent_dead_claims_are_skipped_in_one_run() {
    run_child_role(run_role);
    let test = "adjacent_dead_claims_are_skipped_in_one_run";
    let dead = 6u64;
    let name = unique_name("dead-claims");
    let (tx, rx) = Builder::new(&name).create::<u64>().unwrap();
    for i in 0..dead {
        let mut spawn = Spawn::new(test, "send_once", &name).param("value", i);
        spawn.command().env("SHMPSC_TEST_HOOK", "header:1:kill");
        let mut c = spawn.spawn();
        let status = c.wait();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }
    tx.send(99).unwrap();
    assert_eq!(
        rx.try_recv(),
        Ok(99),
        "{dead} adjacent dead claims (their senders all dead) skipped in one maintenance run"
    );
    let info = shmpsc::inspect(&name).unwrap();
    assert!(info.recovered_bytes >= dead * 16, "{info:?}");
}

/// Review 4 (reasoning, then this test): a stray word at an idle head is
/// reported once and then reads as "nothing yet". A sender that then
/// claims that position and dies before writing its header leaves the
/// stray word as the dead claim's header: the dead-claim judgement must
/// treat the word it already reported as no header (the claim is skipped
/// as zeros up to the next header), not report the same bytes again.
#[test]
fn a_stray_word_under_a_dead_claim_is_reported_once() {
    run_child_role(run_role);
    let test = "a_stray_word_under_a_dead_claim_is_reported_once";
    let name = unique_name("stray-dead");
    let (tx, rx) = Builder::new(&name)
        .capacity(4096)
        .tick(TICK)
        .create::<u64>()
        .unwrap();
    tx.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(1));
    let raw = raw::Raw::open(&name);
    let head = 16; // one record of a one-byte payload
    raw.set_record(head, 0xDEAD_BEEF_0BAD_F00D);
    assert!(matches!(
        rx.try_recv(),
        Err(shmpsc::TryRecvError::Invalid(_))
    ));
    assert_eq!(rx.try_recv(), Err(shmpsc::TryRecvError::Empty));
    // A sender claims that position and is killed before its header.
    let mut spawn = Spawn::new(test, "send_once", &name).param("value", 7);
    spawn.command().env("SHMPSC_TEST_HOOK", "claimed:1:kill");
    let mut c = spawn.spawn();
    let status = c.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    tx.send(2).unwrap();
    let info = shmpsc::inspect(&name).unwrap();
    // The next receive (bounded against a hang) skips the dead claim,
    // reporting nothing twice.
    assert_eq!(rx.recv_timeout(TICK * 40), Ok(2));
    let after = shmpsc::inspect(&name).unwrap();
    assert_eq!(
        after.invalid_messages, info.invalid_messages,
        "the stray word was reported again"
    );
}
