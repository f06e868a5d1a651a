//! `Sender` and `Receiver`: the public API, in the shapes of
//! `std::sync::mpsc` and crossbeam-channel.
#![deny(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::{Deserialize, DeserializeOwned};
use serde::Serialize;

use crate::codec::{self, Codec, CodecError};
use crate::error::{
    OpenError, OpenErrorKind, RecvError, RecvTimeoutError, Rejection, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
use crate::layout::{fingerprint, Geometry, MessageType};
use crate::lock::Guard;
use crate::peers;
use crate::ring::consumer::{Consumer, Fail as RecvFail};
use crate::ring::producer::{Local, Payload, Producer};
use crate::segment::{Created, Segment};
use crate::wait::Deadline;

/// Default size of the data area: 1 MiB.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;
/// Default maximum number of sender endpoints attached at once.
pub const DEFAULT_MAX_SENDERS: u32 = 64;

/// Default liveness tick: how late, at most, a blocked endpoint notices that
/// its peer died.
pub const DEFAULT_TICK: Duration = Duration::from_millis(50);

/// The shortest liveness tick a [`Builder`] accepts.
const MIN_TICK: Duration = Duration::from_millis(1);

/// What a channel of `T` encoded with `codec` carries: endpoints that
/// disagree on either are refused at open.
fn message_type<T>(codec: Codec, schema: Option<&'static str>) -> MessageType {
    MessageType {
        name: std::any::type_name::<T>(),
        codec: codec.fingerprint_name(),
        schema,
        shape: None,
    }
}

/// What a channel of `T` encoded with `codec` carries, with the serde
/// format of `T` when it can be traced and no schema id stands for it (see
/// `shape`): what receivers and most senders are opened as.
fn traced_type<T: DeserializeOwned>(codec: Codec, schema: Option<&'static str>) -> MessageType {
    let shape = match schema {
        Some(_) => None,
        None => crate::shape::trace::<T>()
            .ok()
            .map(|s| crate::layout::ShapeId {
                fingerprint: fingerprint(&["shape", &s.canonical]),
                label: intern(&s.label),
            }),
    };
    MessageType {
        shape,
        ..message_type::<T>(codec, schema)
    }
}

/// An endpoint's second mapping of its channel `seg` (carrying `ty`), made
/// on first use and kept in `cell`. A failure is kept too: its async waits
/// then poll (see `reactor`).
#[cfg(feature = "async")]
fn watch_of(
    cell: &std::sync::OnceLock<Option<Arc<crate::reactor::Watch>>>,
    seg: &Segment,
    ty: MessageType,
) -> Option<Arc<crate::reactor::Watch>> {
    cell.get_or_init(|| seg.reopen(ty).ok().map(crate::reactor::Watch::new))
        .clone()
}

/// `id` as a `&'static str`, the same one for the same id: schema ids live
/// in `MessageType`s, which are `Copy`. Bounded by the distinct ids a
/// program uses.
fn intern(id: &str) -> &'static str {
    static IDS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut ids = IDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = ids.iter().find(|s| **s == id) {
        return found;
    }
    let leaked: &'static str = Box::leak(id.to_owned().into_boxed_str());
    ids.push(leaked);
    leaked
}

/// Creates a channel named `name` with default settings and returns its
/// first sender and its receiver.
///
/// Other processes attach senders with [`Sender::open`]. The name is removed
/// when the receiver is dropped. See [`Builder`] for capacity, message size,
/// number of senders and permissions.
///
/// If a channel of this name exists and its receiver is alive, this fails
/// with [`OpenErrorKind::AlreadyExists`]. If its receiver died, the new receiver
/// takes the channel over, with every message still in it.
///
/// ```
/// let (tx, rx) = shmpsc::channel::<String>("doc-channel")?;
/// tx.send("hello".to_string()).unwrap();
/// assert_eq!(rx.recv().unwrap(), "hello");
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
pub fn channel<T: Serialize + DeserializeOwned>(
    name: &str,
) -> Result<(Sender<T>, Receiver<T>), OpenError> {
    Builder::new(name).create()
}

/// Settings for creating a channel, or for opening one with a non-default
/// liveness tick.
///
/// ```
/// use std::time::Duration;
/// let (tx, rx) = shmpsc::Builder::new("doc-builder")
///     .capacity(1 << 16)
///     .max_message_size(4096)
///     .max_senders(8)
///     .mode(0o600)
///     .tick(Duration::from_millis(20))
///     .create::<u64>()?;
/// tx.send(1).unwrap();
/// assert_eq!(rx.recv(), Ok(1));
/// assert_eq!(rx.capacity(), 1 << 16);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Clone)]
pub struct Builder {
    name: String,
    capacity: u64,
    max_message: Option<u64>,
    max_senders: u32,
    mode: u32,
    tick: Duration,
    trusted_owners: Vec<u32>,
    codec: Codec,
    schema: Option<&'static str>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("max_message", &self.max_message)
            .field("max_senders", &self.max_senders)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("tick", &self.tick)
            .field("trusted_owners", &self.trusted_owners)
            .field("codec", &self.codec)
            .field("schema", &self.schema)
            .finish()
    }
}

impl Builder {
    /// Starts settings for the channel `name`.
    ///
    /// ```
    /// let b = shmpsc::Builder::new("doc-builder-new");
    /// # let _ = b;
    /// ```
    pub fn new(name: &str) -> Builder {
        Builder {
            name: name.to_owned(),
            capacity: DEFAULT_CAPACITY,
            max_message: None,
            max_senders: DEFAULT_MAX_SENDERS,
            mode: 0o600,
            tick: DEFAULT_TICK,
            trusted_owners: Vec::new(),
            codec: Codec::default(),
            schema: None,
        }
    }

    /// Size of the ring's data area in bytes: a power of two from 4 KiB to
    /// 1 TiB. Default 1 MiB. The memory is reserved when the channel is created.
    ///
    /// ```
    /// let b = shmpsc::Builder::new("doc-cap").capacity(1 << 24);
    /// # let _ = b;
    /// ```
    pub fn capacity(mut self, bytes: u64) -> Builder {
        self.capacity = bytes;
        self
    }

