//! Protocol edges of the ring: positions that wrap, padding and messages of
//! nearly a whole lap with the receiver's deferred release, a receiver
//! taking over after its predecessor skipped padding, and callbacks that
//! receive again.

use std::time::Duration;

use shmpsc::{Builder, Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError, TrySendError};

mod common;
mod raw;
use common::{channel_name, emit, run_child_role, unique_name, wait_for_stdin_eof, Spawn};
use raw::Raw;

const CAP: u64 = 4096;

fn builder(name: &str) -> Builder {
    Builder::new(name).capacity(CAP).max_message_size(CAP - 8)
}

fn run_role(role: &str) {
    match role {
        "skip_padding_then_wait" => {
            let (tx, rx) = builder(&channel_name()).create::<()>().unwrap();
            skip_padding(&tx, &rx, 3);
            emit("skipped");
            // Killed here, without dropping the receiver.
            wait_for_stdin_eof();
        }
        "small_receiver_then_wait" => {
            let _rx = builder(&channel_name()).receiver::<u64>().unwrap();
            emit("created");
            // Killed here, without dropping the receiver.
            wait_for_stdin_eof();
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Sends `small` 8-byte messages, then a message too large for the rest of
/// the lap, which pads the lap and finds the next one still in use; then
/// receives the small ones and finds nothing more. The receiver has stepped
/// over the padding (and given the bytes back) without delivering anything
/// there.
fn skip_padding(tx: &Sender<()>, rx: &Receiver<()>, small: usize) -> Vec<u8> {
    for i in 0..small {
        tx.send_bytes(&[i as u8; 8]).unwrap();
    }
    let big = vec![0xB5u8; (CAP - 8) as usize];
    assert!(matches!(
        tx.try_send_bytes(&big),
        Err(TrySendError::Full(_))
    ));
    for i in 0..small {
        assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), [i as u8; 8]);
    }
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty),
        "{small} small messages first"
    );
    big
}

/// After small messages the receiver has not given back yet (it releases in
/// batches), a message too large for the rest of the lap pads the lap and
/// finds no room at the start of the next one. The receiver steps over the
/// padding to a position a whole ring past the bytes it has given back: it
/// must give them back before it reads there (the word there is last lap's),
/// not report a malformed record.
#[test]
fn padding_up_to_a_ring_past_unreleased_bytes() {
    for small in [1usize, 3, 20] {
        let name = unique_name("ring-nearly-a-lap");
        let (tx, rx) = builder(&name).create::<()>().unwrap();
        let big = skip_padding(&tx, &rx, small);
        tx.try_send_bytes(&big).unwrap();
        assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), big);
    }
}

/// A receiver that stepped over padding published a consumer cursor past
/// its last delivered message. A receiver taking over after it dies must
/// accept that (not call the segment corrupt), deliver nothing twice, and
/// deliver what comes next.
#[test]
fn takeover_after_the_dead_receiver_skipped_padding() {
    run_child_role(run_role);
    let name = unique_name("ring-takeover-padding");
    let mut child = Spawn::new(
        "takeover_after_the_dead_receiver_skipped_padding",
        "skip_padding_then_wait",
        &name,
    )
    .spawn();
    child.expect_event("skipped");
    child.kill();
    let rx = builder(&name).receiver::<()>().unwrap();
    assert!(rx.was_taken_over());
    let tx = Sender::<()>::open(&name).unwrap();
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty)
    );
    tx.send_bytes(b"after").unwrap();
    assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), b"after");
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty)
    );
}

/// A callback that receives again gets the next messages, not its own
/// again, and its own bytes stay intact while it runs, even when the inner
/// receive finds the ring empty (where the receiver gives bytes back).
#[test]
fn callback_that_receives_again_gets_the_next_message() {
    let name = unique_name("ring-reentrant");
    let (tx, rx) = builder(&name).create::<()>().unwrap();
    for m in [b"one", b"two", b"six"] {
        tx.send_bytes(m).unwrap();
    }
    let (outer, inner, empty) = rx
        .recv_bytes_with(|outer| {
            let inner = rx.try_recv_bytes_with(|b| b.to_vec()).unwrap();
            let next = rx.try_recv_bytes_with(|b| b.to_vec()).unwrap();
            let empty = rx.try_recv_bytes_with(|b| b.len());
            (outer.to_vec(), vec![inner, next], empty)
        })
        .unwrap();
    assert_eq!(outer, b"one");
    assert_eq!(inner, [b"two".to_vec(), b"six".to_vec()]);
    assert_eq!(empty, Err(TryRecvError::Empty));
    tx.send_bytes(b"ten").unwrap();
    assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), b"ten");
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty)
    );
}

