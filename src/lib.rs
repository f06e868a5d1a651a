//! # shmpsc
//!
//! Multi-producer, single-consumer channels between **processes** on Linux,
//! in the shape of [`std::sync::mpsc`]: serde messages through a lock-free
//! ring buffer in a named POSIX shared-memory segment, futex wake-ups, and
//! crash safety: a process that dies, even by `SIGKILL`, counts as a dropped
//! endpoint.
//!
//! ```no_run
//! # use serde::{Deserialize, Serialize};
//! #[derive(Serialize, Deserialize, Debug)]
//! struct Event { worker: u32, value: u64 }
//!
//! // In the parent or daemon: create the channel (this names it).
//! let (tx, rx) = shmpsc::channel::<Event>("jobs")?;
//!
//! // In each worker process, started in any way:
//! let tx = shmpsc::Sender::<Event>::open("jobs")?;
//! tx.send(Event { worker: 1, value: 42 }).unwrap();
//!
//! // Back in the receiver:
//! for ev in rx.iter().take(1) {
//!     println!("{ev:?}");
//! }
//! # Ok::<(), shmpsc::OpenError>(())
//! ```
//!
//! ## Guarantees
//!
//! 1. A message whose `send` returned `Ok` is received exactly once, unless
//!    the receiver is dropped first or dies and is never replaced.
//! 2. The messages of one sender arrive in the order they were sent.
//! 3. No process, killed at any instruction, can wedge the channel: a claim
//!    that a dead sender left half-written is skipped, never delivered; a
//!    sender never waits forever on a dead receiver.
//! 4. The receiver never delivers a torn message and never reads or writes
//!    outside the segment, whatever bytes the segment holds: damaged records
//!    are reported ([`RecvError::Invalid`]) and skipped, a damaged claim
//!    cursor closes the channel. What no reader can prevent, and so is not
//!    promised: a process with write access to the segment (every sender
//!    has it) can forge well-formed records, change a record's bytes while a
//!    [`Receiver::recv_bytes_with`] callback reads them, or truncate the
//!    object, after which the endpoints that touch the lost pages die of
//!    `SIGBUS`. Give write access ([`Builder::mode`]) only to users you
//!    trust with the channel's data.
//! 5. A slow sender is never mistaken for a dead one: death is what the
//!    kernel says (each endpoint holds an open-file-description lock on the
//!    segment, released by the kernel when its process dies), never a timeout.
//! 6. No syscall while messages flow: `send` makes one only to wake a
//!    receiver that sleeps waiting for that very message, or when the ring
//!    is full; `recv` makes none while there are messages to receive.
//!    Waiting for a message, the receiver spins briefly, yields the CPU
//!    (`sched_yield`) for a bounded time, then sleeps; an empty `try_recv`
//!    asks the kernel which senders live (one `fcntl` per attached sender)
//!    at most once per tick.
//!
//! ## Disconnection
//!
//! As in std, the receiver sees [`RecvError::Disconnected`] once no sender
//! is attached and every buffered message has been received; senders see
//! [`SendError::Disconnected`] once the receiver is gone. Process death is a
//! drop: a blocked endpoint notices its peer's death within one
//! [tick](Builder::tick) (50 ms by default).
//!
//! A channel has a name, so new senders can attach at any time with
//! [`Sender::open`]. "No sender is attached" is therefore a state, not an
//! end: after `Disconnected`, a sender that opens the channel later makes
//! `recv` return messages again. Two patterns follow:
//!
//! - **Long-lived daemon**, receiving from generations of senders that come
//!   and go: keep the sender that [`channel`] returns. The channel then never
//!   reports `Disconnected`, and `for msg in &rx` runs for as long as the
//!   daemon does.
//! - **Worker pool**, ending `for msg in rx` when every worker is gone: keep
//!   the parent's sender until every worker has attached, then drop it. The
//!   race-free way is to attach each worker's sender *before* spawning it:
//!   [`Sender::pass_to`] opens a sender for the child and hands it over with
//!   the spawned command; the child picks it up with [`Sender::open`]. A
//!   worker that dies before (or after) opening counts as dropped.
//!
//! ## Codec
//!
//! Messages are encoded with postcard unless the channel is built with
//! another [`Codec`] ([`Builder::codec`]; `Codec::Bincode`, bincode 2.x,
//! needs the `bincode` feature, and enabling it changes no other channel).
//! The codec is part of the channel's fingerprint, with the message type:
//! an endpoint opened with another codec than the channel's is refused with
//! [`OpenErrorKind::TypeMismatch`]. Both endpoints report their codec
//! ([`Sender::codec`], [`Receiver::codec`]); encoding and decoding failures
//! are a [`CodecError`].
//!
//! ## Message identity
//!
//! A channel knows what it carries, and an endpoint that disagrees is
//! refused at open with [`OpenErrorKind::TypeMismatch`], which shows both
//! sides. What is compared is the message type's **serde format**, traced
//! from its `Deserialize` implementation without a value: the names serde
//! sees (the type's, its fields', its variants', after `rename`) and every
//! field's type, nested types and every enum variant included. So a daemon
//! crate and a worker crate that each define the same `struct Rec` share a
//! channel, and a version that adds, renames or retypes a field is refused
//! at open rather than failing to decode later:
//!
//! ```
//! mod daemon { #[derive(serde::Serialize, serde::Deserialize)] pub struct Rec { pub level: u8, pub msg: String } }
//! mod worker { #[derive(serde::Serialize, serde::Deserialize)] pub struct Rec { pub level: u8, pub msg: String } }
//! mod worker_v2 { #[derive(serde::Serialize, serde::Deserialize)] pub struct Rec { pub level: u8, pub msg: String, pub pid: u32 } }
//! let rx = shmpsc::Builder::new("doc-identity").receiver::<daemon::Rec>()?;
//! let tx = shmpsc::Sender::<worker::Rec>::open("doc-identity")?;
//! tx.send(worker::Rec { level: 1, msg: "same format".into() }).unwrap();
//! assert_eq!(rx.recv().unwrap().msg, "same format");
//! let err = shmpsc::Sender::<worker_v2::Rec>::open("doc-identity").unwrap_err();
//! let text = err.to_string();
//! assert!(text.contains("carries `Rec { level: u8, msg: str }`"), "{text}");
//! assert!(text.contains("this endpoint has `Rec { level: u8, msg: str, pid: u32 }`"), "{text}");
//! # Ok::<(), shmpsc::OpenError>(())
//! ```
//!
//! The type's name (crate path included) stands in for the format where
//! the format cannot be traced: a sender opened with
//! [`Builder::open_sender_by_name`] (for a type without `Deserialize`, one
//! that borrows), or a type whose `Deserialize` uses `deserialize_any`
//! (which neither codec supports anyway). An explicit id,
//! [`Builder::schema`] on both sides, replaces the comparison altogether.
//! The codec is part of the identity too.
//!
//! ## How it works
//!
//! From `send` to `recv`: [`Sender`] encodes the message (`codec`) and
//! hands the bytes to its producer (`ring::producer`), which claims room in
//! the ring (`Ring::claim` returns a `Claimed` token), writes and commits
//! through that token, and wakes the receiver only if it announced that it
//! sleeps for that very record (`wait`). [`Receiver`] asks its consumer
//! (`ring::consumer`) for the next record: it peeks, spins, yields and
//! sleeps per the wait protocol, skips dead senders' claims (liveness from
//! the kernel's open-file-description locks, `peers`), resyncs after
//! malformed records, and returns a `Message` token whose bytes it lends
//! in place to the decoder, then marks the record delivered and gives
//! room back to senders in batches. [`Batch`] stages records privately and
//! commits them as one claim; [`ZeroCopy`] lends a message until the next
//! receive. Layers, each importing only those below it: `sys` (every
//! syscall) → `wait` → `segment` → `peers` → `ring` → `channel`, `batch`
//! and `admin`. The README's "How it works" section has the details.
//!
//! ## Failure model
//!
//! | event | receiver sees | senders see |
//! |---|---|---|
//! | sender dropped or exits | its messages, then `Disconnected` if it was the last | nothing |
//! | sender killed (any instruction) | its committed messages; its half-written claim skipped within one tick | nothing |
//! | sender stopped (`SIGSTOP`) mid-claim | waits for it; nothing skipped | — |
//! | receiver dropped | — | `Disconnected` at once, blocked senders wake |
//! | receiver killed | a new receiver on the name takes over every committed message | blocked senders get `Disconnected` within one tick |
//!
//! A process that `fork`ed without `exec` counts as dead when it is killed,
//! even while its child lives: the child's copies of its endpoints hold no
//! lock (they refuse to send and receive nothing). See "Failure model" in
//! the README for how, and for the few cases this does not cover (a raw
//! `clone` system call, no `/proc`, more than 512 endpoints in a process).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// A `--cfg loom` build holds only the protocol and its model checks.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(target_os = "linux"))]
compile_error!("shmpsc uses futexes and open-file-description locks: it supports Linux only");

