//! The bytes of a segment: the `#[repr(C)]` header, the sender slot table,
//! the record header word, and the checks that turn untrusted numbers read
//! from shared memory into a trusted [`Geometry`].
//!
//! Nothing here holds a pointer: the segment stores only sizes, offsets and
//! monotonic byte positions, so it means the same in every process.
#![deny(unsafe_code)]

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// "SHMPSC" plus a format byte; the first word of every segment.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMPSC\x00\x01");
/// Bumped whenever the bytes of a segment change meaning, or the protocol
/// on them does (2: the slot reset bytes moved past the remover byte,
/// which slot 0's reset byte used to share; 3: the identity line, whose
/// fingerprint may be of the message's serde format, and a sender that
/// joins wakes a waiting receiver; 4: the raw record kind, which a build
/// of version 3 would take for a malformed word).
pub(crate) const LAYOUT_VERSION: u32 = 4;
/// Written last by the creator (Release), so a reader that sees it (Acquire)
/// sees a fully initialised header.
pub(crate) const STATE_READY: u32 = 0x5244_5952; // "RYDR"

/// The receiver is attached (or died without dropping: ask its lock).
pub(crate) const RX_ALIVE: u32 = 1;
/// The receiver was dropped: senders fail at once.
pub(crate) const RX_DROPPED: u32 = 2;

/// `Slot::intent` when the sender is not claiming.
pub(crate) const NO_INTENT: u64 = u64::MAX;

/// Distance between hot words: two cache lines, so that adjacent-line
/// prefetching does not make them share.
pub(crate) const LINE: usize = 128;
/// Bytes of the record header word; records start 8-aligned.
pub(crate) const RECORD_HEADER: u64 = 8;

/// Smallest data area accepted.
pub(crate) const MIN_CAPACITY: u64 = 4096;
/// Largest data area accepted (1 TiB): larger requests are refused up front.
pub(crate) const MAX_CAPACITY: u64 = 1 << 40;
/// Largest number of sender slots.
pub(crate) const MAX_SENDERS: u32 = 4096;
const _: () = assert!(MAX_SENDERS.is_multiple_of(64));
/// Positions start at 0 and grow by the bytes sent: no channel reaches
/// 2^63 (centuries at memory bandwidth). A cursor read from shared memory
/// at or past it is corrupt, and staying below it keeps the arithmetic on
/// cursors from overflowing.
pub(crate) const MAX_POSITION: u64 = 1 << 63;
/// Largest payload of one record (the length field is 32 bits).
pub(crate) const MAX_MESSAGE: u64 = (u32::MAX as u64) & !7;

/// Aligns a value to two cache lines.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub(crate) struct Line<T>(pub(crate) T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Written once by the creator before `state` becomes ready; read-only after.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Config {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) state: AtomicU32,
    pub(crate) capacity: AtomicU64,
    pub(crate) max_message: AtomicU64,
    pub(crate) max_senders: AtomicU32,
    pub(crate) creator_pid: AtomicU32,
    pub(crate) fingerprint: AtomicU64,
    pub(crate) segment_len: AtomicU64,
    /// `FEATURE_*` bits; may change at a takeover.
    pub(crate) features: AtomicU32,
    pub(crate) reserved: AtomicU32,
}

/// What [`Identity::kind`] says `Config::fingerprint` is of: the message
/// type's name and the codec.
pub(crate) const IDENTITY_NAME: u32 = 1;
/// ... the message type's serde format (`shape`) and the codec.
pub(crate) const IDENTITY_SHAPE: u32 = 2;
/// ... an explicit schema id (`Builder::schema`) and the codec.
pub(crate) const IDENTITY_SCHEMA: u32 = 3;

/// What the channel carries, written by the receiver that created it (or
/// took it over) before `state` becomes ready; read-only after. Read at
/// open from a private copy of the header, like [`Config`].
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Identity {
    /// One of the `IDENTITY_*` values (anything else: unknown).
    pub(crate) kind: AtomicU32,
    pub(crate) reserved: AtomicU32,
    /// The fingerprint of the receiver's type name and codec, whatever
    /// `kind` is: what a sender whose type cannot be traced compares.
    pub(crate) name_fingerprint: AtomicU64,
    /// What the channel carries, readable (see [`MessageType::label`]),
    /// for error messages: UTF-8, cut to fit, NUL-padded. Display only
    /// (anyone may write it).
    pub(crate) label: [AtomicU64; LABEL_WORDS],
}

