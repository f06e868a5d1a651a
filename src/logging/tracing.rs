//! [`ShmLayer`]: a `tracing` layer that sends events to a log channel.

use std::fmt;

use ::tracing::field::{Field, Visit};
use ::tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::{Level, LogRecord, LogSink};

impl From<&::tracing::Level> for Level {
    fn from(level: &::tracing::Level) -> Level {
        match *level {
            ::tracing::Level::ERROR => Level::Error,
            ::tracing::Level::WARN => Level::Warn,
            ::tracing::Level::INFO => Level::Info,
            ::tracing::Level::DEBUG => Level::Debug,
            _ => Level::Trace,
        }
    }
}

/// A [`tracing_subscriber::Layer`] that sends every event to a log channel
/// through a [`LogSink`], without blocking the caller (see the
/// [module docs](super) for the drop-and-count policy). Cargo feature
/// `tracing`.
///
/// The event's `message` becomes the record's message, its other fields the
/// record's fields; inside spans, a field `span` names them, outermost first
/// (`request:db`). Filter levels with the usual layers, e.g.
/// `tracing_subscriber::filter::LevelFilter`. Clones share one sink.
///
/// ```no_run
/// use tracing_subscriber::layer::SubscriberExt;
/// use shmpsc::logging::ShmLayer;
///
/// let layer = ShmLayer::new("logs");
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_subscriber::filter::LevelFilter::INFO)
///     .with(layer.clone());
/// tracing::subscriber::set_global_default(subscriber).unwrap();
/// tracing::info!(job = 7, "done");
/// eprintln!("{} log records dropped", layer.sink().dropped());
/// ```
///
/// A complete round trip in one process:
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// use shmpsc::logging::{Level, LogRecord, ShmLayer};
///
/// let (_keep, rx) = shmpsc::channel::<LogRecord>("doc-shm-layer")?;
/// let subscriber = tracing_subscriber::registry().with(ShmLayer::new("doc-shm-layer"));
/// tracing::subscriber::with_default(subscriber, || {
///     let span = tracing::info_span!("request", id = 1);
///     let _entered = span.enter();
///     tracing::warn!(retries = 3, "slow disk");
/// });
/// let record = rx.recv().unwrap();
/// assert_eq!(record.level, Level::Warn);
/// assert_eq!(record.message, "slow disk");
/// assert_eq!(record.field("retries"), Some("3"));
/// assert_eq!(record.field("span"), Some("request"));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Clone)]
pub struct ShmLayer {
    sink: LogSink,
}

impl fmt::Debug for ShmLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmLayer")
            .field("sink", &self.sink)
            .finish()
    }
}

impl ShmLayer {
    /// A layer for the channel `name` (see [`LogSink::new`]: it connects
    /// now or later, and never fails).
    ///
    /// ```
    /// let layer = shmpsc::logging::ShmLayer::new("doc-shm-layer-new");
    /// assert_eq!(layer.sink().name(), "doc-shm-layer-new");
    /// ```
    pub fn new(name: &str) -> ShmLayer {
        ShmLayer::with_sink(LogSink::new(name))
    }

    /// A layer that sends through `sink`, e.g. one shared with a
    /// [`ShmLogger`](super::ShmLogger).
    ///
    /// ```
    /// use shmpsc::logging::{LogSink, ShmLayer};
    /// let sink = LogSink::new("doc-shm-layer-sink");
    /// let layer = ShmLayer::with_sink(sink.clone());
    /// assert_eq!(layer.sink().name(), sink.name());
    /// ```
    pub fn with_sink(sink: LogSink) -> ShmLayer {
        ShmLayer { sink }
    }

    /// The sink: its counters tell how many records were sent and dropped.
    ///
    /// ```
    /// let layer = shmpsc::logging::ShmLayer::new("doc-shm-layer-counters");
    /// assert_eq!(layer.sink().sent(), 0);
    /// ```
    pub fn sink(&self) -> &LogSink {
        &self.sink
    }
}

/// Collects an event's message and fields as text.
struct Fields<'a> {
    record: &'a mut LogRecord,
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.record.message = value;
        } else {
            self.record.fields.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.to_string());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string());
    }
}

impl<S> Layer<S> for ShmLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut record = LogRecord::new(meta.level().into(), meta.target(), String::new());
        event.record(&mut Fields {
            record: &mut record,
        });
        if let Some(scope) = ctx.event_scope(event) {
            let path = scope
                .from_root()
                .map(|span| span.name())
                .collect::<Vec<_>>()
                .join(":");
            if !path.is_empty() {
                record.fields.push(("span".to_owned(), path));
            }
        }
        self.sink.send(record);
    }
}
