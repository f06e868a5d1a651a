//! Unit tests of the ring over a data area in private anonymous memory
//! (`Segment::anonymous`): claim, commit, peek, release, padding and
//! wrap-around, a full ring, dead-claim recovery, resync, and the checks
//! that keep the receiver within the room senders were given.

use super::*;
use crate::layout::{Geometry, Record};

const CAP: u64 = 4096;

fn ring() -> Ring {
    let geo = Geometry::new(CAP, 1024, 4).expect("valid geometry");
    Ring::new(Segment::anonymous(geo))
}

fn slot(ring: &Ring) -> &Slot {
    &ring.segment().slots()[0]
}

/// Claims and commits `payload`; returns its position.
fn send(ring: &Ring, payload: &[u8]) -> u64 {
    let mut cached = ring.segment().header().rx.head.load(Ordering::Relaxed);
    match ring.claim(slot(ring), payload.len() as u64, &mut cached) {
        Claim::At(c) => {
            let pos = c.pos;
            ring.commit(slot(ring), c, payload, false);
            pos
        }
        other => panic!("no room: {other:?}"),
    }
}

/// Peeks at `head` and reads the message found there.
fn read(ring: &Ring, head: u64, released: u64) -> (Message, Vec<u8>) {
    match ring.peek(head, released) {
        (_, Peek::Message(m)) => {
            let bytes = ring.with_payload(&m, |b| b.to_vec());
            (m, bytes)
        }
        (at, other) => panic!("at {at}: {other:?}"),
    }
}

fn tail(ring: &Ring) -> u64 {
    ring.segment().header().tail.load(Ordering::Relaxed)
}

#[test]
fn claim_commit_peek_release() {
    let ring = ring();
    assert_eq!(ring.peek(0, 0), (0, Peek::NotYet));
    assert_eq!(send(&ring, b"hello"), 0);
    assert_eq!(slot(&ring).intent.load(Ordering::Relaxed), NO_INTENT);
    let (m, bytes) = read(&ring, 0, 0);
    assert_eq!((m.position(), m.len(), m.end()), (0, 5, 16));
    assert_eq!(bytes, b"hello");
    // Released: zeroed and published.
    ring.release(0, m.end());
    assert_eq!(ring.segment().header().rx.head.load(Ordering::Relaxed), 16);
    assert_eq!(ring.word(0).load(Ordering::Relaxed), 0);
    assert_eq!(ring.peek(16, 16), (16, Peek::NotYet));
    let mut t = 0;
    assert_eq!(ring.empty_at(16, 16, &mut t), Ok(true));
    assert_eq!(t, 16);
}

#[test]
#[should_panic(expected = "a claim commits what it claimed")]
fn commit_checks_the_claimed_length() {
    let ring = ring();
    let Claim::At(c) = ring.claim(slot(&ring), 4, &mut 0) else {
        panic!("room");
    };
    ring.commit(slot(&ring), c, b"longer than claimed", false);
}

#[test]
fn padding_full_ring_and_wrap() {
    let ring = ring();
    // Four records of 1008 bytes leave 64 bytes in the lap.
    for i in 0..4u8 {
        send(&ring, &[i; 1000]);
    }
    assert_eq!(tail(&ring), 4032);
    // 112 bytes do not fit in the lap: the rest is padded, and the next lap
    // is full (nothing was released).
    let mut cached = 0;
    assert_eq!(ring.claim(slot(&ring), 100, &mut cached), Claim::Full);
    assert_eq!(tail(&ring), CAP);
    assert_eq!(slot(&ring).intent.load(Ordering::Relaxed), NO_INTENT);
    assert_eq!(
        parse_record(ring.word(4032).load(Ordering::Relaxed), 4032),
        Ok(Record::Padding(56))
    );
    // The receiver reads the four, steps over the padding, and must give
    // the lap back before it reads a word of the next one.
    let mut head = 0;
    for i in 0..4u8 {
        let (m, bytes) = read(&ring, head, 0);
        assert_eq!(bytes, [i; 1000]);
        head = m.end();
    }
    assert_eq!(ring.peek(head, 0), (CAP, Peek::MustRelease));
    ring.release(0, CAP);
    assert!((0..CAP)
        .step_by(8)
        .all(|p| ring.word(p).load(Ordering::Relaxed) == 0));
    // Room again: the claim wraps to the start of the area.
    assert_eq!(send(&ring, &[9; 100]), CAP);
    let (m, bytes) = read(&ring, CAP, CAP);
    assert_eq!((m.offset, bytes), (8, vec![9; 100]));
}

