//! `Sender::pass_to`: the sender passed to a spawned process belongs to that
//! process. It counts as dropped when that process exits, whoever else
//! still holds the passed descriptor (issue 11, item 8), and only that
//! process can adopt it, however many times the `Command` is spawned
//! (item 9).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{channel_name, emit, read_line, run_child_role, unique_name, Spawn};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use shmpsc::{Builder, RecvTimeoutError, Sender};

/// A short liveness tick, so a test sees many liveness checks quickly.
const TICK: Duration = Duration::from_millis(5);
/// Bound for things that must happen within a tick or two but, with the
/// defect, never happen (a hang): only a guard, never a timing assertion.
const PROMPTLY: Duration = Duration::from_secs(10);

/// A stray grandchild, reparented to this test process (a child
/// subreaper) when its parent exited: killed and reaped on drop.
struct Stray(i32);

impl Drop for Stray {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.0);
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
}

/// Where the open descriptors of process `pid` point.
fn fds_of(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether process `pid` holds a descriptor of channel `name`'s object.
/// By identity (device and inode), not by the path a descriptor shows: an
/// object created unnamed and linked in later shows as `/dev/shm/#<inode>
/// (deleted)`.
fn holds_object(pid: i32, name: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(object) = std::fs::metadata(format!("/dev/shm/shmpsc.{name}")) else {
        return false;
    };
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::metadata(e.ok()?.path()).ok())
                .any(|m| m.dev() == object.dev() && m.ino() == object.ino())
        })
        .unwrap_or(false)
}

/// Receives until `Disconnected`; returns what came, or the other error.
fn drain(rx: &shmpsc::Receiver<u8>) -> Result<Vec<u8>, RecvTimeoutError> {
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(PROMPTLY) {
            Ok(m) => got.push(m),
            Err(RecvTimeoutError::Disconnected) => return Ok(got),
            Err(e) => return Err(e),
        }
    }
}

/// Spawns `sh -c 'sleep 60 & echo $!'` with a sender passed to it. The
/// shell links no shmpsc (no start-up code makes the descriptor
/// close-on-exec), never opens the channel, and exits at once; its
/// background `sleep` inherits the passed descriptor. Returns the stray
/// (checked to hold the descriptor) and the shell, exited but not reaped.
fn spawn_shell_leaving_a_stray(tx: &Sender<u8>, name: &str) -> (Stray, std::process::Child) {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "sleep 60 </dev/null >/dev/null 2>&1 & echo $!"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    tx.pass_to(&mut cmd).unwrap();
    let mut sh = cmd.spawn().expect("spawning sh");
    // The parent's copy of the descriptor goes with the command.
    drop(cmd);
    // End of file once the shell exited (the stray's stdout is /dev/null).
    let mut out = String::new();
    sh.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .expect("reading the shell's output");
    let stray = Stray(
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("the shell printed {out:?}, not a pid: {e}")),
    );
    assert!(
        holds_object(stray.0, name),
        "precondition: the stray `sleep` should hold the passed descriptor; it holds {:?}",
        fds_of(stray.0)
    );
    (stray, sh)
}

/// Item 8: the spawned process exits without opening the channel and
/// without shmpsc's start-up code; its background child keeps the passed
/// descriptor (and so the slot's lock). The sender still counts as dropped
/// once the spawned process is gone (here: exited, not yet reaped). With
/// the defect the stray kept it alive: `Timeout`, never `Disconnected`.
#[test]
fn passed_sender_dropped_when_spawned_process_exits_leaving_a_stray() {
    run_child_role(|role| panic!("unknown role {role:?}"));
    nix::sys::prctl::set_child_subreaper(true).expect("becoming a child subreaper");
    let name = unique_name("stray");
    let (tx, rx) = Builder::new(&name)
        .tick(TICK)
        .max_senders(2)
        .create::<u8>()
        .unwrap();
    let (stray, mut sh) = spawn_shell_leaving_a_stray(&tx, &name);
    drop(tx);
    let r = rx.recv_timeout(PROMPTLY);
    let status = sh.wait().expect("waiting for sh");
    assert!(status.success(), "sh: {status}");
    assert_eq!(
        r,
        Err(RecvTimeoutError::Disconnected),
        "the shell exited, but the sender passed to it is still counted (its stray child \
         holds the descriptor)"
    );
    // The channel goes on: a new sender attaches (on another slot: the
    // stray still holds the lock of the old one) and is counted, and its
    // drop is a disconnection again.
    let tx2 = Sender::<u8>::open(&name).expect("a new sender while the stray lives");
    tx2.send(5).unwrap();
    assert_eq!(rx.recv_timeout(PROMPTLY), Ok(5));
    assert_eq!(rx.recv_timeout(TICK * 20), Err(RecvTimeoutError::Timeout));
    drop(tx2);
    assert_eq!(drain(&rx), Ok(vec![]));
    // Once the stray is gone, its old slot is usable again: both slots
    // attach.
    drop(stray);
    let a = Sender::<u8>::open(&name).expect("first sender after the stray");
    let b = Sender::<u8>::open(&name).expect("second sender after the stray");
    a.send(1).unwrap();
    b.send(2).unwrap();
    drop((a, b));
    let mut got = drain(&rx).unwrap();
    got.sort();
    assert_eq!(got, [1, 2]);
}

