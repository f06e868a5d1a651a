//! Independent review 3: reproducers. Each test states the promise it
//! checks and the interleaving it forces. Every wait is bounded (a guard
//! against hangs, never an assertion about speed). Tests that need another
//! user run it as `nobody` (root only) and are skipped otherwise.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::time::Duration;

use common::{
    channel_name, emit, other_user, param, run_child_role, unique_name, wait_for_stdin_eof, Spawn,
};
use shmpsc::{Builder, SendTimeoutError, Sender};

/// Far more than one tick (50 ms): what "within one tick" may take on a
/// loaded 2-core machine, as a guard only.
const WAIT: Duration = Duration::from_secs(3);

fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmpsc.{name}")
}

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        // Another user with READ access only: opens the object read-only
        // and takes a shared (read) lock on bytes [start, start+len).
        "read_locker" => {
            let start: i64 = param("start");
            let len: i64 = param("len");
            let file = fs::File::open(shm_path(&name)).expect("read-only open");
            match common::ofd_lock(&file, libc::F_RDLCK, start, len) {
                Ok(()) => emit("locked ok"),
                Err(e) => emit(format!("locked failed {e}")),
            }
            wait_for_stdin_eof();
        }
        "idle_receiver" => {
            let _rx = Builder::new(&name).receiver::<u64>().expect("create");
            emit("ready");
            wait_for_stdin_eof();
        }
        // Opens a sender and sends; run with a hook that kills it after
        // the payload, before the commit.
        "die_mid_message" => {
            let tx = Sender::<u64>::open(&name).expect("open");
            let _ = tx.send(1);
            emit("survived");
        }
        // Waits for "go", then removes `name` and sweeps `prefix`.
        "remove_on_go" => {
            let prefix: String = param("prefix");
            assert_eq!(common::read_line(), "go");
            emit(format!("rm {:?}", shmpsc::remove(&name)));
            match shmpsc::sweep(&prefix) {
                Ok(s) => emit(format!(
                    "gc removed={:?} skipped={:?}",
                    s.removed,
                    s.skipped
                        .iter()
                        .map(|e| format!("{}: {e}", e.name()))
                        .collect::<Vec<_>>()
                )),
                Err(e) => emit(format!("gc failed {e}")),
            }
        }
        // Creates a receiver, waits for "go", drops it.
        "drop_on_go" => {
            let rx = Builder::new(&name).receiver::<u64>().expect("create");
            emit("ready");
            assert_eq!(common::read_line(), "go");
            drop(rx);
            emit("dropped");
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Gives other users read access to `name`'s object behind shmpsc's back
/// (`Builder::mode` refuses read without write since this review; an
/// object made by an older shmpsc, or changed by its owner, may have it).
fn widen_to_read_only_for_others(name: &str) {
    fs::set_permissions(shm_path(name), fs::Permissions::from_mode(0o604)).unwrap();
}

/// A read-locker run as `nobody` on `name`'s bytes [start, start+len).
fn read_locker(test: &str, name: &str, uid: u32, gid: u32, start: u64, len: u64) -> common::Child {
    let mut s = Spawn::new(test, "read_locker", name)
        .param("start", start)
        .param("len", len);
    s.command().uid(uid).gid(gid);
    let mut c = s.spawn();
    let r = c.expect_event("locked");
    assert_eq!(r, "ok", "the read-only user could not lock: {r}");
    c
}

// ------------------------------------------------------------- defect 1a

/// Promises: Guarantee 3 ("a sender never waits forever on a dead
/// receiver"; "blocked senders get Disconnected within one tick"), and a
/// receiver takes over a channel whose receiver died. README, "Security":
/// only *write* access needs trust; `Builder::mode` accepted read bits for
/// others (now refused: `hardening.rs`, `modes_with_read_without_write_are_refused`;
/// the object is widened by hand here).
///
/// Steps: root's receiver (in a child) creates the channel, widened to
/// 0o604; root's sender fills the ring; the receiver's process is killed;
/// `nobody`, who can only READ the object, opens it O_RDONLY and takes a
/// shared OFD lock (F_RDLCK) on byte 0. Liveness asks "is byte 0
/// write-lockable" (F_OFD_GETLK with F_WRLCK), which a read lock denies:
/// the dead receiver looks alive for as long as `nobody` likes. The
/// blocked sender never gets `Disconnected`, a new receiver gets
/// `AlreadyExists` instead of taking over, `gc` says in use. Now liveness
/// counts only write locks (an endpoint's kind): the sender is
/// disconnected, a new receiver is told what holds the byte (it cannot
/// take a write lock over a read lock), and takes over once it is gone.
#[test]
fn a_read_only_user_cannot_keep_a_dead_receiver_alive() {
    run_child_role(run_role);
    let test = "a_read_only_user_cannot_keep_a_dead_receiver_alive";
    let Ok((uid, gid)) = other_user() else {
        println!("skipped: no other user");
        return;
    };
    let name = unique_name("ro-rx");
    let mut rx = Spawn::new(test, "idle_receiver", &name).spawn();
    rx.expect_event("ready");
    widen_to_read_only_for_others(&name);
    let tx = Sender::<u64>::open(&name).unwrap();
    while tx.try_send(0).is_ok() {}
    rx.kill();
    let locker = read_locker(test, &name, uid, gid, 0, 1);
    let sent = tx.send_timeout(1, WAIT);
    let refused = Builder::new(&name).receiver::<u64>().map(|_| ());
    drop(locker);
    drop(tx);
    println!("blocked send: {sent:?}; new receiver while read-locked: {refused:?}");
    assert!(
        matches!(sent, Err(SendTimeoutError::Disconnected(_))),
        "a sender blocked on a dead receiver's full ring was not disconnected \
         (a read-only user holds a read lock on byte 0): {sent:?}"
    );
    let text = refused
        .expect_err("a write lock over a read lock")
        .to_string();
    assert!(text.contains("read-locked"), "{text}");
    // The lock is gone (the locker was reaped): with the mode as the new
    // receiver asks, it takes the channel over, messages and all.
    fs::set_permissions(shm_path(&name), fs::Permissions::from_mode(0o600)).unwrap();
    let rx = Builder::new(&name).receiver::<u64>().expect("takeover");
    assert!(rx.was_taken_over());
    assert_eq!(rx.try_recv(), Ok(0));
}

// ------------------------------------------------------------- defect 1b

/// Promise: Guarantee 3 ("No process killed at any instruction can wedge
/// the channel: a claim that a dead sender left half-written is skipped").
///
/// Steps: root's channel, widened by hand to 0o604. Sender A (root, in a child) is
/// killed after writing its payload, before the commit (`payload:1:kill`).
/// `nobody` (read access only) read-locks A's slot byte. Sender B sends 7
/// behind A's dead claim. The receiver must skip the dead claim within a
/// tick and deliver 7; it waits for ever instead (A's slot looks alive).
#[test]
fn a_read_only_user_cannot_wedge_the_ring_on_a_dead_senders_claim() {
    run_child_role(run_role);
    let test = "a_read_only_user_cannot_wedge_the_ring_on_a_dead_senders_claim";
    let Ok((uid, gid)) = other_user() else {
        println!("skipped: no other user");
        return;
    };
    let name = unique_name("ro-claim");
    let rx = Builder::new(&name).receiver::<u64>().unwrap();
    widen_to_read_only_for_others(&name);
    let mut a = Spawn::new(test, "die_mid_message", &name);
    a.command().env("SHMPSC_TEST_HOOK", "payload:1:kill");
    let mut a = a.spawn();
    let status = a.wait();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "A: {status}");
    let info = shmpsc::inspect(&name).unwrap();
    let dead = info
        .senders
        .iter()
        .find(|s| !s.alive)
        .expect("A's slot is listed dead")
        .slot;
    let locker = read_locker(test, &name, uid, gid, 1 + dead as u64, 1);
    let b = rx.sender().unwrap();
    b.send(7).unwrap();
    let got = rx.recv_timeout(WAIT);
    drop(locker);
    println!(
        "with the read lock: {got:?}; after it is released: {:?}",
        rx.recv_timeout(WAIT)
    );
    assert_eq!(
        got,
        Ok(7),
        "the receiver stayed wedged on a dead sender's claim while a read-only user held \
         a read lock on its slot byte"
    );
}

