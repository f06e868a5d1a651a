//! Async receives and sends (feature `async`), on any runtime: futures
//! that try the operation and, when it would block, announce themselves on
//! the channel's futex word exactly as the blocking calls do before they
//! sleep, and hand the word to this process's helper thread (`reactor`),
//! which wakes the task when the word changes or the peer's process is
//! gone. Nothing polls while a future is pending.
//!
//! Cancel safety (as tokio's channels document it): a pending
//! [`RecvFuture`] has taken nothing from the channel, so dropping it (the
//! losing branch of `select!`) loses no message; a pending [`SendFuture`]
//! has written nothing, so dropping it hands nothing half-written to the
//! receiver (the message is dropped with the future).
#![deny(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::channel::{Receiver, Sender};
use crate::error::{RecvError, SendError, SendTimeoutError, TryRecvError};
use crate::reactor::{Peer, Registration, Watch};
use crate::ring::consumer::Fail;

/// Looks this many times in one poll when the channel keeps changing
/// between the look and the announcement; then the task yields (it is
/// woken at once) rather than hold its executor's thread.
const LOOKS_PER_POLL: u32 = 64;

/// An async receive's pending wait: the reactor registration, while the
/// receiver is announced as waiting.
#[derive(Default)]
struct RecvWait {
    registration: Option<Registration>,
}

impl RecvWait {
    /// Polls a receive on `rx`: `Ready` with what `try_recv` gives (but
    /// `Empty`), or `Pending` with the wait registered.
    fn poll<T: DeserializeOwned>(
        &mut self,
        rx: &Receiver<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, RecvError>> {
        if let Some(r) = &self.registration {
            if r.pending(cx.waker()) {
                return Poll::Pending;
            }
            let gone = r.peer_gone();
            self.end(rx);
            if gone {
                // A sender's process may be gone: skip its claim or see
                // the channel disconnected now, as a blocking receive
                // does when it wakes at its tick.
                match rx.consumer().maintain() {
                    Ok(()) | Err(Fail::Empty) => {}
                    Err(Fail::Disconnected) => return Poll::Ready(Err(RecvError::Disconnected)),
                    Err(Fail::Invalid(i)) => return Poll::Ready(Err(RecvError::Invalid(i))),
                }
            }
        }
        for _ in 0..LOOKS_PER_POLL {
            match rx.try_recv() {
                Ok(t) => return Poll::Ready(Ok(t)),
                Err(TryRecvError::Disconnected) => {
                    return Poll::Ready(Err(RecvError::Disconnected))
                }
                Err(TryRecvError::Invalid(i)) => return Poll::Ready(Err(RecvError::Invalid(i))),
                Err(TryRecvError::Empty) => {}
            }
            crate::hooks::at(crate::hooks::Point::AsyncAnnounce);
            let consumer = rx.consumer();
            let Some(w) = consumer.announce_wait() else {
                continue;
            };
            let watch: Option<Arc<Watch>> = rx.watch();
            self.registration = Some(Registration::new(
                watch.as_ref(),
                |h| &h.data.seq,
                w.seen,
                Peer::Senders { at: w.at },
                consumer.tick(),
                cx.waker(),
            ));
            return Poll::Pending;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Ends a wait: cancels the registration and withdraws the receiver's
    /// announcement.
    fn end<T>(&mut self, rx: &Receiver<T>) {
        if let Some(r) = self.registration.take() {
            // A copy made by `fork` leaves the parent's announcement alone.
            if !r.forked() {
                rx.consumer().withdraw_wait();
            }
        }
    }
}

/// The future of [`Receiver::recv_async`].
///
/// Cancel-safe: while it is pending it has taken nothing from the channel;
/// dropping it loses no message.
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'a, T> {
    rx: &'a mut Receiver<T>,
    wait: RecvWait,
}

impl<T: DeserializeOwned> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.wait.poll(this.rx, cx);
        if r.is_ready() {
            this.wait.end(this.rx);
        }
        r
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    fn drop(&mut self) {
        self.wait.end(self.rx);
    }
}

impl<T> std::fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvFuture")
            .field("channel", &self.rx.name())
            .field("pending", &self.wait.registration.is_some())
            .finish()
    }
}