/// Words of [`Identity::label`] (the rest of two lines).
pub(crate) const LABEL_WORDS: usize = 30;

impl Identity {
    /// Writes `label`, cut at a character boundary to fit.
    pub(crate) fn set_label(&self, label: &str) {
        let mut bytes = [0u8; 8 * LABEL_WORDS];
        let mut end = label.len().min(bytes.len());
        while !label.is_char_boundary(end) {
            end -= 1;
        }
        bytes[..end].copy_from_slice(&label.as_bytes()[..end]);
        for (w, chunk) in self.label.iter().zip(bytes.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            w.store(u64::from_ne_bytes(a), Ordering::Relaxed);
        }
    }

    /// The label, if one was written: up to the first NUL, invalid UTF-8
    /// replaced, control characters escaped (it is untrusted).
    pub(crate) fn label(&self) -> Option<String> {
        let bytes: Vec<u8> = self
            .label
            .iter()
            .flat_map(|w| w.load(Ordering::Relaxed).to_ne_bytes())
            .take_while(|&b| b != 0)
            .collect();
        (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).escape_debug().to_string())
    }
}

/// The receiver wakes up senders' commits with an asymmetric barrier:
/// before it sleeps it runs `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`,
/// so senders registered for it need only a compiler fence between their
/// commit and their look at the receiver's announcement, instead of a full
/// fence on every message. Set by a receiver whose kernel allows it.
pub(crate) const FEATURE_ASYMMETRIC_WAKE: u32 = 1;

/// Written by the receiver only.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RxHot {
    /// Consumer cursor as published to senders: every byte in `[head, tail)`
    /// is claimed; every byte from the end of the last claim to
    /// `head + capacity` is zero. The receiver zeroes and publishes in
    /// batches, so it may have delivered past it (see `delivered`).
    pub(crate) head: AtomicU64,
    /// End of the last record returned to the receiver's caller. Records in
    /// `[head, delivered)` were delivered but not yet zeroed: a receiver that
    /// takes over from a dead one starts here, so nothing is delivered twice.
    pub(crate) delivered: AtomicU64,
    pub(crate) received_messages: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    /// Records that were committed but could not be decoded or were malformed.
    pub(crate) invalid_messages: AtomicU64,
    /// Bytes skipped because their writer died before committing.
    pub(crate) recovered_bytes: AtomicU64,
}

/// The receiver's futex word, and the position it announced it sleeps for.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct DataWake {
    /// Futex word: bumped by every wake-up.
    pub(crate) seq: AtomicU32,
    pub(crate) reserved: AtomicU32,
    /// `1 + position` of the record the receiver sleeps waiting for, or 0.
    /// The sender that commits exactly that record wakes it: no wake-up for
    /// records the receiver is not waiting on.
    pub(crate) waiting_at: AtomicU64,
}

/// Endpoint bookkeeping; written rarely.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// `RX_ALIVE` or `RX_DROPPED`.
    pub(crate) rx_state: AtomicU32,
    /// For display only; liveness is the receiver's lock.
    pub(crate) rx_pid: AtomicU32,
    /// How many times a receiver took this segment over from a dead one.
    pub(crate) takeovers: AtomicU32,
    /// Futex word senders sleep on while the ring is full.
    pub(crate) space_seq: AtomicU32,
    /// Senders found dead and reaped by the receiver so far (wrapping): a
    /// sender killed on a busy channel is reaped within a tick, before
    /// `shmpsc ls` can show it dead. Zero in segments of earlier builds
    /// (the line's padding).
    pub(crate) sender_deaths: AtomicU32,
}

/// Words of a slot bitmap: one bit per possible sender slot.
pub(crate) const BITMAP_WORDS: usize = MAX_SENDERS as usize / 64;

/// One bit per sender slot. A single atomic RMW flips a slot's bit, so a
/// process that dies between two instructions never leaves a count wrong.
pub(crate) type Bitmap = [AtomicU64; BITMAP_WORDS];

