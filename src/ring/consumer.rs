//! The receiving side of the ring: the consumer's cursors and the state
//! machine around them. It finds the next committed record, waits for one
//! per the wait protocol, gives consumed bytes back in batches, skips dead
//! senders' claims (liveness maintenance) and malformed records (resync),
//! and closes the channel when the claim cursor is corrupt. `Receiver<T>`
//! (channel.rs) only lends the bytes it finds and decodes them:
//!
//! ```text
//! let msg = consumer.next(deadline)?;   // committed, consumed: head is past it
//! let r = consumer.lend(&msg, decode);  // the bytes, in place
//! consumer.finish(msg);                 // delivered; maybe released
//! ```
#![deny(unsafe_code)]

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::{Malformed, Message, Peek, Ring};
use crate::codec::CodecError;
use crate::error::InvalidMessage;
use crate::layout::RX_DROPPED;
use crate::peers;
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::wait::{self, Deadline, Wake};

/// The receiver gives consumed bytes back to senders (zeroes them and
/// publishes its cursor) in batches of an eighth of the ring, at most this
/// many bytes, and when it is about to sleep (or `try_recv` finds nothing):
/// it then writes to no line a sender is writing to, message by message.
const MAX_RELEASE_BATCH: u64 = 64 * 1024;

/// A receiver that found this many messages in a row without waiting is
/// behind a streaming sender; when it then catches up, it backs off
/// before it looks again (see [`STREAM_BACKOFF`]).
const STREAM_STREAK: u32 = 16;

/// How long a receiver that caught up with a streaming sender waits before
/// it looks at the ring again. Looking at once would put it on the line the
/// sender is filling: every look takes the line away from the sender, which
/// must win it back for each record (measured on the 2-core VM, criterion
/// 1-to-1 bytes, alternated in one run: 16 B 56-60 ns a message without the
/// back-off, 31-33 with it; 64 B 52-55 and 29-30). 5 µs rather than 2
/// since receives take the inlined fast path of `Consumer::next` (a
/// receiver that catches up sooner takes the line more often): alternated
/// in one run against 2 µs without the fast path, bytes 16 B 24-28 ns
/// against 31, bytes 64 B 27 against 30-32, serde 64 B zero-copy 53 against
/// 49-57, serde 16 B 43-44 against 39-40 (the one cell it costs). Meanwhile the sender
/// fills whole lines, which the receiver then reads in one go. A receiver
/// that waited for its last message (a request/response exchange, a quiet
/// channel) does not back off: its latency is unchanged.
const STREAM_BACKOFF: Duration = Duration::from_micros(5);

/// Why [`Consumer::next`] returned no message.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Nothing committed before the deadline.
    Empty,
    /// No sender is attached and the ring is drained, or the channel was
    /// closed.
    Disconnected,
    /// A malformed record was skipped, or the channel was found corrupt
    /// (closed from then on).
    Invalid(InvalidMessage),
}

/// What an async receive waits on (see [`Consumer::announce_wait`]).
#[cfg(feature = "async")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct AsyncWait {
    /// The value of the receiver's futex word (`data.seq`) to wait on.
    pub(crate) seen: u32,
    /// The position of the awaited record.
    pub(crate) at: u64,
}

/// The consumer: the one receiving endpoint's state, in `Cell`s (a
/// receiver is used by one thread at a time; it is `Send`, not `Sync`).
#[derive(Debug)]
pub(crate) struct Consumer {
    ring: Ring,
    tick: Duration,
    /// The consumer cursor: the receiver's own (trusted) copy. Everything
    /// before it was delivered.
    head: Cell<u64>,
    /// Everything before this was zeroed and published to senders as
    /// `head`; `[released, head)` was consumed (delivered records, padding,
    /// skipped bytes) and awaits release.
    released: Cell<u64>,
    /// End of the last message delivered (the receiver's own copy of
    /// `RxHot::delivered`, which anyone may overwrite).
    delivered: Cell<u64>,
    /// Release when this many bytes await it.
    batch: u64,
    /// Cached, checked view of the claim cursor.
    tail: Cell<u64>,
    /// A `recv_bytes_with` callback is running: its slice points into the
    /// ring, so nothing is released until it returns.
    lent: Cell<u32>,
    /// A malformed word found at an idle head (nothing claimed past it),
    /// already reported: `(position, word)`. Until a sender's header
    /// replaces it, the position counts as "nothing committed yet", so the
    /// receiver neither reports it again nor spins on it.
    stray: Cell<Option<(u64, u64)>>,
    /// Set when the claim cursor was found corrupt: the channel is closed.
    broken: Cell<bool>,
    /// When liveness maintenance last ran.
    last_check: Cell<Option<Instant>>,
    /// Messages found in a row without waiting (see [`STREAM_STREAK`]).
    streak: Cell<u32>,
}

