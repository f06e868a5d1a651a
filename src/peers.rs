//! Sender slots and liveness. Each endpoint holds an open-file-description
//! lock on one byte of the segment file: the receiver byte 0, the sender of
//! slot `i` byte `1 + i`. The kernel drops the lock when the process dies,
//! however it dies, so "dead" is what the kernel says: never a clock.
//!
//! A sender passed with `Sender::pass_to` belongs to one process, whose
//! identity the kernel also vouches for: the slot's [`Handover`] word
//! moves, by compare-and-swap, from `PASSED` (attached by the parent, not
//! spawned yet) to `SPAWNED` by the first process spawned with it (between
//! `fork` and `exec`, [`claim_spawned`]), to `ADOPTED` by the first process
//! that opens it ([`adopt`]). Such a slot is alive while its lock is held
//! *and* that process lives (pid and start time, [`sys::process_gone`]):
//! a stray process that inherited the descriptor (the background child of a
//! shell spawned with it, a second process spawned from the same
//! `Command`) keeps the lock, but not the sender. The receiver reaps such a
//! slot without its lock, under the slot's reset lock
//! ([`slot_reset_byte`]), which every new owner takes while it resets the
//! slot; the stray's lock keeps the slot from new owners until the stray
//! is gone, and they take other slots meanwhile.
#![deny(unsafe_code)]

use std::sync::atomic::Ordering;

use crate::error::{OpenError, OpenErrorKind};
use crate::layout::{
    slot_lock_byte, slot_reset_byte, Bitmap, Handover, Slot, HANDOVER_ADOPTED, HANDOVER_NONE,
    HANDOVER_PASSED, HANDOVER_RETIRED, HANDOVER_SPAWNED, NO_INTENT, RX_ALIVE,
};
use crate::segment::Segment;
use crate::sys::{self, ProcessIdentity};

fn bit(i: usize) -> (usize, u64) {
    (i / 64, 1u64 << (i % 64))
}

fn words(seg: &Segment) -> usize {
    (seg.geometry().max_senders as usize).div_ceil(64)
}

/// Whether any slot is owned (by a live sender, or a dead one not yet reaped).
#[inline]
pub(crate) fn any_active(seg: &Segment) -> bool {
    // SYNC POINT: receiver. Pairs with the Release `fetch_and` in `release`:
    // a sender's commits are visible once its bit is seen clear.
    any_set(&seg.header().active, seg.geometry().max_senders)
}

/// Whether any sender announced that it sleeps waiting for room.
#[inline]
pub(crate) fn any_sleeper(seg: &Segment) -> bool {
    any_set(&seg.header().sleepers, seg.geometry().max_senders)
}

/// Whether any of the first `slots` bits is set. Bits of slots that do not
/// exist are ignored: the bitmap is shared memory, anyone may set them.
fn any_set(map: &Bitmap, slots: u32) -> bool {
    let full = slots as usize / 64;
    let rest = slots % 64;
    map[..full].iter().any(|w| w.load(Ordering::Acquire) != 0)
        || (rest != 0 && map[full].load(Ordering::Acquire) & ((1u64 << rest) - 1) != 0)
}

/// Indices of the owned slots.
pub(crate) fn active_slots(seg: &Segment) -> impl Iterator<Item = usize> + '_ {
    let map = &seg.header().active;
    (0..words(seg))
        .flat_map(move |w| {
            let mut bits = map[w].load(Ordering::Acquire);
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + b)
            })
        })
        .filter(move |&i| i < seg.geometry().max_senders as usize)
}

