//! Wake-ups for async receives and sends, from the same futex words the
//! blocking calls sleep on, with no polling: per process, helper threads
//! ("shards", at most [`PER_SHARD`] pending waits each) park in one
//! `futex_waitv` over every pending wait's word plus a doorbell word of
//! their own, and wake a task's `Waker` when its word changes.
//!
//! Liveness is the one thing no futex reports (a process killed with
//! SIGKILL wakes nobody): each pending wait carries a [`Probe`] of the
//! peers it depends on, looked up when it starts waiting, and once per
//! tick one more helper thread (the "ticker", one per process) asks the
//! kernel whether one of them is gone: a lock test per peer, reading no
//! shared memory (see `peers::SendersProbe` for why that is enough). Only
//! then is the task woken, to find out as the blocking calls do. Every
//! [`FULL_CHECK_EVERY`] ticks a wait is checked in full, reading the
//! channel, as a backstop (a sender of an older build does not wake a
//! waiting receiver when it joins). The shards themselves never wake for
//! a tick: re-arming `futex_waitv` costs the kernel a page walk per word.
//!
//! A wait never points into the endpoint's own mapping: a [`Watch`] maps
//! the channel again (`Segment::reopen`), and every pending wait holds it,
//! so a future that is leaked (never dropped) leaves the shard waiting on
//! a word that stays mapped.
#![deny(unsafe_code)]

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::layout::Header;
use crate::peers::{self, SendersProbe};
use crate::segment::Segment;
use crate::sys::{self, FutexWaitv, WaitvEnd, FUTEX_WAITV_MAX};

/// Pending waits per shard: `futex_waitv` takes 128 words, one of which
/// is the shard's doorbell.
const PER_SHARD: usize = FUTEX_WAITV_MAX - 1;

/// Without `futex_waitv` (Linux before 5.16), a shard looks at its words
/// this often instead; and a wait without a [`Watch`] is woken this often.
const FALLBACK_POLL: Duration = Duration::from_millis(1);

/// With nothing to wait for, a helper thread sleeps on its doorbell alone,
/// for this long at a time.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Every this many ticks (on a grid from the epoch), a wait's liveness
/// check reads the channel ([`Watch::peer_gone`]) instead of its [`Probe`]
/// alone.
const FULL_CHECK_EVERY: u32 = 256;

/// Which peer a wait depends on, and so what the shard checks each tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A receive waiting for the record at `at`: woken when a sender's
    /// process is gone (it may have been the last sender), or when the
    /// record at `at` is claimed but still not committed at a tick (its
    /// claimer may be dead, and its slot reaped or reused already: the
    /// receiver's maintenance decides, as a blocking receive's does at
    /// each tick).
    Senders { at: u64 },
    /// A send waiting for room: woken when the receiver is dropped or gone.
    Receiver,
}

/// A second mapping of an endpoint's channel, which the shards wait on and
/// check liveness through (see the module docs).
#[derive(Debug)]
pub(crate) struct Watch {
    seg: Segment,
}

impl Watch {
    pub(crate) fn new(seg: Segment) -> Arc<Watch> {
        Arc::new(Watch { seg })
    }

    /// Whether the peer that a wait of kind `peer` depends on may be gone,
    /// from the channel itself: the full check (see [`FULL_CHECK_EVERY`]).
    fn peer_gone(&self, peer: Peer) -> bool {
        match peer {
            Peer::Senders { at } => {
                // Relaxed: only decides whether the receiver looks again.
                self.seg.header().tail.load(Ordering::Relaxed) > at
                    || !peers::any_active(&self.seg)
                    || peers::active_slots(&self.seg).any(|i| !peers::sender_alive(&self.seg, i))
            }
            Peer::Receiver => peers::receiver_state(&self.seg) != peers::ReceiverState::Alive,
        }
    }