    /// Sizes the ring by messages: room for at least `messages` messages
    /// of `message_size` encoded bytes each, all at once (the capacity is
    /// a power of two, so up to about twice that), and for one message of
    /// that size even when the default maximum message size (a quarter of
    /// the ring) applies. Overrides [`Builder::capacity`]. A size too large
    /// for any ring is reported when the channel is created.
    ///
    /// ```
    /// // 10,000 log records of about 120 bytes: a 2 MiB ring.
    /// let (_tx, rx) = shmpsc::Builder::new("doc-capacity-for").capacity_for(10_000, 120).create::<u8>()?;
    /// assert_eq!(rx.capacity(), 2 << 20);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn capacity_for(mut self, messages: u64, message_size: u64) -> Builder {
        let record = crate::layout::record_size(message_size.min(crate::layout::MAX_MESSAGE));
        let bytes = record
            .saturating_mul(messages)
            .max(record.saturating_mul(4))
            .max(crate::layout::MIN_CAPACITY);
        self.capacity = bytes.checked_next_power_of_two().unwrap_or(u64::MAX);
        self
    }

    /// [`Builder::capacity_for`] `messages` messages the size of `sample`
    /// encoded with this builder's codec (set the codec first).
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Job { id: u64, name: String }
    /// let sample = Job { id: 1, name: "resize-image".into() };
    /// let (_tx, rx) = shmpsc::Builder::new("doc-capacity-for-sample")
    ///     .capacity_for_sample(50_000, &sample)
    ///     .create::<Job>()?;
    /// assert!(rx.capacity() >= 50_000 * 24);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn capacity_for_sample<T: Serialize>(self, messages: u64, sample: &T) -> Builder {
        let mut buf = Vec::new();
        let size = codec::encode(self.codec, sample, &mut buf).map_or(0, |n| n as u64);
        self.capacity_for(messages, size)
    }

    /// Largest encoded message accepted, in bytes; larger messages are
    /// refused before anything is written. Default: a quarter of the capacity
    /// (at most 4 GiB). At most the capacity minus 8.
    ///
    /// ```
    /// let b = shmpsc::Builder::new("doc-maxmsg").max_message_size(64 * 1024);
    /// # let _ = b;
    /// ```
    pub fn max_message_size(mut self, bytes: u64) -> Builder {
        self.max_message = Some(bytes);
        self
    }

    /// Largest number of sender endpoints attached at once (1 to 4096).
    /// Default 64. Dead senders' slots are reclaimed.
    ///
    /// ```
    /// let b = shmpsc::Builder::new("doc-maxsenders").max_senders(256);
    /// # let _ = b;
    /// ```
    pub fn max_senders(mut self, n: u32) -> Builder {
        self.max_senders = n;
        self
    }

    /// Permission bits of the shared-memory object. Default `0o600` (owner
    /// only); `0o660` lets the owner's group send too. Only the bits of
    /// `0o777` are allowed: creating the channel with others (set-user-ID,
    /// sticky, or a value written in decimal by mistake, such as `600`
    /// for `0o1130`) fails with [`OpenErrorKind::InvalidConfig`].
    ///
    /// ```
    /// let b = shmpsc::Builder::new("doc-mode").mode(0o660);
    /// # let _ = b;
    /// ```
    pub fn mode(mut self, mode: u32) -> Builder {
        // Checked when the channel is created: bits beyond 0o777 are refused.
        self.mode = mode;
        self
    }

    /// How often a blocked endpoint checks whether its peers are alive (and
    /// so how late, at most, it notices a death). Default 50 ms; at least
    /// 1 ms (below that, making an endpoint fails with
    /// [`OpenErrorKind::InvalidConfig`]).
    ///
    /// ```
    /// let b = shmpsc::Builder::new("doc-tick").tick(std::time::Duration::from_millis(10));
    /// # let _ = b;
    /// ```
    pub fn tick(mut self, tick: Duration) -> Builder {
        // Checked when an endpoint is made: below `MIN_TICK` is refused.
        self.tick = tick;
        self
    }

    /// Checks the settings that the builder's methods take as given.
    fn check(&self) -> Result<(), OpenError> {
        let invalid = |reason: String| {
            Err(OpenError::new(
                &self.name,
                OpenErrorKind::InvalidConfig { reason },
            ))
        };
        if self.tick < MIN_TICK {
            return invalid(format!(
                "tick {:?} is below the minimum of {MIN_TICK:?} (a blocked endpoint would wake \
                 up too often); use 1 ms or more",
                self.tick
            ));
        }
        if self.mode & !0o777 != 0 {
            return invalid(format!(
                "mode {:#o} has bits beyond 0o777 (permission bits only; was it written in \
                 decimal, 600 for 0o600?)",
                self.mode
            ));
        }
        Ok(())
    }

    /// Lets a sender opened with this builder attach to a channel whose
    /// segment belongs to user `uid`. Can be called more than once.
    ///
    /// By default a sender attaches only to a segment of its own user or of
    /// root: whoever owns the segment can read every message, and can
    /// create a channel under any free name (for instance while the real
    /// receiver is down). A channel between two users needs both sides to
    /// agree: the receiver widens [`Builder::mode`] so the other user may
    /// open the segment, and the other user's sender names the receiver's
    /// user here. Trusting `uid` also trusts it not to truncate the segment
    /// under the sender (which would kill the sender with SIGBUS).
    ///
    /// ```no_run
    /// // The receiver, run by user 1000:
    /// let rx = shmpsc::Builder::new("shared-jobs").mode(0o666).receiver::<u64>()?;
    /// // A sender run by another user, who trusts user 1000 with its messages:
    /// let tx = shmpsc::Builder::new("shared-jobs").trust_owner(1000).open_sender::<u64>()?;
    /// tx.send(1).unwrap();
    /// # let _ = rx;
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn trust_owner(mut self, uid: u32) -> Builder {
        self.trusted_owners.push(uid);
        self
    }

    /// The codec that messages are encoded with. Default
    /// [`Codec::Postcard`]; `Codec::Bincode` needs the `bincode` feature.
    ///
    /// The receiver and every sender must use the same codec: it is part of
    /// the channel's fingerprint, so a sender opened with another codec
    /// than the receiver's (or a receiver taking over a channel made with
    /// another) gets [`OpenErrorKind::TypeMismatch`]. Senders made from an
    /// endpoint ([`Receiver::sender`], [`Sender::pass_to`], `clone`) use its
    /// codec; the bytes methods ([`Sender::send_bytes`],
    /// [`Receiver::recv_bytes_with`]) bypass it.
    ///
    /// ```
    /// use shmpsc::{Builder, Codec};
    /// let rx = Builder::new("doc-builder-codec").codec(Codec::Postcard).receiver::<u32>()?;
    /// assert_eq!(rx.codec(), Codec::Postcard);
    /// let tx = Builder::new("doc-builder-codec").codec(Codec::Postcard).open_sender::<u32>()?;
    /// tx.send(7).unwrap();
    /// assert_eq!(rx.recv(), Ok(7));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn codec(mut self, codec: Codec) -> Builder {
        self.codec = codec;
        self
    }

    /// Names what the channel carries with an id of your choosing, instead
    /// of the message type's serde format (see the crate docs, "Message
    /// identity"). Both sides must give the same id (and codec). A new id
    /// (`"logs-v2"`) for a changed message makes an old sender fail at open
    /// even where the formats would agree (a field whose meaning changed),
    /// and an id lets types whose format cannot be traced share a channel
    /// across crates. The id is the contract: shmpsc then compares neither
    /// names nor formats. Endpoints made from one ([`Receiver::sender`],
    /// clones) keep its id; a child given a sender with [`Sender::pass_to`]
    /// opens it with a builder that names the same id.
    ///
    /// ```
    /// mod daemon { #[derive(serde::Serialize, serde::Deserialize)] pub struct Rec { pub n: u32 } }
    /// mod worker { #[derive(serde::Serialize, serde::Deserialize)] pub struct Rec { pub n: u32 } }
    /// let rx = shmpsc::Builder::new("doc-schema").schema("rec-v1").receiver::<daemon::Rec>()?;
    /// let tx = shmpsc::Builder::new("doc-schema").schema("rec-v1").open_sender::<worker::Rec>()?;
    /// tx.send(worker::Rec { n: 7 }).unwrap();
    /// assert_eq!(rx.recv().unwrap().n, 7);
    /// // Without the id: refused, saying both sides.
    /// let err = shmpsc::Sender::<worker::Rec>::open("doc-schema").unwrap_err();
    /// assert!(err.to_string().contains("carries schema `rec-v1`"), "{err}");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn schema(mut self, id: &str) -> Builder {
        self.schema = Some(intern(id));
        self
    }

    fn geometry(&self) -> Result<Geometry, OpenError> {
        let max_message = self
            .max_message
            .unwrap_or((self.capacity / 4).min(crate::layout::MAX_MESSAGE));
        Geometry::new(self.capacity, max_message, self.max_senders)
            .map_err(|reason| OpenError::new(&self.name, OpenErrorKind::InvalidConfig { reason }))
    }

    /// Creates the channel (or takes over one whose receiver died) and
    /// returns only the receiver.
    ///
    /// A receiver without a sender of its own reports
    /// [`RecvError::Disconnected`] whenever no sender is attached and the
    /// ring is drained; see the crate docs, "Disconnection".
    ///
    /// ```
    /// let rx = shmpsc::Builder::new("doc-receiver").receiver::<u32>()?;
    /// let tx = shmpsc::Sender::<u32>::open("doc-receiver")?;
    /// tx.send(3).unwrap();
    /// assert_eq!(rx.recv(), Ok(3));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn receiver<T: DeserializeOwned>(&self) -> Result<Receiver<T>, OpenError> {
        self.check()?;
        if self.name.starts_with('-') {
            return Err(OpenError::new(
                &self.name,
                OpenErrorKind::InvalidName {
                    reason: "it starts with `-`, which command lines take for an option (the \
                             `shmpsc` command too); start it with a letter or digit"
                        .to_owned(),
                },
            ));
        }
        let geo = self.geometry()?;
        let ty = traced_type::<T>(self.codec, self.schema);
        let (seg, created) = Segment::create(&self.name, geo, self.mode, ty)?;
        let consumer = Consumer::new(seg, self.tick).map_err(|bad| {
            OpenError::new(
                &self.name,
                OpenErrorKind::Corrupt {
                    reason: format!("its consumer cursors are unusable: {bad}"),
                },
            )
        })?;
        Ok(Receiver {
            consumer,
            codec: self.codec,
            ty,
            taken_over: created == Created::TakenOver,
            fork_generation: {
                crate::sys::watch_forks();
                crate::sys::fork_generation()
            },
            #[cfg(feature = "async")]
            watch: std::sync::OnceLock::new(),
            _t: PhantomData,
        })
    }

    /// Creates the channel and returns a sender and the receiver.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::Builder::new("doc-create").create::<u32>()?;
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.recv(), Ok(1));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn create<T: Serialize + DeserializeOwned>(
        &self,
    ) -> Result<(Sender<T>, Receiver<T>), OpenError> {
        let rx = self.receiver::<T>()?;
        let tx = rx.sender()?;
        Ok((tx, rx))
    }

    /// Opens a sender on the existing channel, with this builder's tick.
    ///
    /// ```
    /// let (_tx, rx) = shmpsc::channel::<u32>("doc-open-sender")?;
    /// let tx = shmpsc::Builder::new("doc-open-sender").open_sender::<u32>()?;
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.recv(), Ok(2));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn open_sender<T: Serialize + DeserializeOwned>(&self) -> Result<Sender<T>, OpenError> {
        self.open_sender_as(traced_type::<T>(self.codec, self.schema))
    }

    /// Opens a sender on the existing channel for a message type that
    /// cannot be deserialized (it borrows, for example), so its serde format
    /// cannot be traced: the channel is then checked by the type's name
    /// (crate path included) and the codec, or by the schema id if the
    /// builder has one. [`Builder::open_sender`] is the usual way.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Line<'a> { text: &'a str }
    /// #[derive(serde::Deserialize)]
    /// struct Owned { text: String }
    /// let rx = shmpsc::Builder::new("doc-by-name").schema("line-v1").receiver::<Owned>()?;
    /// let tx = shmpsc::Builder::new("doc-by-name")
    ///     .schema("line-v1")
    ///     .open_sender_by_name::<Line<'_>>()?;
    /// tx.send(Line { text: "borrowed" }).unwrap();
    /// assert_eq!(rx.recv().unwrap().text, "borrowed");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn open_sender_by_name<T: Serialize>(&self) -> Result<Sender<T>, OpenError> {
        self.open_sender_as(message_type::<T>(self.codec, self.schema))
    }

    fn open_sender_as<T: Serialize>(&self, ty: MessageType) -> Result<Sender<T>, OpenError> {
        self.check()?;
        if let Some(passed) = take_passed(&self.name) {
            if let Some(opened) = self.open_passed(passed, ty) {
                return opened;
            }
        }
        let seg = Segment::open(&self.name, ty, &self.trusted_owners)?;
        Sender::attach(seg, self.tick, self.codec, ty)
    }

    /// Adopts the sender that the parent passed (see [`Sender::pass_to`]),
    /// reached through the inherited descriptor, never by name: it reaches
    /// its own receiver even if the name was removed or given to another
    /// channel meanwhile. `None` if the variable was not meant for this
    /// process (inherited from a parent that got it, by a process spawned
    /// before it opened the channel): its descriptor is closed, or refers
    /// to another object than the one the variable names. Then a sender of
    /// our own is attached by name.
    fn open_passed<T: Serialize>(
        &self,
        passed: Passed,
        ty: MessageType,
    ) -> Option<Result<Sender<T>, OpenError>> {
        let found = crate::sys::borrowed_identity(passed.fd)?;
        let id = match passed.id {
            Some(id) => id,
            // A variable without the object's identity (written by an older
            // shmpsc): the object the name refers to now stands in for it.
            None => Segment::open(&self.name, ty, &self.trusted_owners)
                .and_then(|seg| seg.identity())
                .ok()?,
        };
        if found != id {
            return None;
        }
        let byte = crate::layout::slot_lock_byte(passed.slot);
        Some(
            match Segment::open_inherited(&self.name, passed.fd, id, byte, ty) {
                Ok(seg) => Sender::adopt(seg, passed.slot, self.tick, self.codec, ty),
                // The descriptor is the passed channel's object but not the
                // passed sender (which was adopted and dropped, or another
                // open file description got the number): attach a sender
                // of our own to that channel, by name only while the name
                // still refers to it.
                Err(e) => match e.kind() {
                    OpenErrorKind::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::InvalidInput =>
                    {
                        self.attach_to(id, ty, source)
                    }
                    _ => Err(e),
                },
            },
        )
    }

    /// Attaches a sender by name to the channel whose object is `id`;
    /// fails, saying why (`not_passed`), if the name refers to another.
    fn attach_to<T: Serialize>(
        &self,
        id: crate::sys::FileId,
        ty: MessageType,
        not_passed: &std::io::Error,
    ) -> Result<Sender<T>, OpenError> {
        let seg = Segment::open(&self.name, ty, &self.trusted_owners)?;
        if seg.identity()? != id {
            return Err(OpenError::io(
                &self.name,
                "opening the sender passed by the parent",
                std::io::Error::other(format!(
                    "{not_passed}, and the channel's name now refers to another channel, \
                     so no sender was attached there (its messages would go to another \
                     receiver); pass this process a sender of the new channel, or call \
                     Sender::open again to attach a sender to it by name"
                )),
            ));
        }
        Sender::attach(seg, self.tick, self.codec, ty)
    }
}

