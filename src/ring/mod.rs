//! The lock-free multi-producer single-consumer ring of variable-length
//! records, over a mapped [`Segment`].
//!
//! Positions are monotonic `u64` byte counters; a position maps to an offset
//! in the data area with a mask. A record is an 8-byte header word followed
//! by the payload, padded to 8. The header word is written `Claimed(len)`
//! before the payload and `Committed(len)` after it; a claim that would cross
//! the end of the data area claims the rest of the lap as `Padding` instead.
//!
//! Invariant kept by the receiver: every byte from the end of the last claim
//! up to `head + capacity` is zero (it zeroes what it consumes). Dead-claim
//! recovery relies on it.

pub(crate) mod consumer;
pub(crate) mod producer;

use crate::sync::{fence, AtomicU64, Ordering};

use crate::hooks::{self, Point};
use crate::layout::{
    committed_word, is_raw_record, parse_record, record_size, record_word, Record, Slot,
    MAX_POSITION, NO_INTENT, RECORD_HEADER,
};
use crate::segment::Segment;
use crate::wait;

/// Result of a claim attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The record may be written: [`Ring::commit`] takes the token.
    At(Claimed),
    /// Not enough room now.
    Full,
    /// The claim cursor is corrupt (not 8-aligned): the segment was written
    /// by something that breaks the protocol.
    Corrupt,
}

/// A claimed record: the proof that its bytes, `[pos, pos +
/// record_size(len))`, belong to the sender that claimed them and lie
/// within one lap of the data area. Only [`Ring::claim`] makes one, and
/// only [`Ring::commit`] takes it, once.
#[must_use = "a claim must be committed, or the receiver waits for it"]
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Claimed {
    pos: u64,
    len: u64,
}

/// Records staged in private memory by one sender (a `Batch`), claimed and
/// committed into the ring as one block: one claim, one copy, one commit.
///
/// In the ring a block is ordinary records back to back. Its first header
/// is written `Claimed(len of the whole block)`, then the rest of the block
/// (the other records, their headers already `Committed`) is copied in, then
/// the first header is committed with a Release store: a receiver that sees
/// the first record committed sees every record of the block, and a sender
/// that dies before that leaves one claim that the receiver skips whole
/// (its length is in the first header), so none of an unfinished block is
/// delivered.
/// In a staged record's header (private memory, see [`Block`]): its bytes
/// were sent raw.
const RAW_IN_BLOCK: u64 = 1 << 32;

#[derive(Debug, Default)]
pub(crate) struct Block {
    /// Records: an 8-byte header (until the block is committed: the
    /// payload length, plus [`RAW_IN_BLOCK`] for raw bytes), the payload,
    /// zeros up to a multiple of 8.
    buf: Vec<u8>,
    messages: u64,
    payload_bytes: u64,
}

impl Block {
    /// Bytes the block takes in the ring (headers and padding included).
    pub(crate) fn size(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Number of messages staged.
    pub(crate) fn messages(&self) -> u64 {
        self.messages
    }

    /// Payload bytes staged.
    pub(crate) fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Appends a record holding `payload`, sent raw (`send_bytes`) or
    /// encoded (the caller keeps the block within the limits the ring
    /// accepts: see [`block_limit`]).
    pub(crate) fn push(&mut self, payload: &[u8], raw: bool) {
        let len = payload.len() as u64;
        debug_assert!(len <= u32::MAX as u64);
        let header = if raw { len | RAW_IN_BLOCK } else { len };
        self.buf.extend_from_slice(&header.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        let padded = self.buf.len().next_multiple_of(RECORD_HEADER as usize);
        self.buf.resize(padded, 0);
        self.messages += 1;
        self.payload_bytes += len;
    }

    /// Forgets every staged record (after a commit, or when they cannot be
    /// sent).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.messages = 0;
        self.payload_bytes = 0;
    }

    /// The length in the first header: the payload length of the claim
    /// that covers the whole block.
    pub(crate) fn claim_len(&self) -> u64 {
        self.size() - RECORD_HEADER
    }
}

/// Largest block (in ring bytes) a sender may claim in a ring of `cap`
/// bytes: a quarter of the ring, at most 64 KiB, so that a block never
/// waits long for room and the receiver's check of a pending claim's
/// length stays tight.
#[inline]
pub(crate) fn block_limit(cap: u64) -> u64 {
    (cap / 4).min(64 * 1024)
}

/// A committed message found by [`Ring::peek`]: the proof that its
/// payload, `len` bytes at data offset `offset`, lies in the data area
/// and is committed. [`Ring::with_payload`] reads through it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pos: u64,
    /// The payload length, plus [`RAW_MESSAGE`] if the bytes were sent raw
    /// (`send_bytes`), not encoded by the channel's codec. (One word: the
    /// receive path returns a message in registers.)
    len_kind: u64,
    offset: usize,
}