/// Takes a free slot (or one whose owner died) for a new sender endpoint
/// whose open file description is `seg.file()`: for this process, or, if
/// `passed`, for a process to be spawned (`Sender::pass_to`). Returns the
/// slot and its new generation.
pub(crate) fn acquire(seg: &Segment, passed: bool) -> Result<(usize, u32), OpenError> {
    let n = seg.geometry().max_senders as usize;
    // Start at a PID-dependent slot so that processes opening at once
    // mostly try different locks.
    let start = sys::current_pid() as usize % n;
    for k in 0..n {
        let i = (start + k) % n;
        let locked = sys::ofd_try_lock(seg.file(), slot_lock_byte(i))
            .map_err(|e| OpenError::io(seg.name(), "locking a sender slot", e))?;
        if !locked {
            continue;
        }
        // A receiver may be reaping the slot without its lock (its last
        // owner's lock went with a stray process that has just exited):
        // the reset lock keeps us apart; try another slot meanwhile.
        if !sys::ofd_try_lock(seg.file(), slot_reset_byte(i)).unwrap_or(false) {
            let _ = sys::ofd_unlock(seg.file(), slot_lock_byte(i));
            continue;
        }
        // We own slot i now. A set bit means its previous owner died before
        // dropping: we inherit the bit, and clear its stale announcements.
        let slot = &seg.slots()[i];
        let h = seg.header();
        let (w, mask) = bit(i);
        h.sleepers[w].fetch_and(!mask, Ordering::SeqCst);
        slot.intent.store(NO_INTENT, Ordering::Relaxed);
        slot.spawn_start.store(0, Ordering::Relaxed);
        slot.spawn_ns.store(0, Ordering::Relaxed);
        slot.pid.store(sys::current_pid(), Ordering::Release);
        let kind = if passed {
            HANDOVER_PASSED
        } else {
            HANDOVER_NONE
        };
        let state = Handover::parse(slot.handover.load(Ordering::Acquire)).next_owner(kind);
        // SYNC POINT: pairs with the Acquire load in `claim_spawned`, `adopt`
        // and `handed_to_gone_process`: whoever sees the new generation sees
        // the cleared identity above.
        slot.handover.store(state.word(), Ordering::Release);
        h.active[w].fetch_or(mask, Ordering::AcqRel);
        let _ = sys::ofd_unlock(seg.file(), slot_reset_byte(i));
        // An async receive looks up the senders it depends on once, when it
        // starts waiting ([`SendersProbe`]): one more, or a dead one's slot
        // taken over, sends it to look again.
        wake_waiting_receiver(seg);
        return Ok((i, state.generation));
    }
    Err(OpenError::new(
        seg.name(),
        OpenErrorKind::TooManySenders { max: n as u32 },
    ))
}

/// Records `who` as the process that slot `slot` (`PASSED` by
/// `Sender::pass_to` with `generation`) was handed to, if no process was
/// spawned with it before: the first process spawned from a `Command`
/// keeps the sender; later ones are refused by [`adopt`].
///
/// Runs in a child between `fork` and `exec` (see `sys::inherit_in_child`),
/// so it must stay async-signal-safe: atomics only, no allocation, no lock,
/// no panic (hence `get`, not indexing).
pub(crate) fn claim_spawned(seg: &Segment, slot: usize, generation: u32, who: ProcessIdentity) {
    let Some(s) = seg.slots().get(slot) else {
        return;
    };
    let passed = Handover {
        kind: HANDOVER_PASSED,
        generation,
        pid: 0,
    };
    let spawned = Handover {
        kind: HANDOVER_SPAWNED,
        generation,
        pid: who.pid,
    };
    if s.handover
        .compare_exchange(
            passed.word(),
            spawned.word(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        record_identity(s, who);
    }
}

/// Hands the sender endpoint `seg` (attached for slot `slot` of generation
/// `generation` by `Sender::pass_to`) to every child `cmd` spawns: its
/// descriptor stays open across `exec` at the same number (returned), and
/// `seg` stays open and mapped here until `cmd` is dropped. Between `fork`
/// and `exec`, the first child records itself as the process the sender
/// was handed to ([`claim_spawned`]).
#[cfg(not(loom))]
#[allow(unsafe_code)]
pub(crate) fn hand_to_child(
    cmd: &mut std::process::Command,
    mut seg: Segment,
    slot: usize,
    generation: u32,
) -> i32 {
    use std::os::fd::AsRawFd;
    // The child must inherit this open file description itself (it holds
    // the passed slot's lock): not the lock-free one that children forked
    // from this process get for its other endpoints.
    seg.keep_in_forks();
    let raw = seg.file().as_raw_fd();
    // SAFETY: `seg` owns `raw` and moves into the command with it;
    // `claim_spawned` makes only atomic loads, stores and one
    // compare-and-swap on the mapping `seg` keeps (which `fork` copied): it
    // neither allocates, locks nor panics, so it is async-signal-safe.
    unsafe {
        sys::inherit_in_child(cmd, raw, seg, move |seg, who| {
            claim_spawned(seg, slot, generation, who)
        });
    }
    raw
}

/// Why a passed sender could not be adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdoptRefused {
    /// The slot number is not one of the channel's.
    NoSuchSlot,
    /// Another open file description holds the slot's lock: the descriptor
    /// is not the one the sender was passed with.
    NotTheHolder,
    /// Another process adopted it first (pid, 0 if unknown).
    Taken(u32),
}