/// Fills one lap exactly with `count` records of `payload` bytes each (the
/// ring holds `released + capacity` bytes of unreleased records), then
/// receives the first one and, inside its callback, every other one. The
/// receive after the last must find the ring empty: the word a lap past the
/// first record is that record's own header, consumed but not given back
/// (nothing is released while a callback runs), and must not be read as a
/// new record.
fn nested_receives_over_a_whole_lap(b: Builder, count: usize, payload: usize) {
    let (tx, rx) = b.create::<()>().unwrap();
    let msg = |i: usize| vec![i as u8 ^ 0x5A; payload];
    for i in 0..count {
        tx.try_send_bytes(&msg(i)).unwrap();
    }
    assert!(matches!(
        tx.try_send_bytes(&[1]),
        Err(TrySendError::Full(_))
    ));
    let (first, inner, after) = rx
        .recv_bytes_with(|first| {
            let mut inner = Vec::new();
            // Bounded: on failure this sees `Invalid` (or old messages)
            // again and again instead of `Empty`.
            let after = loop {
                match rx.try_recv_bytes_with(|b| b.to_vec()) {
                    Ok(m) if inner.len() < count => inner.push(m),
                    other => break other.map(|m| m.len()),
                }
            };
            (first.to_vec(), inner, after)
        })
        .unwrap();
    assert_eq!(first, msg(0));
    assert_eq!(inner.len(), count - 1, "every other message, once");
    for (i, m) in inner.iter().enumerate() {
        assert!(
            *m == msg(i + 1),
            "message {} came out as message {}",
            i + 1,
            m[0] ^ 0x5A
        );
    }
    assert_eq!(after, Err(TryRecvError::Empty));
    // Once the callback returned, the whole lap goes back to the senders.
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty)
    );
    tx.send_bytes(b"next lap").unwrap();
    assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), b"next lap");
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty)
    );
}

/// 64 records of 64 bytes tile a 4 KiB ring: a lap away, the first record's
/// header carries another position's tag (reported as malformed before the
/// fix, again and again: a `try_iter` in the callback never ended).
#[test]
fn nested_receives_over_a_whole_lap_find_the_ring_empty() {
    let name = unique_name("ring-nested-lap");
    nested_receives_over_a_whole_lap(builder(&name), 64, 56);
}

/// In a 128 MiB ring the tag of a position a lap away is the same: the
/// first record's stale header looked like a new commit, and the whole lap
/// was delivered a second time.
#[test]
fn nested_receives_over_a_whole_128_mib_lap_deliver_nothing_twice() {
    let name = unique_name("ring-nested-big-lap");
    let cap = 1u64 << 27;
    let b = Builder::new(&name).capacity(cap).max_message_size(1 << 20);
    nested_receives_over_a_whole_lap(b, 128, (1 << 20) - 8);
}

/// A callback that panics on a message of a whole lap: the message counts
/// as received and is not offered again, and the ring is not read as
/// malformed a lap later.
#[test]
fn panicking_callback_on_a_whole_lap_message_is_not_offered_again() {
    let name = unique_name("ring-panic-lap");
    let (tx, rx) = builder(&name).create::<()>().unwrap();
    let big = vec![0xC3u8; (CAP - 8) as usize];
    tx.send_bytes(&big).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.recv_bytes_with(|b| {
            assert_eq!(b.len(), big.len());
            panic!("the application's callback fails");
        })
    }));
    assert!(r.is_err());
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty)
    );
    tx.send_bytes(b"after").unwrap();
    assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), b"after");
}

