//! Log aggregation over a shmpsc channel: structured records from many
//! processes to one log daemon.
//!
//! Each process sends [`LogRecord`]s (time, level, target, message, fields,
//! pid, process name) to a named channel through a [`LogSink`]; a daemon
//! creates the channel and receives them, e.g. with
//! `for record in &rx { println!("{record}") }`. Two front ends feed a sink:
//!
//! - [`ShmLogger`] (cargo feature `log`), a [`log::Log`](::log::Log);
//! - [`ShmLayer`] (cargo feature `tracing`), a
//!   [`tracing_subscriber::Layer`].
//!
//! # Policy: never block the caller
//!
//! A log call must not wait for the daemon. A sink sends with
//! [`Sender::try_send`]: when the ring is full (the daemon is slow or
//! stopped), the record is **dropped and counted** ([`LogSink::dropped`]).
//! Records too large for the channel ([`Builder::max_message_size`]) are
//! dropped and counted too. A log call never opens the channel (an opening
//! can wait up to a second for a channel that its creator is still setting
//! up): the only waits it can see are another thread of the same process
//! in the middle of its own `try_send`, and the sink's lock, which is held
//! only to copy or swap the sender, never across a system call that waits.
//!
//! Each sink has a **reconnecting thread** of its own (one small thread,
//! started the first time the sink is without a receiver, asleep on a
//! condition variable while connected). When the daemon's receiver is gone
//! (dropped, or its process died and the ring filled up), or there was no
//! daemon yet, that thread reopens the channel, at most once per
//! [`RECONNECT_INTERVAL`] (one second), so a restarted daemon gets the logs
//! again; records logged while no daemon is there are dropped and counted.
//! [`LogSink::new`] opens the channel on the caller's thread only if it is
//! ready at that moment (checked without waiting), and leaves it to the
//! thread otherwise. A daemon restarted after a crash takes the channel
//! over with [`channel`](crate::channel) and receives every record still
//! in the ring. A sink created before its daemon started connects the same
//! way; [`LogSink::wait_connected`] waits for it, for a program whose first
//! records matter.
//!
//! A child made by `fork` (without `exec`) that inherits a sink gets a
//! reconnecting thread of its own, and its own sender, when it logs (its
//! copy of the parent's sender refuses to send, see
//! [`Rejection::Forked`]). Its log calls never touch the parent's
//! connection: a lock that another thread of the parent held at the fork
//! stays held in the child's copy, so the child keeps a connection of its
//! own, found without taking any lock. The first record the child logs is
//! dropped and counted while its thread connects. This holds down to
//! [`MAX_FORK_DEPTH`] levels of `fork` below the process that made the
//! sink; deeper, records are dropped and counted.
//!
//! # The daemon
//!
//! The daemon keeps the [`Sender`] that [`channel`](crate::channel)
//! returns, so its receive loop never ends with `Disconnected` while logging
//! processes come and go (see the crate docs, "Disconnection"):
//!
//! ```no_run
//! use shmpsc::logging::LogRecord;
//!
//! let (_keep, rx) = shmpsc::channel::<LogRecord>("logs")?;
//! for record in &rx {
//!     println!("{record}");
//! }
//! # Ok::<(), shmpsc::OpenError>(())
//! ```
//!
//! `examples/log_daemon.rs` is a complete daemon with per-source counts,
//! and a demo that runs it with crashing workers and a daemon restart.
//!
//! [`Builder::max_message_size`]: crate::Builder::max_message_size
#![deny(unsafe_code)]

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{
    Builder, Codec, OpenError, OpenErrorKind, Receiver, ReceiverState, Rejection, SendTimeoutError,
    Sender, TrySendError,
};

#[cfg(feature = "log")]
mod log;
#[cfg(feature = "tracing")]
mod tracing;

/// Test hooks of the sink (shmpsc's own tests only).
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod test_hooks;

/// Just before a connection attempt opens the channel (see `test_hooks`).
#[cfg(feature = "test-hooks")]
fn at_attempt(name: &str) {
    test_hooks::at_attempt(name);
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
fn at_attempt(_name: &str) {}

#[cfg(feature = "log")]
pub use self::log::ShmLogger;
#[cfg(feature = "tracing")]
pub use self::tracing::ShmLayer;

/// How often, at most, a [`LogSink`] without a live receiver tries to
/// reopen its channel: one second.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// The severity of a [`LogRecord`], most severe first (the levels of both
/// `log` and `tracing`).
///
/// ```
/// use shmpsc::logging::Level;
/// assert!(Level::Error < Level::Info);
/// assert_eq!(Level::Warn.to_string(), "WARN");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something may be wrong.
    Warn,
    /// Normal operation.
    Info,
    /// Detail for debugging.
    Debug,
    /// Fine-grained detail.
    Trace,
}