/// Adopts slot `slot`, whose lock the open file description of `seg` must
/// hold (it is the descriptor a parent passed), for this process, `who`:
/// only the first process that opens a passed sender gets it.
pub(crate) fn adopt(seg: &Segment, slot: usize, who: ProcessIdentity) -> Result<(), AdoptRefused> {
    let s = seg.slots().get(slot).ok_or(AdoptRefused::NoSuchSlot)?;
    // Our descriptor shares the parent's open file description, which
    // holds the slot's lock; taking it again is a no-op then, and fails if
    // another open file description owns the slot (in doubt: refused).
    if !sys::ofd_try_lock(seg.file(), slot_lock_byte(slot)).unwrap_or(false) {
        return Err(AdoptRefused::NotTheHolder);
    }
    let word = s.handover.load(Ordering::Acquire);
    let seen = Handover::parse(word);
    if seen.kind != HANDOVER_PASSED && seen.kind != HANDOVER_SPAWNED {
        return Err(AdoptRefused::Taken(seen.pid));
    }
    let adopted = Handover {
        kind: HANDOVER_ADOPTED,
        generation: seen.generation,
        pid: who.pid,
    };
    match s
        .handover
        .compare_exchange(word, adopted.word(), Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => {
            record_identity(s, who);
            Ok(())
        }
        Err(now) => Err(AdoptRefused::Taken(Handover::parse(now).pid)),
    }
}

/// Publishes the identity of the process a slot's `Handover` names (which
/// the caller just wrote): the start time and namespaces first, then the
/// pid that says they are complete.
fn record_identity(s: &Slot, who: ProcessIdentity) {
    s.spawn_start.store(who.start, Ordering::Relaxed);
    s.spawn_ns.store(who.ns, Ordering::Relaxed);
    // SYNC POINT: pairs with the Acquire load of `pid` in
    // `handed_to_gone_process`: a pid equal to the handover's pid means the
    // start time and namespaces above are that process's.
    s.pid.store(who.pid, Ordering::Release);
}

/// If slot `i` was handed to a process (`Sender::pass_to`) that is surely
/// gone, the hand-over state that says so. `None` for every other slot,
/// and whenever in doubt: the lock decides then.
fn handed_to_gone_process(seg: &Segment, i: usize) -> Option<Handover> {
    let s = seg.slots().get(i)?;
    let h = Handover::parse(s.handover.load(Ordering::Acquire));
    match h.kind {
        HANDOVER_RETIRED => return Some(h),
        HANDOVER_SPAWNED | HANDOVER_ADOPTED => {}
        _ => return None,
    }
    // SYNC POINT: pairs with the Release store in `record_identity`. A pid
    // that differs (the identity is being written, or a sender of an older
    // shmpsc attached the slot without resetting the hand-over) leaves the
    // decision to the lock.
    if s.pid.load(Ordering::Acquire) != h.pid {
        return None;
    }
    let who = ProcessIdentity {
        pid: h.pid,
        start: s.spawn_start.load(Ordering::Relaxed),
        ns: s.spawn_ns.load(Ordering::Relaxed),
    };
    sys::process_gone(who).then_some(h)
}

/// Gives slot `i` back (a sender endpoint is dropped). The lock is released
/// after the bit is cleared, by the caller closing or unlocking the file.
pub(crate) fn release(seg: &Segment, i: usize) {
    let slot = &seg.slots()[i];
    let h = seg.header();
    let (w, mask) = bit(i);
    slot.intent.store(NO_INTENT, Ordering::Relaxed);
    h.sleepers[w].fetch_and(!mask, Ordering::SeqCst);
    // SYNC POINT: sender drop. Pairs with the Acquire loads in `any_active`.
    h.active[w].fetch_and(!mask, Ordering::Release);
    let _ = sys::ofd_unlock(seg.file(), slot_lock_byte(i));
}

/// Wakes the receiver if it announced that it waits (a sender joined).
fn wake_waiting_receiver(seg: &Segment) {
    let h = seg.header();
    // SYNC POINT: waker. The fence pairs with the receiver's announcement
    // fence in `wait::announce`: either this sees its announcement, or its
    // look at the senders (`SendersProbe::take`) sees the bit set above.
    // All, as `Ring::wake_receiver_at`.
    crate::wait::wake_if_waiting(
        &h.data.seq,
        || h.data.waiting_at.load(Ordering::Acquire) != 0,
        true,
    );
}

