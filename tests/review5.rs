//! Independent review 5: reproducers. Each test states the promise it
//! checks and the interleaving it forces. Every wait is bounded by a pipe
//! or a `waitpid`; nothing is timed.

mod common;

use common::unique_name;
use shmpsc::Builder;

/// Guarantee 1 (a message whose send returned `Ok` is received exactly
/// once) against a process that `fork`s inside a `recv_bytes_with`
/// callback (a pre-fork server: receive a job, fork a worker for it).
///
/// `recv_raw` checks `forked()` only before `next`; after the callback
/// returns in the forked child, `Consumer::finish` runs there on the
/// child's copy of the consumer state, through the child's mapping, which
/// the fork handler re-established over the *same* shared object: it
/// writes `delivered` backwards and, a release batch being due, zeroes the
/// bytes it consumed and publishes its old `head`. Forced interleaving:
/// the child waits in the callback (on a pipe) until the parent has
/// released those bytes and a sender has written message E over them in
/// the next lap; then the child returns and erases E.
#[test]
fn fork_inside_recv_callback_erases_a_later_message() {
    let name = unique_name("fork-cb");
    // 4 KiB ring: release batch 512 bytes; 1000-byte payloads take 1008.
    let (tx, rx) = Builder::new(&name)
        .capacity(4096)
        .create::<u8>()
        .expect("create");
    let payload = |b: u8| vec![b; 1000];
    tx.send_bytes(&payload(1)).unwrap(); // A at 0
    tx.send_bytes(&payload(2)).unwrap(); // B at 1008
    let mut go = [0i32; 2];
    // SAFETY: `go` is ours to fill.
    assert_eq!(unsafe { libc::pipe(go.as_mut_ptr()) }, 0);
    let (go_r, go_w) = (go[0], go[1]);
    let pid = rx
        .recv_bytes_with(|a| {
            assert_eq!(a[0], 1);
            // SAFETY: the child makes only async-signal-safe calls until
            // `_exit` (read on a pipe; then the crate's `finish`, which
            // makes atomic stores, a memset and at most a futex wake).
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let mut b = [0u8; 1];
                // SAFETY: blocks until the parent writes a byte or closes
                // its end; reads into our stack buffer.
                unsafe { libc::read(go_r, b.as_mut_ptr().cast(), 1) };
            }
            pid
        })
        .expect("recv A");
    if pid == 0 {
        // The forked child, back from the callback: its `finish` ran.
        // SAFETY: leaves without running the parent's exit code.
        unsafe { libc::_exit(0) }
    }
    assert!(pid > 0, "fork failed");
    // The parent released A's bytes (offsets 0..1008) in its `finish`.
    assert_eq!(rx.try_recv_bytes_with(|b| b[0]), Ok(2)); // B, released too
    tx.send_bytes(&payload(3)).unwrap(); // C at 2016
    tx.send_bytes(&payload(4)).unwrap(); // D at 3024
                                         // Padding 4032..4096, then E at 4096: offsets 0..1008, A's old bytes.
    tx.send_bytes(&payload(5)).unwrap();
    // Let the forked child return from its callback, and wait for it.
    let mut status = 0;
    // SAFETY: one byte from our stack to a pipe we own; waits for our child.
    unsafe {
        assert_eq!(libc::write(go_w, [1u8].as_ptr().cast(), 1), 1);
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        libc::close(go_r);
        libc::close(go_w);
    }
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(rx.try_recv_bytes_with(|b| (b[0], b.len())));
    }
    assert_eq!(
        got,
        [Ok((3, 1000)), Ok((4, 1000)), Ok((5, 1000))],
        "message E, sent with Ok, was erased by the forked copy's `finish`"
    );
}