impl Level {
    /// The level's name in capitals: `"ERROR"`, `"WARN"`, `"INFO"`,
    /// `"DEBUG"` or `"TRACE"`.
    ///
    /// ```
    /// assert_eq!(shmpsc::logging::Level::Debug.as_str(), "DEBUG");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One structured log record, as sent over the channel.
///
/// Its [`Display`](fmt::Display) form is one line:
/// `2024-05-01T12:00:00.123456Z INFO  [worker 4242] app::jobs: done job=7`
/// (UTC time, level, process name and pid, target, message, fields).
///
/// ```
/// use shmpsc::logging::{Level, LogRecord};
/// let record = LogRecord::new(Level::Info, "app::jobs", "done").with_field("job", 7);
/// assert_eq!(record.pid, std::process::id());
/// assert_eq!(record.fields, [("job".to_string(), "7".to_string())]);
/// let line = record.to_string();
/// assert!(line.contains("INFO"));
/// assert!(line.ends_with("app::jobs: done job=7"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When the record was made: nanoseconds since the Unix epoch (UTC).
    pub time_unix_ns: u64,
    /// Severity.
    pub level: Level,
    /// Where it comes from: the module path, or the target given to the
    /// logging macro.
    pub target: String,
    /// The formatted message.
    pub message: String,
    /// Structured fields (key-value pairs of `log` or fields of a `tracing`
    /// event), values formatted as text, in the order they were given.
    pub fields: Vec<(String, String)>,
    /// Process id of the process that logged it.
    pub pid: u32,
    /// Name of the program that logged it (its executable's file name).
    pub process: String,
}

/// The name of this process's program, computed once.
///
/// Never waits: a log call may run in a child made by `fork` while a
/// thread of the parent was storing the name (in the child, that store
/// never completes). Only the thread that wins `STORING` stores it; until
/// it is stored, the name is computed again for each record.
fn process_name() -> Cow<'static, str> {
    static NAME: OnceLock<String> = OnceLock::new();
    static STORING: AtomicBool = AtomicBool::new(false);
    if let Some(name) = NAME.get() {
        return Cow::Borrowed(name);
    }
    let from_path = |p: std::path::PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
    };
    let name = std::env::args_os()
        .next()
        .and_then(|a| from_path(a.into()))
        .or_else(|| std::env::current_exe().ok().and_then(from_path))
        .unwrap_or_else(|| "?".to_owned());
    if STORING
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        let _ = NAME.set(name.clone());
    }
    Cow::Owned(name)
}

impl LogRecord {
    /// A record made now, in this process, with no fields.
    ///
    /// ```
    /// use shmpsc::logging::{Level, LogRecord};
    /// let record = LogRecord::new(Level::Warn, "disk", "almost full");
    /// assert_eq!(record.level, Level::Warn);
    /// assert!(record.time_unix_ns > 0);
    /// ```
    pub fn new(level: Level, target: impl Into<String>, message: impl Into<String>) -> LogRecord {
        let time_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        LogRecord {
            time_unix_ns,
            level,
            target: target.into(),
            message: message.into(),
            fields: Vec::new(),
            pid: std::process::id(),
            process: process_name().into_owned(),
        }
    }

    /// Adds the field `key` with the value `value` (formatted with
    /// `Display`).
    ///
    /// ```
    /// use shmpsc::logging::{Level, LogRecord};
    /// let record = LogRecord::new(Level::Info, "net", "connected").with_field("peer", "10.0.0.1");
    /// assert_eq!(record.field("peer"), Some("10.0.0.1"));
    /// ```
    pub fn with_field(mut self, key: impl Into<String>, value: impl fmt::Display) -> LogRecord {
        self.fields.push((key.into(), value.to_string()));
        self
    }