/// The segment header. Lives at offset 0.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) config: Line<Config>,
    /// Producers' claim cursor (monotonic byte position).
    pub(crate) tail: Line<AtomicU64>,
    pub(crate) rx: Line<RxHot>,
    /// Receiver sleeps here waiting for data.
    pub(crate) data: Line<DataWake>,
    pub(crate) control: Line<Control>,
    /// Bit `i` set: slot `i` is owned by a sender endpoint (alive, or dead
    /// and not yet reaped). Set and cleared only by the holder of the slot's lock.
    pub(crate) active: Line<Bitmap>,
    /// Bit `i` set: the sender of slot `i` announced that it sleeps on
    /// `control.space_seq` waiting for room.
    pub(crate) sleepers: Line<Bitmap>,
    /// What the channel carries.
    pub(crate) identity: Line<Identity>,
}

/// One sender endpoint's slot. Slot `i` is owned by whoever holds the
/// open-file-description lock on byte `1 + i` of the segment file.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// For display only.
    pub(crate) pid: AtomicU32,
    /// Messages this slot's senders dropped because the ring was full
    /// (logging sinks count theirs here, for `shmpsc stat` and `ls`);
    /// cumulative over owners, wrapping. (Reserved and zero before.)
    pub(crate) dropped: AtomicU32,
    /// Position this sender is claiming (set before the CAS on `tail`,
    /// cleared after commit), or `NO_INTENT`.
    pub(crate) intent: AtomicU64,
    /// Messages committed through this slot (cumulative over owners).
    pub(crate) sent_messages: AtomicU64,
    /// Payload bytes committed through this slot (cumulative over owners).
    pub(crate) sent_bytes: AtomicU64,
    /// How the slot's sender was handed over by `Sender::pass_to`: a
    /// [`Handover`] word (see `peers` for its states and who changes them).
    pub(crate) handover: AtomicU64,
    /// Start time of the spawned process named in `handover` (clock ticks
    /// after boot, field 22 of `/proc/<pid>/stat`), or 0 if unknown.
    pub(crate) spawn_start: AtomicU64,
    /// Namespaces in which that pid and start time hold (`spawn_ns_key`),
    /// or 0 if unknown. Published after `spawn_start` (Release).
    pub(crate) spawn_ns: AtomicU64,
}

/// `Handover::kind`: attached by `Sender::open` (or `Receiver::sender`);
/// also any kind this build does not know.
pub(crate) const HANDOVER_NONE: u8 = 0;
/// Attached by `Sender::pass_to`; no process was spawned with it yet.
pub(crate) const HANDOVER_PASSED: u8 = 1;
/// A process (`pid`) was spawned with it and has not adopted it yet.
pub(crate) const HANDOVER_SPAWNED: u8 = 2;
/// The spawned process (`pid`) adopted it.
pub(crate) const HANDOVER_ADOPTED: u8 = 3;
/// The spawned process (`pid`) is gone and the receiver reaped the slot,
/// although another process (a stray) still holds the slot's lock.
pub(crate) const HANDOVER_RETIRED: u8 = 4;

/// The hand-over state of a slot, packed in one word so that one
/// compare-and-swap decides each transition: kind in bits 56..64, the
/// slot's generation (one more for each new owner) in bits 32..56, a pid in
/// bits 0..32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handover {
    pub(crate) kind: u8,
    pub(crate) generation: u32,
    pub(crate) pid: u32,
}

impl Handover {
    /// Generations wrap at 24 bits.
    const GENERATION_MASK: u32 = (1 << 24) - 1;

    pub(crate) fn word(self) -> u64 {
        (u64::from(self.kind) << 56)
            | (u64::from(self.generation & Self::GENERATION_MASK) << 32)
            | u64::from(self.pid)
    }

    /// Any word parses: the kind is checked by whoever acts on it.
    pub(crate) fn parse(word: u64) -> Handover {
        Handover {
            kind: (word >> 56) as u8,
            generation: (word >> 32) as u32 & Self::GENERATION_MASK,
            pid: word as u32,
        }
    }