/// A dead receiver's 4 KiB channel, and a new receiver with a default
/// builder (which asks for 1 MiB). While the channel holds a message, the
/// takeover is refused with an error that names both capacities (taking it
/// over would keep 4 KiB, silently); with the channel's own settings it is
/// taken over, and its release batch is sized from the segment taken over
/// (with a batch larger than the ring it never gave room back while
/// messages flowed and read a lap past it: spurious `Invalid`s). Once
/// empty and unused, the channel is created anew with the builder's
/// settings.
#[test]
fn takeover_with_a_larger_builder_releases_within_the_ring() {
    run_child_role(run_role);
    let name = unique_name("ring-takeover-batch");
    let mut child = Spawn::new(
        "takeover_with_a_larger_builder_releases_within_the_ring",
        "small_receiver_then_wait",
        &name,
    )
    .spawn();
    child.expect_event("created");
    Sender::<u64>::open(&name).unwrap().send(7).unwrap();
    child.kill();
    let err = Builder::new(&name).receiver::<u64>().unwrap_err();
    assert!(
        matches!(err.kind(), shmpsc::OpenErrorKind::Stale { pending: 1, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("its capacity is 4096 bytes, not the 1048576 asked for"),
        "{text}"
    );
    let rx = builder(&name).receiver::<u64>().unwrap();
    assert!(rx.was_taken_over());
    assert_eq!(rx.capacity(), CAP as usize);
    assert_eq!(rx.recv(), Ok(7));
    const N: u64 = 20_000;
    let tx = Sender::<u64>::open(&name).unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            if tx.send(i).is_err() {
                return i;
            }
        }
        N
    });
    let mut invalid = 0;
    let mut next = 0;
    while next < N && invalid == 0 {
        match rx.recv() {
            Ok(v) => {
                assert_eq!(v, next, "in order, once");
                next += 1;
            }
            Err(RecvError::Invalid(_)) => invalid += 1,
            Err(RecvError::Disconnected) => break,
        }
    }
    // Dropping the receiver releases a sender blocked on a full ring.
    drop(rx);
    assert_eq!(sender.join().unwrap(), N);
    assert_eq!((next, invalid), (N, 0));

    // Left empty by a receiver that dies: a default builder creates the
    // channel anew, with its own settings.
    let mut child = Spawn::new(
        "takeover_with_a_larger_builder_releases_within_the_ring",
        "small_receiver_then_wait",
        &name,
    )
    .spawn();
    child.expect_event("created");
    child.kill();
    let rx = Builder::new(&name).receiver::<u64>().unwrap();
    assert!(!rx.was_taken_over());
    assert_eq!(rx.capacity(), shmpsc::DEFAULT_CAPACITY as usize);
}

/// One stray word at the head of an idle ring (written by something that
/// breaks the protocol) is reported once; then the position counts as "not
/// ready" until a sender claims past it. Before, `recv` returned `Invalid`
/// forever and `iter()` spun at 100 % CPU.
#[test]
fn stray_word_at_an_idle_head_is_reported_once() {
    let name = unique_name("ring-stray-idle");
    let (tx, rx) = builder(&name).create::<u64>().unwrap();
    tx.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(1));
    let raw = Raw::open(&name);
    let head = 16; // one record of a one-byte payload
    assert_eq!(raw.record(head), 0);
    raw.set_record(head, 0xDEAD_BEEF_0BAD_F00D);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Invalid(_))));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    // A sender's claim at that position writes its own header there.
    tx.send(2).unwrap();
    assert_eq!(rx.recv(), Ok(2));
    tx.send(3).unwrap();
    drop(tx);
    assert_eq!(rx.iter().collect::<Vec<_>>(), [3]);
}

/// The same stray word with no sender attached: `iter()` ends (it spun
/// forever before).
#[test]
fn stray_word_at_an_idle_head_does_not_keep_iter_spinning() {
    let name = unique_name("ring-stray-iter");
    let (tx, rx) = builder(&name).create::<u64>().unwrap();
    tx.send(1).unwrap();
    drop(tx);
    let raw = Raw::open(&name);
    raw.set_record(16, 0x0123_4567_89AB_CDEF);
    assert_eq!(rx.recv(), Ok(1));
    assert!(matches!(rx.recv(), Err(RecvError::Invalid(_))));
    assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    assert_eq!(rx.iter().count(), 0);
}

/// `is_empty` and `len` are queries: they give nothing back to senders
/// (no zeroing, no new consumer cursor, no wake-up), even when the next
/// record lies behind padding a whole ring past the released bytes.
#[test]
fn is_empty_and_len_have_no_side_effects() {
    let name = unique_name("ring-query-pure");
    let (tx, rx) = builder(&name).create::<()>().unwrap();
    let big = skip_padding_unreleased(&tx, &rx);
    let raw = Raw::open(&name);
    let head = raw.u64(raw::HEAD);
    let padding = raw.record(3 * 16);
    assert_ne!(padding, 0, "padding ends the lap");
    assert!(rx.is_empty());
    assert_eq!(rx.len(), 0);
    assert_eq!(
        raw.u64(raw::HEAD),
        head,
        "the published cursor did not move"
    );
    assert_eq!(raw.record(3 * 16), padding, "nothing was zeroed");
    // A receive gives the bytes back; then the big message fits.
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty)
    );
    tx.try_send_bytes(&big).unwrap();
    assert!(!rx.is_empty());
    assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), big);
}