#[test]
fn peek_stops_a_ring_past_released() {
    let ring = ring();
    // Whatever the word there holds (last lap's record), it is not read.
    ring.word(0)
        .store(record_word(Record::Committed(1), CAP), Ordering::Relaxed);
    assert_eq!(ring.peek(CAP, 0), (CAP, Peek::MustRelease));
    assert!(matches!(ring.peek(CAP, 16), (_, Peek::Message(_))));
}

#[test]
fn records_beyond_the_room_given_are_malformed() {
    let ring = ring();
    // Released up to 64: senders can claim up to 64 + CAP, so a committed
    // 112-byte record at CAP would end beyond it.
    ring.word(0)
        .store(record_word(Record::Committed(100), CAP), Ordering::Relaxed);
    match ring.peek(CAP, 64) {
        (_, Peek::Malformed(m)) => assert!(m.what.contains("beyond the room")),
        other => panic!("{other:?}"),
    }
    // A claim cursor beyond `released + CAP` is corrupt.
    ring.segment()
        .header()
        .tail
        .store(64 + CAP + 8, Ordering::Relaxed);
    assert!(ring.checked_tail(64, 64).is_err());
    ring.segment().header().tail.store(3, Ordering::Relaxed);
    assert!(ring.checked_tail(0, 0).is_err());
}

#[test]
fn dead_claims_are_skipped_live_ones_never() {
    let ring = ring();
    // A claim whose owner died before writing anything: zeros up to `tail`.
    let Claim::At(c) = ring.claim(slot(&ring), 20, &mut 0) else {
        panic!("room");
    };
    let t = tail(&ring);
    assert_eq!(t, 32);
    assert_eq!(
        ring.dead_claim_end(0, t, 0, |p| p == 0),
        Ok(None),
        "live owner"
    );
    assert_eq!(ring.dead_claim_end(0, t, 0, |_| false), Ok(Some(32)));
    // One that died mid-payload: its header gives the length to skip.
    ring.word(0)
        .store(record_word(Record::Claimed(20), 0), Ordering::Relaxed);
    let second = send(&ring, b"after");
    assert_eq!(second, 32);
    assert_eq!(
        ring.dead_claim_end(0, tail(&ring), 0, |_| false),
        Ok(Some(32))
    );
    // A committed record is not dead, whoever owns it.
    assert_eq!(ring.dead_claim_end(32, tail(&ring), 0, |_| false), Ok(None));
    drop(c);
}

