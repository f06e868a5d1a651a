//! [`Batch`]: messages of one sender staged in private memory and sent as
//! one block, the channel's counterpart of a `BufWriter`.
#![deny(unsafe_code)]

use std::fmt;

use serde::Serialize;

use crate::channel::Sender;
use crate::codec;
use crate::error::{Rejection, SendError, SendTimeoutError};
use crate::layout::record_size;
use crate::ring::producer::Payload;
use crate::ring::{block_limit, Block};
use crate::wait::Deadline;

/// Messages of one sender, staged in this process and sent together: the
/// channel's counterpart of a [`std::io::BufWriter`]. Made by
/// [`Sender::batch`].
///
/// Messages are encoded and staged in private memory; they become visible
/// to the receiver, all at once and in order, at [`Batch::flush`], when the
/// batch is dropped, or when the staged block is full (a quarter of the
/// ring, at most 64 KiB). Sending a block costs one claim, one copy and one
/// commit, instead of one of each per message.
///
/// A process that dies before a flush loses the messages staged since the
/// last one, and only those: the receiver never sees part of a block, and
/// no other sender's messages are held up.
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u32>("doc-batch")?;
/// let mut batch = tx.batch();
/// for i in 0..100 {
///     batch.send(i).unwrap();
/// }
/// assert!(rx.try_recv().is_err(), "nothing is visible before the flush");
/// batch.flush().unwrap();
/// assert_eq!(rx.iter().take(100).sum::<u32>(), 4950);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
pub struct Batch<'a, T> {
    tx: &'a Sender<T>,
    block: Block,
    /// Encoding buffer, reused for every message.
    scratch: Vec<u8>,
    /// Largest block, in ring bytes.
    limit: u64,
}

/// Why a [`Batch::flush`] failed, and how many staged messages were lost
/// with it.
///
/// ```
/// let (tx, rx) = shmpsc::channel::<u8>("doc-flush-error")?;
/// let mut batch = tx.batch();
/// batch.send(1).unwrap();
/// drop(rx);
/// let err = batch.flush().unwrap_err();
/// assert_eq!(err.lost(), 1);
/// assert!(err.is_disconnected());
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushError {
    lost: usize,
    rejected: Option<Rejection>,
}

impl FlushError {
    /// How many staged messages were dropped (they can never be received).
    ///
    /// ```
    /// # let (tx, rx) = shmpsc::channel::<u8>("doc-flush-lost")?;
    /// # let mut batch = tx.batch();
    /// # batch.send(1).unwrap();
    /// # batch.send(2).unwrap();
    /// # drop(rx);
    /// assert_eq!(batch.flush().unwrap_err().lost(), 2);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn lost(&self) -> usize {
        self.lost
    }

    /// Whether the receiver was dropped or died.
    ///
    /// ```
    /// # let (tx, rx) = shmpsc::channel::<u8>("doc-flush-disconnected")?;
    /// # let mut batch = tx.batch();
    /// # batch.send(1).unwrap();
    /// # drop(rx);
    /// assert!(batch.flush().unwrap_err().is_disconnected());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.rejected.is_none()
    }

    /// Why the block was refused, if it was (a copy of the sender made by
    /// `fork`), rather than the receiver being gone.
    ///
    /// ```
    /// # let (tx, rx) = shmpsc::channel::<u8>("doc-flush-rejection")?;
    /// # let mut batch = tx.batch();
    /// # batch.send(1).unwrap();
    /// # drop(rx);
    /// assert_eq!(batch.flush().unwrap_err().rejection(), None);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn rejection(&self) -> Option<&Rejection> {
        self.rejected.as_ref()
    }
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rejected {
            None => write!(
                f,
                "the receiver is gone: {} staged message(s) were not sent; start the receiver \
                 again and open a new sender",
                self.lost
            ),
            Some(r) => write!(
                f,
                "the batch was refused ({r}): {} staged message(s) were not sent",
                self.lost
            ),
        }
    }
}

impl std::error::Error for FlushError {}

impl<'a, T> Batch<'a, T> {
    pub(crate) fn new(tx: &'a Sender<T>) -> Batch<'a, T> {
        let cap = tx.producer().segment().geometry().capacity;
        Batch {
            tx,
            block: Block::default(),
            scratch: Vec::new(),
            limit: block_limit(cap),
        }
    }

    /// Stages bytes that the caller encoded (see [`Sender::send_bytes`]).
    /// Flushes first if the staged block has no room for them; a message
    /// too large for a block is sent on its own, after the staged ones.
    ///
    /// On an error nothing of `bytes` is staged. If the staged block had to
    /// be flushed first and that failed ([`SendError::Disconnected`]: the
    /// receiver is gone; [`Rejection::Forked`]: this is a copy of the
    /// sender made by `fork`), the messages staged before are lost too.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<()>("doc-batch-bytes")?;
    /// let mut batch = tx.batch();
    /// batch.send_bytes(b"one").unwrap();
    /// batch.send_bytes(b"two").unwrap();
    /// drop(batch); // flushes
    /// assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), b"one");
    /// assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), b"two");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn send_bytes<'b>(&mut self, bytes: &'b [u8]) -> Result<(), SendError<&'b [u8]>> {
        self.stage(bytes, true)
            .map_err(|e| e.carrying(bytes).into_send())
    }