impl Consumer {
    /// The consumer of a segment that this process created or took over
    /// (it holds the receiver lock), starting after what was delivered.
    /// Fails if the published cursors are unusable.
    pub(crate) fn new(seg: Segment, tick: Duration) -> Result<Consumer, Malformed> {
        let ring = Ring::new(seg);
        let (head, delivered) = ring.checked_cursors()?;
        // A receiver that died may have delivered records it had not
        // released yet: release them, they must not be delivered again.
        ring.deliver(delivered);
        ring.release(head, delivered);
        // From the segment: a receiver that took a channel over has the
        // geometry its creator chose.
        let batch = (ring.segment().geometry().capacity / 8).min(MAX_RELEASE_BATCH);
        Ok(Consumer {
            ring,
            tick,
            head: Cell::new(delivered),
            released: Cell::new(delivered),
            delivered: Cell::new(delivered),
            batch,
            tail: Cell::new(delivered),
            lent: Cell::new(0),
            stray: Cell::new(None),
            broken: Cell::new(false),
            last_check: Cell::new(None),
            streak: Cell::new(0),
        })
    }

    pub(crate) fn segment(&self) -> &Segment {
        self.ring.segment()
    }

    pub(crate) fn tick(&self) -> Duration {
        self.tick
    }

    // ------------------------------------------------------------- receive

    /// Finds the next committed record, waiting for one until `deadline`
    /// (spin, yield, then sleep per the wait protocol, with liveness
    /// maintenance every tick). The record is consumed: the cursor is past
    /// it, so a receive inside [`Consumer::lend`]'s callback gets the next
    /// one. Hand it to [`Consumer::finish`] once its bytes were read.
    #[inline]
    pub(crate) fn next(&self, deadline: Deadline) -> Result<Message, Fail> {
        // The common case, inlined into every receive: a message committed
        // at `head` (perhaps after padding). The same as the first look of
        // `next_waiting`, which handles everything else.
        if !self.broken.get() {
            if let (_, Peek::Message(msg)) = self.ring.peek(self.head.get(), self.released.get()) {
                self.streak.set(self.streak.get().saturating_add(1));
                self.head.set(msg.end());
                return Ok(msg);
            }
        }
        self.next_waiting(deadline)
    }

