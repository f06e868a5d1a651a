//! Untrusted shared memory: every sender can write any byte of the segment.
//! Damaged records must come out of the receiver as errors that say what was
//! wrong and where, the receiver must resynchronise at the next valid
//! record, and a damaged claim cursor must close the channel; never a panic,
//! a hang, or an access outside the mapping.
//!
//! The deterministic tests damage one thing each. The randomized test runs
//! a receiver and a sender in child processes (so that a crash is a failed
//! exit status, not a dead test runner) while this process writes random
//! bytes over the segment. Its seed is printed; replay one with
//! `SHMPSC_TEST_SEED=<seed> cargo test --release --test corruption`.

mod common;
mod raw;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::msg::{checksum, payload, Msg};
use common::{channel_name, emit, param, run_child_role, unique_name, Spawn};
use raw::Raw;
use shmpsc::{
    Builder, OpenError, OpenErrorKind, Receiver, RecvTimeoutError, SendError, SendTimeoutError,
    Sender, TryRecvError, TrySendError,
};

/// Geometry of every channel here: a small ring, so that positions wrap.
const CAP: u64 = 4096;
const SENDERS: u32 = 4;
/// Default maximum message size: a quarter of the capacity.
const MAX_MESSAGE: u64 = CAP / 4;
const TICK: Duration = Duration::from_millis(5);
/// Bounds a blocking receive that must return at once: a hang guard only.
const GUARD: Duration = Duration::from_secs(10);

fn builder(name: &str) -> Builder {
    Builder::new(name)
        .capacity(CAP)
        .max_senders(SENDERS)
        .tick(TICK)
}

/// A channel of `u64` (one-byte encodings below 251: 16-byte records) and
/// a raw mapping of its segment.
fn setup(label: &str) -> (String, Sender<u64>, Receiver<u64>, Raw) {
    let name = unique_name(label);
    let (tx, rx) = builder(&name).create::<u64>().expect("create");
    let raw = Raw::open(&name);
    assert_eq!(raw.capacity, CAP);
    (name, tx, rx, raw)
}

/// Receives one record that must be reported invalid, and returns the text.
fn expect_invalid(rx: &Receiver<u64>) -> (shmpsc::InvalidMessage, String) {
    match rx.recv_timeout(GUARD) {
        Err(RecvTimeoutError::Invalid(e)) => {
            let text = e.to_string();
            (e, text)
        }
        other => panic!("expected RecvTimeoutError::Invalid, got {other:?}"),
    }
}

/// Asserts that `text` contains every one of `parts`.
fn assert_says(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{text:?} does not say {p:?}");
    }
}

// ----------------------------------------------------- damaged records

/// Two messages, `1` at position 0 and `2` at position 16; the first one's
/// header is replaced by `word`. The receiver must report the first as
/// invalid (at position 0, saying `what`) and then deliver `2`.
fn damaged_first_record(label: &str, word: impl Fn(&Raw) -> u64, what: &[&str]) {
    let (name, tx, rx, raw) = setup(label);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(raw.record(0), raw::record_word(raw::COMMITTED, 1, 0));
    assert_eq!(raw.record(16), raw::record_word(raw::COMMITTED, 1, 16));
    raw.set_record(0, word(&raw));

    let (e, text) = expect_invalid(&rx);
    assert_eq!(e.position(), 0, "{text}");
    assert_says(&text, &["position 0", "skipped"]);
    assert_says(&text, what);
    assert_eq!(
        rx.recv_timeout(GUARD),
        Ok(2),
        "the next message after the damaged one"
    );
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    // The channel works on.
    tx.send(3).unwrap();
    assert_eq!(rx.recv_timeout(GUARD), Ok(3));
    let info = shmpsc::inspect(&name).unwrap();
    assert_eq!(info.invalid_messages, 1);
}

#[test]
fn record_with_another_positions_tag_is_reported_and_skipped() {
    damaged_first_record(
        "bad-tag",
        // A committed header that belongs to position 8.
        |_| raw::record_word(raw::COMMITTED, 1, 8),
        &["tag"],
    );
}