    /// Stages a message that the caller encoded with the channel's codec,
    /// for typed receives to decode (see [`Sender::send_encoded_bytes`]);
    /// otherwise as [`Batch::send_bytes`].
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<String>("doc-batch-encoded-bytes")?;
    /// let encoded = postcard::to_allocvec("relayed").unwrap();
    /// let mut batch = tx.batch();
    /// batch.send_encoded_bytes(&encoded).unwrap();
    /// batch.send("typed".to_string()).unwrap();
    /// drop(batch); // flushes
    /// assert_eq!(rx.recv().as_deref(), Ok("relayed"));
    /// assert_eq!(rx.recv().as_deref(), Ok("typed"));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn send_encoded_bytes<'b>(&mut self, bytes: &'b [u8]) -> Result<(), SendError<&'b [u8]>> {
        self.stage(bytes, false)
            .map_err(|e| e.carrying(bytes).into_send())
    }

    /// Makes every staged message visible to the receiver: one claim, one
    /// copy, one commit. Blocks while the ring has no room for the block.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<String>("doc-batch-flush")?;
    /// let mut batch = tx.batch();
    /// batch.send("a".to_string()).unwrap();
    /// batch.flush().unwrap();
    /// assert_eq!(rx.try_recv().as_deref(), Ok("a"));
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn flush(&mut self) -> Result<(), FlushError> {
        if self.block.messages() == 0 {
            return Ok(());
        }
        let lost = self.block.messages() as usize;
        self.send_staged().map_err(|e| FlushError {
            lost,
            rejected: match e {
                SendTimeoutError::Rejected((), r) => Some(r),
                _ => None,
            },
        })
    }

    /// Number of messages staged and not yet flushed.
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::channel::<u8>("doc-batch-len")?;
    /// let mut batch = tx.batch();
    /// batch.send(1).unwrap();
    /// assert_eq!(batch.len(), 1);
    /// batch.flush().unwrap();
    /// assert!(batch.is_empty());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.block.messages() as usize
    }

    /// Whether no message is staged.
    ///
    /// ```
    /// let (tx, _rx) = shmpsc::channel::<u8>("doc-batch-is-empty")?;
    /// assert!(tx.batch().is_empty());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.block.messages() == 0
    }

    /// Stages one message's bytes (see [`Batch::send_bytes`]), raw or
    /// encoded by the channel's codec.
    fn stage(&mut self, bytes: &[u8], raw: bool) -> Result<(), SendTimeoutError<()>> {
        let max = self.tx.max_message_size();
        let len = bytes.len() as u64;
        if len > max {
            let too_large = Rejection::TooLarge { size: len, max };
            return Err(SendTimeoutError::Rejected((), too_large));
        }
        let size = record_size(len);
        if self.block.size() + size > self.limit {
            self.send_staged()?;
        }
        if size > self.limit {
            // Too large for any block: on its own, in order after the rest.
            let one = Payload::One(bytes);
            return if raw {
                self.tx.send_payload::<true>(one, Deadline::Never)
            } else {
                self.tx.send_payload::<false>(one, Deadline::Never)
            };
        }
        self.block.push(bytes, raw);
        Ok(())
    }

    /// Sends the staged block, if any (for `flush`, and for a message that
    /// finds the block full: then its failure is the message's).
    fn send_staged(&mut self) -> Result<(), SendTimeoutError<()>> {
        if self.block.messages() == 0 {
            return Ok(());
        }
        let r = self
            .tx
            .send_payload::<false>(Payload::Block(&mut self.block), Deadline::Never);
        // Sent (and cleared), or never to be sent.
        self.block.clear();
        r
    }
}

impl<T: Serialize> Batch<'_, T> {
    /// Encodes and stages a message. Flushes first if the staged block has
    /// no room for it; a message too large for a block is sent on its own,
    /// after the staged ones.
    ///
    /// On an error the message comes back and is not staged. If the staged
    /// block had to be flushed first and that failed
    /// ([`SendError::Disconnected`]: the receiver is gone;
    /// [`Rejection::Forked`]: this is a copy of the sender made by `fork`),
    /// the messages staged before are lost too.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<String>("doc-batch-send")?;
    /// let mut batch = tx.batch();
    /// batch.send("hello".to_string()).unwrap();
    /// batch.flush().unwrap();
    /// assert_eq!(rx.recv().unwrap(), "hello");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn send(&mut self, msg: T) -> Result<(), SendError<T>> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = match codec::encode(self.tx.codec(), &msg, &mut scratch) {
            Ok(len) => self.stage(&scratch[..len], false),
            Err(e) => Err(SendTimeoutError::Rejected((), Rejection::Encode(e))),
        };
        self.scratch = scratch;
        r.map_err(|e| e.carrying(msg).into_send())
    }
}

impl<T> Sender<T> {
    /// A batch: messages staged in this process and sent together at
    /// [`Batch::flush`] (or when the batch is dropped, or its block fills),
    /// one claim and one copy for all of them. See [`Batch`].
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<u64>("doc-sender-batch")?;
    /// {
    ///     let mut batch = tx.batch();
    ///     for i in 0..10 {
    ///         batch.send(i).unwrap();
    ///     }
    /// } // dropped: flushed
    /// assert_eq!(rx.iter().take(10).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn batch(&self) -> Batch<'_, T> {
        Batch::new(self)
    }
}

impl<T> Drop for Batch<'_, T> {
    /// Flushes what is staged; an error is ignored (as `BufWriter`'s drop
    /// does): call [`Batch::flush`] to see it.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<T> fmt::Debug for Batch<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("channel", &self.tx.name())
            .field("staged_messages", &self.block.messages())
            .field("staged_bytes", &self.block.size())
            .finish()
    }
}