// ------------------------------------------------------------------- Sender

/// Environment variable through which `Sender::pass_to` tells a child which
/// inherited descriptor and slot are its sender for channel `name`.
fn passed_var(name: &str) -> String {
    format!(
        "{}{:016x}",
        crate::sys::PASSED_VAR_PREFIX,
        fingerprint(&[name])
    )
}

/// A sender passed by the parent: its descriptor, slot, and the identity
/// (device, inode) of its object if the variable gives it.
struct Passed {
    fd: i32,
    slot: usize,
    id: Option<crate::sys::FileId>,
}

/// Takes the sender that the parent passed for `name`, if any: once per
/// process. The environment is only read, never changed (changing it from
/// library code is undefined behaviour while another thread reads it);
/// which variables were taken is remembered here, so a second `open`
/// attaches a sender of its own.
fn take_passed(name: &str) -> Option<Passed> {
    static TAKEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let key = passed_var(name);
    let value = std::env::var(&key).ok()?;
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if taken.contains(&key) {
        return None;
    }
    taken.push(key);
    let (fd, slot, id) = crate::sys::parse_passed(&value)?;
    (slot < crate::layout::MAX_SENDERS as usize).then_some(Passed { fd, slot, id })
}

/// What clones of a sender share: the producer, and who opened it.
struct SenderInner {
    producer: Producer,
    /// The channel's codec.
    codec: Codec,
    /// What the sender was opened as: its type, codec and schema id.
    ty: MessageType,
    /// The process that opened this sender, and its fork generation then:
    /// a copy of the sender made by `fork` sees another generation, and
    /// refuses to send (it shares the slot's intent word with the original).
    opened_by: u32,
    fork_generation: u64,
    /// The second mapping that async sends wait through (see `reactor`).
    #[cfg(feature = "async")]
    watch: std::sync::OnceLock<Option<Arc<crate::reactor::Watch>>>,
}

impl SenderInner {
    /// Whether this is a copy made by `fork` of a sender opened in another
    /// process. One relaxed load.
    #[inline]
    fn forked(&self) -> bool {
        crate::sys::fork_generation() != self.fork_generation
    }

    /// Starts a send: refuses a copy made by `fork` *before* taking the
    /// local lock (a thread of the parent may have held it at the fork, and
    /// that holder does not exist in the child), then takes the lock.
    #[inline]
    fn begin(&self) -> Result<Guard<'_, Local>, SendTimeoutError<()>> {
        if self.forked() {
            let forked = Rejection::Forked {
                opened_by: self.opened_by,
                current: crate::sys::current_pid(),
            };
            return Err(SendTimeoutError::Rejected((), forked));
        }
        Ok(self.producer.lock())
    }
}

impl Drop for SenderInner {
    fn drop(&mut self) {
        if self.forked() {
            // The slot, its lock (on the open file description that fork
            // shared) and its words belong to the original sender, which may
            // still be sending: the copy only unmaps and closes its own
            // descriptor (which releases no lock while the original's stays
            // open).
            return;
        }
        self.producer.detach();
    }
}

