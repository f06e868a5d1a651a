//! The floor: a raw atomic ping-pong between two processes, through one
//! shared page holding two words (one per direction). No ring, no framing,
//! no codec, no wake-up: each side spins on the word the other writes, so
//! a one-way latency here is what moving one cache line between the two
//! CPUs costs. Latency rows only; it always spins, whatever the row's
//! `Wait` says. (The throughput runs leave it out: a handoff of one word at
//! a time is not a channel.)

use std::fs::{File, OpenOptions};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;

use super::{seq_of, Inbox, Outbox, Spec, Transport};

/// The peer.
pub struct Floor;

/// A side's view of the shared page: the word it reads, the word it writes.
struct Page {
    map: MmapMut,
    /// Removes the file when the side that created it is done.
    path: Option<String>,
    read: usize,
    write: usize,
}

impl Page {
    fn word(&self, i: usize) -> &AtomicU64 {
        // SAFETY: the mapping is 4096 bytes, page aligned, and lives as long
        // as `self`; words 0 and 8 (bytes 0 and 64, one line each) are only
        // ever accessed atomically, by both processes.
        unsafe { &*(self.map.as_ptr().add(i * 64) as *const AtomicU64) }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn path_of(name: &str) -> String {
    format!("/dev/shm/shmpsc-bench-floor-{name}")
}

fn map(file: &File) -> MmapMut {
    file.set_len(4096).expect("floor: sizing the page");
    // SAFETY: a file of this benchmark run, mapped shared by its two
    // processes only, accessed through atomics only.
    unsafe { MmapMut::map_mut(file).expect("floor: mapping the page") }
}

/// A value never seen as "nothing yet" (0): sequence numbers are encoded
/// with their top bit flipped (the stop message is `u64::MAX`).
const FLIP: u64 = 1 << 63;

/// The receiving end: spins until the word it reads changes.
pub struct FloorIn {
    page: std::rc::Rc<Page>,
    last: u64,
    size: usize,
}

/// The sending end: stores the sequence number in the word it writes.
pub struct FloorOut {
    page: std::rc::Rc<Page>,
}

impl Inbox for FloorIn {
    fn recv_msg(&mut self) -> (u64, usize) {
        self.recv_bytes()
    }

    #[inline]
    fn recv_bytes(&mut self) -> (u64, usize) {
        let w = self.page.word(self.page.read);
        loop {
            let v = w.load(Ordering::Acquire);
            if v != self.last && v != 0 {
                self.last = v;
                return (v ^ FLIP, self.size);
            }
            std::hint::spin_loop();
        }
    }
}

impl Outbox for FloorOut {
    fn send_msg(&mut self, m: &super::Msg) {
        self.page
            .word(self.page.write)
            .store(m.seq ^ FLIP, Ordering::Release);
    }

    #[inline]
    fn send_bytes(&mut self, b: &[u8]) {
        self.page
            .word(self.page.write)
            .store(seq_of(b) ^ FLIP, Ordering::Release);
    }
}

fn ends(page: Page, size: usize) -> (FloorIn, FloorOut) {
    let page = std::rc::Rc::new(page);
    (
        FloorIn {
            page: page.clone(),
            last: 0,
            size,
        },
        FloorOut { page },
    )
}

impl Transport for Floor {
    type In = FloorIn;
    type Out = FloorOut;

    fn receiver(_spec: &Spec, _announce: &mut dyn FnMut(&str)) -> FloorIn {
        panic!("the floor is a latency row only (see LATENCY_ROWS)")
    }

    fn sender(_spec: &Spec, _token: &str) -> FloorOut {
        panic!("the floor is a latency row only (see LATENCY_ROWS)")
    }

    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (FloorIn, FloorOut) {
        let path = path_of(&spec.name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("floor: creating the page");
        let page = Page {
            map: map(&file),
            path: Some(path),
            read: 0,
            write: 1,
        };
        announce(&spec.name);
        ends(page, spec.size)
    }

    fn pinger(spec: &Spec, token: &str) -> (FloorIn, FloorOut) {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path_of(token))
            .expect("floor: opening the page");
        let page = Page {
            map: map(&file),
            path: None,
            read: 1,
            write: 0,
        };
        ends(page, spec.size)
    }
}
