//! The async API (feature `async`) with real processes: per-sender order
//! under tokio (multi-thread and current-thread) and `futures::executor`,
//! disconnection, a sender killed with SIGKILL, a receiver killed while
//! `send_async` waits, cancellation in `select!` with no loss, and the sync
//! API after async waits. Every wait is bounded by the hang guard.

mod common;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use common::msg::{Msg, Tracker};
use common::{
    channel_name, emit, param, run_child_role, unique_name, wait_for_stdin_eof, Spawn, HANG_GUARD,
};
use futures_core::Stream;
use shmpsc::{Builder, RecvError, SendError, Sender, TrySendError};

fn run_role(role: &str) {
    match role {
        "sender" => role_sender(),
        "send_then_idle" => role_send_then_idle(),
        "idle_receiver" => role_idle_receiver(),
        "send_two_then_idle" => role_send_two_then_idle(),
        "async_receiver" => role_async_receiver(),
        other => panic!("unknown role {other:?}"),
    }
}

/// Opens a sender (the one passed by the parent) and sends `count`
/// messages with the blocking API.
fn role_sender() {
    let id: u32 = param("id");
    let count: u64 = param("count");
    let tx = Sender::<Msg>::open(&channel_name()).expect("open");
    for seq in 0..count {
        tx.send(Msg::new(id, seq)).expect("send");
    }
}

/// Sends `count` messages, reports `sent`, stays alive until killed.
fn role_send_then_idle() {
    let count: u64 = param("count");
    let tx = Sender::<Msg>::open(&channel_name()).expect("open");
    for seq in 0..count {
        tx.send(Msg::new(0, seq)).expect("send");
    }
    emit("sent");
    wait_for_stdin_eof();
    drop(tx);
}

/// Sends messages 0 and 1 (a test hook may stop it at its first claim),
/// then stays alive until its stdin closes.
fn role_send_two_then_idle() {
    let tx = Sender::<Msg>::open(&channel_name()).expect("open");
    for seq in 0..2 {
        tx.send(Msg::new(0, seq)).expect("send");
    }
    wait_for_stdin_eof();
    drop(tx);
}

/// Creates a 4 KiB channel, reports `ready`, never receives, stays alive
/// until killed.
fn role_idle_receiver() {
    let rx = Builder::new(&channel_name())
        .capacity(4096)
        .receiver::<Msg>()
        .expect("create");
    emit("ready");
    wait_for_stdin_eof();
    drop(rx);
}

/// Creates the channel, reports `ready`, and on a line from the parent
/// (which has opened a sender) receives once with `recv_async` on a
/// current-thread runtime, reporting what it got.
fn role_async_receiver() {
    let mut rx = Builder::new(&channel_name())
        .receiver::<Msg>()
        .expect("create");
    emit("ready");
    assert_eq!(common::read_line(), "go");
    let got = current_thread().block_on(rx.recv_async());
    emit(format!("got {got:?}"));
}

/// `count` messages from each of `senders` child processes, received with
/// `recv` (an async closure over the receiver) until `Disconnected`.
fn senders(
    test: &str,
    name: &str,
    tx: &Sender<Msg>,
    senders: u32,
    count: u64,
) -> Vec<common::Child> {
    (0..senders)
        .map(|id| {
            let mut spawn = Spawn::new(test, "sender", name)
                .param("id", id)
                .param("count", count);
            tx.pass_to(spawn.command()).unwrap();
            spawn.spawn()
        })
        .collect()
}

/// Receives with `recv_async` until `Disconnected`, checking per-sender
/// order, exactly once.
async fn drain_async(rx: &mut shmpsc::Receiver<Msg>, tracker: &mut Tracker) {
    loop {
        match rx.recv_async().await {
            Ok(m) => tracker.accept(&m),
            Err(RecvError::Disconnected) => return,
            Err(e) => panic!("recv_async: {e}"),
        }
    }
}

const SENDERS: u32 = 3;
const COUNT: u64 = 20_000;

