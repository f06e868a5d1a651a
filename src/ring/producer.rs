//! The sending side of the ring: one sender slot's claim, write and commit,
//! the wait for room on a full ring, and the slot's statistics. Clones of
//! a `Sender` share one `Producer` and take turns through its local lock,
//! from claim to commit; `Sender<T>` (channel.rs) only encodes.
#![deny(unsafe_code)]

use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{block_limit, Block, Claim, Ring};
use crate::error::{Rejection, SendTimeoutError};
use crate::hooks::{self, Point};
use crate::layout::{record_size, RX_DROPPED};
use crate::lock::{Guard, SpinLock};
use crate::peers;
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::wait::{self, Deadline};

/// What one claim carries: one message, or a block of them (a `Batch`).
#[derive(Debug)]
pub(crate) enum Payload<'p> {
    /// One message's bytes (raw or encoded: see [`Producer::send`]).
    One(&'p [u8]),
    /// Staged records; cleared once committed.
    Block(&'p mut Block),
}

impl Payload<'_> {
    /// The payload length of the claim.
    fn claim_len(&self) -> u64 {
        match self {
            Payload::One(b) => b.len() as u64,
            Payload::Block(b) => b.claim_len(),
        }
    }
}

/// The sender's state that clones take turns with (see [`Producer::lock`]).
#[derive(Debug)]
pub(crate) struct Local {
    /// Encoding buffer, reused for every message (the caller's).
    pub(crate) buf: Vec<u8>,
    /// Last seen `head`; reloaded only when it says the ring is full.
    cached_head: u64,
    /// When the receiver's liveness was last asked of the kernel.
    last_check: Option<Instant>,
}

/// One sender slot's producer.
#[derive(Debug)]
pub(crate) struct Producer {
    ring: Ring,
    slot: usize,
    tick: Duration,
    /// Latched when this endpoint saw the receiver dropped or dead.
    disconnected: AtomicBool,
    /// Claim to commit, one clone at a time (never held while waiting).
    local: SpinLock<Local>,
    /// How many clones sleep waiting for room (see `SharedBit`).
    sleepers: Mutex<u32>,
}

impl Producer {
    /// The producer of slot `slot`, which this endpoint owns.
    pub(crate) fn new(seg: Segment, slot: usize, tick: Duration) -> Producer {
        // SYNC POINT: pairs with the Release store of `head` in
        // `Ring::release` (as the reload in `Ring::claim_any`).
        let head = seg.header().rx.head.load(Ordering::Acquire);
        let mut ring = Ring::new(seg);
        ring.set_wake(wait::AsymmetricWake::register());
        Producer {
            ring,
            slot,
            tick,
            disconnected: AtomicBool::new(false),
            local: SpinLock::new(Local {
                buf: Vec::new(),
                cached_head: head,
                last_check: None,
            }),
            sleepers: Mutex::new(0),
        }
    }

    pub(crate) fn segment(&self) -> &Segment {
        self.ring.segment()
    }