    /// The value of the first field named `key`.
    ///
    /// ```
    /// use shmpsc::logging::{Level, LogRecord};
    /// let record = LogRecord::new(Level::Info, "t", "m").with_field("n", 1);
    /// assert_eq!(record.field("n"), Some("1"));
    /// assert_eq!(record.field("missing"), None);
    /// ```
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// When the record was made.
    ///
    /// ```
    /// use shmpsc::logging::{Level, LogRecord};
    /// let record = LogRecord::new(Level::Info, "t", "m");
    /// assert!(record.time() <= std::time::SystemTime::now());
    /// ```
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.time_unix_ns)
    }

    /// The record as one line of JSON (no newline): `time` (RFC 3339 UTC,
    /// as [`utc_time`](LogRecord::utc_time)), `level`, `pid`, `process`,
    /// `target`, `message`, and `fields` as an object of strings. JSON
    /// lines are what Vector, Fluent Bit and the OpenTelemetry collector's
    /// file receiver read: a daemon that writes them ships the aggregated
    /// stream off the host (see `examples/log_daemon.rs --json`).
    ///
    /// ```
    /// use shmpsc::logging::{Level, LogRecord};
    /// let mut r = LogRecord::new(Level::Warn, "db", "slow \"query\"").with_field("ms", 250);
    /// r.time_unix_ns = 0;
    /// r.pid = 7;
    /// r.process = "app".into();
    /// assert_eq!(
    ///     r.json_line(),
    ///     r#"{"time":"1970-01-01T00:00:00.000000Z","level":"WARN","pid":7,"process":"app","target":"db","message":"slow \"query\"","fields":{"ms":"250"}}"#
    /// );
    /// ```
    pub fn json_line(&self) -> String {
        use fmt::Write as _;
        fn string(out: &mut String, s: &str) {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        let mut out = String::with_capacity(128 + self.message.len());
        let _ = write!(out, "{{\"time\":\"{}\",\"level\":", self.utc_time());
        string(&mut out, self.level.as_str());
        let _ = write!(out, ",\"pid\":{},\"process\":", self.pid);
        string(&mut out, &self.process);
        out.push_str(",\"target\":");
        string(&mut out, &self.target);
        out.push_str(",\"message\":");
        string(&mut out, &self.message);
        out.push_str(",\"fields\":{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(&mut out, k);
            out.push(':');
            string(&mut out, v);
        }
        out.push_str("}}");
        out
    }

    /// When the record was made, as an RFC 3339 UTC time with microseconds
    /// (`2024-12-31T12:34:56.000001Z`), the form log shippers parse.
    ///
    /// ```
    /// use shmpsc::logging::{Level, LogRecord};
    /// let mut record = LogRecord::new(Level::Info, "t", "m");
    /// record.time_unix_ns = 1_735_648_496_000_001_000;
    /// assert_eq!(record.utc_time().to_string(), "2024-12-31T12:34:56.000001Z");
    /// ```
    pub fn utc_time(&self) -> impl fmt::Display {
        struct Utc(u64);
        impl fmt::Display for Utc {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_utc(f, self.0)
            }
        }
        Utc(self.time_unix_ns)
    }
}

