//! Harness for multi-process tests that re-execute the test binary.
//!
//! A test spawns children with [`Spawn`]: the child is this same binary, run
//! with `--exact <test> --nocapture --test-threads=1` (so it works under
//! `cargo test` and nextest alike) and a role in `SHMPSC_TEST_ROLE`. At the
//! top of the test function:
//!
//! ```ignore
//! if let Some(role) = common::child_role() {
//!     run_role(&role);
//!     std::process::exit(0);
//! }
//! ```
//!
//! Children report events to the parent as marked lines on their stdout
//! ([`emit`]); the parent reads them with [`Child::expect_event`]. The parent
//! can write lines to a child's stdin ([`Child::send_line`]), and a child can
//! block until its stdin is closed ([`wait_for_stdin_eof`]) to stay alive
//! until killed. [`Child`] and [`emit`] are `process.rs`, shared with the
//! benchmarks; every wait is bounded by [`HANG_GUARD`], and [`Child`] kills
//! and reaps its process on drop, so a panicking test leaks no process and
//! no zombie.
#![allow(dead_code)]

pub mod msg;
mod process;

pub use process::{emit, Child, HANG_GUARD};

use std::fmt::Display;
use std::io::Read;
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use nix::unistd::Pid;

/// Environment variable naming the role a child process plays.
pub const ROLE_VAR: &str = "SHMPSC_TEST_ROLE";
/// Environment variable naming the channel a child process uses.
pub const CHANNEL_VAR: &str = "SHMPSC_TEST_CHANNEL";
/// Prefix of the environment variables carrying role parameters.
const PARAM_PREFIX: &str = "SHMPSC_TEST_P_";

// ------------------------------------------------------------- child side

/// In a child process, its role; `None` in the test process itself.
///
/// Also arranges for the child to die with the parent, and tells the
/// parent (event `started`) that the role is about to run.
pub fn child_role() -> Option<String> {
    let role = std::env::var(ROLE_VAR).ok()?;
    // A child never outlives a test process that was killed.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    emit("started");
    Some(role)
}

/// At the top of a multi-process test: in a child process, runs its role
/// with `run` and exits; in the test process itself, returns.
pub fn run_child_role(run: impl FnOnce(&str)) {
    if let Some(role) = child_role() {
        run(&role);
        std::process::exit(0);
    }
}

/// In a child process, the channel name the parent passed.
pub fn channel_name() -> String {
    std::env::var(CHANNEL_VAR).expect("SHMPSC_TEST_CHANNEL is not set")
}

/// In a child process, the role parameter `key`.
pub fn param<T: FromStr>(key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let var = format!("{PARAM_PREFIX}{key}");
    let value = std::env::var(&var).unwrap_or_else(|_| panic!("{var} is not set"));
    value
        .parse()
        .unwrap_or_else(|e| panic!("{var}={value:?} does not parse: {e:?}"))
}

/// In a child process, reads one line that the parent sent.
pub fn read_line() -> String {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("reading a line from stdin");
    line.trim_end().to_owned()
}

/// In a child process, blocks until the parent closes our stdin (or dies).
pub fn wait_for_stdin_eof() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// The calling thread's kernel thread id.
pub fn current_tid() -> i32 {
    nix::unistd::gettid().as_raw()
}

// ------------------------------------------------------------ parent side

/// A channel name unique to this process and call: pid, counter, label.
pub fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t-{}-{n}-{label}", std::process::id())
}

/// A child process to be spawned: this test binary, running one test in a role.
pub struct Spawn {
    cmd: Command,
    what: String,
}

impl Spawn {
    /// Runs test `test` (its exact name) as role `role` on channel `channel`.
    pub fn new(test: &str, role: &str, channel: &str) -> Spawn {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .env(CHANNEL_VAR, channel);
        Spawn {
            cmd,
            what: role.to_owned(),
        }
    }

    /// Sets role parameter `key` (read in the child with [`param`]).
    pub fn param(mut self, key: &str, value: impl Display) -> Spawn {
        self.cmd
            .env(format!("{PARAM_PREFIX}{key}"), value.to_string());
        if key == "id" {
            self.what = format!("{} #{value}", self.what);
        }
        self
    }

    /// The command, e.g. for `Sender::pass_to`.
    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Spawns the child and waits until its role starts.
    pub fn spawn(mut self) -> Child {
        let child = self.spawn_one();
        // Drop the command now: it may hold descriptors meant for the child.
        drop(self.cmd);
        child
    }

    /// Spawns a child from the command and waits until its role starts,
    /// keeping the command (to spawn it again, e.g. to test misuse).
    pub fn spawn_one(&mut self) -> Child {
        let mut child = Child::spawn(&mut self.cmd, &format!("child {}", self.what));
        child.expect_event("started");
        child
    }
}

