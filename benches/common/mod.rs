//! The harness shared by the benchmarks (`benches/throughput.rs`,
//! `benches/latency.rs`) and the comparison report (`examples/report.rs`).
//!
//! Every endpoint runs in its own process: the measuring process re-executes
//! its own binary (`std::env::current_exe()`) with a [`Spec`] in the
//! environment, and [`child_main`] turns that process into the endpoint the
//! spec names. The parent drives its children over their stdin/stdout with
//! one-line commands and replies ("ready", "run N", "done", ...); no sleep is
//! used to synchronize anything. The child process and its replies are the
//! multi-process tests' (`tests/common/process.rs`).
//!
//! One module per peer, each implementing [`Transport`] (crossbeam-channel,
//! the in-process reference, runs its threads in one child instead):
//!
//! | peer | module |
//! |---|---|
//! | shmpsc | `peer_shmpsc` |
//! | ipmpsc 0.5 | `peer_ipmpsc` |
//! | ipc-channel | `peer_ipc_channel` |
//! | Unix stream socket, pipe (FIFO) | `peer_stream` |
//! | crossbeam-channel, two threads of one process | `peer_crossbeam` |
#![allow(dead_code)] // each including binary uses a different part

pub mod peer_async;
pub mod peer_crossbeam;
pub mod peer_floor;
pub mod peer_ipc_channel;
pub mod peer_ipmpsc;
pub mod peer_shmpsc;
pub mod peer_stream;
#[path = "../../tests/common/process.rs"]
mod process;
pub mod stream;

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use process::Child;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Message sizes measured, in bytes (see [`Msg`] for what a size means).
pub const SIZES: [usize; 4] = [16, 64, 1024, 64 * 1024];
/// Numbers of sender processes measured.
pub const SENDERS: [usize; 3] = [1, 2, 4];
/// The latency comparisons: every peer's serde path, and shmpsc's bytes path.
pub const LATENCY_ROWS: [(Peer, Path); 10] = [
    (Peer::Floor, Path::Bytes),
    (Peer::Shmpsc, Path::Serde),
    (Peer::Shmpsc, Path::Bytes),
    (Peer::Ipmpsc, Path::Serde),
    (Peer::IpcChannel, Path::Serde),
    (Peer::UnixSocket, Path::Serde),
    (Peer::Pipe, Path::Serde),
    (Peer::Crossbeam, Path::Serde),
    (Peer::ShmpscAsync, Path::Serde),
    (Peer::TokioUnix, Path::Serde),
];
/// Message size of the latency comparisons.
pub const LATENCY_SIZE: usize = 64;
/// Ring size of the shared-memory peers (shmpsc, ipmpsc).
pub const RING_BYTES: u64 = 8 << 20;
/// Largest encoded message: the largest size plus room for framing.
pub const MAX_MESSAGE: u64 = 64 * 1024 + 256;
/// Bytes of integer fields in a [`Msg`].
pub const MSG_HEADER: usize = 16;
/// The sequence number that tells a ponger to exit.
const STOP: u64 = u64::MAX;
/// The environment variables that make a process a benchmark endpoint.
const SPEC_VAR: &str = "SHMPSC_BENCH_SPEC";
const TOKEN_VAR: &str = "SHMPSC_BENCH_TOKEN";

// ------------------------------------------------------------------ model

/// A channel implementation under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// This crate, one `send` (or `send_bytes`) per message: each visible
    /// at once.
    Shmpsc,
    /// This crate through `Sender::batch`: messages staged and sent in
    /// blocks, flushed at the end of a round, and on the bytes path received
    /// with `recv_bytes_many_with` (every message available at once): the
    /// honest counterpart of the buffered streams.
    ShmpscBatch,
    /// This crate, received through `Receiver::zero_copy`: serde messages
    /// decoded in place, the payload borrowed from the ring (no
    /// allocation). The bytes path is shmpsc's own.
    ShmpscBorrowed,
    /// ipmpsc 0.5: a shared-memory ring with a process-shared mutex and condvar.
    Ipmpsc,
    /// ipc-channel (Servo): Unix sockets with bincode 1.
    IpcChannel,
    /// A Unix stream socket, length-prefixed frames, BufWriter and a buffered reader.
    UnixSocket,
    /// A pipe (one FIFO per sender), framed and buffered as the socket.
    Pipe,
    /// crossbeam-channel between threads of one process: the in-process reference.
    Crossbeam,
    /// The floor: a raw atomic ping-pong between the two processes (one
    /// shared word per direction). Latency rows only: not in [`Peer::ALL`].
    Floor,
    /// This crate received with `recv_async` in a current-thread tokio
    /// runtime (latency rows only).
    ShmpscAsync,
    /// A Unix stream socket read through tokio's `UnixStream` (latency rows
    /// only).
    TokioUnix,
}