#[test]
fn recv_async_per_sender_order_tokio_multi_thread() {
    run_child_role(run_role);
    let name = unique_name("async-mt");
    let (tx, mut rx) = shmpsc::channel::<Msg>(&name).unwrap();
    let mut children = senders(
        "recv_async_per_sender_order_tokio_multi_thread",
        &name,
        &tx,
        SENDERS,
        COUNT,
    );
    drop(tx);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Spawned: the future is `Send` and runs on a worker thread.
    let tracker = rt.block_on(async move {
        tokio::spawn(async move {
            let mut tracker = Tracker::new(SENDERS as usize);
            tokio::time::timeout(HANG_GUARD, drain_async(&mut rx, &mut tracker))
                .await
                .expect("hang guard");
            tracker
        })
        .await
        .unwrap()
    });
    assert_eq!(tracker.next, vec![COUNT; SENDERS as usize]);
    for c in &mut children {
        c.wait_success();
    }
}

#[test]
fn stream_per_sender_order_tokio_current_thread() {
    run_child_role(run_role);
    let name = unique_name("async-ct");
    let (tx, rx) = shmpsc::channel::<Msg>(&name).unwrap();
    let mut children = senders(
        "stream_per_sender_order_tokio_current_thread",
        &name,
        &tx,
        SENDERS,
        COUNT,
    );
    drop(tx);
    let rt = current_thread();
    let mut stream = rx.into_stream();
    let mut tracker = Tracker::new(SENDERS as usize);
    rt.block_on(async {
        tokio::time::timeout(HANG_GUARD, async {
            while let Some(m) = next(&mut stream).await {
                tracker.accept(&m);
            }
        })
        .await
        .expect("hang guard");
    });
    assert_eq!(tracker.next, vec![COUNT; SENDERS as usize]);
    assert_eq!(stream.skipped(), 0);
    for c in &mut children {
        c.wait_success();
    }
}

#[test]
fn recv_async_and_send_async_futures_executor() {
    run_child_role(run_role);
    let name = unique_name("async-fx");
    // A small ring: the receiver waits for senders and, below, an async
    // sender waits for room.
    let rx = Builder::new(&name)
        .capacity(4096)
        .receiver::<Msg>()
        .unwrap();
    let tx = rx.sender().unwrap();
    let mut children = senders(
        "recv_async_and_send_async_futures_executor",
        &name,
        &tx,
        SENDERS,
        COUNT,
    );
    let mut rx = rx;
    let mut tracker = Tracker::new(SENDERS as usize + 1);
    // This thread's own sender sends with `send_async` while the receiver
    // drains on another thread.
    let own = std::thread::spawn(move || {
        futures_executor::block_on(async {
            for seq in 0..COUNT {
                tx.send_async(Msg::new(SENDERS, seq))
                    .await
                    .expect("send_async");
            }
        })
    });
    futures_executor::block_on(drain_async(&mut rx, &mut tracker));
    own.join().unwrap();
    assert_eq!(tracker.next, vec![COUNT; SENDERS as usize + 1]);
    for c in &mut children {
        c.wait_success();
    }
}

/// The next item of a stream.
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

#[test]
fn killed_sender_ends_the_stream() {
    run_child_role(run_role);
    let name = unique_name("async-kill-tx");
    let rx = shmpsc::Builder::new(&name).receiver::<Msg>().unwrap();
    let mut child = Spawn::new("killed_sender_ends_the_stream", "send_then_idle", &name)
        .param("count", 100)
        .spawn();
    child.expect_event("sent");
    let rt = current_thread();
    let mut stream = rx.into_stream();
    let mut tracker = Tracker::new(1);
    rt.block_on(async {
        for _ in 0..100 {
            tracker.accept(&next(&mut stream).await.expect("a message"));
        }
        // The stream is pending now (the sender lives and sends nothing);
        // killing the sender's process ends it, within a tick.
        let mut pending = std::pin::pin!(next(&mut stream));
        assert!(poll_once(pending.as_mut()).is_pending());
        child.kill();
        let end = tokio::time::timeout(HANG_GUARD, pending).await;
        assert_eq!(end.expect("hang guard"), None);
    });
    assert_eq!(tracker.next, [100]);
}

