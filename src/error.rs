//! Every public error type. Send errors hand the unsent message back; their
//! `Debug` output hides the payload, as std's do.
#![deny(unsafe_code)]

use std::fmt;
use std::io;

use crate::codec::CodecError;

/// Why a message was refused before anything was written to the channel.
///
/// The channel is unaffected: the next message can be sent, except after
/// [`Rejection::Forked`], which refuses every message of that sender.
///
/// ```
/// let (tx, _rx) = shmpsc::Builder::new("doc-rejection").max_message_size(16).create::<Vec<u8>>()?;
/// let err = tx.send(vec![0u8; 100]).unwrap_err();
/// let rejection = err.rejection().expect("too large");
/// assert!(rejection.to_string().contains("larger than the channel's maximum"));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The encoded message is larger than the channel's maximum message size.
    TooLarge {
        /// Encoded size of the message, in bytes.
        size: u64,
        /// The channel's maximum message size, in bytes.
        max: u64,
    },
    /// The channel's codec could not encode the message.
    Encode(CodecError),
    /// This sender was opened (or passed) in process `opened_by`, and this
    /// process, `current`, is a copy of it made by `fork` (without `exec`).
    /// The copy shares the sender's slot with the original, so sending
    /// from both sides could lose messages: every send from the copy is
    /// refused. Open a new sender in the child with
    /// [`Sender::open`](crate::Sender::open) (or spawn the child with
    /// [`Sender::pass_to`](crate::Sender::pass_to)).
    Forked {
        /// The process that opened the sender.
        opened_by: u32,
        /// This process, created by `fork` from it (or from a process
        /// forked from it).
        current: u32,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TooLarge { size, max } => write!(
                f,
                "message of {size} bytes is larger than the channel's maximum of {max} bytes: \
                 create the channel with a larger Builder::max_message_size"
            ),
            Rejection::Encode(e) => write!(f, "message could not be encoded: {e}"),
            Rejection::Forked { opened_by, current } => write!(
                f,
                "this sender was opened by process {opened_by} before a fork, and process \
                 {current} is the forked copy: a sender cannot be used on both sides of fork \
                 (they would share one slot and could lose messages); open a new sender in \
                 the child with Sender::open, or spawn the child with Sender::pass_to"
            ),
        }
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Rejection::Encode(e) => Some(e),
            _ => None,
        }
    }
}

/// An error returned from [`Sender::send`](crate::Sender::send).
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u32>("doc-send-error")?;
/// drop(rx);
/// let err = tx.send(7).unwrap_err();
/// assert!(err.is_disconnected());
/// assert_eq!(err.into_inner(), 7);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum SendError<T> {
    /// The receiver was dropped or its process died; the message comes back.
    Disconnected(T),
    /// The message was refused before anything was written; it comes back.
    Rejected(T, Rejection),
}

/// An error returned from [`Sender::try_send`](crate::Sender::try_send).
///
/// ```
/// use shmpsc::TrySendError;
/// let (tx, _rx) = shmpsc::Builder::new("doc-try-send-error").capacity(4096).create::<Vec<u8>>()?;
/// let mut full = false;
/// for _ in 0..100 {
///     if let Err(TrySendError::Full(_)) = tx.try_send(vec![0u8; 1000]) {
///         full = true;
///         break;
///     }
/// }
/// assert!(full);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The ring has no room for the message now.
    Full(T),
    /// The receiver was dropped or its process died.
    Disconnected(T),
    /// The message was refused before anything was written.
    Rejected(T, Rejection),
}

/// An error returned from [`Sender::send_timeout`](crate::Sender::send_timeout).
///
/// ```
/// use std::time::Duration;
/// use shmpsc::SendTimeoutError;
/// let (tx, _rx) = shmpsc::Builder::new("doc-send-timeout").capacity(4096).create::<Vec<u8>>()?;
/// while tx.try_send(vec![0u8; 1000]).is_ok() {}
/// let err = tx.send_timeout(vec![0u8; 1000], Duration::from_millis(1)).unwrap_err();
/// assert!(err.is_timeout());
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum SendTimeoutError<T> {
    /// No room appeared before the timeout.
    Timeout(T),
    /// The receiver was dropped or its process died.
    Disconnected(T),
    /// The message was refused before anything was written.
    Rejected(T, Rejection),
}