    /// [`Consumer::next`] when no message is committed at `head` yet (or
    /// the ring must be released, or the word there is malformed).
    #[inline(never)]
    fn next_waiting(&self, deadline: Deadline) -> Result<Message, Fail> {
        if self.broken.get() {
            return Err(Fail::Disconnected);
        }
        let seg = self.ring.segment();
        let h = seg.header();
        let mut spun = false;
        loop {
            let (head, found) = self.look();
            match found {
                Peek::Message(msg) => {
                    self.streak.set(if spun {
                        0
                    } else {
                        self.streak.get().saturating_add(1)
                    });
                    // The record is consumed before its bytes are lent, so
                    // that a callback that receives again gets the next
                    // message, not this one; `lent` keeps its bytes
                    // from being released (and zeroed) under the slice.
                    self.head.set(msg.end());
                    return Ok(msg);
                }
                Peek::Malformed(bad) => {
                    let fail = self.resync(head, bad);
                    if self.head.get() == head {
                        // Nothing is claimed past it (resync stops at
                        // `tail`): reported once; from now on it reads as
                        // "nothing yet" until a sender's header replaces it.
                        self.stray.set(Some((head, bad.word)));
                    }
                    return Err(fail);
                }
                // (`look` releases and looks again on `MustRelease`.)
                Peek::NotYet | Peek::MustRelease => {}
            }
            // Nothing committed at `head`.
            // SYNC POINT: the Acquire loads in `any_active` pair with the
            // Release clear in `peers::release`: a sender's commits (and
            // claims) are visible once its bit is seen clear, so looking
            // again after it cannot miss a message.
            let mut dead_claim = false;
            if !peers::any_active(seg) {
                if self.look().1 != Peek::NotYet {
                    continue;
                }
                if self.empty_at(self.head.get())? {
                    return Err(Fail::Disconnected);
                }
                // A dead sender's claim is pending: maintenance skips it, at
                // the next tick. Until then, "no sender" is no reason to
                // wake up.
                dead_claim = true;
            }
            if matches!(deadline, Deadline::Now) {
                // A corrupt claim cursor is reported at once.
                self.empty_at(self.head.get())?;
                self.release();
                if self.maintain_if_due()? {
                    continue;
                }
                return Err(Fail::Empty);
            }
            // Ready when something is committed (or padding, or a malformed
            // word) at the awaited position, or when the senders are all
            // gone. While it spins, the receiver reads that one header word
            // (and the bitmap line, which changes only when senders come and
            // go): it leaves the line with `tail` and the lines behind the
            // writer alone, so a sender streaming into the ring is not slowed
            // down by its receiver waiting for it.
            let at = self.head.get();
            let ready = self.wait_condition(at, dead_claim);
            if !spun {
                spun = true;
                if self.streak.get() >= STREAM_STREAK {
                    // Caught up with a streaming sender: let it fill lines.
                    wait::pause_for(STREAM_BACKOFF, deadline.instant());
                }
                if wait::spin_until(deadline.instant(), ready) {
                    continue;
                }
            }
            // About to sleep: give every consumed byte back (and wake the
            // senders that wait for room), and check the claim cursor.
            self.release();
            self.empty_at(at)?;
            if self.maintain_if_due()? {
                continue;
            }
            let Some(timeout) = wait::next_sleep(self.tick, deadline.instant()) else {
                return Err(Fail::Empty);
            };
            let me = wait::At {
                word: &h.data.waiting_at,
                value: at + 1,
            };
            let barrier = || wait::AsymmetricWake::heavy_barrier(&h.config.features);
            if wait::sleep(&h.data.seq, &me, timeout, barrier, ready) == Wake::TimedOut
                && self.maintain_now()?
            {
                continue;
            }
        }
    }

    /// For an async receive after [`Consumer::next`] found nothing with
    /// `Deadline::Now` (which released what was consumed and ran
    /// maintenance when due): announces the receiver as waiting for the
    /// record at `head`, as a blocking receive does before it sleeps, so
    /// that the sender that commits it wakes the futex word. Returns what
    /// to wait on, or `None` if something is ready already (nothing is then
    /// announced: receive again). After `Some`, call
    /// [`Consumer::withdraw_wait`] once the wait ends.
    #[cfg(feature = "async")]
    pub(crate) fn announce_wait(&self) -> Option<AsyncWait> {
        let seg = self.ring.segment();
        let h = seg.header();
        let at = self.head.get();
        // `next` reports an empty ring without senders as disconnected:
        // nothing committed and no sender means a dead sender's claim that
        // maintenance skips at its next tick.
        let ready = self.wait_condition(at, !peers::any_active(seg));
        let me = wait::At {
            word: &h.data.waiting_at,
            value: at + 1,
        };
        let barrier = || wait::AsymmetricWake::heavy_barrier(&h.config.features);
        match wait::announce(&h.data.seq, &me, barrier, ready) {
            Some(seen) => Some(AsyncWait { seen, at }),
            None => {
                wait::Announce::withdraw(&me);
                None
            }
        }
    }

    /// Liveness maintenance now (an async receive that was told a sender's
    /// process may be gone): what a blocking receive does when it wakes at
    /// its tick. An error is the receive's result (a malformed record
    /// skipped, a corrupt channel).
    #[cfg(feature = "async")]
    pub(crate) fn maintain(&self) -> Result<(), Fail> {
        self.maintain_now().map(|_| ())
    }

    /// Ends the wait that [`Consumer::announce_wait`] announced.
    #[cfg(feature = "async")]
    pub(crate) fn withdraw_wait(&self) {
        let me = wait::At {
            word: &self.ring.segment().header().data.waiting_at,
            value: 0,
        };
        wait::Announce::withdraw(&me);
    }

    /// Lends the bytes of `msg` (from [`Consumer::next`]) to `f`, and counts
    /// it received (it is, once `f` has it, whatever `f` does). `f` may
    /// receive again; nothing is released while it runs.
    #[inline]
    pub(crate) fn lend<R>(&self, msg: &Message, f: impl FnOnce(&[u8]) -> R) -> R {
        self.count_received(1, msg.len());
        let _lent = Lent::enter(&self.lent);
        self.ring.with_payload(msg, f)
    }