    /// The state a new owner of the slot writes: the next generation.
    pub(crate) fn next_owner(self, kind: u8) -> Handover {
        Handover {
            kind,
            generation: self.generation.wrapping_add(1) & Self::GENERATION_MASK,
            pid: 0,
        }
    }
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Header>() == 7 * LINE + 2 * 8 * BITMAP_WORDS);
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Identity>() == 2 * LINE);
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Slot>() == LINE);
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Config>() <= LINE);

#[cfg(loom)]
impl Header {
    /// A zeroed header on the heap, for model checking.
    pub(crate) fn new_zeroed() -> Header {
        Header {
            config: Line::default(),
            tail: Line::default(),
            rx: Line::default(),
            data: Line::default(),
            control: Line::default(),
            active: Line(std::array::from_fn(|_| AtomicU64::new(0))),
            sleepers: Line(std::array::from_fn(|_| AtomicU64::new(0))),
            identity: Line::default(),
        }
    }
}

/// Byte of the segment file whose lock says "the receiver is alive".
pub(crate) const RECEIVER_LOCK_BYTE: u64 = 0;

/// Byte of the segment file that only a remover locks (with every endpoint
/// byte, as one range, while it checks and unlinks an unused segment): a
/// creator refused the receiver lock tells a remover from a receiver by it,
/// and waits for the remover instead of reporting `AlreadyExists`.
pub(crate) const REMOVER_LOCK_BYTE: u64 = 1 + MAX_SENDERS as u64;

/// Byte of the segment file whose lock says "slot `i` is owned".
pub(crate) const fn slot_lock_byte(i: usize) -> u64 {
    1 + i as u64
}

/// First slot reset byte: past every endpoint's byte and the remover byte.
const FIRST_RESET_BYTE: u64 = REMOVER_LOCK_BYTE + 1;

/// Byte of the segment file locked (briefly) by whoever resets slot `i`
/// for a new owner or reaps it without holding its lock (see
/// `peers::reap_dead`): past every endpoint's byte and the remover byte,
/// so that resetting a slot never looks like a removal to a sender.
pub(crate) const fn slot_reset_byte(i: usize) -> u64 {
    FIRST_RESET_BYTE + i as u64
}

// The lock bytes, in file order: receiver (0), slots (1..=MAX_SENDERS),
// remover, slot resets. Each range must stay clear of the others: a shared
// byte makes one protocol's lock read as another's (a sender taking slot 0
// once looked like a remover to other senders).
const _: () = assert!(RECEIVER_LOCK_BYTE < slot_lock_byte(0));
const _: () = assert!(slot_lock_byte(MAX_SENDERS as usize - 1) < REMOVER_LOCK_BYTE);
const _: () = assert!(REMOVER_LOCK_BYTE < slot_reset_byte(0));
const _: () = assert!(slot_reset_byte(0) < slot_reset_byte(MAX_SENDERS as usize - 1));

/// Trusted sizes and offsets of a segment, derived from a few numbers that
/// were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) capacity: u64,
    pub(crate) max_message: u64,
    pub(crate) max_senders: u32,
    pub(crate) slots_offset: usize,
    pub(crate) data_offset: usize,
    pub(crate) len: usize,
}