macro_rules! send_error_common {
    ($ty:ident { $($v:ident),* }) => {
        impl<T> $ty<T> {
            /// Returns the message that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    $($ty::$v(t) => t,)*
                    $ty::Rejected(t, _) => t,
                }
            }

            /// Whether the receiver is gone.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, $ty::Disconnected(_))
            }

            /// Why the message was refused, if it was.
            pub fn rejection(&self) -> Option<&Rejection> {
                match self {
                    $ty::Rejected(_, r) => Some(r),
                    _ => None,
                }
            }
        }

        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($ty::$v(_) => write!(f, concat!(stringify!($ty), "::", stringify!($v), "(..)")),)*
                    $ty::Rejected(_, r) => write!(f, concat!(stringify!($ty), "::Rejected(.., {:?})"), r),
                }
            }
        }

        impl<T> std::error::Error for $ty<T> {}
    };
}

send_error_common!(SendError { Disconnected });
send_error_common!(TrySendError { Full, Disconnected });
send_error_common!(SendTimeoutError {
    Timeout,
    Disconnected
});

const DISCONNECTED_SEND: &str =
    "sending on a disconnected channel: the receiver was dropped or its process exited";

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Disconnected(_) => f.write_str(DISCONNECTED_SEND),
            SendError::Rejected(_, r) => r.fmt(f),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str(DISCONNECTED_SEND),
            TrySendError::Rejected(_, r) => r.fmt(f),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => {
                f.write_str("timed out waiting for room on the channel")
            }
            SendTimeoutError::Disconnected(_) => f.write_str(DISCONNECTED_SEND),
            SendTimeoutError::Rejected(_, r) => r.fmt(f),
        }
    }
}

impl<T> TrySendError<T> {
    /// Whether the ring was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// Whether the timeout elapsed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// The error of a send without a deadline, which cannot time out
    /// (crossbeam maps its flavors' errors down the same way).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn into_send(self) -> SendError<T> {
        match self {
            SendTimeoutError::Disconnected(t) => SendError::Disconnected(t),
            SendTimeoutError::Rejected(t, r) => SendError::Rejected(t, r),
            SendTimeoutError::Timeout(_) => unreachable!("a send without a deadline timed out"),
        }
    }

    /// The error of a send whose deadline is now: no room before it means
    /// that the ring is full.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn into_try_send(self) -> TrySendError<T> {
        match self {
            SendTimeoutError::Timeout(t) => TrySendError::Full(t),
            SendTimeoutError::Disconnected(t) => TrySendError::Disconnected(t),
            SendTimeoutError::Rejected(t, r) => TrySendError::Rejected(t, r),
        }
    }
}

impl SendTimeoutError<()> {
    /// The same error, handing `msg` back: the ring reports errors without
    /// the message, which its caller holds.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn carrying<T>(self, msg: T) -> SendTimeoutError<T> {
        match self {
            SendTimeoutError::Timeout(()) => SendTimeoutError::Timeout(msg),
            SendTimeoutError::Disconnected(()) => SendTimeoutError::Disconnected(msg),
            SendTimeoutError::Rejected((), r) => SendTimeoutError::Rejected(msg, r),
        }
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(t) => TrySendError::Disconnected(t),
            SendError::Rejected(t, r) => TrySendError::Rejected(t, r),
        }
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(t) => SendTimeoutError::Disconnected(t),
            SendError::Rejected(t, r) => SendTimeoutError::Rejected(t, r),
        }
    }
}

/// A committed record that the receiver could not turn into a message.
///
/// The record has been consumed: the next receive continues with the
/// following message. Nothing was delivered from it.
///
/// ```
/// // A sender of `String` and a receiver of `u64` disagree on the bytes.
/// let (tx, rx) = shmpsc::channel::<u64>("doc-invalid")?;
/// tx.send_encoded_bytes(&[0xFF; 3]).unwrap();
/// tx.send(5).unwrap();
/// let err = rx.recv().unwrap_err();
/// assert!(err.to_string().contains("could not be decoded"));
/// assert_eq!(rx.recv(), Ok(5));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidMessage {
    pub(crate) position: u64,
    pub(crate) len: u64,
    /// What was wrong, for bytes that break the protocol; for a record
    /// that could not be decoded, which type it was decoded as.
    pub(crate) reason: String,
    /// For a record that could not be decoded, the codec's error.
    pub(crate) codec_error: Option<CodecError>,
    /// The record was sent raw (`send_bytes`) and met a typed receive.
    pub(crate) raw: bool,
}

