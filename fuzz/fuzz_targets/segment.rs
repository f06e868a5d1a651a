//! Fuzzes the receiver (and senders) over a segment whose bytes are
//! arbitrary: every sender can write any byte of the shared memory, so no
//! content of it may make an endpoint panic, hang, or touch memory outside
//! the mapping. Only errors may come out.
//!
//! The input is a small program (see `Op`): patches of the segment's bytes
//! (raw bytes and words anywhere, well-tagged record headers in the data
//! area, the claim cursor) interleaved with receives, sends, sender opens
//! and drops, and `inspect`. Its first byte picks how the channel starts
//! (modulo 4):
//!
//! - 0 or 2: a live channel, created here, whose segment is patched while
//!   its receiver runs (the receiver keeps its own trusted consumer cursor);
//! - 1: a segment image (a real segment with messages and a padding record,
//!   config line included) patched *before* a new receiver takes it over, as
//!   after a crash: the takeover path reads every word, and a damaged
//!   config line must give open errors;
//! - 3: a live channel with a few messages whose segment past the config
//!   line is overwritten with the input's bytes as they are, then received
//!   from, sent to, opened and inspected.
//!
//! Besides "no panic, no crash, no hang", the target checks:
//! - while no byte was patched, the channel behaves exactly like a FIFO of
//!   the messages sent (a small model);
//! - every error's text is non-empty, open errors name the channel, and an
//!   `Invalid` says where (`position`);
//! - after the receiver reports the claim cursor corrupt, it reports
//!   `Disconnected` from then on, and senders are refused.

#![no_main]

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use memmap2::MmapMut;
use serde::{Deserialize, Serialize};
use shmpsc::{
    Builder, OpenError, OpenErrorKind, Receiver, RecvTimeoutError, Sender, TryRecvError,
    TrySendError,
};

// The segment layout (src/layout.rs) for CAP and SENDERS below.
const CAP: u64 = 4096;
const SENDERS: u32 = 2;
/// `size_of::<Header>()`: five 128-byte lines and two 512-byte bitmaps.
const HEADER: usize = 5 * 128 + 2 * 512;
/// Start of the data area: the slot table (128 bytes a slot) follows the header.
const DATA: usize = HEADER + SENDERS as usize * 128;
/// Length of the whole segment.
const LEN: usize = DATA + CAP as usize;
/// The configuration line, written once by the creator: magic, version,
/// geometry, type fingerprint.
const CONFIG: usize = 128;
/// The claim cursor (`tail`) and the published consumer cursor (`head`).
const TAIL: usize = 128;
const HEAD: usize = 256;

/// At most this many operations per input, and this many that sleep.
const MAX_OPS: usize = 256;
const MAX_SLOW_OPS: u32 = 8;

const KIND_CLAIMED: u64 = 0xC1;
const KIND_COMMITTED: u64 = 0xA5;
const KIND_PADDING: u64 = 0x9D;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Msg {
    id: u32,
    text: String,
    data: Vec<u8>,
}

impl Msg {
    fn new(id: u32, size: usize) -> Msg {
        Msg {
            id,
            text: format!("m{id}"),
            data: (0..size).map(|i| (i as u32 ^ id) as u8).collect(),
        }
    }
}

/// Reads the input as a stream of numbers; zeros once exhausted.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }
}

fn read_u64(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(buf[off..off + 8].try_into().unwrap())
}

fn write_u64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A record header word as src/layout.rs builds it: position tag, kind, length.
fn record_word(kind: u64, len: u32, pos: u64) -> u64 {
    (((pos >> 3) & 0xFF_FFFF) << 40) | ((kind & 0xFF) << 32) | len as u64
}

