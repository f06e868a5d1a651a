//! Async receivers for the latency rows (`recv_async` under tokio against
//! tokio's `UnixStream`): each receiving end runs a current-thread tokio
//! runtime and waits for every message in `block_on`, as a task of a
//! daemon would; the sending ends are the synchronous ones of the same
//! peer. Async receivers never spin: in the spinning table they wait too.

use std::os::unix::net::{UnixListener, UnixStream};

use shmpsc::{Receiver, RecvError};
use tokio::io::AsyncReadExt;

use super::peer_shmpsc::{ShmOut, Shmpsc};
use super::stream::StreamOut;
use super::{seq_of, Inbox, Msg, Spec, Transport};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// shmpsc received with `recv_async`.
pub struct ShmpscAsync;

/// The receiving end: `recv_async` in a current-thread runtime.
pub struct ShmAsyncIn {
    rt: tokio::runtime::Runtime,
    rx: Receiver<Msg>,
    /// Until the first message, "no sender attached" only means that the
    /// peer has not opened its sender yet (ping-pong start-up).
    started: bool,
}

impl ShmAsyncIn {
    fn new(rx: Receiver<Msg>) -> ShmAsyncIn {
        ShmAsyncIn {
            rt: runtime(),
            rx,
            started: false,
        }
    }
}

impl Inbox for ShmAsyncIn {
    fn recv_msg(&mut self) -> (u64, usize) {
        loop {
            match self.rt.block_on(self.rx.recv_async()) {
                Ok(m) => {
                    self.started = true;
                    return (m.seq, m.payload.len());
                }
                Err(RecvError::Disconnected) if !self.started => std::thread::yield_now(),
                Err(e) => panic!("shmpsc recv_async: {e}"),
            }
        }
    }

    fn recv_bytes(&mut self) -> (u64, usize) {
        panic!("the async rows are serde rows")
    }
}

impl Transport for ShmpscAsync {
    type In = ShmAsyncIn;
    type Out = ShmOut;

    fn receiver(spec: &Spec, announce: &mut dyn FnMut(&str)) -> ShmAsyncIn {
        ShmAsyncIn::new(Shmpsc::receiver(spec, announce).into_receiver())
    }

    fn sender(spec: &Spec, token: &str) -> ShmOut {
        Shmpsc::sender(spec, token)
    }

    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (ShmAsyncIn, ShmOut) {
        let (rx, out) = Shmpsc::ponger(spec, announce);
        (ShmAsyncIn::new(rx.into_receiver()), out)
    }

    fn pinger(spec: &Spec, token: &str) -> (ShmAsyncIn, ShmOut) {
        let (rx, out) = Shmpsc::pinger(spec, token);
        (ShmAsyncIn::new(rx.into_receiver()), out)
    }
}

/// A Unix stream socket read through tokio: length-prefixed postcard
/// frames, as the buffered socket peer writes them.
pub struct TokioUnix;

/// The receiving end: `read_exact` on a tokio `UnixStream`.
pub struct TokioIn {
    rt: tokio::runtime::Runtime,
    s: tokio::net::UnixStream,
    buf: Vec<u8>,
}

impl TokioIn {
    fn new(s: UnixStream) -> TokioIn {
        let rt = runtime();
        s.set_nonblocking(true).expect("unix socket: non-blocking");
        let s = {
            let _guard = rt.enter();
            tokio::net::UnixStream::from_std(s).expect("tokio unix socket")
        };
        TokioIn {
            rt,
            s,
            buf: Vec::new(),
        }
    }

    fn frame(&mut self) -> &[u8] {
        let (s, buf) = (&mut self.s, &mut self.buf);
        self.rt.block_on(async {
            let mut n = [0u8; 4];
            s.read_exact(&mut n).await.expect("tokio unix socket: read");
            buf.resize(u32::from_le_bytes(n) as usize, 0);
            s.read_exact(buf).await.expect("tokio unix socket: read");
        });
        &self.buf
    }
}

impl Inbox for TokioIn {
    fn recv_msg(&mut self) -> (u64, usize) {
        let (m, rest): (Msg, &[u8]) = postcard::take_from_bytes(self.frame())
            .unwrap_or_else(|e| panic!("tokio unix socket: decoding: {e}"));
        assert!(rest.is_empty(), "tokio unix socket: trailing bytes");
        (m.seq, m.payload.len())
    }

    fn recv_bytes(&mut self) -> (u64, usize) {
        let body = self.frame();
        (seq_of(body), body.len())
    }
}

/// Both ends of one connection: the read side through tokio (a second
/// descriptor of the socket, made non-blocking), the write side buffered
/// and blocking as the other stream peers'. (Non-blocking is a property of
/// the socket, so a write could see `WouldBlock` on a full socket buffer;
/// ping-pong has one message in flight.)
fn both_ways(s: UnixStream) -> (TokioIn, StreamOut<UnixStream>) {
    let r = s.try_clone().expect("unix socket: clone");
    (TokioIn::new(r), StreamOut::new(s))
}

impl Transport for TokioUnix {
    type In = TokioIn;
    type Out = StreamOut<UnixStream>;

    fn receiver(_spec: &Spec, _announce: &mut dyn FnMut(&str)) -> TokioIn {
        panic!("the tokio socket is a latency row only")
    }

    fn sender(_spec: &Spec, _token: &str) -> Self::Out {
        panic!("the tokio socket is a latency row only")
    }

    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (TokioIn, Self::Out) {
        let listener = UnixListener::bind(spec.file("sock")).expect("unix socket: bind");
        announce("");
        let (s, _) = listener.accept().expect("unix socket: accept");
        both_ways(s)
    }

    fn pinger(spec: &Spec, _token: &str) -> (TokioIn, Self::Out) {
        both_ways(UnixStream::connect(spec.file("sock")).expect("unix socket: connect"))
    }
}