impl InvalidMessage {
    /// Byte position of the record in the channel's stream.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// For a record that could not be decoded, its payload length; for
    /// bytes that break the protocol (a malformed header), the number of
    /// bytes the receiver skipped to resume at the next valid record (0 when
    /// it reported a malformed word at the end of what senders had claimed,
    /// and resumes there once a sender writes its own header over it).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the record had an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// For a record that could not be decoded, why: the codec's error
    /// (also this error's [`source`](std::error::Error::source)). `None`
    /// for bytes that break the protocol.
    ///
    /// ```
    /// // Two sides that claim one schema but do not agree on it.
    /// let rx = shmpsc::Builder::new("doc-invalid-codec-error").schema("s").receiver::<String>()?;
    /// let tx = shmpsc::Builder::new("doc-invalid-codec-error").schema("s").open_sender::<u64>()?;
    /// tx.send(255).unwrap(); // as a string: a length of 255, and no bytes
    /// let shmpsc::RecvError::Invalid(invalid) = rx.recv().unwrap_err() else { panic!() };
    /// let e = invalid.codec_error().expect("could not be decoded");
    /// assert_eq!(e.kind(), shmpsc::CodecErrorKind::Truncated);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn codec_error(&self) -> Option<&CodecError> {
        self.codec_error.as_ref()
    }
}

impl InvalidMessage {
    /// Whether the record was sent raw ([`Sender::send_bytes`]) and met a
    /// typed receive, which reports it rather than decode bytes the codec
    /// did not write (receive raw records with
    /// [`Receiver::recv_bytes_with`]).
    ///
    /// [`Sender::send_bytes`]: crate::Sender::send_bytes
    /// [`Receiver::recv_bytes_with`]: crate::Receiver::recv_bytes_with
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<String>("doc-invalid-raw")?;
    /// tx.send_bytes(&[0; 8]).unwrap();
    /// let shmpsc::RecvError::Invalid(invalid) = rx.recv().unwrap_err() else { panic!() };
    /// assert!(invalid.was_sent_raw());
    /// assert!(invalid.codec_error().is_none());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn was_sent_raw(&self) -> bool {
        self.raw
    }
}

impl fmt::Display for InvalidMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message at position {} ({} bytes) {}",
            self.position, self.len, self.reason
        )?;
        if let Some(e) = &self.codec_error {
            write!(f, ": {e}")?;
        }
        f.write_str(
            "; it was skipped and the next receive continues with the following message \
             (do both ends use the same message type and codec?)",
        )
    }
}

impl std::error::Error for InvalidMessage {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.codec_error
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An error returned from [`Receiver::recv`](crate::Receiver::recv).
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u32>("doc-recv-error")?;
/// drop(tx);
/// assert_eq!(rx.recv(), Err(shmpsc::RecvError::Disconnected));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvError {
    /// No sender is attached and every message was received.
    Disconnected,
    /// The next record could not be decoded; it was skipped.
    Invalid(InvalidMessage),
}

/// An error returned from [`Receiver::try_recv`](crate::Receiver::try_recv).
///
/// ```
/// let (_tx, rx) = shmpsc::channel::<u32>("doc-try-recv-error")?;
/// assert_eq!(rx.try_recv(), Err(shmpsc::TryRecvError::Empty));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message is ready now.
    Empty,
    /// No sender is attached and every message was received.
    Disconnected,
    /// The next record could not be decoded; it was skipped.
    Invalid(InvalidMessage),
}

/// An error returned from [`Receiver::recv_timeout`](crate::Receiver::recv_timeout).
///
/// ```
/// use std::time::Duration;
/// let (_tx, rx) = shmpsc::channel::<u32>("doc-recv-timeout-error")?;
/// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(shmpsc::RecvTimeoutError::Timeout));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// No message arrived before the timeout.
    Timeout,
    /// No sender is attached and every message was received.
    Disconnected,
    /// The next record could not be decoded; it was skipped.
    Invalid(InvalidMessage),
}

const DISCONNECTED_RECV: &str =
    "receiving on a disconnected channel: every sender was dropped or exited and every message was received";

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Disconnected => f.write_str(DISCONNECTED_RECV),
            RecvError::Invalid(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => f.write_str(DISCONNECTED_RECV),
            TryRecvError::Invalid(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on the channel"),
            RecvTimeoutError::Disconnected => f.write_str(DISCONNECTED_RECV),
            RecvTimeoutError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RecvError {}
impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvTimeoutError {}

impl RecvError {
    /// Whether every sender is gone and the channel is drained.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvError::Disconnected)
    }
}

impl TryRecvError {
    /// Whether no message was ready.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
    /// Whether every sender is gone and the channel is drained.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl RecvTimeoutError {
    /// Whether the timeout elapsed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
    /// Whether every sender is gone and the channel is drained.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => TryRecvError::Disconnected,
            RecvError::Invalid(i) => TryRecvError::Invalid(i),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Invalid(i) => RecvTimeoutError::Invalid(i),
        }
    }
}