impl Geometry {
    /// Checks the numbers and lays the segment out. The error says which
    /// number is wrong and what range it must be in.
    pub(crate) fn new(capacity: u64, max_message: u64, max_senders: u32) -> Result<Self, String> {
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(format!(
                "capacity {capacity} must be a power of two between {MIN_CAPACITY} and {MAX_CAPACITY} bytes"
            ));
        }
        let max_fit = (capacity - RECORD_HEADER).min(MAX_MESSAGE);
        if max_message == 0 || max_message > max_fit {
            return Err(format!(
                "maximum message size {max_message} must be between 1 and {max_fit} bytes for a capacity of {capacity} bytes"
            ));
        }
        if max_senders == 0 || max_senders > MAX_SENDERS {
            return Err(format!(
                "maximum number of senders {max_senders} must be between 1 and {MAX_SENDERS}"
            ));
        }
        let slots_offset = std::mem::size_of::<Header>();
        let data_offset = slots_offset + max_senders as usize * std::mem::size_of::<Slot>();
        let len = (data_offset as u64)
            .checked_add(capacity)
            .filter(|&l| l <= isize::MAX as u64)
            .ok_or_else(|| format!("capacity {capacity} does not fit in this address space"))?
            as usize;
        Ok(Geometry {
            capacity,
            max_message,
            max_senders,
            slots_offset,
            data_offset,
            len,
        })
    }

    /// Reads the configuration words of a header (which may hold any bytes)
    /// and returns the geometry they describe, if it is consistent.
    pub(crate) fn from_config(c: &Config) -> Result<Self, String> {
        let g = Geometry::new(
            c.capacity.load(Ordering::Relaxed),
            c.max_message.load(Ordering::Relaxed),
            c.max_senders.load(Ordering::Relaxed),
        )?;
        let stored = c.segment_len.load(Ordering::Relaxed);
        if stored != g.len as u64 {
            return Err(format!(
                "header says the segment is {stored} bytes but its geometry needs {}",
                g.len
            ));
        }
        Ok(g)
    }
}

/// What a record header word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// All zero: nothing written here yet.
    Empty,
    /// Claimed, being written; `len` payload bytes follow when done.
    Claimed(u32),
    /// Committed message of `len` payload bytes.
    Committed(u32),
    /// Committed filler of `len` bytes after the header; skip it.
    Padding(u32),
}

const KIND_CLAIMED: u64 = 0xC1;
const KIND_COMMITTED: u64 = 0xA5;
const KIND_PADDING: u64 = 0x9D;
/// A committed message whose bytes were sent raw (`send_bytes`), not
/// encoded by the channel's codec: a [`Record::Committed`] to the ring,
/// told apart by [`is_raw_record`] so that a typed receive reports it
/// instead of decoding it by accident.
const KIND_RAW: u64 = 0xB3;

fn tag(pos: u64) -> u64 {
    (pos >> 3) & 0xFF_FFFF
}

/// Builds the header word of a record that starts at `pos`. The word carries
/// the kind, the payload length and a tag of the position, so a stray or
/// stale word is recognised as malformed instead of trusted.
#[inline]
pub(crate) fn record_word(r: Record, pos: u64) -> u64 {
    let (kind, len) = match r {
        Record::Empty => return 0,
        Record::Claimed(l) => (KIND_CLAIMED, l),
        Record::Committed(l) => (KIND_COMMITTED, l),
        Record::Padding(l) => (KIND_PADDING, l),
    };
    (tag(pos) << 40) | (kind << 32) | len as u64
}

/// The committed header word of a record at `pos` whose `len` bytes were
/// sent raw (see `KIND_RAW`).
#[inline]
pub(crate) fn raw_record_word(len: u32, pos: u64) -> u64 {
    (tag(pos) << 40) | (KIND_RAW << 32) | len as u64
}

/// The committed header word of a message of `len` bytes at `pos`, raw or
/// encoded.
#[inline]
pub(crate) fn committed_word(len: u32, pos: u64, raw: bool) -> u64 {
    if raw {
        raw_record_word(len, pos)
    } else {
        record_word(Record::Committed(len), pos)
    }
}

/// Whether a header word that [`parse_record`] parsed as committed is of
/// a raw record.
#[inline]
pub(crate) fn is_raw_record(word: u64) -> bool {
    (word >> 32) & 0xFF == KIND_RAW
}

/// Parses a header word read at `pos`. `Err` says what is wrong with it.
#[inline]
pub(crate) fn parse_record(word: u64, pos: u64) -> Result<Record, &'static str> {
    if word == 0 {
        return Ok(Record::Empty);
    }
    let len = word as u32;
    if word >> 40 != tag(pos) {
        return Err("does not carry this position's tag");
    }
    match (word >> 32) & 0xFF {
        KIND_CLAIMED => Ok(Record::Claimed(len)),
        KIND_COMMITTED | KIND_RAW => Ok(Record::Committed(len)),
        KIND_PADDING => Ok(Record::Padding(len)),
        _ => Err("has an unknown kind"),
    }
}

