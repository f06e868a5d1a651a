//! Test hooks: with the `test-hooks` feature (for shmpsc's own tests only),
//! a process can be made to stop or die at an exact step of the protocol,
//! chosen by the environment variable `SHMPSC_TEST_HOOK=<point>:<nth>:<action>`
//! (`action` is `stop` for SIGSTOP or `kill` for SIGKILL). Without the
//! feature every hook compiles to nothing.
#![deny(unsafe_code)]

/// A step of the sender's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    /// After the CAS on `tail`, before the record header is written.
    Claimed,
    /// After the "in progress" header, before the payload.
    Header,
    /// After the payload, before the commit.
    Payload,
    /// About to sleep on a full ring.
    Blocked,
    /// `Segment::create`: the object was created (unnamed with `O_TMPFILE`,
    /// or by name with `O_EXCL` where that is missing), before the
    /// receiver lock is taken.
    Created,
    /// `Segment::create`, taking over: the existing object was opened,
    /// before the receiver lock is taken.
    TakeoverOpened,
    /// `remove`: the object was opened by name, before it is locked.
    RemoveOpened,
    /// `remove`: the object is locked and found unused, before its name
    /// is removed.
    RemoveChecked,
    /// About to read the header of an object this process did not create
    /// (open, inspect, remove), after the checks made before reading it.
    HeaderRead,
    /// `Sender::attach`: the receiver was seen alive, before a slot is
    /// taken.
    SenderChecked,
    /// An async receive found nothing to receive, before it announces
    /// itself as waiting.
    #[cfg(feature = "async")]
    AsyncAnnounce,
}

#[cfg(feature = "test-hooks")]
#[inline]
pub(crate) fn at(point: Point) {
    use std::sync::atomic::{AtomicU8, Ordering};
    /// 0: not read yet; 1: no hook configured; 2: a hook is configured.
    static STATE: AtomicU8 = AtomicU8::new(0);
    // Builds with the feature (this crate's tests, benches and examples)
    // pay one relaxed load per step when no hook is set.
    if STATE.load(Ordering::Relaxed) == 1 {
        return;
    }
    armed(point, &STATE);
}

#[cfg(feature = "test-hooks")]
#[cold]
fn armed(point: Point, state: &std::sync::atomic::AtomicU8) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static CONFIG: OnceLock<Option<(String, u64, String)>> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let cfg = CONFIG.get_or_init(|| {
        let v = std::env::var("SHMPSC_TEST_HOOK").ok()?;
        let mut it = v.splitn(3, ':');
        let p = it.next()?.to_owned();
        let n = it.next()?.parse().ok()?;
        let a = it.next()?.to_owned();
        Some((p, n, a))
    });
    let Some((p, n, action)) = cfg else {
        state.store(1, Ordering::Relaxed);
        return;
    };
    state.store(2, Ordering::Relaxed);
    let name = match point {
        Point::Claimed => "claimed",
        Point::Header => "header",
        Point::Payload => "payload",
        Point::Blocked => "blocked",
        Point::Created => "created",
        Point::TakeoverOpened => "takeover-opened",
        Point::RemoveOpened => "remove-opened",
        Point::RemoveChecked => "remove-checked",
        Point::HeaderRead => "header-read",
        Point::SenderChecked => "sender-checked",
        #[cfg(feature = "async")]
        Point::AsyncAnnounce => "async-announce",
    };
    if p != name || COUNT.fetch_add(1, Ordering::Relaxed) + 1 != *n {
        return;
    }
    let sig = match action.as_str() {
        "stop" => nix::sys::signal::Signal::SIGSTOP,
        _ => nix::sys::signal::Signal::SIGKILL,
    };
    let _ = nix::sys::signal::raise(sig);
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn at(_point: Point) {}

#[cfg(feature = "test-hooks")]
thread_local! {
    /// `sched_yield`s this thread made while waiting (see [`yielded`]).
    static YIELDS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one `sched_yield` of the waiting protocol on this thread, so a
/// test can check that a deadline bounds the waiting (a yield on a busy CPU
/// can hand the CPU away for a whole time slice) without timing anything.
#[cfg(feature = "test-hooks")]
#[inline]
pub(crate) fn yielded() {
    YIELDS.with(|y| y.set(y.get() + 1));
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn yielded() {}

/// With the `test-hooks` feature (shmpsc's own tests only): how many times
/// the calling thread yielded the CPU while waiting in a shmpsc call.
///
/// ```
/// let before = shmpsc::test_hook_yields();
/// let (_tx, rx) = shmpsc::channel::<u8>("doc-test-hook-yields")?;
/// let _ = rx.try_recv();
/// assert_eq!(shmpsc::test_hook_yields(), before);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[cfg(feature = "test-hooks")]
pub fn test_hook_yields() -> u64 {
    YIELDS.with(|y| y.get())
}