#[test]
fn killed_receiver_fails_a_pending_send_async() {
    run_child_role(run_role);
    let name = unique_name("async-kill-rx");
    let mut child = Spawn::new(
        "killed_receiver_fails_a_pending_send_async",
        "idle_receiver",
        &name,
    )
    .spawn();
    child.expect_event("ready");
    let tx = Sender::<Msg>::open(&name).unwrap();
    let mut n = 0;
    loop {
        match tx.try_send(Msg::new(0, n)) {
            Ok(()) => n += 1,
            Err(TrySendError::Full(_)) => break,
            Err(e) => panic!("filling: {e:?}"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let m = Msg::new(0, n);
    let r = rt.block_on(async {
        let mut send = std::pin::pin!(tx.send_async(m.clone()));
        assert!(poll_once(send.as_mut()).is_pending(), "the ring is full");
        child.kill();
        tokio::time::timeout(HANG_GUARD, send)
            .await
            .expect("hang guard")
    });
    match r {
        Err(SendError::Disconnected(back)) => assert_eq!(back, m),
        other => panic!("send_async after the receiver died: {other:?}"),
    }
}

#[test]
fn dropped_receiver_fails_a_pending_send_async() {
    let name = unique_name("async-drop-rx");
    let rx = Builder::new(&name)
        .capacity(4096)
        .receiver::<u64>()
        .unwrap();
    let tx = rx.sender().unwrap();
    let mut n = 0;
    while tx.try_send(n).is_ok() {
        n += 1;
    }
    let r = futures_executor::block_on(async {
        let mut send = std::pin::pin!(tx.send_async(n));
        assert!(poll_once(send.as_mut()).is_pending(), "the ring is full");
        drop(rx);
        send.await
    });
    assert!(
        matches!(r, Err(SendError::Disconnected(v)) if v == n),
        "{r:?}"
    );
}

/// A receive in the losing branch of `select!`, cancelled thousands of
/// times, pending or not: every message arrives once, in order.
#[test]
fn select_cancellation_loses_nothing() {
    run_child_role(run_role);
    const N: u64 = 50_000;
    let name = unique_name("async-select");
    let (tx, mut rx) = shmpsc::channel::<Msg>(&name).unwrap();
    let mut children = senders("select_cancellation_loses_nothing", &name, &tx, 2, N);
    drop(tx);
    let rt = current_thread();
    let mut tracker = Tracker::new(2);
    let (mut won, mut lost) = (0u64, 0u64);
    rt.block_on(async {
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                tokio::select! {
                    biased;
                    // Ready on every other poll: the receive loses often,
                    // both before it looked and while it was pending.
                    _ = yield_once() => lost += 1,
                    r = rx.recv_async() => match r {
                        Ok(m) => {
                            tracker.accept(&m);
                            won += 1;
                        }
                        Err(RecvError::Disconnected) => break,
                        Err(e) => panic!("{e}"),
                    },
                }
            }
        })
        .await
        .expect("hang guard");
    });
    assert_eq!(tracker.next, [N, N]);
    assert_eq!(won, 2 * N);
    eprintln!("{won} receives won, {lost} lost to the other branch (cancelled)");
    for c in &mut children {
        c.wait_success();
    }
    // The announcement was withdrawn by every cancelled receive: the
    // blocking API still works on the same receiver.
    let tx = rx.sender().unwrap();
    tx.send(Msg::new(0, N)).unwrap();
    assert_eq!(rx.recv().unwrap(), Msg::new(0, N));
}

/// A current-thread tokio runtime.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Spawns a sender child stopped (SIGSTOP, by a test hook) right after its
/// first claim, before it commits.
fn stopped_at_claim(mut spawn: Spawn) -> common::Child {
    spawn.command().env("SHMPSC_TEST_HOOK", "claimed:1:stop");
    let mut child = spawn.spawn();
    child.wait_until_stopped();
    child
}

/// Pending once, then ready.
async fn yield_once() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Polls a future once with a waker that does nothing.
fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(&futures_util::task::noop_waker()))
}

// ------------------------------------------------- dead claims at the head

/// A sender killed between claim and commit while a `recv_async` waits for
/// that very record; a new sender takes the dead one's slot (one slot in
/// all) and sends. The receive gets the new message: the dead claim is
/// skipped at a tick, as a blocking receive skips it, although no slot is
/// left that looks dead.
#[test]
fn dead_claim_at_head_with_its_slot_reused() {
    run_child_role(run_role);
    const TEST: &str = "dead_claim_at_head_with_its_slot_reused";
    let name = unique_name("async-reuse");
    let mut rx = Builder::new(&name)
        .max_senders(1)
        .receiver::<Msg>()
        .unwrap();
    let mut a = stopped_at_claim(
        Spawn::new(TEST, "sender", &name)
            .param("id", 0)
            .param("count", 1),
    );
    let rt = current_thread();
    let got = rt.block_on(async {
        let mut recv = std::pin::pin!(rx.recv_async());
        assert!(poll_once(recv.as_mut()).is_pending());
        a.kill();
        let tx = Sender::<Msg>::open(&name).unwrap();
        tx.send(Msg::new(1, 0)).unwrap();
        tokio::time::timeout(HANG_GUARD, recv)
            .await
            .expect("hang guard: the dead claim was never skipped")
    });
    assert_eq!(got.unwrap(), Msg::new(1, 0));
}