/// Writes `ns` since the Unix epoch as an RFC 3339 UTC time with
/// microseconds, e.g. `2024-05-01T12:00:00.123456Z`.
fn write_utc(f: &mut fmt::Formatter<'_>, ns: u64) -> fmt::Result {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    write!(
        f,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

impl fmt::Display for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_utc(f, self.time_unix_ns)?;
        write!(
            f,
            " {:<5} [{} {}] {}: {}",
            self.level, self.process, self.pid, self.target, self.message
        )?;
        for (k, v) in &self.fields {
            let plain = !v.is_empty()
                && !v
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control());
            if plain {
                write!(f, " {k}={v}")?;
            } else {
                write!(f, " {k}={v:?}")?;
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ LogSink

/// The sending end of a log channel, shared by the threads of a process:
/// sends [`LogRecord`]s without ever blocking on the daemon.
///
/// The policy (see the [module docs](self)): a record that does not fit in
/// the ring now, or finds no daemon, is dropped and counted
/// ([`dropped`](LogSink::dropped)). Without a live receiver, the sink's own
/// thread reopens the channel, at most once per [`RECONNECT_INTERVAL`]:
/// a log call never opens the channel itself, so it never waits for one.
///
/// `LogSink` is cheap to clone: clones share one sender, one reconnecting
/// thread and one set of counters, so a [`ShmLogger`] and a [`ShmLayer`]
/// can share a sink.
///
/// ```
/// use shmpsc::logging::{Level, LogRecord, LogSink};
///
/// // The daemon's side (normally another process).
/// let (_keep, rx) = shmpsc::channel::<LogRecord>("doc-log-sink")?;
///
/// let sink = LogSink::new("doc-log-sink");
/// assert!(sink.is_connected());
/// assert!(sink.send(LogRecord::new(Level::Info, "app", "started")));
/// assert_eq!(rx.recv().unwrap().message, "started");
/// assert_eq!((sink.sent(), sink.dropped()), (1, 0));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<Handle>,
}

/// The sink's clones share one handle; when the last is dropped, the
/// reconnecting thread is told to end.
struct Handle {
    shared: Arc<Shared>,
}

/// How many levels of `fork` (without `exec`) below the process that made
/// a sink get a connection of their own: a process forked from a process
/// forked from ... more than this many times drops and counts its records.
pub const MAX_FORK_DEPTH: usize = 16;

/// What the sink's clones share with its reconnecting thread.
///
/// The connection is per process. A child made by `fork` gets a copy of
/// the parent's memory as it was at that instant: a lock that a thread of
/// the parent held then stays held in the copy (that thread does not exist
/// in the child), and what it guards may be half-written. So each process
/// keeps its connection in a slot of its own, indexed by its fork
/// generation (`crate::sys::fork_generation`) below the process that made
/// the sink, and never touches the slots of the processes it was forked
/// from. Only a process of generation `g` fills slot `g`: its ancestors
/// have smaller generations, so a child's own slot is always empty (never
/// half-made, never locked) when it starts.
struct Shared {
    name: String,
    /// The channel's codec: the sender's for a sink made from one, the
    /// default otherwise. Reconnections open senders with it.
    codec: Codec,
    /// The fork generation of the process that made the sink.
    home: u64,
    /// The connection of each process, by fork generation below `home`.
    procs: [OnceLock<Proc>; MAX_FORK_DEPTH],
    /// When the sink was made (`Proc::next_spawn_ms` counts from it).
    epoch: Instant,
    sent: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
    /// How long a send may wait for room, in nanoseconds (0: not at all;
    /// see [`Policy`]).
    wait_ns: AtomicU64,
}

/// What a sink does with a record when the ring is full (see
/// [`LogSink::set_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Drop it and count it, at once (the default: a log call never waits
    /// for the daemon).
    Drop,
    /// Wait up to this long for room (the daemon catching up with a
    /// burst), then drop it and count it. A log call may then take that
    /// long.
    WaitUpTo(Duration),
}

/// The target of the record a sink sends to say that it dropped records
/// (see [`LogSink::send`]); its field `dropped` holds how many.
pub const DROPPED_TARGET: &str = "shmpsc::logging";

/// A capacity for a log channel that holds a burst: 16 MiB, about 100,000
/// typical records (a record with a short message and two fields encodes
/// to 100-150 bytes), so that a burst of that many records from many
/// processes reaches a daemon that is briefly busy, instead of being
/// dropped. The default capacity (1 MiB) holds about 7,000. See
/// [`channel`].
pub const BURST_CAPACITY: u64 = 16 << 20;

/// Creates a log channel sized for bursts ([`BURST_CAPACITY`]) and returns
/// the daemon's sender (keep it, so that the receive loop does not end
/// while logging processes come and go) and receiver.
///
/// ```
/// let (_keep, rx) = shmpsc::logging::channel("doc-logging-channel")?;
/// assert_eq!(rx.capacity() as u64, shmpsc::logging::BURST_CAPACITY);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
pub fn channel(name: &str) -> Result<(Sender<LogRecord>, Receiver<LogRecord>), OpenError> {
    Builder::new(name).capacity(BURST_CAPACITY).create()
}

/// One process's connection (see `Shared`).
struct Proc {
    state: Mutex<State>,
    /// Wakes the reconnecting thread: the sink lost its sender, or was dropped.
    wake: Condvar,
    /// Wakes [`LogSink::wait_connected`]: the sink has a sender.
    connected: Condvar,
    /// Whether this process's reconnecting thread was started.
    worker: AtomicBool,
    /// After a failure to start the thread: earliest time (milliseconds
    /// since `Shared::epoch`) of the next try.
    next_spawn_ms: AtomicU64,
    /// Records this process dropped and did not report to the daemon yet
    /// (see [`LogSink::send`]); per process, so that a child made by `fork`
    /// does not report its parent's drops again.
    unreported: AtomicU64,
}