    /// Adds to the receive statistics. The receiver is the only writer: no
    /// RMW needed. Statistics live in shared memory, which anyone may have
    /// overwritten: they wrap rather than trust it.
    #[inline]
    fn count_received(&self, messages: u64, bytes: u64) {
        let rx = &self.ring.segment().header().rx;
        rx.received_messages.store(
            rx.received_messages
                .load(Ordering::Relaxed)
                .wrapping_add(messages),
            Ordering::Relaxed,
        );
        rx.received_bytes.store(
            rx.received_bytes
                .load(Ordering::Relaxed)
                .wrapping_add(bytes),
            Ordering::Relaxed,
        );
    }

    /// Receives `first` (from [`Consumer::next`]) and then every message
    /// committed after it, up to `max` in all, lending each one's bytes to
    /// `f` in order; returns how many. The records after the first are
    /// taken as they lie: the loop stops at anything else (nothing
    /// committed yet, a malformed word, a ring past the released bytes),
    /// which the next receive handles as usual. Each record is marked
    /// delivered once `f` returns (a receiver that takes over after a crash
    /// in `f` starts at that record); statistics count every record lent,
    /// once for the run (also when `f` panics).
    /// If `f` forks, the child (whose fork generation is not `owner`)
    /// writes nothing more to the channel.
    #[cfg(not(loom))]
    pub(crate) fn drain(
        &self,
        first: Message,
        max: usize,
        owner: u64,
        mut f: impl FnMut(&[u8]),
    ) -> usize {
        // Counted once for the run, also if `f` panics (every record lent
        // was received); by the process that made the receiver only.
        let mut counted = Counted {
            consumer: self,
            owner,
            messages: 0,
            bytes: 0,
        };
        let mut msg = first;
        loop {
            counted.messages += 1;
            counted.bytes += msg.len();
            {
                let _lent = Lent::enter(&self.lent);
                self.ring.with_payload(&msg, &mut f);
            }
            if crate::sys::fork_generation() != owner {
                // A `fork` copy writes nothing to the channel (`Counted`
                // checks it too).
                return counted.messages as usize;
            }
            self.deliver_up_to(msg.end());
            if counted.messages as usize >= max {
                break;
            }
            match self.ring.peek(self.head.get(), self.released.get()) {
                (_, Peek::Message(m)) => {
                    self.head.set(m.end());
                    msg = m;
                }
                _ => break,
            }
        }
        let n = counted.messages as usize;
        drop(counted);
        if self.head.get() - self.released.get() >= self.batch {
            self.release();
        }
        n
    }

    /// Marks `msg` delivered (for a receiver that takes over) and releases
    /// a batch when one is due. (It was counted received when lent.)
    #[inline]
    pub(crate) fn finish(&self, msg: Message) {
        self.deliver_up_to(msg.end());
        if self.head.get() - self.released.get() >= self.batch {
            self.release();
        }
    }

    /// Records that everything before `to` was delivered (for a receiver
    /// that takes over). The cursor never moves back: a callback that
    /// received again has delivered further already.
    #[inline]
    fn deliver_up_to(&self, to: u64) {
        if to > self.delivered.get() {
            self.delivered.set(to);
            self.ring.deliver(to);
        }
    }

    /// Counts a message that was received but could not be decoded, and
    /// describes it.
    #[cold]
    pub(crate) fn undecodable(
        &self,
        position: u64,
        len: u64,
        type_name: &str,
        error: CodecError,
    ) -> InvalidMessage {
        let rx = &self.ring.segment().header().rx;
        rx.invalid_messages.fetch_add(1, Ordering::Relaxed);
        InvalidMessage {
            position,
            len,
            reason: format!("could not be decoded as `{type_name}`"),
            codec_error: Some(error),
            raw: false,
        }
    }

    /// Counts and describes a record sent raw (`send_bytes`) that a typed
    /// receive of `type_name` met: reported, not decoded by accident. (The
    /// record was received: lent, or passed by a lending cursor.)
    pub(crate) fn raw_record(&self, position: u64, len: u64, type_name: &str) -> InvalidMessage {
        let rx = &self.ring.segment().header().rx;
        rx.invalid_messages.fetch_add(1, Ordering::Relaxed);
        InvalidMessage {
            position,
            len,
            reason: format!(
                "was sent raw (send_bytes), not encoded as `{type_name}`: a typed receive does \
                 not decode it; receive raw records with recv_bytes_with"
            ),
            codec_error: None,
            raw: true,
        }
    }

