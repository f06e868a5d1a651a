//! The log sink (`shmpsc::logging::LogSink`) never blocks its caller: the
//! opening of the channel, which can wait up to a second for a channel that
//! its creator is still setting up, happens on the sink's own thread.
//!
//! ```text
//! cargo test --release --features log,test-hooks --test logging
//! ```
//!
//! A [`ReconnectGate`] (a test hook) holds a sink's connection attempts at
//! the point where they open the channel: a log call that made its own
//! attempt would wait there for as long as the gate is held, so "the call
//! returned while the gate held an attempt" is proof, not timing.
#![cfg(feature = "log")]

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc;

use common::HANG_GUARD;
use nix::fcntl::{fcntl, FcntlArg};
use shmpsc::logging::test_hooks::ReconnectGate;
use shmpsc::logging::{Level, LogRecord, LogSink, DROPPED_TARGET};

fn record(message: &str) -> LogRecord {
    LogRecord::new(Level::Info, "test", message)
}

/// `r` is a sink's report that it dropped `n` records.
fn assert_dropped_report(r: &LogRecord, n: u64) {
    assert_eq!(
        (r.target.as_str(), r.level),
        (DROPPED_TARGET, Level::Warn),
        "{r}"
    );
    assert_eq!(r.field("dropped"), Some(n.to_string().as_str()), "{r}");
}

/// Runs `f` on another thread and returns what it returns; fails the test
/// if `f` has not returned within the hang guard (it waits on something
/// the test holds).
fn returns<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(value) => {
            thread.join().expect("the calling thread panicked");
            value
        }
        Err(_) => panic!(
            "hang guard: {what} did not return within {HANG_GUARD:?}: the caller waits for a \
             connection attempt"
        ),
    }
}

/// A shared-memory object at a channel's name that a creator is still
/// setting up: empty, its receiver lock (byte 0) held, for as long as this
/// value lives. `Sender::open` polls such an object for up to a second.
struct NotReady {
    path: String,
    _file: File,
}

impl NotReady {
    fn new(name: &str) -> NotReady {
        let path = format!("/dev/shm/shmpsc.{name}");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("creating {path}: {e}"));
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 1,
            l_pid: 0,
        };
        fcntl(&file, FcntlArg::F_OFD_SETLK(&lock)).expect("locking the receiver byte");
        NotReady { path, _file: file }
    }

    /// Removes the name, and releases the lock (the file is closed).
    fn remove(self) {
        std::fs::remove_file(&self.path).unwrap_or_else(|e| panic!("removing {}: {e}", self.path));
    }
}

