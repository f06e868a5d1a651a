//! `Sender::batch`: staged messages sent as one block. In-process checks of
//! the API (order, visibility at flush, drop and a full block, sizes,
//! errors), and crash tests: a sender process killed before, during and
//! after a flush leaves the receiver with every message of the blocks it
//! flushed, none of the one it did not finish, and nothing wedged.

mod common;

use std::time::Duration;

use common::{channel_name, emit, param, run_child_role, unique_name, Spawn};
use shmpsc::{Builder, RecvTimeoutError, Rejection, SendError, Sender, TryRecvError};

const TICK: Duration = Duration::from_millis(50);
/// A bound against hangs, not a timing assertion.
const GUARD: Duration = Duration::from_secs(20);

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        // Flushes `first` messages (0..first) as one batch, stages `second`
        // more and flushes them: the test's hook may kill it inside that
        // second flush. With `stop_after` 1 it stops after the first flush
        // and waits to be killed with the second batch staged; with 2,
        // after the second flush.
        "batches" => {
            let tx = Sender::<u64>::open(&name).expect("open");
            emit("opened");
            let first: u64 = param("first");
            let second: u64 = param("second");
            let stop_after: u64 = param("stop_after");
            let mut batch = tx.batch();
            for i in 0..first {
                batch.send(i).unwrap();
            }
            batch.flush().unwrap();
            for i in first..first + second {
                batch.send(i).unwrap();
            }
            if stop_after == 1 {
                emit("staged");
                common::wait_for_stdin_eof();
            }
            batch.flush().unwrap();
            emit("flushed");
            common::wait_for_stdin_eof();
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Receives until the live sender's `marker`; returns what came before it.
fn drain_until(rx: &shmpsc::Receiver<u64>, marker: u64) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(GUARD) {
            Ok(v) if v == marker => return got,
            Ok(v) => got.push(v),
            Err(e) => panic!("after {got:?}: {e:?} (the receiver is wedged)"),
        }
    }
}

/// Runs the `batches` role with `hook` (or none) and kills it where the
/// hook or `stop_after` says; returns what the receiver got before a live
/// sender's message sent after the death.
fn crash_case(test: &str, hook: Option<&str>, stop_after: u64, second: u64) -> Vec<u64> {
    let name = unique_name("batch-crash");
    let (tx, rx) = Builder::new(&name)
        .capacity(64 * 1024)
        .tick(TICK)
        .create::<u64>()
        .unwrap();
    let mut spawn = Spawn::new(test, "batches", &name)
        .param("first", 10)
        .param("second", second)
        .param("stop_after", stop_after);
    if let Some(h) = hook {
        spawn.command().env("SHMPSC_TEST_HOOK", h);
    }
    let mut c = spawn.spawn();
    c.expect_event("opened");
    match hook {
        // Killed by its hook inside the second flush.
        Some(_) => {
            let status = c.wait();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(libc::SIGKILL),
                "the hook kills the sender inside the second flush"
            );
        }
        None => {
            c.expect_event(if stop_after == 1 { "staged" } else { "flushed" });
            c.kill();
        }
    }
    tx.send(u64::MAX).unwrap();
    drain_until(&rx, u64::MAX)
}

#[test]
fn killed_before_the_flush_loses_only_the_staged_batch() {
    run_child_role(run_role);
    let got = crash_case(
        "killed_before_the_flush_loses_only_the_staged_batch",
        None,
        1,
        20,
    );
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn killed_inside_the_flush_loses_that_block_whole() {
    run_child_role(run_role);
    // The second flush's claim (hook hit 2): before its first header, after
    // it, after the copy of the rest of the block.
    for hook in ["claimed:2:kill", "header:2:kill", "payload:2:kill"] {
        let got = crash_case(
            "killed_inside_the_flush_loses_that_block_whole",
            Some(hook),
            2,
            20,
        );
        assert_eq!(got, (0..10).collect::<Vec<_>>(), "killed at {hook}");
    }
}

#[test]
fn killed_after_the_flush_loses_nothing() {
    run_child_role(run_role);
    let got = crash_case("killed_after_the_flush_loses_nothing", None, 2, 20);
    assert_eq!(got, (0..30).collect::<Vec<_>>());
}

#[test]
fn killed_while_a_batch_fills_the_ring_loses_only_the_unfinished_block() {
    run_child_role(run_role);
    // 4 KiB ring, 1 KiB blocks: the second batch (3,000 messages) fills the
    // ring many times over; the receiver drains while the sender is killed
    // in the middle (its 40th claim), then gets every message of the
    // blocks committed before, in order.
    let test = "killed_while_a_batch_fills_the_ring_loses_only_the_unfinished_block";
    let name = unique_name("batch-fill");
    let rx = Builder::new(&name)
        .capacity(4096)
        .tick(TICK)
        .receiver::<u64>()
        .unwrap();
    let mut spawn = Spawn::new(test, "batches", &name)
        .param("first", 10)
        .param("second", 3000)
        .param("stop_after", 2);
    spawn.command().env("SHMPSC_TEST_HOOK", "payload:40:kill");
    let mut c = spawn.spawn();
    // Until a sender is attached, a receive finds the channel disconnected.
    c.expect_event("opened");
    let mut got = Vec::new();
    // Drain until the sender is gone and nothing is left.
    loop {
        match rx.recv_timeout(GUARD) {
            Ok(v) => got.push(v),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("after {} messages: {e:?}", got.len()),
        }
        assert!(got.len() <= 3010, "more than was sent");
    }
    let status = c.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "killed by its hook at the 40th claim"
    );
    assert!(got.len() > 10 && got.len() < 3010, "{} received", got.len());
    assert_eq!(
        got,
        (0..got.len() as u64).collect::<Vec<_>>(),
        "in order, no gap"
    );
}