    // ------------------------------------------------------------ queries

    /// Whether no message is in the ring. A query: it reads, and neither
    /// releases, zeroes nor wakes.
    pub(crate) fn is_empty(&self) -> bool {
        let (head, found) = self.ring.peek(self.head.get(), self.released.get());
        match self.known_stray(head, found) {
            Peek::NotYet | Peek::MustRelease => {
                let mut tail = self.tail.get();
                self.ring.empty_at(head, self.released.get(), &mut tail) == Ok(true)
            }
            Peek::Message(_) | Peek::Malformed(_) => false,
        }
    }

    /// Number of messages in the ring (sent minus received, from the
    /// statistics), approximately while senders are active.
    pub(crate) fn len(&self) -> usize {
        let seg = self.ring.segment();
        crate::layout::pending_messages(seg.header(), seg.slots())
    }

    // ------------------------------------------------------------ closing

    /// The receiver is dropped: marks the channel so, removes its name and
    /// wakes every blocked sender, which returns its message now.
    pub(crate) fn close(&self) {
        let seg = self.ring.segment();
        let h = seg.header();
        // SYNC POINT: pairs with the Acquire loads of `rx_state` in senders.
        h.control.rx_state.store(RX_DROPPED, Ordering::Release);
        seg.unlink();
        wait::wake(&h.control.space_seq, true);
    }

    // ------------------------------------------------------------ private

    /// [`Consumer::maintain_now`] if it did not run for a tick.
    fn maintain_if_due(&self) -> Result<bool, Fail> {
        if self
            .last_check
            .get()
            .is_some_and(|t| t.elapsed() < self.tick)
        {
            return Ok(false);
        }
        self.maintain_now()
    }

    /// Liveness maintenance: reclaims dead senders' slots and skips a dead
    /// sender's claim at `head`. Returns whether anything changed.
    fn maintain_now(&self) -> Result<bool, Fail> {
        self.last_check.set(Some(Instant::now()));
        let seg = self.ring.segment();
        let reaped = peers::reap_dead(seg) > 0;
        self.release();
        let head = self.head.get();
        let tail = self
            .ring
            .checked_tail(head, self.released.get())
            .map_err(|m| self.close_as_corrupt(m))?;
        if head == tail {
            return Ok(reaped);
        }
        let intents = peers::live_intents(seg);
        // Every dead claim in a row, in one go: senders killed together
        // leave adjacent claims, and each would otherwise cost a tick. (The
        // intents stay valid for claims before `tail`: a live owner's
        // intent points at its claim until the commit, which the judgement
        // then sees.)
        let mut end = head;
        let found = loop {
            match self
                .ring
                .dead_claim_end(end, tail, self.stray_word_at(end), |p| intents.contains(&p))
            {
                Ok(Some(next)) if next < tail => end = next,
                Ok(Some(next)) => {
                    end = next;
                    break Ok(());
                }
                Ok(None) => break Ok(()),
                Err(bad) => break Err(bad),
            }
        };
        if end > head {
            // Skipped bytes are consumed bytes: released with the rest
            // (`end` is at most `tail`, so within a ring of `released`).
            self.head.set(end);
            self.release();
            seg.header()
                .rx
                .recovered_bytes
                .fetch_add(end - head, Ordering::Relaxed);
        }
        match found {
            Ok(()) => Ok(reaped || end > head),
            Err(bad) => Err(self.resync(end, bad)),
        }
    }

    /// Skips a malformed record at `head`: resumes at the next position
    /// that holds a well-formed header or a live sender's claim.
    #[cold]
    fn resync(&self, head: u64, bad: Malformed) -> Fail {
        let seg = self.ring.segment();
        let tail = match self.ring.checked_tail(head, self.released.get()) {
            Ok(t) => t,
            Err(m) => return self.close_as_corrupt(m),
        };
        let intents = peers::live_intents(seg);
        let end = self.ring.resync(head, tail, |p| intents.contains(&p));
        // As in `maintain`: the skipped bytes are released with the rest.
        self.head.set(end);
        self.release();
        seg.header()
            .rx
            .invalid_messages
            .fetch_add(1, Ordering::Relaxed);
        Fail::Invalid(InvalidMessage {
            position: head,
            len: end - head,
            reason: format!(
                "is malformed ({bad}); {} bytes were skipped and the receiver resumed at \
                 position {end}",
                end - head
            ),
            codec_error: None,
            raw: false,
        })
    }