/// Guarded by `Proc::state`. Whoever holds the lock never makes a
/// syscall that can wait, and never drops a sender (which unmaps).
struct State {
    /// The current sender and its generation (`None`: not connected).
    sender: Option<(u64, Sender<LogRecord>)>,
    generation: u64,
    /// When the last connection attempt began (`None`: none yet, so one
    /// may begin at once).
    last_attempt: Option<Instant>,
    /// The last handle was dropped: the reconnecting thread ends.
    closed: bool,
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSink")
            .field("channel", &self.inner.shared.name)
            .field("connected", &self.is_connected())
            .field("sent", &self.sent())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Only this process's connection: another's is not ours to touch.
        let Some((_, proc)) = self.shared.current() else {
            return;
        };
        let mut state = proc.lock();
        state.closed = true;
        let sender = state.sender.take();
        drop(state);
        proc.wake.notify_all();
        // Detach from the channel now, not when the thread gets to it.
        drop(sender);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The connections of the processes this one was forked from are
        // copies that may be half-written (see `Shared`): leaked, never
        // dropped. A slot copied in the middle of being filled is not
        // initialised, and is not dropped by `OnceLock` either.
        let mine = self.index();
        for (i, slot) in self.procs.iter_mut().enumerate() {
            if Some(i) != mine {
                if let Some(proc) = slot.take() {
                    std::mem::forget(proc);
                }
            }
        }
    }
}