/// The sending half of a channel. Many processes may hold senders of one
/// channel; each message is delivered once, and the messages of one sender
/// arrive in the order they were sent.
///
/// `Sender` is `Clone + Send + Sync`. Clones share one slot and take turns
/// from encoding to commit; a clone that waits for room on a full ring lets
/// the others go meanwhile (their `try_send` reports `Full`, their
/// `send_timeout` keeps its deadline). For parallel sending threads, open
/// one sender per thread. (A message's `Serialize` runs while its clone
/// holds the turn: it must not send on a clone of the same sender, which
/// would wait for itself.)
///
/// A sender is used by the process that opened it: its copy in a child made
/// by `fork` refuses to send (see [`Sender::open`]).
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u32>("doc-sender")?;
/// let tx2 = tx.clone();
/// std::thread::spawn(move || tx2.send(2).unwrap()).join().unwrap();
/// tx.send(1).unwrap();
/// let mut got: Vec<u32> = rx.try_iter().collect();
/// got.sort();
/// assert_eq!(got, [1, 2]);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
pub struct Sender<T> {
    inner: Arc<SenderInner>,
    _t: PhantomData<fn(T)>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            inner: self.inner.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("channel", &self.inner.producer.segment().name())
            .field("slot", &self.inner.producer.slot())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Sender<T> {
    /// Attaches a new sender to the channel `name`, created by a receiver in
    /// this or another process.
    ///
    /// Fails with [`OpenErrorKind::NotFound`] if no such channel exists,
    /// [`OpenErrorKind::ReceiverGone`] if its receiver was dropped or died,
    /// [`OpenErrorKind::TypeMismatch`] if it carries another message type, and
    /// [`OpenErrorKind::TooManySenders`] if every slot is held by a live sender.
    ///
    /// The message type is checked by its serde format: the names serde
    /// sees (the type's, its fields', its variants') and every field's
    /// type, traced from `T`'s `Deserialize` (see the crate docs, "Message
    /// identity"). A daemon crate and a worker crate that each define the
    /// same `struct Rec` share a channel; a field added on one side is
    /// refused here, naming both formats. For a type without `Deserialize`,
    /// see [`Builder::open_sender_by_name`].
    ///
    /// A sender belongs to the process that opened it. A child created by
    /// `fork` (without `exec`) gets a copy that refuses to send
    /// ([`Rejection::Forked`]): the copy would share the sender's slot, and
    /// sending from both sides could lose messages. The child should open
    /// its own sender with `Sender::open` (or be spawned with
    /// [`Sender::pass_to`]). Dropping the copy leaves the original alone.
    /// The copy holds no reference to the sender's liveness lock: if this
    /// process is killed, its sender counts as dead even while the child
    /// lives. The fork is noticed through a `pthread_atfork` handler: a
    /// child made by a raw `clone`/`fork` syscall that bypasses libc is not
    /// detected (and keeps the sender alive).
    ///
    /// ```
    /// let (_tx, rx) = shmpsc::channel::<String>("doc-open")?;
    /// // In another process:
    /// let tx = shmpsc::Sender::<String>::open("doc-open")?;
    /// tx.send("hi".into()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), "hi");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn open(name: &str) -> Result<Sender<T>, OpenError> {
        Builder::new(name).open_sender()
    }
}

impl<T: Serialize> Sender<T> {
    fn attach(
        seg: Segment,
        tick: Duration,
        codec: Codec,
        ty: MessageType,
    ) -> Result<Sender<T>, OpenError> {
        // A remover (`shmpsc gc`) locks every endpoint byte of an unused
        // segment while it removes it: the receiver lock it holds is not a
        // receiver's.
        if !peers::receiver_alive(&seg) || peers::being_removed(&seg) {
            return Err(OpenError::new(seg.name(), OpenErrorKind::ReceiverGone));
        }
        crate::hooks::at(crate::hooks::Point::SenderChecked);
        let gone = || OpenError::new(seg.name(), OpenErrorKind::ReceiverGone);
        let slot = match peers::acquire(&seg, false) {
            Ok((slot, _)) => slot,
            // Every slot byte is held by a remover (or by a receiver that
            // replaces the dead one's channel), not by senders.
            Err(e)
                if matches!(e.kind(), OpenErrorKind::TooManySenders { .. })
                    && peers::being_removed(&seg) =>
            {
                return Err(gone())
            }
            Err(e) => return Err(e),
        };
        // Looked at again with the slot held: between the first look and the
        // slot's lock, the receiver may have died and its channel been
        // removed (or replaced by a new receiver, which marks it dropped);
        // a sender must not send into an object no receiver will read.
        if !peers::receiver_alive(&seg) || peers::being_removed(&seg) {
            peers::release(&seg, slot);
            return Err(gone());
        }
        Ok(Sender::from_parts(seg, slot, tick, codec, ty))
    }

    fn from_parts(
        seg: Segment,
        slot: usize,
        tick: Duration,
        codec: Codec,
        ty: MessageType,
    ) -> Sender<T> {
        Sender {
            inner: Arc::new(SenderInner {
                producer: Producer::new(seg, slot, tick),
                codec,
                ty,
                opened_by: crate::sys::current_pid(),
                fork_generation: {
                    crate::sys::watch_forks();
                    crate::sys::fork_generation()
                },
                #[cfg(feature = "async")]
                watch: std::sync::OnceLock::new(),
            }),
            _t: PhantomData,
        }
    }

    /// Attaches the sender that a parent passed with [`Sender::pass_to`].
    fn adopt(
        seg: Segment,
        slot: usize,
        tick: Duration,
        codec: Codec,
        ty: MessageType,
    ) -> Result<Sender<T>, OpenError> {
        let bad = |why: &str| {
            OpenError::io(
                seg.name(),
                "adopting the sender passed by the parent",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned()),
            )
        };
        // Only one process adopts a passed sender (the slot records it, and
        // shows our pid from now on). Another one that inherited the
        // descriptor is refused, and closes its copy (dropping `seg`), so
        // that it keeps nothing alive.
        match peers::adopt(&seg, slot, crate::sys::identify_self()) {
            Ok(()) => {}
            Err(peers::AdoptRefused::NoSuchSlot) => return Err(bad("slot number out of range")),
            Err(peers::AdoptRefused::NotTheHolder) => {
                return Err(bad("the slot's lock is held by another sender"))
            }
            Err(peers::AdoptRefused::Taken(by)) => {
                return Err(OpenError::new(
                    seg.name(),
                    OpenErrorKind::PassedSenderTaken { slot, by },
                ))
            }
        }
        Ok(Sender::from_parts(seg, slot, tick, codec, ty))
    }

    /// Opens a sender for a child process and passes it with `cmd`: the
    /// child's [`Sender::open`] on this channel picks it up instead of
    /// attaching a new one.
    ///
    /// The sender is attached *now*, before the child exists, so a receiver
    /// counts the child as a sender from the start: a worker pool's parent
    /// can drop its own sender right after spawning, with no start-up race.
    /// The parent's copy is closed when `cmd` is dropped.
    ///
    /// The sender belongs to the process spawned with it: the spawned
    /// process records itself in the channel between `fork` and `exec`
    /// (pid and start time, so a later process with the same pid is not
    /// mistaken for it). Whether or not it opened the channel, the sender
    /// counts as dropped when that process exits, even if another process
    /// still holds the passed descriptor (say the background job of a shell
    /// spawned with it); such a stray holder keeps only the slot itself
    /// from reuse until it exits (other senders take other slots).
    ///
    /// Spawn `cmd` once per call. Only one process adopts a passed sender:
    /// the first to open it. Another process that inherited it (a second
    /// process spawned from the same `Command`, or one forked from the
    /// first) gets [`OpenErrorKind::PassedSenderTaken`] from `Sender::open`,
    /// which says to call `pass_to` again before each spawn; a second
    /// `Sender::open` there attaches a sender of its own. The process that
    /// adopts may be a descendant of the spawned one (a wrapper such as
    /// `timeout` or `sh -c`): while nothing adopted it, the sender lives as
    /// long as the spawned process.
    ///
    /// In the child the descriptor survives the `exec` of its program, and
    /// is made close-on-exec again before `main` runs, by a start-up
    /// function of shmpsc, so processes the child spawns do not inherit it.
    /// Only a program that links shmpsc has that start-up function: a child
    /// running another program, or a process it forks without `exec`, holds
    /// the descriptor as long as it lives (which, as said above, keeps the
    /// slot but not the sender). The environment variable that names the
    /// descriptor is inherited, and ignored where its descriptor is not the
    /// passed object (device and inode, which the variable gives too):
    /// `Sender::open` there attaches a new sender.
    ///
    /// The child's `Sender::open` reaches the passed object through the
    /// descriptor (and `/proc/self/fd`), never by name: the sender reaches
    /// this channel's receiver even if the name was removed, or given to
    /// another channel, before the child opened it. A process whose
    /// descriptor is the passed object but does not hold the passed sender
    /// (it was adopted and dropped) attaches a sender of its own by name
    /// only while the name still refers to that channel; otherwise it gets
    /// an error, never a sender of the channel that took the name. Without
    /// `/proc`, the object is checked by name, and adopting fails (with an
    /// error) once the name refers to another channel.
    ///
    /// The spawned process is identified through `/proc`. Where `/proc` is
    /// not mounted, or the receiver runs in other pid or time namespaces
    /// than the spawned process, or cannot see it there (`hidepid`), the
    /// lock alone decides, as for other senders: a stray holder then keeps
    /// the sender alive.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (tx, rx) = shmpsc::channel::<u64>("pool")?;
    /// let mut children = Vec::new();
    /// for _ in 0..4 {
    ///     let mut cmd = std::process::Command::new(std::env::current_exe()?);
    ///     cmd.arg("worker");
    ///     tx.pass_to(&mut cmd)?;
    ///     children.push(cmd.spawn()?);
    /// }
    /// drop(tx); // the workers hold the channel open now
    /// let total: u64 = rx.iter().sum(); // ends when every worker is gone
    /// # let _ = (total, children); Ok(()) }
    /// ```
    pub fn pass_to(&self, cmd: &mut std::process::Command) -> Result<(), OpenError> {
        let seg = self.inner.producer.segment().reopen(self.inner.ty)?;
        let name = seg.name().to_owned();
        let (slot, generation) = peers::acquire(&seg, true)?;
        let crate::sys::FileId { dev, ino } = seg.identity()?;
        let fd = peers::hand_to_child(cmd, seg, slot, generation);
        cmd.env(passed_var(&name), format!("{fd}:{slot}:{dev}:{ino}"));
        Ok(())
    }

    /// Sends a message, blocking while the ring is full.
    ///
    /// Returns the message in [`SendError::Disconnected`] if the receiver was
    /// dropped, or died (noticed within one tick while blocked), and in
    /// [`SendError::Rejected`] if it is too large or cannot be encoded.
    ///
    /// `Ok` means the message is in the ring: it will be received, unless
    /// the receiver is dropped first, or dies and is never replaced (a new
    /// receiver created on the same name takes the messages over).
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<Vec<u8>>("doc-send")?;
    /// tx.send(vec![1, 2, 3]).unwrap();
    /// assert_eq!(rx.recv().unwrap(), [1, 2, 3]);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.send_encoded(msg, Deadline::Never)
            .map_err(SendTimeoutError::into_send)
    }

    /// Sends a message if the ring has room now.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<u8>("doc-try-send")?;
    /// tx.try_send(1).unwrap();
    /// assert_eq!(rx.recv(), Ok(1));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.send_encoded(msg, Deadline::Now)
            .map_err(SendTimeoutError::into_try_send)
    }

    /// Sends a message, waiting at most `timeout` for room.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, rx) = shmpsc::channel::<u8>("doc-send-timeout-ok")?;
    /// tx.send_timeout(1, Duration::from_millis(10)).unwrap();
    /// assert_eq!(rx.recv(), Ok(1));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_encoded(msg, Deadline::after(timeout))
    }

    /// Encodes and sends `msg`; the error is the richest one, which the
    /// public sends map down to theirs.
    fn send_encoded(&self, msg: T, deadline: Deadline) -> Result<(), SendTimeoutError<T>> {
        let mut local = match self.inner.begin() {
            Ok(local) => local,
            Err(e) => return Err(e.carrying(msg)),
        };
        // The buffer is taken out while the message is in it: `Producer::send`
        // releases the lock while it waits for room, and clones that send
        // meanwhile encode into a buffer of their own.
        let mut buf = std::mem::take(&mut local.buf);
        let len = match codec::encode(self.inner.codec, &msg, &mut buf) {
            Ok(len) => len,
            Err(e) => {
                local.buf = buf;
                return Err(SendTimeoutError::Rejected(msg, Rejection::Encode(e)));
            }
        };
        let (mut local, r) =
            self.inner
                .producer
                .send::<false>(local, Payload::One(&buf[..len]), deadline);
        local.buf = buf;
        r.map_err(|e| e.carrying(msg))
    }
}

