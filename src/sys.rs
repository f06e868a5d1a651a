//! The only module that makes raw system calls: futex wait/wake on shared
//! words, open-file-description byte-range locks, and the POSIX shared-memory
//! calls. Everything here is a safe function; errno is handled once, here.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::wait::Wake;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fchmod, fstat, Mode};

/// Sleeps while `word` holds `expected`, for at most `timeout`.
///
/// The word lives in shared memory and is shared between processes, so this
/// uses the shared futex (no `FUTEX_PRIVATE_FLAG`). The timeout is relative,
/// which the kernel measures on `CLOCK_MONOTONIC`. `EINTR` is reported as
/// `Woken`: every caller re-checks its condition and its own deadline.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> Wake {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call
    // (it is borrowed), and `ts` is a valid timespec on our stack. FUTEX_WAIT
    // only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == 0 {
        return Wake::Woken;
    }
    match Errno::last() {
        Errno::ETIMEDOUT => Wake::TimedOut,
        Errno::EAGAIN | Errno::EINTR => Wake::Woken,
        e => {
            debug_assert!(false, "unexpected futex_wait error: {e}");
            Wake::Woken
        }
    }
}

/// Wakes up to `count` processes sleeping in [`futex_wait`] on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, count: i32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not access
    // memory beyond looking up the address.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    debug_assert!(r >= 0, "futex_wake failed: {}", Errno::last());
}

fn ofd_flock(kind: libc::c_short, byte: u64) -> libc::flock {
    ofd_flock_range(kind, byte, 1)
}

fn ofd_flock_range(kind: libc::c_short, start: u64, len: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl.l_pid = 0; // required to be 0 for OFD locks
    fl
}

/// Tries to take an exclusive open-file-description lock on one byte of the
/// file. `Ok(false)` means another open file description holds it.
///
/// The kernel drops the lock when the last descriptor of this open file
/// description is closed, which happens when the owning process dies, however
/// it dies. That is what liveness rests on.
pub(crate) fn ofd_try_lock(fd: &impl AsFd, byte: u64) -> io::Result<bool> {
    ofd_try_lock_range(fd, byte, 1)
}

/// Like [`ofd_try_lock`], over `len` bytes from `start`.
pub(crate) fn ofd_try_lock_range(fd: &impl AsFd, start: u64, len: u64) -> io::Result<bool> {
    let fl = ofd_flock_range(libc::F_WRLCK as libc::c_short, start, len);
    match fcntl(fd.as_fd(), FcntlArg::F_OFD_SETLK(&fl)) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN) | Err(Errno::EACCES) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether another open file description holds a lock on any of `len`