/// The senders a waiting receiver depends on, looked up once when it
/// starts waiting, so that checking whether one may be gone, every tick,
/// reads no shared memory (each check of a page that idled a tick costs a
/// cold page walk, microseconds on a VM): a lock test per sender.
///
/// What makes the snapshot enough: a sender that joins, or takes over a
/// dead sender's slot, afterwards wakes the receiver ([`acquire`]), which
/// then looks again; a slot reaped meanwhile has its lock free, which the
/// test sees; a slot handed to a spawned process (`Sender::pass_to`) is
/// checked in full, as [`sender_alive`] does, because a stray may hold its
/// lock after that process died; and a receive that starts waiting with a
/// claim pending at its position, or with no sender at all, is sent to
/// look at its first tick, as a blocking receive runs its maintenance.
#[cfg(feature = "async")]
#[derive(Debug, Default)]
pub(crate) struct SendersProbe {
    /// Slots whose owner's lock is enough.
    locked: Vec<usize>,
    /// Slots handed over to a spawned process.
    handed: Vec<usize>,
    /// Look at the first tick regardless.
    look: bool,
}

#[cfg(feature = "async")]
impl SendersProbe {
    /// The senders a receive waiting for position `at` depends on. Call
    /// after the receiver announced that it waits.
    pub(crate) fn take(seg: &Segment, at: u64) -> SendersProbe {
        let mut probe = SendersProbe::default();
        for i in active_slots(seg) {
            let kind = seg.slots().get(i).map_or(HANDOVER_NONE, |s| {
                Handover::parse(s.handover.load(Ordering::Acquire)).kind
            });
            if kind == HANDOVER_NONE {
                probe.locked.push(i);
            } else {
                probe.handed.push(i);
            }
        }
        // Relaxed: a claim seen only decides to look at the tick.
        let claimed = seg.header().tail.load(Ordering::Relaxed) > at;
        probe.look = claimed || (probe.locked.is_empty() && probe.handed.is_empty());
        probe
    }

    /// Whether a sender the receive depends on may be gone (or it must
    /// look anyway). Lock tests only, but for slots handed over.
    pub(crate) fn may_be_gone(&self, seg: &Segment) -> bool {
        self.look
            || self.locked.iter().any(|&i| !slot_held(seg, i))
            || self.handed.iter().any(|&i| !sender_alive(seg, i))
    }
}

/// Whether the owner of slot `i` is alive: some other open file description
/// holds its lock and, for a sender passed to a spawned process, that
/// process lives.
pub(crate) fn sender_alive(seg: &Segment, i: usize) -> bool {
    slot_held(seg, i) && handed_to_gone_process(seg, i).is_none()
}

/// Whether some open file description holds slot `i`'s lock. An error
/// here (it should not happen) counts as held, as for the receiver
/// (`Segment::receiver_locked`): never skip a claim on a guess.
fn slot_held(seg: &Segment, i: usize) -> bool {
    sys::ofd_is_locked(seg.file(), slot_lock_byte(i)).unwrap_or(true)
}

/// Clears the bits of owned slots whose owner died. Returns how many.
pub(crate) fn reap_dead(seg: &Segment) -> usize {
    let reaped = reap_dead_slots(seg);
    if reaped > 0 {
        seg.header()
            .control
            .sender_deaths
            .fetch_add(reaped as u32, Ordering::Relaxed);
    }
    reaped
}

/// [`reap_dead`] without the count of deaths.
fn reap_dead_slots(seg: &Segment) -> usize {
    let mut reaped = 0;
    let h = seg.header();
    let dead: Vec<usize> = active_slots(seg)
        .filter(|&i| !sender_alive(seg, i))
        .collect();
    for i in dead {
        // Take the slot's lock to make the change: a new owner may be
        // taking it right now, and only the lock holder touches the bit.
        if sys::ofd_try_lock(seg.file(), slot_lock_byte(i)).unwrap_or(false) {
            let (w, mask) = bit(i);
            if h.active[w].load(Ordering::Acquire) & mask != 0 {
                h.sleepers[w].fetch_and(!mask, Ordering::SeqCst);
                h.active[w].fetch_and(!mask, Ordering::AcqRel);
                reaped += 1;
            }
            let _ = sys::ofd_unlock(seg.file(), slot_lock_byte(i));
        } else if let Some(seen) = handed_to_gone_process(seg, i) {
            // A stray holds the lock of a sender whose process is gone.
            reaped += usize::from(retire(seg, i, seen));
        }
    }
    reaped
}