impl<T> Sender<T> {
    /// Sends raw bytes: the receiver gets exactly these bytes with
    /// [`Receiver::recv_bytes_with`]. Blocks while the ring is full.
    ///
    /// The record is marked raw: a typed receive ([`Receiver::recv`] and
    /// the rest) reports it as [`RecvError::Invalid`] (see
    /// [`InvalidMessage::was_sent_raw`](crate::InvalidMessage::was_sent_raw))
    /// instead of decoding bytes the codec did not write. To send a message
    /// that you encoded with the channel's codec yourself, for typed
    /// receives to decode, use [`Sender::send_encoded_bytes`].
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<()>("doc-send-bytes")?;
    /// tx.send_bytes(b"raw frame").unwrap();
    /// let n = rx.recv_bytes_with(|b| b.len()).unwrap();
    /// assert_eq!(n, 9);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn send_bytes<'a>(&self, bytes: &'a [u8]) -> Result<(), SendError<&'a [u8]>> {
        self.send_raw(bytes, true, Deadline::Never)
            .map_err(SendTimeoutError::into_send)
    }

    /// Sends a message that the caller encoded with the channel's codec
    /// ([`Sender::codec`]): typed receives decode it as if [`Sender::send`]
    /// had encoded it. For a message encoded once and sent to many
    /// channels, or a record received with [`Receiver::recv_bytes_with`]
    /// and passed on. Bytes that are not such an encoding are reported by
    /// the typed receive as undecodable. Blocks while the ring is full.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<String>("doc-send-encoded-bytes")?;
    /// let encoded = postcard::to_allocvec("once").unwrap();
    /// tx.send_encoded_bytes(&encoded).unwrap();
    /// assert_eq!(rx.recv().as_deref(), Ok("once"));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn send_encoded_bytes<'a>(&self, bytes: &'a [u8]) -> Result<(), SendError<&'a [u8]>> {
        self.send_raw(bytes, false, Deadline::Never)
            .map_err(SendTimeoutError::into_send)
    }

    /// Sends bytes if the ring has room now.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<()>("doc-try-send-bytes")?;
    /// tx.try_send_bytes(&[1, 2]).unwrap();
    /// assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), [1, 2]);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn try_send_bytes<'a>(&self, bytes: &'a [u8]) -> Result<(), TrySendError<&'a [u8]>> {
        self.send_raw(bytes, true, Deadline::Now)
            .map_err(SendTimeoutError::into_try_send)
    }

    /// Sends `bytes` as they are, marked `raw` or encoded; the error is the
    /// richest one, which the public sends map down to theirs.
    fn send_raw<'a>(
        &self,
        bytes: &'a [u8],
        raw: bool,
        deadline: Deadline,
    ) -> Result<(), SendTimeoutError<&'a [u8]>> {
        if raw {
            self.send_payload::<true>(Payload::One(bytes), deadline)
        } else {
            self.send_payload::<false>(Payload::One(bytes), deadline)
        }
        .map_err(|e| e.carrying(bytes))
    }

    pub(crate) fn producer(&self) -> &Producer {
        &self.inner.producer
    }

    /// The second mapping of the channel that async sends wait through,
    /// made on first use; `None` if it cannot be made (then they poll).
    #[cfg(feature = "async")]
    pub(crate) fn watch(&self) -> Option<Arc<crate::reactor::Watch>> {
        let ty = self.inner.ty;
        watch_of(&self.inner.watch, self.producer().segment(), ty)
    }

    /// The length of `msg` encoded, if it can be encoded.
    #[cfg(feature = "async")]
    pub(crate) fn encoded_len(&self, msg: &T) -> Option<usize>
    where
        T: Serialize,
    {
        let mut buf = Vec::new();
        codec::encode(self.inner.codec, msg, &mut buf).ok()
    }

    /// Sends `msg` if the ring has room now, with the richest error.
    #[cfg(feature = "async")]
    pub(crate) fn try_send_encoded(&self, msg: T) -> Result<(), SendTimeoutError<T>>
    where
        T: Serialize,
    {
        self.send_encoded(msg, Deadline::Now)
    }

    /// Sends one claim's payload (a message, or a batch's block).
    pub(crate) fn send_payload<const RAW: bool>(
        &self,
        payload: Payload<'_>,
        deadline: Deadline,
    ) -> Result<(), SendTimeoutError<()>> {
        let local = self.inner.begin()?;
        self.inner.producer.send::<RAW>(local, payload, deadline).1
    }

    /// The channel's name.
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::channel::<u8>("doc-sender-name")?;
    /// assert_eq!(tx.name(), "doc-sender-name");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.inner.producer.segment().name()
    }

    /// Largest encoded message this channel accepts, in bytes.
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::Builder::new("doc-sender-max").max_message_size(100).create::<u8>()?;
    /// assert_eq!(tx.max_message_size(), 100);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn max_message_size(&self) -> u64 {
        self.inner.producer.segment().geometry().max_message
    }

    /// Number of messages in the ring, sent by any sender and not yet
    /// received (approximately while endpoints are active), as
    /// [`Receiver::len`].
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<u8>("doc-sender-len")?;
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(tx.len(), 2);
    /// rx.recv().unwrap();
    /// assert_eq!(tx.len(), 1);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn len(&self) -> usize {
        let seg = self.inner.producer.segment();
        crate::layout::pending_messages(seg.header(), seg.slots())
    }

    /// Whether no message is waiting in the ring (see [`Sender::len`]).
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::channel::<u8>("doc-sender-is-empty")?;
    /// assert!(tx.is_empty());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring is full: it has no room now for even the smallest
    /// message (one byte encoded), so a `try_send` would fail with `Full`.
    /// A ring that is not full may still lack room for a large message.
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::Builder::new("doc-sender-is-full").capacity(4096).create::<u64>()?;
    /// assert!(!tx.is_full());
    /// while tx.try_send(7).is_ok() {}
    /// assert!(tx.is_full());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn is_full(&self) -> bool {
        !self.inner.producer.room_for(1)
    }

    /// Size of the ring's data area in bytes, as [`Receiver::capacity`]
    /// (messages take their encoded size plus 8 to 15 bytes of framing).
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::Builder::new("doc-sender-capacity").capacity(8192).create::<u8>()?;
    /// assert_eq!(tx.capacity(), 8192);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.producer.segment().geometry().capacity as usize
    }

    /// Counts a message that this sender's caller dropped because the
    /// ring was full, in the channel's statistics (a logging sink's drop).
    #[cfg(any(feature = "log", feature = "tracing"))]
    pub(crate) fn count_dropped(&self) {
        let seg = self.inner.producer.segment();
        if let Some(slot) = seg.slots().get(self.inner.producer.slot()) {
            slot.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether the receiver is gone: dropped, or its process exited or
    /// died. Asks the kernel (one lock test), without sending. A channel
    /// whose receiver is gone stays so for this sender, even if another
    /// receiver takes the channel over: open a new sender then.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<u8>("doc-sender-is-disconnected")?;
    /// assert!(!tx.is_disconnected());
    /// drop(rx);
    /// assert!(tx.is_disconnected());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.inner.producer.receiver_gone()
    }

    /// Whether `other` sends to the same channel (the same shared-memory
    /// object, whatever its name is now).
    ///
    /// ```
    /// let (a, _rx) = shmpsc::channel::<u8>("doc-same-channel-a")?;
    /// let (b, _rx2) = shmpsc::channel::<u8>("doc-same-channel-b")?;
    /// assert!(a.same_channel(&a.clone()));
    /// assert!(!a.same_channel(&b));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        if Arc::ptr_eq(&self.inner, &other.inner) {
            return true;
        }
        let (a, b) = (
            self.inner.producer.segment().identity(),
            other.inner.producer.segment().identity(),
        );
        matches!((a, b), (Ok(a), Ok(b)) if a == b)
    }

    /// The codec this sender encodes messages with (see [`Builder::codec`]).
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::channel::<u8>("doc-sender-codec")?;
    /// assert_eq!(tx.codec(), shmpsc::Codec::Postcard);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }
}

