//! shmpsc, this crate: serde messages with `send`/`recv`, bytes with
//! `send_bytes`/`recv_bytes_with` (zero-copy on the receiving side).

use std::time::{Duration, Instant};

use serde::Deserialize;
use shmpsc::{Batch, Builder, Receiver, RecvError, Sender, TryRecvError};

use super::{commands, reply, seq_of, Inbox, Msg, Outbox, Spec, Transport};
use super::{MAX_MESSAGE, RING_BYTES};

/// The shmpsc peer.
pub struct Shmpsc;

/// A receiver, spinning on `try_recv` or blocking in `recv`.
pub struct ShmIn {
    rx: Receiver<Msg>,
    spin: bool,
    /// Until the first message, "no sender attached" only means that the
    /// peer has not opened its sender yet (ping-pong start-up).
    started: bool,
}

impl ShmIn {
    /// The receiver (for the async peer, which receives with it).
    pub fn into_receiver(self) -> Receiver<Msg> {
        self.rx
    }

    fn new(rx: Receiver<Msg>, spin: bool) -> ShmIn {
        ShmIn {
            rx,
            spin,
            started: false,
        }
    }

    /// Receives with `try_once` (non-blocking) or `wait` (blocking).
    #[inline]
    fn get<R>(
        &mut self,
        mut try_once: impl FnMut(&mut Receiver<Msg>) -> Result<R, TryRecvError>,
        mut wait: impl FnMut(&mut Receiver<Msg>) -> Result<R, RecvError>,
    ) -> R {
        loop {
            let r = if self.spin {
                match try_once(&mut self.rx) {
                    Ok(r) => Ok(r),
                    Err(TryRecvError::Empty) => {
                        std::hint::spin_loop();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => Err(RecvError::Disconnected),
                    Err(e) => panic!("shmpsc try_recv: {e}"),
                }
            } else {
                wait(&mut self.rx)
            };
            match r {
                Ok(r) => {
                    self.started = true;
                    return r;
                }
                Err(RecvError::Disconnected) if !self.started => std::thread::yield_now(),
                Err(e) => panic!("shmpsc recv: {e}"),
            }
        }
    }
}

/// A sender, opened on first use when the channel is made later (ponger).
pub struct ShmOut {
    tx: Option<Sender<Msg>>,
    name: String,
}

fn create(name: &str) -> Receiver<Msg> {
    Builder::new(name)
        .capacity(RING_BYTES)
        .max_message_size(MAX_MESSAGE)
        .receiver::<Msg>()
        .unwrap_or_else(|e| panic!("shmpsc: creating {name}: {e}"))
}

fn open(name: &str) -> Sender<Msg> {
    Sender::open(name).unwrap_or_else(|e| panic!("shmpsc: opening {name}: {e}"))
}

impl ShmOut {
    #[inline]
    fn tx(&mut self) -> &Sender<Msg> {
        let name = &self.name;
        self.tx.get_or_insert_with(|| open(name))
    }
}

impl Inbox for ShmIn {
    #[inline]
    fn recv_msg(&mut self) -> (u64, usize) {
        let m = self.get(|rx| rx.try_recv(), |rx| rx.recv());
        (m.seq, m.payload.len())
    }

    #[inline]
    fn recv_bytes(&mut self) -> (u64, usize) {
        let look = |b: &[u8]| (seq_of(b), b.len());
        self.get(
            |rx| rx.try_recv_bytes_with(look),
            |rx| rx.recv_bytes_with(look),
        )
    }
}

impl Outbox for ShmOut {
    #[inline]
    fn send_msg(&mut self, m: &Msg) {
        // A clone of the template borrows its payload: no allocation.
        if let Err(e) = self.tx().send(m.clone()) {
            panic!("shmpsc send: {e}");
        }
    }