/// Why a channel could not be created, opened, inspected or removed: the
/// channel's name and an [`OpenErrorKind`], in the shape of [`io::Error`].
/// Every message names the channel and says what to do.
///
/// ```
/// use shmpsc::OpenErrorKind;
/// let err = shmpsc::Sender::<u32>::open("doc-no-such-channel").unwrap_err();
/// assert_eq!(err.name(), "doc-no-such-channel");
/// assert!(matches!(err.kind(), OpenErrorKind::NotFound));
/// assert!(err.to_string().contains("is the receiver running?"));
/// ```
#[derive(Debug)]
pub struct OpenError {
    name: String,
    kind: OpenErrorKind,
}

/// What went wrong in an [`OpenError`]; the channel's name is in the error.
///
/// ```
/// use shmpsc::OpenErrorKind;
/// let (_tx, _rx) = shmpsc::Builder::new("doc-kind").max_senders(1).create::<u8>()?;
/// let err = shmpsc::Sender::<u8>::open("doc-kind").unwrap_err();
/// assert!(matches!(err.kind(), OpenErrorKind::TooManySenders { max: 1 }));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenErrorKind {
    /// No channel has this name.
    NotFound,
    /// A channel with this name exists and its receiver is alive.
    AlreadyExists,
    /// The name cannot name a channel.
    InvalidName {
        /// What is wrong with it.
        reason: String,
    },
    /// A builder setting is out of range.
    InvalidConfig {
        /// Which setting, and its allowed range.
        reason: String,
    },
    /// The channel carries another message type or codec: the fingerprint
    /// its receiver wrote into the segment is not the one of this
    /// endpoint's type and codec.
    TypeMismatch {
        /// The message type this endpoint was opened with, as
        /// [`std::any::type_name`] spells it.
        type_name: &'static str,
        /// The codec this endpoint encodes with.
        codec: &'static str,
        /// This endpoint's fingerprint: of its serde format (or its type's
        /// name, or its schema id) and `codec`.
        expected: u64,
        /// The fingerprint found in the segment.
        found: u64,
        /// What this endpoint carries, readable: its serde format, type
        /// name and codec, or its schema id (see
        /// [`Builder::schema`](crate::Builder::schema)).
        this: String,
        /// What the channel carries, as its receiver wrote it (`None` for
        /// a channel made by an earlier build).
        channel: Option<String>,
    },
    /// The segment was made by an incompatible version of shmpsc.
    IncompatibleVersion {
        /// Layout version found in the segment.
        found: u32,
        /// Layout version this build understands.
        supported: u32,
    },
    /// The segment's header is not a valid shmpsc header.
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// The operating system refused access.
    PermissionDenied,
    /// Every sender slot is owned by a live sender.
    TooManySenders {
        /// The channel's maximum number of senders.
        max: u32,
    },
    /// The channel exists but its receiver was dropped or died.
    ReceiverGone,
    /// An object of this name exists that this endpoint does not trust: not
    /// a regular file, more than one name, or (for a receiver taking over)
    /// another owner or wider permissions, or (for a sender) an owner other
    /// than this user, root and the users named with
    /// [`Builder::trust_owner`](crate::Builder::trust_owner).
    Untrusted {
        /// What makes it untrusted.
        reason: String,
    },
    /// A live process still uses the channel, so it was not removed.
    InUse {
        /// The processes that use it, as they recorded themselves in the
        /// channel (the receiver first, if it is alive; informational: the
        /// locks, not these numbers, decide).
        pids: Vec<u32>,
    },
    /// A receiver would take over a channel left by a receiver that died,
    /// but the channel's message type or settings differ from this
    /// receiver's, and it still holds messages or has live senders: taking
    /// it over would lose them or break them. (With nothing to lose, the
    /// channel is created anew with this receiver's type and settings.)
    Stale {
        /// The dead receiver's process id (as it recorded itself).
        receiver_pid: u32,
        /// Messages sent and not received.
        pending: u64,
        /// Live senders' process ids.
        live_senders: Vec<u32>,
        /// What differs, in words.
        mismatch: String,
    },
    /// No live process uses the channel, but it holds messages that no
    /// receiver got: removing it would lose them, so it was not removed
    /// (see [`remove_forced`](crate::remove_forced)).
    HasPending {
        /// Messages sent and not received.
        messages: u64,
        /// Their payload bytes.
        bytes: u64,
    },
    /// The channel is still being created (or its creator died while creating it).
    NotReady,
    /// The sender passed to this process with `Sender::pass_to` belongs to
    /// another process: the one that opened it first (the `Command` was
    /// spawned more than once, or this process was forked from or spawned
    /// by the one it was passed to), or the spawned process, which exited.
    PassedSenderTaken {
        /// The passed sender's slot.
        slot: usize,
        /// The process it belongs to (0 if unknown).
        by: u32,
    },
    /// Any other operating-system error.
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