// ----------------------------------------------------------------- Receiver

/// The receiving half of a channel: one per channel, in one process.
///
/// `Receiver` is `Send` but not `Sync` and not `Clone`. Dropping it removes
/// the channel's name, and every sender's next `send` fails.
///
/// A copy of a receiver made by `fork` (without `exec`) is not a receiver:
/// it receives nothing (`Disconnected`), so that no message is delivered in
/// two processes, and dropping it leaves the channel to the original. It
/// holds no reference to the receiver's liveness lock: if the original's
/// process is killed, senders see `Disconnected` and a new receiver can
/// take over, even while the child lives.
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u32>("doc-receiver-type")?;
/// for i in 0..3 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
pub struct Receiver<T> {
    consumer: Consumer,
    /// The channel's codec.
    codec: Codec,
    /// What the channel was made to carry: its type, codec and schema id.
    ty: MessageType,
    taken_over: bool,
    /// The fork generation when the receiver was made: a copy made by
    /// `fork` sees another one, receives nothing and leaves the channel
    /// alone when dropped (see `Receiver`).
    fork_generation: u64,
    /// The second mapping that async receives wait through (see `reactor`).
    #[cfg(feature = "async")]
    watch: std::sync::OnceLock<Option<Arc<crate::reactor::Watch>>>,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("channel", &self.consumer.segment().name())
            .finish()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.forked() {
            // A copy made by `fork`: the channel, its name and its state
            // belong to the receiver in the parent, which lives on.
            return;
        }
        self.consumer.close();
    }
}