    /// What the ticker checks for a wait of kind `peer`, looked up now
    /// (after the waiter announced itself).
    fn probe(&self, peer: Peer) -> Probe {
        match peer {
            Peer::Senders { at } => Probe::Senders(SendersProbe::take(&self.seg, at)),
            Peer::Receiver => Probe::Receiver,
        }
    }

    /// The tick's check: whether the peer may be gone, by lock tests.
    fn probe_gone(&self, probe: &Probe) -> bool {
        match probe {
            Probe::Senders(p) => p.may_be_gone(&self.seg),
            // A dropped receiver wakes the senders' word itself
            // (`Consumer::close`); a dead one leaves its lock free.
            Probe::Receiver => !Segment::receiver_locked(self.seg.file()),
        }
    }
}

/// The peers a wait depends on, as the ticker checks them each tick.
#[derive(Debug)]
enum Probe {
    Senders(SendersProbe),
    Receiver,
}

/// The futex word of the header that a wait sleeps on.
pub(crate) type WordOf = fn(&Header) -> &AtomicU32;

/// One pending wait.
struct Entry {
    id: u64,
    /// Set to [`GONE`] before the waker is woken by a liveness check.
    outcome: Arc<AtomicU32>,
    /// `None` when the channel could not be mapped again: the task is then
    /// woken every [`FALLBACK_POLL`] to look (polling, the one case that
    /// does).
    watch: Option<Arc<Watch>>,
    word: WordOf,
    seen: u32,
    peer: Peer,
    /// `None` without a watch.
    probe: Option<Probe>,
    tick: Duration,
    next_check: Instant,
    /// When the next liveness check is a full one: on a grid of
    /// [`FULL_CHECK_EVERY`] ticks from the epoch, so that a wait made
    /// again and again (a busy receive) does not put it off.
    next_full: Instant,
    waker: Waker,
}

impl Entry {
    fn word(&self) -> Option<&AtomicU32> {
        self.watch.as_ref().map(|w| (self.word)(w.seg.header()))
    }

    /// The tick's liveness check at `now`: whether the peer may be gone
    /// (always, without a watch: the task then looks every
    /// [`FALLBACK_POLL`]).
    fn peer_gone(&mut self, epoch: Instant, now: Instant) -> bool {
        let full = now >= self.next_full;
        if full {
            self.next_full = next_check(epoch, now, full_period(self.tick));
        }
        match (&self.watch, &self.probe) {
            (Some(w), _) if full => w.peer_gone(self.peer),
            (Some(w), Some(p)) => w.probe_gone(p),
            _ => true,
        }
    }
}

/// Time between full liveness checks of a wait with this tick.
fn full_period(tick: Duration) -> Duration {
    tick.saturating_mul(FULL_CHECK_EVERY)
}

#[derive(Default)]
struct ShardState {
    entries: Vec<Entry>,
    /// The last wait's id.
    next_id: u64,
    /// Changes whenever a wait is added or removed.
    version: u64,
}

impl ShardState {
    /// Takes wait `i` out (its shard's `load` goes down with it).
    fn remove(&mut self, i: usize, load: &AtomicUsize) -> Entry {
        self.version += 1;
        load.fetch_sub(1, Ordering::Relaxed);
        self.entries.swap_remove(i)
    }
}

/// The outcome of a wait that a liveness check ended.
const GONE: u32 = 1;

/// The next liveness check of a wait with this `tick`, at most a tick from
/// `now`: on a grid of ticks from the shard's `epoch`, so that the checks
/// of every wait with the same tick (the default, mostly) happen in one
/// wake-up of the shard, not one each.
fn next_check(epoch: Instant, now: Instant, tick: Duration) -> Instant {
    let tick_ns = tick.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let n = since / tick_ns + 1;
    let at = Duration::from_nanos(u64::try_from(n * tick_ns).unwrap_or(u64::MAX));
    epoch.checked_add(at).unwrap_or(now + tick)
}