impl Peer {
    /// Every peer, in report order.
    pub const ALL: [Peer; 8] = [
        Peer::Shmpsc,
        Peer::ShmpscBatch,
        Peer::ShmpscBorrowed,
        Peer::Ipmpsc,
        Peer::IpcChannel,
        Peer::UnixSocket,
        Peer::Pipe,
        Peer::Crossbeam,
    ];

    /// The peer's name in benchmark ids, tables and command lines.
    /// Peers of the latency rows only: the raw ping-pong floor, and the
    /// async receivers.
    pub const LATENCY_ONLY: [Peer; 3] = [Peer::Floor, Peer::ShmpscAsync, Peer::TokioUnix];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Shmpsc => "shmpsc",
            Peer::ShmpscBatch => "shmpsc-batch",
            Peer::ShmpscBorrowed => "shmpsc-borrowed",
            Peer::Ipmpsc => "ipmpsc",
            Peer::IpcChannel => "ipc-channel",
            Peer::UnixSocket => "unix-socket",
            Peer::Pipe => "pipe",
            Peer::Crossbeam => "crossbeam",
            Peer::Floor => "floor",
            Peer::ShmpscAsync => "shmpsc-async",
            Peer::TokioUnix => "tokio-unix",
        }
    }

    /// Parses [`Peer::name`].
    pub fn parse(s: &str) -> Option<Peer> {
        Peer::ALL
            .into_iter()
            .chain(Peer::LATENCY_ONLY)
            .find(|p| p.name() == s)
    }
}

/// How messages are made and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    /// A [`Msg`] through serde: each peer's own codec, postcard (shmpsc's
    /// default) for shmpsc and the streams, bincode 1 inside ipmpsc and
    /// ipc-channel.
    Serde,
    /// Raw bytes: `send_bytes`/`recv_bytes_with` in shmpsc, byte channels or
    /// bare frames elsewhere.
    Bytes,
}

impl Path {
    /// Both paths.
    pub const ALL: [Path; 2] = [Path::Serde, Path::Bytes];

    /// The path's name.
    pub fn name(self) -> &'static str {
        match self {
            Path::Serde => "serde",
            Path::Bytes => "bytes",
        }
    }

    fn parse(s: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// How a receiver waits for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Wait {
    /// A `try_recv` loop (non-blocking reads for the streams).
    Spin,
    /// A blocking `recv` (or read).
    Block,
}

impl Wait {
    /// Both ways.
    pub const ALL: [Wait; 2] = [Wait::Spin, Wait::Block];

    /// The way's name.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Block => "block",
        }
    }

    fn parse(s: &str) -> Option<Wait> {
        Wait::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// The serde message: integers plus a byte payload. A message of size `s`
/// has `s - 16` payload bytes (16 bytes count for the integers).
///
/// The payload is a `Cow` so that senders send a borrowed template without
/// allocating; receivers decode into an owned buffer, as a user would.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Msg {
    /// Sequence number, per sender.
    pub seq: u64,
    /// Index of the sending process.
    pub sender: u32,
    /// A tag, as a user's message would have.
    pub tag: u32,
    /// The payload.
    #[serde(
        serialize_with = "serde_bytes::serialize",
        deserialize_with = "owned_payload"
    )]
    pub payload: Cow<'static, [u8]>,
}

fn owned_payload<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Cow<'static, [u8]>, D::Error> {
    let b: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
    Ok(Cow::Owned(b.into_vec()))
}