/// Item 8, the same once the spawned process was reaped, and `inspect`
/// (the `shmpsc ls` view) agrees: the sender is listed dead, not alive.
#[test]
fn passed_sender_listed_dead_after_spawned_process_is_reaped() {
    run_child_role(|role| panic!("unknown role {role:?}"));
    nix::sys::prctl::set_child_subreaper(true).expect("becoming a child subreaper");
    let name = unique_name("stray-reaped");
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u8>().unwrap();
    let (stray, mut sh) = spawn_shell_leaving_a_stray(&tx, &name);
    let sh_pid = sh.id();
    drop(tx);
    let status = sh.wait().expect("waiting for sh");
    assert!(status.success(), "sh: {status}");
    // Before the receiver reaps it: listed, with the shell's pid, dead.
    let info = shmpsc::inspect(&name).unwrap();
    let listed: Vec<(u32, bool)> = info.senders.iter().map(|s| (s.pid, s.alive)).collect();
    let r = rx.recv_timeout(PROMPTLY);
    drop(stray);
    assert_eq!(
        listed,
        [(sh_pid, false)],
        "the sender passed to the exited shell (pid {sh_pid}) must be listed dead"
    );
    assert_eq!(r, Err(RecvTimeoutError::Disconnected));
}

/// Child role: waits for the test's go-ahead before opening the channel,
/// then sends its id.
fn role_late_open() {
    assert_eq!(read_line(), "go");
    let tx = Sender::<u8>::open(&channel_name()).expect("open");
    tx.send(common::param("id")).unwrap();
}

/// No false death: a spawned process that is alive and has not opened the
/// channel yet keeps its passed sender counted (and listed under its own
/// pid), across many liveness ticks.
#[test]
fn passed_sender_counted_while_spawned_process_lives() {
    run_child_role(|role| match role {
        "late_open" => role_late_open(),
        other => panic!("unknown role {other:?}"),
    });
    let name = unique_name("late");
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u8>().unwrap();
    let mut spawn = Spawn::new(
        "passed_sender_counted_while_spawned_process_lives",
        "late_open",
        &name,
    )
    .param("id", 7);
    tx.pass_to(spawn.command()).unwrap();
    let mut c = spawn.spawn();
    drop(tx);
    assert_eq!(
        rx.recv_timeout(TICK * 40),
        Err(RecvTimeoutError::Timeout),
        "the spawned process lives: its sender must count"
    );
    let info = shmpsc::inspect(&name).unwrap();
    let listed: Vec<(u32, bool)> = info.senders.iter().map(|s| (s.pid, s.alive)).collect();
    c.send_line("go");
    assert_eq!(rx.recv_timeout(PROMPTLY), Ok(7));
    c.wait_success();
    assert_eq!(drain(&rx), Ok(vec![]));
    assert_eq!(
        listed,
        [(c.pid(), true)],
        "the passed sender is listed alive, under the spawned process's pid"
    );
}

/// Child role: opens the channel, reports `open ok` or `open refused
/// <error>`; on the test's `go`, the one that opened sends its pid's low
/// byte and exits, the refused one waits until its stdin is closed.
fn role_open_report() {
    match Sender::<u8>::open(&channel_name()) {
        Ok(tx) => {
            emit("open ok");
            assert_eq!(read_line(), "go");
            tx.send(std::process::id() as u8).unwrap();
        }
        Err(e) => {
            emit(format!("open refused {e}"));
            common::wait_for_stdin_eof();
        }
    }
}