#[cfg(not(loom))]
mod admin;
#[cfg(all(test, not(loom)))]
mod alloc_probe;
#[cfg(all(feature = "async", not(loom)))]
mod async_api;
#[cfg(not(loom))]
mod batch;
#[cfg(not(loom))]
mod channel;
mod codec;
mod error;
mod hooks;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub use hooks::test_hook_yields;
mod layout;
mod lock;
mod peers;
#[cfg(all(feature = "async", not(loom)))]
mod reactor;
mod ring;
#[cfg(not(loom))]
mod segment;
#[cfg(loom)]
#[path = "segment_heap.rs"]
mod segment;
mod shape;
mod sync;
#[cfg(not(loom))]
mod sys;
#[cfg(loom)]
#[path = "sys_model.rs"]
mod sys;
mod wait;

#[cfg(any(feature = "log", feature = "tracing"))]
pub mod logging;

#[cfg(not(loom))]
pub use admin::{
    inspect, list, remove, remove_forced, remove_unused, sweep, sweep_forced, ChannelInfo,
    ReceiverState, SenderInfo, Sweep,
};
#[cfg(all(feature = "async", not(loom)))]
pub use async_api::{RecvFuture, RecvStream, SendFuture};
#[cfg(not(loom))]
pub use batch::{Batch, FlushError};
#[cfg(not(loom))]
pub use channel::{
    channel, Builder, IntoIter, Iter, Receiver, Sender, TryIter, ZeroCopy, DEFAULT_CAPACITY,
    DEFAULT_MAX_SENDERS, DEFAULT_TICK,
};
#[cfg(not(loom))]
pub use codec::{Codec, CodecError, CodecErrorKind};
#[cfg(not(loom))]
pub use error::{
    InvalidMessage, OpenError, OpenErrorKind, RecvError, RecvTimeoutError, Rejection, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