impl Msg {
    /// A template message of `size` bytes (payload bytes plus 16).
    pub fn template(size: usize, sender: u32) -> Msg {
        let payload: Vec<u8> = (0..size.saturating_sub(MSG_HEADER))
            .map(|i| i as u8)
            .collect();
        Msg {
            seq: 0,
            sender,
            tag: 7,
            payload: Cow::Borrowed(Box::leak(payload.into_boxed_slice())),
        }
    }
}

/// Reads the sequence number at the front of a bytes-path message.
#[inline]
pub fn seq_of(bytes: &[u8]) -> u64 {
    let mut s = [0u8; 8];
    s.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(s)
}

/// The sending end of a peer, as the harness drives it.
pub trait Outbox {
    /// Sends a serde message.
    fn send_msg(&mut self, m: &Msg);
    /// Sends bytes (the first 8 are the sequence number).
    fn send_bytes(&mut self, b: &[u8]);
    /// Pushes out anything buffered (streams).
    fn flush(&mut self) {}
}

/// The receiving end of a peer, as the harness drives it. Whether it spins
/// or blocks was decided when it was made.
pub trait Inbox {
    /// Receives a serde message: its sequence number and payload length.
    fn recv_msg(&mut self) -> (u64, usize);
    /// Receives a bytes message: its sequence number and length.
    fn recv_bytes(&mut self) -> (u64, usize);
}

/// A peer whose endpoints live in separate processes.
pub trait Transport {
    /// Receiving end.
    type In: Inbox;
    /// Sending end.
    type Out: Outbox;
    /// The throughput receiver, for `spec.senders` senders: `announce` gets
    /// the token (or tokens, space-separated) senders need, and must be
    /// called before anything that waits for them.
    fn receiver(spec: &Spec, announce: &mut dyn FnMut(&str)) -> Self::In;
    /// Throughput sender number `spec.index`, given the receiver's token.
    fn sender(spec: &Spec, token: &str) -> Self::Out;
    /// The latency echo end, started first.
    fn ponger(spec: &Spec, announce: &mut dyn FnMut(&str)) -> (Self::In, Self::Out);
    /// The latency measuring end, given the ponger's token.
    fn pinger(spec: &Spec, token: &str) -> (Self::In, Self::Out);
}

// ------------------------------------------------------------------- spec

/// What a child process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Throughput receiver.
    Receiver,
    /// Throughput sender.
    Sender,
    /// Latency measuring end.
    Pinger,
    /// Latency echo end.
    Ponger,
    /// shmpsc receiver blocked in `recv` while idle: reports its CPU time.
    Idle,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Receiver => "receiver",
            Role::Sender => "sender",
            Role::Pinger => "pinger",
            Role::Ponger => "ponger",
            Role::Idle => "idle",
        }
    }
    fn parse(s: &str) -> Option<Role> {
        [
            Role::Receiver,
            Role::Sender,
            Role::Pinger,
            Role::Ponger,
            Role::Idle,
        ]
        .into_iter()
        .find(|r| r.name() == s)
    }
}

/// Everything a child needs to know, passed in one environment variable.
#[derive(Debug, Clone)]
pub struct Spec {
    /// What this process is.
    pub role: Role,
    /// Which peer.
    pub peer: Peer,
    /// Serde or bytes.
    pub path: Path,
    /// Message size.
    pub size: usize,
    /// Number of senders of the run.
    pub senders: usize,
    /// This sender's index.
    pub index: usize,
    /// Spinning or blocking receiver.
    pub wait: Wait,
    /// Unique base name for channels and files of this run.
    pub name: String,
    /// A scratch directory for this run (sockets, FIFOs, ring files).
    pub dir: PathBuf,
}

impl Spec {
    fn encode(&self) -> String {
        format!(
            "{};{};{};{};{};{};{};{};{}",
            self.role.name(),
            self.peer.name(),
            self.path.name(),
            self.size,
            self.senders,
            self.index,
            self.wait.name(),
            self.name,
            self.dir.display()
        )
    }

