//! Seeing and cleaning up the channels on this machine: what `shmpsc ls`
//! and `shmpsc gc` are made of.
#![deny(unsafe_code)]

use std::io;
use std::sync::atomic::Ordering;

use crate::error::{OpenError, OpenErrorKind};
use crate::peers;
use crate::segment::{Pending, Segment, WaitBudget, PREFIX};
use crate::sys;

pub use crate::peers::ReceiverState;

/// One sender slot in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderInfo {
    /// Slot number.
    pub slot: usize,
    /// Process id of the sender's process when it attached (for display).
    pub pid: u32,
    /// Whether its process is alive (the kernel's lock says so).
    pub alive: bool,
    /// Messages committed through this slot, by this sender and the
    /// slot's earlier owners.
    pub sent_messages: u64,
    /// Payload bytes committed through this slot, by this sender and the
    /// slot's earlier owners.
    pub sent_bytes: u64,
}

/// A snapshot of one channel.
///
/// ```
/// let (tx, _rx) = shmpsc::channel::<u32>("doc-info")?;
/// tx.send(1).unwrap();
/// let info = shmpsc::inspect("doc-info")?;
/// assert_eq!(info.receiver, shmpsc::ReceiverState::Alive);
/// assert_eq!(info.senders.len(), 1);
/// assert_eq!(info.sent_messages, 1);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel name.
    pub name: String,
    /// The receiver's state.
    pub receiver: ReceiverState,
    /// Process id of the receiver (for display).
    pub receiver_pid: u32,
    /// Sender slots in use (alive, or dead and not yet reclaimed).
    pub senders: Vec<SenderInfo>,
    /// Size of the data area, in bytes.
    pub capacity: u64,
    /// Bytes claimed and not yet consumed.
    pub used: u64,
    /// Largest message accepted, in bytes.
    pub max_message: u64,
    /// Largest number of senders attached at once.
    pub max_senders: u32,
    /// Messages committed by every sender the channel ever had.
    pub sent_messages: u64,
    /// Payload bytes committed by every sender the channel ever had.
    pub sent_bytes: u64,
    /// Messages the receiver consumed (including invalid ones).
    pub received_messages: u64,
    /// Payload bytes the receiver consumed.
    pub received_bytes: u64,
    /// Records the receiver could not decode, or found malformed.
    pub invalid_messages: u64,
    /// Messages that senders dropped because the ring was full (logging
    /// sinks count theirs; other senders wait or report `Full` instead).
    pub dropped_messages: u64,
    /// Bytes of dead senders' unfinished claims that the receiver skipped.
    pub recovered_bytes: u64,
    /// How many times a receiver took the channel over from a dead one.
    pub takeovers: u32,
    /// Senders that died and were reaped by the receiver so far (a sender
    /// killed on a busy channel is reaped within a tick, so [`senders`]
    /// may never show it dead).
    ///
    /// [`senders`]: ChannelInfo::senders
    pub sender_deaths: u32,
}

impl ChannelInfo {
    /// Messages sent and not received (from the statistics; approximate
    /// while endpoints are active).
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::channel::<u8>("doc-info-pending")?;
    /// tx.send(1).unwrap();
    /// assert_eq!(shmpsc::inspect("doc-info-pending")?.pending_messages(), 1);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn pending_messages(&self) -> u64 {
        self.sent_messages.saturating_sub(self.received_messages)
    }

    /// Payload bytes of the messages sent and not received.
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::channel::<()>("doc-info-pending-bytes")?;
    /// tx.send_bytes(b"abc").unwrap();
    /// assert_eq!(shmpsc::inspect("doc-info-pending-bytes")?.pending_bytes(), 3);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn pending_bytes(&self) -> u64 {
        self.sent_bytes.saturating_sub(self.received_bytes)
    }

    /// Whether no live process uses the channel.
    pub fn is_unused(&self) -> bool {
        self.receiver != ReceiverState::Alive && !self.senders.iter().any(|s| s.alive)
    }
}