impl<T> Receiver<T> {
    /// Receives the next record's bytes and lends them to `f`, without
    /// decoding: zero-copy, straight from the shared mapping. Blocks until a
    /// message arrives or every sender is gone.
    ///
    /// The message counts as received when `f` is called (if `f` panics, it
    /// is not offered again) and as delivered, for a receiver that takes
    /// over after this process dies, when `f` returns. `f` may receive
    /// again: it gets the next messages, and a message received inside `f`
    /// counts as delivered when its own callback returns, which makes the
    /// outer message count as delivered from then on too (the channel keeps
    /// one delivered cursor, so a takeover never delivers the inner message
    /// twice). The room of every message received goes back to senders only
    /// after the outermost `f` returns: do not block for long in `f` while
    /// senders wait for room, and inside `f` prefer the `try_` receives (a
    /// blocking receive there, on a ring that is full of such messages,
    /// waits until every sender is gone).
    ///
    /// The slice points into shared memory. Senders that follow the
    /// protocol never write a committed record, so the bytes do not change
    /// while `f` runs; a process with write access that breaks the protocol
    /// can change them at any time, as it can any byte of the channel. Treat
    /// them as untrusted input, as a decoder does: validate what you read
    /// and copy what you keep.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<()>("doc-recv-bytes")?;
    /// tx.send_bytes(b"abc").unwrap();
    /// let sum: u32 = rx.recv_bytes_with(|b| b.iter().map(|&x| x as u32).sum()).unwrap();
    /// assert_eq!(sum, 294);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn recv_bytes_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        match self.recv_raw(Deadline::Never, false, |b| Ok(f(b))) {
            Ok(r) => Ok(r),
            Err(RecvFail::Invalid(i)) => Err(RecvError::Invalid(i)),
            Err(_) => Err(RecvError::Disconnected),
        }
    }

    /// Receives every message available, at least one (blocking until
    /// there is one) and at most `max`, lending each one's bytes in place
    /// to `f` in order; returns how many. The bulk counterpart of
    /// [`recv_bytes_with`](Receiver::recv_bytes_with): the receiver's
    /// bookkeeping is done once for the run.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<()>("doc-recv-bytes-many")?;
    /// for i in 0..5u8 {
    ///     tx.send_bytes(&[i]).unwrap();
    /// }
    /// let mut got = Vec::new();
    /// let n = rx.recv_bytes_many_with(100, |b| got.push(b[0])).unwrap();
    /// assert_eq!((n, got), (5, vec![0, 1, 2, 3, 4]));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn recv_bytes_many_with(
        &self,
        max: usize,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, RecvError> {
        self.recv_many(Deadline::Never, max, f)
            .map_err(|e| match e {
                RecvFail::Invalid(i) => RecvError::Invalid(i),
                _ => RecvError::Disconnected,
            })
    }

    /// Like [`recv_bytes_many_with`](Receiver::recv_bytes_many_with),
    /// without blocking.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<()>("doc-try-recv-bytes-many")?;
    /// assert!(rx.try_recv_bytes_many_with(10, |_| {}).is_err());
    /// tx.send_bytes(b"a").unwrap();
    /// tx.send_bytes(b"b").unwrap();
    /// assert_eq!(rx.try_recv_bytes_many_with(10, |_| {}), Ok(2));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn try_recv_bytes_many_with(
        &self,
        max: usize,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, TryRecvError> {
        self.recv_many(Deadline::Now, max, f)
            .map_err(TryRecvError::from_fail)
    }

    fn recv_many(
        &self,
        deadline: Deadline,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, RecvFail> {
        if self.forked() {
            return Err(RecvFail::Disconnected);
        }
        if max == 0 {
            return Ok(0);
        }
        let first = self.consumer.next(deadline)?;
        Ok(self
            .consumer
            .drain(first, max, self.fork_generation, &mut f))
    }

    /// Like [`recv_bytes_with`](Receiver::recv_bytes_with), without blocking.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<()>("doc-try-recv-bytes")?;
    /// assert!(rx.try_recv_bytes_with(|b| b.len()).is_err());
    /// tx.send_bytes(b"x").unwrap();
    /// assert_eq!(rx.try_recv_bytes_with(|b| b.len()), Ok(1));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn try_recv_bytes_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, TryRecvError> {
        self.recv_raw(Deadline::Now, false, |b| Ok(f(b)))
            .map_err(TryRecvError::from_fail)
    }

    /// Like [`recv_bytes_with`](Receiver::recv_bytes_with), waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, rx) = shmpsc::channel::<()>("doc-recv-bytes-timeout")?;
    /// tx.send_bytes(b"xy").unwrap();
    /// assert_eq!(rx.recv_bytes_timeout_with(Duration::from_secs(1), |b| b.len()), Ok(2));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn recv_bytes_timeout_with<R>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvTimeoutError> {
        self.recv_raw(Deadline::after(timeout), false, |b| Ok(f(b)))
            .map_err(RecvTimeoutError::from_fail)
    }

    /// A zero-copy view of this receiver: each message is decoded in place,
    /// as any type that can borrow from the bytes (`&str`, `&[u8]` with
    /// `serde_bytes`, structs of them), with no allocation and no copy.
    /// A message's bytes stay in the ring until the next receive through
    /// the view or until the view is dropped; the borrow checker keeps the
    /// values from outliving them. The view borrows the receiver mutably:
    /// while it lives, the receiver receives through it only. See
    /// [`ZeroCopy`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize)]
    /// struct Log { target: String, msg: String }
    /// #[derive(Deserialize)]
    /// struct LogRef<'a> { target: &'a str, msg: &'a str }
    ///
    /// let (tx, mut rx) = shmpsc::channel::<Log>("doc-zero-copy")?;
    /// tx.send(Log { target: "db".into(), msg: "slow query".into() }).unwrap();
    /// let mut view = rx.zero_copy();
    /// let log: LogRef<'_> = view.recv().unwrap();
    /// assert_eq!((log.target, log.msg), ("db", "slow query"));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn zero_copy(&mut self) -> ZeroCopy<'_, T> {
        ZeroCopy {
            cursor: crate::ring::consumer::LendingCursor::new(
                &mut self.consumer,
                self.fork_generation,
            ),
            codec: self.codec,
            _t: PhantomData,
        }
    }

    #[cfg(feature = "async")]
    pub(crate) fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// The second mapping of the channel that async receives wait through,
    /// made on first use; `None` if it cannot be made (then they poll).
    #[cfg(feature = "async")]
    pub(crate) fn watch(&self) -> Option<Arc<crate::reactor::Watch>> {
        let ty = self.ty;
        watch_of(&self.watch, self.consumer.segment(), ty)
    }

    /// Whether this is a copy made by `fork` of a receiver made in another
    /// process. One relaxed load.
    #[inline]
    fn forked(&self) -> bool {
        crate::sys::fork_generation() != self.fork_generation
    }

    /// Opens a new sender on this receiver's channel.
    ///
    /// ```
    /// let rx = shmpsc::Builder::new("doc-rx-sender").receiver::<u8>()?;
    /// let tx = rx.sender()?;
    /// tx.send(9).unwrap();
    /// assert_eq!(rx.recv(), Ok(9));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn sender(&self) -> Result<Sender<T>, OpenError>
    where
        T: Serialize,
    {
        let seg = self.consumer.segment().reopen(self.ty)?;
        Sender::attach(seg, self.consumer.tick(), self.codec, self.ty)
    }

    /// The channel's name.
    ///
    /// ```
    /// let (_tx, rx) = shmpsc::channel::<u8>("doc-rx-name")?;
    /// assert_eq!(rx.name(), "doc-rx-name");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.consumer.segment().name()
    }

    /// Whether this receiver took the channel over from a receiver that
    /// died, with the messages it had not received.
    ///
    /// ```
    /// let (_tx, rx) = shmpsc::channel::<u8>("doc-taken-over")?;
    /// assert!(!rx.was_taken_over());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn was_taken_over(&self) -> bool {
        self.taken_over
    }

    /// The codec this receiver decodes messages with (see [`Builder::codec`]).
    ///
    /// ```
    /// let (_tx, rx) = shmpsc::channel::<u8>("doc-rx-codec")?;
    /// assert_eq!(rx.codec(), shmpsc::Codec::Postcard);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Number of messages in the ring, approximately while senders are active.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<u8>("doc-len")?;
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.len(), 2);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.consumer.len()
    }

    /// Whether no message is in the ring.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<u8>("doc-is-empty")?;
    /// assert!(rx.is_empty());
    /// tx.send(1).unwrap();
    /// assert!(!rx.is_empty());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.consumer.is_empty()
    }

    /// Size of the ring's data area in bytes (messages take their encoded
    /// size plus 8 to 15 bytes of framing).
    ///
    /// ```
    /// let (_tx, rx) = shmpsc::Builder::new("doc-capacity").capacity(8192).create::<u8>()?;
    /// assert_eq!(rx.capacity(), 8192);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.consumer.segment().geometry().capacity as usize
    }

    /// Receives the next message: lends its bytes to `f` (which decodes
    /// them, if `typed`), then marks it delivered. A typed receive reports
    /// a record sent raw (`send_bytes`) as undecodable, without decoding
    /// it.
    fn recv_raw<R>(
        &self,
        deadline: Deadline,
        typed: bool,
        f: impl FnOnce(&[u8]) -> Result<R, CodecError>,
    ) -> Result<R, RecvFail> {
        if self.forked() {
            return Err(RecvFail::Disconnected);
        }
        let msg = self.consumer.next(deadline)?;
        // A record sent raw takes the path of an undecodable one (`None`):
        // a branch of its own here cost a batched typed receive a third of
        // its speed (the compiler then moved the result through the stack
        // in a way that stalls).
        let raw = typed && msg.is_raw();
        let r = self
            .consumer
            .lend(&msg, |b| if raw { Err(None) } else { f(b).map_err(Some) });
        let (position, len) = (msg.position(), msg.len());
        // A callback that forked returns twice: in the child, this copy of
        // the receiver must write nothing to the channel (no delivered
        // cursor, no release: the parent goes on receiving).
        if !self.forked() {
            self.consumer.finish(msg);
        }
        let type_name = std::any::type_name::<T>();
        r.map_err(|e| {
            RecvFail::Invalid(match e {
                Some(e) => self.consumer.undecodable(position, len, type_name, e),
                None => self.consumer.raw_record(position, len, type_name),
            })
        })
    }
}

/// A zero-copy view of a [`Receiver`], made by [`Receiver::zero_copy`]:
/// messages decoded in place, borrowing the ring's bytes.
///
/// As with [`Receiver::recv_bytes_with`], the bytes are the ring's: a
/// process with write access to the segment that breaks the protocol can
/// change them under a value (guarantee 4), and a value borrowed before
/// `fork` is not valid in the child (the parent goes on receiving and
/// gives the bytes back).
///
/// Each `recv` decodes the next message as a type `U` that may borrow from
/// it (for a channel of `Log { target: String, .. }`, a
/// `LogRef<'a> { target: &'a str, .. }` with the same fields in the same
/// order). The value borrows the view: the message's bytes stay in the
/// ring, unreleased, until the next receive through the view or until the
/// view is dropped. The view borrows the receiver mutably, so nothing
/// else receives meanwhile; senders get room back once the view moves on
/// (leaking the view with `mem::forget` holds nothing back).
///
/// `U` must have the encoding of the channel's message type: a `U` that
/// does not decode gives [`RecvError::Invalid`] (the message is skipped),
/// as for any undecodable record.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Job { id: u64, #[serde(with = "serde_bytes")] data: Vec<u8> }
/// #[derive(Deserialize)]
/// struct JobRef<'a> { id: u64, #[serde(borrow, with = "serde_bytes")] data: &'a [u8] }
///
/// let (tx, mut rx) = shmpsc::channel::<Job>("doc-zero-copy-view")?;
/// for id in 0..3 {
///     tx.send(Job { id, data: vec![id as u8; 100] }).unwrap();
/// }
/// let mut view = rx.zero_copy();
/// let mut total = 0;
/// for _ in 0..3 {
///     let job: JobRef<'_> = view.recv().unwrap();
///     total += job.data.iter().map(|&b| b as u64).sum::<u64>();
/// }
/// assert_eq!(total, 300);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
///
/// A value cannot be kept past the next receive through the view (its
/// bytes are given back then), nor past the view:
///
/// ```compile_fail
/// let (tx, mut rx) = shmpsc::channel::<String>("doc-zero-copy-next")?;
/// let mut view = rx.zero_copy();
/// let a: &str = view.recv().unwrap();
/// let b: &str = view.recv().unwrap(); // error: `view` is still borrowed by `a`
/// println!("{a} {b}");
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
///
/// ```compile_fail
/// let (tx, mut rx) = shmpsc::channel::<String>("doc-zero-copy-direct")?;
/// let mut view = rx.zero_copy();
/// let a: &str = view.recv().unwrap();
/// let b = rx.try_recv(); // error: `rx` is borrowed by `view`
/// println!("{a} {b:?}");
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
///
/// ```compile_fail
/// let (tx, mut rx) = shmpsc::channel::<String>("doc-zero-copy-outlive")?;
/// let a: &str = {
///     let mut view = rx.zero_copy();
///     view.recv().unwrap() // error: `view` does not live long enough
/// };
/// println!("{a}");
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
pub struct ZeroCopy<'r, T> {
    cursor: crate::ring::consumer::LendingCursor<'r>,
    codec: Codec,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ZeroCopy<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZeroCopy")
            .field("channel", &self.cursor.consumer().segment().name())
            .finish()
    }
}