impl Proc {
    /// A connection through `sender`, whose next connection attempt may
    /// begin one [`RECONNECT_INTERVAL`] after `last_attempt` (at once if
    /// `None`).
    fn new(sender: Option<Sender<LogRecord>>, last_attempt: Option<Instant>) -> Proc {
        Proc {
            state: Mutex::new(State {
                sender: sender.map(|s| (0, s)),
                generation: 0,
                last_attempt,
                closed: false,
            }),
            wake: Condvar::new(),
            connected: Condvar::new(),
            worker: AtomicBool::new(false),
            next_spawn_ms: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    /// This process's slot index: its fork generation below `home`
    /// (`None` if it is deeper than [`MAX_FORK_DEPTH`]).
    fn index(&self) -> Option<usize> {
        let below = crate::sys::fork_generation().checked_sub(self.home)?;
        usize::try_from(below).ok().filter(|&i| i < MAX_FORK_DEPTH)
    }

    /// This process's connection, made (disconnected, free to connect at
    /// once) in a child made by `fork` on its first use. Takes no lock
    /// (see `Shared`).
    fn current(&self) -> Option<(usize, &Proc)> {
        let i = self.index()?;
        Some((i, self.procs[i].get_or_init(|| Proc::new(None, None))))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Forgets the sender of `generation` (its receiver is gone, or this
    /// process is a `fork` copy that may not use it), unless another
    /// thread replaced it already, and has the reconnecting thread reopen
    /// the channel.
    fn lose(self: &Arc<Shared>, i: usize, proc: &Proc, generation: u64) {
        let mut state = proc.lock();
        let lost = if state.sender.as_ref().is_some_and(|(g, _)| *g == generation) {
            state.sender.take()
        } else {
            None
        };
        drop(state);
        proc.wake.notify_all();
        self.ensure_worker(i, proc);
        drop(lost);
    }

    /// Starts this process's reconnecting thread for the sink, if it has
    /// none (never started: every process, a `fork` copy included, has a
    /// slot and a thread of its own). Never waits: if another thread is
    /// starting it, returns at once; if starting fails (the system is out
    /// of threads), tries again on a later call, at most once per
    /// [`RECONNECT_INTERVAL`].
    fn ensure_worker(self: &Arc<Shared>, i: usize, proc: &Proc) {
        if proc.worker.load(Ordering::Acquire)
            || self.now_ms() < proc.next_spawn_ms.load(Ordering::Relaxed)
        {
            return;
        }
        if proc
            .worker
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return; // another thread is starting it
        }
        let shared = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name("shmpsc-log".to_owned())
            .spawn(move || shared.reconnect_loop(i));
        if started.is_err() {
            let next = self
                .now_ms()
                .saturating_add(RECONNECT_INTERVAL.as_millis() as u64);
            proc.next_spawn_ms.store(next, Ordering::Relaxed);
            proc.worker.store(false, Ordering::Release);
        }
    }

    /// The reconnecting thread of the process whose slot is `i`: sleeps on
    /// `wake` while the sink has a sender; without one, opens the channel
    /// at most once per [`RECONNECT_INTERVAL`]; ends when the last handle
    /// is dropped.
    fn reconnect_loop(&self, i: usize) {
        let Some(proc) = self.procs[i].get() else {
            return;
        };
        let mut state = proc.lock();
        loop {
            if state.closed {
                return;
            }
            if state.sender.is_some() {
                state = proc
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            if let Some(left) = state
                .last_attempt
                .and_then(|last| last.checked_add(RECONNECT_INTERVAL))
                .and_then(|due| due.checked_duration_since(Instant::now()))
                .filter(|left| !left.is_zero())
            {
                state = proc
                    .wake
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            state.last_attempt = Some(Instant::now());
            drop(state);
            at_attempt(&self.name);
            let opened = open_if_ready(&self.name, self.codec);
            state = proc.lock();
            let Ok(tx) = opened else { continue };
            if state.closed {
                drop(state);
                drop(tx);
                return;
            }
            state.generation += 1;
            state.sender = Some((state.generation, tx));
            self.reconnects.fetch_add(1, Ordering::Relaxed);
            proc.connected.notify_all();
        }
    }
}

/// Opens a sender with `codec` on the channel `name` if it is ready now. Unlike
/// [`Sender::open`], does not wait for a channel that its creator is still
/// setting up: fails at once, as [`inspect`](crate::inspect) does.
///
/// What remains is a window between the check and the opening: if the
/// channel is removed and created anew in it, the opening waits for the
/// new creator to finish setting it up (microseconds, at most a second).
fn open_if_ready(name: &str, codec: Codec) -> Result<Sender<LogRecord>, OpenError> {
    let info = crate::inspect(name)?;
    if info.receiver != ReceiverState::Alive {
        return Err(OpenError::new(name, OpenErrorKind::ReceiverGone));
    }
    Builder::new(name).codec(codec).open_sender()
}

impl LogSink {
    fn with(name: &str, codec: Codec, sender: Option<Sender<LogRecord>>) -> LogSink {
        // A child made by `fork` must see another generation (see `Shared`).
        crate::sys::watch_forks();
        let connected = sender.is_some();
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            codec,
            home: crate::sys::fork_generation(),
            procs: std::array::from_fn(|_| OnceLock::new()),
            epoch: Instant::now(),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        });
        let home = &shared.procs[0];
        // A sink that could not connect waits one interval before its next
        // try; a connected one may reopen at once if its receiver goes away.
        let _ = home.set(Proc::new(sender, (!connected).then(Instant::now)));
        if !connected {
            if let Some(proc) = home.get() {
                shared.ensure_worker(0, proc);
            }
        }
        LogSink {
            inner: Arc::new(Handle { shared }),
        }
    }

    /// A sink for the channel `name`. Never fails, never waits.
    ///
    /// If the channel is ready now, the sink opens it at once (picking up a
    /// sender passed by a parent with [`Sender::pass_to`]). Otherwise (no
    /// daemon yet, or a channel that its creator is still setting up) it
    /// starts disconnected, and its own thread tries again after
    /// [`RECONNECT_INTERVAL`], and then at most once per interval, until it
    /// connects; records sent meanwhile are dropped and counted.
    /// [`wait_connected`](LogSink::wait_connected) waits for that, for a
    /// program that wants its first records to reach the daemon.
    ///
    /// ```
    /// use shmpsc::logging::{Level, LogRecord, LogSink};
    /// // No daemon yet: the record is dropped and counted.
    /// let sink = LogSink::new("doc-log-sink-new");
    /// assert!(!sink.is_connected());
    /// assert!(!sink.send(LogRecord::new(Level::Info, "app", "lost")));
    /// assert_eq!(sink.dropped(), 1);
    /// ```
    pub fn new(name: &str) -> LogSink {
        let codec = Codec::default();
        LogSink::with(name, codec, open_if_ready(name, codec).ok())
    }

    /// A sink for the channel `name`, which must be open now: fails like
    /// [`Sender::open`] otherwise, and like it may wait (up to a second)
    /// for a channel that its creator is still setting up. Afterwards it
    /// behaves as [`LogSink::new`].
    ///
    /// ```
    /// use shmpsc::logging::LogSink;
    /// let err = LogSink::connect("doc-log-sink-missing").unwrap_err();
    /// assert!(matches!(err.kind(), shmpsc::OpenErrorKind::NotFound));
    /// let (_keep, _rx) = shmpsc::channel::<shmpsc::logging::LogRecord>("doc-log-sink-connect")?;
    /// let sink = LogSink::connect("doc-log-sink-connect")?;
    /// assert!(sink.is_connected());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn connect(name: &str) -> Result<LogSink, OpenError> {
        Ok(LogSink::with(
            name,
            Codec::default(),
            Some(Sender::open(name)?),
        ))
    }

    /// A sink that sends through `sender` (and reopens its channel by name,
    /// with the sender's [codec](Sender::codec), when its receiver is gone).
    ///
    /// [`LogSink::new`] and [`LogSink::connect`] open senders with the
    /// default codec (postcard); for a daemon whose channel uses another
    /// one ([`Builder::codec`]), make the sink from a sender opened with it.
    ///
    /// ```
    /// use shmpsc::logging::{LogRecord, LogSink};
    /// let (tx, _rx) = shmpsc::channel::<LogRecord>("doc-log-sink-from")?;
    /// let sink = LogSink::from_sender(tx);
    /// assert_eq!(sink.name(), "doc-log-sink-from");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn from_sender(sender: Sender<LogRecord>) -> LogSink {
        let name = sender.name().to_owned();
        LogSink::with(&name, sender.codec(), Some(sender))
    }

    /// The channel's name.
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-name");
    /// assert_eq!(sink.name(), "doc-log-sink-name");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// Sends `record` if the ring has room now; returns whether it was sent.
    /// Never blocks on the daemon, and never opens the channel: a record
    /// that was not sent is counted in [`dropped`](LogSink::dropped). If it
    /// finds the receiver gone, the sink's own thread reopens the channel.
    ///
    /// ```
    /// use shmpsc::logging::{Level, LogRecord, LogSink};
    /// let (tx, rx) = shmpsc::Builder::new("doc-log-sink-send").capacity(4096).create::<LogRecord>()?;
    /// let sink = LogSink::from_sender(tx);
    /// // Nobody receives: the ring fills up, and the rest is dropped, not waited for.
    /// let sent = (0..1000)
    ///     .filter(|i| sink.send(LogRecord::new(Level::Debug, "t", format!("record {i}"))))
    ///     .count() as u64;
    /// assert_eq!(sink.sent(), sent);
    /// assert_eq!(sink.dropped(), 1000 - sent);
    /// assert_eq!(rx.try_iter().count() as u64, sent);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn send(&self, record: LogRecord) -> bool {
        let shared = &self.inner.shared;
        let Some((i, proc)) = shared.current() else {
            return self.count_dropped(None); // forked too deep
        };
        // The lock (this process's own) is held only to clone the sender
        // (an `Arc`).
        let current = proc.lock().sender.clone();
        let Some((generation, tx)) = current else {
            // Disconnected: the reconnecting thread is on it (or, in a
            // child made by `fork`, is started now).
            shared.ensure_worker(i, proc);
            return self.count_dropped(Some(proc));
        };
        // Records dropped before this one are reported first, in order.
        // A load first: the common case (nothing dropped) writes nothing.
        let unreported = match proc.unreported.load(Ordering::Relaxed) {
            0 => 0,
            _ => proc.unreported.swap(0, Ordering::Relaxed),
        };
        if unreported > 0 {
            let report = LogRecord::new(
                Level::Warn,
                DROPPED_TARGET,
                format!(
                    "{unreported} log records dropped (the ring was full or no daemon was there)"
                ),
            )
            .with_field("dropped", unreported);
            if tx.try_send(report).is_err() {
                proc.unreported.fetch_add(unreported, Ordering::Relaxed);
            }
        }
        let wait = Duration::from_nanos(shared.wait_ns.load(Ordering::Relaxed));
        let r = if wait.is_zero() {
            tx.try_send(record).map_err(|e| {
                matches!(
                    e,
                    TrySendError::Disconnected(_)
                        | TrySendError::Rejected(_, Rejection::Forked { .. })
                )
            })
        } else {
            tx.send_timeout(record, wait).map_err(|e| {
                matches!(
                    e,
                    SendTimeoutError::Disconnected(_)
                        | SendTimeoutError::Rejected(_, Rejection::Forked { .. })
                )
            })
        };
        match r {
            Ok(()) => self.count_sent(),
            // The receiver is gone (or this is a fork's copy).
            Err(true) => {
                shared.lose(i, proc, generation);
                self.count_dropped(Some(proc))
            }
            // Full, or too large: counted in the channel too, where `shmpsc
            // stat` and `ls` show it.
            Err(false) => {
                tx.count_dropped();
                self.count_dropped(Some(proc))
            }
        }
    }