/// A snapshot of the channel `name`, whatever its message type.
///
/// ```
/// let err = shmpsc::inspect("doc-inspect-missing").unwrap_err();
/// assert!(matches!(err.kind(), shmpsc::OpenErrorKind::NotFound));
/// ```
pub fn inspect(name: &str) -> Result<ChannelInfo, OpenError> {
    let seg = Segment::inspect(name)?;
    let h = seg.header();
    let geo = seg.geometry();
    let receiver = peers::receiver_state(&seg);
    // Every slot that was ever used keeps its counters; list the owned ones
    // and, for completeness of totals, fold the rest into nothing: counters
    // of free slots still count in `sent_messages` through owned ones only.
    let senders = peers::active_slots(&seg)
        .map(|i| {
            let s = &seg.slots()[i];
            SenderInfo {
                slot: i,
                pid: s.pid.load(Ordering::Relaxed),
                alive: peers::sender_alive(&seg, i),
                sent_messages: s.sent_messages.load(Ordering::Relaxed),
                sent_bytes: s.sent_bytes.load(Ordering::Relaxed),
            }
        })
        .collect();
    // Every slot keeps its counters across owners, so the totals over all
    // slots count every sender the channel ever had.
    let (sent_messages, sent_bytes) = seg.slots().iter().fold((0u64, 0u64), |(m, b), s| {
        (
            m.wrapping_add(s.sent_messages.load(Ordering::Relaxed)),
            b.wrapping_add(s.sent_bytes.load(Ordering::Relaxed)),
        )
    });
    let head = h.rx.head.load(Ordering::Acquire);
    let tail = h.tail.load(Ordering::Acquire);
    Ok(ChannelInfo {
        name: name.to_owned(),
        receiver,
        receiver_pid: h.control.rx_pid.load(Ordering::Relaxed),
        senders,
        capacity: geo.capacity,
        used: tail.saturating_sub(head).min(geo.capacity),
        max_message: geo.max_message,
        max_senders: geo.max_senders,
        sent_messages,
        sent_bytes,
        received_messages: h.rx.received_messages.load(Ordering::Relaxed),
        received_bytes: h.rx.received_bytes.load(Ordering::Relaxed),
        invalid_messages: h.rx.invalid_messages.load(Ordering::Relaxed),
        dropped_messages: seg
            .slots()
            .iter()
            .map(|s| u64::from(s.dropped.load(Ordering::Relaxed)))
            .sum(),
        recovered_bytes: h.rx.recovered_bytes.load(Ordering::Relaxed),
        takeovers: h.control.takeovers.load(Ordering::Relaxed),
        sender_deaths: h.control.sender_deaths.load(Ordering::Relaxed),
    })
}

/// Names of every shmpsc channel on this machine (in `/dev/shm`).
///
/// ```
/// let (_tx, _rx) = shmpsc::channel::<u8>("doc-list")?;
/// assert!(shmpsc::list()?.iter().any(|n| n == "doc-list"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list() -> io::Result<Vec<String>> {
    sys::shm_names(PREFIX)
}

/// Removes the channel `name` if no live process uses it (its receiver and
/// every sender are dropped or dead) and it holds no undelivered message.
/// Fails with [`OpenErrorKind::InUse`] (naming the processes) if a live
/// process uses it, with [`OpenErrorKind::HasPending`] if messages were
/// sent that no receiver got (a receiver that takes the channel over gets
/// them; [`remove_forced`] removes it anyway), with
/// [`OpenErrorKind::NotFound`] if the name is gone (or now refers to
/// another object than the one checked: a channel created since is never
/// removed), with [`OpenErrorKind::Untrusted`] for an entry that is not a
/// regular file, and with [`OpenErrorKind::Io`] (of kind
/// [`io::ErrorKind::TimedOut`]) if its remover lock stays held for a second
/// (by another removal, or by another program). A channel being created is
/// not visible under its name until it is ready, so it cannot be removed.
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u8>("doc-remove")?;
/// let err = shmpsc::remove("doc-remove").unwrap_err();
/// assert!(matches!(err.kind(), shmpsc::OpenErrorKind::InUse { .. }));
/// drop((tx, rx));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
pub fn remove(name: &str) -> Result<(), OpenError> {
    Segment::remove_if_unused(name, Pending::Keep)
}

