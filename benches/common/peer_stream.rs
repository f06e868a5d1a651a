//! Byte streams with length-prefixed frames (`stream.rs`): a Unix stream
//! socket, and a pipe (one named FIFO per sender, since writes from several
//! processes into one pipe interleave).
//!
//! A frame's body is the bytes, or the [`Msg`] encoded with postcard
//! (shmpsc's default codec). Senders flush at the end of a
//! round (after every message in ping-pong).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};

use super::stream::{StreamIn, StreamOut};
use super::{seq_of, Inbox, Msg, Outbox, Spec, Transport, Wait, MAX_MESSAGE};

fn stream_in(fds: Vec<OwnedFd>, socket: bool, spin: bool) -> StreamIn {
    StreamIn::new(fds, socket, spin, MAX_MESSAGE as usize)
}

#[inline]
fn next(inbox: &mut StreamIn) -> &[u8] {
    inbox.next().unwrap_or_else(|e| panic!("stream: {e}"))
}

impl Inbox for StreamIn {
    #[inline]
    fn recv_msg(&mut self) -> (u64, usize) {
        let body = next(self);
        let (m, rest): (Msg, &[u8]) =
            postcard::take_from_bytes(body).unwrap_or_else(|e| panic!("stream: decoding: {e}"));
        assert!(rest.is_empty(), "stream: trailing bytes");
        (m.seq, m.payload.len())
    }

    #[inline]
    fn recv_bytes(&mut self) -> (u64, usize) {
        let body = next(self);
        (seq_of(body), body.len())
    }
}

impl<W: Write> Outbox for StreamOut<W> {
    #[inline]
    fn send_msg(&mut self, m: &Msg) {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let buf = postcard::to_extend(m, buf).unwrap_or_else(|e| panic!("stream: encoding: {e}"));
        let sent = self.frame(&buf);
        self.scratch = buf;
        sent.unwrap_or_else(|e| panic!("stream write: {e}"));
    }

    #[inline]
    fn send_bytes(&mut self, b: &[u8]) {
        self.frame(b)
            .unwrap_or_else(|e| panic!("stream write: {e}"));
    }

    fn flush(&mut self) {
        // The inherent `flush` (an `io::Result`), not this trait method.
        StreamOut::flush(self).unwrap_or_else(|e| panic!("stream flush: {e}"));
    }
}

/// A Unix stream socket: the receiver listens, each sender connects.
pub struct UnixSocket;

impl Transport for UnixSocket {
    type In = StreamIn;
    type Out = StreamOut<UnixStream>;

    fn receiver(spec: &Spec, announce: &mut dyn FnMut(&str)) -> StreamIn {
        let listener = UnixListener::bind(spec.file("sock")).expect("unix socket: bind");
        announce("");
        let fds = (0..spec.senders)
            .map(|_| listener.accept().expect("unix socket: accept").0.into())
            .collect();
        stream_in(fds, true, false)
    }

    fn sender(spec: &Spec, _token: &str) -> Self::Out {
        StreamOut::new(UnixStream::connect(spec.file("sock")).expect("unix socket: connect"))
    }

    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (StreamIn, Self::Out) {
        let listener = UnixListener::bind(spec.file("sock")).expect("unix socket: bind");
        announce("");
        let (s, _) = listener.accept().expect("unix socket: accept");
        both_ways(s, spec.wait)
    }

    fn pinger(spec: &Spec, _token: &str) -> (StreamIn, Self::Out) {
        let s = UnixStream::connect(spec.file("sock")).expect("unix socket: connect");
        both_ways(s, spec.wait)
    }
}

fn both_ways(s: UnixStream, wait: Wait) -> (StreamIn, StreamOut<UnixStream>) {
    let r: OwnedFd = s.try_clone().expect("unix socket: clone").into();
    (
        stream_in(vec![r], true, wait == Wait::Spin),
        StreamOut::new(s),
    )
}

/// A pipe: a named FIFO per direction and sender.
pub struct Fifo;

fn mkfifo(spec: &Spec, what: &str) {
    nix::unistd::mkfifo(&spec.file(what), nix::sys::stat::Mode::S_IRWXU)
        .unwrap_or_else(|e| panic!("mkfifo {what}: {e}"));
}

/// Opening blocks until the other end opens too.
fn open_read(spec: &Spec, what: &str) -> OwnedFd {
    File::open(spec.file(what))
        .unwrap_or_else(|e| panic!("opening {what}: {e}"))
        .into()
}

fn open_write(spec: &Spec, what: &str) -> File {
    OpenOptions::new()
        .write(true)
        .open(spec.file(what))
        .unwrap_or_else(|e| panic!("opening {what}: {e}"))
}

impl Transport for Fifo {
    type In = StreamIn;
    type Out = StreamOut<File>;

    fn receiver(spec: &Spec, announce: &mut dyn FnMut(&str)) -> StreamIn {
        for i in 0..spec.senders {
            mkfifo(spec, &format!("fifo-{i}"));
        }
        announce("");
        let fds = (0..spec.senders)
            .map(|i| open_read(spec, &format!("fifo-{i}")))
            .collect();
        stream_in(fds, false, false)
    }

    fn sender(spec: &Spec, _token: &str) -> Self::Out {
        StreamOut::new(open_write(spec, &format!("fifo-{}", spec.index)))
    }

    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (StreamIn, Self::Out) {
        mkfifo(spec, "fifo-ping");
        mkfifo(spec, "fifo-pong");
        announce("");
        // Same order as the pinger, so that neither open waits forever.
        let r = open_read(spec, "fifo-ping");
        let w = open_write(spec, "fifo-pong");
        (
            stream_in(vec![r], false, spec.wait == Wait::Spin),
            StreamOut::new(w),
        )
    }

    fn pinger(spec: &Spec, _token: &str) -> (StreamIn, Self::Out) {
        let w = open_write(spec, "fifo-ping");
        let r = open_read(spec, "fifo-pong");
        (
            stream_in(vec![r], false, spec.wait == Wait::Spin),
            StreamOut::new(w),
        )
    }
}