    #[inline]
    fn send_bytes(&mut self, b: &[u8]) {
        if let Err(e) = self.tx().send_bytes(b) {
            panic!("shmpsc send_bytes: {e}");
        }
    }
}

impl Transport for Shmpsc {
    type In = ShmIn;
    type Out = ShmOut;

    fn receiver(spec: &Spec, announce: &mut dyn FnMut(&str)) -> ShmIn {
        let rx = create(&spec.name);
        announce(&spec.name);
        ShmIn::new(rx, false)
    }

    fn sender(_spec: &Spec, token: &str) -> ShmOut {
        ShmOut {
            tx: Some(open(token)),
            name: token.to_owned(),
        }
    }

    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (ShmIn, ShmOut) {
        let rx = create(&format!("{}.ping", spec.name));
        announce(&spec.name);
        // The pinger creates ".pong" before its first ping: open it then.
        let out = ShmOut {
            tx: None,
            name: format!("{}.pong", spec.name),
        };
        (ShmIn::new(rx, spec.wait == super::Wait::Spin), out)
    }

    fn pinger(spec: &Spec, token: &str) -> (ShmIn, ShmOut) {
        let rx = create(&format!("{token}.pong"));
        let out = ShmOut {
            tx: Some(open(&format!("{token}.ping"))),
            name: format!("{token}.ping"),
        };
        (ShmIn::new(rx, spec.wait == super::Wait::Spin), out)
    }
}

/// shmpsc through `Sender::batch`: the receiving side is shmpsc's own.
pub struct ShmpscBatch;

/// A batch of a sender that lives as long as the (benchmark child)
/// process: leaked, so that the batch can borrow it. Opened on first use
/// when the channel is made later (ponger).
pub struct ShmBatchOut {
    batch: Option<Batch<'static, Msg>>,
    name: String,
}

impl ShmBatchOut {
    #[inline]
    fn batch(&mut self) -> &mut Batch<'static, Msg> {
        let name = &self.name;
        self.batch.get_or_insert_with(|| {
            let tx: &'static Sender<Msg> = Box::leak(Box::new(open(name)));
            tx.batch()
        })
    }
}

impl Outbox for ShmBatchOut {
    #[inline]
    fn send_msg(&mut self, m: &Msg) {
        if let Err(e) = self.batch().send(m.clone()) {
            panic!("shmpsc batch send: {e}");
        }
    }

    #[inline]
    fn send_bytes(&mut self, b: &[u8]) {
        if let Err(e) = self.batch().send_bytes(b) {
            panic!("shmpsc batch send_bytes: {e}");
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.batch().flush() {
            panic!("shmpsc batch flush: {e}");
        }
    }
}

/// The batch peer's receiving end: the bytes path takes every message
/// available at once (`recv_bytes_many_with`), as the streams' readers take
/// a buffer at once, and hands them out one by one.
pub struct ShmManyIn {
    inner: ShmIn,
    got: std::collections::VecDeque<(u64, usize)>,
}

impl Inbox for ShmManyIn {
    #[inline]
    fn recv_msg(&mut self) -> (u64, usize) {
        self.inner.recv_msg()
    }

    #[inline]
    fn recv_bytes(&mut self) -> (u64, usize) {
        if let Some(m) = self.got.pop_front() {
            return m;
        }
        let got = std::cell::RefCell::new(&mut self.got);
        let push = |b: &[u8]| got.borrow_mut().push_back((seq_of(b), b.len()));
        self.inner.get(
            |rx| rx.try_recv_bytes_many_with(4096, push),
            |rx| rx.recv_bytes_many_with(4096, push),
        );
        self.got.pop_front().expect("at least one message")
    }
}

impl Transport for ShmpscBatch {
    type In = ShmManyIn;
    type Out = ShmBatchOut;

    fn receiver(spec: &Spec, announce: &mut dyn FnMut(&str)) -> ShmManyIn {
        ShmManyIn {
            inner: Shmpsc::receiver(spec, announce),
            got: std::collections::VecDeque::with_capacity(4096),
        }
    }