/// Item 9: one `Command` with a passed sender, spawned twice. Only the
/// first process adopts the sender; the second is refused with an error
/// that says what to do, and does not keep the sender alive: once the
/// first exits, the receiver sees `Disconnected` while the second still
/// runs. With the defect both adopted the one slot (and sends from both
/// could lose messages).
#[test]
fn command_spawned_twice_has_one_adopter() {
    run_child_role(|role| match role {
        "open_report" => role_open_report(),
        other => panic!("unknown role {other:?}"),
    });
    let name = unique_name("twice");
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u8>().unwrap();
    let mut spawn = Spawn::new(
        "command_spawned_twice_has_one_adopter",
        "open_report",
        &name,
    );
    tx.pass_to(spawn.command()).unwrap();
    let mut first = spawn.spawn_one();
    let first_open = first.expect_event("open");
    let mut second = spawn.spawn_one();
    let second_open = second.expect_event("open");
    drop(spawn);
    drop(tx);
    assert_eq!(first_open, "ok", "the first spawned process adopts");
    assert!(
        second_open.starts_with("refused") && second_open.contains("pass_to"),
        "the second process spawned from the same Command must be refused, saying to call \
         pass_to before each spawn; it got: open {second_open}"
    );
    first.send_line("go");
    assert_eq!(rx.recv_timeout(PROMPTLY), Ok(first.pid() as u8));
    first.wait_success();
    let r = rx.recv_timeout(PROMPTLY);
    second.close_stdin();
    second.wait_success();
    assert_eq!(
        r,
        Err(RecvTimeoutError::Disconnected),
        "the refused second process must not keep the first one's sender alive"
    );
}