/// Three small messages received without being given back (the receiver
/// releases in batches), then a message too large for the rest of the lap
/// pads it and finds no room: returns that message.
fn skip_padding_unreleased(tx: &Sender<()>, rx: &Receiver<()>) -> Vec<u8> {
    for i in 0..3u8 {
        tx.send_bytes(&[i; 8]).unwrap();
    }
    for i in 0..3u8 {
        assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), [i; 8]);
    }
    let big = vec![0xB5u8; (CAP - 8) as usize];
    assert!(matches!(
        tx.try_send_bytes(&big),
        Err(TrySendError::Full(_))
    ));
    big
}

/// `recv_bytes_many_with` takes every message available, in order, across
/// padding and laps, up to `max`, and counts them once in the statistics.
#[test]
fn receiving_many_at_once_keeps_order_across_laps() {
    let name = unique_name("ring-many");
    let (tx, rx) = builder(&name).create::<()>().unwrap();
    let mut next_sent = 0u32;
    let mut next_got = 0u32;
    for round in 0..50 {
        // Uneven sizes, so that records pad the end of laps.
        let n = 1 + round % 7;
        for _ in 0..n {
            let len = 4 + (next_sent as usize * 37) % 300;
            let mut msg = vec![0u8; len];
            msg[..4].copy_from_slice(&next_sent.to_le_bytes());
            tx.send_bytes(&msg).unwrap();
            next_sent += 1;
        }
        let max = 1 + round % 3;
        while next_got < next_sent {
            let got = rx
                .try_recv_bytes_many_with(max as usize, |b| {
                    let mut k = [0u8; 4];
                    k.copy_from_slice(&b[..4]);
                    assert_eq!(u32::from_le_bytes(k), next_got);
                    assert_eq!(b.len(), 4 + (next_got as usize * 37) % 300);
                    next_got += 1;
                })
                .unwrap();
            assert!(got >= 1 && got <= max as usize);
        }
        assert_eq!(
            rx.try_recv_bytes_many_with(10, |_| panic!("nothing left")),
            Err(TryRecvError::Empty)
        );
    }
    assert_eq!(rx.try_recv_bytes_many_with(0, |_| {}), Ok(0));
    assert_eq!(
        shmpsc::inspect(&name).unwrap().received_messages,
        next_sent as u64
    );
}

/// A callback of `recv_bytes_many_with` that receives again gets the
/// messages after the one it holds; the run goes on after them, and
/// nothing is delivered twice.
#[test]
fn receiving_many_with_a_callback_that_receives_again() {
    let name = unique_name("ring-many-nested");
    let (tx, rx) = builder(&name).create::<()>().unwrap();
    for i in 0..10u8 {
        tx.send_bytes(&[i]).unwrap();
    }
    let mut order = Vec::new();
    let n = rx
        .recv_bytes_many_with(100, |b| {
            order.push(b[0]);
            if b[0] == 2 {
                // Inside: takes 3 and 4.
                for _ in 0..2 {
                    rx.try_recv_bytes_with(|inner| order.push(100 + inner[0]))
                        .unwrap();
                }
            }
        })
        .unwrap();
    assert_eq!(order, [0, 1, 2, 103, 104, 5, 6, 7, 8, 9]);
    assert_eq!(n, 8, "eight were lent by the run itself");
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty)
    );
}

/// A callback that panics: the messages before it were delivered, the one
/// it held is not offered again (as with `recv_bytes_with`), the rest are
/// received next.
#[test]
fn receiving_many_with_a_panicking_callback() {
    let name = unique_name("ring-many-panic");
    let (tx, rx) = builder(&name).create::<()>().unwrap();
    for i in 0..6u8 {
        tx.send_bytes(&[i]).unwrap();
    }
    let mut seen = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.recv_bytes_many_with(100, |b| {
            seen.push(b[0]);
            if b[0] == 2 {
                panic!("callback fails on 2");
            }
        })
    }));
    assert!(r.is_err());
    assert_eq!(seen, [0, 1, 2]);
    let mut rest = Vec::new();
    rx.try_recv_bytes_many_with(100, |b| rest.push(b[0]))
        .unwrap();
    assert_eq!(rest, [3, 4, 5]);
}