    #[cfg(feature = "async")]
    pub(crate) fn tick(&self) -> Duration {
        self.tick
    }

    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    /// Takes this slot's turn: claim to commit is one clone at a time.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, Local> {
        self.local.lock()
    }

    /// The endpoint is dropped: gives the slot back and wakes the receiver,
    /// which may be asleep waiting for data that will not come.
    pub(crate) fn detach(&self) {
        let seg = self.ring.segment();
        peers::release(seg, self.slot);
        let h = seg.header();
        // All, as `Ring::wake_receiver_at`.
        wait::wake_if_waiting(
            &h.data.seq,
            || h.data.waiting_at.load(Ordering::Acquire) != 0,
            true,
        );
    }

    fn receiver_dropped(&self) -> bool {
        self.disconnected.load(Ordering::Relaxed)
            || self
                .ring
                .segment()
                .header()
                .control
                .rx_state
                .load(Ordering::Acquire)
                == RX_DROPPED
    }

    /// Asks the kernel whether the receiver lives, at most once per tick.
    fn receiver_died(&self, local: &mut Local) -> bool {
        let now = Instant::now();
        if local
            .last_check
            .is_some_and(|t| now.duration_since(t) < self.tick)
        {
            return false;
        }
        local.last_check = Some(now);
        !peers::receiver_alive(self.ring.segment())
    }

    /// Whether the receiver is gone (dropped, or its process gone), asking
    /// the kernel now; latched, as a send that finds it so.
    pub(crate) fn receiver_gone(&self) -> bool {
        if self.receiver_dropped() || !peers::receiver_alive(self.ring.segment()) {
            self.disconnected.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    fn disconnect(&self) -> SendTimeoutError<()> {
        self.disconnected.store(true, Ordering::Relaxed);
        SendTimeoutError::Disconnected(())
    }

    /// Whether the ring has room for a record of `len` payload bytes now, or
    /// the receiver was dropped (either ends a wait for room).
    pub(crate) fn room_for(&self, len: u64) -> bool {
        let h = self.ring.segment().header();
        let tail = h.tail.load(Ordering::Relaxed);
        // SYNC POINT: as the reload of `head` in `Ring::claim_any`.
        let head = h.rx.head.load(Ordering::Acquire);
        tail.wrapping_sub(head)
            .checked_add(record_size(len))
            .is_some_and(|u| u <= self.ring.segment().geometry().capacity)
            || h.control.rx_state.load(Ordering::Acquire) == RX_DROPPED
    }

    /// For an async send that found the ring full: announces this sender as
    /// waiting for room for a record of `len` payload bytes, as a blocking
    /// send does before it sleeps, so that the receiver's release wakes
    /// the futex word. Returns the value of `control.space_seq` to wait on,
    /// or `None` if there is room already (nothing is then announced: send
    /// again). After `Some`, call [`Producer::withdraw_wait`] once the wait
    /// ends.
    #[cfg(feature = "async")]
    pub(crate) fn announce_wait(&self, len: u64) -> Option<u32> {
        let me = self.sleeper();
        let seen = wait::announce(
            &self.ring.segment().header().control.space_seq,
            &me,
            || {},
            || self.room_for(len),
        );
        if seen.is_none() {
            wait::Announce::withdraw(&me);
        }
        seen
    }

    /// Ends the wait that [`Producer::announce_wait`] announced.
    #[cfg(feature = "async")]
    pub(crate) fn withdraw_wait(&self) {
        wait::Announce::withdraw(&self.sleeper());
    }

    /// This slot's announcement that it sleeps waiting for room, shared by
    /// the clones of this sender (see [`SharedBit`]).
    fn sleeper(&self) -> SharedBit<'_> {
        SharedBit {
            bit: peers::sleeper_bit(self.ring.segment(), self.slot),
            sleepers: &self.sleepers,
        }
    }

    /// Sends `payload`: claims room, writes, commits. `local` is held from
    /// claim to commit (the slot's intent word allows one claim in flight
    /// per slot), never while waiting: on a full ring the lock is released,
    /// so that clones of this sender can send, `try_send` reports `Full`
    /// and `send_timeout` keeps its deadline while one clone waits for room.
    /// Returns the lock, taken again, and the richest error, without the
    /// message (which the caller holds): `Timeout` if no room appeared
    /// before the deadline (at once for `Deadline::Now`: the ring is full),
    /// `Disconnected` if the receiver was dropped or died or the channel is
    /// corrupt, `Rejected` if the message is too large. Callers map it down
    /// to the error of their operation. With `RAW`, a [`Payload::One`] is
    /// committed marked raw (`send_bytes`); a block's records carry their
    /// own kinds. (A parameter of the type, not of the call: each kind of
    /// send gets its own copy, and the encoded one pays nothing for it.)
    #[inline]
    pub(crate) fn send<'a, const RAW: bool>(
        &'a self,
        mut local: Guard<'a, Local>,
        mut payload: Payload<'_>,
        deadline: Deadline,
    ) -> (Guard<'a, Local>, Result<(), SendTimeoutError<()>>) {
        let seg = self.ring.segment();
        let geo = seg.geometry();
        let len = payload.claim_len();
        let refused = match &payload {
            Payload::One(_) => len > geo.max_message,
            Payload::Block(b) => b.size() == 0 || b.size() > block_limit(geo.capacity),
        };
        if refused {
            let r = Rejection::TooLarge {
                size: len,
                max: geo.max_message,
            };
            return (local, Err(SendTimeoutError::Rejected((), r)));
        }
        if self.receiver_dropped() {
            return (local, Err(SendTimeoutError::Disconnected(())));
        }
        let slot = &seg.slots()[self.slot];
        let h = seg.header();
        loop {
            match self.ring.claim(slot, len, &mut local.cached_head) {
                Claim::At(claimed) => {
                    // The commit wakes the receiver if it sleeps for this
                    // record (a block's first).
                    let (messages, bytes) = match &mut payload {
                        Payload::One(b) => {
                            self.ring.commit(slot, claimed, b, RAW);
                            (1, len)
                        }
                        Payload::Block(b) => {
                            let counts = (b.messages(), b.payload_bytes());
                            self.ring.commit_block(slot, claimed, b);
                            counts
                        }
                    };
                    // One writer per slot (the local lock): no RMW needed.
                    // Statistics live in shared memory, which anyone may have
                    // overwritten: they wrap rather than trust it.
                    slot.sent_messages.store(
                        slot.sent_messages
                            .load(Ordering::Relaxed)
                            .wrapping_add(messages),
                        Ordering::Relaxed,
                    );
                    slot.sent_bytes.store(
                        slot.sent_bytes.load(Ordering::Relaxed).wrapping_add(bytes),
                        Ordering::Relaxed,
                    );
                    return (local, Ok(()));
                }
                Claim::Corrupt => return (local, Err(self.disconnect())),
                Claim::Full => {}
            }
            // Full. (A full claim leaves no intent behind: nothing of this
            // slot is in flight while the lock is released below.)
            if matches!(deadline, Deadline::Now) {
                let r = if self.receiver_dropped() || self.receiver_died(&mut local) {
                    self.disconnect()
                } else {
                    SendTimeoutError::Timeout(())
                };
                return (local, Err(r));
            }
            drop(local);
            let room = || self.room_for(len);
            if !wait::spin_until(deadline.instant(), room) {
                let Some(timeout) = wait::next_sleep(self.tick, deadline.instant()) else {
                    return (self.lock(), Err(SendTimeoutError::Timeout(())));
                };
                hooks::at(Point::Blocked);
                wait::sleep(&h.control.space_seq, &self.sleeper(), timeout, || {}, room);
            }
            local = self.lock();
            if self.receiver_dropped() || self.receiver_died(&mut local) {
                return (local, Err(self.disconnect()));
            }
        }
    }
}

/// The sleepers bit of a slot that clones of one sender share: several
/// threads may wait for room at once, so the bit is set while any of them
/// sleeps, and cleared by the last one to leave.
struct SharedBit<'a> {
    bit: wait::Bit<'a>,
    /// How many of this sender's threads announced themselves.
    sleepers: &'a Mutex<u32>,
}

impl wait::Announce for SharedBit<'_> {
    fn announce(&self) {
        let mut n = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
        *n += 1;
        self.bit.announce();
    }
    fn withdraw(&self) {
        let mut n = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.bit.withdraw();
        }
    }
}