    fn decode(s: &str) -> Option<Spec> {
        let f: Vec<&str> = s.splitn(9, ';').collect();
        if f.len() != 9 {
            return None;
        }
        Some(Spec {
            role: Role::parse(f[0])?,
            peer: Peer::parse(f[1])?,
            path: Path::parse(f[2])?,
            size: f[3].parse().ok()?,
            senders: f[4].parse().ok()?,
            index: f[5].parse().ok()?,
            wait: Wait::parse(f[6])?,
            name: f[7].to_owned(),
            dir: PathBuf::from(f[8]),
        })
    }

    /// A path in this run's scratch directory.
    pub fn file(&self, what: &str) -> PathBuf {
        self.dir.join(what)
    }
}

// ----------------------------------------------------------- child side

/// If this process was started as a benchmark endpoint, runs it and returns
/// `true` (the caller then exits); otherwise returns `false` at once.
///
/// Call it first thing in `main` of every binary that includes this module.
pub fn child_main() -> bool {
    let Ok(raw) = std::env::var(SPEC_VAR) else {
        return false;
    };
    let spec = Spec::decode(&raw).unwrap_or_else(|| panic!("bad {SPEC_VAR}: {raw:?}"));
    let token = std::env::var(TOKEN_VAR).unwrap_or_default();
    match spec.peer {
        Peer::Shmpsc if spec.role == Role::Idle => peer_shmpsc::idle(&spec),
        Peer::Shmpsc => run::<peer_shmpsc::Shmpsc>(&spec, &token),
        Peer::ShmpscBatch => run::<peer_shmpsc::ShmpscBatch>(&spec, &token),
        Peer::ShmpscBorrowed => run::<peer_shmpsc::ShmpscBorrowed>(&spec, &token),
        Peer::Ipmpsc => run::<peer_ipmpsc::Ipmpsc>(&spec, &token),
        Peer::IpcChannel => run::<peer_ipc_channel::IpcChannel>(&spec, &token),
        Peer::UnixSocket => run::<peer_stream::UnixSocket>(&spec, &token),
        Peer::Pipe => run::<peer_stream::Fifo>(&spec, &token),
        Peer::Crossbeam => peer_crossbeam::run(&spec),
        Peer::Floor => run::<peer_floor::Floor>(&spec, &token),
        Peer::ShmpscAsync => run::<peer_async::ShmpscAsync>(&spec, &token),
        Peer::TokioUnix => run::<peer_async::TokioUnix>(&spec, &token),
    }
    true
}

/// Writes one reply line to the parent.
pub fn reply(line: &str) {
    process::emit(line);
}

/// The parent's commands, one per line, until it closes our stdin.
pub fn commands() -> impl Iterator<Item = String> {
    std::io::stdin().lines().map_while(Result::ok)
}

fn arg(cmd: &str) -> u64 {
    cmd.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad command {cmd:?}"))
}

fn run<T: Transport>(spec: &Spec, token: &str) {
    match spec.role {
        Role::Receiver => {
            let mut inbox = T::receiver(spec, &mut |t| reply(&format!("ready {t}")));
            receiver_loop(&mut inbox, spec);
        }
        Role::Sender => {
            let mut out = T::sender(spec, token);
            reply("ready");
            sender_loop(&mut out, spec);
        }
        Role::Ponger => {
            let (mut inbox, mut out) = T::ponger(spec, &mut |t| reply(&format!("ready {t}")));
            pong_loop(&mut inbox, &mut out, spec);
        }
        Role::Pinger => {
            let (mut inbox, mut out) = T::pinger(spec, token);
            reply("ready");
            ping_loop(&mut inbox, &mut out, spec);
        }
        Role::Idle => unreachable!(),
    }
}

/// Produces the messages of one sender.
pub struct Source {
    path: Path,
    msg: Msg,
    bytes: Vec<u8>,
    seq: u64,
}

impl Source {
    /// A source of `spec.size`-byte messages on `spec.path`.
    pub fn new(spec: &Spec) -> Source {
        Source {
            path: spec.path,
            msg: Msg::template(spec.size, spec.index as u32),
            bytes: (0..spec.size).map(|i| i as u8).collect(),
            seq: 0,
        }
    }