/// In [`Message::len_kind`]: sent raw. Lengths are below 2^32.
const RAW_MESSAGE: u64 = 1 << 63;

impl Message {
    /// Where the record starts.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Payload length.
    #[inline]
    pub(crate) fn len(&self) -> u64 {
        self.len_kind & !RAW_MESSAGE
    }

    /// Whether its bytes were sent raw (`send_bytes`): a typed receive
    /// reports it instead of decoding it.
    #[inline]
    pub(crate) fn is_raw(&self) -> bool {
        self.len_kind & RAW_MESSAGE != 0
    }

    /// Where the next record starts.
    pub(crate) fn end(&self) -> u64 {
        self.pos + record_size(self.len())
    }
}

/// What the receiver finds at `head`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Nothing committed at `head` yet: the ring is empty there, or a claim
    /// is not committed. [`Ring::empty_at`] tells which.
    NotYet,
    /// `head` is a whole ring past the bytes the receiver has given back
    /// (after padding, or after records that tile a lap): the word there is
    /// still last lap's. Release, then peek again.
    MustRelease,
    /// A committed message.
    Message(Message),
    /// A malformed header word: the segment was written by something that
    /// does not follow the protocol. The receiver can skip it.
    Malformed(Malformed),
}

/// A header word that breaks the protocol, and what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub(crate) pos: u64,
    pub(crate) word: u64,
    pub(crate) what: &'static str,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record header {:#018x} at position {} {}",
            self.word, self.pos, self.what
        )
    }
}

/// A ring view over a segment, with the validated geometry cached in
/// plain fields for the hot paths.
#[derive(Debug)]
pub(crate) struct Ring {
    seg: Segment,
    /// How this endpoint wakes the receiver (see `wait::AsymmetricWake`).
    wake: wait::AsymmetricWake,
    cap: u64,
    max_message: u64,
}