/// One helper thread and its waits.
struct Shard {
    state: Mutex<ShardState>,
    /// Bumped (and woken) when the set of waits changes.
    doorbell: AtomicU32,
    /// Waits registered and not yet woken or cancelled (to pick a shard).
    load: AtomicUsize,
}

impl Shard {
    fn ring(&self) {
        crate::wait::wake(&self.doorbell, true);
    }

    fn run(&self) {
        let mut words: Vec<FutexWaitv> = Vec::with_capacity(FUTEX_WAITV_MAX);
        let mut fallback = false;
        // The set of waits `words` was built for (see `ShardState::version`).
        let mut built = u64::MAX;
        loop {
            let bell = self.doorbell.load(Ordering::Acquire);
            {
                let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                let woken = take_changed(&mut st, &self.load);
                if st.version != built {
                    built = st.version;
                    words.clear();
                    words.push(FutexWaitv::new(&self.doorbell, bell));
                    for e in &st.entries {
                        if let Some(word) = e.word() {
                            words.push(FutexWaitv::new(word, e.seen));
                        }
                    }
                } else {
                    words[0] = FutexWaitv::new(&self.doorbell, bell);
                }
                drop(st);
                // Outside the lock: a waker may run code that cancels a wait.
                woken.into_iter().for_each(|e| e.waker.wake());
            }
            if fallback {
                // Only the doorbell can be waited on: with no waits, until
                // it rings; else until the next look.
                let left = if words.len() == 1 {
                    IDLE_WAIT
                } else {
                    FALLBACK_POLL
                };
                sys::futex_wait(&self.doorbell, bell, left);
                continue;
            }
            // No deadline: the ticker checks liveness, and rings the
            // doorbell when it ends a wait.
            if sys::futex_waitv(&words, None) == WaitvEnd::Unsupported {
                fallback = true;
            }
        }
    }

    /// The ticker's part: checks the liveness of every wait due at `now`,
    /// takes out those whose peer may be gone and returns them (to be
    /// woken and dropped outside the lock), with the next check due.
    fn check_liveness(&self, epoch: Instant, now: Instant) -> (Vec<Entry>, Option<Instant>) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut woken = Vec::new();
        let mut i = 0;
        while i < st.entries.len() {
            let e = &mut st.entries[i];
            let gone = now >= e.next_check && {
                e.next_check = next_check(epoch, now, e.tick);
                e.peer_gone(epoch, now)
            };
            if gone {
                let e = st.remove(i, &self.load);
                e.outcome.store(GONE, Ordering::Relaxed);
                woken.push(e);
            } else {
                i += 1;
            }
        }
        let next = st.entries.iter().map(|e| e.next_check).min();
        drop(st);
        if !woken.is_empty() {
            // The shard no longer waits on their words.
            self.ring();
        }
        (woken, next)
    }
}

/// Takes out every wait whose word changed.
fn take_changed(st: &mut ShardState, load: &AtomicUsize) -> Vec<Entry> {
    let mut woken = Vec::new();
    let mut i = 0;
    while i < st.entries.len() {
        // Relaxed: a changed word only sends the task to look again; what
        // it reads then is ordered by the channel's own protocol.
        let changed = st.entries[i]
            .word()
            .is_some_and(|w| w.load(Ordering::Relaxed) != st.entries[i].seen);
        if changed {
            woken.push(st.remove(i, load));
        } else {
            i += 1;
        }
    }
    woken
}

/// The liveness checks of one process's waits: one thread, which wakes at
/// the ticks (on a grid from the reactor's epoch, so that the checks of
/// every wait with the same tick, the default mostly, happen in one
/// wake-up).
struct Ticker {
    /// Rung when a wait is added whose first check comes before `planned`.
    doorbell: AtomicU32,
    /// When the ticker will wake next, in nanoseconds from the epoch;
    /// [`SCANNING`] while it looks at the waits, [`IDLE`] with none.
    planned: AtomicU64,
}

