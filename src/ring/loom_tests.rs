//! Model checks of the real sender and receiver, `Producer` and `Consumer`,
//! over a heap segment (segment_heap.rs), run by loom over every
//! interleaving within a preemption bound:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --lib loom
//! ```
//!
//! The kernel is `sys_model.rs`: every endpoint is alive, and the futex is
//! a loom condition variable without timeouts, so a lost wake-up shows as
//! a deadlock, which loom reports. With an infinite tick, liveness
//! maintenance runs once per consumer (at its first wait), never on the
//! clock: each model is deterministic.

use std::time::Duration;

use loom::thread;

use super::consumer::{Consumer, Fail};
use super::producer::{Payload, Producer};
use super::{Claim, Ring};
use crate::layout::{RECORD_HEADER, RX_ALIVE};
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::wait::Deadline;

const TICK: Duration = Duration::MAX;

/// A heap segment with a live receiver whose first `senders` slots are
/// attached (their bits set, as `peers::acquire` sets them).
fn segment(capacity: u64, senders: u32) -> Segment {
    let seg = Segment::heap(capacity, capacity - RECORD_HEADER, senders);
    let h = seg.header();
    h.control.rx_state.store(RX_ALIVE, Ordering::Relaxed);
    h.active[0].store((1 << senders) - 1, Ordering::Relaxed);
    seg
}

fn consumer(seg: &Segment) -> Consumer {
    Consumer::new(seg.clone(), TICK).expect("fresh cursors")
}

fn send(p: &Producer, payload: &[u8]) {
    let (_local, r) = p.send::<false>(p.lock(), Payload::One(payload), Deadline::Never);
    r.expect("sent");
}

/// As `Receiver::recv_bytes_with(|b| b.to_vec())`.
fn recv(c: &Consumer) -> Result<Vec<u8>, Fail> {
    let msg = c.next(Deadline::Never)?;
    let bytes = c.lend(&msg, |b| b.to_vec());
    c.finish(msg);
    Ok(bytes)
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

#[test]
fn loom_one_message_to_a_blocking_receiver() {
    model(|| {
        let seg = segment(32, 1);
        let tx = Producer::new(seg.clone(), 0, TICK);
        let t = thread::spawn(move || send(&tx, &[1, 2, 3, 4, 5]));
        let rx = consumer(&seg);
        assert_eq!(recv(&rx).unwrap(), [1, 2, 3, 4, 5]);
        t.join().unwrap();
    });
}

#[test]
fn loom_two_senders_each_message_once() {
    model(|| {
        let seg = segment(64, 2);
        let a = Producer::new(seg.clone(), 0, TICK);
        let b = Producer::new(seg.clone(), 1, TICK);
        let ta = thread::spawn(move || send(&a, &[0xA; 3]));
        let tb = thread::spawn(move || send(&b, &[0xB; 9]));
        let rx = consumer(&seg);
        let mut got = [recv(&rx).unwrap(), recv(&rx).unwrap()];
        got.sort();
        assert_eq!(got, [vec![0xA; 3], vec![0xB; 9]]);
        ta.join().unwrap();
        tb.join().unwrap();
    });
}

/// 32-byte ring, 24-byte records: the second claim pads the rest of the
/// lap and then finds the ring full (the sender sleeps until the receiver
/// gives room back), then wraps.
#[test]
fn loom_full_ring_padding_and_sleeping_sender() {
    model(|| {
        let seg = segment(32, 1);
        let tx = Producer::new(seg.clone(), 0, TICK);
        let t = thread::spawn(move || {
            send(&tx, &[1; 16]);
            send(&tx, &[2; 16]);
        });
        let rx = consumer(&seg);
        assert_eq!(recv(&rx).unwrap(), [1; 16]);
        assert_eq!(recv(&rx).unwrap(), [2; 16]);
        t.join().unwrap();
    });
}

/// A live sender committed its record at `head` and already claims the
/// next one. The receiver's liveness maintenance (its first `try_recv` on
/// an uncommitted head runs it), which reads `tail` and then the senders'
/// intents, must not judge the record at `head` dead, whatever it finds:
/// either the intent names `head`, or the commit is visible (the intent
/// stores are Release, the loads Acquire). Loom 0.7 does not produce the
/// stale read that a Relaxed intent store would allow (checked: it passes
/// with one too), so for that edge this model documents the argument
/// rather than proving it; it does check the scan's decisions at every
/// interleaving of claim, commit and the next claim.
#[test]
fn loom_live_sender_record_is_never_judged_dead() {
    model(|| {
        let seg = segment(64, 1);
        let tx = Producer::new(seg.clone(), 0, TICK);
        let t = {
            let seg = seg.clone();
            thread::spawn(move || {
                send(&tx, &[7; 8]);
                // The sender's next claim, held while the receiver looks
                // (as `Producer::send` holds it before its commit).
                let ring = Ring::new(seg.clone());
                let mut cached = 0;
                let Claim::At(_held) = ring.claim(&seg.slots()[0], 8, &mut cached) else {
                    panic!("room for the second record");
                };
            })
        };
        let rx = consumer(&seg);
        let received = match rx.next(Deadline::Now) {
            Ok(msg) => {
                assert_eq!(rx.lend(&msg, |b| b.to_vec()), [7; 8]);
                rx.finish(msg);
                true
            }
            Err(Fail::Empty) => false,
            Err(e) => panic!("unexpected {e:?}"),
        };
        let recovered = &seg.header().rx.recovered_bytes;
        assert_eq!(recovered.load(Ordering::Relaxed), 0, "nothing skipped");
        t.join().unwrap();
        if !received {
            let msg = rx.next(Deadline::Now).expect("the record was not skipped");
            assert_eq!(rx.lend(&msg, |b| b.to_vec()), [7; 8]);
        }
    });
}

/// The last sender sends and goes: the receiver gets the message, then
/// `Disconnected`, never a sleep without end.
#[test]
fn loom_last_sender_gone_after_its_message() {
    model(|| {
        let seg = segment(32, 1);
        let tx = Producer::new(seg.clone(), 0, TICK);
        let t = thread::spawn(move || {
            send(&tx, &[3; 4]);
            tx.detach();
        });
        let rx = consumer(&seg);
        assert_eq!(recv(&rx).unwrap(), [3; 4]);
        assert!(matches!(recv(&rx), Err(Fail::Disconnected)));
        t.join().unwrap();
    });
}