    /// Sends `n` messages.
    pub fn send_n<O: Outbox>(&mut self, out: &mut O, n: u64) {
        match self.path {
            Path::Serde => {
                for _ in 0..n {
                    self.msg.seq = self.seq;
                    out.send_msg(&self.msg);
                    self.seq += 1;
                }
            }
            Path::Bytes => {
                for _ in 0..n {
                    self.bytes[..8].copy_from_slice(&self.seq.to_le_bytes());
                    out.send_bytes(&self.bytes);
                    self.seq += 1;
                }
            }
        }
        out.flush();
    }

    /// Sends one message with sequence number `seq`.
    pub fn send_one<O: Outbox>(&mut self, out: &mut O, seq: u64) {
        match self.path {
            Path::Serde => {
                self.msg.seq = seq;
                out.send_msg(&self.msg);
            }
            Path::Bytes => {
                self.bytes[..8].copy_from_slice(&seq.to_le_bytes());
                out.send_bytes(&self.bytes);
            }
        }
        out.flush();
    }
}

/// Payload length a receiver must see for each message of `spec`.
pub fn expected_len(spec: &Spec) -> usize {
    match spec.path {
        Path::Serde => spec.size.saturating_sub(MSG_HEADER),
        Path::Bytes => spec.size,
    }
}

/// Receives `n` messages and returns their total payload length.
pub fn receive_n<I: Inbox>(inbox: &mut I, path: Path, n: u64) -> u64 {
    let mut bytes = 0u64;
    match path {
        Path::Serde => {
            for _ in 0..n {
                bytes += inbox.recv_msg().1 as u64;
            }
        }
        Path::Bytes => {
            for _ in 0..n {
                bytes += inbox.recv_bytes().1 as u64;
            }
        }
    }
    bytes
}

/// Receiver: "run N" (N messages in all) -> "done".
fn receiver_loop<I: Inbox>(inbox: &mut I, spec: &Spec) {
    for cmd in commands() {
        let total = arg(&cmd);
        let bytes = receive_n(inbox, spec.path, total);
        assert_eq!(
            bytes,
            total * expected_len(spec) as u64,
            "{}: wrong payload bytes",
            spec.peer.name()
        );
        reply("done");
    }
}

/// Sender: "run N" (N messages from this sender) -> "sent".
fn sender_loop<O: Outbox>(out: &mut O, spec: &Spec) {
    let mut src = Source::new(spec);
    for cmd in commands() {
        src.send_n(out, arg(&cmd));
        reply("sent");
    }
}

#[inline]
fn recv_one<I: Inbox>(inbox: &mut I, path: Path) -> u64 {
    match path {
        Path::Serde => inbox.recv_msg().0,
        Path::Bytes => inbox.recv_bytes().0,
    }
}

/// Ponger: echoes every message until the stop message.
fn pong_loop<I: Inbox, O: Outbox>(inbox: &mut I, out: &mut O, spec: &Spec) {
    let mut src = Source::new(spec);
    loop {
        let seq = recv_one(inbox, spec.path);
        if seq == STOP {
            return;
        }
        src.send_one(out, seq);
    }
}

/// A latency histogram in nanoseconds (1 ns to 100 s, 3 digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds")
}

/// Formats the "stats" reply of a histogram.
pub fn stats_line(h: &Histogram<u64>) -> String {
    format!(
        "stats {} {} {} {} {} {} {:.1}",
        h.len(),
        h.min(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.mean()
    )
}

/// One round trip: sends `seq`, waits for its echo; returns the round-trip time.
#[inline]
pub fn round_trip<I: Inbox, O: Outbox>(
    inbox: &mut I,
    out: &mut O,
    src: &mut Source,
    path: Path,
    seq: u64,
) -> Duration {
    let t0 = Instant::now();
    src.send_one(out, seq);
    let got = recv_one(inbox, path);
    let rtt = t0.elapsed();
    assert_eq!(got, seq, "echo out of order");
    rtt
}

/// Pinger: "ping N" -> N round trips, "pinged <total one-way ns>";
/// "stats" -> the one-way histogram; "reset" clears it. On end of input,
/// tells the ponger to stop.
fn ping_loop<I: Inbox, O: Outbox>(inbox: &mut I, out: &mut O, spec: &Spec) {
    let mut src = Source::new(spec);
    let mut hist = histogram();
    let mut seq = 0u64;
    for cmd in commands() {
        ping_command(&cmd, &mut hist, |h, n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let rtt = round_trip(inbox, out, &mut src, spec.path, seq);
                seq += 1;
                total += rtt;
                h.saturating_record((rtt.as_nanos() / 2) as u64);
            }
            total / 2
        });
    }
    src.send_one(out, STOP);
}

