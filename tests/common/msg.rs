//! The test message, whose payload and checksum derive from its sender and
//! sequence number, and the receiver-side checks: per-sender FIFO, exactly
//! once, intact.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shmpsc::{Receiver, RecvTimeoutError};

use super::HANG_GUARD;

/// A test message: `payload` and `checksum` are derived from `sender` and
/// `seq`, so a receiver can check that it is intact.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub sender: u32,
    pub seq: u64,
    pub payload: Vec<u8>,
    pub checksum: u64,
}

/// FNV-1a over the identifying fields and the payload.
pub fn checksum(sender: u32, seq: u64, payload: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sender
        .to_le_bytes()
        .iter()
        .chain(seq.to_le_bytes().iter())
        .chain(payload)
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub fn payload(sender: u32, seq: u64) -> Vec<u8> {
    let len = 1 + (seq % 8) as usize;
    let x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(sender);
    (0..len).map(|i| (x >> (8 * i)) as u8).collect()
}

impl Msg {
    pub fn new(sender: u32, seq: u64) -> Msg {
        let payload = payload(sender, seq);
        let checksum = checksum(sender, seq, &payload);
        Msg {
            sender,
            seq,
            payload,
            checksum,
        }
    }
}

/// Per-sender FIFO, exactly-once and integrity checks.
pub struct Tracker {
    pub next: Vec<u64>,
}

impl Tracker {
    pub fn new(senders: usize) -> Tracker {
        Tracker {
            next: vec![0; senders],
        }
    }

    pub fn accept(&mut self, m: &Msg) {
        let i = m.sender as usize;
        assert!(i < self.next.len(), "message from unknown sender: {m:?}");
        assert_eq!(
            m.checksum,
            checksum(m.sender, m.seq, &m.payload),
            "bad checksum: {m:?}"
        );
        assert_eq!(m.payload, payload(m.sender, m.seq), "bad payload: {m:?}");
        assert_eq!(
            m.seq, self.next[i],
            "sender {i}: got seq {} where {} was next (gap, duplicate or reordering)",
            m.seq, self.next[i]
        );
        self.next[i] += 1;
    }
}

/// Receives with a hang guard; `None` means `Disconnected`.
pub fn recv_guarded<T: DeserializeOwned>(rx: &Receiver<T>) -> Option<T> {
    match rx.recv_timeout(HANG_GUARD) {
        Ok(t) => Some(t),
        Err(RecvTimeoutError::Disconnected) => None,
        Err(RecvTimeoutError::Timeout) => {
            panic!("hang guard: nothing received (and no disconnection) within {HANG_GUARD:?}")
        }
        Err(RecvTimeoutError::Invalid(e)) => panic!("invalid record received: {e}"),
    }
}

/// Receives `Msg`s until `Disconnected`, checking each one.
pub fn drain_until_disconnected(rx: &Receiver<Msg>, tracker: &mut Tracker) {
    while let Some(m) = recv_guarded(rx) {
        tracker.accept(&m);
    }
}
