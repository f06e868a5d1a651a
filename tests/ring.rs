//! Protocol edges of the ring: positions that wrap, padding and messages of
//! nearly a whole lap with the receiver's deferred release, a receiver
//! taking over after its predecessor skipped padding, and callbacks that
//! receive again.

use shmpsc::{Builder, Receiver, Sender, TryRecvError, TrySendError};

mod common;
use common::{channel_name, emit, run_child_role, unique_name, wait_for_stdin_eof, Spawn};

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