/// Applies one patch operation (opcodes 0 to 3) to the segment bytes at or
/// after `from` (0 to include the configuration line, `CONFIG` not to).
fn patch(op: u8, inp: &mut Input, buf: &mut [u8], from: usize) {
    match op {
        // Flip bits of one byte.
        0 => {
            let off = from + inp.u16() as usize % (LEN - from);
            buf[off] ^= inp.u8() | 1;
        }
        // Overwrite one aligned word.
        1 => {
            let off = (from + inp.u16() as usize % (LEN - from)) & !7;
            let v = inp.u64();
            write_u64(buf, off, v);
        }
        // A well-tagged record header near the consumer: the receiver
        // trusts the tag, so this reaches every kind and length check.
        2 => {
            let head = read_u64(buf, HEAD) & !7;
            let pos = head.wrapping_add((inp.u16() as u64 % (2 * CAP / 8)) * 8);
            let kind = match inp.u8() % 4 {
                0 => KIND_CLAIMED,
                1 => KIND_COMMITTED,
                2 => KIND_PADDING,
                // Any kind, mostly unknown ones.
                _ => inp.u8() as u64,
            };
            let off = pos & (CAP - 1);
            let len = match inp.u8() % 4 {
                0 => inp.u32(),
                // Padding that ends the lap exactly.
                1 => (CAP - 8 - off) as u32,
                2 => inp.u8() as u32,
                _ => (CAP / 4) as u32 + inp.u8() as u32,
            };
            write_u64(buf, DATA + off as usize, record_word(kind, len, pos));
        }
        // The claim cursor, near the consumer (possibly misaligned, behind,
        // or more than a ring ahead) or anywhere.
        _ => {
            let head = read_u64(buf, HEAD);
            let delta = inp.u16() as i16;
            let tail = if delta == i16::MIN {
                inp.u64()
            } else {
                head.wrapping_add(delta as i64 as u64)
            };
            write_u64(buf, TAIL, tail);
        }
    }
}

fn path(name: &str) -> String {
    format!("/dev/shm/shmpsc.{name}")
}

fn builder(name: &str) -> Builder {
    Builder::new(name)
        .capacity(CAP)
        .max_senders(SENDERS)
        .tick(Duration::from_millis(1))
}

fn map(name: &str) -> MmapMut {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path(name))
        .expect("opening the segment to patch it");
    assert_eq!(
        file.metadata().unwrap().len(),
        LEN as u64,
        "layout constants"
    );
    // SAFETY: the segment stays mapped by us until the end of the run;
    // shmpsc only reads and writes it atomically, and nothing truncates it.
    unsafe { MmapMut::map_mut(&file) }.expect("mapping the segment")
}

/// A real segment with a consumed prefix, two committed messages, and a
/// padding record at the end of the first lap, as its bytes.
fn template() -> &'static [u8] {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("fuzz-tpl-{}", std::process::id());
        let _ = std::fs::remove_file(path(&name));
        let (tx, rx) = builder(&name).create::<Msg>().expect("template channel");
        for i in 0..3 {
            tx.try_send(Msg::new(i, 900)).expect("template send");
        }
        for _ in 0..3 {
            rx.try_recv().expect("template receive");
        }
        // The second of these crosses the end of the lap: padding first.
        tx.try_send(Msg::new(3, 900)).expect("template send");
        tx.try_send(Msg::new(4, 900)).expect("template send");
        let image = std::fs::read(path(&name)).expect("reading the template");
        assert_eq!(image.len(), LEN, "layout constants");
        image
    })
}

/// What a receive returned, whichever method it was.
#[derive(Debug)]
enum Got {
    Msg(Option<Msg>),
    Empty,
    Disconnected,
    Invalid(String),
}

impl From<Result<Msg, TryRecvError>> for Got {
    fn from(r: Result<Msg, TryRecvError>) -> Got {
        match r {
            Ok(m) => Got::Msg(Some(m)),
            Err(TryRecvError::Empty) => Got::Empty,
            Err(TryRecvError::Disconnected) => Got::Disconnected,
            Err(e @ TryRecvError::Invalid(_)) => Got::Invalid(e.to_string()),
        }
    }
}