impl Ring {
    pub(crate) fn new(seg: Segment) -> Ring {
        let geo = *seg.geometry();
        Ring {
            wake: wait::AsymmetricWake::default(),
            cap: geo.capacity,
            max_message: geo.max_message,
            seg,
        }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Sets how this endpoint wakes the receiver: a sender registers for
    /// the asymmetric wake-up (see `wait::AsymmetricWake`).
    pub(crate) fn set_wake(&mut self, wake: wait::AsymmetricWake) {
        self.wake = wake;
    }

    #[inline]
    fn offset(&self, pos: u64) -> usize {
        (pos & (self.cap - 1)) as usize
    }

    /// The header word of position `pos` (8-aligned: positions of
    /// records are).
    #[inline]
    fn word(&self, pos: u64) -> &AtomicU64 {
        debug_assert!(pos.is_multiple_of(8));
        // Masked to an 8-aligned offset inside the data area, whatever
        // `pos` is.
        let off = (pos & (self.cap - 1) & !7) as usize;
        // SAFETY: `off` is 8-aligned and `off + 8 <= cap` (`cap` is a power
        // of two, at least 16).
        unsafe { self.seg.data().word(off) }
    }

    // ---------------------------------------------------------------- sender

    /// Claims room for a record of `len` payload bytes, writing padding
    /// records when a claim would cross the end of the data area.
    ///
    /// `cached_head` is this sender's last view of `head`; it is reloaded only
    /// when it says the ring is full. On `Claim::At`, the slot's intent holds
    /// the position until [`Ring::commit`] clears it.
    #[inline]
    pub(crate) fn claim(&self, slot: &Slot, len: u64, cached_head: &mut u64) -> Claim {
        // The common case, inline: the record fits before the end of the lap
        // and the cached head says there is room. Anything else (padding, a
        // full ring, another sender's claim in between, a corrupt cursor)
        // goes through the general loop, which starts over.
        let cap = self.cap;
        let size = record_size(len);
        let tail = self.seg.header().tail.load(Ordering::Relaxed);
        if tail & 7 == 0 && size <= cap - (tail & (cap - 1)) && fits(tail, size, *cached_head, cap)
        {
            // As in `claim_any`: the intent first, ordered before the claim
            // by the Release of the CAS; Release itself for the dead-claim
            // scan (see there).
            slot.intent.store(tail, Ordering::Release);
            // SYNC POINT: sender. As the CAS in `claim_any`.
            if self
                .seg
                .header()
                .tail
                .compare_exchange(
                    tail,
                    tail.wrapping_add(size),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Claim::At(Claimed { pos: tail, len });
            }
        }
        self.claim_any(slot, len, cached_head)
    }

    /// [`Ring::claim`] in general: pads the end of a lap, reloads the cached
    /// head, retries after losing a race.
    #[cold]
    #[inline(never)]
    fn claim_any(&self, slot: &Slot, len: u64, cached_head: &mut u64) -> Claim {
        let cap = self.cap;
        let size = record_size(len);
        let h = self.seg.header();
        let mut tail = h.tail.load(Ordering::Relaxed);
        loop {
            if tail & 7 != 0 {
                slot.intent.store(NO_INTENT, Ordering::Relaxed);
                return Claim::Corrupt;
            }
            let to_end = cap - (tail & (cap - 1));
            let (claim, padding) = if size <= to_end {
                (size, false)
            } else {
                (to_end, true)
            };
            // Check room against the cached head first; reload it only when
            // the cache says full.
            if !fits(tail, claim, *cached_head, cap) {
                // SYNC POINT: sender. Pairs with the Release store of `head`
                // in `Ring::release`: the zeroed bytes behind it are visible.
                *cached_head = h.rx.head.load(Ordering::Acquire);
                if !fits(tail, claim, *cached_head, cap) {
                    // Our `tail` may be older than the head we just read.
                    let current = h.tail.load(Ordering::Relaxed);
                    if current != tail {
                        tail = current;
                        continue;
                    }
                    slot.intent.store(NO_INTENT, Ordering::Relaxed);
                    return Claim::Full;
                }
            }
            // Publish the intent before the claim, so that the receiver,
            // which reads `tail` before the intents, sees who owns it. The
            // Release of the CAS below orders this store before it.
            // SYNC POINT: sender. The store itself is Release too, and pairs
            // with the Acquire loads of intents in `peers::live_intents`: a
            // receiver that sees this sender's *next* intent also sees the
            // commit of its previous record, so the dead-claim scan never
            // acts on a stale header of a record this live sender committed.
            // (A plain store on x86, as Relaxed is.)
            slot.intent.store(tail, Ordering::Release);
            // (`tail` comes from shared memory: arithmetic on it wraps
            // rather than trusts it; the receiver checks it.)
            // SYNC POINT: sender. The AcqRel CAS pairs with the Acquire loads
            // of `tail` in `Ring::tail` (receiver) and other senders' CASes.
            match h.tail.compare_exchange_weak(
                tail,
                tail.wrapping_add(claim),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) if padding => {
                    // The rest of this lap is ours: mark it as padding in one
                    // store (its payload bytes are already zero) and go on
                    // with the next lap.
                    let word = record_word(Record::Padding((claim - RECORD_HEADER) as u32), tail);
                    // SYNC POINT: sender. Pairs with the Acquire load in `peek`.
                    self.word(tail).store(word, Ordering::Release);
                    slot.intent.store(NO_INTENT, Ordering::Release);
                    self.wake_receiver_at(tail);
                    tail = tail.wrapping_add(claim);
                }
                Ok(_) => return Claim::At(Claimed { pos: tail, len }),
                Err(current) => tail = current,
            }
        }
    }