#[test]
fn record_of_unknown_kind_is_reported_and_skipped() {
    damaged_first_record(
        "bad-kind",
        |_| raw::record_word(0x42, 1, 0),
        &["unknown kind"],
    );
}

#[test]
fn committed_length_over_the_maximum_is_reported_and_skipped() {
    damaged_first_record(
        "too-long",
        |_| raw::record_word(raw::COMMITTED, MAX_MESSAGE as u32 + 8, 0),
        &["maximum message size"],
    );
}

#[test]
fn padding_that_does_not_end_the_lap_is_reported_and_skipped() {
    damaged_first_record(
        "short-padding",
        |_| raw::record_word(raw::PADDING, 100, 0),
        &["padding that does not end the lap"],
    );
}

#[test]
fn unfinished_claim_beyond_the_limits_is_reported_and_skipped() {
    // An "in progress" header that no live sender owns (the receiver skips
    // such claims when their owner is dead) with an impossible length.
    damaged_first_record(
        "huge-claim",
        |_| raw::record_word(raw::CLAIMED, u32::MAX, 0),
        &["in progress", "beyond the channel's limits"],
    );
}

#[test]
fn committed_record_crossing_the_end_of_the_lap_is_reported_and_skipped() {
    let (_name, tx, rx, raw) = setup("lap-end");
    // Move both cursors to 4000: the next records are at 4000 and 4016.
    for i in 0..250 {
        tx.send(i).unwrap();
        assert_eq!(rx.recv_timeout(GUARD), Ok(i));
    }
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    // Within the maximum size, but 4000 + 8 + 200 is past the lap's end.
    raw.set_record(4000, raw::record_word(raw::COMMITTED, 200, 4000));
    let (e, text) = expect_invalid(&rx);
    assert_eq!(e.position(), 4000);
    assert_says(&text, &["position 4000", "beyond the end of the lap"]);
    assert_eq!(rx.recv_timeout(GUARD), Ok(2));
}

#[test]
fn damaged_payload_is_reported_as_undecodable_and_skipped() {
    let (_name, tx, rx, raw) = setup("bad-payload");
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    // 0xFF is a varint that goes on past the record's end (postcard's
    // encoding of a u64; in bincode's it starts no varint).
    raw.set_u8(raw.data_at(8), 0xFF);
    let (e, text) = expect_invalid(&rx);
    assert_eq!(e.position(), 0);
    assert_says(&text, &["position 0", "could not be decoded", "u64"]);
    assert_eq!(rx.recv_timeout(GUARD), Ok(2));
}

#[test]
fn garbage_between_records_is_skipped_up_to_the_next_valid_one() {
    let (_name, tx, rx, raw) = setup("garbage-run");
    for i in 1..=4 {
        tx.send(i).unwrap();
    }
    // Records 1, 2 and 3 (positions 0 to 47) become garbage words.
    for off in (0..48).step_by(8) {
        raw.set_u64(raw.data_at(off), 0xDEAD_BEEF_0000_0000 | off);
    }
    let (e, text) = expect_invalid(&rx);
    assert_eq!(e.position(), 0);
    assert_says(&text, &["48 bytes were skipped", "resumed at position 48"]);
    assert_eq!(rx.recv_timeout(GUARD), Ok(4));
}

