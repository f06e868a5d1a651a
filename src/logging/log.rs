//! [`ShmLogger`]: a `log::Log` that sends records to a log channel.

use std::fmt;

use super::{Level, LogRecord, LogSink};

impl From<::log::Level> for Level {
    fn from(level: ::log::Level) -> Level {
        match level {
            ::log::Level::Error => Level::Error,
            ::log::Level::Warn => Level::Warn,
            ::log::Level::Info => Level::Info,
            ::log::Level::Debug => Level::Debug,
            ::log::Level::Trace => Level::Trace,
        }
    }
}

/// A [`log::Log`](::log::Log) implementation that sends every enabled record,
/// with its key-value pairs as fields, to a log channel through a
/// [`LogSink`]: it never blocks the caller (see the
/// [module docs](super) for the drop-and-count policy). Cargo feature `log`.
///
/// Install it once, early in `main`:
///
/// ```no_run
/// use shmpsc::logging::ShmLogger;
///
/// let logger = ShmLogger::new("logs").level(log::LevelFilter::Info).install()?;
/// log::info!(user = "ann", attempt = 2; "logged in");
/// // ...
/// eprintln!("{} log records dropped", logger.sink().dropped());
/// # Ok::<(), log::SetLoggerError>(())
/// ```
///
/// Or use it directly, without installing it as the global logger:
///
/// ```
/// use log::Log;
/// use shmpsc::logging::{LogRecord, ShmLogger};
///
/// let (_keep, rx) = shmpsc::channel::<LogRecord>("doc-shm-logger")?;
/// let logger = ShmLogger::new("doc-shm-logger");
/// let kvs = [("user", "ann")];
/// logger.log(
///     &log::Record::builder()
///         .level(log::Level::Warn)
///         .target("auth")
///         .args(format_args!("{} failed logins", 3))
///         .key_values(&kvs)
///         .build(),
/// );
/// let record = rx.recv().unwrap();
/// assert_eq!(record.level, shmpsc::logging::Level::Warn);
/// assert_eq!((record.target.as_str(), record.message.as_str()), ("auth", "3 failed logins"));
/// assert_eq!(record.field("user"), Some("ann"));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
pub struct ShmLogger {
    sink: LogSink,
    level: ::log::LevelFilter,
}

impl fmt::Debug for ShmLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmLogger")
            .field("sink", &self.sink)
            .field("level", &self.level)
            .finish()
    }
}

impl ShmLogger {
    /// A logger for the channel `name` (see [`LogSink::new`]: it connects
    /// now or later, and never fails), passing every level.
    ///
    /// ```
    /// let logger = shmpsc::logging::ShmLogger::new("doc-shm-logger-new");
    /// assert_eq!(logger.sink().name(), "doc-shm-logger-new");
    /// ```
    pub fn new(name: &str) -> ShmLogger {
        ShmLogger::with_sink(LogSink::new(name))
    }

    /// A logger that sends through `sink`, e.g. one shared with a
    /// [`ShmLayer`](super::ShmLayer).
    ///
    /// ```
    /// use shmpsc::logging::{LogSink, ShmLogger};
    /// let sink = LogSink::new("doc-shm-logger-sink");
    /// let logger = ShmLogger::with_sink(sink.clone());
    /// assert_eq!(logger.sink().name(), sink.name());
    /// ```
    pub fn with_sink(sink: LogSink) -> ShmLogger {
        ShmLogger {
            sink,
            level: ::log::LevelFilter::Trace,
        }
    }

    /// Passes only records at `level` or more severe.
    ///
    /// ```
    /// use log::Log;
    /// let logger = shmpsc::logging::ShmLogger::new("doc-shm-logger-level").level(log::LevelFilter::Warn);
    /// let debug = log::Metadata::builder().level(log::Level::Debug).build();
    /// assert!(!logger.enabled(&debug));
    /// ```
    pub fn level(mut self, level: ::log::LevelFilter) -> ShmLogger {
        self.level = level;
        self
    }

    /// The sink: its counters tell how many records were sent and dropped.
    ///
    /// ```
    /// let logger = shmpsc::logging::ShmLogger::new("doc-shm-logger-counters");
    /// assert_eq!(logger.sink().dropped(), 0);
    /// ```
    pub fn sink(&self) -> &LogSink {
        &self.sink
    }

    /// Installs this logger as the global logger (and sets `log`'s maximum
    /// level to this logger's level). Returns it, to read its counters later.
    /// Fails if a global logger was installed already.
    ///
    /// ```no_run
    /// let logger = shmpsc::logging::ShmLogger::new("logs").install()?;
    /// log::warn!("disk almost full");
    /// # let _ = logger;
    /// # Ok::<(), log::SetLoggerError>(())
    /// ```
    pub fn install(self) -> Result<&'static ShmLogger, ::log::SetLoggerError> {
        let level = self.level;
        let logger: &'static ShmLogger = Box::leak(Box::new(self));
        ::log::set_logger(logger)?;
        ::log::set_max_level(level);
        Ok(logger)
    }
}

/// Collects a record's key-value pairs as text.
struct Fields(Vec<(String, String)>);

impl<'kvs> ::log::kv::VisitSource<'kvs> for Fields {
    fn visit_pair(
        &mut self,
        key: ::log::kv::Key<'kvs>,
        value: ::log::kv::Value<'kvs>,
    ) -> Result<(), ::log::kv::Error> {
        self.0.push((key.as_str().to_owned(), value.to_string()));
        Ok(())
    }
}

impl ::log::Log for ShmLogger {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &::log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut out = LogRecord::new(
            record.level().into(),
            record.target(),
            record.args().to_string(),
        );
        let mut fields = Fields(Vec::new());
        // A visitor that never fails: nothing to handle.
        let _ = record.key_values().visit(&mut fields);
        out.fields = fields.0;
        self.sink.send(out);
    }

    fn flush(&self) {
        // Records are in the ring as soon as `log` returns: nothing buffered.
    }
}