/// Bytes a record of `len` payload bytes occupies: header plus payload,
/// rounded up to 8.
#[inline]
pub(crate) fn record_size(len: u64) -> u64 {
    RECORD_HEADER + ((len + 7) & !7)
}

/// What a channel carries: a message type and the codec that encodes it.
/// The type is known by its serde format (its [`shape`](MessageType::shape),
/// when it could be traced), by an explicit schema id (`Builder::schema`),
/// or else by its name. The segment keeps the receiver's
/// [`fingerprint`](MessageType::fingerprint), what it is of, the
/// fingerprint of its name, and a readable [`label`](MessageType::label)
/// for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageType {
    /// The type's name, as `std::any::type_name` spells it.
    pub(crate) name: &'static str,
    /// The codec's name.
    pub(crate) codec: &'static str,
    /// The schema id that stands for the type, if one was given.
    pub(crate) schema: Option<&'static str>,
    /// The type's serde format, if it was traced (see `shape`).
    pub(crate) shape: Option<ShapeId>,
}

/// A traced serde format, as a message type carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShapeId {
    /// The fingerprint of the format's canonical description (with a
    /// `"shape"` prefix, apart from names and schema ids).
    pub(crate) fingerprint: u64,
    /// The format, readable: `Rec { level: u8, msg: str }`.
    pub(crate) label: &'static str,
}

impl MessageType {
    /// What [`fingerprint`](MessageType::fingerprint) is of: one of the
    /// `IDENTITY_*` values.
    pub(crate) fn kind(&self) -> u32 {
        match (self.schema, self.shape) {
            (Some(_), _) => IDENTITY_SCHEMA,
            (None, Some(_)) => IDENTITY_SHAPE,
            (None, None) => IDENTITY_NAME,
        }
    }

    /// The fingerprint a receiver writes into the segment: of the schema id
    /// if there is one, else of the serde format if it was traced, else of
    /// the type's name; and of the codec.
    pub(crate) fn fingerprint(&self) -> u64 {
        match (self.schema, self.shape) {
            (Some(id), _) => fingerprint(&["schema", id, self.codec]),
            (None, Some(shape)) => fingerprint_from(shape.fingerprint, &[self.codec]),
            (None, None) => self.name_fingerprint(),
        }
    }

    /// The fingerprint of the type's name and the codec.
    pub(crate) fn name_fingerprint(&self) -> u64 {
        fingerprint(&[self.name, self.codec])
    }

    /// Whether an endpoint of this type may use a channel whose receiver
    /// wrote identity `kind`, `found` and `name_found` (see [`Identity`]).
    /// A schema id on either side must be on both, and equal. Otherwise
    /// the serde formats decide when both sides could trace theirs (the
    /// names then do not matter: two crates' copies of one message agree);
    /// the names decide when either could not (a sender of a type that has
    /// no `Deserialize`, or a format `deserialize_any` hides).
    pub(crate) fn accepts(&self, kind: u32, found: u64, name_found: u64) -> bool {
        if self.schema.is_some() || kind == IDENTITY_SCHEMA {
            return self.schema.is_some() && found == self.fingerprint();
        }
        if self.shape.is_some() && kind == IDENTITY_SHAPE {
            found == self.fingerprint()
        } else {
            name_found == self.name_fingerprint()
        }
    }

    /// What the channel carries, readable: its format and the type's name,
    /// `` `Rec { n: u32 }` (`app::Rec`, postcard) ``;
    /// `` `app::Rec` (postcard) `` (not traced); or
    /// `` schema `logs-v2` (postcard) ``.
    pub(crate) fn label(&self) -> String {
        match (self.schema, self.shape) {
            (Some(id), _) => format!("schema `{id}` ({})", self.codec),
            (None, Some(shape)) if shape.label == self.name => {
                format!("`{}` ({})", shape.label, self.codec)
            }
            (None, Some(shape)) => {
                format!("`{}` (`{}`, {})", shape.label, self.name, self.codec)
            }
            (None, None) => format!("`{}` ({})", self.name, self.codec),
        }
    }
}

/// 64-bit FNV-1a, for the message type and codec fingerprint.
pub(crate) fn fingerprint(parts: &[&str]) -> u64 {
    fingerprint_from(0xcbf2_9ce4_8422_2325, parts)
}

