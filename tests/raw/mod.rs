//! A channel's segment as a misbehaving process sees it: the byte layout of
//! src/layout.rs, restated here on purpose (a test must not trust the code
//! it checks), and a writable mapping of `/dev/shm/shmpsc.<name>`.
//!
//! Layout: the `Header` at offset 0 (five 128-byte lines: config, `tail`,
//! the receiver's words, the data futex, control; then the `active` and
//! `sleepers` bitmaps of 64 words each; then the identity, two lines), the
//! slot table (128 bytes a slot), then the data area, `capacity` bytes.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use memmap2::MmapRaw;

/// Distance between the header's hot lines.
pub const LINE: usize = 128;
/// `size_of::<Header>()`.
pub const HEADER: usize = 5 * LINE + 2 * 8 * 64 + 2 * LINE;
/// Bytes of one sender slot.
pub const SLOT: usize = 128;

// The configuration line.
pub const MAGIC: usize = 0;
pub const VERSION: usize = 8;
pub const STATE: usize = 12;
pub const CAPACITY: usize = 16;
pub const MAX_MESSAGE: usize = 24;
pub const MAX_SENDERS: usize = 32;
pub const FINGERPRINT: usize = 40;
pub const SEGMENT_LEN: usize = 48;
// The hot words.
/// The producers' claim cursor.
pub const TAIL: usize = LINE;
/// The consumer cursor as published by the receiver.
pub const HEAD: usize = 2 * LINE;
/// `RxHot::delivered`: end of the last record returned to the receiver's caller.
pub const DELIVERED: usize = 2 * LINE + 8;
pub const INVALID_MESSAGES: usize = 2 * LINE + 32;
/// The receiver's futex word, and `1 + position` it sleeps waiting for.
pub const DATA_SEQ: usize = 3 * LINE;
pub const DATA_WAITING_AT: usize = 3 * LINE + 8;
/// `RX_ALIVE` (1) or `RX_DROPPED` (2).
pub const RX_STATE: usize = 4 * LINE;
/// Bit `i`: slot `i` is owned.
pub const ACTIVE: usize = 5 * LINE;
/// Bit `i`: the sender of slot `i` sleeps waiting for room.
pub const SLEEPERS: usize = 5 * LINE + 8 * 64;
/// `Header::identity`: what the channel carries (two lines).
pub const IDENTITY: usize = 5 * LINE + 2 * 8 * 64;
/// Offset of `Slot::intent` in a slot.
pub const SLOT_INTENT: usize = 8;

/// Record kinds (bits 32..40 of a record header word).
pub const CLAIMED: u8 = 0xC1;
pub const COMMITTED: u8 = 0xA5;
pub const PADDING: u8 = 0x9D;
/// A kind that no record has (the receiver must call it unknown).
pub const UNKNOWN_KIND: u8 = 0x7E;

/// `shmpsc::DEFAULT_MAX_SENDERS`.
pub const DEFAULT_SENDERS: u32 = 64;

/// Start of the data area for `max_senders` slots.
pub fn data_offset(max_senders: u32) -> usize {
    HEADER + max_senders as usize * SLOT
}

/// Length of a segment.
pub fn segment_len(capacity: u64, max_senders: u32) -> usize {
    data_offset(max_senders) + capacity as usize
}

/// A record header word: a 24-bit tag of the position, the kind, the length.
pub fn record_word(kind: u8, len: u32, pos: u64) -> u64 {
    (((pos >> 3) & 0xFF_FFFF) << 40) | ((kind as u64) << 32) | len as u64
}

/// Bytes a record of `len` payload bytes occupies.
pub fn record_size(len: u64) -> u64 {
    8 + ((len + 7) & !7)
}

/// The path of a channel's shared-memory object.
pub fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmpsc.{name}")
}

/// A writable mapping of a whole segment. Every access is atomic: the
/// channel's processes use the same memory at the same time.
pub struct Raw {
    map: MmapRaw,
    /// Start of the data area.
    pub data: usize,
    /// Size of the data area.
    pub capacity: u64,
}

impl Raw {
    /// Maps the segment of channel `name`, reading its geometry from its
    /// (still intact) header.
    pub fn open(name: &str) -> Raw {
        Raw::try_open(name, None).unwrap_or_else(|| panic!("mapping {}", shm_path(name)))
    }

    /// Maps the segment of channel `name` if it exists and, when `expect`
    /// gives its geometry `(capacity, max_senders)`, has that size (a
    /// segment being created may still be empty).
    pub fn try_open(name: &str, expect: Option<(u64, u32)>) -> Option<Raw> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(shm_path(name))
            .ok()?;
        let len = file.metadata().ok()?.len() as usize;
        if len < HEADER {
            return None;
        }
        if let Some((cap, senders)) = expect {
            if len != segment_len(cap, senders) {
                return None;
            }
        }
        let map = MmapRaw::map_raw(&file).ok()?;
        let mut raw = Raw {
            map,
            data: 0,
            capacity: 0,
        };
        let (capacity, senders) =
            expect.unwrap_or_else(|| (raw.u64(CAPACITY), raw.u32(MAX_SENDERS)));
        raw.capacity = capacity;
        raw.data = data_offset(senders);
        assert_eq!(raw.len(), segment_len(capacity, senders), "segment size");
        Some(raw)
    }

    /// Length of the mapping.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn at<A>(&self, off: usize, size: usize) -> &A {
        assert!(
            off.is_multiple_of(size) && off + size <= self.len(),
            "offset {off}"
        );
        // SAFETY: in bounds and aligned (checked above; the mapping is page
        // aligned); atomics may alias memory that other processes change.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const A) }
    }

    pub fn u64(&self, off: usize) -> u64 {
        self.at::<AtomicU64>(off, 8).load(Ordering::SeqCst)
    }

    pub fn set_u64(&self, off: usize, v: u64) {
        self.at::<AtomicU64>(off, 8).store(v, Ordering::SeqCst)
    }

    pub fn u32(&self, off: usize) -> u32 {
        self.at::<AtomicU32>(off, 4).load(Ordering::SeqCst)
    }

    pub fn set_u32(&self, off: usize, v: u32) {
        self.at::<AtomicU32>(off, 4).store(v, Ordering::SeqCst)
    }

    pub fn set_u8(&self, off: usize, v: u8) {
        self.at::<AtomicU8>(off, 1).store(v, Ordering::SeqCst)
    }

    /// Offset in the mapping of the byte at ring position `pos`.
    pub fn data_at(&self, pos: u64) -> usize {
        self.data + (pos & (self.capacity - 1)) as usize
    }

    /// The record header word at ring position `pos`.
    pub fn record(&self, pos: u64) -> u64 {
        self.u64(self.data_at(pos))
    }

    /// Overwrites the record header word at ring position `pos`.
    pub fn set_record(&self, pos: u64, word: u64) {
        self.set_u64(self.data_at(pos), word)
    }
}
