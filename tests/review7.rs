//! Review 7: `Receiver::zero_copy(&mut self)`, `LendingCursor` without the
//! `lent` count, `Consumer::drain` with its `Counted` guard. A failing test
//! is a confirmed finding.

use shmpsc::Builder;

fn unique(label: &str) -> String {
    format!("review7-{label}-{}", std::process::id())
}

/// Finding A: a leaked view (`mem::forget`) never finishes the message it
/// lent last. The message is consumed (never offered again) but never
/// counted as received, so `Receiver::len` (sent minus received) reports a
/// message that is not in the ring, for good.
#[test]
fn a_forgotten_view_counts_its_message_as_received() {
    let name = unique("forget-len");
    let (tx, mut rx) = Builder::new(&name).create::<String>().unwrap();
    tx.send("only".into()).unwrap();
    {
        let mut view = rx.zero_copy();
        let s: &str = view.recv().unwrap();
        assert_eq!(s, "only");
        std::mem::forget(view);
    }
    assert!(rx.try_recv().is_err(), "the message is not offered again");
    assert!(rx.is_empty());
    assert_eq!(
        rx.len(),
        0,
        "the ring is empty but len() says {} (received_messages = {})",
        rx.len(),
        shmpsc::inspect(&name).unwrap().received_messages
    );
}

/// Finding B: a `recv_bytes_many_with` callback forks and the child's copy
/// of the callback panics. Unwinding in the child drops the child's copy of
/// `Counted`, which adds the run's messages to the channel's statistics in
/// shared memory: the parent counts them too. `drain` promises that a fork
/// copy writes nothing to the channel.
#[test]
fn a_forked_child_that_panics_in_a_many_callback_writes_no_statistics() {
    let name = unique("fork-panic");
    let (tx, rx) = Builder::new(&name).create::<()>().unwrap();
    for i in 0..3u8 {
        tx.send_bytes(&[i]).unwrap();
    }
    let parent = std::process::id();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.recv_bytes_many_with(100, |b| {
            if b[0] == 1 {
                // SAFETY: the child only unwinds (no hook: resume_unwind) to
                // the catch_unwind below, then `_exit`s.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0);
                if pid == 0 {
                    std::panic::resume_unwind(Box::new(()));
                }
                let mut status = 0;
                // SAFETY: plain waitpid on our own child.
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            }
        })
    }));
    if std::process::id() != parent {
        // SAFETY: leave the forked copy of the test at once.
        unsafe { libc::_exit(0) };
    }
    assert_eq!(r.unwrap(), Ok(3));
    let received = shmpsc::inspect(&name).unwrap().received_messages;
    tx.send_bytes(&[9]).unwrap();
    assert_eq!(
        (received, rx.len()),
        (3, 1),
        "3 messages were sent and received, then one more sent"
    );
}

/// Holds: a `Deserialize` that panics inside `ZeroCopy::recv` leaves no
/// message lent and jams nothing: the view (or the receiver, once the view
/// is dropped) gets the next message, the panicking one is counted once.
#[test]
fn a_panicking_deserialize_in_a_view_jams_nothing() {
    struct Boom;
    impl<'de> serde::Deserialize<'de> for Boom {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Boom, D::Error> {
            panic!("boom")
        }
    }
    let name = unique("panic-de");
    let (tx, mut rx) = Builder::new(&name)
        .capacity(4096)
        .create::<String>()
        .unwrap();
    tx.send("a".into()).unwrap();
    tx.send("b".into()).unwrap();
    {
        let mut view = rx.zero_copy();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = view.recv::<Boom>();
        }));
        assert!(r.is_err());
        assert_eq!(view.try_recv::<&str>(), Ok("b"));
    }
    for i in 0..200 {
        tx.try_send("x".repeat(100))
            .unwrap_or_else(|e| panic!("{i}: {e:?}"));
        assert_eq!(rx.try_recv().unwrap().len(), 100);
    }
    assert_eq!(rx.len(), 0);
    assert_eq!(shmpsc::inspect(&name).unwrap().received_messages, 202);
}