impl<T> ZeroCopy<'_, T> {
    /// Receives the next message and decodes it in place as `U`, blocking
    /// while the channel is empty (as [`Receiver::recv`]).
    ///
    /// ```
    /// let (tx, mut rx) = shmpsc::channel::<String>("doc-zero-copy-recv")?;
    /// tx.send("hello".to_string()).unwrap();
    /// let mut view = rx.zero_copy();
    /// let s: &str = view.recv().unwrap();
    /// assert_eq!(s, "hello");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn recv<'a, U: Deserialize<'a>>(&'a mut self) -> Result<U, RecvError> {
        self.receive(Deadline::Never).map_err(|f| match f {
            RecvFail::Invalid(i) => RecvError::Invalid(i),
            _ => RecvError::Disconnected,
        })
    }

    /// Like [`ZeroCopy::recv`], without blocking.
    ///
    /// ```
    /// let (tx, mut rx) = shmpsc::channel::<String>("doc-zero-copy-try")?;
    /// let mut view = rx.zero_copy();
    /// assert!(view.try_recv::<&str>().is_err());
    /// tx.send("x".to_string()).unwrap();
    /// assert_eq!(view.try_recv::<&str>(), Ok("x"));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn try_recv<'a, U: Deserialize<'a>>(&'a mut self) -> Result<U, TryRecvError> {
        self.receive(Deadline::Now).map_err(TryRecvError::from_fail)
    }

    /// Like [`ZeroCopy::recv`], waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, mut rx) = shmpsc::channel::<String>("doc-zero-copy-timeout")?;
    /// tx.send("y".to_string()).unwrap();
    /// let mut view = rx.zero_copy();
    /// assert_eq!(view.recv_timeout::<&str>(Duration::from_secs(1)), Ok("y"));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn recv_timeout<'a, U: Deserialize<'a>>(
        &'a mut self,
        timeout: Duration,
    ) -> Result<U, RecvTimeoutError> {
        self.receive(Deadline::after(timeout))
            .map_err(RecvTimeoutError::from_fail)
    }

    fn receive<'a, U: Deserialize<'a>>(&'a mut self, deadline: Deadline) -> Result<U, RecvFail> {
        if self.cursor.forked() {
            return Err(RecvFail::Disconnected);
        }
        let codec = self.codec;
        let (bytes, position, raw, consumer) = self.cursor.next(deadline)?;
        // A raw record takes the undecodable path (`None`), as in
        // `Receiver::recv_raw`.
        let r = if raw {
            Err(None)
        } else {
            codec::decode::<U>(codec, bytes).map_err(Some)
        };
        let (len, type_name) = (bytes.len() as u64, std::any::type_name::<U>());
        r.map_err(|e| {
            RecvFail::Invalid(match e {
                Some(e) => consumer.undecodable(position, len, type_name, e),
                None => consumer.raw_record(position, len, type_name),
            })
        })
    }
}

impl TryRecvError {
    fn from_fail(f: RecvFail) -> Self {
        match f {
            RecvFail::Empty => TryRecvError::Empty,
            RecvFail::Disconnected => TryRecvError::Disconnected,
            RecvFail::Invalid(i) => TryRecvError::Invalid(i),
        }
    }
}

impl RecvTimeoutError {
    fn from_fail(f: RecvFail) -> Self {
        match f {
            RecvFail::Empty => RecvTimeoutError::Timeout,
            RecvFail::Disconnected => RecvTimeoutError::Disconnected,
            RecvFail::Invalid(i) => RecvTimeoutError::Invalid(i),
        }
    }
}

impl<T: DeserializeOwned> Receiver<T> {
    /// Blocks until a message arrives, and returns it.
    ///
    /// Returns [`RecvError::Disconnected`] once no sender is attached (all
    /// were dropped, or their processes exited or died) and every message
    /// was received; [`RecvError::Invalid`] for a record that cannot be
    /// decoded (it is skipped: call `recv` again for the next one).
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<i32>("doc-recv")?;
    /// tx.send(-1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv(), Ok(-1));
    /// assert_eq!(rx.recv(), Err(shmpsc::RecvError::Disconnected));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        match self.recv_raw(Deadline::Never, true, |b| codec::decode::<T>(self.codec, b)) {
            Ok(t) => Ok(t),
            Err(RecvFail::Invalid(i)) => Err(RecvError::Invalid(i)),
            Err(_) => Err(RecvError::Disconnected),
        }
    }

    /// Returns a message if one is ready, without blocking.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<i32>("doc-try-recv")?;
    /// assert_eq!(rx.try_recv(), Err(shmpsc::TryRecvError::Empty));
    /// tx.send(5).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(5));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.recv_raw(Deadline::Now, true, |b| codec::decode::<T>(self.codec, b))
            .map_err(TryRecvError::from_fail)
    }

    /// Waits at most `timeout` for a message.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, rx) = shmpsc::channel::<i32>("doc-recv-timeout")?;
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(shmpsc::RecvTimeoutError::Timeout));
    /// tx.send(5).unwrap();
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Ok(5));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_raw(Deadline::after(timeout), true, |b| {
            codec::decode::<T>(self.codec, b)
        })
        .map_err(RecvTimeoutError::from_fail)
    }

    /// Waits until `deadline` (monotonic clock) for a message.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (tx, rx) = shmpsc::channel::<i32>("doc-recv-deadline")?;
    /// tx.send(5).unwrap();
    /// assert_eq!(rx.recv_deadline(Instant::now() + Duration::from_millis(5)), Ok(5));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_raw(Deadline::At(deadline), true, |b| {
            codec::decode::<T>(self.codec, b)
        })
        .map_err(RecvTimeoutError::from_fail)
    }

    /// A blocking iterator over messages; it ends when the channel is
    /// disconnected. Records that cannot be decoded are skipped (and counted
    /// in the channel's statistics); use [`recv`](Receiver::recv) to see them.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<u8>("doc-iter")?;
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2]);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the messages ready now; it never blocks.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<u8>("doc-try-iter")?;
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1]);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }
}

/// Blocking iterator returned by [`Receiver::iter`].
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u8>("doc-iter-type")?;
/// drop(tx);
/// let it: shmpsc::Iter<'_, u8> = rx.iter();
/// assert_eq!(it.count(), 0);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

/// Non-blocking iterator returned by [`Receiver::try_iter`].
///
/// ```
/// let (_tx, rx) = shmpsc::channel::<u8>("doc-try-iter-type")?;
/// let it: shmpsc::TryIter<'_, u8> = rx.try_iter();
/// assert_eq!(it.count(), 0);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

/// Owning blocking iterator, from `Receiver::into_iter`.
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u8>("doc-into-iter")?;
/// tx.send(4).unwrap();
/// drop(tx);
/// let v: Vec<u8> = rx.into_iter().collect();
/// assert_eq!(v, [4]);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

fn next_blocking<T: DeserializeOwned>(rx: &Receiver<T>) -> Option<T> {
    loop {
        match rx.recv() {
            Ok(t) => return Some(t),
            Err(RecvError::Invalid(_)) => continue,
            Err(RecvError::Disconnected) => return None,
        }
    }
}

impl<T: DeserializeOwned> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        next_blocking(self.rx)
    }
}

impl<T: DeserializeOwned> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        loop {
            match self.rx.try_recv() {
                Ok(t) => return Some(t),
                Err(TryRecvError::Invalid(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl<T: DeserializeOwned> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        next_blocking(&self.rx)
    }
}

impl<'a, T: DeserializeOwned> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: DeserializeOwned> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}