impl From<Result<Msg, RecvTimeoutError>> for Got {
    fn from(r: Result<Msg, RecvTimeoutError>) -> Got {
        match r {
            Ok(m) => Got::Msg(Some(m)),
            Err(RecvTimeoutError::Timeout) => Got::Empty,
            Err(RecvTimeoutError::Disconnected) => Got::Disconnected,
            Err(e @ RecvTimeoutError::Invalid(_)) => Got::Invalid(e.to_string()),
        }
    }
}

fn check_open_error(name: &str, e: &OpenError) {
    let text = e.to_string();
    assert!(
        text.contains(name),
        "open error does not name the channel: {text}"
    );
}

struct Run {
    name: String,
    rx: Receiver<Msg>,
    senders: Vec<Sender<Msg>>,
    map: MmapMut,
    /// Messages sent and not yet received, while nothing was patched.
    expected: VecDeque<Msg>,
    patched: bool,
    /// The receiver reported the claim cursor corrupt.
    broken: bool,
    /// Nothing was patched since `broken` was set.
    broken_untouched: bool,
    next_id: u32,
    slow_ops: u32,
}

impl Run {
    /// A live channel, created here.
    fn live(name: &str) -> Run {
        let (tx, rx) = builder(name).create::<Msg>().expect("creating the channel");
        Run {
            name: name.to_owned(),
            rx,
            senders: vec![tx],
            map: map(name),
            expected: VecDeque::new(),
            patched: false,
            broken: false,
            broken_untouched: false,
            next_id: 0,
            slow_ops: 0,
        }
    }

    /// A live channel with a few messages, whose segment past the
    /// configuration line (the hot words, the bitmaps, the slot table, the
    /// data area) is then overwritten with the rest of the input, followed
    /// by a fixed round of receives, a send, an open and an inspection.
    fn overwritten(name: &str, inp: &mut Input) -> Run {
        let mut run = Run::live(name);
        for i in 0..inp.u8() % 8 {
            run.send(0, 100 * i as usize);
        }
        let bytes = &inp.data[inp.at.min(inp.data.len())..];
        let n = bytes.len().min(LEN - CONFIG);
        run.map[CONFIG..CONFIG + n].copy_from_slice(&bytes[..n]);
        inp.at = inp.data.len();
        run.patched = true;
        // try_recv x16, recv_timeout(2 ms), open, send, inspect, try_recv x8.
        let mut ops = vec![4; 16];
        ops.extend_from_slice(&[6, 8, 7, 1, 10, 10]);
        ops.extend_from_slice(&[4; 8]);
        run.program(&mut Input { data: &ops, at: 0 });
        run
    }

    /// A patched segment image, taken over by a new receiver.
    fn takeover(name: &str, inp: &mut Input) -> Option<Run> {
        let mut image = template().to_vec();
        // Patch operations up to the first other one go to the image.
        while !inp.done() {
            let op = inp.data[inp.at] % 12;
            if op > 3 {
                break;
            }
            inp.at += 1;
            patch(op, inp, &mut image, 0);
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path(name))
            .expect("creating the segment image");
        file.write_all(&image).expect("writing the segment image");
        drop(file);
        match builder(name).receiver::<Msg>() {
            Ok(rx) => Some(Run {
                name: name.to_owned(),
                rx,
                senders: Vec::new(),
                map: map(name),
                expected: VecDeque::new(),
                patched: true,
                broken: false,
                broken_untouched: false,
                next_id: 0,
                slow_ops: 0,
            }),
            Err(e) => {
                check_open_error(name, &e);
                // Whatever the receiver refused, senders and inspection
                // must refuse too, with errors, or cope.
                if let Err(e) = Sender::<Msg>::open(name) {
                    check_open_error(name, &e);
                }
                if let Err(e) = shmpsc::inspect(name) {
                    check_open_error(name, &e);
                }
                None
            }
        }
    }

