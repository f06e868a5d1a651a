//! crossbeam-channel between threads of one process: the in-process
//! reference. One child process holds the sender threads and the receiving
//! (main) thread; ping-pong runs between two threads.
//!
//! Messages are moved, with their payload copied once into an owned buffer
//! (the serde path sends a `Msg` whose payload is owned, the bytes path a
//! `Vec<u8>`), as an IPC receiver ends up owning its message.

use std::borrow::Cow;
use std::sync::mpsc as std_mpsc;

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};

use super::{
    arg, commands, expected_len, ping_loop, pong_loop, receive_n, reply, seq_of, spin, Inbox, Msg,
    Outbox, Role, Source, Spec, Wait, RING_BYTES,
};

enum Item {
    Msg(Msg),
    Bytes(Vec<u8>),
}

/// A receiving thread's end.
pub struct CbIn {
    rx: Receiver<Item>,
    spin: bool,
}

/// A sending thread's end.
pub struct CbOut {
    tx: Sender<Item>,
}

impl CbIn {
    #[inline]
    fn get(&self) -> Item {
        if self.spin {
            spin(|| match self.rx.try_recv() {
                Ok(i) => Some(i),
                Err(TryRecvError::Empty) => None,
                Err(e) => panic!("crossbeam try_recv: {e}"),
            })
        } else {
            self.rx
                .recv()
                .unwrap_or_else(|e| panic!("crossbeam recv: {e}"))
        }
    }
}

impl Inbox for CbIn {
    #[inline]
    fn recv_msg(&mut self) -> (u64, usize) {
        match self.get() {
            Item::Msg(m) => (m.seq, m.payload.len()),
            Item::Bytes(_) => panic!("crossbeam: bytes on the serde path"),
        }
    }

    #[inline]
    fn recv_bytes(&mut self) -> (u64, usize) {
        match self.get() {
            Item::Bytes(b) => (seq_of(&b), b.len()),
            Item::Msg(_) => panic!("crossbeam: a message on the bytes path"),
        }
    }
}

impl Outbox for CbOut {
    #[inline]
    fn send_msg(&mut self, m: &Msg) {
        let m = Msg {
            payload: Cow::Owned(m.payload.to_vec()),
            ..m.clone()
        };
        self.tx
            .send(Item::Msg(m))
            .unwrap_or_else(|_| panic!("crossbeam send: disconnected"));
    }

    #[inline]
    fn send_bytes(&mut self, b: &[u8]) {
        self.tx
            .send(Item::Bytes(b.to_vec()))
            .unwrap_or_else(|_| panic!("crossbeam send: disconnected"));
    }
}

/// A bounded channel holding about as many bytes as the shared rings.
fn channel(spec: &Spec) -> (CbOut, CbIn) {
    let cap = (RING_BYTES as usize / (spec.size + 16)).clamp(64, 65536);
    let (tx, rx) = bounded(cap);
    (
        CbOut { tx },
        CbIn {
            rx,
            spin: spec.wait == Wait::Spin,
        },
    )
}

/// The child process of a crossbeam run: throughput (`Role::Receiver`,
/// with `spec.senders` sender threads) or ping-pong (`Role::Pinger`, with
/// a ponger thread).
pub fn run(spec: &Spec) {
    match spec.role {
        Role::Receiver => throughput(spec),
        Role::Pinger => {
            let (ping_tx, mut ping_rx) = channel(spec);
            let (mut pong_tx, mut pong_rx) = channel(spec);
            let mut ping_tx = ping_tx;
            let ponger_spec = spec.clone();
            let ponger = std::thread::spawn(move || {
                pong_loop(&mut ping_rx, &mut pong_tx, &ponger_spec);
            });
            reply("ready");
            ping_loop(&mut pong_rx, &mut ping_tx, spec);
            ponger.join().expect("ponger thread");
        }
        r => panic!("crossbeam: no {r:?} process"),
    }
}

fn throughput(spec: &Spec) {
    let (out, mut inbox) = channel(spec);
    let mut workers = Vec::new();
    for index in 0..spec.senders {
        let (go_tx, go_rx) = std_mpsc::channel::<u64>();
        let (done_tx, done_rx) = std_mpsc::channel::<()>();
        let mut out = CbOut { tx: out.tx.clone() };
        let spec = Spec {
            index,
            ..spec.clone()
        };
        std::thread::spawn(move || {
            let mut src = Source::new(&spec);
            for n in go_rx {
                src.send_n(&mut out, n);
                let _ = done_tx.send(());
            }
        });
        workers.push((go_tx, done_rx));
    }
    drop(out);
    reply("ready");
    for cmd in commands() {
        let total = arg(&cmd);
        let per = total / spec.senders as u64;
        for (go, _) in &workers {
            go.send(per).expect("sender thread");
        }
        let bytes = receive_n(&mut inbox, spec.path, per * spec.senders as u64);
        assert_eq!(bytes, per * spec.senders as u64 * expected_len(spec) as u64);
        for (_, done) in &workers {
            done.recv().expect("sender thread");
        }
        reply("done");
    }
}