#[test]
fn nothing_is_visible_before_the_flush_and_all_of_it_after() {
    let name = unique_name("batch-visible");
    let (tx, rx) = shmpsc::channel::<u32>(&name).unwrap();
    let mut batch = tx.batch();
    for i in 0..50 {
        batch.send(i).unwrap();
    }
    assert_eq!(batch.len(), 50);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    batch.flush().unwrap();
    assert!(batch.is_empty());
    assert_eq!(
        rx.try_iter().collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    // An empty flush is nothing.
    batch.flush().unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    // Dropping flushes.
    batch.send(7).unwrap();
    drop(batch);
    assert_eq!(rx.try_recv(), Ok(7));
    assert_eq!(shmpsc::inspect(&name).unwrap().sent_messages, 51);
}

#[test]
fn a_full_block_is_sent_without_a_flush() {
    // 4 KiB ring: blocks of 1 KiB, 16-byte records for u64s.
    let name = unique_name("batch-full-block");
    let (tx, rx) = Builder::new(&name).capacity(4096).create::<u64>().unwrap();
    let mut batch = tx.batch();
    let mut sent = 0u64;
    while rx.is_empty() {
        batch.send(sent).unwrap();
        sent += 1;
        assert!(sent <= 65, "a 1 KiB block holds 64 records of 16 bytes");
    }
    assert_eq!(
        sent, 65,
        "the 65th message found the block full and flushed it"
    );
    assert_eq!(rx.try_iter().count(), 64);
    drop(batch);
    assert_eq!(rx.try_recv(), Ok(64));
}

#[test]
fn batches_and_single_sends_of_two_senders_keep_each_senders_order() {
    let name = unique_name("batch-two");
    let (tx, rx) = Builder::new(&name)
        .capacity(8192)
        .create::<(u8, u32)>()
        .unwrap();
    let other = tx.clone();
    let n = 5_000u32;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut batch = tx.batch();
            for i in 0..n {
                batch.send((0, i)).unwrap();
                if i % 37 == 0 {
                    batch.flush().unwrap();
                }
            }
        });
        s.spawn(|| {
            for i in 0..n {
                other.send((1, i)).unwrap();
            }
        });
        let mut next = [0u32; 2];
        for _ in 0..2 * n {
            let (who, i) = rx.recv_timeout(GUARD).unwrap();
            assert_eq!(i, next[who as usize], "sender {who} in order");
            next[who as usize] += 1;
        }
    });
}

#[test]
fn sizes_too_large_for_a_block_or_the_channel() {
    let name = unique_name("batch-sizes");
    let (tx, rx) = Builder::new(&name)
        .capacity(4096)
        .max_message_size(2000)
        .create::<()>()
        .unwrap();
    let mut batch = tx.batch();
    batch.send_bytes(b"small").unwrap();
    // Larger than a block (1 KiB), within the channel's maximum: sent on
    // its own, after what was staged.
    let big = vec![9u8; 1500];
    batch.send_bytes(&big).unwrap();
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.to_vec()),
        Ok(b"small".to_vec())
    );
    assert_eq!(rx.try_recv_bytes_with(|b| b.len()), Ok(1500));
    // Larger than the channel's maximum: refused, nothing staged, the
    // batch still usable.
    batch.send_bytes(b"kept").unwrap();
    let huge = vec![0u8; 2001];
    match batch.send_bytes(&huge) {
        Err(SendError::Rejected(b, Rejection::TooLarge { size, max })) => {
            assert_eq!((b.len(), size, max), (2001, 2001, 2000));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(batch.len(), 1);
    batch.flush().unwrap();
    assert_eq!(rx.try_recv_bytes_with(|b| b.to_vec()), Ok(b"kept".to_vec()));
}

#[test]
fn a_gone_receiver_loses_the_staged_messages_and_says_how_many() {
    let name = unique_name("batch-gone");
    let (tx, rx) = shmpsc::channel::<u8>(&name).unwrap();
    let mut batch = tx.batch();
    for i in 0..3 {
        batch.send(i).unwrap();
    }
    drop(rx);
    let err = batch.flush().unwrap_err();
    assert_eq!(err.lost(), 3);
    assert!(err.is_disconnected());
    assert!(err.to_string().contains("3 staged message(s)"), "{err}");
    assert!(batch.is_empty());
    // Staging works (nothing is sent until a flush), which then fails.
    batch.send(9).unwrap();
    assert_eq!(batch.flush().unwrap_err().lost(), 1);
}
