//! Protocol edges of the ring, in one process: positions that wrap, padding
//! and messages of nearly a whole lap, with the receiver's deferred release.

use shmpsc::{Builder, TryRecvError, TrySendError};

mod common;
use common::unique_name;

const CAP: u64 = 4096;

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
        let (tx, rx) = Builder::new(&name)
            .capacity(CAP)
            .max_message_size(CAP - 8)
            .create::<()>()
            .unwrap();
        for i in 0..small {
            tx.send_bytes(&[i as u8; 8]).unwrap();
        }
        let big = vec![0xB5u8; (CAP - 8) as usize];
        // Pads the rest of the lap, then finds the next lap still in use.
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
        tx.try_send_bytes(&big).unwrap();
        assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), big);
    }
}
