//! `Receiver::zero_copy`: messages decoded in place, borrowing the ring's
//! bytes. No allocation (a counting global allocator, per thread), and the
//! bytes a value borrows stay in the ring until the view moves on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use serde::{Deserialize, Serialize};
use shmpsc::{Builder, TryRecvError, TrySendError};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; counting touches only a
// const-initialised thread-local `Cell` (no allocation, no lazy init).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|n| n.get())
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Log {
    level: u8,
    timestamp: u64,
    target: String,
    msg: String,
    pid: u32,
}

#[derive(Deserialize, Debug, PartialEq)]
struct LogRef<'a> {
    level: u8,
    timestamp: u64,
    target: &'a str,
    msg: &'a str,
    pid: u32,
}

fn unique(label: &str) -> String {
    format!("zc-{label}-{}", std::process::id())
}

fn log(i: u64) -> Log {
    Log {
        level: (i % 5) as u8,
        timestamp: 1_700_000_000_000 + i,
        target: format!("worker::{}", i % 7),
        msg: format!("request {i} served"),
        pid: 4242,
    }
}

#[test]
fn receiving_in_place_allocates_nothing() {
    let n = 2_000u64;
    let (tx, mut rx) = Builder::new(&unique("alloc"))
        .capacity(1 << 20)
        .create::<Log>()
        .unwrap();
    for i in 0..n {
        tx.send(log(i)).unwrap();
    }
    let mut view = rx.zero_copy();
    let before = allocations();
    let mut bytes = 0usize;
    for i in 0..n {
        let r: LogRef<'_> = view.recv().unwrap();
        assert_eq!(r.timestamp, 1_700_000_000_000 + i);
        assert_eq!(r.pid, 4242);
        bytes += r.target.len() + r.msg.len();
    }
    let during = allocations() - before;
    drop(view);
    assert!(bytes > 0);
    assert_eq!(
        during, 0,
        "{n} messages decoded in place allocated {during} times"
    );

    // Control: the owned path allocates two strings a message, so the
    // counter sees what it counts.
    for i in 0..100 {
        tx.send(log(i)).unwrap();
    }
    let before = allocations();
    for i in 0..100 {
        assert_eq!(rx.recv().unwrap(), log(i));
    }
    assert!(allocations() - before >= 200);
}

#[test]
fn a_borrowed_message_stays_in_the_ring_until_the_view_moves_on() {
    let (tx, mut rx) = Builder::new(&unique("held"))
        .capacity(4096)
        .create::<String>()
        .unwrap();
    let first = "A".repeat(1000);
    tx.send(first.clone()).unwrap();
    let mut view = rx.zero_copy();
    let held: &str = view.recv().unwrap();
    // The senders fill the rest of the ring; they cannot reach the bytes
    // `held` borrows (nothing is given back while the view holds them).
    let mut sent = 0;
    loop {
        match tx.try_send("B".repeat(1000)) {
            Ok(()) => sent += 1,
            Err(TrySendError::Full(_)) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(sent >= 2, "the ring held {sent} more");
    assert_eq!(held, first, "still the first message's bytes");
    // Moving on gives the room back, message by message.
    for _ in 0..sent {
        assert_eq!(view.try_recv::<&str>().map(str::len), Ok(1000));
    }
    assert_eq!(view.try_recv::<&str>(), Err(TryRecvError::Empty));
    tx.try_send("C".into()).unwrap();
    assert_eq!(view.try_recv::<&str>(), Ok("C"));
}

#[test]
fn a_type_of_another_shape_is_an_invalid_message_and_is_skipped() {
    let (tx, mut rx) = shmpsc::channel::<Log>(&unique("shape")).unwrap();
    tx.send(log(1)).unwrap();
    tx.send(log(2)).unwrap();
    let mut view = rx.zero_copy();
    // The second message's level, 2, read as a bool: not a valid encoding.
    #[derive(Deserialize, Debug)]
    struct Wrong<'a> {
        #[allow(dead_code)]
        flag: bool,
        #[allow(dead_code)]
        rest: &'a str,
    }
    let e = view.recv::<LogRef<'_>>().map(|r| r.timestamp);
    assert_eq!(e, Ok(1_700_000_000_001));
    let e = view.recv::<Wrong<'_>>().unwrap_err();
    assert!(matches!(e, shmpsc::RecvError::Invalid(_)), "{e:?}");
    drop(view);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "skipped, not kept");
}