#[test]
fn resync_resumes_at_the_next_plausible_header() {
    let ring = ring();
    send(&ring, b"first");
    send(&ring, b"second");
    // Damage the first header: the receiver reports it and resumes at the
    // second record.
    ring.word(0).store(0xdead_beef, Ordering::Relaxed);
    let bad = match ring.peek(0, 0) {
        (0, Peek::Malformed(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(bad.word, 0xdead_beef);
    let t = ring.checked_tail(0, 0).unwrap();
    assert_eq!(ring.resync(0, t, |_| false), 16);
    assert_eq!(read(&ring, 16, 0).1, b"second");
    // With nothing plausible after it, up to `tail`.
    ring.word(16).store(0xdead_beef, Ordering::Relaxed);
    assert_eq!(ring.resync(0, t, |_| false), t);
    // A live sender's claim stops it.
    assert_eq!(ring.resync(0, t, |p| p == 8), 8);
}

/// Stages `payloads` in a block, claims it and commits it; returns its
/// position.
fn send_block(ring: &Ring, payloads: &[&[u8]]) -> u64 {
    let kinds: Vec<(&[u8], bool)> = payloads.iter().map(|p| (*p, false)).collect();
    send_block_of(ring, &kinds)
}

/// [`send_block`] with each record's kind: raw (`true`) or encoded.
fn send_block_of(ring: &Ring, records: &[(&[u8], bool)]) -> u64 {
    let mut block = Block::default();
    for &(p, raw) in records {
        block.push(p, raw);
    }
    let mut cached = ring.segment().header().rx.head.load(Ordering::Relaxed);
    match ring.claim(slot(ring), block.claim_len(), &mut cached) {
        Claim::At(c) => {
            let pos = c.pos;
            ring.commit_block(slot(ring), c, &mut block);
            assert_eq!(block.size(), 0, "a committed block is cleared");
            pos
        }
        other => panic!("no room: {other:?}"),
    }
}

#[test]
fn raw_and_encoded_records_keep_their_kind_alone_and_in_blocks() {
    let ring = ring();
    let mut cached = 0;
    let raw_one = match ring.claim(slot(&ring), 3, &mut cached) {
        Claim::At(c) => {
            let pos = c.pos;
            ring.commit(slot(&ring), c, b"raw", true);
            pos
        }
        other => panic!("no room: {other:?}"),
    };
    send(&ring, b"enc");
    send_block_of(
        &ring,
        &[(b"r1", true), (b"e1", false), (b"", true), (b"e2", false)],
    );
    // The first record of a block carries the block's commit: raw too.
    send_block_of(&ring, &[(b"r-first", true), (b"e3", false)]);
    let mut head = 0;
    let mut got = Vec::new();
    while let (_, Peek::Message(m)) = ring.peek(head, 0) {
        head = m.end();
        got.push((ring.with_payload(&m, |b| b.to_vec()), m.is_raw()));
    }
    let want: Vec<(Vec<u8>, bool)> = [
        (&b"raw"[..], true),
        (b"enc", false),
        (b"r1", true),
        (b"e1", false),
        (b"", true),
        (b"e2", false),
        (b"r-first", true),
        (b"e3", false),
    ]
    .iter()
    .map(|(p, r)| (p.to_vec(), *r))
    .collect();
    assert_eq!(raw_one, 0);
    assert_eq!(got, want);
    assert_eq!(head, tail(&ring));
}

#[test]
fn a_block_is_read_as_its_records_in_order() {
    let ring = ring();
    send(&ring, b"before");
    let pos = send_block(&ring, &[b"one", b"", b"three-three", &[7u8; 100]]);
    assert_eq!(pos, 16);
    assert_eq!(slot(&ring).intent.load(Ordering::Relaxed), NO_INTENT);
    let mut head = 0;
    let mut got = Vec::new();
    while let (_, Peek::Message(m)) = ring.peek(head, 0) {
        head = m.end();
        got.push(ring.with_payload(&m, |b| b.to_vec()));
    }
    let want: Vec<Vec<u8>> = vec![
        b"before".to_vec(),
        b"one".to_vec(),
        vec![],
        b"three-three".to_vec(),
        vec![7u8; 100],
    ];
    assert_eq!(got, want);
    assert_eq!(head, tail(&ring), "the block is exactly its records");
}

#[test]
fn a_block_wraps_like_a_record() {
    let ring = ring();
    // Fill most of the lap, give it back, then send a block that does not
    // fit before the end: it pads and starts the next lap.
    let big = [1u8; 1000];
    for _ in 0..4 {
        send(&ring, &big);
    }
    let released = tail(&ring);
    ring.release(0, released);
    let pos = send_block(&ring, &[&[2u8; 40], &[3u8; 40]]);
    assert_eq!(pos, CAP, "padded to the next lap");
    let (m, bytes) = read(&ring, released, released);
    assert_eq!((m.position(), bytes), (CAP, vec![2u8; 40]));
    let (m, bytes) = read(&ring, m.end(), released);
    assert_eq!(bytes, [3u8; 40]);
    assert_eq!(m.end(), tail(&ring));
}

#[test]
fn a_block_whose_sender_died_before_its_commit_is_skipped_whole() {
    let ring = ring();
    // What a sender that died after copying the block, before the commit,
    // leaves: the first header `Claimed` with the whole block's length,
    // the other records complete and committed.
    let mut block = Block::default();
    for p in [&b"aaaa"[..], b"bbbb", b"cccc"] {
        block.push(p, false);
    }
    let size = block.size();
    let Claim::At(c) = ring.claim(slot(&ring), block.claim_len(), &mut 0) else {
        panic!("room");
    };
    assert_eq!(c.pos, 0);
    ring.commit_block(slot(&ring), c, &mut block);
    ring.word(0).store(
        record_word(Record::Claimed((size - 8) as u32), 0),
        Ordering::Relaxed,
    );
    let after = send(&ring, b"after");
    assert_eq!(after, size);
    assert_eq!(ring.peek(0, 0), (0, Peek::NotYet), "pending, not delivered");
    assert_eq!(
        ring.dead_claim_end(0, tail(&ring), 0, |_| false),
        Ok(Some(size)),
        "skipped whole: none of its records is delivered"
    );
    assert_eq!(read(&ring, size, 0).1, b"after");
    // Damaged before it instead: resync accepts the block's pending header
    // as a place to resume.
    let t = tail(&ring);
    assert_eq!(ring.resync(0, t, |_| false), 16, "the second record");
}

#[test]
fn a_pending_claim_longer_than_a_block_is_malformed() {
    let ring = ring();
    // Beyond both the maximum message (1024) and the block limit (1024 of
    // a 4096-byte ring): not a length any sender claims.
    let Claim::At(c) = ring.claim(slot(&ring), 2000, &mut 0) else {
        panic!("room");
    };
    ring.word(0)
        .store(record_word(Record::Claimed(2000), 0), Ordering::Relaxed);
    assert!(ring.dead_claim_end(0, tail(&ring), 0, |_| false).is_err());
    drop(c);
}
