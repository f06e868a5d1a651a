//! The sleep/wake protocol over futex words in the segment: announce, then
//! re-check, then sleep; wake only when someone announced. No wake-up is lost
//! and nobody makes a syscall when nobody sleeps.
#![deny(unsafe_code)]

use std::time::{Duration, Instant};

use crate::layout::FEATURE_ASYMMETRIC_WAKE;
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use crate::sys::{self, futex_wait, futex_wake};

/// What a futex wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, interrupted, or the word no longer held the expected value.
    Woken,
    /// The timeout elapsed.
    TimedOut,
}

/// How long an operation may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deadline {
    /// Not at all: one look (`try_send`, `try_recv`).
    Now,
    /// Until this instant (monotonic clock).
    At(Instant),
    /// For ever (or until the peer is gone).
    Never,
}

impl Deadline {
    /// `d` from now; a duration too long for the clock means never.
    pub(crate) fn after(d: Duration) -> Deadline {
        Instant::now()
            .checked_add(d)
            .map_or(Deadline::Never, Deadline::At)
    }

    /// The instant, if there is one.
    pub(crate) fn instant(self) -> Option<Instant> {
        match self {
            Deadline::At(i) => Some(i),
            _ => None,
        }
    }
}

/// Spins before the first sleep: enough to cover a sender that is between
/// claim and commit, short enough not to matter when idle.
#[cfg(not(loom))]
pub(crate) const SPIN_ROUNDS: u32 = 200;
#[cfg(loom)]
pub(crate) const SPIN_ROUNDS: u32 = 1;

/// Something that can be announced as sleeping and undone.
pub(crate) trait Announce {
    fn announce(&self);
    fn withdraw(&self);
}

/// The receiver's announcement: the position it waits for (plus one).
pub(crate) struct At<'a> {
    pub(crate) word: &'a AtomicU64,
    pub(crate) value: u64,
}

impl Announce for At<'_> {
    fn announce(&self) {
        self.word.swap(self.value, Ordering::SeqCst);
    }
    fn withdraw(&self) {
        self.word.store(0, Ordering::SeqCst);
    }
}

/// A sender's announcement: its bit in the sleepers bitmap.
pub(crate) struct Bit<'a> {
    pub(crate) word: &'a AtomicU64,
    pub(crate) mask: u64,
}

impl Announce for Bit<'_> {
    fn announce(&self) {
        self.word.fetch_or(self.mask, Ordering::SeqCst);
    }
    fn withdraw(&self) {
        self.word.fetch_and(!self.mask, Ordering::SeqCst);
    }
}

/// Sleeps on `seq` until woken, until `timeout`, or at once if `ready()`
/// says the awaited condition already holds after the announcement.
///
/// Announce-then-recheck: the announcement (SeqCst RMW) and the fence come
/// before the re-check, and the waker stores its condition before its own
/// fence and reads the announcement after it, so at least one of the two
/// sees the other.
///
/// `barrier` runs after the announcement: the heavy side of an asymmetric
/// barrier (see `layout::FEATURE_ASYMMETRIC_WAKE`), or nothing.
pub(crate) fn sleep(
    seq: &AtomicU32,
    who: &impl Announce,
    timeout: Duration,
    barrier: impl FnOnce(),
    ready: impl FnOnce() -> bool,
) -> Wake {
    let r = match announce(seq, who, barrier, ready) {
        None => Wake::Woken,
        Some(seen) if futex_wait(seq, seen, timeout) => Wake::Woken,
        Some(_) => Wake::TimedOut,
    };
    who.withdraw();
    r
}

/// The first half of [`sleep`], for a waiter that does not block a thread
/// (an async receive or send): announces `who`, then re-checks `ready()`.
/// Returns the value of `seq` to wait on while it holds (the caller waits,
/// then withdraws the announcement), or `None` if the condition holds
/// already (the announcement stays: withdraw it).
pub(crate) fn announce(
    seq: &AtomicU32,
    who: &impl Announce,
    barrier: impl FnOnce(),
    ready: impl FnOnce() -> bool,
) -> Option<u32> {
    let seen = seq.load(Ordering::Acquire);
    who.announce();
    // SYNC POINT: sleeper. Pairs with the fence in `wake_if_waiting` (or,
    // through `barrier`, with the compiler fence in
    // `AsymmetricWake::wake_if_waiting`).
    fence(Ordering::SeqCst);
    barrier();
    if ready() {
        None
    } else {
        Some(seen)
    }
}

/// Wakes sleepers on `seq` if `any_waiting()` says someone announced. Call
/// after making the awaited condition true.
#[inline]
pub(crate) fn wake_if_waiting(seq: &AtomicU32, any_waiting: impl FnOnce() -> bool, all: bool) {
    // SYNC POINT: waker. Pairs with the fence in `sleep`.
    fence(Ordering::SeqCst);
    if any_waiting() {
        wake(seq, all);
    }
}

/// The asymmetric wake-up of the receiver (see
/// `layout::FEATURE_ASYMMETRIC_WAKE`): a sender's commit must be ordered
/// before its look at the receiver's announcement (a store-load barrier).
/// Where the kernel offers global expedited membarriers, the receiver runs
/// one before its re-check ([`AsymmetricWake::heavy_barrier`]), and senders
/// registered for them need only a compiler fence
/// ([`AsymmetricWake::wake_if_waiting`]); elsewhere senders use a full
/// fence. Everything about the scheme is here: the feature bit a receiver
/// offers, the senders' registration, both sides of the barrier and the
/// fallback.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AsymmetricWake {
    /// This process is registered for global expedited membarriers.
    registered: bool,
}