/// Removes the channel `name` if no live process uses it, as [`remove`],
/// also when it holds undelivered messages: they are lost.
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u8>("doc-remove-forced")?;
/// tx.send(1).unwrap();
/// drop(rx); // the receiver's drop removes the name itself
/// let err = shmpsc::remove_forced("doc-remove-forced").unwrap_err();
/// assert!(matches!(err.kind(), shmpsc::OpenErrorKind::NotFound));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
pub fn remove_forced(name: &str) -> Result<(), OpenError> {
    Segment::remove_if_unused(name, Pending::Discard)
}

/// What [`sweep`] did: the channels it removed, and the entries it left
/// alone for another reason than being in use, each with the reason.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Sweep {
    /// Names of the channels removed.
    pub removed: Vec<String>,
    /// Entries not removed although no live endpoint was seen on them (or
    /// that could not be looked at), each as the error that says why (and
    /// names the entry): another user's channel this user may not open, a
    /// symlink, a directory, a name that cannot be a channel, an error.
    pub skipped: Vec<OpenError>,
}

/// Removes every channel whose name starts with `prefix` (`""` for all)
/// that no live process uses and that holds no undelivered message,
/// looking at each entry on its own: an entry that cannot be removed is
/// reported in [`Sweep::skipped`] and the sweep goes on. Channels with
/// undelivered messages are reported there too
/// ([`OpenErrorKind::HasPending`], with how many); [`sweep_forced`]
/// removes them as well. Channels in use, and names that disappear
/// meanwhile, are neither removed nor reported. An entry whose remover
/// lock another program holds (anyone who can open an object can lock it)
/// is skipped with that reason: the sweep waits for such locks at most a
/// second in all, however many entries hold them. Fails only if
/// `/dev/shm` cannot be listed.
///
/// ```no_run
/// let sweep = shmpsc::sweep("")?;
/// for why in &sweep.skipped {
///     eprintln!("left {:?} alone: {why}", why.name());
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sweep(prefix: &str) -> io::Result<Sweep> {
    sweep_with(prefix, Pending::Keep)
}

/// [`sweep`], removing channels with undelivered messages too (their
/// messages are lost).
///
/// ```no_run
/// let sweep = shmpsc::sweep_forced("jobs-")?;
/// println!("removed {:?}", sweep.removed);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sweep_forced(prefix: &str) -> io::Result<Sweep> {
    sweep_with(prefix, Pending::Discard)
}

fn sweep_with(prefix: &str, pending: Pending) -> io::Result<Sweep> {
    let mut out = Sweep::default();
    // One budget for waiting on other removers over the whole sweep: an
    // entry whose remover lock another program holds for ever costs it at
    // most that much, however many there are; once spent, such entries
    // are skipped at once (with the reason).
    let mut budget = WaitBudget::new();
    for name in list()? {
        if !name.starts_with(prefix) {
            continue;
        }
        match Segment::remove_if_unused_within(&name, &mut budget, pending) {
            Ok(()) => out.removed.push(name),
            Err(e)
                if matches!(
                    e.kind(),
                    OpenErrorKind::InUse { .. } | OpenErrorKind::NotFound
                ) => {}
            Err(e) => out.skipped.push(e),
        }
    }
    Ok(out)
}

/// Removes every channel that no live process uses; returns their names.
/// Entries that cannot be removed are skipped (see [`sweep`] for why).
///
/// ```no_run
/// let removed = shmpsc::remove_unused()?;
/// # let _ = removed;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remove_unused() -> io::Result<Vec<String>> {
    sweep("").map(|s| s.removed)
}