    fn program(&mut self, inp: &mut Input) {
        for _ in 0..MAX_OPS {
            if inp.done() {
                break;
            }
            let op = inp.u8() % 14;
            match op {
                0..=3 => {
                    // The configuration line is only read when an endpoint
                    // attaches: the takeover mode covers it. (Patching it
                    // here would make every later open retry for a second,
                    // as it does while a live creator may still be writing it.)
                    patch(op, inp, &mut self.map, CONFIG);
                    self.patched = true;
                    self.broken_untouched = false;
                }
                4 => {
                    let got = self.rx.try_recv().into();
                    self.check(got);
                }
                5 => {
                    let got = self.rx.recv_timeout(Duration::ZERO).into();
                    self.check(got);
                }
                6 => {
                    if self.slow_ops < MAX_SLOW_OPS {
                        self.slow_ops += 1;
                        // Long enough for a sleep and a liveness check.
                        let got = self.rx.recv_timeout(Duration::from_millis(2)).into();
                        self.check(got);
                    }
                }
                7 => {
                    let k = inp.u8() as usize;
                    // At most 765 bytes of data: always within the maximum
                    // message size (a quarter of the capacity) once encoded.
                    let size = inp.u8() as usize * 3;
                    if !self.senders.is_empty() {
                        let i = k % self.senders.len();
                        self.send(i, size);
                    }
                }
                8 => {
                    if self.senders.len() < 3 {
                        match Sender::<Msg>::open(&self.name) {
                            Ok(tx) => {
                                assert!(
                                    !(self.broken && self.broken_untouched),
                                    "a sender attached to a channel closed as corrupt"
                                );
                                self.senders.push(tx);
                            }
                            Err(e) => {
                                check_open_error(&self.name, &e);
                                if !self.patched {
                                    // Only the slots can run out.
                                    assert!(
                                        matches!(e.kind(), OpenErrorKind::TooManySenders { .. }),
                                        "unexpected open error on an intact channel: {e}"
                                    );
                                }
                            }
                        }
                    }
                }
                9 => {
                    let k = inp.u8() as usize;
                    if !self.senders.is_empty() {
                        let i = k % self.senders.len();
                        self.senders.swap_remove(i);
                    }
                }
                10 => match shmpsc::inspect(&self.name) {
                    Ok(info) => assert!(info.used <= info.capacity),
                    Err(e) => check_open_error(&self.name, &e),
                },
                13 => {
                    // A batch: staged messages sent as one block.
                    let k = inp.u8() as usize;
                    let n = 1 + inp.u8() as usize % 8;
                    let sizes: Vec<usize> = (0..n).map(|_| inp.u8() as usize % 100).collect();
                    if !self.senders.is_empty() && !self.patched {
                        let i = k % self.senders.len();
                        self.send_batch(i, &sizes);
                    }
                }
                12 => {
                    // Receives inside a receive's callback: nothing is given
                    // back to senders until the outer callback returns, so
                    // the inner ones must never read a lap past that.
                    let k = 1 + inp.u8() as usize % 300;
                    let rx = &self.rx;
                    let (outer, inner) = match rx.try_recv_bytes_with(|_| {
                        (0..k).map(|_| rx.try_recv().into()).collect::<Vec<Got>>()
                    }) {
                        Ok(inner) => (Got::Msg(None), inner),
                        Err(TryRecvError::Empty) => (Got::Empty, Vec::new()),
                        Err(TryRecvError::Disconnected) => (Got::Disconnected, Vec::new()),
                        Err(e @ TryRecvError::Invalid(_)) => {
                            (Got::Invalid(e.to_string()), Vec::new())
                        }
                    };
                    self.check(outer);
                    for got in inner {
                        self.check(got);
                    }
                }
                _ => {
                    let got = match self.rx.try_recv_bytes_with(|b| b.len()) {
                        Ok(_) => Got::Msg(None),
                        Err(TryRecvError::Empty) => Got::Empty,
                        Err(TryRecvError::Disconnected) => Got::Disconnected,
                        Err(e @ TryRecvError::Invalid(_)) => Got::Invalid(e.to_string()),
                    };
                    self.check(got);
                }
            }
        }
    }