/// Child role: forks before opening the passed sender. The forked copy
/// opens first (and reports), then this process opens (and reports), opens
/// again, and sends 9; then the copy sends 8.
fn role_fork_then_open() {
    use std::os::fd::AsRawFd;
    let name = channel_name();
    let (opened_r, opened_w) = nix::unistd::pipe().expect("pipe");
    let (go_r, go_w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: the forked child opens the channel, talks through raw
    // descriptors with `write(2)`/`read(2)`, sends once and leaves with
    // `_exit`; this role's process runs one test on one thread
    // (`--test-threads=1`), so no lock is held by another thread at the fork.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let tx = Sender::<u8>::open(&name);
            let line = match &tx {
                Ok(_) => "\n@@shmpsc-test-event@@ forked ok\n".to_owned(),
                Err(e) => format!("\n@@shmpsc-test-event@@ forked refused {e}\n"),
            };
            let mut byte = [0u8; 1];
            // SAFETY: writing and reading buffers we own on descriptors we own.
            unsafe {
                libc::write(1, line.as_ptr().cast(), line.len());
                libc::write(opened_w.as_raw_fd(), byte.as_ptr().cast(), 1);
                libc::read(go_r.as_raw_fd(), byte.as_mut_ptr().cast(), 1);
            }
            if let Ok(tx) = tx {
                let _ = tx.send(8);
            }
            // SAFETY: leaves at once, without running the parent's exit code.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let mut byte = [0u8; 1];
            // SAFETY: reading into a buffer we own from a descriptor we own.
            unsafe { libc::read(opened_r.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
            match Sender::<u8>::open(&name) {
                Ok(_) => emit("parent-open ok"),
                Err(e) => emit(format!("parent-open refused {e}")),
            }
            let tx = Sender::<u8>::open(&name).expect("opening again, a sender of its own");
            tx.send(9).unwrap();
            // SAFETY: writing a buffer we own to a descriptor we own.
            unsafe { libc::write(go_w.as_raw_fd(), byte.as_ptr().cast(), 1) };
            let status = waitpid(child, None).expect("waitpid");
            assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
        }
    }
}

/// Item 9 through the other door: a process forked (without exec) from the
/// spawned one shares the passed descriptor. Whichever of the two opens
/// first adopts the sender (here the copy); the other is refused, saying
/// what to do, and its second `open` attaches a sender of its own. With
/// the defect both adopted the one slot.
#[test]
fn forked_copy_and_spawned_process_adopt_once() {
    run_child_role(|role| match role {
        "fork_then_open" => role_fork_then_open(),
        other => panic!("unknown role {other:?}"),
    });
    let name = unique_name("fork-adopt");
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u8>().unwrap();
    let mut spawn = Spawn::new(
        "forked_copy_and_spawned_process_adopt_once",
        "fork_then_open",
        &name,
    );
    tx.pass_to(spawn.command()).unwrap();
    let mut c = spawn.spawn();
    drop(tx);
    let forked = c.expect_event("forked");
    let parent = c.expect_event("parent-open");
    c.wait_success();
    let mut got = drain(&rx).unwrap();
    got.sort();
    assert_eq!(forked, "ok", "the first to open adopts");
    assert!(
        parent.starts_with("refused") && parent.contains("pass_to"),
        "the second to open the one passed sender must be refused: {parent}"
    );
    assert_eq!(got, [8, 9]);
}

/// Child role: opens the sender the parent passed, sends 42, reports.
fn role_send_passed() {
    match Sender::<u8>::open(&channel_name()) {
        Ok(tx) => emit(format!(
            "result sent {:?}",
            tx.send(42).map_err(|e| e.to_string())
        )),
        Err(e) => emit(format!("result open-failed {e}")),
    }
}

/// The passed object is reached through the inherited descriptor, never by
/// name: its name was removed (no channel has it now) before the child
/// opened its passed sender, and the child still delivers to the receiver
/// it was passed for. With the defect the child looked the name up and
/// fell back to opening by name: `NotFound`.
#[test]
fn a_passed_sender_reaches_its_receiver_after_the_name_was_removed() {
    run_child_role(|role| match role {
        "send_passed" => role_send_passed(),
        other => panic!("unknown role {other:?}"),
    });
    let name = unique_name("pass-unnamed");
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u8>().unwrap();
    let mut spawn = Spawn::new(
        "a_passed_sender_reaches_its_receiver_after_the_name_was_removed",
        "send_passed",
        &name,
    );
    tx.pass_to(spawn.command()).unwrap();
    std::fs::remove_file(format!("/dev/shm/shmpsc.{name}")).unwrap();
    let mut child = spawn.spawn();
    drop(tx);
    let result = child.expect_event("result");
    child.wait_success();
    assert_eq!(result, "sent Ok(())");
    assert_eq!(drain(&rx), Ok(vec![42]));
}

/// Child role: forks at once. This process adopts its passed sender, drops
/// it (which releases the slot on the open file description it shares
/// with the copy), reports `dropped` and waits for the test's `go`; then
/// the copy, which never took the variable, opens the channel and reports
/// `copy-open ok` (and sends 7) or `copy-open refused <error>`.
fn role_adopt_drop_then_copy_opens() {
    use std::os::fd::AsRawFd;
    let name = channel_name();
    let (go_r, go_w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: this role's process runs one test on one thread; the copy
    // waits on a pipe, opens the channel, reports with `write(2)` and leaves
    // with `_exit`.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let mut byte = [0u8; 1];
            // SAFETY: reading into a buffer we own from a descriptor we own.
            unsafe { libc::read(go_r.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
            let tx = Sender::<u8>::open(&name);
            let line = match &tx {
                Ok(_) => "\n@@shmpsc-test-event@@ copy-open ok\n".to_owned(),
                Err(e) => format!("\n@@shmpsc-test-event@@ copy-open refused {e}\n"),
            };
            if let Ok(tx) = tx {
                let _ = tx.send(7);
            }
            // SAFETY: writing a buffer we own to stdout.
            unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
            // SAFETY: leaves at once, without running the parent's exit code.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let tx = Sender::<u8>::open(&name).expect("adopting the passed sender");
            tx.send(1).unwrap();
            drop(tx);
            emit("dropped");
            assert_eq!(read_line(), "go");
            let byte = [0u8; 1];
            // SAFETY: writing a buffer we own to a descriptor we own.
            unsafe { libc::write(go_w.as_raw_fd(), byte.as_ptr().cast(), 1) };
            let status = waitpid(child, None).expect("waitpid");
            assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
        }
    }
}

/// A process that holds the passed descriptor (of the right object) but
/// not the passed sender, whose name now refers to another channel, gets
/// an error: it neither attaches to the other channel (its messages would
/// go to another receiver) nor to its own by a descriptor it does not own.
#[test]
fn a_passed_descriptor_whose_sender_is_gone_never_attaches_to_the_new_channel() {
    run_child_role(|role| match role {
        "adopt_drop_then_copy_opens" => role_adopt_drop_then_copy_opens(),
        other => panic!("unknown role {other:?}"),
    });
    let name = unique_name("pass-gone-taken");
    let (tx, rx1) = Builder::new(&name).tick(TICK).create::<u8>().unwrap();
    let mut spawn = Spawn::new(
        "a_passed_descriptor_whose_sender_is_gone_never_attaches_to_the_new_channel",
        "adopt_drop_then_copy_opens",
        &name,
    );
    tx.pass_to(spawn.command()).unwrap();
    let mut child = spawn.spawn();
    drop(tx);
    child.expect_event("dropped");
    std::fs::remove_file(format!("/dev/shm/shmpsc.{name}")).unwrap();
    let rx2 = Builder::new(&name).tick(TICK).receiver::<u8>().unwrap();
    child.send_line("go");
    let copy = child.expect_event("copy-open");
    child.wait_success();
    println!("copy: {copy}");
    assert_eq!(rx1.recv_timeout(Duration::from_secs(10)), Ok(1));
    assert!(
        rx2.try_recv().is_err(),
        "the copy sent to the channel that took the name ({copy})"
    );
    assert!(
        copy.starts_with("refused") && copy.contains("another channel"),
        "the copy must be refused, saying why: {copy}"
    );
}