    /// Writes the payload of a claimed record and commits it, marked raw
    /// (`send_bytes`) or encoded. `payload` must have the length that was
    /// claimed.
    #[inline]
    pub(crate) fn commit(&self, slot: &Slot, claimed: Claimed, payload: &[u8], raw: bool) {
        let Claimed { pos, len } = claimed;
        assert_eq!(payload.len() as u64, len, "a claim commits what it claimed");
        let off = self.offset(pos);
        // (`claim` refused lengths beyond `u32` with the maximum message
        // size, which is at most 4 GiB.)
        let len = len as u32;
        let word = self.word(pos);
        hooks::at(Point::Claimed);
        // The length goes first, marked in progress: if this process dies
        // mid-payload, the receiver knows how much to skip.
        word.store(record_word(Record::Claimed(len), pos), Ordering::Relaxed);
        hooks::at(Point::Header);
        // Keep payload bytes from becoming visible before the header.
        fence(Ordering::Release);
        // SAFETY: `claimed` proves that the record, `RECORD_HEADER +
        // payload.len()` bytes from `off`, was claimed by this sender and
        // lies within one lap, so inside the data area; no endpoint that
        // follows the protocol touches it before the commit below.
        unsafe { self.seg.data().write(off + RECORD_HEADER as usize, payload) };
        hooks::at(Point::Payload);
        // SYNC POINT: sender commit. Pairs with the Acquire load in `peek`.
        word.store(committed_word(len, pos, raw), Ordering::Release);
        // SYNC POINT: pairs with the Acquire loads of intents in
        // `peers::live_intents`: an intent seen cleared implies the commit
        // above is visible.
        slot.intent.store(NO_INTENT, Ordering::Release);
        self.wake_receiver_at(pos);
    }

