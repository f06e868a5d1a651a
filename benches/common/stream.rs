//! Length-prefixed frames over a byte stream (a Unix stream socket or a
//! pipe): the stream peer that shmpsc is measured against, shared by the
//! benchmarks (`peer_stream`) and `shmpsc bench` (`src/bin/shmpsc.rs`, which
//! includes this file with `#[path]`; so only std and `nix` here).
//!
//! A frame is a little-endian `u32` length and the body. Senders write
//! through a 64 KiB `BufWriter` and flush when they have no more to send.
//! The receiver reads in large chunks into its own buffer and hands out
//! frames in place; with several senders it `poll`s their descriptors.

use std::io::{self, BufWriter, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::libc;

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
    max_frame: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    fn new(fd: OwnedFd, socket: bool, spin: bool, max_frame: usize) -> FrameReader {
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
            max_frame,
            // Room for the largest frame plus a large read.
            buf: vec![0; 4 * max_frame.max(WRITE_BUF)],
            start: 0,
            end: 0,
        }
    }

    /// The next complete buffered frame: (offset, length) in `buf`.
    #[inline]
    fn frame(&mut self) -> io::Result<Option<(usize, usize)>> {
        let avail = self.end - self.start;
        if avail < 4 {
            return Ok(None);
        }
        let mut n = [0u8; 4];
        n.copy_from_slice(&self.buf[self.start..self.start + 4]);
        let len = u32::from_le_bytes(n) as usize;
        if len > self.max_frame {
            let e = format!("a frame of {len} bytes (at most {})", self.max_frame);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if avail < 4 + len {
            return Ok(None);
        }
        let at = self.start + 4;
        self.start = at + len;
        Ok(Some((at, len)))
    }

    /// Reads what is there (blocking unless spinning); `false` if nothing
    /// was. The end of the stream is an `UnexpectedEof` error.
    fn fill(&mut self) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < self.max_frame + 4 {
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
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(false),
                io::ErrorKind::Interrupted => Ok(true),
                _ => Err(e),
            };
        }
        if n == 0 {
            let e = "the sender closed its end";
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, e));
        }
        self.end += n as usize;
        Ok(true)
    }
}

/// The receiving end: one buffered reader per sender.
pub struct StreamIn {
    readers: Vec<FrameReader>,
    current: usize,
}

impl StreamIn {
    /// Reads frames of at most `max_frame` bytes from `fds`: sockets or
    /// pipes, with blocking reads or (`spin`) non-blocking ones.
    pub fn new(fds: Vec<OwnedFd>, socket: bool, spin: bool, max_frame: usize) -> StreamIn {
        StreamIn {
            readers: fds
                .into_iter()
                .map(|fd| FrameReader::new(fd, socket, spin, max_frame))
                .collect(),
            current: 0,
        }
    }

    /// The next frame's body. When a sender closes its end, the error is
    /// `UnexpectedEof`.
    #[inline]
    pub fn next(&mut self) -> io::Result<&[u8]> {
        let n = self.readers.len();
        loop {
            for k in 0..n {
                let i = (self.current + k) % n;
                if let Some((at, len)) = self.readers[i].frame()? {
                    self.current = i;
                    return Ok(&self.readers[i].buf[at..at + len]);
                }
            }
            if n == 1 {
                if !self.readers[0].fill()? {
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
                let e = io::Error::last_os_error();
                assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll: {e}");
                continue;
            }
            for (i, p) in fds.iter().enumerate() {
                if p.revents != 0 {
                    self.readers[i].fill()?;
                }
            }
        }
    }
}

/// The sending end.
pub struct StreamOut<W: Write> {
    w: BufWriter<W>,
    /// For the caller to encode a body into, keeping its allocation.
    pub scratch: Vec<u8>,
}

impl<W: Write> StreamOut<W> {
    /// Writes frames to `w`, through a 64 KiB buffer.
    pub fn new(w: W) -> StreamOut<W> {
        StreamOut {
            w: BufWriter::with_capacity(WRITE_BUF, w),
            scratch: Vec::new(),
        }
    }

    /// Writes one frame (into the buffer, until it is full).
    #[inline]
    pub fn frame(&mut self, body: &[u8]) -> io::Result<()> {
        let len = u32::try_from(body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(body)
    }

    /// Pushes out the buffered frames.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
