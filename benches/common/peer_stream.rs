//! Byte streams with length-prefixed frames: a Unix stream socket, and a
//! pipe (one named FIFO per sender, since writes from several processes
//! into one pipe interleave).
//!
//! A frame is a little-endian `u32` length and the body: the bytes, or the
//! [`Msg`] encoded with postcard (shmpsc's default codec).
//! Senders write through a 64 KiB `BufWriter` and flush at the end of a
//! round (after every message in ping-pong). The receiver reads in large
//! chunks into its own buffer and decodes frames in place; with several
//! senders it `poll`s their descriptors.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use super::{seq_of, Inbox, Msg, Outbox, Spec, Transport, Wait, MAX_MESSAGE};

/// Receive buffer: room for the largest frame plus a large read.
const READ_BUF: usize = 4 * MAX_MESSAGE as usize;
/// Send buffer.
const WRITE_BUF: usize = 64 * 1024;

/// One descriptor's receive buffer.
struct FrameReader {
    fd: OwnedFd,
    /// Non-blocking reads: `recv(MSG_DONTWAIT)` on a socket (a socket's
    /// `O_NONBLOCK` would be shared with its writing clone), `O_NONBLOCK`
    /// on a FIFO.
    spin: bool,
    socket: bool,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    fn new(fd: OwnedFd, socket: bool, spin: bool) -> FrameReader {
        if spin && !socket {
            // SAFETY: fcntl on a descriptor we own, with integer arguments.
            unsafe {
                let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
                assert!(fl >= 0, "F_GETFL");
                assert!(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) >= 0);
            }
        }
        FrameReader {
            fd,
            spin,
            socket,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }

    /// The next complete buffered frame: (offset, length) in `buf`.
    #[inline]
    fn frame(&mut self) -> Option<(usize, usize)> {
        let avail = self.end - self.start;
        if avail < 4 {
            return None;
        }
        let mut n = [0u8; 4];
        n.copy_from_slice(&self.buf[self.start..self.start + 4]);
        let len = u32::from_le_bytes(n) as usize;
        assert!(len as u64 <= MAX_MESSAGE, "stream: frame of {len} bytes");
        if avail < 4 + len {
            return None;
        }
        let at = self.start + 4;
        self.start = at + len;
        Some((at, len))
    }

    /// Reads what is there (blocking unless spinning); `false` if nothing was.
    fn fill(&mut self) -> bool {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < MAX_MESSAGE as usize + 4 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = &mut self.buf[self.end..];
        let fd = self.fd.as_raw_fd();
        // SAFETY: reads into the unused tail of our own buffer.
        let n = unsafe {
            if self.socket && self.spin {
                libc::recv(fd, room.as_mut_ptr().cast(), room.len(), libc::MSG_DONTWAIT)
            } else {
                libc::read(fd, room.as_mut_ptr().cast(), room.len())
            }
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock => return false,
                std::io::ErrorKind::Interrupted => return true,
                _ => panic!("stream read: {e}"),
            }
        }
        assert!(n > 0, "stream: the sender closed its end");
        self.end += n as usize;
        true
    }
}

/// The receiving end: one buffered reader per sender.
pub struct StreamIn {
    readers: Vec<FrameReader>,
    current: usize,
}

impl StreamIn {
    fn new(fds: Vec<OwnedFd>, socket: bool, spin: bool) -> StreamIn {
        StreamIn {
            readers: fds
                .into_iter()
                .map(|fd| FrameReader::new(fd, socket, spin))
                .collect(),
            current: 0,
        }
    }

    /// The next frame: (reader, offset, length).
    #[inline]
    fn next(&mut self) -> (usize, usize, usize) {
        let n = self.readers.len();
        loop {
            for k in 0..n {
                let i = (self.current + k) % n;
                if let Some((at, len)) = self.readers[i].frame() {
                    self.current = i;
                    return (i, at, len);
                }
            }
            if n == 1 {
                if !self.readers[0].fill() {
                    std::hint::spin_loop();
                }
                continue;
            }
            let mut fds: Vec<libc::pollfd> = self
                .readers
                .iter()
                .map(|r| libc::pollfd {
                    fd: r.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: `fds` is a valid array of `n` pollfd structures.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, -1) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "poll: {e}");
                continue;
            }
            for (i, p) in fds.iter().enumerate() {
                if p.revents != 0 {
                    self.readers[i].fill();
                }
            }
        }
    }
}

impl Inbox for StreamIn {
    #[inline]
    fn recv_msg(&mut self) -> (u64, usize) {
        let (i, at, len) = self.next();
        let body = &self.readers[i].buf[at..at + len];
        let (m, rest): (Msg, &[u8]) =
            postcard::take_from_bytes(body).unwrap_or_else(|e| panic!("stream: decoding: {e}"));
        assert!(rest.is_empty(), "stream: trailing bytes");
        (m.seq, m.payload.len())
    }

    #[inline]
    fn recv_bytes(&mut self) -> (u64, usize) {
        let (i, at, len) = self.next();
        (seq_of(&self.readers[i].buf[at..at + len]), len)
    }
}

/// The sending end.
pub struct StreamOut<W: Write> {
    w: BufWriter<W>,
    scratch: Vec<u8>,
}

impl<W: Write> StreamOut<W> {
    fn new(w: W) -> StreamOut<W> {
        StreamOut {
            w: BufWriter::with_capacity(WRITE_BUF, w),
            scratch: Vec::new(),
        }
    }

    #[inline]
    fn frame(&mut self, body: &[u8]) {
        let len = (body.len() as u32).to_le_bytes();
        self.w
            .write_all(&len)
            .and_then(|_| self.w.write_all(body))
            .unwrap_or_else(|e| panic!("stream write: {e}"));
    }
}

impl<W: Write> Outbox for StreamOut<W> {
    #[inline]
    fn send_msg(&mut self, m: &Msg) {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let buf = postcard::to_extend(m, buf).unwrap_or_else(|e| panic!("stream: encoding: {e}"));
        self.frame(&buf);
        self.scratch = buf;
    }

    #[inline]
    fn send_bytes(&mut self, b: &[u8]) {
        self.frame(b);
    }

    fn flush(&mut self) {
        self.w
            .flush()
            .unwrap_or_else(|e| panic!("stream flush: {e}"));
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
        StreamIn::new(fds, true, false)
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
        StreamIn::new(vec![r], true, wait == Wait::Spin),
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
        StreamIn::new(fds, false, false)
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
            StreamIn::new(vec![r], false, spec.wait == Wait::Spin),
            StreamOut::new(w),
        )
    }

    fn pinger(spec: &Spec, _token: &str) -> (StreamIn, Self::Out) {
        let w = open_write(spec, "fifo-ping");
        let r = open_read(spec, "fifo-pong");
        (
            StreamIn::new(vec![r], false, spec.wait == Wait::Spin),
            StreamOut::new(w),
        )
    }
}