    /// The claim cursor is corrupt: nothing after it can be trusted. The
    /// channel is closed for everyone (senders see `Disconnected`), and this
    /// receiver reports `Disconnected` from now on.
    #[cold]
    fn close_as_corrupt(&self, bad: Malformed) -> Fail {
        let seg = self.ring.segment();
        self.broken.set(true);
        seg.header()
            .rx
            .invalid_messages
            .fetch_add(1, Ordering::Relaxed);
        // SYNC POINT: pairs with the Acquire loads of `rx_state` in senders.
        seg.header()
            .control
            .rx_state
            .store(RX_DROPPED, Ordering::Release);
        wait::wake(&seg.header().control.space_seq, true);
        Fail::Invalid(InvalidMessage {
            position: self.head.get(),
            len: 0,
            reason: format!(
                "cannot be reached: the producers' claim cursor {bad}, so the channel was \
                 written by something that breaks the protocol and is closed; create it again"
            ),
            codec_error: None,
            raw: false,
        })
    }

    /// Wakes senders that sleep waiting for room.
    fn wake_senders(&self) {
        let seg = self.ring.segment();
        wait::wake_if_waiting(
            &seg.header().control.space_seq,
            || peers::any_sleeper(seg),
            true,
        );
    }

    /// Gives the consumed bytes `[released, head)` back to senders, and
    /// wakes the senders that sleep waiting for room: a fence and a look at
    /// the sleepers bitmap, a syscall only if one sleeps. Releases happen in
    /// batches (an eighth of the ring, at most 64 KiB) and when the receiver
    /// is about to sleep, so that is one fence per batch, not per message.
    /// Every release is followed by this check, so no sender sleeps for room
    /// the ring has.
    ///
    /// Not while a `recv_bytes_with` callback runs: the slice it was lent
    /// points into those bytes. The outermost call releases them after.
    fn release(&self) {
        if self.lent.get() > 0 {
            return;
        }
        let (from, to) = (self.released.get(), self.head.get());
        if from == to {
            return;
        }
        // The delivered cursor lags when padding, dead claims or damaged
        // bytes were skipped; a receiver taking over must never find it
        // behind the consumer cursor.
        self.deliver_up_to(to);
        self.ring.release(from, to);
        self.released.set(to);
        self.wake_senders();
    }

    /// Peeks at the next record from the receiver's own head, keeping the
    /// cached head up to date (peeking consumes padding).
    #[inline]
    fn look(&self) -> (u64, Peek) {
        loop {
            let (head, found) = self.ring.peek(self.head.get(), self.released.get());
            self.head.set(head);
            match self.known_stray(head, found) {
                // Inside a callback nothing can be released: the next
                // message shows once the callback has returned.
                Peek::MustRelease if self.lent.get() > 0 => return (head, Peek::NotYet),
                Peek::MustRelease => self.release(),
                found => return (head, found),
            }
        }
    }

    /// The condition a receive waiting for the record at `at` waits for:
    /// something committed there (or padding, or a malformed word), or,
    /// unless a dead sender's claim is pending (`dead_claim`), every sender
    /// gone. What the blocking and the async receive both re-check after
    /// they announce themselves.
    fn wait_condition(&self, at: u64, dead_claim: bool) -> impl Fn() -> bool + Copy + '_ {
        let seg = self.ring.segment();
        // A position a ring past the released bytes cannot become ready
        // before they are released (inside a callback they cannot be: a
        // blocking receive there waits for the senders to go).
        let reachable = at - self.released.get() < seg.geometry().capacity;
        let ignore = self.stray_word_at(at);
        move || {
            (reachable && self.ring.ready_at(at, ignore))
                || (!dead_claim && !peers::any_active(seg))
        }
    }

    /// The malformed word already reported at `pos` (see `stray`), or 0.
    fn stray_word_at(&self, pos: u64) -> u64 {
        match self.stray.get() {
            Some((at, word)) if at == pos => word,
            _ => 0,
        }
    }

    /// A malformed word at `head` that was reported already (see
    /// `Consumer::stray`) reads as "nothing committed yet".
    #[inline]
    fn known_stray(&self, head: u64, found: Peek) -> Peek {
        match found {
            Peek::Malformed(bad) if self.stray.get() == Some((head, bad.word)) => Peek::NotYet,
            found => found,
        }
    }

    /// After `look` found nothing committed at `head`: whether nothing is
    /// claimed there either. Reads the claim cursor only when the cached one
    /// says the receiver has caught up with it; a corrupt one closes the
    /// channel.
    fn empty_at(&self, head: u64) -> Result<bool, Fail> {
        let mut tail = self.tail.get();
        let r = self.ring.empty_at(head, self.released.get(), &mut tail);
        self.tail.set(tail);
        r.map_err(|m| self.close_as_corrupt(m))
    }
}