/// [`fingerprint`] going on from the state `h`: of what `h` is the
/// fingerprint of, followed by `parts`.
pub(crate) fn fingerprint_from(mut h: u64, parts: &[&str]) -> u64 {
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xFF)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Messages sent and not received: the senders' statistics (every slot
/// keeps its counters across owners) minus the receiver's. Approximate
/// while endpoints are active. Statistics live in shared memory: a
/// nonsense value gives a nonsense count, never a failure. (What a removal
/// would lose is read from the ring instead: `Segment::committed_records`.)
pub(crate) fn pending_messages(header: &Header, slots: &[Slot]) -> usize {
    let sent = slots.iter().fold(0u64, |m, s| {
        m.wrapping_add(s.sent_messages.load(Ordering::Relaxed))
    });
    let received = header.rx.received_messages.load(Ordering::Relaxed);
    usize::try_from(sent.saturating_sub(received)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::{Handover, HANDOVER_ADOPTED, HANDOVER_PASSED};

    #[test]
    fn handover_words_round_trip_and_generations_wrap() {
        let h = Handover {
            kind: HANDOVER_ADOPTED,
            generation: (1 << 24) - 1,
            pid: u32::MAX,
        };
        assert_eq!(Handover::parse(h.word()), h);
        let next = h.next_owner(HANDOVER_PASSED);
        assert_eq!(
            (next.kind, next.generation, next.pid),
            (HANDOVER_PASSED, 0, 0)
        );
        assert_eq!(Handover::parse(u64::MAX).generation, (1 << 24) - 1);
    }

    use super::*;

    #[test]
    fn record_words_round_trip() {
        for pos in [0u64, 8, 4096, 1 << 40, !7] {
            for r in [
                Record::Claimed(5),
                Record::Committed(0),
                Record::Padding(4088),
            ] {
                assert_eq!(parse_record(record_word(r, pos), pos), Ok(r));
            }
            assert!(
                parse_record(record_word(Record::Committed(1), pos), pos.wrapping_add(8)).is_err()
            );
        }
        assert_eq!(parse_record(0, 64), Ok(Record::Empty));
        assert!(parse_record(0x0000_0012_0000_0001, 0).is_err());
    }

    #[test]
    fn raw_records_are_committed_records_marked_raw() {
        for pos in [0u64, 8, 4096, 1 << 40, !7] {
            for len in [0u32, 1, 4088, MAX_MESSAGE as u32] {
                let raw = committed_word(len, pos, true);
                let encoded = committed_word(len, pos, false);
                assert_eq!(parse_record(raw, pos), Ok(Record::Committed(len)));
                assert_eq!(parse_record(encoded, pos), Ok(Record::Committed(len)));
                assert!(is_raw_record(raw) && !is_raw_record(encoded));
                assert_eq!(encoded, record_word(Record::Committed(len), pos));
                // The position's tag is checked for raw records too.
                assert!(parse_record(raw, pos.wrapping_add(8)).is_err());
            }
            for r in [Record::Claimed(5), Record::Padding(8)] {
                assert!(!is_raw_record(record_word(r, pos)));
            }
        }
    }

    #[test]
    fn geometry_rejects_bad_numbers() {
        assert!(Geometry::new(4096, 64, 4).is_ok());
        assert!(Geometry::new(4095, 64, 4).is_err());
        assert!(Geometry::new(1 << 41, 64, 4).is_err());
        assert!(Geometry::new(4096, 4096, 4).is_err());
        assert!(Geometry::new(4096, 0, 4).is_err());
        assert!(Geometry::new(4096, 64, 0).is_err());
        assert!(Geometry::new(4096, 64, MAX_SENDERS + 1).is_err());
        let g = Geometry::new(1 << 20, 1 << 10, 8).unwrap();
        assert_eq!(g.data_offset % LINE, 0);
        assert_eq!(g.len, g.data_offset + (1 << 20));
    }

    #[test]
    fn record_sizes_are_aligned() {
        assert_eq!(record_size(0), 8);
        assert_eq!(record_size(1), 16);
        assert_eq!(record_size(8), 16);
        assert_eq!(record_size(9), 24);
    }
}
