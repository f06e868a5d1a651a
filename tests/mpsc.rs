//! Port of the standard library's `std::sync::mpsc` test suite to shmpsc.
//!
//! Sources (Rust project, MIT or Apache-2.0):
//!   - library/std/src/sync/mpsc/tests.rs      -> `mod channel_tests`
//!   - library/std/src/sync/mpsc/sync_tests.rs -> `mod sync_channel_tests`
//!
//! Differences from std, applied throughout:
//!
//! - Every channel has a unique name: `channel()` below derives it from the
//!   process id, a global counter and the test's (thread) name.
//! - Both ends live in this one process; threads stand in for processes.
//! - Messages are serde types. Tests that send `Rc`s or count drops of
//!   in-flight values do not apply and are skipped with a comment.
//! - shmpsc has no `sync_channel(n)`: the ring is bounded by bytes. Bounded
//!   tests use `small_channel()` (the minimum capacity, 4096 bytes) and
//!   `fill()` to reach "full"; rendezvous (capacity 0) semantics do not exist.
//! - `RecvError` is an enum (`Disconnected | Invalid`), send errors carry
//!   `Disconnected(msg)` / `Full(msg)` / `Timeout(msg)` variants.
//! - Every spawned thread is joined; no sleeps are used to order threads and
//!   no elapsed-time bounds are asserted.

#![allow(clippy::redundant_clone, clippy::bool_assert_comparison)]

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use shmpsc::{
    Builder, Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Sender,
    TryRecvError, TrySendError,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A channel name no other test (in this or a concurrent test process) uses.
fn unique_name() -> String {
    let label: String = thread::current()
        .name()
        .unwrap_or("thread")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "mpsc-test-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        label
    )
}

/// std's `channel()`: default (1 MiB) capacity.
fn channel<T: Serialize + DeserializeOwned>() -> (Sender<T>, Receiver<T>) {
    shmpsc::channel(&unique_name()).expect("create channel")
}

/// A channel whose ring has the smallest capacity shmpsc allows (4096
/// bytes): shmpsc's closest analogue of std's `sync_channel(small)`.
fn small_channel<T: Serialize + DeserializeOwned>() -> (Sender<T>, Receiver<T>) {
    Builder::new(&unique_name())
        .capacity(4096)
        .create()
        .expect("create small channel")
}

/// A channel that admits `n` attached senders (default is 64).
fn channel_with_senders<T: Serialize + DeserializeOwned>(
    capacity: u64,
    n: u32,
) -> (Sender<T>, Receiver<T>) {
    Builder::new(&unique_name())
        .capacity(capacity)
        .max_senders(n)
        .create()
        .expect("create channel")
}

/// `try_send`s copies of `msg` until the ring is full; returns how many fit.
fn fill<T: Serialize + Clone + PartialEq + Debug>(tx: &Sender<T>, msg: T) -> usize {
    for n in 0..1_000_000 {
        match tx.try_send(msg.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(back)) => {
                assert_eq!(back, msg, "Full must hand the message back");
                assert!(n > 0, "an empty ring must take at least one message");
                return n;
            }
            Err(e) => panic!("unexpected error while filling the ring: {e:?}"),
        }
    }
    panic!("the ring never became full");
}

fn join<T>(t: JoinHandle<T>) -> T {
    t.join().expect("thread panicked")
}

fn join_all<T>(ts: Vec<JoinHandle<T>>) {
    for t in ts {
        join(t);
    }
}

pub fn stress_factor() -> usize {
    match std::env::var("RUST_TEST_STRESS") {
        Ok(val) => val.parse().unwrap(),
        Err(..) => 1,
    }
}

/// Receives with `recv_timeout` until disconnected; returns the messages.
fn drain_with_timeout<T: DeserializeOwned>(rx: &Receiver<T>, timeout: Duration) -> Vec<T> {
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(timeout) {
            Ok(v) => got.push(v),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return got,
            Err(e @ RecvTimeoutError::Invalid(_)) => panic!("invalid message: {e}"),
        }
    }
}

// Source: library/std/src/sync/mpsc/tests.rs
mod channel_tests {
    use super::*;

    #[test]
    fn smoke() {
        let (tx, rx) = channel::<i32>();
        tx.send(1).unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
    }

    #[test]
    fn drop_full() {
        let (tx, _rx) = channel::<Box<isize>>();
        tx.send(Box::new(1)).unwrap();
    }

    #[test]
    fn drop_full_shared() {
        let (tx, _rx) = channel::<Box<isize>>();
        drop(tx.clone());
        drop(tx.clone());
        tx.send(Box::new(1)).unwrap();
    }

    #[test]
    fn smoke_shared() {
        let (tx, rx) = channel::<i32>();
        tx.send(1).unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
        let tx = tx.clone();
        tx.send(1).unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
    }