    /// Sets what the sink does with a record when the ring is full: drop
    /// it at once (the default), or wait up to a time for room first. For
    /// every clone of the sink.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmpsc::logging::{LogSink, Policy};
    /// let sink = LogSink::new("doc-log-sink-policy");
    /// sink.set_policy(Policy::WaitUpTo(Duration::from_millis(5)));
    /// assert_eq!(sink.policy(), Policy::WaitUpTo(Duration::from_millis(5)));
    /// ```
    pub fn set_policy(&self, policy: Policy) {
        let ns = match policy {
            Policy::Drop => 0,
            Policy::WaitUpTo(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
        };
        self.inner.shared.wait_ns.store(ns, Ordering::Relaxed);
    }

    /// The sink's policy for a full ring (see [`LogSink::set_policy`]).
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-policy-default");
    /// assert_eq!(sink.policy(), shmpsc::logging::Policy::Drop);
    /// ```
    pub fn policy(&self) -> Policy {
        match self.inner.shared.wait_ns.load(Ordering::Relaxed) {
            0 => Policy::Drop,
            ns => Policy::WaitUpTo(Duration::from_nanos(ns)),
        }
    }

    fn count_sent(&self) -> bool {
        self.inner.shared.sent.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn count_dropped(&self, proc: Option<&Proc>) -> bool {
        self.inner.shared.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(proc) = proc {
            proc.unreported.fetch_add(1, Ordering::Relaxed);
        }
        false
    }

    /// Waits until the sink is connected, at most `timeout`; returns whether
    /// it is. The only method of a sink that waits: for a program that
    /// wants its first records to reach a daemon that is starting too (the
    /// sink tries once per [`RECONNECT_INTERVAL`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmpsc::logging::{LogRecord, LogSink};
    /// let sink = LogSink::new("doc-log-sink-wait");
    /// assert!(!sink.wait_connected(Duration::ZERO)); // no daemon
    /// let (_keep, _rx) = shmpsc::channel::<LogRecord>("doc-log-sink-wait")?;
    /// assert!(sink.wait_connected(Duration::from_secs(60)));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let shared = &self.inner.shared;
        let Some((i, proc)) = shared.current() else {
            return false; // forked too deep
        };
        let deadline = Instant::now().checked_add(timeout);
        let mut state = proc.lock();
        if state.sender.is_none() {
            drop(state);
            shared.ensure_worker(i, proc);
            state = proc.lock();
        }
        loop {
            if state.sender.is_some() {
                return true;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::MAX,
            };
            state = proc
                .connected
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Records sent so far.
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-sent");
    /// assert_eq!(sink.sent(), 0);
    /// ```
    pub fn sent(&self) -> u64 {
        self.inner.shared.sent.load(Ordering::Relaxed)
    }

    /// Records dropped so far: the ring was full, no daemon was there (or
    /// the sink was still connecting), or the record was larger than the
    /// channel's maximum message size.
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-dropped");
    /// assert_eq!(sink.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.inner.shared.dropped.load(Ordering::Relaxed)
    }

    /// How many times the sink's thread opened the channel after the sink
    /// lost (or never had) its receiver. The opening by
    /// [`new`](LogSink::new), [`connect`](LogSink::connect) or
    /// [`from_sender`](LogSink::from_sender) is not counted.
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-reconnects");
    /// assert_eq!(sink.reconnects(), 0);
    /// ```
    pub fn reconnects(&self) -> u64 {
        self.inner.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Whether the sink holds a sender whose receiver was not seen gone
    /// (`false` too while its thread is still connecting).
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-connected");
    /// assert!(!sink.is_connected()); // no daemon
    /// ```
    pub fn is_connected(&self) -> bool {
        self.inner
            .shared
            .current()
            .is_some_and(|(_, proc)| proc.lock().sender.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        struct T(u64);
        impl fmt::Display for T {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_utc(f, self.0)
            }
        }
        assert_eq!(T(0).to_string(), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29T23:59:59.5Z
        assert_eq!(
            T(951_868_799_500_000_000).to_string(),
            "2000-02-29T23:59:59.500000Z"
        );
        // 2024-12-31T12:34:56.000001Z
        assert_eq!(
            T(1_735_648_496_000_001_000).to_string(),
            "2024-12-31T12:34:56.000001Z"
        );
    }

    #[test]
    fn fields_with_spaces_are_quoted() {
        let mut r = LogRecord::new(Level::Error, "t", "m")
            .with_field("a", "b c")
            .with_field("n", 3);
        r.time_unix_ns = 0;
        r.process = "p".into();
        r.pid = 9;
        assert_eq!(
            r.to_string(),
            "1970-01-01T00:00:00.000000Z ERROR [p 9] t: m a=\"b c\" n=3"
        );
    }
}
