//! The stand-in for `segment.rs` when the crate is built with `--cfg loom`:
//! the same header and data area, on the heap, made of loom's atomics, so
//! that loom can explore every interleaving of the ring protocol.
#![deny(unsafe_code)]

use crate::layout::{Geometry, Header};
use crate::sync::AtomicU64;

/// A segment on the heap.
#[derive(Debug)]
pub(crate) struct Segment {
    header: Box<Header>,
    words: Box<[AtomicU64]>,
    geo: Geometry,
}

impl Segment {
    /// A zeroed segment with a data area of `capacity` bytes (a power of
    /// two, at least 16; loom models need tiny rings, below the 4 KiB that
    /// real segments require).
    pub(crate) fn heap(capacity: u64, max_message: u64) -> Segment {
        assert!(capacity.is_power_of_two() && capacity >= 16);
        Segment {
            header: Box::new(Header::new_zeroed()),
            words: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
            geo: Geometry {
                capacity,
                max_message,
                max_senders: 64,
                slots_offset: 0,
                data_offset: 0,
                len: 0,
            },
        }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The data area, as words.
    pub(crate) fn words(&self) -> &[AtomicU64] {
        &self.words
    }
}