/// Executes one pinger command; `pings(hist, n)` does `n` round trips,
/// records them, and returns their total one-way time.
pub fn ping_command(
    cmd: &str,
    hist: &mut Histogram<u64>,
    mut pings: impl FnMut(&mut Histogram<u64>, u64) -> Duration,
) {
    if cmd.starts_with("ping") {
        let total = pings(hist, arg(cmd));
        reply(&format!("pinged {}", total.as_nanos()));
    } else if cmd == "stats" {
        reply(&stats_line(hist));
    } else if cmd == "reset" {
        hist.reset();
        reply("reset");
    } else {
        panic!("unknown command {cmd:?}");
    }
}

/// Spins on `try_once` until it yields.
#[inline]
pub fn spin<R>(mut try_once: impl FnMut() -> Option<R>) -> R {
    loop {
        if let Some(r) = try_once() {
            return r;
        }
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------- parent side

/// Starts this binary as the endpoint `spec`, with `token` from its peer.
/// Dropping the child closes its stdin (its cue to exit), waits a little,
/// then kills it: no child outlives its guard, even when a benchmark panics.
fn spawn(spec: &Spec, token: &str) -> Child {
    // `/proc/self/exe` still runs this very binary when a rebuild has
    // replaced (deleted) the file at `current_exe()` meanwhile.
    let proc_exe = std::path::Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        std::env::current_exe().expect("current_exe")
    };
    let what = format!(
        "{} {} #{} ({} {} B {})",
        spec.peer.name(),
        spec.role.name(),
        spec.index,
        spec.path.name(),
        spec.size,
        spec.wait.name()
    );
    let mut cmd = Command::new(exe);
    cmd.env(SPEC_VAR, spec.encode()).env(TOKEN_VAR, token);
    Child::spawn(&mut cmd, &what).linger(Duration::from_secs(3))
}

/// The unique names and scratch directory of one run, removed on drop.
pub struct Scratch {
    name: String,
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // tmpfs when there is one: the ring files of ipmpsc live here.
        let base = PathBuf::from("/dev/shm");
        let base = if base.is_dir() {
            base
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("shmpsc-{name}"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch { name, dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Left behind only if a receiver was killed.
        for suffix in ["", ".ping", ".pong", ".idle"] {
            let _ = shmpsc::remove(&format!("{}{suffix}", self.name));
        }
    }
}

/// Throughput of `senders` sender processes into one receiver process.
/// Field order is drop order: processes first, then their files.
pub struct ThroughputRig {
    /// The sender processes (none for crossbeam: its threads live in `receiver`).
    senders: Vec<Child>,
    receiver: Child,
    n: usize,
    _scratch: Scratch,
}

impl ThroughputRig {
    /// Starts the processes of one configuration and waits until they are
    /// connected.
    pub fn new(peer: Peer, path: Path, size: usize, senders: usize) -> ThroughputRig {
        let scratch = Scratch::new();
        let spec = |role, index| Spec {
            role,
            peer,
            path,
            size,
            senders,
            index,
            wait: Wait::Block,
            name: scratch.name.clone(),
            dir: scratch.dir.clone(),
        };
        let mut receiver = spawn(&spec(Role::Receiver, 0), "");
        let token = receiver.expect_event("ready");
        let mut procs = Vec::new();
        if peer != Peer::Crossbeam {
            let tokens: Vec<&str> = token.split_whitespace().collect();
            for i in 0..senders {
                let t = tokens.get(i).or(tokens.first()).copied().unwrap_or("");
                procs.push(spawn(&spec(Role::Sender, i), t));
            }
            for p in &mut procs {
                p.expect_event("ready");
            }
        }
        ThroughputRig {
            senders: procs,
            receiver,
            n: senders,
            _scratch: scratch,
        }
    }

    /// One round: every sender sends `per_sender` messages; returns the time
    /// from the "go" to the receiver having received them all.
    pub fn round(&mut self, per_sender: u64) -> Duration {
        let t0 = Instant::now();
        self.receiver
            .send_line(&format!("run {}", per_sender * self.n as u64));
        for s in &mut self.senders {
            s.send_line(&format!("run {per_sender}"));
        }
        self.receiver.expect_event("done");
        let elapsed = t0.elapsed();
        for s in &mut self.senders {
            s.expect_event("sent");
        }
        elapsed
    }

    /// Number of senders.
    pub fn senders(&self) -> usize {
        self.n
    }
}

/// One-way latency by ping-pong between two processes (two threads of one
/// process for crossbeam). Field order is drop order: the pinger goes
/// first and, its input closed, tells the ponger to stop.
pub struct LatencyRig {
    pinger: Child,
    ponger: Option<Child>,
    _scratch: Scratch,
}

/// Latency percentiles, in nanoseconds, one way (half a round trip).
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl LatencyRig {
    /// Starts the two ends and waits until they are connected.
    pub fn new(peer: Peer, path: Path, size: usize, wait: Wait) -> LatencyRig {
        let scratch = Scratch::new();
        let spec = |role| Spec {
            role,
            peer,
            path,
            size,
            senders: 1,
            index: 0,
            wait,
            name: scratch.name.clone(),
            dir: scratch.dir.clone(),
        };
        let (pinger, ponger) = if peer == Peer::Crossbeam {
            let mut p = spawn(&spec(Role::Pinger), "");
            p.expect_event("ready");
            (p, None)
        } else {
            let mut ponger = spawn(&spec(Role::Ponger), "");
            let token = ponger.expect_event("ready");
            let mut pinger = spawn(&spec(Role::Pinger), &token);
            pinger.expect_event("ready");
            (pinger, Some(ponger))
        };
        LatencyRig {
            pinger,
            ponger,
            _scratch: scratch,
        }
    }

    /// `n` round trips; returns their total one-way time (half the round trips).
    pub fn ping(&mut self, n: u64) -> Duration {
        self.pinger.send_line(&format!("ping {n}"));
        let ns: u64 = self
            .pinger
            .expect_event("pinged")
            .parse()
            .expect("pinged ns");
        Duration::from_nanos(ns)
    }

    /// Clears the histogram of recorded one-way latencies.
    pub fn reset(&mut self) {
        self.pinger.send_line("reset");
        self.pinger.expect_event("reset");
    }

    /// Percentiles of every one-way latency recorded since the last reset.
    pub fn percentiles(&mut self) -> Percentiles {
        self.pinger.send_line("stats");
        let line = self.pinger.expect_event("stats");
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().expect("stats number"))
            .collect();
        Percentiles {
            count: v[0] as u64,
            min: v[1] as u64,
            p50: v[2] as u64,
            p99: v[3] as u64,
            p999: v[4] as u64,
            max: v[5] as u64,
            mean: v[6],
        }
    }
}

/// CPU time of a shmpsc receiver blocked in `recv` on an idle channel for
/// `window`, as a fraction of one core.
pub fn idle_receiver_cpu(window: Duration) -> f64 {
    let scratch = Scratch::new();
    let spec = Spec {
        role: Role::Idle,
        peer: Peer::Shmpsc,
        path: Path::Serde,
        size: 16,
        senders: 1,
        index: 0,
        wait: Wait::Block,
        name: scratch.name.clone(),
        dir: scratch.dir.clone(),
    };
    let mut rx = spawn(&spec, "");
    let name = rx.expect_event("ready");
    let tx = shmpsc::Sender::<u64>::open(&name).expect("open the idle channel");
    rx.send_line("go");
    rx.expect_event("waiting");
    // The measurement window (not a synchronization: the child measures its
    // own wall time and CPU time).
    std::thread::sleep(window);
    tx.send(1).expect("wake the idle receiver");
    let v: Vec<f64> = rx
        .expect_event("idle")
        .split_whitespace()
        .map(|x| x.parse().expect("idle number"))
        .collect();
    v[0] / v[1]
}

/// Reads `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
