//! The only module that makes raw system calls: futex wait/wake on shared
//! words, open-file-description byte-range locks, and the POSIX shared-memory
//! calls. Everything here is a safe function; errno is handled once, here.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fchmod, fstat, Mode};

/// Sleeps while `word` holds `expected`, for at most `timeout`.
///
/// The word lives in shared memory and is shared between processes, so this
/// uses the shared futex (no `FUTEX_PRIVATE_FLAG`). The timeout is relative,
/// which the kernel measures on `CLOCK_MONOTONIC`. Returns `false` if the
/// timeout elapsed, `true` otherwise (woken, interrupted, or the word did
/// not hold `expected`): every caller re-checks its condition and its own
/// deadline.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
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
        return true;
    }
    match Errno::last() {
        Errno::ETIMEDOUT => false,
        Errno::EAGAIN | Errno::EINTR => true,
        e => {
            debug_assert!(false, "unexpected futex_wait error: {e}");
            true
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

/// The `futex_waitv` system call's number (the same on every 64-bit Linux
/// architecture that has it; the libc crate names it for some targets only).
#[cfg(feature = "async")]
const SYS_FUTEX_WAITV: libc::c_long = 449;

/// At most this many words per `futex_waitv` call (the kernel's
/// `FUTEX_WAITV_MAX`).
#[cfg(feature = "async")]
pub(crate) const FUTEX_WAITV_MAX: usize = 128;

/// One word for [`futex_waitv`]: sleep while `*word == expected`.
#[cfg(feature = "async")]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

#[cfg(feature = "async")]
impl FutexWaitv {
    /// A 32-bit shared futex word (no `FUTEX2_PRIVATE`: the words live in
    /// shared memory). Only the word's address is taken: the kernel reads
    /// it, nothing here dereferences it, so the caller must keep the
    /// mapping alive while the entry is waited on (else the call fails
    /// with `EFAULT`, which is reported as woken).
    pub(crate) fn new(word: &AtomicU32, expected: u32) -> FutexWaitv {
        const FUTEX2_SIZE_U32: u32 = 0x02;
        FutexWaitv {
            val: u64::from(expected),
            uaddr: word.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        }
    }
}

/// What [`futex_waitv`] ended with.
#[cfg(feature = "async")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitvEnd {
    /// A wake-up on the word at this index.
    Woken(usize),
    /// A word did not hold its expected value, the call was interrupted,
    /// or it failed: look at every word.
    Changed,
    /// The deadline passed.
    TimedOut,
    /// The kernel has no `futex_waitv` (before Linux 5.16), or refuses it.
    Unsupported,
}

/// Sleeps until one of `words` is woken (or does not hold its expected
/// value), or until `deadline` on `CLOCK_MONOTONIC` (`None`: no deadline).
/// At most [`FUTEX_WAITV_MAX`] words.
#[cfg(feature = "async")]
pub(crate) fn futex_waitv(words: &[FutexWaitv], deadline: Option<std::time::Instant>) -> WaitvEnd {
    debug_assert!(!words.is_empty() && words.len() <= FUTEX_WAITV_MAX);
    // The absolute deadline on CLOCK_MONOTONIC, from the time left (an
    // `Instant` is CLOCK_MONOTONIC on Linux, but its fields are private).
    let ts = deadline.map(|d| {
        let left = d.saturating_duration_since(std::time::Instant::now());
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
            .unwrap_or_default();
        let at = now.saturating_add(left);
        libc::timespec {
            tv_sec: at.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: at.subsec_nanos() as libc::c_long,
        }
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `words` is a valid array of `futex_waitv` structs (repr(C),
    // the kernel's layout) of the given length, and `ts_ptr` is null or a
    // valid timespec on our stack; the kernel only reads both, and reads
    // the words' addresses as user memory (a bad one fails with EFAULT).
    let r = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            words.as_ptr(),
            words.len() as libc::c_uint,
            0 as libc::c_uint,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return WaitvEnd::Woken(r as usize);
    }
    match Errno::last() {
        Errno::ETIMEDOUT => WaitvEnd::TimedOut,
        // A value that changed, a signal, or a word no longer mapped: look.
        Errno::EAGAIN | Errno::EINTR | Errno::EFAULT => WaitvEnd::Changed,
        // ENOSYS (before Linux 5.16), EPERM (a seccomp filter that predates
        // the call), EINVAL, anything else: retrying would spin.
        _ => WaitvEnd::Unsupported,
    }
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

/// Whether an open file description other than `fd`'s holds a write lock (an
/// endpoint's kind of lock) on `byte`.
pub(crate) fn ofd_is_locked(fd: &impl AsFd, byte: u64) -> io::Result<bool> {
    // Endpoints hold write locks. On one byte, another description's read
    // lock and an endpoint's write lock exclude each other, so a read lock
    // found here means no endpoint holds the byte: it is not taken for one
    // (a process that may only read the object could otherwise keep a dead
    // endpoint looking alive).
    let mut fl = ofd_flock(libc::F_WRLCK as libc::c_short, byte);
    fcntl(fd.as_fd(), FcntlArg::F_OFD_GETLK(&mut fl)).map_err(io::Error::from)?;
    Ok(fl.l_type == libc::F_WRLCK as libc::c_short)
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
/// Never follows a symlink; `O_NONBLOCK` so that a FIFO planted under the
/// name cannot block the open (whatever it is, the caller checks its type).
pub(crate) fn shm_open_existing(path: &str) -> Result<File, Errno> {
    let fd: OwnedFd = shm_open(
        path,
        OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// The directory that holds the named shared-memory objects.
const SHM_DIR: &str = "/dev/shm";

/// Creates an unnamed shared-memory object (`O_TMPFILE` in `/dev/shm`),
/// close-on-exec, with exactly `mode`: nobody else can open it until
/// [`shm_link`] gives it a name. `Err(EOPNOTSUPP)` (or `EISDIR`, `EINVAL`)
/// where the kernel or file system has no `O_TMPFILE`.
pub(crate) fn shm_create_unnamed(mode: u32) -> Result<File, Errno> {
    let m = Mode::from_bits_truncate(mode as libc::mode_t);
    let fd = nix::fcntl::open(
        SHM_DIR,
        OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        m,
    )?;
    fchmod(fd.as_fd(), m)?;
    Ok(File::from(fd))
}

/// Gives the unnamed object `file` (from [`shm_create_unnamed`]) the
/// shared-memory name `path` (`/shmpsc.x`), atomically: `Err(EEXIST)` if
/// the name is taken, and nothing changes then. Goes through
/// `/proc/self/fd` (`AT_EMPTY_PATH` would need `CAP_DAC_READ_SEARCH`);
/// `Err(ENOENT)` if `/proc` is not mounted.
pub(crate) fn shm_link(file: &File, path: &str) -> Result<(), Errno> {
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| Errno::EINVAL)?;
    let to = std::ffi::CString::new(format!("{SHM_DIR}{path}")).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the
    // call; linkat only reads them.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// A new open file description of the object open as `file` (whether or
/// not it still has a name): through `/proc/self/fd`, never by name.
pub(crate) fn reopen_same(file: &File) -> Result<File, Errno> {
    let fd = nix::fcntl::open(
        format!("/proc/self/fd/{}", file.as_raw_fd()).as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// What `fstat` says about an object, before anything of it is trusted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    /// Device and inode.
    pub(crate) id: FileId,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Owner.
    pub(crate) uid: u32,
    /// Permission bits.
    pub(crate) perms: u32,
    /// Number of names (hard links).
    pub(crate) nlink: u64,
    /// Whether it is a regular file (not a directory, FIFO, socket, device).
    pub(crate) regular: bool,
}

/// `fstat` of an open file.
pub(crate) fn file_stat(file: &File) -> io::Result<Stat> {
    let st = fstat(file.as_fd())?;
    Ok(Stat {
        id: FileId::of(&st),
        size: st.st_size as u64,
        uid: st.st_uid,
        perms: st.st_mode & 0o7777,
        nlink: st.st_nlink,
        regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
    })
}

/// Who holds a lock that keeps [`ofd_try_lock`] from locking `byte`:
/// `None` if nobody else does.
pub(crate) fn ofd_lock_holder(fd: &impl AsFd, byte: u64) -> io::Result<Option<LockHolder>> {
    let mut fl = ofd_flock(libc::F_WRLCK as libc::c_short, byte);
    fcntl(fd.as_fd(), FcntlArg::F_OFD_GETLK(&mut fl)).map_err(io::Error::from)?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some(LockHolder {
        // The kernel gives -1 for an open-file-description lock (it belongs
        // to no process), a pid only for a classic POSIX lock.
        pid: u32::try_from(fl.l_pid).ok().filter(|&p| p > 0),
    }))
}

/// A holder of a lock, as `F_OFD_GETLK` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockHolder {
    /// Its process, if the kernel says (only for a classic POSIX lock).
    pub(crate) pid: Option<u32>,
}

/// 64 bits from the kernel's random number generator (`getrandom`), for
/// names that another process must not be able to guess.
pub(crate) fn random_u64() -> Result<u64, Errno> {
    let mut bytes = [0u8; 8];
    loop {
        // SAFETY: writes at most 8 bytes into `bytes`, which is 8 bytes long
        // and lives across the call.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        match n {
            8 => return Ok(u64::from_ne_bytes(bytes)),
            // Interrupted before the pool was ready, or a short read (not
            // for 8 bytes, but the contract allows it): ask again.
            n if n >= 0 || Errno::last() == Errno::EINTR => continue,
            _ => return Err(Errno::last()),
        }
    }
}

/// Renames the shared-memory name `from` to `to` (both as `/shmpsc.x`),
/// atomically and only if `to` is free (`renameat2` with
/// `RENAME_NOREPLACE`): `Err(EEXIST)` if `to` is taken and `Err(ENOENT)` if
/// `from` is gone, and nothing changes then; `Err(EINVAL)` or
/// `Err(ENOSYS)` where the kernel or file system cannot rename so.
pub(crate) fn shm_rename_noreplace(from: &str, to: &str) -> Result<(), Errno> {
    let from = std::ffi::CString::new(format!("{SHM_DIR}{from}")).map_err(|_| Errno::EINVAL)?;
    let to = std::ffi::CString::new(format!("{SHM_DIR}{to}")).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the
    // call; renameat2 only reads them. The flags value is a plain integer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Device and inode of what the shared-memory name `path` (`/shmpsc.x`)
/// refers to, without following a symlink and without opening it.
pub(crate) fn shm_name_id(path: &str) -> Result<FileId, Errno> {
    let st = nix::sys::stat::lstat(format!("{SHM_DIR}{path}").as_str())?;
    Ok(FileId::of(&st))
}

/// Removes the name of a shared-memory object. Mappings stay valid.
pub(crate) fn shm_remove(path: &str) -> Result<(), Errno> {
    shm_unlink(path)
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// How many times an interrupted `posix_fallocate` is tried again.
const FALLOCATE_RETRIES: u32 = 1000;

/// `posix_fallocate` over the first `len` bytes of `file`, tried again when
/// a signal interrupts it; returns 0 or an errno value.
fn fallocate(file: &File, len: u64) -> i32 {
    retry_interrupted(FALLOCATE_RETRIES, || {
        // SAFETY: plain syscall on a valid descriptor; no memory is passed.
        unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) }
    })
}

/// Calls `call` (which returns 0 or an errno value) again while it returns
/// `EINTR`, at most `retries` more times, and returns its last result.
///
/// tmpfs on older kernels fails `fallocate` with `EINTR` whenever a signal
/// is pending (and may give back the pages it had reserved); the signal is
/// handled on the way back to user space, so trying again normally
/// succeeds. The bound keeps a storm of signals (a profiler's timer over a
/// huge reservation) from holding `create` forever: then the `EINTR` is
/// reported.
fn retry_interrupted(retries: u32, mut call: impl FnMut() -> i32) -> i32 {
    let mut r = call();
    for _ in 0..retries {
        if r != libc::EINTR {
            break;
        }
        r = call();
    }
    r
}

/// Reserves the pages of an existing shared-memory object of `len` bytes
/// (a no-op for pages already there), so that later writes cannot die of
/// SIGBUS on a full `/dev/shm`.
pub(crate) fn shm_reserve(file: &File, len: u64) -> io::Result<()> {
    match fallocate(file, len) {
        0 | libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Sizes a fresh shared-memory object and reserves its pages, so that a full
/// `/dev/shm` fails here with `ENOSPC` rather than with SIGBUS on first touch.
pub(crate) fn shm_allocate(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    match fallocate(file, len) {
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

/// Arranges for descriptor `raw` (owned by `keep`) to stay open across
/// `exec` in every child spawned by `cmd` (at the same number), keeping
/// `keep` alive in this process until `cmd` is dropped. Between `fork` and
/// `exec`, each child first calls `first(&keep, who)` with its own
/// identity (for `Sender::pass_to`: record itself as the process the
/// sender was handed to, `peers::claim_spawned`).
///
/// # Safety
///
/// `raw` must stay open as long as `keep` lives, and `first` runs in a
/// forked child of a possibly multi-threaded process: it must make only
/// async-signal-safe calls (no allocation, no lock, no panic).
pub(crate) unsafe fn inherit_in_child<K: Send + Sync + 'static>(
    cmd: &mut std::process::Command,
    raw: i32,
    keep: K,
    first: impl Fn(&K, ProcessIdentity) + Send + Sync + 'static,
) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec. It makes
    // only async-signal-safe calls: `identify_self` (getpid, open, read,
    // close, stat on buffers of its own stack frame), `first` (the caller
    // promises it) and fcntl. `keep` is moved into the closure, so `raw`
    // stays open in the parent (and so exists in the child) until the
    // command is dropped.
    unsafe {
        cmd.pre_exec(move || {
            first(&keep, identify_self());
            if libc::fcntl(raw, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Who a process is, in a form another process can check later without
/// mistaking a new process that reuses the pid for it: pid, start time
/// (clock ticks after boot, field 22 of `/proc/<pid>/stat`), and the
/// namespaces in which both hold ([`ns_key`]). 0 means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessIdentity {
    pub(crate) pid: u32,
    pub(crate) start: u64,
    pub(crate) ns: u64,
}

/// Reads up to `buf.len()` bytes of the file at `path` into `buf`; returns
/// how many, or the errno of the failure. Async-signal-safe: open, read
/// and close only.
fn read_small(path: &std::ffi::CStr, buf: &mut [u8]) -> Result<usize, i32> {
    // SAFETY: `path` is a NUL-terminated string; open only reads it.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last_raw());
    }
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: writes at most `buf.len() - len` bytes into `buf` from
        // `len` on, which is in bounds; `fd` is open (we opened it).
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: closes the descriptor opened above, which nothing else owns.
    unsafe { libc::close(fd) };
    Ok(len)
}

/// The state (field 3), parent pid (field 4) and start time (field 22) in
/// the text of a `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses: the fields are counted after its last `)`.
fn parse_stat(stat: &[u8]) -> Option<(u8, u32, u64)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let number = |f: &[u8]| -> Option<u64> {
        if f.is_empty() || f.len() > 20 {
            return None;
        }
        f.iter().try_fold(0u64, |n, &b| {
            let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
            n.checked_mul(10)?.checked_add(u64::from(d))
        })
    };
    let state = *fields.next()?.first()?;
    let ppid = u32::try_from(number(fields.next()?)?).ok()?;
    // Fields 5 to 21, then the start time.
    let start = number(fields.nth(17)?)?;
    Some((state, ppid, start))
}

/// The inode numbers of this process's pid and time namespaces, as one key
/// (0 if the pid namespace cannot be read). A pid and a start time read in
/// `/proc` mean the same process only where this key is the same: start
/// times are shifted by the reader's time namespace. Async-signal-safe.
fn ns_key() -> u64 {
    let ino = |path: &std::ffi::CStr| -> u64 {
        // SAFETY: `st` is plain data written by stat before it is read
        // (checked by its return value); `path` is NUL-terminated.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::stat(path.as_ptr(), &mut st) == 0 {
                st.st_ino
            } else {
                0
            }
        }
    };
    let pid_ns = ino(c"/proc/self/ns/pid");
    if pid_ns == 0 {
        return 0;
    }
    (pid_ns << 32) | (ino(c"/proc/self/ns/time") & 0xFFFF_FFFF)
}

/// This process's identity. Async-signal-safe (it runs between `fork` and
/// `exec`, see [`inherit_in_child`]): no allocation, no lock.
pub(crate) fn identify_self() -> ProcessIdentity {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let mut buf = [0u8; 1024];
    let start = match read_small(c"/proc/self/stat", &mut buf) {
        Ok(n) => parse_stat(&buf[..n]).map_or(0, |(_, _, start)| start),
        Err(_) => 0,
    };
    let ns = if start == 0 { 0 } else { ns_key() };
    ProcessIdentity { pid, start, ns }
}

/// Whether the process `who` is surely gone: it exited (a zombie counts as
/// gone: it holds no descriptor any more), or its pid now belongs to a
/// process that started at another time. `false` whenever this process
/// cannot tell: an identity with unknowns, other namespaces than ours, or
/// a `/proc` that does not show the process (e.g. `hidepid`).
pub(crate) fn process_gone(who: ProcessIdentity) -> bool {
    static OWN_NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    if who.pid == 0 || who.pid > i32::MAX as u32 || who.start == 0 || who.ns == 0 {
        return false;
    }
    if *OWN_NS.get_or_init(ns_key) != who.ns {
        return false;
    }
    // No such process in our (and so its) pid namespace: gone for sure.
    if let Err(Errno::ESRCH) =
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(who.pid as i32), None)
    {
        return true;
    }
    let mut buf = [0u8; 1024];
    let path = format!("/proc/{}/stat\0", who.pid);
    let Ok(path) = std::ffi::CStr::from_bytes_with_nul(path.as_bytes()) else {
        return false;
    };
    match read_small(path, &mut buf) {
        Ok(n) => match parse_stat(&buf[..n]) {
            Some((state, _, start)) => start != who.start || state == b'Z' || state == b'X',
            None => false,
        },
        // Gone between the two looks, or hidden from us: only the first is
        // sure, and `kill` above said it existed.
        Err(_) => false,
    }
}

/// Identity (device, inode) of the object behind descriptor `raw`, without
/// taking ownership of it; `None` if `raw` is not an open descriptor.
pub(crate) fn borrowed_identity(raw: i32) -> Option<FileId> {
    if raw < 0 {
        return None;
    }
    // SAFETY: `st` is written by fstat before it is read (checked by its
    // return value); fstat on a number that is not an open descriptor only
    // fails with EBADF. Nothing is closed or owned here.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(raw, &mut st) == 0).then(|| FileId::of(&st))
    }
}

/// Takes ownership of a descriptor that this process inherited across exec
/// (see `Sender::pass_to`), after checking, while only borrowing it, that
/// it is open, refers to the same object as `expect`, and belongs to the
/// open file description that holds the lock on `lock_byte` (the passed
/// sender's slot): no other open file description holds it (a query
/// through `raw`), yet someone does (a query through `expect`, a new open
/// file description of its own). Only then is the number taken over, so a
/// number that belongs to other code is never closed or owned twice. The
/// adopted descriptor is made close-on-exec again.
pub(crate) fn adopt_inherited(raw: i32, expect: &File, lock_byte: u64) -> io::Result<File> {
    let not_ours = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
    let Some(id) = borrowed_identity(raw) else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the inherited sender descriptor is not open",
        ));
    };
    if id != file_stat(expect)?.id {
        return not_ours("the inherited sender descriptor refers to another object");
    }
    let mut fl = ofd_flock(libc::F_WRLCK as libc::c_short, lock_byte);
    // SAFETY: `fl` is a valid flock on our stack; F_OFD_GETLK on an open
    // descriptor (checked above) only reads and writes it.
    if unsafe { libc::fcntl(raw, libc::F_OFD_GETLK, &mut fl) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let others_hold = fl.l_type != libc::F_UNLCK as libc::c_short;
    if others_hold || !ofd_is_locked(expect, lock_byte)? {
        return not_ours(
            "the inherited sender descriptor does not hold the passed sender's slot \
             (it was passed to another process, or its sender is gone)",
        );
    }
    // SAFETY: `raw` is open (checked above) and is the open file description
    // that holds the passed slot's lock, which only the descriptor passed by
    // the parent for this purpose can be; the caller takes it at most once
    // per process (see `channel::take_passed`), so nothing else in this
    // process owns it.
    let file = File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
    fcntl(
        file.as_fd(),
        FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(file)
}

/// A new open file description of the object behind descriptor `raw`
/// (borrowed, not owned: nothing is closed), whether or not the object
/// still has a name: through `/proc/self/fd`, never by name. `ENOENT` if
/// `/proc` is not mounted (or `raw` is not open).
pub(crate) fn reopen_borrowed(raw: i32) -> Result<File, Errno> {
    if raw < 0 {
        return Err(Errno::EBADF);
    }
    let fd = nix::fcntl::open(
        format!("/proc/self/fd/{raw}").as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Prefix of the environment variables through which `Sender::pass_to`
/// passes a descriptor (see `channel::passed_var`).
pub(crate) const PASSED_VAR_PREFIX: &str = "SHMPSC_SENDER_";

/// Device and inode of a file: which object it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl FileId {
    fn of(st: &libc::stat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// A passed sender's value: `fd:slot:dev:ino` (dev and ino identify the
/// shared-memory object, so that a descriptor can be recognised before the
/// channel's name is known).
pub(crate) fn parse_passed(value: &str) -> Option<(i32, usize, Option<FileId>)> {
    let mut it = value.split(':');
    let fd = it.next()?.parse().ok()?;
    let slot = it.next()?.parse().ok()?;
    let id = match (it.next(), it.next()) {
        (Some(d), Some(i)) => Some(FileId {
            dev: d.parse().ok()?,
            ino: i.parse().ok()?,
        }),
        _ => None,
    };
    Some((fd, slot, id))
}

/// Runs when a program that links shmpsc starts, before `main`: every
/// descriptor passed to this process by `Sender::pass_to` (it had to
/// survive the `exec` of this program) is made close-on-exec at once, so
/// that no process this one spawns inherits it, whether or not this
/// process ever calls `Sender::open`. A descriptor is touched only if it is
/// the shared-memory object the variable names (device and inode).
extern "C" fn cloexec_passed_at_start() {
    for (key, value) in std::env::vars_os() {
        let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else {
            continue;
        };
        if !key.starts_with(PASSED_VAR_PREFIX) {
            continue;
        }
        let Some((raw, _, Some(id))) = parse_passed(value) else {
            continue;
        };
        if borrowed_identity(raw) == Some(id) {
            // SAFETY: F_GETFD/F_SETFD on a descriptor checked to be open;
            // only its close-on-exec flag changes.
            unsafe {
                let flags = libc::fcntl(raw, libc::F_GETFD);
                if flags != -1 {
                    libc::fcntl(raw, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
        }
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
#[used]
#[link_section = ".init_array"]
static CLOEXEC_PASSED_AT_START: extern "C" fn() = cloexec_passed_at_start;

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
    // Async-signal-safe: one atomic add, no lock, no allocation, then
    // `detach_endpoints_in_child` (open, fstat, dup3, close).
    FORK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    detach_endpoints_in_child();
}

/// Arranges (once per process) for [`fork_generation`] to change in every
/// child that `fork` (or anything built on libc's `fork`) creates from now
/// on, and for such a child to let go of this process's endpoint
/// descriptors (see [`EndpointFile`]). Returns whether the handler is in
/// place.
pub(crate) fn watch_forks() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // The stand-in for a descriptor that cannot be reopened in a child
        // (see `detach_endpoints_in_child`): opened before any endpoint is
        // registered, close-on-exec, never closed.
        if let Ok(fd) = nix::fcntl::open(
            "/dev/null",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            DEV_NULL.store(
                std::os::fd::IntoRawFd::into_raw_fd(fd),
                std::sync::atomic::Ordering::SeqCst,
            );
        }
        // SAFETY: registers a handler that libc runs in the child after
        // `fork`; the handler makes only async-signal-safe calls (an atomic
        // add, then open, fstat, dup3 and close on numbers and a stack
        // buffer, see `detach_endpoints_in_child`) on statics that live as
        // long as the process.
        unsafe {
            libc::pthread_atfork(None, None, Some(forked_child as unsafe extern "C" fn())) == 0
        }
    })
}

/// How many endpoint descriptors a process can register (see
/// [`EndpointFile`]); the ones opened beyond that are not detached in
/// forked children.
const ENDPOINT_REGISTRY_LEN: usize = 512;
/// A registry entry that holds no descriptor.
const ENTRY_FREE: i32 = -1;
/// A registry entry being filled in by [`EndpointFile::new`].
const ENTRY_BUSY: i32 = -2;

/// One registered endpoint descriptor: its number, the object (device
/// and inode) it referred to when registered, and the shared mapping of it
/// (`len` 0: none yet). Aligned to a cache line, so that an entry never
/// straddles a page: `fork` copies memory page by page while the parent's
/// other threads run, and an entry must not reach the child half old and
/// half new.
#[repr(C, align(64))]
struct RegistryEntry {
    fd: std::sync::atomic::AtomicI32,
    dev: std::sync::atomic::AtomicU64,
    ino: std::sync::atomic::AtomicU64,
    addr: std::sync::atomic::AtomicUsize,
    len: std::sync::atomic::AtomicUsize,
}

/// The descriptors whose open file descriptions hold (or will hold) this
/// process's endpoint locks. Fixed size and atomics only, so that the
/// `fork` child handler can read it without a lock or an allocation.
static ENDPOINT_REGISTRY: [RegistryEntry; ENDPOINT_REGISTRY_LEN] = [const {
    RegistryEntry {
        fd: std::sync::atomic::AtomicI32::new(ENTRY_FREE),
        dev: std::sync::atomic::AtomicU64::new(0),
        ino: std::sync::atomic::AtomicU64::new(0),
        addr: std::sync::atomic::AtomicUsize::new(0),
        len: std::sync::atomic::AtomicUsize::new(0),
    }
}; ENDPOINT_REGISTRY_LEN];

/// `/dev/null`, opened by [`watch_forks`]; -1 if it could not be.
static DEV_NULL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// The open file description of an endpoint of this process (its locks
/// say that the endpoint lives), registered so that a child made by `fork`
/// (without `exec`) lets go of it.
///
/// `fork` gives the child a reference to every open file description of
/// the parent, through its descriptors and through its shared mappings
/// (a mapping holds the description it was made from), and the kernel
/// releases an open-file-description lock only when the last reference
/// goes: a child that kept the parent's endpoint descriptors or mappings
/// would keep a killed parent's sender or receiver alive for as long as
/// the child lives. So the `fork` child handler gives each registered
/// descriptor number, in the child, a new open file description of the
/// same object (reopened through `/proc/self/fd`), which holds no lock,
/// and maps the same object through it over the registered mapping
/// ([`EndpointFile::mapped_at`]): the child sees the same shared memory
/// at the same address, through a description of its own. The number
/// stays open (whatever owns it in the child closes it once, as before),
/// and the child's copy of the endpoint (which refuses to send or
/// receive) can still look at the channel. Where the object cannot be
/// reopened (no `/proc`), the number gets `/dev/null` and the mapping
/// private zeroed memory of the same size: the copy then sees an empty
/// segment, which it neither sends nor receives through anyway.
///
/// Limits: [`ENDPOINT_REGISTRY_LEN`] descriptors per process (further ones
/// are not registered: a forked child keeps them, as before); a child made
/// by a raw `clone`/`fork` syscall that bypasses libc runs no handler; and
/// a `fork` in another thread between the `open` of an endpoint's object
/// and its registration here, or between its `mmap` and
/// [`EndpointFile::mapped_at`] (a few instructions each), leaves that
/// child a reference.
#[derive(Debug)]
pub(crate) struct EndpointFile {
    // Dropped before `file`: the number is unregistered while it is still
    // open, so a child never replaces a number that was reused meanwhile.
    entry: RegistryGuard,
    file: File,
}

/// The registry entry of an [`EndpointFile`]; `None` if it has none.
#[derive(Debug)]
struct RegistryGuard(Option<usize>);

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        if let Some(i) = self.0.take() {
            ENDPOINT_REGISTRY[i].len.store(0, SeqCst);
            ENDPOINT_REGISTRY[i].fd.store(ENTRY_FREE, SeqCst);
        }
    }
}

impl EndpointFile {
    /// Registers `file` (just opened, before any lock is taken on it) as
    /// an endpoint's open file description. If the registry is full, or
    /// `fstat` fails, it is not registered (see [`EndpointFile`]).
    pub(crate) fn new(file: File) -> EndpointFile {
        use std::sync::atomic::Ordering::SeqCst;
        watch_forks();
        let Ok(st) = fstat(file.as_fd()) else {
            return EndpointFile::unregistered(file);
        };
        let entry = ENDPOINT_REGISTRY.iter().position(|e| {
            e.fd.compare_exchange(ENTRY_FREE, ENTRY_BUSY, SeqCst, SeqCst)
                .is_ok()
        });
        if let Some(i) = entry {
            let e = &ENDPOINT_REGISTRY[i];
            e.dev.store(st.st_dev, SeqCst);
            e.ino.store(st.st_ino, SeqCst);
            e.len.store(0, SeqCst);
            // SYNC POINT: a child forked after this store sees the number
            // with its object (the child handler loads `fd` first).
            e.fd.store(file.as_raw_fd(), SeqCst);
        }
        EndpointFile {
            entry: RegistryGuard(entry),
            file,
        }
    }

    /// `file`, not registered: forked children keep its open file
    /// description (a snapshot that holds no lock, a unit test's stand-in).
    pub(crate) fn unregistered(file: File) -> EndpointFile {
        EndpointFile {
            entry: RegistryGuard(None),
            file,
        }
    }

    /// Registers the shared mapping of this file's object at `addr`, `len`
    /// bytes from offset 0 (read and write), which the caller made right
    /// after opening it and keeps until this file is dropped (a
    /// `Segment`'s mapping: its fields drop this file first): a forked
    /// child maps the object over it again, through its own description.
    pub(crate) fn mapped_at(&self, addr: *mut u8, len: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        if let Some(i) = self.entry.0 {
            let e = &ENDPOINT_REGISTRY[i];
            e.addr.store(addr as usize, SeqCst);
            // SYNC POINT: the child handler loads `len` before `addr`.
            e.len.store(len, SeqCst);
        }
    }

    /// Unregisters the descriptor: from now on, children forked from this
    /// process keep its open file description, and its locks. For the
    /// descriptor that `Sender::pass_to` hands to a spawned child, which
    /// must reach that child (through `fork`, then `exec`) unchanged.
    pub(crate) fn keep_in_forks(&mut self) {
        drop(std::mem::replace(&mut self.entry, RegistryGuard(None)));
    }
}

impl AsFd for EndpointFile {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl std::ops::Deref for EndpointFile {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

/// Runs in a child made by `fork`: gives every registered endpoint
/// descriptor number a new open file description of its object (or
/// `/dev/null`), and maps the object again over its registered mapping
/// through that description (or private zeroed memory), so that the child
/// holds no reference to the parent's endpoint locks (see
/// [`EndpointFile`]). A number is replaced only if it still refers to the
/// object it was registered with (device and inode).
///
/// The child of a multi-threaded process may only make async-signal-safe
/// calls: atomic loads, and `fstat`, `open`, `dup3`, `mmap` and `close` on
/// numbers and a path built in a stack buffer (glibc's `mmap` is the bare
/// system call); no allocation, no lock, no panic.
fn detach_endpoints_in_child() {
    use std::sync::atomic::Ordering::SeqCst;
    for e in &ENDPOINT_REGISTRY {
        let fd = e.fd.load(SeqCst);
        if fd < 0 {
            continue;
        }
        let (dev, ino) = (e.dev.load(SeqCst), e.ino.load(SeqCst));
        // Whether the number still refers to the registered object.
        // SAFETY: `st` is written by fstat before it is read (checked by
        // its return value); fstat on a number that is not open fails.
        let same = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut st) == 0 && st.st_dev == dev && st.st_ino == ino
        };
        let mut path = [0u8; 32];
        let fresh = match proc_fd_path(fd, &mut path) {
            // The number no longer refers to the registered object (closed
            // in the child's copy of the table, or replaced by other code):
            // it is left alone, but the mapping below still holds the
            // object and is replaced by zeroed memory.
            _ if !same => -1,
            // SAFETY: `path` is NUL-terminated (built by `proc_fd_path`)
            // and lives across the call; open only reads it.
            Some(()) => unsafe {
                libc::open(
                    path.as_ptr().cast(),
                    libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
                )
            },
            None => -1,
        };
        let with = if fresh >= 0 {
            fresh
        } else {
            DEV_NULL.load(SeqCst)
        };
        if same && with >= 0 {
            // SAFETY: dup3 on two numbers: `fd` (open, checked above) now
            // refers to what `with` refers to; nothing is read or written
            // through memory. The old open file description loses this
            // child's reference, which is the point.
            unsafe { libc::dup3(with, fd, libc::O_CLOEXEC) };
        }
        let len = e.len.load(SeqCst);
        let addr = e.addr.load(SeqCst) as *mut libc::c_void;
        if len != 0 {
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            // SAFETY: `addr` and `len` are the registered mapping of this
            // object, which the parent kept while it was registered (it is
            // unregistered before it is unmapped), so the child has it too:
            // MAP_FIXED replaces exactly that mapping, with the same object
            // through the child's new description (the same pages, so every
            // reference into it stays valid), or with zeroed private memory
            // of the same size. Nothing else lives in that range.
            unsafe {
                let same = fresh >= 0
                    && libc::mmap(addr, len, rw, libc::MAP_SHARED | libc::MAP_FIXED, fresh, 0)
                        != libc::MAP_FAILED;
                if !same {
                    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
                    libc::mmap(addr, len, rw, anon, -1, 0);
                }
            }
        }
        if fresh >= 0 {
            // SAFETY: closes the descriptor opened above, which nothing
            // else owns (`fd` keeps its own reference to the description).
            unsafe { libc::close(fresh) };
        }
    }
}

/// Writes `/proc/self/fd/<fd>` and a NUL into `buf`, without allocating.
fn proc_fd_path(fd: i32, buf: &mut [u8; 32]) -> Option<()> {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    let mut digits = [0u8; 10];
    let mut n = u32::try_from(fd).ok()?;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    for (k, d) in digits[..len].iter().rev().enumerate() {
        buf[PREFIX.len() + k] = *d;
    }
    buf[PREFIX.len() + len] = 0;
    Some(())
}

/// The process's fork generation: a different value in a child created by
/// `fork` after [`watch_forks`] than in its parent. One relaxed load, no
/// syscall (`getpid` would be one).
#[inline]
pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_calls_are_retried() {
        // Interrupted twice, then done: three calls, success.
        let mut calls = 0;
        let r = retry_interrupted(FALLOCATE_RETRIES, || {
            calls += 1;
            if calls <= 2 {
                libc::EINTR
            } else {
                0
            }
        });
        assert_eq!((r, calls), (0, 3));
        // Another error is reported at once.
        let mut calls = 0;
        let r = retry_interrupted(FALLOCATE_RETRIES, || {
            calls += 1;
            libc::ENOSPC
        });
        assert_eq!((r, calls), (libc::ENOSPC, 1));
        // Interrupted every time: reported after the bound.
        let mut calls = 0;
        let r = retry_interrupted(5, || {
            calls += 1;
            libc::EINTR
        });
        assert_eq!((r, calls), (libc::EINTR, 6));
    }

    #[test]
    fn allocate_and_reserve_size_a_real_object() {
        let path = format!("/shmpsc.sys-test-{}", std::process::id());
        let file = shm_create(&path, 0o600).unwrap();
        shm_remove(&path).unwrap();
        shm_allocate(&file, 1 << 16).unwrap();
        shm_reserve(&file, 1 << 16).unwrap();
        assert_eq!(file_stat(&file).unwrap().size, 1 << 16);
    }

    /// A descriptor number that refers to the right object but is owned by
    /// other code (its open file description does not hold the slot) is
    /// refused and left open; the one that holds the slot is adopted.
    #[test]
    fn adopt_inherited_checks_before_owning() {
        let path = format!("/shmpsc-sys-test-{}", std::process::id());
        let owned_elsewhere = shm_create(&path, 0o600).unwrap();
        let _ = shm_remove(&path);
        shm_allocate(&owned_elsewhere, 4096).unwrap();
        let passed = owned_elsewhere.try_clone().unwrap();
        let unrelated = File::from(
            nix::fcntl::open(
                format!("/proc/self/fd/{}", owned_elsewhere.as_raw_fd()).as_str(),
                OFlag::O_RDWR | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .unwrap(),
        );
        let named = File::from(
            nix::fcntl::open(
                format!("/proc/self/fd/{}", owned_elsewhere.as_raw_fd()).as_str(),
                OFlag::O_RDWR | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .unwrap(),
        );
        let byte = 3;
        // Nobody holds the slot: not ours to take.
        assert!(adopt_inherited(owned_elsewhere.as_raw_fd(), &named, byte).is_err());
        // Another open file description holds it: not ours either.
        assert!(ofd_try_lock(&unrelated, byte).unwrap());
        assert!(adopt_inherited(owned_elsewhere.as_raw_fd(), &named, byte).is_err());
        assert!(borrowed_identity(owned_elsewhere.as_raw_fd()).is_some());
        ofd_unlock(&unrelated, byte).unwrap();
        // The passed description holds it: adopted (a duplicate of it, here).
        assert!(ofd_try_lock(&passed, byte).unwrap());
        let raw = std::os::fd::IntoRawFd::into_raw_fd(passed);
        let adopted = adopt_inherited(raw, &named, byte).unwrap();
        assert_eq!(adopted.as_raw_fd(), raw);
        // A closed number is reported as such.
        drop(adopted);
        assert_eq!(
            adopt_inherited(raw, &named, byte).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    /// A fresh nameless shared-memory object of 4 KiB.
    fn nameless_object(tag: &str) -> File {
        let path = format!("/shmpsc-sys-{tag}-{}", std::process::id());
        let file = shm_create(&path, 0o600).unwrap();
        let _ = shm_remove(&path);
        shm_allocate(&file, 4096).unwrap();
        file
    }

    /// In a child made by `fork`: a registered endpoint's number refers to
    /// a new open file description of the same object (the parent's lock
    /// is another's there), and its mapping shows the same memory; a
    /// descriptor kept in forks, and a registered number that another
    /// object's description took over since, are left alone (their locks
    /// are the child's own there). And the parent's lock goes with the
    /// parent's descriptor and mapping while the child still lives.
    #[test]
    fn a_forked_child_lets_go_of_registered_endpoints() {
        let endpoint = EndpointFile::new(nameless_object("fork-endpoint"));
        let map = memmap2::MmapOptions::new()
            .len(4096)
            .map_raw(&*endpoint)
            .unwrap();
        endpoint.mapped_at(map.as_mut_ptr(), 4096);
        let word = map.as_mut_ptr().cast::<u64>();
        // SAFETY: the mapping is 4096 bytes, page-aligned, and ours.
        unsafe { word.write_volatile(0x5eed) };
        let probe = reopen_same(&endpoint).unwrap();
        let mut kept = EndpointFile::new(nameless_object("fork-kept"));
        kept.keep_in_forks();
        let moved = EndpointFile::new(nameless_object("fork-moved"));
        let other = nameless_object("fork-other");
        // SAFETY: `moved` owns its number, which now refers to `other`'s
        // open file description; only `moved` closes it.
        assert!(unsafe { libc::dup2(other.as_raw_fd(), moved.as_raw_fd()) } >= 0);
        for (f, byte) in [(&endpoint, 1), (&kept, 2), (&moved, 3)] {
            assert!(ofd_try_lock(f, byte).unwrap());
        }
        let id = file_stat(&endpoint).unwrap().id;
        // `done`: the child's checks, to the parent; `go`: the parent
        // closes it to let the child leave.
        let (mut done, mut go) = ([0i32; 2], [0i32; 2]);
        // SAFETY: each call writes two descriptors into its array.
        unsafe {
            assert_eq!(libc::pipe2(done.as_mut_ptr(), libc::O_CLOEXEC), 0);
            assert_eq!(libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC), 0);
        }
        // SAFETY: the child makes only async-signal-safe calls (fcntl,
        // fstat, read on numbers and stack buffers, no allocation) and
        // leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let checks = [
                ofd_is_locked(&endpoint, 1).ok() == Some(true),
                borrowed_identity(endpoint.as_raw_fd()) == Some(id),
                // SAFETY: the remapped page, as in the parent.
                unsafe { word.read_volatile() } == 0x5eed,
                ofd_is_locked(&kept, 2).ok() == Some(false),
                ofd_is_locked(&moved, 3).ok() == Some(false),
            ];
            let failed = checks.iter().position(|ok| !ok).map_or(0, |i| i + 1) as u8;
            let mut byte = 0u8;
            // SAFETY: writes and reads bytes we own on the pipes' ends;
            // waits for the parent to close `go`, then leaves at once.
            unsafe {
                libc::close(go[1]);
                libc::write(done[1], (&failed as *const u8).cast(), 1);
                libc::read(go[0], (&mut byte as *mut u8).cast(), 1);
                libc::_exit(0)
            }
        }
        let mut failed = 0xffu8;
        // SAFETY: reads one byte into `failed`, closes our ends of `done`.
        unsafe {
            libc::close(done[1]);
            libc::read(done[0], (&mut failed as *mut u8).cast(), 1);
            libc::close(done[0]);
        }
        // The child lives (it waits on `go`): the lock goes with the
        // parent's own references.
        drop(map);
        drop(endpoint);
        let released = !ofd_is_locked(&probe, 1).unwrap();
        let mut status = 0;
        // SAFETY: closes our ends of `go` (the child then leaves) and waits
        // for the child made above; `status` is ours.
        unsafe {
            libc::close(go[1]);
            libc::close(go[0]);
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        }
        assert_eq!(failed, 0, "check number {failed} failed in the child");
        assert!(libc::WIFEXITED(status), "child status {status:#x}");
        assert!(released, "the forked child kept the endpoint's lock");
    }

    #[test]
    fn proc_fd_paths() {
        let mut buf = [0u8; 32];
        proc_fd_path(0, &mut buf).unwrap();
        assert_eq!(&buf[..17], b"/proc/self/fd/0\0\0");
        proc_fd_path(i32::MAX, &mut buf).unwrap();
        assert_eq!(&buf[..25], b"/proc/self/fd/2147483647\0");
        assert!(proc_fd_path(-1, &mut buf).is_none());
    }

    #[test]
    fn stat_fields_after_a_tricky_command_name() {
        let stat = b"42 (a) b) c) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1 2 3";
        assert_eq!(parse_stat(stat), Some((b'S', 7, 98765)));
        assert_eq!(parse_stat(b"42 (x) Z 1"), None);
        assert_eq!(parse_stat(b"no parenthesis"), None);
        let me = identify_self();
        assert_eq!(me.pid, std::process::id());
        assert_ne!(me.start, 0);
        assert!(!process_gone(me));
        assert!(process_gone(ProcessIdentity {
            start: me.start + 1,
            ..me
        }));
        // Unknowns never count as gone.
        assert!(!process_gone(ProcessIdentity { ns: 0, ..me }));
    }

    #[test]
    fn parse_passed_values() {
        assert_eq!(parse_passed("7:3"), Some((7, 3, None)));
        assert_eq!(
            parse_passed("7:3:10:20"),
            Some((7, 3, Some(FileId { dev: 10, ino: 20 })))
        );
        assert_eq!(parse_passed("x:3"), None);
        assert_eq!(parse_passed("7:3:10:y"), None);
    }
}