    fn sender(_spec: &Spec, token: &str) -> ShmBatchOut {
        let mut out = ShmBatchOut {
            batch: None,
            name: token.to_owned(),
        };
        out.batch();
        out
    }

    /// Ping-pong flushes after every message: the same as `send`.
    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (ShmManyIn, ShmBatchOut) {
        let (rx, out) = Shmpsc::ponger(spec, announce);
        (
            ShmManyIn {
                inner: rx,
                got: Default::default(),
            },
            ShmBatchOut {
                batch: None,
                name: out.name,
            },
        )
    }

    fn pinger(spec: &Spec, token: &str) -> (ShmManyIn, ShmBatchOut) {
        let (rx, out) = Shmpsc::pinger(spec, token);
        drop(out);
        (
            ShmManyIn {
                inner: rx,
                got: Default::default(),
            },
            ShmBatchOut {
                batch: None,
                name: format!("{token}.ping"),
            },
        )
    }
}

/// shmpsc received through `Receiver::zero_copy`; sent with `send`.
pub struct ShmpscBorrowed;

/// [`Msg`] decoded in place: the payload borrowed from the ring.
#[derive(Deserialize)]
struct MsgRef<'a> {
    seq: u64,
    #[allow(dead_code)]
    sender: u32,
    #[allow(dead_code)]
    tag: u32,
    #[serde(borrow, with = "serde_bytes")]
    payload: &'a [u8],
}

/// The receiving end: `ShmIn`, whose serde receive decodes in place
/// through a zero-copy view (made per receive: the view finishes the
/// message when it is dropped, after the fields were read).
pub struct ShmBorrowedIn(ShmIn);

impl Inbox for ShmBorrowedIn {
    #[inline]
    fn recv_msg(&mut self) -> (u64, usize) {
        self.0.get(
            |rx| {
                let mut view = rx.zero_copy();
                view.try_recv::<MsgRef<'_>>()
                    .map(|m| (m.seq, m.payload.len()))
            },
            |rx| {
                let mut view = rx.zero_copy();
                view.recv::<MsgRef<'_>>().map(|m| (m.seq, m.payload.len()))
            },
        )
    }

    #[inline]
    fn recv_bytes(&mut self) -> (u64, usize) {
        self.0.recv_bytes()
    }
}

impl Transport for ShmpscBorrowed {
    type In = ShmBorrowedIn;
    type Out = ShmOut;

    fn receiver(spec: &Spec, announce: &mut dyn FnMut(&str)) -> ShmBorrowedIn {
        ShmBorrowedIn(Shmpsc::receiver(spec, announce))
    }

    fn sender(spec: &Spec, token: &str) -> ShmOut {
        Shmpsc::sender(spec, token)
    }

    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (ShmBorrowedIn, ShmOut) {
        let (rx, out) = Shmpsc::ponger(spec, announce);
        (ShmBorrowedIn(rx), out)
    }

    fn pinger(spec: &Spec, token: &str) -> (ShmBorrowedIn, ShmOut) {
        let (rx, out) = Shmpsc::pinger(spec, token);
        (ShmBorrowedIn(rx), out)
    }
}

fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// The idle receiver: blocked in `recv` on a channel whose only sender (the
/// parent) stays silent; reports "idle <cpu seconds> <wall seconds>".
pub fn idle(spec: &Spec) {
    let name = format!("{}.idle", spec.name);
    let rx = Builder::new(&name)
        .receiver::<u64>()
        .unwrap_or_else(|e| panic!("shmpsc: creating {name}: {e}"));
    reply(&format!("ready {name}"));
    let go = commands().next();
    assert_eq!(go.as_deref(), Some("go"), "idle receiver: expected go");
    reply("waiting");
    let (cpu0, t0) = (cpu_time(), Instant::now());
    rx.recv().expect("idle receiver: recv");
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    reply(&format!(
        "idle {} {}",
        cpu.as_secs_f64(),
        wall.as_secs_f64()
    ));
}