/// [`Ticker::planned`] while the ticker looks at the waits: a new wait may
/// be missed by the look, so it rings.
const SCANNING: u64 = 0;
/// [`Ticker::planned`] with no wait.
const IDLE: u64 = u64::MAX;

impl Ticker {
    fn run(&self, r: &'static Reactor) {
        loop {
            let bell = self.doorbell.load(Ordering::Acquire);
            // SYNC POINT: pairs with the SeqCst load in `Registration::new`
            // (through the shards' locks): a wait added after a shard's
            // look below finds `SCANNING` or the plan made after it.
            self.planned.store(SCANNING, Ordering::SeqCst);
            let shards: Vec<&'static Shard> = r
                .shards
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for s in shards {
                let (woken, due) = s.check_liveness(r.epoch, now);
                woken.into_iter().for_each(|e| e.waker.wake());
                next = match (next, due) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            let planned = next.map_or(IDLE, |d| since(r.epoch, d).max(SCANNING + 1));
            self.planned.store(planned, Ordering::SeqCst);
            let left = next.map_or(IDLE_WAIT, |d| d.saturating_duration_since(Instant::now()));
            if !left.is_zero() {
                sys::futex_wait(&self.doorbell, bell, left);
            }
        }
    }
}

/// Nanoseconds from `epoch` to `t` (0 before it).
fn since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX - 1)
}

/// The helper threads of one process: made again in a child of `fork`,
/// where the parent's threads are gone and its locks may be held for ever.
struct Reactor {
    generation: u64,
    /// The origin of the liveness checks' grid (see [`next_check`]).
    epoch: Instant,
    shards: Mutex<Vec<&'static Shard>>,
    /// Started with the first shard.
    ticker: std::sync::OnceLock<&'static Ticker>,
}

/// This process's reactor (leaked: one per fork generation that uses
/// async, never freed).
static REACTOR: AtomicPtr<Reactor> = AtomicPtr::new(std::ptr::null_mut());

/// The reactor of this process (this fork generation).
#[allow(unsafe_code)]
fn reactor() -> &'static Reactor {
    let generation = sys::fork_generation();
    let mut current = REACTOR.load(Ordering::Acquire);
    loop {
        // SAFETY: a non-null pointer in `REACTOR` comes from `Box::leak`
        // below and is never freed, so it is valid for 'static.
        if let Some(r) = unsafe { current.as_ref() } {
            if r.generation == generation {
                return r;
            }
        }
        let fresh: &'static mut Reactor = Box::leak(Box::new(Reactor {
            generation,
            epoch: Instant::now(),
            shards: Mutex::new(Vec::new()),
            ticker: std::sync::OnceLock::new(),
        }));
        // SYNC POINT: pairs with the Acquire load above (and in the failed
        // exchange): the reactor is initialised before it is seen.
        match REACTOR.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return fresh,
            // Another thread installed one: use it if it is this
            // generation's (the fresh one stays leaked, unused; rare).
            Err(other) => current = other,
        }
    }
}

/// The ticker of reactor `r`, started if need be.
fn ticker(r: &'static Reactor) -> &'static Ticker {
    r.ticker.get_or_init(|| {
        let t: &'static Ticker = Box::leak(Box::new(Ticker {
            doorbell: AtomicU32::new(0),
            planned: AtomicU64::new(IDLE),
        }));
        std::thread::Builder::new()
            .name("shmpsc-ticker".into())
            .spawn(move || t.run(r))
            .expect("shmpsc: cannot start the async helper thread");
        t
    })
}

/// A shard of reactor `r` with room for one more wait, started if need be.
fn shard(r: &'static Reactor) -> &'static Shard {
    let mut shards = r.shards.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = shards
        .iter()
        .find(|s| s.load.load(Ordering::Relaxed) < PER_SHARD)
    {
        s.load.fetch_add(1, Ordering::Relaxed);
        return s;
    }
    let s: &'static Shard = Box::leak(Box::new(Shard {
        state: Mutex::new(ShardState::default()),
        doorbell: AtomicU32::new(0),
        load: AtomicUsize::new(1),
    }));
    std::thread::Builder::new()
        .name("shmpsc-async".into())
        .spawn(move || s.run())
        .expect("shmpsc: cannot start the async helper thread");
    shards.push(s);
    s
}