/// A cursor that lends each message it receives until the next receive
/// through it, or until it is dropped. It borrows the consumer exclusively,
/// so nothing else receives (and so nothing is released) while it lives;
/// the bytes it returns borrow the cursor mutably, so they are gone (to
/// the borrow checker) before its next receive, which is the only thing
/// that can release them. Nothing stays raised if it is leaked. What
/// `Receiver::zero_copy` is made of.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct LendingCursor<'a> {
    consumer: &'a mut Consumer,
    /// The message lent last, finished on the next receive or on drop.
    current: Option<Message>,
    /// The fork generation of the process that made the cursor: a `fork`
    /// copy writes nothing to the channel.
    owner: u64,
}

#[cfg(not(loom))]
impl<'a> LendingCursor<'a> {
    pub(crate) fn new(consumer: &'a mut Consumer, owner: u64) -> LendingCursor<'a> {
        LendingCursor {
            consumer,
            current: None,
            owner,
        }
    }

    /// Finishes the message lent last, then receives the next one (see
    /// [`Consumer::next`]) and lends its bytes (with its position, and the
    /// consumer, to report it undecodable; and whether it was sent raw)
    /// until the next call.
    #[allow(unsafe_code)]
    pub(crate) fn next(
        &mut self,
        deadline: Deadline,
    ) -> Result<(&[u8], u64, bool, &Consumer), Fail> {
        self.finish_current();
        let msg = self.consumer.next(deadline)?;
        // Received once lent, whatever becomes of the value (as `lend`).
        self.consumer.count_received(1, msg.len());
        // SAFETY: bytes are released only by a receive on this consumer,
        // which the cursor borrows exclusively; its own next receive needs
        // `&mut self`, so the slice (which borrows `self`) is no longer
        // used by then.
        let bytes = unsafe { self.consumer.ring.payload(&msg) };
        let (position, raw) = (msg.position(), msg.is_raw());
        self.current = Some(msg);
        Ok((bytes, position, raw, self.consumer))
    }

    fn finish_current(&mut self) {
        if let Some(msg) = self.current.take() {
            if crate::sys::fork_generation() == self.owner {
                self.consumer.finish(msg);
            }
        }
    }

    /// The consumer (for the channel's name).
    pub(crate) fn consumer(&self) -> &Consumer {
        self.consumer
    }

    /// Whether this is a copy made by `fork` (it receives nothing).
    pub(crate) fn forked(&self) -> bool {
        crate::sys::fork_generation() != self.owner
    }
}

#[cfg(not(loom))]
impl Drop for LendingCursor<'_> {
    fn drop(&mut self) {
        self.finish_current();
    }
}

/// The statistics of a run of [`Consumer::drain`], added when it ends.
#[cfg(not(loom))]
struct Counted<'a> {
    consumer: &'a Consumer,
    /// The fork generation of the receiver's process: a `fork` copy
    /// (unwinding out of a callback, say) counts nothing.
    owner: u64,
    messages: u64,
    bytes: u64,
}

#[cfg(not(loom))]
impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if crate::sys::fork_generation() == self.owner {
            self.consumer.count_received(self.messages, self.bytes);
        }
    }
}

/// Counts a message's bytes as lent (to a callback, or to a value decoded
/// in place), and no longer when it is dropped (the callback returns or
/// unwinds, the value is dropped).
pub(crate) struct Lent<'a> {
    count: &'a Cell<u32>,
}

impl<'a> Lent<'a> {
    fn enter(count: &'a Cell<u32>) -> Lent<'a> {
        count.set(count.get() + 1);
        Lent { count }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        self.count.set(self.count.get() - 1);
    }
}