/// A committed record (well tagged, within the lap and the maximum size)
/// that ends more than a ring past the bytes the receiver has given back:
/// no sender can have claimed it. Before, it was delivered, and giving its
/// bytes back zeroed more than a ring (the start of the ring twice over,
/// under other senders' claims). It must be reported, and the channel must
/// go on.
#[test]
fn committed_record_beyond_the_room_given_to_senders_is_reported() {
    let name = unique_name("beyond-room");
    let (tx, rx) = Builder::new(&name)
        .capacity(CAP)
        .max_message_size(CAP - 8)
        .tick(TICK)
        .create::<()>()
        .unwrap();
    let raw = Raw::open(&name);
    // Seven 512-byte records: the receiver gives each back at once (its
    // batch is an eighth of the ring), so both cursors are at 3584.
    for _ in 0..7 {
        tx.send_bytes(&[1; 504]).unwrap();
        assert_eq!(rx.recv_bytes_with(|b| b.len()), Ok(504));
    }
    // One small record: consumed, not given back yet (3584 stays released).
    tx.send_bytes(&[2; 8]).unwrap();
    assert_eq!(rx.recv_bytes_with(|b| b.len()), Ok(8));
    // Forged: padding to the end of the lap (claimed, as a sender would),
    // then at 4096 a committed record of 3900 bytes: it fits the lap, but
    // ends at 8008, more than a ring past 3584.
    raw.set_record(3600, raw::record_word(raw::PADDING, 4096 - 3600 - 8, 3600));
    raw.set_u64(raw::TAIL, 4096);
    raw.set_record(4096, raw::record_word(raw::COMMITTED, 3900, 4096));
    match rx.recv_bytes_timeout_with(GUARD, |b| b.len()) {
        Err(RecvTimeoutError::Invalid(e)) => {
            let text = e.to_string();
            assert_eq!(e.position(), 4096, "{text}");
            assert_says(&text, &["beyond the room senders were given"]);
        }
        other => panic!("expected the forged record to be reported, got {other:?}"),
    }
    // The channel goes on: a sender's claim at 4096 replaces the word.
    tx.send_bytes(&[3; 24]).unwrap();
    assert_eq!(
        rx.recv_bytes_timeout_with(GUARD, |b| b.to_vec()),
        Ok(vec![3; 24])
    );
    assert_eq!(
        rx.try_recv_bytes_with(|b| b.len()),
        Err(TryRecvError::Empty)
    );
}

/// Child roles of this file's tests.
fn run_role(role: &str) {
    match role {
        // Creates the channel as its receiver and stays until killed.
        "idle_receiver" => {
            let _rx = builder(&channel_name()).receiver::<u64>().expect("create");
            emit("ready");
            common::wait_for_stdin_eof();
        }
        "receiver" => random_receiver(),
        "sender" => random_sender(),
        other => panic!("unknown role {other:?}"),
    }
}

#[test]
fn receiver_taking_over_a_damaged_ring_reports_and_resumes() {
    run_child_role(run_role);
    // The first receiver dies with three messages in the ring.
    let name = unique_name("takeover");
    let mut first = Spawn::new(
        "receiver_taking_over_a_damaged_ring_reports_and_resumes",
        "idle_receiver",
        &name,
    )
    .spawn();
    first.expect_event("ready");
    let tx = Sender::<u64>::open(&name).unwrap();
    for i in 1..=3 {
        tx.send(i).unwrap();
    }
    first.kill();
    // Message 1's header is damaged before the next receiver comes.
    let raw = Raw::open(&name);
    raw.set_record(0, raw::record_word(raw::COMMITTED, 1, 8));
    let rx = builder(&name).receiver::<u64>().unwrap();
    assert!(rx.was_taken_over());
    let (e, text) = expect_invalid(&rx);
    assert_eq!(e.position(), 0);
    assert_says(&text, &["tag", "skipped"]);
    assert_eq!(rx.recv_timeout(GUARD), Ok(2));
    assert_eq!(rx.recv_timeout(GUARD), Ok(3));
    tx.send(4).unwrap();
    assert_eq!(rx.recv_timeout(GUARD), Ok(4));
}

// ------------------------------------------------- damaged claim cursor