    fn send(&mut self, i: usize, size: usize) {
        let msg = Msg::new(self.next_id, size);
        self.next_id += 1;
        match self.senders[i].try_send(msg.clone()) {
            Ok(()) => {
                assert!(
                    !(self.broken && self.broken_untouched),
                    "a send succeeded on a channel closed as corrupt"
                );
                if !self.patched {
                    self.expected.push_back(msg);
                }
            }
            Err(TrySendError::Full(m)) => assert_eq!(m, msg),
            Err(TrySendError::Disconnected(m)) => {
                assert_eq!(m, msg);
                assert!(
                    self.patched,
                    "Disconnected on an intact channel whose receiver is alive"
                );
            }
            Err(e @ TrySendError::Rejected(..)) => {
                panic!("a message within the size limit was rejected: {e}")
            }
        }
    }

    /// Sends `sizes.len()` messages from sender `i` as one batch, when the
    /// ring surely has room for the block (a flush waits for room, and the
    /// only receiver is this thread): on an intact channel only.
    fn send_batch(&mut self, i: usize, sizes: &[usize]) {
        if self.broken {
            return;
        }
        // An upper bound of each record: the payload, the message's other
        // fields and length prefixes, the header and the padding.
        let bound: usize = sizes.iter().map(|s| s + 40).sum();
        let used = match shmpsc::inspect(&self.name) {
            Ok(info) => info.used as usize,
            Err(_) => return,
        };
        // The block stays below a quarter of the ring (one block), and
        // fits even after padding to the end of a lap.
        if bound > CAP as usize / 4 || used + 2 * bound > CAP as usize {
            return;
        }
        let msgs: Vec<Msg> = sizes
            .iter()
            .map(|&size| {
                let m = Msg::new(self.next_id, size);
                self.next_id += 1;
                m
            })
            .collect();
        let mut batch = self.senders[i].batch();
        for m in &msgs {
            batch.send(m.clone()).expect("a batch stages within its block");
        }
        batch.flush().expect("a flush with room on an intact channel");
        self.expected.extend(msgs);
    }

    fn check(&mut self, got: Got) {
        if let Got::Invalid(text) = &got {
            assert!(!text.is_empty());
            assert!(text.contains("position"), "Invalid says not where: {text}");
        }
        if self.broken {
            assert!(
                matches!(got, Got::Disconnected),
                "after the claim cursor was reported corrupt, got {got:?}"
            );
            return;
        }
        if let Got::Invalid(text) = &got {
            if text.contains("claim cursor") {
                self.broken = true;
                self.broken_untouched = true;
            }
        }
        if self.patched {
            return;
        }
        // Nothing was patched: the channel must be a plain FIFO.
        match (got, self.expected.pop_front()) {
            (Got::Msg(Some(m)), Some(want)) => assert_eq!(m, want),
            (Got::Msg(None), Some(_)) => {}
            (Got::Empty, None) if !self.senders.is_empty() => {}
            (Got::Disconnected, None) if self.senders.is_empty() => {}
            (got, want) => panic!(
                "intact channel with {} senders: got {got:?}, expected {want:?}",
                self.senders.len()
            ),
        }
    }

    fn finish(mut self) {
        for _ in 0..64 {
            let got = self.rx.try_recv().into();
            let end = matches!(got, Got::Empty | Got::Disconnected);
            self.check(got);
            if end {
                break;
            }
        }
        if let Some(tx) = self.senders.first() {
            let _ = tx.try_send(Msg::new(u32::MAX, 1));
        }
    }
}

fn run(data: &[u8]) {
    let mut inp = Input { data, at: 0 };
    let name = format!("fuzz-{}", std::process::id());
    let _ = std::fs::remove_file(path(&name));
    let run = match inp.u8() % 4 {
        1 => Run::takeover(&name, &mut inp),
        3 => Some(Run::overwritten(&name, &mut inp)),
        _ => Some(Run::live(&name)),
    };
    if let Some(mut run) = run {
        run.program(&mut inp);
        run.finish();
    }
    // Dropping the receiver removes the name; a refused takeover leaves it.
    let _ = std::fs::remove_file(path(&name));
}

fuzz_target!(|data: &[u8]| run(data));
