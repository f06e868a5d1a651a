//! A child process that runs this same binary in some role, driven over
//! its stdin and stdout: shared by the multi-process tests (`tests/common`)
//! and the benchmarks (`benches/common`, which include this file with
//! `#[path]`).
//!
//! The child reports to the parent with [`emit`]: a marked line on its
//! stdout, so that anything else written there (libtest's "running 1
//! test") is told apart and passed through. The parent starts it with
//! [`Child::spawn`], writes lines to its stdin ([`Child::send_line`]) and
//! waits for its events ([`Child::expect_event`]). Every wait is bounded by
//! [`HANG_GUARD`]: a guard against hangs, never an assertion about speed.
//! [`Child`] kills and reaps its process on drop, so a panic leaks no
//! process and no zombie.

use std::fmt::Display;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

/// Upper bound on every wait: only a guard against hangs, never a timing
/// assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(60);
/// Marks an event line on a child's stdout.
const EVENT_MARK: &str = "@@shmpsc-test-event@@ ";

/// In a child process, reports `event` (a word, then optional data
/// separated by spaces) to the parent.
pub fn emit(event: impl Display) {
    let mut out = std::io::stdout().lock();
    // The leading newline keeps the mark at the start of a line even after
    // the test harness's own "test name ... " prefix.
    write!(out, "\n{EVENT_MARK}{event}\n").expect("writing an event to stdout");
    out.flush().expect("flushing stdout");
}

/// A running child process. Dropping it closes its stdin, gives it its
/// [`linger`](Child::linger) time to exit, then kills (SIGKILL) and reaps it.
pub struct Child {
    what: String,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<String>,
    exited: mpsc::Receiver<()>,
    status: Option<ExitStatus>,
    linger: Duration,
}

impl Child {
    /// Spawns `cmd` with piped stdin and stdout; `what` names the child in
    /// messages.
    pub fn spawn(cmd: &mut Command, what: &str) -> Child {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let what = format!("{what} (pid {})", child.id());
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        // A reader thread, so that waiting for an event can time out.
        let (event_tx, events) = mpsc::channel();
        let label = what.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find(EVENT_MARK) {
                    let _ = event_tx.send(line[i + EVENT_MARK.len()..].to_owned());
                } else if !line.trim().is_empty() {
                    println!("[{label}] {line}");
                }
            }
        });
        // Learn of the exit without reaping (WNOWAIT): only `Child` reaps,
        // so its pid cannot be reused while `Child` may still signal it.
        let pid = Pid::from_raw(child.id() as i32);
        let (exit_tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            while let Err(Errno::EINTR) =
                waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            {}
            let _ = exit_tx.send(());
        });
        Child {
            what,
            child,
            stdin,
            events,
            exited,
            status: None,
            linger: Duration::ZERO,
        }
    }

    /// On drop, after closing its stdin, waits this long for the child to
    /// exit by itself before killing it (none by default).
    pub fn linger(mut self, time: Duration) -> Child {
        self.linger = time;
        self
    }

    /// The child's name in messages, with its pid.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most [`HANG_GUARD`]) for the child's next event, which must
    /// be `name`, and returns the data after the name. Fails if the child
    /// exits first or reports another event.
    pub fn expect_event(&mut self, name: &str) -> String {
        match self.events.recv_timeout(HANG_GUARD) {
            Ok(event) => {
                let (got, data) = event.split_once(' ').unwrap_or((&event, ""));
                assert_eq!(
                    got, name,
                    "{}: expected event `{name}`, got `{event}`",
                    self.what
                );
                data.to_owned()
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "hang guard: {} reported no event `{name}` within {HANG_GUARD:?}",
                self.what
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.wait();
                panic!(
                    "{} exited ({status}) before reporting event `{name}`",
                    self.what
                )
            }
        }
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin was closed");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.what));
    }

    /// Closes the child's stdin (its end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (at most [`HANG_GUARD`]) for the child to exit, and reaps it.
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.exited.recv_timeout(HANG_GUARD) {
            panic!(
                "hang guard: {} did not exit within {HANG_GUARD:?}",
                self.what
            );
        }
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what));
        self.status = Some(status);
        status
    }

    /// Waits for the child to exit and asserts that it exited with status 0.
    pub fn wait_success(&mut self) {
        let status = self.wait();
        assert!(status.success(), "{} failed: {status}", self.what);
    }

    /// Kills the child with SIGKILL, reaps it, and asserts that the signal
    /// is what ended it (it had not exited on its own).
    pub fn kill(&mut self) {
        assert!(self.status.is_none(), "{} was already reaped", self.what);
        self.child
            .kill()
            .unwrap_or_else(|e| panic!("killing {}: {e}", self.what));
        let status = self.wait();
        assert_eq!(
            status.signal(),
            Some(nix::libc::SIGKILL),
            "{} was expected to die of SIGKILL, but: {status}",
            self.what
        );
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stdin = None;
        if self.status.is_some() {
            return;
        }
        // Not reaped yet, so the pid is still ours: no reuse race.
        if !self.linger.is_zero() {
            if self.exited.recv_timeout(self.linger).is_ok() {
                let _ = self.child.wait();
                return;
            }
            eprintln!("{}: did not exit; killing it", self.what);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