    #[test]
    fn smoke_threads() {
        let (tx, rx) = channel::<i32>();
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), 1);
        join(t);
    }

    #[test]
    fn smoke_port_gone() {
        let (tx, rx) = channel::<i32>();
        drop(rx);
        assert!(tx.send(1).is_err());
    }

    #[test]
    fn smoke_shared_port_gone() {
        let (tx, rx) = channel::<i32>();
        drop(rx);
        assert!(tx.send(1).is_err())
    }

    #[test]
    fn smoke_shared_port_gone2() {
        let (tx, rx) = channel::<i32>();
        drop(rx);
        let tx2 = tx.clone();
        drop(tx);
        assert!(tx2.send(1).is_err());
    }

    #[test]
    fn port_gone_concurrent() {
        let (tx, rx) = channel::<i32>();
        let t = thread::spawn(move || {
            rx.recv().unwrap();
        });
        while tx.send(1).is_ok() {}
        join(t);
    }

    #[test]
    fn port_gone_concurrent_shared() {
        let (tx, rx) = channel::<i32>();
        let tx2 = tx.clone();
        let t = thread::spawn(move || {
            rx.recv().unwrap();
        });
        while tx.send(1).is_ok() && tx2.send(1).is_ok() {}
        join(t);
    }

    #[test]
    fn smoke_chan_gone() {
        let (tx, rx) = channel::<i32>();
        drop(tx);
        assert!(rx.recv().is_err());
    }

    #[test]
    fn smoke_chan_gone_shared() {
        let (tx, rx) = channel::<()>();
        let tx2 = tx.clone();
        drop(tx);
        drop(tx2);
        assert!(rx.recv().is_err());
    }

    #[test]
    fn chan_gone_concurrent() {
        let (tx, rx) = channel::<i32>();
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(1).unwrap();
        });
        while rx.recv().is_ok() {}
        join(t);
    }

    #[test]
    fn stress() {
        let (tx, rx) = channel::<i32>();
        let t = thread::spawn(move || {
            for _ in 0..10000 {
                tx.send(1).unwrap();
            }
        });
        for _ in 0..10000 {
            assert_eq!(rx.recv().unwrap(), 1);
        }
        join(t);
    }

    #[test]
    fn stress_shared() {
        const AMT: u32 = 10000;
        const NTHREADS: u32 = 8;
        let (tx, rx) = channel::<i32>();

        let t = thread::spawn(move || {
            for _ in 0..AMT * NTHREADS {
                assert_eq!(rx.recv().unwrap(), 1);
            }
            assert!(rx.try_recv().is_err());
        });

        let mut ts = Vec::new();
        for _ in 0..NTHREADS {
            let tx = tx.clone();
            ts.push(thread::spawn(move || {
                for _ in 0..AMT {
                    tx.send(1).unwrap();
                }
            }));
        }
        drop(tx);
        join(t);
        join_all(ts);
    }

    #[test]
    fn send_from_outside_runtime() {
        let (tx1, rx1) = channel::<()>();
        let (tx2, rx2) = channel::<i32>();
        let t1 = thread::spawn(move || {
            tx1.send(()).unwrap();
            for _ in 0..40 {
                assert_eq!(rx2.recv().unwrap(), 1);
            }
        });
        rx1.recv().unwrap();
        let t2 = thread::spawn(move || {
            for _ in 0..40 {
                tx2.send(1).unwrap();
            }
        });
        join(t1);
        join(t2);
    }

    #[test]
    fn recv_from_outside_runtime() {
        let (tx, rx) = channel::<i32>();
        let t = thread::spawn(move || {
            for _ in 0..40 {
                assert_eq!(rx.recv().unwrap(), 1);
            }
        });
        for _ in 0..40 {
            tx.send(1).unwrap();
        }
        join(t);
    }

    #[test]
    fn no_runtime() {
        let (tx1, rx1) = channel::<i32>();
        let (tx2, rx2) = channel::<i32>();
        let t1 = thread::spawn(move || {
            assert_eq!(rx1.recv().unwrap(), 1);
            tx2.send(2).unwrap();
        });
        let t2 = thread::spawn(move || {
            tx1.send(1).unwrap();
            assert_eq!(rx2.recv().unwrap(), 2);
        });
        join(t1);
        join(t2);
    }

    #[test]
    fn oneshot_single_thread_close_port_first() {
        // Simple test of closing without sending
        let (_tx, rx) = channel::<i32>();
        drop(rx);
    }

    #[test]
    fn oneshot_single_thread_close_chan_first() {
        // Simple test of closing without sending
        let (tx, _rx) = channel::<i32>();
        drop(tx);
    }

    #[test]
    fn oneshot_single_thread_send_port_close() {
        // The sender gets its payload back if the receiver is closed.
        let (tx, rx) = channel::<Box<i32>>();
        drop(rx);
        assert_eq!(
            tx.send(Box::new(0)),
            Err(SendError::Disconnected(Box::new(0)))
        );
    }

    #[test]
    fn oneshot_single_thread_recv_chan_close() {
        // std: `rx.recv().unwrap()` panics in a spawned thread; here the
        // error is checked exactly.
        let res = join(thread::spawn(move || {
            let (tx, rx) = channel::<i32>();
            drop(tx);
            rx.recv()
        }));
        assert_eq!(res, Err(RecvError::Disconnected));
    }

    #[test]
    fn oneshot_single_thread_send_then_recv() {
        let (tx, rx) = channel::<Box<i32>>();
        tx.send(Box::new(10)).unwrap();
        assert!(*rx.recv().unwrap() == 10);
    }

    #[test]
    fn oneshot_single_thread_try_send_open() {
        let (tx, rx) = channel::<i32>();
        assert!(tx.send(10).is_ok());
        assert!(rx.recv().unwrap() == 10);
    }

    #[test]
    fn oneshot_single_thread_try_send_closed() {
        let (tx, rx) = channel::<i32>();
        drop(rx);
        assert!(tx.send(10).is_err());
    }

    #[test]
    fn oneshot_single_thread_try_recv_open() {
        let (tx, rx) = channel::<i32>();
        tx.send(10).unwrap();
        assert!(rx.recv() == Ok(10));
    }

    #[test]
    fn oneshot_single_thread_try_recv_closed() {
        let (tx, rx) = channel::<i32>();
        drop(tx);
        assert!(rx.recv().is_err());
    }

    #[test]
    fn oneshot_single_thread_peek_data() {
        let (tx, rx) = channel::<i32>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(10).unwrap();
        assert_eq!(rx.try_recv(), Ok(10));
    }

    #[test]
    fn oneshot_single_thread_peek_close() {
        let (tx, rx) = channel::<i32>();
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn oneshot_single_thread_peek_open() {
        let (_tx, rx) = channel::<i32>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn oneshot_multi_task_recv_then_send() {
        let (tx, rx) = channel::<Box<i32>>();
        let t = thread::spawn(move || {
            assert!(*rx.recv().unwrap() == 10);
        });

        tx.send(Box::new(10)).unwrap();
        join(t);
    }

    #[test]
    fn oneshot_multi_task_recv_then_close() {
        let (tx, rx) = channel::<Box<i32>>();
        let t = thread::spawn(move || {
            drop(tx);
        });
        // std: `rx.recv().unwrap()` panics; here the error is checked exactly.
        let res = join(thread::spawn(move || rx.recv()));
        assert_eq!(res, Err(RecvError::Disconnected));
        join(t);
    }

    #[test]
    fn oneshot_multi_thread_close_stress() {
        let mut ts = Vec::new();
        for _ in 0..stress_factor() {
            let (tx, rx) = channel::<i32>();
            ts.push(thread::spawn(move || {
                drop(rx);
            }));
            drop(tx);
        }
        join_all(ts);
    }

    #[test]
    fn oneshot_multi_thread_send_close_stress() {
        let mut ts = Vec::new();
        for _ in 0..stress_factor() {
            let (tx, rx) = channel::<i32>();
            ts.push(thread::spawn(move || {
                drop(rx);
            }));
            // std unwraps (and ignores the join result): either outcome is
            // valid depending on whether the receiver is already gone.
            join(thread::spawn(move || {
                let _ = tx.send(1);
            }));
        }
        join_all(ts);
    }

    #[test]
    fn oneshot_multi_thread_recv_close_stress() {
        let mut ts = Vec::new();
        for _ in 0..stress_factor() {
            let (tx, rx) = channel::<i32>();
            ts.push(thread::spawn(move || {
                let res = thread::spawn(move || {
                    rx.recv().unwrap();
                })
                .join();
                assert!(res.is_err());
            }));
            ts.push(thread::spawn(move || {
                join(thread::spawn(move || {
                    drop(tx);
                }));
            }));
        }
        join_all(ts);
    }

    #[test]
    fn oneshot_multi_thread_send_recv_stress() {
        let mut ts = Vec::new();
        for _ in 0..stress_factor() {
            let (tx, rx) = channel::<Box<isize>>();
            ts.push(thread::spawn(move || {
                tx.send(Box::new(10)).unwrap();
            }));
            assert!(*rx.recv().unwrap() == 10);
        }
        join_all(ts);
    }

    #[test]
    fn stream_send_recv_stress() {
        for _ in 0..stress_factor() {
            let (tx, rx) = channel();

            let ts = send(tx, 0);
            let tr = recv(rx, 0);
            join_all(ts.into_iter().chain(tr).collect());

            // Each thread joins the thread it spawned, so joining the first
            // joins the whole chain.
            fn send(tx: Sender<Box<i32>>, i: i32) -> Option<JoinHandle<()>> {
                if i == 10 {
                    return None;
                }

                Some(thread::spawn(move || {
                    tx.send(Box::new(i)).unwrap();
                    if let Some(t) = send(tx, i + 1) {
                        join(t);
                    }
                }))
            }

            fn recv(rx: Receiver<Box<i32>>, i: i32) -> Option<JoinHandle<()>> {
                if i == 10 {
                    return None;
                }

                Some(thread::spawn(move || {
                    assert!(*rx.recv().unwrap() == i);
                    if let Some(t) = recv(rx, i + 1) {
                        join(t);
                    }
                }))
            }
        }
    }

    #[test]
    fn oneshot_single_thread_recv_timeout() {
        let (tx, rx) = channel();
        tx.send(()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Ok(()));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        );
        tx.send(()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Ok(()));
    }

    #[test]
    fn stress_recv_timeout_two_threads() {
        // std makes the sender sleep twice the timeout before every other
        // message. Here, instead, before every other message the sender
        // waits until the receiver reports that a `recv_timeout` timed out.
        let (tx, rx) = channel();
        let (timed_out_tx, timed_out_rx) = channel::<()>();
        let stress = stress_factor() + 100;
        let timeout = Duration::from_millis(5);

        let t = thread::spawn(move || {
            for i in 0..stress {
                if i % 2 == 0 {
                    timed_out_rx.recv().unwrap();
                }
                tx.send(1usize).unwrap();
            }
        });

        let mut recv_count = 0;
        loop {
            match rx.recv_timeout(timeout) {
                Ok(n) => {
                    assert_eq!(n, 1usize);
                    recv_count += 1;
                }
                Err(RecvTimeoutError::Timeout) => {
                    // Fails harmlessly once the sender thread has finished.
                    let _ = timed_out_tx.send(());
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(e @ RecvTimeoutError::Invalid(_)) => panic!("{e}"),
            }
        }

        assert_eq!(recv_count, stress);
        join(t);
    }

    #[test]
    fn recv_timeout_upgrade() {
        let (tx, rx) = channel::<()>();
        let timeout = Duration::from_millis(1);
        let _tx_clone = tx.clone();

        // std also asserts that at least `timeout` elapsed: a timing
        // assertion, left out.
        assert_eq!(rx.recv_timeout(timeout), Err(RecvTimeoutError::Timeout));
    }

    #[test]
    fn stress_recv_timeout_shared() {
        // std staggers the senders with sleeps of i * 10 ms; here they run
        // freely. Each thread has its own sender from `Sender::open`,
        // attached before the original sender is dropped.
        let stress = stress_factor() + 100;
        let (tx, rx) = channel_with_senders::<usize>(1 << 20, 128);

        let mut ts = Vec::new();
        for _ in 0..stress {
            let tx = Sender::<usize>::open(rx.name()).unwrap();
            ts.push(thread::spawn(move || {
                tx.send(1usize).unwrap();
            }));
        }

        drop(tx);

        let got = drain_with_timeout(&rx, Duration::from_millis(10));
        assert!(got.iter().all(|&n| n == 1));
        assert_eq!(got.len(), stress);
        join_all(ts);
    }

    #[test]
    fn very_long_recv_timeout_wont_panic() {
        // std sleeps 1 s so that the receiver is surely blocked; the intent
        // (a timeout that overflows `Instant` does not panic) holds without.
        let (tx, rx) = channel::<()>();
        let join_handle = thread::spawn(move || rx.recv_timeout(Duration::from_secs(u64::MAX)));
        assert!(tx.send(()).is_ok());
        assert_eq!(join(join_handle), Ok(()));
    }

    #[test]
    fn recv_a_lot() {
        // Regression test that we don't run out of stack in scheduler context
        let (tx, rx) = channel();
        for _ in 0..10000 {
            tx.send(()).unwrap();
        }
        for _ in 0..10000 {
            rx.recv().unwrap();
        }
    }

    #[test]
    fn shared_recv_timeout() {
        let (tx, rx) = channel();
        let total = 5;
        let mut ts = Vec::new();
        for _ in 0..total {
            let tx = tx.clone();
            ts.push(thread::spawn(move || {
                tx.send(()).unwrap();
            }));
        }

        for _ in 0..total {
            rx.recv().unwrap();
        }

        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        );
        tx.send(()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Ok(()));
        join_all(ts);
    }

    #[test]
    fn shared_chan_stress() {
        let (tx, rx) = channel();
        let total = stress_factor() + 100;
        let mut ts = Vec::new();
        for _ in 0..total {
            let tx = tx.clone();
            ts.push(thread::spawn(move || {
                tx.send(()).unwrap();
            }));
        }

        for _ in 0..total {
            rx.recv().unwrap();
        }
        join_all(ts);
    }

    #[test]
    fn test_nested_recv_iter() {
        let (tx, rx) = channel::<i32>();
        let (total_tx, total_rx) = channel::<i32>();

        let t = thread::spawn(move || {
            let mut acc = 0;
            for x in rx.iter() {
                acc += x;
            }
            total_tx.send(acc).unwrap();
        });

        tx.send(3).unwrap();
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(tx);
        assert_eq!(total_rx.recv().unwrap(), 6);
        join(t);
    }

    #[test]
    fn test_recv_iter_break() {
        let (tx, rx) = channel::<i32>();
        let (count_tx, count_rx) = channel();

        let t = thread::spawn(move || {
            let mut count = 0;
            for x in rx.iter() {
                if count >= 3 {
                    break;
                } else {
                    count += x;
                }
            }
            count_tx.send(count).unwrap();
        });

        tx.send(2).unwrap();
        tx.send(2).unwrap();
        tx.send(2).unwrap();
        let _ = tx.send(2);
        drop(tx);
        assert_eq!(count_rx.recv().unwrap(), 4);
        join(t);
    }

    #[test]
    fn test_recv_try_iter() {
        let (request_tx, request_rx) = channel();
        let (response_tx, response_rx) = channel();

        // Request `x`s until we have `6`.
        let t = thread::spawn(move || {
            let mut count = 0;
            loop {
                for x in response_rx.try_iter() {
                    count += x;
                    if count == 6 {
                        return count;
                    }
                }
                request_tx.send(()).unwrap();
            }
        });

        for _ in request_rx.iter() {
            if response_tx.send(2).is_err() {
                break;
            }
        }

        assert_eq!(join(t), 6);
    }

    #[test]
    fn test_recv_into_iter_owned() {
        let mut iter = {
            let (tx, rx) = channel::<i32>();
            tx.send(1).unwrap();
            tx.send(2).unwrap();

            rx.into_iter()
        };
        assert_eq!(iter.next().unwrap(), 1);
        assert_eq!(iter.next().unwrap(), 2);
        assert_eq!(iter.next().is_none(), true);
    }

    #[test]
    fn test_recv_into_iter_borrowed() {
        let (tx, rx) = channel::<i32>();
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(tx);
        let mut iter = (&rx).into_iter();
        assert_eq!(iter.next().unwrap(), 1);
        assert_eq!(iter.next().unwrap(), 2);
        assert_eq!(iter.next().is_none(), true);
    }

    #[test]
    fn try_recv_states() {
        let (tx1, rx1) = channel::<i32>();
        let (tx2, rx2) = channel::<()>();
        let (tx3, rx3) = channel::<()>();
        let t = thread::spawn(move || {
            rx2.recv().unwrap();
            tx1.send(1).unwrap();
            tx3.send(()).unwrap();
            rx2.recv().unwrap();
            drop(tx1);
            tx3.send(()).unwrap();
        });

        assert_eq!(rx1.try_recv(), Err(TryRecvError::Empty));
        tx2.send(()).unwrap();
        rx3.recv().unwrap();
        assert_eq!(rx1.try_recv(), Ok(1));
        assert_eq!(rx1.try_recv(), Err(TryRecvError::Empty));
        tx2.send(()).unwrap();
        rx3.recv().unwrap();
        assert_eq!(rx1.try_recv(), Err(TryRecvError::Disconnected));
        join(t);
    }

    // This bug used to end up in a livelock inside of the Receiver destructor
    // because the internal state of the Shared packet was corrupted
    #[test]
    fn destroy_upgraded_shared_port_when_sender_still_active() {
        let (tx, rx) = channel();
        let (tx2, rx2) = channel();
        let t1 = thread::spawn(move || {
            rx.recv().unwrap(); // wait on a oneshot
            drop(rx); // destroy a shared
            tx2.send(()).unwrap();
        });
        // make sure the other thread has gone to sleep
        for _ in 0..5000 {
            thread::yield_now();
        }

        // upgrade to a shared chan and send a message
        let t = tx.clone();
        drop(tx);
        t.send(()).unwrap();

        // wait for the child thread to exit before we exit
        rx2.recv().unwrap();
        join(t1);
    }

    #[test]
    fn issue_32114() {
        let (tx, _) = channel();
        let _ = tx.send(123);
        assert_eq!(tx.send(123), Err(SendError::Disconnected(123)));
    }
}

