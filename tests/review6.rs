//! Review 6: the receive-side changes (`Receiver::zero_copy`,
//! `recv_bytes_many_with`). Each test states the property it checks; a
//! failing test is a confirmed finding.

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
    let (tx, rx) = Builder::new(&unique("forget"))
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

/// Finding 1 (held view): a view that is merely kept alive (its value is
/// long gone) while the program receives through the `Receiver` itself
/// wedges the channel the same way, with no error anywhere: the sender
/// sees `Full`, the receiver `Empty`, and both would block forever. The
/// view is dropped only at the end of the scope.
#[test]
fn a_view_kept_alive_does_not_wedge_direct_receives() {
    let (tx, rx) = Builder::new(&unique("held"))
        .capacity(4096)
        .create::<String>()
        .unwrap();
    let mut view = rx.zero_copy();
    tx.send("first".into()).unwrap();
    {
        let s: &str = view.recv().unwrap();
        assert_eq!(s, "first");
    } // the value is dead; the view still holds the message
    for i in 0..200 {
        match tx.try_send("x".repeat(100)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
                panic!(
                    "message {i}: wedged: the sender sees Full and the receiver Empty, \
                     though no value borrows the ring"
                );
            }
            Err(e) => panic!("{e:?}"),
        }
        assert_eq!(rx.try_recv().unwrap().len(), 100);
    }
    drop(view);
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

/// Finding 3 (fork): a value borrowed from a view in a process that then
/// forks stays a `&str` in the child, while the parent (the real receiver)
/// moves on, releases the bytes and senders write over them: the child's
/// `&str` changes under it (undefined behaviour in the child; here it
/// only compares bytes). `fork` is `unsafe`, so this is a documentation
/// matter: the fork contract ("the child's copies receive nothing") says
/// nothing about values already borrowed from the ring.
#[test]
fn a_value_borrowed_before_fork_does_not_change_in_the_child() {
    let (tx, rx) = Builder::new(&unique("fork"))
        .capacity(4096)
        .create::<String>()
        .unwrap();
    tx.send("A".repeat(1000)).unwrap();
    let mut view = rx.zero_copy();
    let s: &str = view.recv().unwrap();
    let copy: Vec<u8> = s.as_bytes().to_vec();
    let mut fds = [0i32; 2];
    // SAFETY: a plain pipe.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child reads a pipe, compares memory and `_exit`s: no
    // allocation, no lock.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut b = 0u8;
        // SAFETY: reads one byte into `b`.
        unsafe { libc::read(fds[0], (&mut b as *mut u8).cast(), 1) };
        let same = s.as_bytes() == &copy[..];
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(if same { 0 } else { 1 }) };
    }
    // The parent, the receiver, moves on: the bytes go back to senders.
    drop(view);
    for _ in 0..12 {
        tx.try_send("B".repeat(1000)).unwrap();
        assert_eq!(rx.try_recv().unwrap().len(), 1000);
    }
    // SAFETY: writes one byte from a local.
    assert_eq!(unsafe { libc::write(fds[1], [1u8].as_ptr().cast(), 1) }, 1);
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child's borrowed &str changed under it"
    );
}