/// A sender and a receiver that agreed on one message, then `tail` is set
/// by `damage(head)`. The receiver must report it once (saying `what`),
/// then `Disconnected`; senders must get `Disconnected`.
fn damaged_tail(label: &str, damage: impl Fn(u64) -> u64, what: &str) {
    let (name, tx, rx, raw) = setup(label);
    tx.send(7).unwrap();
    assert_eq!(rx.recv_timeout(GUARD), Ok(7));
    // The receiver publishes its head in batches; what it delivered is
    // recorded at once.
    let head = raw.u64(raw::DELIVERED);
    assert_eq!((head, raw.u64(raw::TAIL)), (16, 16));
    raw.set_u64(raw::TAIL, damage(head));

    let (_, text) = expect_invalid(&rx);
    assert_says(&text, &["claim cursor", what, "closed", "create it again"]);
    // Closed: at once, however it is asked, from now on.
    assert_eq!(rx.recv_timeout(GUARD), Err(RecvTimeoutError::Disconnected));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx.recv(), Err(shmpsc::RecvError::Disconnected));
    assert!(matches!(tx.send(8), Err(SendError::Disconnected(8))));
    assert!(matches!(tx.try_send(8), Err(TrySendError::Disconnected(8))));
    assert!(matches!(
        tx.send_timeout(8, GUARD),
        Err(SendTimeoutError::Disconnected(8))
    ));
    match Sender::<u64>::open(&name) {
        Err(e) if matches!(e.kind(), OpenErrorKind::ReceiverGone) => {}
        other => panic!("a sender attached to a closed channel: {other:?}"),
    }
}

#[test]
fn misaligned_tail_closes_the_channel() {
    damaged_tail("tail-misaligned", |head| head + 3, "not 8-aligned");
}

#[test]
fn tail_more_than_a_ring_ahead_closes_the_channel() {
    damaged_tail(
        "tail-ahead",
        |head| head + CAP + 8,
        "more than a ring ahead",
    );
}

#[test]
fn huge_tail_closes_the_channel() {
    damaged_tail(
        "tail-huge",
        |_| 0xFFFF_FFFF_FFFF_FFF8,
        "more than a ring ahead",
    );
}

#[test]
fn tail_behind_the_consumer_closes_the_channel() {
    damaged_tail("tail-behind", |head| head - 8, "behind the consumer");
}

#[test]
fn senders_with_a_misaligned_tail_are_disconnected_not_stuck() {
    // The sender meets the damage first: it must not write anywhere.
    let (_name, tx, rx, raw) = setup("tail-sender");
    raw.set_u64(raw::TAIL, 5);
    assert!(matches!(tx.try_send(1), Err(TrySendError::Disconnected(1))));
    assert!(matches!(
        tx.send_timeout(1, GUARD),
        Err(SendTimeoutError::Disconnected(1))
    ));
    assert_eq!(raw.u64(raw::TAIL), 5, "the sender moved a corrupt cursor");
    let (_, text) = expect_invalid(&rx);
    assert_says(&text, &["claim cursor", "not 8-aligned"]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

// ---------------------------------------------- damaged bookkeeping words

#[test]
fn stray_active_bit_does_not_keep_the_channel_open() {
    let (_name, tx, rx, raw) = setup("stray-bit");
    // Slot 5 does not exist (4 slots): nobody can own or release it.
    raw.set_u64(raw::ACTIVE, raw.u64(raw::ACTIVE) | 1 << 5);
    tx.send(1).unwrap();
    drop(tx);
    assert_eq!(rx.recv_timeout(GUARD), Ok(1));
    // Every sender is gone: as in std, the receiver must learn it.
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(2)),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn damaged_bookkeeping_words_do_not_stop_delivery() {
    let (_name, tx, rx, raw) = setup("bookkeeping");
    // Statistics, the futex words, the sleeper bits, a stale intent of an
    // unused slot: none of them is trusted for memory or for delivery.
    for off in [
        raw::INVALID_MESSAGES,
        raw::HEAD + 8,
        raw::DATA_SEQ,
        raw::DATA_SEQ + 4,
        4 * raw::LINE + 12,
        raw::SLEEPERS,
    ] {
        raw.set_u32(off, 0xFFFF_FFFF);
    }
    raw.set_u64(raw::DATA_WAITING_AT, 1 << 50);
    for slot in 0..SENDERS as usize {
        let intent = raw::HEADER + slot * raw::SLOT + raw::SLOT_INTENT;
        if raw.u64(intent) == u64::MAX {
            raw.set_u64(intent, 1 << 40);
        }
    }
    for i in 0..100 {
        tx.send_timeout(i, GUARD).unwrap();
        assert_eq!(rx.recv_timeout(GUARD), Ok(i));
    }
}

// ------------------------------------------------- randomized corruption

/// SplitMix64: small, seedable, good enough to pick offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How long the receiver, the sender and the corrupter run.
const RANDOM_RUN: Duration = Duration::from_secs(3);
/// Hang guard on the receiver's and the sender's loops.
const MAX_ITERATIONS: u64 = 100_000_000;
/// Hang guard on one call: its own timeout plus this.
const CALL_GUARD: Duration = Duration::from_secs(3);
/// `Sender::open` retries for up to a second while the receiver is alive
/// and the header looks unfinished.
const OPEN_GUARD: Duration = Duration::from_secs(5);

/// Tallies what came out, by kind.
#[derive(Default)]
struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    fn add(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, v) in &self.0 {
            write!(f, "{k}={v} ")?;
        }
        Ok(())
    }
}