// -------------------------------------------------------------- defect 2

/// Promise: another local user cannot make gc/rm fail for other entries
/// (README, "Security": "gc ... collects the rest"; a removal "is not
/// unlinked but moved aside ... to a private name").
///
/// The private name is `~removing.<pid>.<n>`, n counting from 0 in each
/// process: predictable (`/proc/sys/kernel/ns_last_pid` is world-readable;
/// a daemon's pid is shown by `shmpsc ls`). `nobody` plants
/// `shmpsc.~removing.<pid>.0..47` for the remover's pid (here the pid of
/// a child that waits for "go", standing in for the prediction). Then:
/// `remove` of an unused channel of this user fails ("16 private names in
/// a row ... were taken"), and so does `sweep` for the next entries.
#[test]
fn planted_private_names_cannot_make_rm_or_gc_fail() {
    run_child_role(run_role);
    let test = "planted_private_names_cannot_make_rm_or_gc_fail";
    let Ok((uid, gid)) = other_user() else {
        println!("skipped: no other user");
        return;
    };
    let a = unique_name("plant-a");
    let prefix = unique_name("plant-b");
    let b = format!("{prefix}-x");
    drop(Builder::new(&a).receiver::<u64>().unwrap());
    // Unused leftovers: a receiver whose name stayed (dropped in a child
    // that was killed is simplest done by hand here).
    for n in [&a, &b] {
        let p = shm_path(n);
        fs::write(&p, b"").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut remover = Spawn::new(test, "remove_on_go", &a)
        .param("prefix", &prefix)
        .spawn();
    let pid = remover.pid();
    let planted: Vec<String> = (0..48)
        .map(|n| format!("/dev/shm/shmpsc.~removing.{pid}.{n}"))
        .collect();
    for p in &planted {
        fs::write(p, b"").unwrap();
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    remover.send_line("go");
    let rm = remover.expect_event("rm");
    let gc = remover.expect_event("gc");
    remover.wait_success();
    for p in &planted {
        let _ = fs::remove_file(p);
    }
    let _ = fs::remove_file(shm_path(&a));
    let _ = fs::remove_file(shm_path(&b));
    println!("rm: {rm}\ngc: {gc}");
    assert_eq!(rm, "Ok(())", "another user's planted names made rm fail");
    assert!(
        gc.contains(&format!("removed=[\"{b}\"]")),
        "another user's planted names made gc fail: {gc}"
    );
}

/// Promise: a receiver's drop removes its own name (README: "a dropped
/// receiver [removes] only its own object"; Disconnection/Failure model:
/// the name goes with the receiver). A long-running receiver's pid is
/// public (`shmpsc ls`); `nobody` plants `shmpsc.~removing.<pid>.0..15`;
/// the receiver is dropped: its name stays behind (the error is ignored).
#[test]
fn planted_private_names_cannot_keep_a_dropped_receivers_name() {
    run_child_role(run_role);
    let test = "planted_private_names_cannot_keep_a_dropped_receivers_name";
    let Ok((uid, gid)) = other_user() else {
        println!("skipped: no other user");
        return;
    };
    let name = unique_name("plant-drop");
    let mut rx = Spawn::new(test, "drop_on_go", &name).spawn();
    rx.expect_event("ready");
    let pid = shmpsc::inspect(&name).unwrap().receiver_pid;
    let planted: Vec<String> = (0..16)
        .map(|n| format!("/dev/shm/shmpsc.~removing.{pid}.{n}"))
        .collect();
    for p in &planted {
        fs::write(p, b"").unwrap();
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    rx.send_line("go");
    rx.expect_event("dropped");
    rx.wait_success();
    for p in &planted {
        let _ = fs::remove_file(p);
    }
    let left = std::path::Path::new(&shm_path(&name)).exists();
    let _ = shmpsc::remove(&name);
    assert!(!left, "the dropped receiver's name stayed behind");
}

// -------------------------------------------------------------- defect 3

/// Promise: errors say what happened and what to do. Anyone can plant a
/// symlink under a valid channel name; `remove`/`inspect` (so `shmpsc rm`,
/// `ls`, `gc`'s skip reason) report "invalid channel name ... the system
/// refused it (ELOOP)": the name is valid, the entry is a symlink, and
/// nothing says to remove it by hand (as they say for a directory).
#[test]
fn a_symlink_under_a_channel_name_is_reported_as_a_symlink() {
    let name = unique_name("r3-link");
    std::os::unix::fs::symlink("/nonexistent", shm_path(&name)).unwrap();
    let removed = shmpsc::remove(&name);
    let inspected = shmpsc::inspect(&name).map(|_| ());
    let _ = fs::remove_file(shm_path(&name));
    let text = format!(
        "{:?} / {:?}",
        removed.as_ref().err().map(|e| e.to_string()),
        inspected.as_ref().err().map(|e| e.to_string())
    );
    println!("{text}");
    assert!(
        !text.contains("invalid channel name") && text.contains("link"),
        "a symlink is reported as an invalid name: {text}"
    );
}