impl AsymmetricWake {
    /// The `FEATURE_*` bits that a receiver starting on this kernel sets in
    /// a segment it creates or takes over.
    pub(crate) fn offered_features() -> u32 {
        if sys::membarrier_supported() {
            FEATURE_ASYMMETRIC_WAKE
        } else {
            0
        }
    }

    /// A sender's side: registers this process (once per process) so that
    /// the receiver's membarrier reaches it.
    pub(crate) fn register() -> AsymmetricWake {
        AsymmetricWake {
            registered: sys::membarrier_register(),
        }
    }

    /// The waker's side: wakes sleepers on `seq` if `any_waiting()` says
    /// someone announced, after the barrier that `features` (the segment's
    /// `FEATURE_*` word) allows.
    ///
    /// With the feature on and this process registered, a compiler fence
    /// keeps the order of this thread's own instructions, and the sleeper's
    /// membarrier supplies the hardware barrier on this CPU at that moment
    /// (or this thread is switched out, which is a barrier too). Either our
    /// load runs after that barrier and sees the announcement, or our stores
    /// were visible before the sleeper's re-check. Otherwise: a full fence,
    /// as [`wake_if_waiting`].
    #[inline]
    pub(crate) fn wake_if_waiting(
        self,
        features: &AtomicU32,
        seq: &AtomicU32,
        any_waiting: impl FnOnce() -> bool,
        all: bool,
    ) {
        if self.registered && features.load(Ordering::Relaxed) & FEATURE_ASYMMETRIC_WAKE != 0 {
            // SYNC POINT: waker. Pairs with the membarrier in the sleeper's
            // `heavy_barrier`.
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            if any_waiting() {
                wake(seq, all);
            }
        } else {
            wake_if_waiting(seq, any_waiting, all);
        }
    }

    /// The sleeper's side, run after its announcement and before its
    /// re-check (the `barrier` of [`sleep`]). If the kernel refuses the
    /// membarrier now, the segment falls back to full fences.
    pub(crate) fn heavy_barrier(features: &AtomicU32) {
        if features.load(Ordering::Relaxed) & FEATURE_ASYMMETRIC_WAKE != 0
            && !sys::membarrier_global()
        {
            features.fetch_and(!FEATURE_ASYMMETRIC_WAKE, Ordering::SeqCst);
        }
    }
}

/// Bumps `seq` and wakes its sleepers unconditionally.
pub(crate) fn wake(seq: &AtomicU32, all: bool) {
    seq.fetch_add(1, Ordering::Release);
    futex_wake(seq, if all { i32::MAX } else { 1 });
}

/// Rounds of `sched_yield` after spinning, before sleeping. On a machine
/// with fewer cores than busy processes, the peer we wait for is often
/// runnable but not running (a sender preempted between claim and commit):
/// yielding hands it the core, where a futex sleep would cost two syscalls
/// and a wake-up per message.
#[cfg(not(loom))]
pub(crate) const YIELD_ROUNDS: u32 = 64;
#[cfg(loom)]
pub(crate) const YIELD_ROUNDS: u32 = 0;

/// Time the yield phase may take in all. When another thread is runnable on
/// this CPU, one `sched_yield` can give it a whole time slice (about a
/// millisecond or more): 64 of them took 88 ms on a busy CPU. The phase is
/// cut short after this much time, and at the deadline.
pub(crate) const YIELD_BUDGET: Duration = Duration::from_millis(1);

/// The spin phase looks at the clock once per this many rounds (a vDSO
/// call, no syscall).
const SPINS_PER_CLOCK: u32 = 32;

fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Waits for `cond` without sleeping: bounded spinning with `spin_loop`,
/// then bounded yielding (at most [`YIELD_ROUNDS`] rounds and
/// [`YIELD_BUDGET`] of time). Returns whether `cond` became true.
///
/// Never runs past `deadline` by more than one spin burst or one
/// `sched_yield`: the clock is read during both phases. A deadline that has
/// passed already (a zero timeout) gets one look at `cond`, no spinning and
/// no yielding.
pub(crate) fn spin_until(deadline: Option<Instant>, mut cond: impl FnMut() -> bool) -> bool {
    if passed(deadline) {
        return cond();
    }
    for i in 0..SPIN_ROUNDS {
        if cond() {
            return true;
        }
        if i % SPINS_PER_CLOCK == SPINS_PER_CLOCK - 1 && passed(deadline) {
            return false;
        }
        std::hint::spin_loop();
    }
    // One yield may hand the CPU away for a time slice, and a futex sleep
    // ends at its timeout more reliably than a yield comes back: no yield
    // starts within the budget of the deadline.
    let now = Instant::now();
    let budget_end = now + YIELD_BUDGET;
    let end = deadline.map_or(budget_end, |d| {
        budget_end.min(d.checked_sub(YIELD_BUDGET).unwrap_or(now))
    });
    for _ in 0..YIELD_ROUNDS {
        if Instant::now() >= end {
            return cond();
        }
        #[cfg(not(loom))]
        std::thread::yield_now();
        crate::hooks::yielded();
        if cond() {
            return true;
        }
    }
    false
}

/// Spins (`spin_loop`, reading nothing shared) for `d`, or until
/// `deadline`. The clock is read with the vDSO: no syscall.
pub(crate) fn pause_for(d: Duration, deadline: Option<Instant>) {
    let now = Instant::now();
    let end = deadline.map_or(now + d, |dl| dl.min(now + d));
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// How long the next sleep may last: the tick, cut to the deadline.
pub(crate) fn next_sleep(tick: Duration, deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(tick),
        Some(d) => d
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .map(|left| left.min(tick)),
    }
}