/// A live sender B stopped with its claim at the head, and a sender A
/// killed with its claim behind B's. Maintenance reaps A's slot but cannot
/// skip A's claim while B's is in front. B then commits and sends one more
/// message (past A's claim) and stays alive: the second `recv_async` gets
/// it once A's claim is skipped at a tick.
#[test]
fn dead_claim_behind_a_live_claim() {
    run_child_role(run_role);
    const TEST: &str = "dead_claim_behind_a_live_claim";
    let name = unique_name("async-behind");
    let mut rx = Builder::new(&name).receiver::<Msg>().unwrap();
    let mut b = stopped_at_claim(Spawn::new(TEST, "send_two_then_idle", &name));
    let mut a = stopped_at_claim(
        Spawn::new(TEST, "sender", &name)
            .param("id", 1)
            .param("count", 1),
    );
    let rt = current_thread();
    let (first, second) = rt.block_on(async {
        tokio::time::timeout(HANG_GUARD, async {
            let first = {
                let mut recv = std::pin::pin!(rx.recv_async());
                assert!(poll_once(recv.as_mut()).is_pending());
                a.kill();
                // Until maintenance (run by the woken receive) reaped A's
                // slot, the receive stays pending.
                tokio::select! {
                    r = &mut recv => panic!("nothing was committed yet: {r:?}"),
                    () = async {
                        while shmpsc::inspect(&name).unwrap().senders.len() != 1 {
                            tokio::task::yield_now().await;
                        }
                    } => {}
                }
                b.signal(nix::sys::signal::Signal::SIGCONT);
                recv.await
            };
            (first, rx.recv_async().await)
        })
        .await
        .expect("hang guard: the dead claim behind a live one was never skipped")
    });
    b.close_stdin();
    assert_eq!(first.unwrap(), Msg::new(0, 0));
    assert_eq!(second.unwrap(), Msg::new(0, 1));
    b.wait_success();
}

// ------------------------------------------------------------------- fork

