//! ipmpsc 0.5: a shared-memory ring in a file (here on tmpfs), guarded by a
//! process-shared mutex and condition variable, bincode 1 inside.

use ipmpsc::{Receiver, Sender, SharedRingBuffer};
use serde_bytes::{ByteBuf, Bytes};

use super::{seq_of, spin, Inbox, Msg, Outbox, Spec, Transport, Wait, RING_BYTES};

/// The ipmpsc peer.
pub struct Ipmpsc;

/// A receiver, spinning on `try_recv` or blocking in `recv`.
pub struct IpIn {
    rx: Receiver,
    spin: bool,
}

/// A sender, opened on first use when the ring is made later (ponger).
pub struct IpOut {
    tx: Option<Sender>,
    path: String,
}

fn create(path: &str) -> Receiver {
    let buf = SharedRingBuffer::create(path, RING_BYTES as u32)
        .unwrap_or_else(|e| panic!("ipmpsc: creating {path}: {e}"));
    Receiver::new(buf)
}

fn open(path: &str) -> Sender {
    let buf =
        SharedRingBuffer::open(path).unwrap_or_else(|e| panic!("ipmpsc: opening {path}: {e}"));
    Sender::new(buf)
}

impl IpIn {
    #[inline]
    fn get<T: serde::de::DeserializeOwned>(&self) -> T {
        if self.spin {
            spin(|| {
                self.rx
                    .try_recv::<T>()
                    .unwrap_or_else(|e| panic!("ipmpsc try_recv: {e}"))
            })
        } else {
            self.rx
                .recv::<T>()
                .unwrap_or_else(|e| panic!("ipmpsc recv: {e}"))
        }
    }
}

impl Inbox for IpIn {
    #[inline]
    fn recv_msg(&mut self) -> (u64, usize) {
        let m: Msg = self.get();
        (m.seq, m.payload.len())
    }

    #[inline]
    fn recv_bytes(&mut self) -> (u64, usize) {
        let b: ByteBuf = self.get();
        (seq_of(&b), b.len())
    }
}

impl IpOut {
    #[inline]
    fn tx(&mut self) -> &Sender {
        let path = &self.path;
        self.tx.get_or_insert_with(|| open(path))
    }
}

impl Outbox for IpOut {
    #[inline]
    fn send_msg(&mut self, m: &Msg) {
        self.tx()
            .send(m)
            .unwrap_or_else(|e| panic!("ipmpsc send: {e}"));
    }

    #[inline]
    fn send_bytes(&mut self, b: &[u8]) {
        self.tx()
            .send(&Bytes::new(b))
            .unwrap_or_else(|e| panic!("ipmpsc send: {e}"));
    }
}

fn file(spec: &Spec, what: &str) -> String {
    spec.file(what).to_string_lossy().into_owned()
}

impl Transport for Ipmpsc {
    type In = IpIn;
    type Out = IpOut;

    fn receiver(spec: &Spec, announce: &mut dyn FnMut(&str)) -> IpIn {
        let path = file(spec, "ipmpsc-ring");
        let rx = create(&path);
        announce(&path);
        IpIn { rx, spin: false }
    }

    fn sender(_spec: &Spec, token: &str) -> IpOut {
        IpOut {
            tx: Some(open(token)),
            path: token.to_owned(),
        }
    }

    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (IpIn, IpOut) {
        let rx = create(&file(spec, "ipmpsc-ping"));
        announce("");
        // The pinger creates the pong ring before its first ping.
        let out = IpOut {
            tx: None,
            path: file(spec, "ipmpsc-pong"),
        };
        (
            IpIn {
                rx,
                spin: spec.wait == Wait::Spin,
            },
            out,
        )
    }

    fn pinger(spec: &Spec, _token: &str) -> (IpIn, IpOut) {
        let rx = create(&file(spec, "ipmpsc-pong"));
        let path = file(spec, "ipmpsc-ping");
        (
            IpIn {
                rx,
                spin: spec.wait == Wait::Spin,
            },
            IpOut {
                tx: Some(open(&path)),
                path,
            },
        )
    }
}
