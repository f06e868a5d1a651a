//! Independent review 4 (the ring restructure): reproducers. Each test
//! states the promise it checks and the interleaving it forces. Every wait
//! is bounded (a guard against hangs); the timing assertions have margins
//! of several ticks.

mod common;

use std::time::{Duration, Instant};

use common::{channel_name, emit, param, run_child_role, unique_name, Spawn};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{fork, ForkResult, Pid};
use shmpsc::{Builder, SendTimeoutError, Sender};

const TICK: Duration = Duration::from_millis(50);

/// In a forked child of a (single-test-thread) child process: blocks on
/// raw `read(0)` until the test closes our stdin, then leaves at once.
/// Only async-signal-safe calls.
fn forked_copy_idles() -> ! {
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

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        // Opens a sender, forks a child that only keeps its copy of the
        // sender (it never sends), then sends once: run with a hook that
        // kills this process inside the send.
        "fork_then_send" => {
            let tx = Sender::<u64>::open(&name).expect("open");
            // SAFETY: the forked child makes only async-signal-safe calls.
            match unsafe { fork() }.expect("fork") {
                ForkResult::Child => forked_copy_idles(),
                ForkResult::Parent { child } => emit(format!("forked {child}")),
            }
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
            // SAFETY: the forked child makes only async-signal-safe calls.
            match unsafe { fork() }.expect("fork") {
                ForkResult::Child => forked_copy_idles(),
                ForkResult::Parent { child } => emit(format!("forked {child}")),
            }
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
    // A live sender's message lands behind the dead claim.
    tx.send(2).unwrap();
    let while_fork_lives = rx.recv_timeout(TICK * 40);
    // Control: once the forked copy is gone, the claim is skipped (if it
    // was not already: then the message was received above).
    kill_pid(&grandchild);
    let after = match while_fork_lives {
        Ok(v) => Ok(v),
        Err(_) => rx.recv_timeout(TICK * 40),
    };
    assert_eq!(after, Ok(2), "control: skipped once the fork is gone");
    assert_eq!(
        while_fork_lives,
        Ok(2),
        "a dead sender's claim was not skipped within 40 ticks because a \
         forked copy of its sender (which may not send) kept the slot lock"
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
    let start = Instant::now();
    let r = tx.send_timeout(n, TICK * 40);
    let waited = start.elapsed();
    kill_pid(&grandchild);
    drop(tx);
    // The killed copy lets go of the receiver lock as it exits: remove the
    // dead channel's name once it has.
    let guard = Instant::now();
    while shmpsc::remove(&name).is_err() && guard.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        matches!(r, Err(SendTimeoutError::Disconnected(_))),
        "a sender blocked on a dead receiver's full ring got {r:?} after {waited:?} \
         (40 ticks): the receiver's forked copy kept its lock"
    );
}

/// The failure model: "sender killed (any instruction): its half-written
/// claim skipped within one tick". Several senders killed after writing
/// their "in progress" header leave adjacent dead claims; liveness
/// maintenance skips one claim per run and then sleeps a whole tick before
/// the next run (`Consumer::next`: `maintain_now` returns true, the loop
/// continues, `maintain_if_due` is not due, so the receiver sleeps), so
/// `k` dead claims cost `k - 1` ticks on top of the first skip.
#[test]
fn adjacent_dead_claims_cost_a_tick_each() {
    run_child_role(run_role);
    let test = "adjacent_dead_claims_cost_a_tick_each";
    let tick = Duration::from_millis(250);
    let dead = 6u64;
    let name = unique_name("dead-claims");
    let (tx, rx) = Builder::new(&name).tick(tick).create::<u64>().unwrap();
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
    let start = Instant::now();
    let got = rx.recv_timeout(tick * 40);
    let took = start.elapsed();
    assert_eq!(got, Ok(99));
    assert!(
        took < tick * 2 + Duration::from_millis(300),
        "{dead} dead claims (all senders already dead and reaped at the first \
         check) took {took:?} to skip, tick {tick:?}"
    );
}