/// bytes from `start` (one syscall for a whole range).
pub(crate) fn ofd_range_locked(fd: &impl AsFd, start: u64, len: u64) -> io::Result<bool> {
    let mut fl = ofd_flock_range(libc::F_WRLCK as libc::c_short, start, len);
    fcntl(fd.as_fd(), FcntlArg::F_OFD_GETLK(&mut fl)).map_err(io::Error::from)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Releases a lock taken with [`ofd_try_lock`].
pub(crate) fn ofd_unlock(fd: &impl AsFd, byte: u64) -> io::Result<()> {
    let fl = ofd_flock(libc::F_UNLCK as libc::c_short, byte);
    fcntl(fd.as_fd(), FcntlArg::F_OFD_SETLK(&fl))
        .map(drop)
        .map_err(io::Error::from)
}

/// Whether an open file description other than `fd`'s holds a lock on `byte`.
pub(crate) fn ofd_is_locked(fd: &impl AsFd, byte: u64) -> io::Result<bool> {
    ofd_range_locked(fd, byte, 1)
}

/// Creates the named shared-memory object exclusively (`O_CREAT | O_EXCL`),
/// close-on-exec, with exactly `mode` (the umask is undone with `fchmod`).
pub(crate) fn shm_create(path: &str, mode: u32) -> Result<File, Errno> {
    let m = Mode::from_bits_truncate(mode as libc::mode_t);
    let fd = shm_open(
        path,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        m,
    )?;
    fchmod(fd.as_fd(), m)?;
    Ok(File::from(fd))
}

/// Opens an existing named shared-memory object for reading and writing.
pub(crate) fn shm_open_existing(path: &str) -> Result<File, Errno> {
    let fd: OwnedFd = shm_open(
        path,
        OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Removes the name of a shared-memory object. Mappings stay valid.
pub(crate) fn shm_remove(path: &str) -> Result<(), Errno> {
    shm_unlink(path)
}

/// Identity of an open file (device, inode) and its size in bytes.
pub(crate) fn file_identity(file: &File) -> io::Result<((u64, u64), u64)> {
    let st = fstat(file.as_fd())?;
    Ok(((st.st_dev, st.st_ino), st.st_size as u64))
}

/// Owner uid and permission bits of an open file.
pub(crate) fn file_owner(file: &File) -> io::Result<(u32, u32)> {
    let st = fstat(file.as_fd())?;
    Ok((st.st_uid, st.st_mode & 0o7777))
}

/// Time since the file was last modified.
pub(crate) fn file_age(file: &File) -> io::Result<Duration> {
    let modified = file.metadata()?.modified()?;
    Ok(std::time::SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO))
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Reserves the pages of an existing shared-memory object of `len` bytes
/// (a no-op for pages already there), so that later writes cannot die of
/// SIGBUS on a full `/dev/shm`.
pub(crate) fn shm_reserve(file: &File, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor; no memory is passed.
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match r {
        0 | libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Sizes a fresh shared-memory object and reserves its pages, so that a full
/// `/dev/shm` fails here with `ENOSPC` rather than with SIGBUS on first touch.
pub(crate) fn shm_allocate(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    // SAFETY: plain syscall on a valid descriptor; no memory is passed.
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match r {
        0 => Ok(()),
        // Some file systems cannot reserve; the ftruncate above still sized it.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// The current process id.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// Arranges for `file` to stay open across `exec` in the child spawned by
/// `cmd` (at the same descriptor number), keeping it open in this process
/// until `cmd` is dropped. Returns that descriptor number.
pub(crate) fn inherit_in_child(cmd: &mut std::process::Command, file: File) -> i32 {
    use std::os::unix::process::CommandExt;
    let raw = file.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls
    // fcntl, which is async-signal-safe; it allocates nothing. `file` is
    // moved into the closure, so the descriptor stays open in the parent
    // (and so exists in the child) until the command is dropped.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(file.as_raw_fd(), libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    raw
}

/// Takes ownership of a descriptor that this process inherited across exec,
/// after checking that it is open and refers to the same object as `expect`.
/// The adopted descriptor is made close-on-exec again.
pub(crate) fn adopt_inherited(raw: i32, expect: &File) -> io::Result<File> {
    // SAFETY: F_GETFD on any integer is harmless; it only reports EBADF for
    // a number that is not an open descriptor.
    if raw < 0 || unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the inherited sender descriptor is not open",
        ));
    }
    // SAFETY: the descriptor is open (checked above), and it was handed to
    // this process by its parent for exactly this purpose through an
    // environment variable that the caller removes, so nothing else in this
    // process owns it.
    let file = File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
    let (id, _) = file_identity(&file)?;
    let (want, _) = file_identity(expect)?;
    if id != want {
        // Not ours after all: give the number back untouched.
        let _ = std::os::fd::IntoRawFd::into_raw_fd(file);
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the inherited sender descriptor refers to another object",
        ));
    }
    fcntl(
        file.as_fd(),
        FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(file)
}

/// Names of the entries of the shared-memory directory that start with `prefix`.
pub(crate) fn shm_names(prefix: &str) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/dev/shm")? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str() {
            if let Some(rest) = n.strip_prefix(prefix) {
                out.push(rest.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes no pointers; any command value is safe to pass.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

/// Whether this kernel offers `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (Linux 4.16)
/// and lets this process call it (seccomp may not).
pub(crate) fn membarrier_supported() -> bool {
    let q = membarrier(MEMBARRIER_CMD_QUERY);
    q >= 0 && q & MEMBARRIER_CMD_GLOBAL_EXPEDITED as libc::c_long != 0 && membarrier_global()
}

/// Registers this process to take part in global expedited membarriers:
/// afterwards, another process's [`membarrier_global`] runs a full memory
/// barrier on every CPU that runs one of our threads. Once per process.
pub(crate) fn membarrier_register() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0)
}

/// Runs a full memory barrier on every CPU running a thread of a registered
/// process (the heavy side of an asymmetric barrier).
pub(crate) fn membarrier_global() -> bool {
    membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0
}

/// How many times this process's memory was copied by `fork` (without
/// `exec`) since its program started: counted in the child by a
/// `pthread_atfork` handler (see [`watch_forks`]).
static FORK_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn forked_child() {
    // Async-signal-safe: one atomic add, no lock, no allocation.
    FORK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Arranges (once per process) for [`fork_generation`] to change in every
/// child that `fork` (or anything built on libc's `fork`) creates from now
/// on. Returns whether the handler is in place.
pub(crate) fn watch_forks() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: registers a handler that libc runs in the child after
        // `fork`; the handler only does an atomic add (async-signal-safe)
        // on a static that lives as long as the process.
        unsafe {
            libc::pthread_atfork(None, None, Some(forked_child as unsafe extern "C" fn())) == 0
        }
    })
}

/// The process's fork generation: a different value in a child created by
/// `fork` after [`watch_forks`] than in its parent. One relaxed load, no
/// syscall (`getpid` would be one).
#[inline]
pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed)
}