    /// Commits a block of records (see [`Block`]) into the claim `claimed`,
    /// which must be of the block's size, and clears the block.
    pub(crate) fn commit_block(&self, slot: &Slot, claimed: Claimed, block: &mut Block) {
        let Claimed { pos, len } = claimed;
        assert_eq!(len, block.claim_len(), "a claim commits what it claimed");
        assert!(!block.buf.is_empty() && record_size(len) <= block_limit(self.cap));
        let off = self.offset(pos);
        // The inner headers get their final form (they carry their
        // position's tag) in private memory; the first stays for last.
        // A staged header: the length, and whether the bytes are raw.
        let header = |buf: &[u8], at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[at..at + 8]);
            let h = u64::from_ne_bytes(w);
            (h as u32, h & RAW_IN_BLOCK != 0)
        };
        let (first, first_raw) = header(&block.buf, 0);
        let mut at = record_size(first as u64) as usize;
        while at < block.buf.len() {
            let (l, raw) = header(&block.buf, at);
            let word = committed_word(l, pos + at as u64, raw);
            block.buf[at..at + 8].copy_from_slice(&word.to_ne_bytes());
            at += record_size(l as u64) as usize;
        }
        assert_eq!(at, block.buf.len(), "a block is whole records");
        let word = self.word(pos);
        hooks::at(Point::Claimed);
        // The whole block's length, marked in progress: if this process
        // dies before the commit below, the receiver skips all of it.
        word.store(
            record_word(Record::Claimed(len as u32), pos),
            Ordering::Relaxed,
        );
        hooks::at(Point::Header);
        // Keep the rest of the block from becoming visible before the header.
        fence(Ordering::Release);
        // SAFETY: `claimed` proves that `record_size(len)` bytes from `off`
        // (the block: its size is `record_size(len)`, checked above) were
        // claimed by this sender and lie within one lap, so inside the data
        // area; no endpoint that follows the protocol touches them before
        // the commit below.
        unsafe {
            self.seg.data().write(
                off + RECORD_HEADER as usize,
                &block.buf[RECORD_HEADER as usize..],
            )
        };
        hooks::at(Point::Payload);
        // SYNC POINT: sender commit. Pairs with the Acquire load in `peek`:
        // the receiver that sees the first record committed sees the
        // block's other records (written above) committed too.
        word.store(committed_word(first, pos, first_raw), Ordering::Release);
        // SYNC POINT: as in `commit`.
        slot.intent.store(NO_INTENT, Ordering::Release);
        block.clear();
        self.wake_receiver_at(pos);
    }

    /// Wakes the receiver if it sleeps waiting for the record at `pos`,
    /// which was just committed. A receiver waiting for an earlier record is
    /// woken by that record's writer (or by its liveness tick if the writer
    /// died).
    #[inline]
    fn wake_receiver_at(&self, pos: u64) {
        let h = self.seg.header();
        let d = &h.data;
        // SYNC POINT: the Acquire load pairs with the SeqCst swap of the
        // announcement in `wait::sleep` (through `wait::At`).
        let waiting = || d.waiting_at.load(Ordering::Acquire) == pos.wrapping_add(1);
        // All: the receiver's process may wait on the word in more than one
        // thread (async helper threads, one of which may hold only a
        // leaked future's wait); a wake-one could reach that one alone.
        self.wake
            .wake_if_waiting(&h.config.features, &d.seq, waiting, true);
    }

    // -------------------------------------------------------------- receiver
    //
    // The receiver keeps its own `head` (trusted, always 8-aligned) and
    // passes it in; the copy in shared memory is only published for senders.
    // `tail` is untrusted: every value read is checked by `checked_tail`.

    /// Reads the claim cursor and checks it against the receiver's `head`
    /// and `released` (where it last gave bytes back, `<= head`): 8-aligned,
    /// not behind `head`, at most one ring past `released` (senders can
    /// claim no further). Anything else means the word was overwritten by
    /// something that breaks the protocol.
    pub(crate) fn checked_tail(&self, head: u64, released: u64) -> Result<u64, Malformed> {
        debug_assert!(released <= head);
        // SYNC POINT: receiver. Pairs with the AcqRel CAS in `claim`: the
        // claimer's intent is visible.
        let tail = self.seg.header().tail.load(Ordering::Acquire);
        let what = if tail & 7 != 0 {
            "is not 8-aligned"
        } else if tail < head {
            "is behind the consumer"
        } else if tail - released > self.cap {
            "is more than a ring ahead of the room given back to senders"
        } else {
            return Ok(tail);
        };
        Err(Malformed {
            pos: head,
            word: tail,
            what,
        })
    }

    /// Reads the published consumer cursor and the delivered cursor (at
    /// creation or takeover) and checks them: 8-aligned, `head <=
    /// delivered <= tail`, within a ring.
    pub(crate) fn checked_cursors(&self) -> Result<(u64, u64), Malformed> {
        let rx = &self.seg.header().rx;
        let head = rx.head.load(Ordering::Acquire);
        let delivered = rx.delivered.load(Ordering::Acquire);
        let bad = |word, what| Malformed {
            pos: head,
            word,
            what,
        };
        if head & 7 != 0 || head >= MAX_POSITION {
            return Err(bad(
                head,
                "(the consumer cursor) is not 8-aligned or beyond any position a channel reaches",
            ));
        }
        if delivered & 7 != 0 || delivered >= MAX_POSITION {
            return Err(bad(
                delivered,
                "(the delivered cursor) is not 8-aligned or beyond any position a channel reaches",
            ));
        }
        // Everything before the consumer cursor was given back: a delivered
        // cursor behind it (a receiver that skipped padding or dead claims
        // before segments kept the two in step) means "from `head`".
        let delivered = delivered.max(head);
        if delivered - head > self.cap {
            return Err(bad(
                delivered,
                "(the delivered cursor) is more than a ring after the consumer cursor",
            ));
        }
        self.checked_tail(delivered, head)
            .map(|_| (head, delivered))
    }

    /// Looks at the record at `head`, stepping over padding on the way, and
    /// returns the position it stopped at with what it found there. It
    /// writes nothing: the bytes it steps over are released later.
    /// `released` is where the receiver last gave bytes back: the word at a
    /// position a ring or more past it is stale, so `peek` stops there.
    ///
    /// A committed header is trusted for its position (its tag) and bounded
    /// by the lap and the maximum message size, so the receiver does not
    /// touch `tail`, the line every sender writes, while messages flow, nor
    /// while it spins for the next one; it reads it (see
    /// [`Ring::empty_at`]) only to tell an empty ring from a pending claim.
    #[inline]
    pub(crate) fn peek(&self, mut head: u64, released: u64) -> (u64, Peek) {
        let cap = self.cap;
        loop {
            // Senders claim at most up to `released + cap`: the word a ring
            // or more past `released` is still last lap's (a consumed record
            // not zeroed yet, which in a ring of 2^27 bytes or more even
            // carries this position's tag). Never read it.
            if head - released >= cap {
                return (head, Peek::MustRelease);
            }
            let off = self.offset(head);
            // SYNC POINT: receiver. Pairs with the Release stores of the
            // header word in `commit` and `claim` (padding).
            let word = self.word(head).load(Ordering::Acquire);
            let bad = |what| {
                (
                    head,
                    Peek::Malformed(Malformed {
                        pos: head,
                        word,
                        what,
                    }),
                )
            };
            match parse_record(word, head) {
                Ok(Record::Committed(len)) => {
                    let len = len as u64;
                    if len > self.max_message {
                        return bad("claims more bytes than the channel's maximum message size");
                    }
                    if off as u64 + record_size(len) > cap {
                        return bad("claims bytes beyond the end of the lap");
                    }
                    // Senders can claim up to `released + cap` at most.
                    if head + record_size(len) - released > cap {
                        return bad("claims bytes beyond the room senders were given");
                    }
                    return (
                        head,
                        Peek::Message(Message {
                            pos: head,
                            len_kind: len | (u64::from(is_raw_record(word)) << 63),
                            offset: off + RECORD_HEADER as usize,
                        }),
                    );
                }
                Ok(Record::Empty) | Ok(Record::Claimed(_)) => return (head, Peek::NotYet),
                Ok(Record::Padding(len)) => {
                    if RECORD_HEADER + len as u64 != cap - off as u64 {
                        return bad("is padding that does not end the lap");
                    }
                    // Skip the rest of the lap; it is zeroed with the
                    // records around it when the receiver releases them.
                    // Senders can claim up to `released + cap` at most, so
                    // honest padding never ends beyond it.
                    if head + (cap - off as u64) - released > cap {
                        return bad("is padding that ends beyond the room senders were given");
                    }
                    head += cap - off as u64;
                }
                Err(what) => return bad(what),
            }
        }
    }

    /// Whether the header word at `head` holds something the receiver can
    /// act on: a commit, padding, or a malformed word. The receiver's poll
    /// while it waits: one load of one word, which is in the line the next
    /// sender writes, and nothing else.
    ///
    /// The word `ignore` (a malformed word already reported at `head`, see
    /// `Consumer::stray`; 0 for none) does not count: only a sender's own
    /// header replacing it does.
    #[inline]
    pub(crate) fn ready_at(&self, head: u64, ignore: u64) -> bool {
        // Relaxed: this only decides whether to look; `peek` loads the word
        // again with Acquire (pairing with the Release stores in `commit`
        // and `claim`) before anything is read behind it. In `wait::sleep`
        // the fences around the announcement order this load.
        let word = self.word(head).load(Ordering::Relaxed);
        word != ignore
            && !matches!(
                parse_record(word, head),
                Ok(Record::Empty) | Ok(Record::Claimed(_))
            )
    }

    /// After `peek` found nothing committed at `head`: whether nothing is
    /// claimed there either (`head == tail`), as opposed to a claim not yet
    /// committed. `tail` is the receiver's cached, checked view of the claim
    /// cursor; it is reloaded only when `head` has caught up with it.
    pub(crate) fn empty_at(
        &self,
        head: u64,
        released: u64,
        tail: &mut u64,
    ) -> Result<bool, Malformed> {
        if head < *tail {
            return Ok(false);
        }
        *tail = self.checked_tail(head, released)?;
        Ok(head == *tail)
    }

    /// Lends the payload of a message found by `peek` to `f`.
    #[inline]
    pub(crate) fn with_payload<R>(&self, msg: &Message, f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: `msg` proves that `peek` checked `offset + len` against
        // the lap, so the payload lies in the data area; the record is
        // committed and no sender writes it until the receiver releases it,
        // which it does not while `f` runs.
        unsafe { self.seg.data().read(msg.offset, msg.len() as usize, f) }
    }

    /// The payload of a message found by `peek`, borrowed from the ring.
    ///
    /// # Safety
    ///
    /// The receiver must release nothing of the record (see
    /// [`Ring::release`]) while the slice is used.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) unsafe fn payload(&self, msg: &Message) -> &[u8] {
        // SAFETY: `msg` proves that `peek` checked `offset + len` against
        // the lap; the record is committed and no sender writes it until
        // the receiver releases it, which the caller promises it does not
        // while the slice is used.
        unsafe { self.seg.data().bytes(msg.offset, msg.len() as usize) }
    }

    /// Records that everything before `next` was delivered to the
    /// receiver's caller (see `RxHot::delivered`). A store to the
    /// receiver's own line, which senders never read.
    #[inline]
    pub(crate) fn deliver(&self, next: u64) {
        // SYNC POINT: pairs with the Acquire load in `checked_cursors`.
        self.seg
            .header()
            .rx
            .delivered
            .store(next, Ordering::Release);
    }

    /// Publishes the consumer cursor to senders.
    fn publish_head(&self, head: u64) {
        // SYNC POINT: receiver. Pairs with the Acquire load of `head` in
        // `claim`: the zeroing before it is visible before the room is reused.
        self.seg.header().rx.head.store(head, Ordering::Release);
    }

    /// Gives `[from, to)` back to the senders: zeroes it (in lap-sized
    /// pieces) and publishes `to` as the consumer cursor. The range holds
    /// delivered records, padding, or dead senders' claims; it is at most a
    /// ring long.
    pub(crate) fn release(&self, from: u64, to: u64) {
        debug_assert!(to >= from && to - from <= self.cap && to & 7 == 0);
        let cap = self.cap;
        let mut pos = from;
        while pos < to {
            let off = pos & (cap - 1);
            let n = (to - pos).min(cap - off);
            // SAFETY: `off + n <= cap` (the `min` above); the bytes were
            // consumed by the receiver, the caller, and no sender claims
            // them before `publish_head` below.
            unsafe { self.seg.data().zero(off as usize, n as usize) };
            pos += n;
        }
        self.publish_head(to);
    }

    /// Decides what to do with a pending claim at `head` whose owner may be
    /// dead. `tail` was checked; `live_intent(p)` says whether a live
    /// sender's intent is `p` (the caller collected intents after loading
    /// `tail`, and only of senders whose lock is held). Returns the position
    /// up to which the bytes belong to dead claims, or `None` if a live
    /// sender owns `head` or the record got committed meanwhile.
    /// `ignore` (0 for none) is a malformed word already reported at
    /// `head` (see `Consumer::stray`): a sender that claimed `head` and died
    /// before writing its header left it there, so it reads as no header.
    pub(crate) fn dead_claim_end(
        &self,
        head: u64,
        tail: u64,
        ignore: u64,
        live_intent: impl Fn(u64) -> bool,
    ) -> Result<Option<u64>, Malformed> {
        if head >= tail || live_intent(head) {
            return Ok(None);
        }
        let cap = self.cap;
        let off = self.offset(head);
        // SYNC POINT: pairs with the Release stores in `commit`.
        let word = match self.word(head).load(Ordering::Acquire) {
            w if w == ignore => 0,
            w => w,
        };
        let bad = |what| Malformed {
            pos: head,
            word,
            what,
        };
        match parse_record(word, head).map_err(bad)? {
            Record::Committed(_) | Record::Padding(_) => Ok(None),
            Record::Claimed(len) => {
                let end = head + record_size(len as u64);
                if !self.claim_len_plausible(len as u64)
                    || off as u64 + record_size(len as u64) > cap
                    || end > tail
                {
                    return Err(bad(
                        "is in progress with a length beyond the channel's limits",
                    ));
                }
                Ok(Some(end))
            }
            Record::Empty => {
                // The owner died before writing its header, so it wrote no
                // payload either: everything up to the next header, the next
                // live claim, or the tail is zero and belongs to dead claims.
                let mut pos = head + RECORD_HEADER;
                while pos < tail {
                    if live_intent(pos) {
                        break;
                    }
                    let w = self.word(pos).load(Ordering::Acquire);
                    if w != 0 {
                        break;
                    }
                    pos += RECORD_HEADER;
                }
                Ok(Some(pos))
            }
        }
    }

    /// Whether a pending claim may be `len` bytes long: one message, or a
    /// block of them (see [`Block`]).
    #[inline]
    fn claim_len_plausible(&self, len: u64) -> bool {
        len <= self.max_message || record_size(len) <= block_limit(self.cap)
    }

    /// Where the receiver resumes after a malformed record at `head`: the
    /// first later position (up to the checked `tail`) that a
    /// live sender is claiming or that holds a well-formed header whose
    /// record fits.
    pub(crate) fn resync(&self, head: u64, tail: u64, live_intent: impl Fn(u64) -> bool) -> u64 {
        let cap = self.cap;
        let mut pos = head + RECORD_HEADER;
        while pos < tail {
            if live_intent(pos) {
                break;
            }
            let off = self.offset(pos);
            let w = self.word(pos).load(Ordering::Acquire);
            let plausible = match parse_record(w, pos) {
                Ok(Record::Claimed(l)) => {
                    self.claim_len_plausible(l as u64) && off as u64 + record_size(l as u64) <= cap
                }
                Ok(Record::Committed(l)) => {
                    (l as u64) <= self.max_message && off as u64 + record_size(l as u64) <= cap
                }
                Ok(Record::Padding(l)) => RECORD_HEADER + l as u64 == cap - off as u64,
                _ => false,
            };
            if plausible {
                break;
            }
            pos += RECORD_HEADER;
        }
        pos.min(tail)
    }
}

/// Whether a claim of `size` bytes at `tail` fits with the consumer at `head`.
#[inline]
fn fits(tail: u64, size: u64, head: u64, cap: u64) -> bool {
    // `head` comes from shared memory: a value ahead of `tail` is not trusted
    // to mean "room" (wrapping_sub makes it huge, so: full).
    tail.wrapping_sub(head)
        .checked_add(size)
        .is_some_and(|used| used <= cap)
}

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;