impl Drop for NotReady {
    fn drop(&mut self) {
        // A test that failed leaves no object behind (gone already otherwise).
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn new_and_send_return_while_the_channel_is_not_ready() {
    let name = common::unique_name("log-not-ready");
    let gate = ReconnectGate::hold(&name);
    let not_ready = NotReady::new(&name);

    // Creating the sink and logging return although the channel cannot be
    // opened now, and every connection attempt is held by the gate.
    let sink = {
        let name = name.clone();
        returns("LogSink::new and send on a not-ready channel", move || {
            let sink = LogSink::new(&name);
            let sent: Vec<bool> = (0..10)
                .map(|i| sink.send(record(&format!("r{i}"))))
                .collect();
            (sink, sent, std::thread::current().id())
        })
    };
    let (sink, sent, caller) = sink;
    assert_eq!(sent, [false; 10]);
    assert_eq!((sink.sent(), sink.dropped()), (0, 10));
    assert!(!sink.is_connected());

    // The sink's own thread tries again (after one reconnect interval), and
    // is held at the gate: the attempt is pending while the caller is free.
    let arrivals = gate
        .wait_arrivals(1, HANG_GUARD)
        .expect("hang guard: the sink never tried to connect");
    assert!(
        !arrivals.contains(&caller),
        "a connection attempt ran on the caller's thread"
    );
    let caller_again = std::thread::current().id();
    assert!(!sink.send(record("while held")));
    assert_eq!((sink.sent(), sink.dropped()), (0, 11));
    assert!(!gate.arrivals().contains(&caller_again));

    // The creator finishes (here: a daemon creates the channel anew) and
    // the held attempt goes on: the sink connects, and records flow.
    not_ready.remove();
    let (_keep, rx) = shmpsc::channel::<LogRecord>(&name).unwrap();
    gate.release();
    assert!(sink.wait_connected(HANG_GUARD), "hang guard: no connection");
    assert!(sink.send(record("connected")));
    // First, what was dropped meanwhile.
    assert_dropped_report(&rx.recv().unwrap(), 11);
    assert_eq!(rx.recv().unwrap().message, "connected");
    assert_eq!((sink.sent(), sink.dropped()), (1, 11));
    assert_eq!(sink.reconnects(), 1);
}

#[test]
fn a_lost_daemon_is_reconnected_off_the_callers_thread() {
    let name = common::unique_name("log-restart");
    let (keep, rx) = shmpsc::channel::<LogRecord>(&name).unwrap();
    let sink = LogSink::new(&name);
    assert!(sink.is_connected(), "a ready channel is opened at once");
    assert!(sink.send(record("one")));
    assert_eq!(rx.recv().unwrap().message, "one");
    assert_eq!(sink.reconnects(), 0);

    // The daemon goes, and comes back; the sink's attempt to reopen the
    // channel is held at the gate.
    let gate = ReconnectGate::hold(&name);
    drop((keep, rx));
    let (_keep, rx) = shmpsc::channel::<LogRecord>(&name).unwrap();
    let (sent, caller) = {
        let sink = sink.clone();
        returns("send after the daemon restarted", move || {
            let sent: Vec<bool> = (0..5)
                .map(|i| sink.send(record(&format!("lost {i}"))))
                .collect();
            (sent, std::thread::current().id())
        })
    };
    // The first record found the old receiver gone; the next ones found
    // the sink disconnected: all dropped and counted, none waited.
    assert_eq!(sent, [false; 5]);
    assert_eq!((sink.sent(), sink.dropped()), (1, 5));
    assert!(!sink.is_connected());
    let arrivals = gate
        .wait_arrivals(1, HANG_GUARD)
        .expect("hang guard: the sink never tried to reconnect");
    assert!(
        !arrivals.contains(&caller),
        "the reconnect ran on the caller's thread"
    );
    // Still held: logging goes on, dropped and counted.
    assert!(!sink.send(record("still held")));
    assert_eq!(sink.dropped(), 6);

    gate.release();
    assert!(sink.wait_connected(HANG_GUARD), "hang guard: no reconnect");
    assert!(sink.send(record("back")));
    assert_dropped_report(&rx.recv().unwrap(), 6);
    assert_eq!(rx.recv().unwrap().message, "back");
    assert_eq!((sink.sent(), sink.dropped(), sink.reconnects()), (2, 6, 1));
}

/// Child role of [`a_forked_child_reconnects_on_its_own`]: logs, forks, and
/// has the forked copy log through the inherited sink.
fn role_fork_logger() {
    let sink = LogSink::new(&common::channel_name());
    assert!(sink.send(record("parent")));
    // SAFETY: this process runs one thread (the test harness runs the
    // child's test on it); the forked copy uses the sink, which starts a
    // thread of its own, and leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            // The inherited sender refuses to send in a fork copy: dropped,
            // counted, and the copy's own thread opens a sender of its own.
            let refused = !sink.send(record("refused"));
            let connected = sink.wait_connected(HANG_GUARD);
            let sent = sink.send(record("forked"));
            let ok = refused && connected && sent && sink.reconnects() == 1;
            // SAFETY: leaves at once, without running the parent's exit code.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
            assert!(
                matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
                "the forked copy failed: {status:?}"
            );
            assert!(sink.send(record("parent again")));
        }
    }
}

#[test]
fn a_forked_child_reconnects_on_its_own() {
    common::run_child_role(|role| match role {
        "fork-logger" => role_fork_logger(),
        other => panic!("unknown role {other}"),
    });
    let name = common::unique_name("log-fork");
    let (_keep, rx) = shmpsc::channel::<LogRecord>(&name).unwrap();
    let mut child =
        common::Spawn::new("a_forked_child_reconnects_on_its_own", "fork-logger", &name).spawn();
    child.wait_success();
    let got: Vec<LogRecord> = rx.try_iter().collect();
    let messages: Vec<&str> = got.iter().map(|r| r.message.as_str()).collect();
    // The forked copy dropped one record (its inherited sender refused it)
    // and reports it; the parent had dropped none.
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[0], "parent");
    assert_dropped_report(&got[1], 1);
    assert_eq!(messages[2..], ["forked", "parent again"]);
    assert_ne!(
        got[0].pid, got[2].pid,
        "the forked copy logs with its own pid"
    );
    assert_eq!(got[1].pid, got[2].pid, "the copy reports its own drops");
    assert_eq!(got[0].pid, got[3].pid);
}
