//! Sender slots and liveness. Each endpoint holds an open-file-description
//! lock on one byte of the segment file: the receiver byte 0, the sender of
//! slot `i` byte `1 + i`. The kernel drops the lock when the process dies,
//! however it dies, so "dead" is what the kernel says: never a PID, never a
//! clock. PIDs are kept for display only.
#![deny(unsafe_code)]

use std::sync::atomic::Ordering;

use crate::error::OpenError;
use crate::layout::{slot_lock_byte, Bitmap, NO_INTENT, RECEIVER_LOCK_BYTE, RX_ALIVE};
use crate::segment::Segment;
use crate::sys;

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
/// whose open file description is `seg.file()`.
pub(crate) fn acquire(seg: &Segment) -> Result<usize, OpenError> {
    let n = seg.geometry().max_senders as usize;
    // Start at a PID-dependent slot so that processes opening at once
    // mostly try different locks.
    let start = sys::current_pid() as usize % n;
    for k in 0..n {
        let i = (start + k) % n;
        let locked =
            sys::ofd_try_lock(seg.file(), slot_lock_byte(i)).map_err(|e| OpenError::Io {
                name: seg.name().to_owned(),
                op: "locking a sender slot",
                source: e,
            })?;
        if !locked {
            continue;
        }
        // We own slot i now. A set bit means its previous owner died before
        // dropping: we inherit the bit, and clear its stale announcements.
        let slot = &seg.slots()[i];
        let h = seg.header();
        let (w, mask) = bit(i);
        h.sleepers[w].fetch_and(!mask, Ordering::SeqCst);
        slot.intent.store(NO_INTENT, Ordering::Relaxed);
        slot.pid.store(sys::current_pid(), Ordering::Relaxed);
        h.active[w].fetch_or(mask, Ordering::AcqRel);
        return Ok(i);
    }
    Err(OpenError::TooManySenders {
        name: seg.name().to_owned(),
        max: n as u32,
    })
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

/// Whether the owner of slot `i` is alive (some other open file description
/// holds its lock).
pub(crate) fn sender_alive(seg: &Segment, i: usize) -> bool {
    // An error here (it should not happen) counts as alive: never skip a
    // claim on a guess.
    sys::ofd_is_locked(seg.file(), slot_lock_byte(i)).unwrap_or(true)
}

/// Clears the bits of owned slots whose owner died. Returns how many.
pub(crate) fn reap_dead(seg: &Segment) -> usize {
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
        }
    }
    reaped
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

/// Whether the receiver is attached: not dropped, and its lock is held.
pub(crate) fn receiver_alive(seg: &Segment) -> bool {
    seg.header().control.rx_state.load(Ordering::Acquire) == RX_ALIVE
        && sys::ofd_is_locked(seg.file(), RECEIVER_LOCK_BYTE).unwrap_or(true)
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
