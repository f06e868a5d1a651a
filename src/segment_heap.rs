//! The stand-in for `segment.rs` when the crate is built with `--cfg loom`:
//! the same header, slot table and data area, on the heap, made of loom's
//! atomics, so that loom can explore every interleaving of the ring
//! protocol as the real endpoints run it. Clones share one segment, as the
//! mappings of one object in several processes do.
//! Its `DataArea` methods are `unsafe fn`s only to share the mapped
//! area's signatures and contracts; they contain no unsafe code.

use std::sync::Arc;

use crate::layout::{Geometry, Header, Slot, NO_INTENT};
use crate::sync::{AtomicU64, Ordering};

/// A segment on the heap.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    heap: Arc<Heap>,
}

#[derive(Debug)]
struct Heap {
    header: Header,
    slots: Box<[Slot]>,
    words: Box<[AtomicU64]>,
    geo: Geometry,
}

impl Segment {
    /// A zeroed segment with a data area of `capacity` bytes (a power of
    /// two, at least 16; loom models need tiny rings, below the 4 KiB that
    /// real segments require) and `max_senders` slots, with no intent.
    pub(crate) fn heap(capacity: u64, max_message: u64, max_senders: u32) -> Segment {
        assert!(capacity.is_power_of_two() && capacity >= 16);
        assert!(max_message <= capacity - 8 && (1..=64).contains(&max_senders));
        let slots: Box<[Slot]> = (0..max_senders).map(|_| Slot::default()).collect();
        for s in slots.iter() {
            s.intent.store(NO_INTENT, Ordering::Relaxed);
        }
        Segment {
            heap: Arc::new(Heap {
                header: Header::new_zeroed(),
                slots,
                words: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
                geo: Geometry {
                    capacity,
                    max_message,
                    max_senders,
                    slots_offset: 0,
                    data_offset: 0,
                    len: 0,
                },
            }),
        }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.heap.header
    }

    pub(crate) fn slots(&self) -> &[Slot] {
        &self.heap.slots
    }

    pub(crate) fn geometry(&self) -> &Geometry {
        &self.heap.geo
    }

    /// The endpoint's open file description, for `sys_model`'s lock calls.
    pub(crate) fn file(&self) -> &() {
        &()
    }

    pub(crate) fn name(&self) -> &str {
        "heap"
    }

    /// The model's receiver lock: held by a live receiver (as every lock in
    /// `sys_model`).
    pub(crate) fn receiver_locked(_file: &()) -> bool {
        true
    }

    /// The name of a heap segment is nobody's to remove.
    pub(crate) fn unlink(&self) {}

    /// The data area, as words.
    pub(crate) fn data(&self) -> DataArea<'_> {
        DataArea {
            words: &self.heap.words,
        }
    }
}

/// The data area of a heap segment: the same `unsafe fn`s as the mapped
/// one (segment.rs), with the same contracts, over loom's words. Payload
/// bytes are stored and loaded a word at a time, Relaxed, so that loom sees
/// every access (a payload word read before its commit is visible shows
/// as a wrong message). Out-of-bounds offsets panic here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataArea<'a> {
    words: &'a [AtomicU64],
}

impl<'a> DataArea<'a> {
    /// As `segment::DataArea::word`.
    ///
    /// # Safety
    ///
    /// `off` is 8-aligned and inside the area.
    pub(crate) unsafe fn word(self, off: usize) -> &'a AtomicU64 {
        assert!(off.is_multiple_of(8));
        &self.words[off / 8]
    }

    /// As `segment::DataArea::write`; `off` is 8-aligned.
    ///
    /// # Safety
    ///
    /// As `segment::DataArea::write`.
    pub(crate) unsafe fn write(self, off: usize, bytes: &[u8]) {
        assert!(off.is_multiple_of(8));
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.words[off / 8 + i].store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }

    /// As `segment::DataArea::read`; `off` is 8-aligned.
    ///
    /// # Safety
    ///
    /// As `segment::DataArea::read`.
    pub(crate) unsafe fn read<R>(self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        assert!(off.is_multiple_of(8));
        let mut bytes = Vec::with_capacity(len + 8);
        for w in &self.words[off / 8..(off + len).div_ceil(8)] {
            bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        f(&bytes[..len])
    }

    /// As `segment::DataArea::zero`; `off` and `len` are 8-aligned.
    ///
    /// # Safety
    ///
    /// As `segment::DataArea::zero`.
    pub(crate) unsafe fn zero(self, off: usize, len: usize) {
        assert!(off.is_multiple_of(8) && len.is_multiple_of(8));
        for w in &self.words[off / 8..(off + len) / 8] {
            w.store(0, Ordering::Relaxed);
        }
    }
}