/// Reaps slot `i`, whose lock a stray holds, if its hand-over is still
/// `seen` (its process gone): marks it `RETIRED` by one compare-and-swap
/// from `seen`, then clears its bits, all under the slot's reset lock,
/// which every new owner takes while resetting the slot. Returns whether
/// it did.
///
/// The compare-and-swap is the whole decision: [`adopt`] (which does not
/// take the reset lock) moves the word away from `SPAWNED` by a
/// compare-and-swap too, so exactly one of them wins. Once the word is
/// `RETIRED`, `adopt` refuses the slot; once it is `ADOPTED` by a live
/// process, this leaves the slot alone. A reaper that dies between the two
/// steps leaves a `RETIRED` slot with its bit set, which the next reap
/// (`seen` is then `RETIRED`) clears.
fn retire(seg: &Segment, i: usize, seen: Handover) -> bool {
    if !sys::ofd_try_lock(seg.file(), slot_reset_byte(i)).unwrap_or(false) {
        return false;
    }
    let retired = retire_locked(seg, i, seen);
    let _ = sys::ofd_unlock(seg.file(), slot_reset_byte(i));
    retired
}

/// The part of [`retire`] done under the slot's reset lock.
fn retire_locked(seg: &Segment, i: usize, seen: Handover) -> bool {
    let Some(s) = seg.slots().get(i) else {
        return false;
    };
    let mark = Handover {
        kind: HANDOVER_RETIRED,
        ..seen
    };
    // A new owner changes the generation (under the reset lock we hold),
    // an adopter changes the kind, and the process `seen` names cannot
    // come back: an unchanged word means the slot is still its, and gone.
    if s.handover
        .compare_exchange(
            seen.word(),
            mark.word(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return false;
    }
    let h = seg.header();
    let (w, mask) = bit(i);
    s.intent.store(NO_INTENT, Ordering::Relaxed);
    h.sleepers[w].fetch_and(!mask, Ordering::SeqCst);
    // SYNC POINT: as in `release`, pairs with the Acquire loads in
    // `any_active`; the process is gone, so its commits are all done.
    h.active[w].fetch_and(!mask, Ordering::Release);
    true
}

/// Positions that live senders are claiming. Read after `tail` (Acquire),
/// so every claim below that tail has its intent visible here unless the
/// claim was committed already.
pub(crate) fn live_intents(seg: &Segment) -> Vec<u64> {
    active_slots(seg)
        .filter_map(|i| {
            // SYNC POINT: pairs with the Release clear of the intent in
            // `Ring::commit` and the Release stores of a next intent in
            // `Ring::claim`: either way, the sender's earlier commits are
            // visible to the header loads that follow.
            let p = seg.slots()[i].intent.load(Ordering::Acquire);
            (p != NO_INTENT && sender_alive(seg, i)).then_some(p)
        })
        .collect()
}

/// The state of a channel's receiver.
///
/// ```
/// let (_tx, rx) = shmpsc::channel::<u8>("doc-receiver-state")?;
/// assert_eq!(shmpsc::inspect("doc-receiver-state")?.receiver, shmpsc::ReceiverState::Alive);
/// # drop(rx);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverState {
    /// A live process holds the receiver.
    Alive,
    /// The receiver was dropped (the name is normally removed with it).
    Dropped,
    /// The receiver's process died; a new receiver can take the channel over.
    Dead,
}

/// The receiver's state: dropped if it said so (any state word but
/// `RX_ALIVE`: anyone may overwrite it), else alive while its lock
/// is held (in doubt, alive: see [`Segment::receiver_locked`]).
pub(crate) fn receiver_state(seg: &Segment) -> ReceiverState {
    // SYNC POINT: pairs with the Release store of `RX_DROPPED` in
    // `Consumer::close`.
    if seg.header().control.rx_state.load(Ordering::Acquire) != RX_ALIVE {
        ReceiverState::Dropped
    } else if Segment::receiver_locked(seg.file()) {
        ReceiverState::Alive
    } else {
        ReceiverState::Dead
    }
}