/// A [`Stream`](futures_core::Stream) of a receiver's messages, made by
/// [`Receiver::into_stream`]. It ends when the channel is disconnected
/// (every sender gone and every message received). Records that cannot be
/// decoded are skipped, as [`Receiver::iter`] skips them: they are counted
/// by [`RecvStream::skipped`] (and in the channel's statistics, which
/// `shmpsc stat` shows).
///
/// Cancel-safe: a pending `next()` has taken nothing from the channel.
pub struct RecvStream<T> {
    /// `None` only once `into_inner` took it.
    rx: Option<Receiver<T>>,
    wait: RecvWait,
    skipped: u64,
    done: bool,
}

impl<T> RecvStream<T> {
    /// How many undecodable records the stream skipped.
    ///
    /// ```
    /// # async fn f() -> Result<(), shmpsc::OpenError> {
    /// let (tx, rx) = shmpsc::channel::<u32>("doc-stream-skipped")?;
    /// tx.send_bytes(&[0xff; 9]).unwrap(); // not a u32
    /// tx.send(7).unwrap();
    /// drop(tx);
    /// let mut stream = rx.into_stream();
    /// let mut got = Vec::new();
    /// while let Some(m) = std::future::poll_fn(|cx| {
    ///     futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
    /// })
    /// .await
    /// {
    ///     got.push(m);
    /// }
    /// assert_eq!((got, stream.skipped()), (vec![7], 1));
    /// # Ok(()) }
    /// # futures_executor::block_on(f()).unwrap();
    /// ```
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The receiver back (a pending `next()` is cancelled).
    ///
    /// ```
    /// let (_tx, rx) = shmpsc::channel::<u8>("doc-stream-into-inner")?;
    /// let rx = rx.into_stream().into_inner();
    /// assert_eq!(rx.name(), "doc-stream-into-inner");
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn into_inner(mut self) -> Receiver<T> {
        let rx = self
            .rx
            .take()
            .expect("a stream has its receiver until into_inner");
        self.wait.end(&rx);
        rx
    }
}

impl<T: DeserializeOwned> futures_core::Stream for RecvStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let Some(rx) = this.rx.as_ref().filter(|_| !this.done) else {
            return Poll::Ready(None);
        };
        loop {
            let r = match this.wait.poll(rx, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            this.wait.end(rx);
            match r {
                Ok(t) => return Poll::Ready(Some(t)),
                Err(RecvError::Disconnected) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Err(RecvError::Invalid(_)) => this.skipped += 1,
            }
        }
    }
}

impl<T: DeserializeOwned> futures_core::FusedStream for RecvStream<T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<T> Drop for RecvStream<T> {
    fn drop(&mut self) {
        if let Some(rx) = &self.rx {
            self.wait.end(rx);
        }
    }
}

impl<T> std::fmt::Debug for RecvStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvStream")
            .field("channel", &self.rx.as_ref().map(Receiver::name))
            .field("skipped", &self.skipped)
            .field("done", &self.done)
            .finish()
    }
}

impl<T: DeserializeOwned> Receiver<T> {
    /// Receives the next message without blocking a thread: the async
    /// [`recv`](Receiver::recv), with the same results. Any runtime (tokio,
    /// smol, `futures::executor`); feature `async`.
    ///
    /// While it is pending, the task costs nothing: it is woken by the same
    /// futex word a blocking `recv` sleeps on (through a helper thread of
    /// this process), or when a sender's process is gone (checked every
    /// tick, as blocking receives do).
    ///
    /// Cancel-safe: dropping the future before it completes (the losing
    /// branch of `select!`) loses no message.
    ///
    /// ```
    /// # async fn f() -> Result<(), shmpsc::OpenError> {
    /// let (tx, mut rx) = shmpsc::channel::<String>("doc-recv-async")?;
    /// tx.send("hi".to_string()).unwrap();
    /// assert_eq!(rx.recv_async().await.as_deref(), Ok("hi"));
    /// # Ok(()) }
    /// # futures_executor::block_on(f()).unwrap();
    /// ```
    pub fn recv_async(&mut self) -> RecvFuture<'_, T> {
        RecvFuture {
            rx: self,
            wait: RecvWait::default(),
        }
    }

    /// The receiver as a [`Stream`](futures_core::Stream) of messages,
    /// which ends when the channel is disconnected; undecodable records are
    /// skipped and counted ([`RecvStream::skipped`]). Feature `async`.
    ///
    /// ```
    /// # async fn f() -> Result<(), shmpsc::OpenError> {
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// let (tx, rx) = shmpsc::channel::<u8>("doc-into-stream")?;
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// drop(tx);
    /// let mut s = rx.into_stream();
    /// let mut got = Vec::new();
    /// while let Some(m) = poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut s), cx)).await {
    ///     got.push(m);
    /// }
    /// assert_eq!(got, [1, 2]);
    /// # Ok(()) }
    /// # futures_executor::block_on(f()).unwrap();
    /// ```
    pub fn into_stream(self) -> RecvStream<T> {
        RecvStream {
            rx: Some(self),
            wait: RecvWait::default(),
            skipped: 0,
            done: false,
        }
    }
}