/// A pending wait: the task's waker is woken when `word` no longer holds
/// `seen`, or when the peer may be gone (checked every `tick`). Dropping
/// it cancels the wait.
pub(crate) struct Registration {
    shard: &'static Shard,
    id: u64,
    outcome: Arc<AtomicU32>,
    /// The fork generation of the process that registered.
    generation: u64,
}

impl Registration {
    /// Waits on `word` of `watch`'s header while it holds `seen` (without
    /// a watch: for [`FALLBACK_POLL`]).
    pub(crate) fn new(
        watch: Option<&Arc<Watch>>,
        word: WordOf,
        seen: u32,
        peer: Peer,
        tick: Duration,
        waker: &Waker,
    ) -> Registration {
        let r = reactor();
        let ticker = ticker(r);
        let shard = shard(r);
        let outcome = Arc::new(AtomicU32::new(0));
        // After the waiter's announcement (the caller's): see `SendersProbe`.
        let probe = watch.map(|w| w.probe(peer));
        let tick = if watch.is_some() { tick } else { FALLBACK_POLL };
        let now = Instant::now();
        let next_full = next_check(r.epoch, now, full_period(tick));
        let next_check = next_check(r.epoch, now, tick);
        let id = {
            let mut st = shard.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.next_id += 1;
            st.version += 1;
            let id = st.next_id;
            st.entries.push(Entry {
                id,
                outcome: outcome.clone(),
                watch: watch.cloned(),
                word,
                seen,
                peer,
                probe,
                tick,
                next_check,
                next_full,
                waker: waker.clone(),
            });
            id
        };
        shard.ring();
        // SYNC POINT: pairs with the SeqCst stores of `planned` in
        // `Ticker::run`: the ticker looked at the shard before the entry
        // was in only if this sees `SCANNING` or the plan that look made.
        let planned = ticker.planned.load(Ordering::SeqCst);
        if planned == SCANNING || since(r.epoch, next_check) < planned {
            crate::wait::wake(&ticker.doorbell, true);
        }
        Registration {
            shard,
            id,
            outcome,
            generation: sys::fork_generation(),
        }
    }

    /// Whether a liveness check ended the wait: the peer may be gone.
    pub(crate) fn peer_gone(&self) -> bool {
        self.outcome.load(Ordering::Relaxed) == GONE
    }

    /// Whether the wait is still pending (not woken yet); updates the waker
    /// to wake if it is. A copy made by `fork` is never pending: the
    /// parent's shard threads are not in the child.
    pub(crate) fn pending(&self, waker: &Waker) -> bool {
        if self.forked() {
            return false;
        }
        let mut st = self
            .shard
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = match st.entries.iter_mut().find(|e| e.id == self.id) {
            Some(e) if e.waker.will_wake(waker) => None,
            Some(e) => Some(std::mem::replace(&mut e.waker, waker.clone())),
            None => return false,
        };
        drop(st);
        // Outside the lock: dropping a waker may drop a task, whose own
        // waits lock this shard.
        drop(old);
        true
    }

    /// Whether this registration was made in another process (a copy made
    /// by `fork`): it must touch neither the shard nor the channel.
    pub(crate) fn forked(&self) -> bool {
        sys::fork_generation() != self.generation
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.forked() {
            return;
        }
        let mut st = self
            .shard
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(i) = st.entries.iter().position(|e| e.id == self.id) else {
            return;
        };
        let entry = st.remove(i, &self.shard.load);
        drop(st);
        // Outside the lock (see `pending`).
        drop(entry);
        // The shard no longer waits on the word.
        self.shard.ring();
    }
}