/// Whether the receiver is attached: not dropped, and its lock is held.
pub(crate) fn receiver_alive(seg: &Segment) -> bool {
    receiver_state(seg) == ReceiverState::Alive
}

/// Whether a remover holds the segment's locks (it found no live endpoint,
/// and is removing its name).
pub(crate) fn being_removed(seg: &Segment) -> bool {
    sys::ofd_is_locked(seg.file(), crate::layout::REMOVER_LOCK_BYTE).unwrap_or(false)
}

/// The sleepers bit of slot `i`.
pub(crate) fn sleeper_bit(seg: &Segment, i: usize) -> crate::wait::Bit<'_> {
    let (w, mask) = bit(i);
    crate::wait::Bit {
        word: &seg.header().sleepers[w],
        mask,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::layout::Geometry;

    /// A fresh two-slot segment, nameless (its name is removed at once).
    fn segment(tag: &str) -> Segment {
        let name = format!("peers-unit-{tag}-{}", std::process::id());
        let geo = Geometry::new(4096, 64, 2).unwrap();
        let (seg, _) = Segment::create(
            &name,
            geo,
            0o600,
            crate::layout::MessageType {
                name: "u64",
                codec: "test",
                schema: None,
                shape: None,
            },
        )
        .unwrap();
        seg.unlink();
        seg
    }

    /// A slot passed and spawned to a process that is gone (this process's
    /// pid with another start time), and the hand-over word a reaper saw.
    fn spawned_to_gone_process(seg: &Segment) -> (usize, Handover) {
        let (slot, generation) = acquire(seg, true).unwrap();
        let me = sys::identify_self();
        let gone = ProcessIdentity {
            start: me.start + 1,
            ..me
        };
        assert!(sys::process_gone(gone));
        claim_spawned(seg, slot, generation, gone);
        let seen = Handover::parse(seg.slots()[slot].handover.load(Ordering::Acquire));
        assert_eq!(seen.kind, HANDOVER_SPAWNED);
        (slot, seen)
    }

    fn is_active(seg: &Segment, i: usize) -> bool {
        let (w, mask) = bit(i);
        seg.header().active[w].load(Ordering::Acquire) & mask != 0
    }

    /// The adopter's compare-and-swap lands first (after the reaper saw
    /// the slot `SPAWNED` to a gone process): the reaper leaves the slot to
    /// its adopter.
    #[test]
    fn an_adopted_slot_is_not_retired_on_a_stale_look() {
        let seg = segment("adopt-first");
        let (slot, seen) = spawned_to_gone_process(&seg);
        assert_eq!(adopt(&seg, slot, sys::identify_self()), Ok(()));
        assert!(!retire(&seg, slot, seen));
        assert!(is_active(&seg, slot));
        let now = Handover::parse(seg.slots()[slot].handover.load(Ordering::Acquire));
        assert_eq!((now.kind, now.pid), (HANDOVER_ADOPTED, std::process::id()));
    }

    /// The reaper's compare-and-swap lands first: the slot is retired and
    /// its bit cleared, and a later adopter is refused.
    #[test]
    fn a_retired_slot_is_never_adopted() {
        let seg = segment("retire-first");
        let (slot, seen) = spawned_to_gone_process(&seg);
        assert!(retire(&seg, slot, seen));
        assert!(!is_active(&seg, slot));
        assert_eq!(
            adopt(&seg, slot, sys::identify_self()),
            Err(AdoptRefused::Taken(seen.pid))
        );
        let now = Handover::parse(seg.slots()[slot].handover.load(Ordering::Acquire));
        assert_eq!(now.kind, HANDOVER_RETIRED);
    }

    /// A reaper that died between marking the slot `RETIRED` and clearing
    /// its bit: the next reap finishes the job.
    #[test]
    fn a_half_retired_slot_is_finished_by_the_next_reap() {
        let seg = segment("half-retired");
        let (slot, seen) = spawned_to_gone_process(&seg);
        let mark = Handover {
            kind: HANDOVER_RETIRED,
            ..seen
        };
        seg.slots()[slot]
            .handover
            .store(mark.word(), Ordering::Release);
        assert!(is_active(&seg, slot));
        assert_eq!(handed_to_gone_process(&seg, slot), Some(mark));
        assert!(retire(&seg, slot, mark));
        assert!(!is_active(&seg, slot));
    }
}