impl OpenError {
    /// An error of `kind` about the channel `name`.
    pub(crate) fn new(name: &str, kind: OpenErrorKind) -> OpenError {
        OpenError {
            name: name.to_owned(),
            kind,
        }
    }

    /// An [`OpenErrorKind::Io`] error: `op` failed with `source`.
    pub(crate) fn io(name: &str, op: &'static str, source: impl Into<io::Error>) -> OpenError {
        OpenError::new(
            name,
            OpenErrorKind::Io {
                op,
                source: source.into(),
            },
        )
    }

    /// The name of the channel, as given.
    ///
    /// ```
    /// let err = shmpsc::inspect("doc-error-name").unwrap_err();
    /// assert_eq!(err.name(), "doc-error-name");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What went wrong.
    ///
    /// ```
    /// use shmpsc::OpenErrorKind;
    /// let err = shmpsc::Builder::new("doc-error-kind").capacity(1000).receiver::<u8>().unwrap_err();
    /// assert!(matches!(err.kind(), OpenErrorKind::InvalidConfig { .. }));
    /// ```
    pub fn kind(&self) -> &OpenErrorKind {
        &self.kind
    }

    /// The kind, taken out of the error (to own its underlying
    /// [`io::Error`], say).
    ///
    /// ```
    /// use shmpsc::OpenErrorKind;
    /// let err = shmpsc::remove("doc-error-into-kind").unwrap_err();
    /// assert!(matches!(err.into_kind(), OpenErrorKind::NotFound));
    /// ```
    pub fn into_kind(self) -> OpenErrorKind {
        self.kind
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.kind {
            OpenErrorKind::NotFound => {
                write!(
                    f,
                    "channel `{name}` not found: no channel has this name (a sender needs its \
                     receiver to have created it: is the receiver running? `shmpsc ls` lists the \
                     channels)"
                )
            }
            OpenErrorKind::AlreadyExists => write!(
                f,
                "channel `{name}` already exists and its receiver is alive: pick another name, \
                 or stop the process that receives on it"
            ),
            OpenErrorKind::InvalidName { reason } => {
                write!(f, "invalid channel name {name:?}: {reason}")
            }
            OpenErrorKind::InvalidConfig { reason } => {
                write!(f, "invalid settings for channel `{name}`: {reason}")
            }
            OpenErrorKind::TypeMismatch {
                expected,
                found,
                this,
                channel,
                ..
            } => {
                match channel {
                    Some(carried) => write!(f, "channel `{name}` carries {carried}")?,
                    None => write!(f, "channel `{name}` carries another message type or codec")?,
                }
                write!(f, "; this endpoint has {this}")?;
                // The readable forms show nested types by name: when they
                // agree, the difference is inside one (the type paths, also
                // shown, do not take part in the comparison).
                let format = |s: &str| s.split('`').nth(1).map(str::to_owned);
                if let (Some(a), Some(b)) = (channel.as_deref().and_then(format), format(this)) {
                    if a == b && !this.starts_with("schema") {
                        write!(
                            f,
                            ", which reads alike: the two formats differ inside a type \
                             they contain (or in the codec); compare those types' fields"
                        )?;
                    }
                }
                write!(
                    f,
                    " (fingerprints {found:#018x} and \
                     {expected:#018x}): open it with the receiver's message type and codec \
                     (Builder::codec). Types are compared by their serde format (the names \
                     serde sees and every field's type), or by name where the format cannot \
                     be traced (a sender opened with Builder::open_sender_by_name, or a type \
                     that uses deserialize_any); to name what both sides carry yourself, or \
                     to version a schema, give both the same Builder::schema(\"...\")"
                )
            }
            OpenErrorKind::IncompatibleVersion { found, supported } => write!(
                f,
                "channel `{name}` has segment layout version {found} but this build of shmpsc \
                 supports version {supported}: use the same shmpsc version on both ends"
            ),
            OpenErrorKind::Corrupt { reason } => write!(
                f,
                "channel `{name}` is not a valid shmpsc segment ({reason}): remove it with \
                 shmpsc::remove(\"{name}\") and create it again"
            ),
            OpenErrorKind::PermissionDenied => write!(
                f,
                "permission denied for channel `{name}`: it belongs to another user; ask its \
                 creator to widen Builder::mode, or run as that user"
            ),
            OpenErrorKind::TooManySenders { max } => write!(
                f,
                "channel `{name}` already has its maximum of {max} live senders: drop a sender, \
                 or create the channel with a larger Builder::max_senders"
            ),
            OpenErrorKind::ReceiverGone => write!(
                f,
                "channel `{name}` has no receiver: its receiver was dropped or exited; start \
                 the receiver again, then open the channel"
            ),
            OpenErrorKind::Untrusted { reason } => write!(
                f,
                "channel `{name}` is not trusted: {reason}; if you know where it comes from and \
                 it is unused, remove it with shmpsc::remove(\"{name}\") (or `shmpsc rm {name}`) \
                 and create it again"
            ),
            OpenErrorKind::InUse { pids } if !pids.is_empty() => {
                let list: Vec<String> = pids.iter().map(u32::to_string).collect();
                write!(
                    f,
                    "channel `{name}` is in use by process{} {} and was not removed: stop \
                     {} first",
                    if pids.len() == 1 { "" } else { "es" },
                    list.join(", "),
                    if pids.len() == 1 { "it" } else { "them" }
                )
            }
            OpenErrorKind::InUse { .. } => write!(
                f,
                "channel `{name}` is in use by a live receiver or sender and was not removed: \
                 stop those processes first"
            ),
            OpenErrorKind::Stale {
                receiver_pid,
                pending,
                live_senders,
                mismatch,
            } => {
                write!(
                    f,
                    "channel `{name}` was left by a receiver that died (pid {receiver_pid}) \
                     with {pending} undelivered message{}",
                    if *pending == 1 { "" } else { "s" }
                )?;
                if !live_senders.is_empty() {
                    let list: Vec<String> = live_senders.iter().map(u32::to_string).collect();
                    write!(f, " and live senders (pid {})", list.join(", "))?;
                }
                write!(
                    f,
                    ", and {mismatch}. A receiver that takes a channel over keeps its type \
                     and settings: to get its messages, run a receiver with the channel's own; \
                     or remove it (losing them) with `shmpsc rm --force {name}` once its \
                     senders are stopped, and create it again"
                )
            }
            OpenErrorKind::HasPending { messages, bytes } => write!(
                f,
                "channel `{name}` holds {messages} undelivered message{} ({bytes} bytes) that \
                 no receiver got, and was not removed: start its receiver to take them, or \
                 remove it anyway (and lose them) with `shmpsc rm --force` \
                 (`shmpsc::remove_forced`)",
                if *messages == 1 { "" } else { "s" }
            ),
            OpenErrorKind::NotReady => write!(
                f,
                "channel `{name}` is not ready: its creator is still setting it up or died while \
                 doing so; retry, or create it again"
            ),
            OpenErrorKind::PassedSenderTaken { slot, by } => write!(
                f,
                "channel `{name}`: the sender passed to this process (slot {slot}) belongs to \
                 process {by}, which opened it first or was spawned with it and exited: a \
                 Command given to Sender::pass_to was spawned more than once, or this process \
                 was forked from the one it was passed to; call pass_to again before each \
                 spawn (calling Sender::open again here attaches a sender of this process's own)"
            ),
            OpenErrorKind::Io { op, source } => {
                write!(f, "channel `{name}`: {op} failed: {source}")
            }
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            OpenErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<OpenError> for io::Error {
    fn from(e: OpenError) -> io::Error {
        let kind = match &e.kind {
            OpenErrorKind::NotFound => io::ErrorKind::NotFound,
            OpenErrorKind::Untrusted { .. } => io::ErrorKind::PermissionDenied,
            OpenErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            OpenErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            OpenErrorKind::InvalidName { .. } | OpenErrorKind::InvalidConfig { .. } => {
                io::ErrorKind::InvalidInput
            }
            OpenErrorKind::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
