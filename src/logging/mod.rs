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
//! dropped and counted too. The only wait a log call can see is another
//! thread of the same process that is in the middle of its own `try_send`.
//!
//! When the daemon's receiver is gone (dropped, or its process died and the
//! ring filled up), the sink **reopens** the channel, at most once per
//! [`RECONNECT_INTERVAL`] (one second), so a restarted daemon gets the logs
//! again; records logged while no daemon is there are dropped and counted.
//! A daemon restarted after a crash takes the channel over with
//! [`channel`](crate::channel) and receives every record still in the ring.
//! A sink created before its daemon started connects the same way.
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

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{OpenError, Sender, TrySendError};

#[cfg(feature = "log")]
mod log;
#[cfg(feature = "tracing")]
mod tracing;

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
fn process_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let from_path = |p: std::path::PathBuf| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty())
        };
        std::env::args_os()
            .next()
            .and_then(|a| from_path(a.into()))
            .or_else(|| std::env::current_exe().ok().and_then(from_path))
            .unwrap_or_else(|| "?".to_owned())
    })
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
            process: process_name().to_owned(),
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
/// ([`dropped`](LogSink::dropped)); without a live receiver the sink reopens
/// the channel at most once per [`RECONNECT_INTERVAL`].
///
/// `LogSink` is cheap to clone: clones share one sender and one set of
/// counters, so a [`ShmLogger`] and a [`ShmLayer`] can share a sink.
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
    inner: Arc<SinkInner>,
}

struct SinkInner {
    name: String,
    /// The current sender and its generation (`None`: not connected).
    current: Mutex<Option<(u64, Sender<LogRecord>)>>,
    generation: AtomicU64,
    /// Earliest time (milliseconds since `epoch`) of the next reopen attempt.
    next_attempt_ms: AtomicU64,
    epoch: Instant,
    sent: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSink")
            .field("channel", &self.inner.name)
            .field("connected", &self.is_connected())
            .field("sent", &self.sent())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl LogSink {
    fn with(name: &str, sender: Option<Sender<LogRecord>>) -> LogSink {
        let epoch = Instant::now();
        let connected = sender.is_some();
        LogSink {
            inner: Arc::new(SinkInner {
                name: name.to_owned(),
                current: Mutex::new(sender.map(|s| (0, s))),
                generation: AtomicU64::new(0),
                // A sink that could not connect waits one interval before
                // its next try; a connected one may reopen at once if its
                // receiver goes away.
                next_attempt_ms: AtomicU64::new(if connected {
                    0
                } else {
                    RECONNECT_INTERVAL.as_millis() as u64
                }),
                epoch,
                sent: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                reconnects: AtomicU64::new(0),
            }),
        }
    }

    /// A sink for the channel `name`. It opens the channel now if it can
    /// (picking up a sender passed by a parent with
    /// [`Sender::pass_to`]); otherwise it starts disconnected and tries again
    /// at most once per [`RECONNECT_INTERVAL`], on the next records. Never
    /// fails, never blocks on the daemon.
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
        LogSink::with(name, Sender::open(name).ok())
    }

    /// A sink for the channel `name`, which must be open now: fails like
    /// [`Sender::open`] otherwise. Afterwards it behaves as
    /// [`LogSink::new`].
    ///
    /// ```
    /// use shmpsc::logging::LogSink;
    /// assert!(matches!(
    ///     LogSink::connect("doc-log-sink-missing"),
    ///     Err(shmpsc::OpenError::NotFound { .. })
    /// ));
    /// let (_keep, _rx) = shmpsc::channel::<shmpsc::logging::LogRecord>("doc-log-sink-connect")?;
    /// let sink = LogSink::connect("doc-log-sink-connect")?;
    /// assert!(sink.is_connected());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn connect(name: &str) -> Result<LogSink, OpenError> {
        Ok(LogSink::with(name, Some(Sender::open(name)?)))
    }

    /// A sink that sends through `sender` (and reopens its channel by name
    /// when its receiver is gone).
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
        LogSink::with(&name, Some(sender))
    }

    /// The channel's name.
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-name");
    /// assert_eq!(sink.name(), "doc-log-sink-name");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Sends `record` if the ring has room now; returns whether it was sent.
    /// Never blocks on the daemon: a record that was not sent is counted in
    /// [`dropped`](LogSink::dropped).
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
        let inner = &*self.inner;
        let current = inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let record = match current {
            Some((generation, tx)) => match tx.try_send(record) {
                Ok(()) => return self.count_sent(),
                Err(TrySendError::Disconnected(record)) => {
                    // This sender is done for: forget it (unless another
                    // thread already replaced it), and reopen if it is time.
                    let mut cur = inner.current.lock().unwrap_or_else(|p| p.into_inner());
                    if cur.as_ref().is_some_and(|(g, _)| *g == generation) {
                        *cur = None;
                    }
                    record
                }
                Err(_) => return self.count_dropped(),
            },
            None => record,
        };
        match self.reopen() {
            Some(tx) => match tx.try_send(record) {
                Ok(()) => self.count_sent(),
                Err(_) => self.count_dropped(),
            },
            None => self.count_dropped(),
        }
    }

    fn count_sent(&self) -> bool {
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn count_dropped(&self) -> bool {
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Opens the channel again if the last attempt is at least one
    /// interval ago and no other thread is attempting it right now.
    fn reopen(&self) -> Option<Sender<LogRecord>> {
        let inner = &*self.inner;
        // Another thread may have reconnected meanwhile.
        if let Some((_, tx)) = &*inner.current.lock().unwrap_or_else(|p| p.into_inner()) {
            return Some(tx.clone());
        }
        let now = inner.epoch.elapsed().as_millis() as u64;
        let due = inner.next_attempt_ms.load(Ordering::Relaxed);
        if now < due {
            return None;
        }
        let next = now + RECONNECT_INTERVAL.as_millis() as u64;
        if inner
            .next_attempt_ms
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None; // another thread is trying
        }
        let tx = Sender::<LogRecord>::open(&inner.name).ok()?;
        let generation = inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *inner.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, tx.clone()));
        inner.reconnects.fetch_add(1, Ordering::Relaxed);
        Some(tx)
    }

    /// Records sent so far.
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-sent");
    /// assert_eq!(sink.sent(), 0);
    /// ```
    pub fn sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// Records dropped so far: the ring was full, no daemon was there, or
    /// the record was larger than the channel's maximum message size.
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-dropped");
    /// assert_eq!(sink.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// How many times the sink reopened the channel after losing (or never
    /// having) its receiver.
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-reconnects");
    /// assert_eq!(sink.reconnects(), 0);
    /// ```
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    /// Whether the sink holds a sender whose receiver was not seen gone.
    ///
    /// ```
    /// let sink = shmpsc::logging::LogSink::new("doc-log-sink-connected");
    /// assert!(!sink.is_connected()); // no daemon
    /// ```
    pub fn is_connected(&self) -> bool {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
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