/// A pending `recv_async` copied by `fork` and dropped in the child leaves
/// the parent's wait alone: the parent's future still gets the message.
#[test]
fn fork_child_dropping_a_pending_receive_leaves_the_parent_waiting() {
    let name = unique_name("async-fork");
    let mut rx = Builder::new(&name).receiver::<u64>().unwrap();
    let tx = rx.sender().unwrap();
    let rt = current_thread();
    let r = rt.block_on(async {
        let mut recv = Box::pin(rx.recv_async());
        assert!(poll_once(recv.as_mut()).is_pending());
        // SAFETY: the child drops the future, polls nothing, and leaves
        // with `_exit` (no destructors, no atexit handlers).
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                drop(recv);
                // SAFETY: `_exit` ends the process at once.
                unsafe { nix::libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
        tx.send(7).unwrap();
        tokio::time::timeout(HANG_GUARD, recv)
            .await
            .expect("hang guard: the parent's receive was never woken")
    });
    assert_eq!(r, Ok(7));
}

// --------------------------------------------------------------- takeover

/// A receiver process killed with messages in the ring; a new receiver
/// takes the channel over and gets every one of them with `recv_async`,
/// in order, then `Disconnected` once the sender is gone: a takeover works
/// for async receivers as for blocking ones.
#[test]
fn async_receiver_after_a_takeover() {
    run_child_role(run_role);
    const N: u64 = 50;
    let name = unique_name("async-takeover");
    let mut child = Spawn::new("async_receiver_after_a_takeover", "idle_receiver", &name).spawn();
    child.expect_event("ready");
    let tx = Sender::<Msg>::open(&name).unwrap();
    for seq in 0..N {
        tx.send(Msg::new(0, seq)).unwrap();
    }
    child.kill();
    // The dead receiver's settings (a 4 KiB ring): a takeover keeps them.
    let mut rx = Builder::new(&name)
        .capacity(4096)
        .receiver::<Msg>()
        .unwrap();
    assert!(rx.was_taken_over());
    let mut tracker = Tracker::new(1);
    futures_executor::block_on(async {
        for _ in 0..N {
            tracker.accept(&rx.recv_async().await.unwrap());
        }
        // Pending until the sender goes.
        let mut end = std::pin::pin!(rx.recv_async());
        assert!(poll_once(end.as_mut()).is_pending());
        drop(tx);
        assert_eq!(end.await, Err(RecvError::Disconnected));
    });
    assert_eq!(tracker.next, [N]);
}

/// The last sender leaves between an async receive's look (it saw a live
/// sender and an empty ring) and its announcement (it sees no sender, so
/// it waits for a dead sender's claim to be skipped at a tick, though
/// there is none). The receive ends with `Disconnected` at the next tick:
/// it does not wait for ever for a claim nobody made.
#[test]
fn last_sender_leaving_before_the_announcement() {
    run_child_role(run_role);
    let name = unique_name("async-leave");
    let mut spawn = Spawn::new(
        "last_sender_leaving_before_the_announcement",
        "async_receiver",
        &name,
    );
    spawn
        .command()
        .env("SHMPSC_TEST_HOOK", "async-announce:1:stop");
    let mut child = spawn.spawn();
    child.expect_event("ready");
    let tx = Sender::<Msg>::open(&name).unwrap();
    child.send_line("go");
    child.wait_until_stopped();
    drop(tx);
    child.signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(child.expect_event("got"), "Err(Disconnected)");
    child.wait_success();
}

/// A pending receive leaked (`mem::forget`) while its wait is registered,
/// in a process whose waits fill more than one helper thread: the live
/// receive's wait sits in another thread than the leaked ones, on the same
/// futex word. The commit of its record wakes every thread waiting on
/// that word, not one (which could be a leaked wait's): the receive gets
/// its record. The tick is long, so a liveness check would not rescue it
/// within the hang guard.
#[test]
fn leaked_receives_do_not_take_the_wake_up_of_a_live_one() {
    let name = unique_name("async-leaked");
    let mut rx = Builder::new(&name)
        .tick(std::time::Duration::from_secs(3600))
        .receiver::<u64>()
        .unwrap();
    let tx = rx.sender().unwrap();
    let rt = current_thread();
    let mut leak = || {
        let mut leaked = Box::pin(rx.recv_async());
        assert!(poll_once(leaked.as_mut()).is_pending());
        std::mem::forget(leaked);
    };
    // One helper thread takes 127 waits: these fill the first, which is
    // then parked on them before a second helper is started (so the first
    // waits on the word ahead of the second, and a wake-one would reach
    // it).
    for _ in 0..127 {
        leak();
    }
    wait_until_helpers_park(1);
    leak();
    wait_until_helpers_park(2);
    let got = rt.block_on(async {
        let mut recv = std::pin::pin!(rx.recv_async());
        assert!(poll_once(recv.as_mut()).is_pending());
        wait_until_helpers_park(2);
        tx.send(7).unwrap();
        tokio::time::timeout(HANG_GUARD, recv)
            .await
            .expect("hang guard: the commit woke only a leaked wait")
    });
    assert_eq!(got, Ok(7));
}

/// Waits (at most [`HANG_GUARD`]) until `n` of this process's async helper
/// threads (`shmpsc-async`) are blocked in `futex_waitv` (system call 449
/// on x86-64 and aarch64): each has then built its wait from every wait
/// registered with it (a doorbell rung after it looked would have made
/// the call return at once).
fn wait_until_helpers_park(n: usize) {
    const FUTEX_WAITV: &str = "449";
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let parked = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| {
                let dir = t.ok()?.path();
                let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
                let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
                let syscall = std::fs::read_to_string(dir.join("syscall")).ok()?;
                let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
                (comm.trim() == "shmpsc-async"
                    && state == 'S'
                    && syscall.split(' ').next() == Some(FUTEX_WAITV))
                .then_some(())
            })
            .count();
        if parked >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hang guard: {parked} of {n} helper threads parked"
        );
        std::thread::yield_now();
    }
}