/// The future of [`Sender::send_async`].
///
/// Cancel-safe: while it is pending nothing of the message was written;
/// dropping it drops the message and hands nothing to the receiver.
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a, T> {
    tx: &'a Sender<T>,
    msg: Option<T>,
    /// The message's encoded length, once the ring was found full.
    len: Option<u64>,
    registration: Option<Registration>,
}

impl<T> SendFuture<'_, T> {
    fn end(&mut self) {
        if let Some(r) = self.registration.take() {
            // A copy made by `fork` leaves the parent's announcement alone.
            if !r.forked() {
                self.tx.producer().withdraw_wait();
            }
        }
    }
}

// The message is only moved, never pinned.
impl<T> Unpin for SendFuture<'_, T> {}

impl<T: Serialize> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(r) = &this.registration {
            if r.pending(cx.waker()) {
                return Poll::Pending;
            }
            this.end();
        }
        for _ in 0..LOOKS_PER_POLL {
            let Some(msg) = this.msg.take() else {
                // Polled after it completed: nothing more to send.
                return Poll::Ready(Ok(()));
            };
            match this.tx.try_send_encoded(msg) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(SendTimeoutError::Timeout(m)) => this.msg = Some(m),
                Err(SendTimeoutError::Disconnected(m)) => {
                    return Poll::Ready(Err(SendError::Disconnected(m)))
                }
                Err(SendTimeoutError::Rejected(m, r)) => {
                    return Poll::Ready(Err(SendError::Rejected(m, r)))
                }
            }
            // Full: wait for room for this message.
            let len = match this.len {
                Some(len) => len,
                None => {
                    let len = this
                        .msg
                        .as_ref()
                        .and_then(|m| this.tx.encoded_len(m))
                        .unwrap_or(0) as u64;
                    *this.len.insert(len)
                }
            };
            let producer = this.tx.producer();
            let Some(seen) = producer.announce_wait(len) else {
                continue;
            };
            let watch = this.tx.watch();
            this.registration = Some(Registration::new(
                watch.as_ref(),
                |h| &h.control.space_seq,
                seen,
                Peer::Receiver,
                producer.tick(),
                cx.waker(),
            ));
            return Poll::Pending;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        self.end();
    }
}

impl<T> std::fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFuture")
            .field("channel", &self.tx.name())
            .field("sent", &self.msg.is_none())
            .field("pending", &self.registration.is_some())
            .finish()
    }
}

impl<T: Serialize> Sender<T> {
    /// Sends a message, waiting for room without blocking a thread: the
    /// async [`send`](Sender::send), with the same results. Any runtime;
    /// feature `async`.
    ///
    /// While the ring is full the task costs nothing: it is woken by the
    /// same futex word a blocking `send` sleeps on, or when the receiver's
    /// process is gone (checked every tick, as blocking sends do), which
    /// fails it with `Disconnected`. With room, it sends at once and makes
    /// no system call.
    ///
    /// Cancel-safe: dropping the future before it completes drops the
    /// message; nothing of it was written.
    ///
    /// ```
    /// # async fn f() -> Result<(), shmpsc::OpenError> {
    /// let (tx, rx) = shmpsc::channel::<u64>("doc-send-async")?;
    /// tx.send_async(42).await.unwrap();
    /// assert_eq!(rx.recv(), Ok(42));
    /// # Ok(()) }
    /// # futures_executor::block_on(f()).unwrap();
    /// ```
    pub fn send_async(&self, msg: T) -> SendFuture<'_, T> {
        SendFuture {
            tx: self,
            msg: Some(msg),
            len: None,
            registration: None,
        }
    }
}