fn open_error_kind(e: &OpenError) -> &'static str {
    match e.kind() {
        OpenErrorKind::NotFound => "open:NotFound",
        OpenErrorKind::ReceiverGone => "open:ReceiverGone",
        OpenErrorKind::Corrupt { .. } => "open:Corrupt",
        OpenErrorKind::NotReady => "open:NotReady",
        OpenErrorKind::IncompatibleVersion { .. } => "open:IncompatibleVersion",
        OpenErrorKind::TypeMismatch { .. } => "open:TypeMismatch",
        OpenErrorKind::TooManySenders { .. } => "open:TooManySenders",
        OpenErrorKind::AlreadyExists => "open:AlreadyExists",
        OpenErrorKind::Io { .. } => "open:Io",
        _ => "open:other",
    }
}

/// The receiver: generations of the channel, each received from with
/// `try_recv` and `recv_timeout` while the parent damages it, until the run
/// ends. A generation ends when the channel disconnects (it was closed as
/// corrupt, or its sender bookkeeping was wiped) or after a while.
fn random_receiver() {
    let name = channel_name();
    let mut rng = Rng(param("seed"));
    let run = Duration::from_millis(param("ms"));
    let start = Instant::now();
    let mut tally = Tally::default();
    let mut iterations = 0u64;
    let mut ready = false;
    while start.elapsed() < run {
        let (tx, rx) = match builder(&name).create::<Msg>() {
            Ok(pair) => pair,
            Err(e) => {
                // The parent may damage a segment while it is being
                // created; the error says to remove it and retry.
                let text = e.to_string();
                assert!(text.contains(&name), "{text}");
                tally.add(open_error_kind(&e));
                let _ = shmpsc::remove(&name);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        tally.add("generations");
        if !ready {
            ready = true;
            emit("ready");
        }
        let lifetime = Duration::from_millis(100 + rng.below(400));
        let born = Instant::now();
        let mut closed = false;
        while born.elapsed() < lifetime && start.elapsed() < run {
            iterations += 1;
            assert!(
                iterations < MAX_ITERATIONS,
                "hang guard: the receiver looped {iterations} times"
            );
            let timeout = Duration::from_millis(rng.below(10));
            let t0 = Instant::now();
            let got: Result<Msg, RecvTimeoutError> = if rng.chance(50) {
                rx.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                    TryRecvError::Invalid(i) => RecvTimeoutError::Invalid(i),
                })
            } else {
                rx.recv_timeout(timeout)
            };
            let took = t0.elapsed();
            assert!(
                took < timeout + CALL_GUARD,
                "hang guard: a receive with a timeout of {timeout:?} took {took:?}"
            );
            if closed {
                assert_eq!(
                    got,
                    Err(RecvTimeoutError::Disconnected),
                    "a receiver that reported its channel closed went on"
                );
            }
            match got {
                Ok(m) => {
                    let intact = m.checksum == checksum(m.sender, m.seq, &m.payload)
                        && m.payload == payload(m.sender, m.seq);
                    // A damaged payload that still decodes is not the
                    // receiver's to notice: any sender may send any bytes.
                    tally.add(if intact { "ok" } else { "ok-damaged" });
                }
                Err(RecvTimeoutError::Timeout) => tally.add("empty"),
                Err(RecvTimeoutError::Invalid(e)) => {
                    let text = e.to_string();
                    assert!(text.contains("position"), "says not where: {text}");
                    if text.contains("claim cursor") {
                        closed = true;
                        tally.add("closed");
                    } else {
                        tally.add("invalid");
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    tally.add("disconnected");
                    break;
                }
            }
        }
        drop(tx);
        drop(rx);
    }
    if !ready {
        emit("ready");
    }
    emit(format!("tally {tally}iterations={iterations}"));
}

/// The sender: streams messages with `send_timeout`, and reattaches when
/// the channel disconnects, until the run ends.
fn random_sender() {
    let name = channel_name();
    let mut rng = Rng(param("seed"));
    let run = Duration::from_millis(param("ms"));
    let start = Instant::now();
    let mut tally = Tally::default();
    let mut iterations = 0u64;
    let mut tx: Option<Sender<Msg>> = None;
    let mut seq = 0;
    while start.elapsed() < run {
        iterations += 1;
        assert!(
            iterations < MAX_ITERATIONS,
            "hang guard: the sender looped {iterations} times"
        );
        let Some(sender) = &tx else {
            let t0 = Instant::now();
            match Sender::<Msg>::open(&name) {
                Ok(s) => {
                    tally.add("opened");
                    tx = Some(s);
                }
                Err(e) => {
                    let text = e.to_string();
                    assert!(text.contains(&name), "{text}");
                    tally.add(open_error_kind(&e));
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            assert!(
                t0.elapsed() < OPEN_GUARD,
                "hang guard: open took {:?}",
                t0.elapsed()
            );
            continue;
        };
        let timeout = Duration::from_millis(rng.below(10));
        let t0 = Instant::now();
        let r = sender.send_timeout(Msg::new(0, seq), timeout);
        let took = t0.elapsed();
        assert!(
            took < timeout + CALL_GUARD,
            "hang guard: a send with a timeout of {timeout:?} took {took:?}"
        );
        match r {
            Ok(()) => {
                tally.add("sent");
                seq += 1;
            }
            Err(SendTimeoutError::Timeout(_)) => tally.add("timeout"),
            Err(SendTimeoutError::Disconnected(_)) => {
                tally.add("disconnected");
                tx = None;
            }
            Err(e @ SendTimeoutError::Rejected(..)) => {
                panic!("a message within the limits was rejected: {e}")
            }
        }
    }
    emit(format!("tally {tally}iterations={iterations}"));
}

/// One random act of damage to the segment.
fn corrupt(raw: &Raw, rng: &mut Rng) {
    let len = raw.len();
    let head = raw.u64(raw::HEAD) & !7;
    match rng.below(100) {
        // Random bytes: mostly past the configuration line (which only
        // endpoints that attach read), sometimes over it.
        0..=34 => {
            let (from, to) = match rng.below(10) {
                0 => (0, raw::LINE),
                1..=4 => (raw::LINE, raw.data),
                _ => (raw.data, len),
            };
            let at = from + rng.below((to - from) as u64) as usize;
            for i in 0..1 + rng.below(16) as usize {
                if at + i < len {
                    raw.set_u8(at + i, rng.next() as u8);
                }
            }
        }
        // A record header carrying the right tag for its position, so that
        // the receiver trusts the tag and checks kind and length.
        35..=69 => {
            let pos = head + 8 * rng.below(CAP / 8);
            let kind = [
                raw::CLAIMED,
                raw::COMMITTED,
                raw::PADDING,
                raw::UNKNOWN_KIND,
            ][rng.below(4) as usize];
            let off = pos & (CAP - 1);
            let len = match rng.below(5) {
                0 => rng.below(64),
                1 => MAX_MESSAGE - 8 + rng.below(16),
                2 => CAP - 8 - off,
                3 => CAP - 8 - off + 8 * rng.below(3),
                _ => rng.next() & 0xFFFF_FFFF,
            } as u32;
            raw.set_record(pos, raw::record_word(kind, len, pos));
        }
        // The claim cursor: near the consumer (maybe misaligned, behind,
        // or more than a ring ahead), or anything.
        70..=73 => {
            let tail = match rng.below(4) {
                0 => head + rng.below(64),
                1 => head.wrapping_sub(8 * rng.below(4)),
                2 => head + CAP + 8 * rng.below(4),
                _ => rng.next(),
            };
            raw.set_u64(raw::TAIL, tail);
        }
        // The published consumer cursor.
        74..=84 => raw.set_u64(raw::HEAD, head.wrapping_add(8 * rng.below(600))),
        // A slot's intent: a live-looking claim anywhere near the consumer.
        85..=89 => {
            let slot = rng.below(SENDERS as u64) as usize;
            let at = raw::HEADER + slot * raw::SLOT + raw::SLOT_INTENT;
            let v = if rng.chance(50) {
                head + 8 * rng.below(CAP / 8)
            } else {
                rng.next()
            };
            raw.set_u64(at, v);
        }
        // The bitmaps and the receiver's state word.
        90..=94 => {
            let at = if rng.chance(50) {
                raw::ACTIVE
            } else {
                raw::SLEEPERS
            };
            raw.set_u64(at, raw.u64(at) ^ 1 << rng.below(64));
        }
        _ => raw.set_u32(
            raw::RX_STATE,
            [0, 1, 2, rng.next() as u32][rng.below(4) as usize],
        ),
    }
}

#[test]
fn random_corruption_yields_only_errors() {
    run_child_role(run_role);
    let test = "random_corruption_yields_only_errors";
    let seed = match std::env::var("SHMPSC_TEST_SEED") {
        Ok(s) => s.parse().expect("SHMPSC_TEST_SEED must be a u64"),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
        }
    };
    println!("corruption seed {seed}: replay with SHMPSC_TEST_SEED={seed}");
    let mut rng = Rng(seed);
    let name = unique_name("random");
    let ms = RANDOM_RUN.as_millis().to_string();
    let mut receiver = Spawn::new(test, "receiver", &name)
        .param("seed", rng.next())
        .param("ms", &ms)
        .spawn();
    receiver.expect_event("ready");
    let mut sender = Spawn::new(test, "sender", &name)
        .param("seed", rng.next())
        .param("ms", &ms)
        .spawn();

    // Damage whatever segment the name refers to now (the receiver makes a
    // new one for each generation), in bursts, until the children are done.
    let start = Instant::now();
    let mut writes = 0u64;
    while start.elapsed() < RANDOM_RUN {
        if let Some(raw) = Raw::try_open(&name, Some((CAP, SENDERS))) {
            for _ in 0..1 + rng.below(3) {
                corrupt(&raw, &mut rng);
                writes += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
    }
    let received = receiver.expect_event("tally");
    let sent = sender.expect_event("tally");
    receiver.wait_success();
    sender.wait_success();
    println!("seed {seed}: {writes} writes; receiver: {received}; sender: {sent}");
    let _ = shmpsc::remove(&name);

    let count = |tally: &str, key: &str| -> u64 {
        tally
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .map_or(0, |v| v.parse().unwrap())
    };
    assert!(
        count(&received, "ok") > 0,
        "seed {seed}: no message got through at all: {received}"
    );
    assert!(
        count(&received, "invalid") + count(&received, "closed") > 0,
        "seed {seed}: the damage was never noticed: {received}"
    );
}