// Source: library/std/src/sync/mpsc/sync_tests.rs
//
// `sync_channel(n)` becomes `small_channel()` (a 4096-byte ring). Tests that
// used a rendezvous channel (`sync_channel(0)`) for nothing but its
// blocking are run on the small ring, which makes senders block on a full
// ring often; tests that depend on rendezvous semantics are adapted or
// skipped, as noted on each.
mod sync_channel_tests {
    use super::*;

    #[test]
    fn smoke() {
        let (tx, rx) = small_channel::<i32>();
        tx.send(1).unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
    }

    #[test]
    fn drop_full() {
        let (tx, _rx) = small_channel::<Box<isize>>();
        tx.send(Box::new(1)).unwrap();
        // Also with the ring actually full.
        fill(&tx, Box::new(1));
    }

    #[test]
    fn smoke_shared() {
        let (tx, rx) = small_channel::<i32>();
        tx.send(1).unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
        let tx = tx.clone();
        tx.send(1).unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
    }

    #[test]
    fn recv_timeout() {
        let (tx, rx) = small_channel::<i32>();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        );
        tx.send(1).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Ok(1));
    }

    #[test]
    fn send_timeout() {
        // std: capacity 1, so the second send times out. Here: fill the ring.
        let (tx, _rx) = small_channel::<i32>();
        assert_eq!(tx.send_timeout(1, Duration::from_millis(1)), Ok(()));
        fill(&tx, 1);
        assert_eq!(
            tx.send_timeout(1, Duration::from_millis(1)),
            Err(SendTimeoutError::Timeout(1))
        );
    }

    #[test]
    fn smoke_threads() {
        let (tx, rx) = small_channel::<i32>();
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), 1);
        join(t);
    }

    #[test]
    fn smoke_port_gone() {
        let (tx, rx) = small_channel::<i32>();
        drop(rx);
        assert!(tx.send(1).is_err());
    }

    #[test]
    fn smoke_shared_port_gone2() {
        let (tx, rx) = small_channel::<i32>();
        drop(rx);
        let tx2 = tx.clone();
        drop(tx);
        assert!(tx2.send(1).is_err());
    }

    #[test]
    fn port_gone_concurrent() {
        // With a small ring the sender blocks on a full ring while the
        // receiver goes away, and must be woken with an error.
        let (tx, rx) = small_channel::<i32>();
        let t = thread::spawn(move || {
            rx.recv().unwrap();
        });
        while tx.send(1).is_ok() {}
        join(t);
    }

    #[test]
    fn port_gone_concurrent_shared() {
        let (tx, rx) = small_channel::<i32>();
        let tx2 = tx.clone();
        let t = thread::spawn(move || {
            rx.recv().unwrap();
        });
        while tx.send(1).is_ok() && tx2.send(1).is_ok() {}
        join(t);
    }

    #[test]
    fn smoke_chan_gone() {
        let (tx, rx) = small_channel::<i32>();
        drop(tx);
        assert!(rx.recv().is_err());
    }

    #[test]
    fn smoke_chan_gone_shared() {
        let (tx, rx) = small_channel::<()>();
        let tx2 = tx.clone();
        drop(tx);
        drop(tx2);
        assert!(rx.recv().is_err());
    }

    #[test]
    fn chan_gone_concurrent() {
        let (tx, rx) = small_channel::<i32>();
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(1).unwrap();
        });
        while rx.recv().is_ok() {}
        join(t);
    }

    #[test]
    fn stress() {
        let count = 10000;
        let (tx, rx) = small_channel::<i32>();
        let t = thread::spawn(move || {
            for _ in 0..count {
                tx.send(1).unwrap();
            }
        });
        for _ in 0..count {
            assert_eq!(rx.recv().unwrap(), 1);
        }
        join(t);
    }

    #[test]
    fn stress_recv_timeout_two_threads() {
        let count = 10000;
        let (tx, rx) = small_channel::<i32>();

        let t = thread::spawn(move || {
            for _ in 0..count {
                tx.send(1).unwrap();
            }
        });

        let got = drain_with_timeout(&rx, Duration::from_millis(1));
        assert!(got.iter().all(|&v| v == 1));
        assert_eq!(got.len(), count);
        join(t);
    }

    #[test]
    fn stress_recv_timeout_shared() {
        const AMT: u32 = 1000;
        const NTHREADS: u32 = 8;
        let (tx, rx) = small_channel::<i32>();
        let (dtx, drx) = small_channel::<()>();

        let t = thread::spawn(move || {
            let got = drain_with_timeout(&rx, Duration::from_millis(10));
            assert!(got.iter().all(|&v| v == 1));
            assert_eq!(got.len() as u32, AMT * NTHREADS);
            assert!(rx.try_recv().is_err());

            dtx.send(()).unwrap();
        });

        // Each thread opens its own sender by name, attached before the
        // original sender is dropped.
        let mut ts = Vec::new();
        for _ in 0..NTHREADS {
            let tx = Sender::<i32>::open(tx.name()).unwrap();
            ts.push(thread::spawn(move || {
                for _ in 0..AMT {
                    tx.send(1).unwrap();
                }
            }));
        }

        drop(tx);

        drx.recv().unwrap();
        join(t);
        join_all(ts);
    }

    #[test]
    fn stress_shared() {
        const AMT: u32 = 1000;
        const NTHREADS: u32 = 8;
        let (tx, rx) = small_channel::<i32>();
        let (dtx, drx) = small_channel::<()>();

        let t = thread::spawn(move || {
            for _ in 0..AMT * NTHREADS {
                assert_eq!(rx.recv().unwrap(), 1);
            }
            assert!(rx.try_recv().is_err());
            dtx.send(()).unwrap();
        });

        // Each thread opens its own sender inside the thread; the barrier
        // keeps the original sender alive until all of them are attached.
        let name = tx.name().to_owned();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(NTHREADS as usize + 1));
        let mut ts = Vec::new();
        for _ in 0..NTHREADS {
            let name = name.clone();
            let barrier = barrier.clone();
            ts.push(thread::spawn(move || {
                let tx = Sender::<i32>::open(&name).unwrap();
                barrier.wait();
                for _ in 0..AMT {
                    tx.send(1).unwrap();
                }
            }));
        }
        barrier.wait();
        drop(tx);
        drx.recv().unwrap();
        join(t);
        join_all(ts);
    }

    #[test]
    fn oneshot_single_thread_close_port_first() {
        // Simple test of closing without sending
        let (_tx, rx) = small_channel::<i32>();
        drop(rx);
    }

    #[test]
    fn oneshot_single_thread_close_chan_first() {
        // Simple test of closing without sending
        let (tx, _rx) = small_channel::<i32>();
        drop(tx);
    }

    #[test]
    fn oneshot_single_thread_send_port_close() {
        // The sender gets its payload back if the receiver is closed.
        let (tx, rx) = small_channel::<Box<i32>>();
        drop(rx);
        assert_eq!(
            tx.send(Box::new(0)),
            Err(SendError::Disconnected(Box::new(0)))
        );
    }

    #[test]
    fn oneshot_single_thread_recv_chan_close() {
        // Receiving on a closed chan will panic
        let res = thread::spawn(move || {
            let (tx, rx) = small_channel::<i32>();
            drop(tx);
            rx.recv().unwrap();
        })
        .join();
        // What is our res?
        assert!(res.is_err());
    }

    #[test]
    fn oneshot_single_thread_send_then_recv() {
        let (tx, rx) = small_channel::<Box<i32>>();
        tx.send(Box::new(10)).unwrap();
        assert!(*rx.recv().unwrap() == 10);
    }

    #[test]
    fn oneshot_single_thread_try_send_open() {
        let (tx, rx) = small_channel::<i32>();
        assert_eq!(tx.try_send(10), Ok(()));
        assert!(rx.recv().unwrap() == 10);
    }

    #[test]
    fn oneshot_single_thread_try_send_closed() {
        let (tx, rx) = small_channel::<i32>();
        drop(rx);
        assert_eq!(tx.try_send(10), Err(TrySendError::Disconnected(10)));
    }

    #[test]
    fn oneshot_single_thread_try_send_closed2() {
        // std: a rendezvous channel with no receiver waiting is full. Here:
        // a full ring.
        let (tx, _rx) = small_channel::<i32>();
        fill(&tx, 0);
        assert_eq!(tx.try_send(10), Err(TrySendError::Full(10)));
    }

    #[test]
    fn oneshot_single_thread_try_recv_open() {
        let (tx, rx) = small_channel::<i32>();
        tx.send(10).unwrap();
        assert!(rx.recv() == Ok(10));
    }

    #[test]
    fn oneshot_single_thread_try_recv_closed() {
        let (tx, rx) = small_channel::<i32>();
        drop(tx);
        assert!(rx.recv().is_err());
    }

    #[test]
    fn oneshot_single_thread_try_recv_closed_with_data() {
        let (tx, rx) = small_channel::<i32>();
        tx.send(10).unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(10));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn oneshot_single_thread_peek_data() {
        let (tx, rx) = small_channel::<i32>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(10).unwrap();
        assert_eq!(rx.try_recv(), Ok(10));
    }

    #[test]
    fn oneshot_single_thread_peek_close() {
        let (tx, rx) = small_channel::<i32>();
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn oneshot_single_thread_peek_open() {
        let (_tx, rx) = small_channel::<i32>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn oneshot_multi_task_recv_then_send() {
        let (tx, rx) = small_channel::<Box<i32>>();
        let t = thread::spawn(move || {
            assert!(*rx.recv().unwrap() == 10);
        });

        tx.send(Box::new(10)).unwrap();
        join(t);
    }

    #[test]
    fn oneshot_multi_task_recv_then_close() {
        let (tx, rx) = small_channel::<Box<i32>>();
        let t = thread::spawn(move || {
            drop(tx);
        });
        let res = thread::spawn(move || {
            assert!(*rx.recv().unwrap() == 10);
        })
        .join();
        assert!(res.is_err());
        join(t);
    }

    #[test]
    fn oneshot_multi_thread_close_stress() {
        let mut ts = Vec::new();
        for _ in 0..stress_factor() {
            let (tx, rx) = small_channel::<i32>();
            ts.push(thread::spawn(move || {
                drop(rx);
            }));
            drop(tx);
        }
        join_all(ts);
    }

    #[test]
    fn oneshot_multi_thread_send_close_stress() {
        let mut ts = Vec::new();
        for _ in 0..stress_factor() {
            let (tx, rx) = small_channel::<i32>();
            ts.push(thread::spawn(move || {
                drop(rx);
            }));
            // Either outcome is valid; std ignores the join result.
            join(thread::spawn(move || {
                let _ = tx.send(1);
            }));
        }
        join_all(ts);
    }

    #[test]
    fn oneshot_multi_thread_recv_close_stress() {
        let mut ts = Vec::new();
        for _ in 0..stress_factor() {
            let (tx, rx) = small_channel::<i32>();
            ts.push(thread::spawn(move || {
                // std: `rx.recv().unwrap()` panics; checked exactly here.
                let res = join(thread::spawn(move || rx.recv()));
                assert_eq!(res, Err(RecvError::Disconnected));
            }));
            ts.push(thread::spawn(move || {
                join(thread::spawn(move || {
                    drop(tx);
                }));
            }));
        }
        join_all(ts);
    }

    #[test]
    fn oneshot_multi_thread_send_recv_stress() {
        let mut ts = Vec::new();
        for _ in 0..stress_factor() {
            let (tx, rx) = small_channel::<Box<i32>>();
            ts.push(thread::spawn(move || {
                tx.send(Box::new(10)).unwrap();
            }));
            assert!(*rx.recv().unwrap() == 10);
        }
        join_all(ts);
    }

    #[test]
    fn stream_send_recv_stress() {
        for _ in 0..stress_factor() {
            let (tx, rx) = small_channel::<Box<i32>>();

            let ts = send(tx, 0);
            let tr = recv(rx, 0);
            join_all(ts.into_iter().chain(tr).collect());

            fn send(tx: Sender<Box<i32>>, i: i32) -> Option<JoinHandle<()>> {
                if i == 10 {
                    return None;
                }

                Some(thread::spawn(move || {
                    tx.send(Box::new(i)).unwrap();
                    if let Some(t) = send(tx, i + 1) {
                        join(t);
                    }
                }))
            }

            fn recv(rx: Receiver<Box<i32>>, i: i32) -> Option<JoinHandle<()>> {
                if i == 10 {
                    return None;
                }

                Some(thread::spawn(move || {
                    assert!(*rx.recv().unwrap() == i);
                    if let Some(t) = recv(rx, i + 1) {
                        join(t);
                    }
                }))
            }
        }
    }

    #[test]
    fn recv_a_lot() {
        // std: `sync_channel(count)`, i.e. room for every message. A ring of
        // 1 MiB holds 10000 empty messages.
        let count = 10000;
        let (tx, rx) = channel();
        for _ in 0..count {
            tx.send(()).unwrap();
        }
        for _ in 0..count {
            rx.recv().unwrap();
        }
    }

    #[test]
    fn shared_chan_stress() {
        // 101 senders: one `Sender::open` each, on a small ring.
        let total = stress_factor() + 100;
        let (tx, rx) = channel_with_senders::<()>(4096, 128);
        let mut ts = Vec::new();
        for _ in 0..total {
            let tx = Sender::<()>::open(tx.name()).unwrap();
            ts.push(thread::spawn(move || {
                tx.send(()).unwrap();
            }));
        }

        for _ in 0..total {
            rx.recv().unwrap();
        }
        join_all(ts);
    }

    #[test]
    fn test_nested_recv_iter() {
        let (tx, rx) = small_channel::<i32>();
        let (total_tx, total_rx) = small_channel::<i32>();

        let t = thread::spawn(move || {
            let mut acc = 0;
            for x in rx.iter() {
                acc += x;
            }
            total_tx.send(acc).unwrap();
        });

        tx.send(3).unwrap();
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(tx);
        assert_eq!(total_rx.recv().unwrap(), 6);
        join(t);
    }

    #[test]
    fn test_recv_iter_break() {
        let (tx, rx) = small_channel::<i32>();
        let (count_tx, count_rx) = small_channel();

        let t = thread::spawn(move || {
            let mut count = 0;
            for x in rx.iter() {
                if count >= 3 {
                    break;
                } else {
                    count += x;
                }
            }
            count_tx.send(count).unwrap();
        });

        tx.send(2).unwrap();
        tx.send(2).unwrap();
        tx.send(2).unwrap();
        let _ = tx.try_send(2);
        drop(tx);
        assert_eq!(count_rx.recv().unwrap(), 4);
        join(t);
    }

    #[test]
    fn try_recv_states() {
        let (tx1, rx1) = small_channel::<i32>();
        let (tx2, rx2) = small_channel::<()>();
        let (tx3, rx3) = small_channel::<()>();
        let t = thread::spawn(move || {
            rx2.recv().unwrap();
            tx1.send(1).unwrap();
            tx3.send(()).unwrap();
            rx2.recv().unwrap();
            drop(tx1);
            tx3.send(()).unwrap();
        });

        assert_eq!(rx1.try_recv(), Err(TryRecvError::Empty));
        tx2.send(()).unwrap();
        rx3.recv().unwrap();
        assert_eq!(rx1.try_recv(), Ok(1));
        assert_eq!(rx1.try_recv(), Err(TryRecvError::Empty));
        tx2.send(()).unwrap();
        rx3.recv().unwrap();
        assert_eq!(rx1.try_recv(), Err(TryRecvError::Disconnected));
        join(t);
    }

    // This bug used to end up in a livelock inside of the Receiver destructor
    // because the internal state of the Shared packet was corrupted
    #[test]
    fn destroy_upgraded_shared_port_when_sender_still_active() {
        let (tx, rx) = small_channel::<()>();
        let (tx2, rx2) = small_channel::<()>();
        let t1 = thread::spawn(move || {
            rx.recv().unwrap(); // wait on a oneshot
            drop(rx); // destroy a shared
            tx2.send(()).unwrap();
        });
        // make sure the other thread has gone to sleep
        for _ in 0..5000 {
            thread::yield_now();
        }

        // upgrade to a shared chan and send a message
        let t = tx.clone();
        drop(tx);
        t.send(()).unwrap();

        // wait for the child thread to exit before we exit
        rx2.recv().unwrap();
        join(t1);
    }

    #[test]
    fn send1() {
        let (tx, rx) = small_channel::<i32>();
        let t = thread::spawn(move || {
            rx.recv().unwrap();
        });
        assert_eq!(tx.send(1), Ok(()));
        join(t);
    }

    #[test]
    fn send2() {
        // std: a rendezvous send blocks until the receiver is dropped. Here:
        // the ring is full, so `send` blocks until the receiver is dropped.
        let (tx, rx) = small_channel::<i32>();
        fill(&tx, 0);
        let t = thread::spawn(move || {
            drop(rx);
        });
        assert!(tx.send(1).is_err());
        join(t);
    }

    #[test]
    fn send3() {
        // std: capacity 1, one send fills it, the next blocks until the
        // receiver is dropped. Here with a full ring and `send_timeout`
        // (a long timeout: the receiver's drop must end the wait).
        let (tx, rx) = small_channel::<i32>();
        assert_eq!(tx.send(1), Ok(()));
        fill(&tx, 1);
        let t = thread::spawn(move || {
            drop(rx);
        });
        assert_eq!(
            tx.send_timeout(1, Duration::from_secs(3600)),
            Err(SendTimeoutError::Disconnected(1))
        );
        join(t);
    }

    #[test]
    fn send4() {
        // Two senders blocked on a full ring (a clone and a sender opened by
        // name) both fail once the receiver is dropped.
        let (tx, rx) = small_channel::<i32>();
        fill(&tx, 0);
        let tx2 = Sender::<i32>::open(rx.name()).unwrap();
        let tx3 = tx.clone();
        let (done, donerx) = channel();
        let done2 = done.clone();
        let done3 = done.clone();
        let ts = vec![
            thread::spawn(move || {
                assert!(tx.send(1).is_err());
                done.send(()).unwrap();
            }),
            thread::spawn(move || {
                assert!(tx2.send(2).is_err());
                done2.send(()).unwrap();
            }),
            thread::spawn(move || {
                assert!(tx3.send(3).is_err());
                done3.send(()).unwrap();
            }),
        ];
        drop(rx);
        donerx.recv().unwrap();
        donerx.recv().unwrap();
        donerx.recv().unwrap();
        join_all(ts);
    }

    // try_send1 skipped: it is "try_send on an empty rendezvous channel is
    // Full"; shmpsc has no capacity 0 (a full ring is try_send2).

    #[test]
    fn try_send2() {
        let (tx, _rx) = small_channel::<i32>();
        assert_eq!(tx.try_send(1), Ok(()));
        fill(&tx, 1);
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    }

    #[test]
    fn try_send3() {
        let (tx, rx) = small_channel::<i32>();
        assert_eq!(tx.try_send(1), Ok(()));
        drop(rx);
        assert_eq!(tx.try_send(1), Err(TrySendError::Disconnected(1)));
    }

    #[test]
    fn issue_15761() {
        fn repro() {
            let (tx1, rx1) = small_channel::<()>();
            let (tx2, rx2) = small_channel::<()>();

            let t = thread::spawn(move || {
                rx1.recv().unwrap();
                tx2.try_send(()).unwrap();
            });

            tx1.try_send(()).unwrap();
            rx2.recv().unwrap();
            join(t);
        }

        for _ in 0..100 {
            repro()
        }
    }

    // drop_unreceived skipped: it sends an `Rc` and checks that the message
    // is dropped with the receiver; messages here are serialized bytes, so
    // there is no in-flight value to drop.
}
