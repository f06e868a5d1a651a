//! The stand-in for `sys.rs` when the crate is built with `--cfg loom`: the
//! seam between the protocol and the kernel. Loom models threads, not
//! processes, so every endpoint is alive (every lock is held, no process
//! is gone), membarriers are unavailable, and the futex is modelled with
//! loom's mutex and condition variable: the value check and the enqueue
//! are atomic with respect to wakers, as in the kernel. Timeouts are not
//! modelled: a lost wake-up shows as a deadlock, which loom reports.
#![deny(unsafe_code)]

use std::io;
use std::time::Duration;

use crate::sync::{AtomicU32, Ordering};
use loom::sync::{Condvar, Mutex};

loom::lazy_static! {
    static ref QUEUE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
}

/// As `sys::futex_wait`; never times out (returns `true`, "woken").
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, _timeout: Duration) -> bool {
    let guard = QUEUE.0.lock().unwrap();
    if word.load(Ordering::SeqCst) == expected {
        drop(QUEUE.1.wait(guard).unwrap());
    }
    true
}

/// As `sys::futex_wake`: wakes every modelled sleeper (they re-check).
pub(crate) fn futex_wake(_word: &AtomicU32, _count: i32) {
    let _guard = QUEUE.0.lock().unwrap();
    QUEUE.1.notify_all();
}

/// A process as `sys` identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessIdentity {
    pub(crate) pid: u32,
    pub(crate) start: u64,
    pub(crate) ns: u64,
}

/// Every modelled endpoint is one process.
pub(crate) fn current_pid() -> u32 {
    1
}

/// Every modelled process lives.
pub(crate) fn process_gone(_who: ProcessIdentity) -> bool {
    false
}

/// Every endpoint lock is held by a live endpoint.
pub(crate) fn ofd_is_locked<F: ?Sized>(_fd: &F, _byte: u64) -> io::Result<bool> {
    Ok(true)
}

/// No lock can be taken: its owner lives.
pub(crate) fn ofd_try_lock<F: ?Sized>(_fd: &F, _byte: u64) -> io::Result<bool> {
    Ok(false)
}

/// Nothing to unlock.
pub(crate) fn ofd_unlock<F: ?Sized>(_fd: &F, _byte: u64) -> io::Result<()> {
    Ok(())
}

/// Loom does not model membarriers.
pub(crate) fn membarrier_supported() -> bool {
    false
}

/// Loom does not model membarriers.
pub(crate) fn membarrier_register() -> bool {
    false
}

/// Loom does not model membarriers.
pub(crate) fn membarrier_global() -> bool {
    false
}