/// Observations of a test's child process in `/proc`, and signals.
impl Child {
    /// Waits (at most [`HANG_GUARD`]) until the child is stopped by a signal
    /// (state `T` in `/proc`), e.g. after it raised SIGSTOP itself.
    pub fn wait_until_stopped(&mut self) {
        let path = format!("/proc/{}/stat", self.pid());
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let stat = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: reading {path}: {e}", self.what()));
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            if state == Some('T') {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hang guard: {} did not stop within {HANG_GUARD:?} (last stat: {stat})",
                self.what()
            );
            std::thread::yield_now();
        }
    }

    /// Waits (at most [`HANG_GUARD`]) until the child is stopped by a
    /// signal (`true`) or has exited (`false`, not reaped yet): for a child
    /// that may or may not reach a hook that stops it.
    pub fn wait_until_stopped_or_exited(&mut self) -> bool {
        let path = format!("/proc/{}/stat", self.pid());
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let stat = std::fs::read_to_string(&path).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            match state {
                Some('T') => return true,
                Some('Z') | Some('X') | None => return false,
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "hang guard: {} neither stopped nor exited within {HANG_GUARD:?}",
                self.what()
            );
            std::thread::yield_now();
        }
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(Pid::from_raw(self.pid() as i32), signal)
            .unwrap_or_else(|e| panic!("signalling {}: {e}", self.what()));
    }

    /// Waits (at most [`HANG_GUARD`]) until thread `tid` of the child sleeps
    /// in a futex wait, i.e. is blocked inside the channel. Polls `/proc`
    /// (yielding, no sleep); if the kernel hides wait channels, a long run of
    /// sleeping states is taken as enough.
    pub fn wait_until_blocked_in_futex(&mut self, tid: i32) {
        let dir = format!("/proc/{}/task/{tid}", self.pid());
        let deadline = Instant::now() + HANG_GUARD;
        // Consecutive polls that saw it sleeping with an unknown wait channel.
        let mut asleep_unknown = 0u32;
        loop {
            let stat = std::fs::read_to_string(format!("{dir}/stat"))
                .unwrap_or_else(|e| panic!("{}: reading {dir}/stat: {e}", self.what()));
            // The state is the first field after the parenthesised name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            if state == Some('S') {
                let wchan = std::fs::read_to_string(format!("{dir}/wchan")).unwrap_or_default();
                let wchan = wchan.trim();
                if wchan.contains("futex") {
                    return;
                }
                // "0" is also what a kernel that hides wait channels says:
                // then a long run of sleeping states has to do.
                if wchan.is_empty() || wchan == "0" {
                    asleep_unknown += 1;
                    if asleep_unknown >= 10_000 {
                        return;
                    }
                } else {
                    asleep_unknown = 0;
                }
            } else {
                asleep_unknown = 0;
            }
            assert!(
                Instant::now() < deadline,
                "hang guard: thread {tid} of {} did not block in a futex within {HANG_GUARD:?} \
                 (last stat: {stat})",
                self.what()
            );
            std::thread::yield_now();
        }
    }
}

/// The uid and gid of `nobody`, if this process may switch to them and the
/// test binary can be run by them; otherwise why not.
pub fn other_user() -> Result<(u32, u32), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not running as root, so cannot run a child as another user".into());
    }
    let user = nix::unistd::User::from_name("nobody")
        .map_err(|e| format!("looking up user nobody: {e}"))?
        .ok_or("there is no user `nobody`")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // Every directory on the way must be searchable, and the binary
    // executable, by a user that is neither its owner nor in its group.
    let mut path: Option<&std::path::Path> = Some(&exe);
    while let Some(p) = path {
        let mode = std::os::unix::fs::MetadataExt::mode(
            &std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?,
        );
        if mode & 0o001 == 0 {
            return Err(format!(
                "{} is not executable/searchable by other users (mode {:o})",
                p.display(),
                mode & 0o777
            ));
        }
        path = p.parent();
    }
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

/// Gives this process a mount namespace of its own with a tmpfs of `size`
/// on /dev/shm (so that it can be filled without touching the machine's).
pub fn private_dev_shm(size: &str) -> Result<(), String> {
    let err = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    let opts = std::ffi::CString::new(format!("size={size},mode=1777")).unwrap();
    // SAFETY: plain syscalls with valid NUL-terminated strings; they only
    // change this process's view of the mounts.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(err("unshare(CLONE_NEWNS)"));
        }
        let null = std::ptr::null();
        if libc::mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(err("making mounts private"));
        }
        if libc::mount(
            c"tmpfs".as_ptr(),
            c"/dev/shm".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            opts.as_ptr().cast(),
        ) != 0
        {
            return Err(err("mounting a tmpfs on /dev/shm"));
        }
    }
    Ok(())
}

/// An open-file-description lock of `kind` (`libc::F_WRLCK` or
/// `libc::F_RDLCK`) on `len` bytes of `file` from `start`, as any process
/// that can open an object may take (locks are advisory).
pub fn ofd_lock(file: &std::fs::File, kind: i32, start: i64, len: i64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed flock is valid; fcntl only reads and writes it.
    let r = unsafe {
        let mut fl: libc::flock = std::mem::zeroed();
        fl.l_type = kind as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = start;
        fl.l_len = len;
        libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl)
    };
    if r == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A channel whose receiver ran in a child process that was then killed.
/// The calling test's file must give its children the role
/// `idle_receiver`: create the channel, emit `ready`, wait to be killed.
pub fn dead_receiver_channel(test: &str, label: &str) -> String {
    let name = unique_name(label);
    let mut rx = Spawn::new(test, "idle_receiver", &name).spawn();
    rx.expect_event("ready");
    rx.kill();
    name
}
