//! Review 6: the receive-side changes (`Receiver::zero_copy`,
//! `recv_bytes_many_with`). Each test states the property it checks; a
//! failing test is a confirmed finding. Two more findings are settled
//! elsewhere: a view kept alive while the program receives through the
//! `Receiver` itself (the view now borrows the receiver mutably: a
//! `compile_fail` example in `ZeroCopy`'s docs), and a value borrowed from
//! the ring before `fork` (documented: not valid in the child).

use shmpsc::{Builder, TryRecvError, TrySendError};

fn unique(label: &str) -> String {
    format!("review6-{label}-{}", std::process::id())
}

/// Finding 1 (forget): after `mem::forget` of a view that held a message,
/// no value borrows the ring any more, yet the consumer's `lent` count
/// stays raised for good: nothing is ever released again. A receiver that
/// takes every message as it comes (one in, one out) runs the senders out
/// of room within one ring, and from then on `try_send` says `Full` while
/// `try_recv` says `Empty`, forever (a blocking `recv` would never return,
/// nor would a blocking `send`).
#[test]
fn a_forgotten_view_does_not_wedge_the_channel() {
    let (tx, mut rx) = Builder::new(&unique("forget"))
        .capacity(4096)
        .create::<String>()
        .unwrap();
    tx.send("first".into()).unwrap();
    {
        let mut view = rx.zero_copy();
        let s: &str = view.recv().unwrap();
        assert_eq!(s, "first");
        std::mem::forget(view);
    }
    for i in 0..200 {
        match tx.try_send("x".repeat(100)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => panic!(
                "message {i}: the ring is full although the receiver took every message \
                 (try_recv: {:?})",
                rx.try_recv().map(|s| s.len())
            ),
            Err(e) => panic!("{e:?}"),
        }
        assert_eq!(rx.try_recv().unwrap().len(), 100);
    }
}

/// Finding 2: a `recv_bytes_many_with` run whose callback panics counts
/// none of its messages in the statistics, not even those whose callback
/// returned (and which were marked delivered). `recv_bytes_with` loses
/// only the message whose callback panicked. `Receiver::len` (sent minus
/// received) then reports messages that are not there, for good.
#[test]
fn a_panicking_many_callback_keeps_the_statistics_of_the_messages_before_it() {
    let name = unique("stats");
    let (tx, rx) = Builder::new(&name).create::<()>().unwrap();
    for i in 0..6u8 {
        tx.send_bytes(&[i]).unwrap();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.recv_bytes_many_with(100, |b| {
            if b[0] == 2 {
                panic!("callback fails on 2");
            }
        })
    }));
    assert!(r.is_err());
    let mut rest = Vec::new();
    rx.try_recv_bytes_many_with(100, |b| rest.push(b[0]))
        .unwrap();
    assert_eq!(rest, [3, 4, 5]);
    assert_eq!(rx.try_recv_bytes_with(|_| ()), Err(TryRecvError::Empty));
    let received = shmpsc::inspect(&name).unwrap().received_messages;
    assert!(
        received >= 5,
        "0, 1, 3, 4 and 5 were received and their callbacks returned; the statistics \
         count {received} (len() says {} still in the ring, which is empty)",
        rx.len()
    );
}
