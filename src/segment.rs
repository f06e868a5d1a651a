//! Named shared memory: create, open, map, validate, unlink. A [`Segment`]
//! owns one open file description of the shared-memory object (its locks say
//! "this endpoint is alive") and one mapping of it.
//!
//! Under `--cfg loom` the crate is built for model checking, and
//! `segment_heap.rs` stands in for this module.

use std::fs::File;
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;

use crate::error::OpenError;
use crate::layout::{
    Geometry, Header, Slot, FEATURE_ASYMMETRIC_WAKE, LAYOUT_VERSION, MAGIC, RECEIVER_LOCK_BYTE,
    RX_ALIVE, STATE_READY,
};
use crate::sys;

/// Prefix of every shmpsc object in `/dev/shm`, so they can be listed.
pub(crate) const PREFIX: &str = "shmpsc.";
/// A segment that is still not ready this long after it was last modified
/// was abandoned by its creator, and `remove` may take it.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// How many times `Segment::create` starts again after finding that the
/// name it opened was removed under it.
const CREATE_ATTEMPTS: u32 = 8;

/// Longest channel name accepted (NAME_MAX is 255, minus the prefix).
pub(crate) const MAX_NAME: usize = 255 - PREFIX.len();

/// Checks a channel name and returns the shared-memory path for it.
pub(crate) fn shm_path(name: &str) -> Result<String, OpenError> {
    let bad = |reason: &str| {
        Err(OpenError::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return bad("it is empty; use a short name such as \"jobs\"");
    }
    if name.len() > MAX_NAME {
        return bad(&format!(
            "it is {} bytes long; the limit is {MAX_NAME} bytes",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not names");
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == '\0' || c.is_control())
    {
        return bad(&format!(
            "it contains {c:?}; use letters, digits and punctuation other than `/`"
        ));
    }
    Ok(format!("/{PREFIX}{name}"))
}

/// What `create` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// A new segment.
    Fresh,
    /// An existing segment whose receiver had died, with its contents.
    TakenOver,
}

/// A mapped shmpsc segment.
#[derive(Debug)]
pub(crate) struct Segment {
    name: String,
    path: String,
    file: File,
    map: MmapRaw,
    geo: Geometry,
}

// SAFETY: the mapping is shared memory accessed only through atomics and
// through raw pointers under the ring protocol; nothing in `Segment` is tied
// to the creating thread.
unsafe impl Send for Segment {}
// SAFETY: as above; every shared access goes through atomics or the protocol.
unsafe impl Sync for Segment {}

fn io_err(name: &str, op: &'static str, e: impl Into<io::Error>) -> OpenError {
    OpenError::Io {
        name: name.to_owned(),
        op,
        source: e.into(),
    }
}

fn open_errno(name: &str, op: &'static str, e: Errno) -> OpenError {
    match e {
        Errno::ENOENT => OpenError::NotFound {
            name: name.to_owned(),
        },
        Errno::EACCES | Errno::EPERM => OpenError::PermissionDenied {
            name: name.to_owned(),
        },
        Errno::EEXIST => OpenError::AlreadyExists {
            name: name.to_owned(),
        },
        Errno::ENAMETOOLONG | Errno::ELOOP | Errno::EINVAL => OpenError::InvalidName {
            name: name.to_owned(),
            reason: format!("the system refused it ({e})"),
        },
        e => io_err(name, op, e),
    }
}

impl Segment {
    /// Creates the named segment for a receiver, or takes over an existing
    /// one whose receiver died. The returned segment's file holds the
    /// receiver lock.
    pub(crate) fn create(
        name: &str,
        geo: Geometry,
        mode: u32,
        fingerprint: u64,
    ) -> Result<(Segment, Created), OpenError> {
        let path = shm_path(name)?;
        // Each attempt that finds the name gone (removed by `remove_unused`
        // between our open and our lock) starts again from `O_EXCL`. A
        // removal needs an unused, ready (or long-abandoned) segment, so
        // a second attempt almost always succeeds; the bound only keeps a
        // pathological remover from spinning us forever.
        for _ in 0..CREATE_ATTEMPTS {
            if let Some(done) = Segment::try_create(name, &path, geo, mode, fingerprint)? {
                return Ok(done);
            }
        }
        Err(io_err(
            name,
            "creating the channel (another process, such as `shmpsc gc` or shmpsc::remove, \
             removed its name each time this receiver had just opened it; stop that process \
             and create the channel again)",
            io::Error::other(format!(
                "the name was removed under the receiver {CREATE_ATTEMPTS} times in a row"
            )),
        ))
    }

    /// One attempt of [`Segment::create`]. `Ok(None)`: the name no longer
    /// refers to the object this attempt opened and locked, so another
    /// process removed it; the caller tries again.
    fn try_create(
        name: &str,
        path: &str,
        geo: Geometry,
        mode: u32,
        fingerprint: u64,
    ) -> Result<Option<(Segment, Created)>, OpenError> {
        match sys::shm_create(path, mode) {
            Ok(file) => {
                crate::hooks::at(crate::hooks::Point::Created);
                // Lock before touching anything: whoever holds the receiver
                // lock owns the segment, and initialises it if it is not ready.
                let locked = sys::ofd_try_lock(&file, RECEIVER_LOCK_BYTE)
                    .map_err(|e| io_err(name, "locking the segment", e))?;
                // Between the creation and the lock, `remove_unused` may
                // have locked and unlinked the object (it leaves young
                // unready segments alone, but their age is the clock's
                // word). Once we hold the lock no remover can take it, so
                // checking the name after locking is enough. If the lock
                // was refused, the holder may be a remover that has just
                // unlinked it: then too, start again.
                if !still_named(name, path, &file)? {
                    return Ok(None);
                }
                if !locked {
                    return Err(OpenError::AlreadyExists {
                        name: name.to_owned(),
                    });
                }
                let r = Segment::initialise(name, path, file, geo, fingerprint);
                if r.is_err() {
                    let _ = sys::shm_remove(path);
                }
                r.map(|s| Some((s, Created::Fresh)))
            }
            Err(Errno::EEXIST) => {
                let file = match sys::shm_open_existing(path) {
                    Ok(file) => file,
                    // Removed since our `O_EXCL` failed: create it anew.
                    Err(Errno::ENOENT) => return Ok(None),
                    Err(e) => return Err(open_errno(name, "opening", e)),
                };
                crate::hooks::at(crate::hooks::Point::TakeoverOpened);
                let locked = sys::ofd_try_lock(&file, RECEIVER_LOCK_BYTE)
                    .map_err(|e| io_err(name, "locking the segment", e))?;
                // `remove_unused` may have found the segment unused and
                // unlinked it between our open and our lock: taking over
                // the nameless object would leave a receiver that no
                // sender can reach. Holding the lock, no remover can
                // unlink it any more, so one check after locking settles it.
                if !still_named(name, path, &file)? {
                    return Ok(None);
                }
                if !locked {
                    return Err(OpenError::AlreadyExists {
                        name: name.to_owned(),
                    });
                }
                // We hold the receiver lock: the previous receiver is gone.
                // Take over only what this user made, with no wider access
                // than asked for: anyone can plant a file in /dev/shm.
                let (uid, perms) =
                    sys::file_owner(&file).map_err(|e| io_err(name, "inspecting", e))?;
                if uid != sys::effective_uid() {
                    return Err(OpenError::Untrusted {
                        name: name.to_owned(),
                        reason: format!("it belongs to user id {uid}, not to this user"),
                    });
                }
                if perms & !mode != 0 {
                    return Err(OpenError::Untrusted {
                        name: name.to_owned(),
                        reason: format!(
                            "its mode {perms:#o} grants more than the {mode:#o} asked for"
                        ),
                    });
                }
                let (_, size) =
                    sys::file_identity(&file).map_err(|e| io_err(name, "inspecting", e))?;
                let ready = size >= std::mem::size_of::<Header>() as u64 && {
                    let seg = Segment::map(
                        name,
                        path,
                        file.try_clone()
                            .map_err(|e| io_err(name, "duplicating", e))?,
                        size,
                    )?;
                    seg.header().config.state.load(Ordering::Acquire) == STATE_READY
                };
                if !ready {
                    // Its creator died while setting it up: nobody else can
                    // use it (senders only use ready segments), so set it up anew.
                    return Segment::initialise(name, path, file, geo, fingerprint)
                        .map(|s| Some((s, Created::Fresh)));
                }
                let seg = Segment::map_validated(name, path, file, fingerprint)?;
                seg.reserve()?;
                let c = &seg.header().control;
                c.takeovers.fetch_add(1, Ordering::Relaxed);
                c.rx_pid.store(sys::current_pid(), Ordering::Relaxed);
                // The dead receiver may have announced a sleep; it is the
                // only process that waits on `data`.
                seg.header().data.waiting_at.store(0, Ordering::Relaxed);
                // This receiver's kernel decides whether senders may skip
                // their fence (see `FEATURE_ASYMMETRIC_WAKE`).
                let features = if sys::membarrier_supported() {
                    FEATURE_ASYMMETRIC_WAKE
                } else {
                    0
                };
                seg.header()
                    .config
                    .features
                    .store(features, Ordering::SeqCst);
                c.rx_state.store(RX_ALIVE, Ordering::Release);
                Ok(Some((seg, Created::TakenOver)))
            }
            Err(e) => Err(open_errno(name, "creating", e)),
        }
    }

    fn initialise(
        name: &str,
        path: &str,
        file: File,
        geo: Geometry,
        fingerprint: u64,
    ) -> Result<Segment, OpenError> {
        file.set_len(0)
            .map_err(|e| io_err(name, "resetting the segment", e))?;
        sys::shm_allocate(&file, geo.len as u64).map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ENOSPC) {
                io_err(
                    name,
                    "reserving memory (is /dev/shm full? free space or choose a smaller Builder::capacity)",
                    e,
                )
            } else {
                io_err(name, "reserving memory", e)
            }
        })?;
        let seg = Segment::map(name, path, file, geo.len as u64)?;
        let h = seg.header();
        let c = &h.config;
        c.magic.store(MAGIC, Ordering::Relaxed);
        c.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        c.capacity.store(geo.capacity, Ordering::Relaxed);
        c.max_message.store(geo.max_message, Ordering::Relaxed);
        c.max_senders.store(geo.max_senders, Ordering::Relaxed);
        c.creator_pid.store(sys::current_pid(), Ordering::Relaxed);
        c.fingerprint.store(fingerprint, Ordering::Relaxed);
        c.segment_len.store(geo.len as u64, Ordering::Relaxed);
        for slot in seg.slots() {
            slot.intent
                .store(crate::layout::NO_INTENT, Ordering::Relaxed);
        }
        h.control
            .rx_pid
            .store(sys::current_pid(), Ordering::Relaxed);
        h.control.rx_state.store(RX_ALIVE, Ordering::Relaxed);
        if sys::membarrier_supported() {
            c.features.store(FEATURE_ASYMMETRIC_WAKE, Ordering::Relaxed);
        }
        // SYNC POINT: creator. Pairs with the Acquire load of `state` in
        // `map_validated`: a reader that sees READY sees every field above.
        c.state.store(STATE_READY, Ordering::Release);
        Ok(Segment { geo, ..seg })
    }

    /// Maps `size` bytes of the file. The geometry is a placeholder until
    /// validated.
    fn map(name: &str, path: &str, file: File, size: u64) -> Result<Segment, OpenError> {
        if size < std::mem::size_of::<Header>() as u64 || size > isize::MAX as u64 {
            return Err(OpenError::Corrupt {
                name: name.to_owned(),
                reason: format!("its size of {size} bytes cannot hold a header"),
            });
        }
        let map = MmapOptions::new()
            .len(size as usize)
            .map_raw(&file)
            .map_err(|e| io_err(name, "mapping", e))?;
        let geo = Geometry {
            capacity: 0,
            max_message: 0,
            max_senders: 0,
            slots_offset: std::mem::size_of::<Header>(),
            data_offset: std::mem::size_of::<Header>(),
            len: std::mem::size_of::<Header>(),
        };
        Ok(Segment {
            name: name.to_owned(),
            path: path.to_owned(),
            file,
            map,
            geo,
        })
    }

    /// Maps an existing file and checks every configuration word.
    fn map_validated(
        name: &str,
        path: &str,
        file: File,
        fingerprint: impl Into<Option<u64>>,
    ) -> Result<Segment, OpenError> {
        let fingerprint = fingerprint.into();
        let (_, size) = sys::file_identity(&file).map_err(|e| io_err(name, "inspecting", e))?;
        let mut seg = Segment::map(name, path, file, size)?;
        let c = &seg.header().config;
        let corrupt = |reason: String| OpenError::Corrupt {
            name: name.to_owned(),
            reason,
        };
        let magic = c.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(corrupt(format!(
                "magic number {magic:#018x} is not shmpsc's"
            )));
        }
        let version = c.version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(OpenError::IncompatibleVersion {
                name: name.to_owned(),
                found: version,
                supported: LAYOUT_VERSION,
            });
        }
        // SYNC POINT: opener. Pairs with the Release store of READY in `initialise`.
        if c.state.load(Ordering::Acquire) != STATE_READY {
            return Err(OpenError::NotReady {
                name: name.to_owned(),
            });
        }
        let geo = Geometry::from_config(c).map_err(corrupt)?;
        if geo.len as u64 != size {
            return Err(corrupt(format!(
                "the header describes {} bytes but the object has {size}",
                geo.len
            )));
        }
        if fingerprint.is_some_and(|f| f != c.fingerprint.load(Ordering::Relaxed)) {
            return Err(OpenError::TypeMismatch {
                name: name.to_owned(),
                expected: "",
            });
        }
        seg.geo = geo;
        Ok(seg)
    }

    /// Opens an existing, ready segment (for a sender). Waits up to one
    /// second for a segment that is still being created.
    pub(crate) fn open(name: &str, fingerprint: u64) -> Result<Segment, OpenError> {
        let path = shm_path(name)?;
        let file = sys::shm_open_existing(&path).map_err(|e| open_errno(name, "opening", e))?;
        Segment::open_file(name, &path, file, fingerprint)
    }

    /// Opens a segment from a file already opened by path.
    pub(crate) fn open_file(
        name: &str,
        path: &str,
        file: File,
        fingerprint: u64,
    ) -> Result<Segment, OpenError> {
        let give_up = Instant::now() + Duration::from_secs(1);
        loop {
            let (_, size) = sys::file_identity(&file).map_err(|e| io_err(name, "inspecting", e))?;
            if size >= std::mem::size_of::<Header>() as u64 {
                let file2 = file
                    .try_clone()
                    .map_err(|e| io_err(name, "duplicating", e))?;
                match Segment::map_validated(name, path, file2, fingerprint) {
                    Err(OpenError::NotReady { .. }) | Err(OpenError::Corrupt { .. })
                        if Instant::now() < give_up && receiver_locked(&file) => {}
                    Ok(seg) => {
                        seg.reserve()?;
                        return Ok(seg);
                    }
                    r => return r,
                }
            } else if Instant::now() >= give_up || !receiver_locked(&file) {
                return Err(OpenError::NotReady {
                    name: name.to_owned(),
                });
            }
            // The creator holds the receiver lock and is still initialising:
            // its set-up takes microseconds, so poll briefly.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Reopens this segment's object as a new open file description (a new
    /// lock owner), mapped again.
    pub(crate) fn reopen(&self, fingerprint: u64) -> Result<Segment, OpenError> {
        let file =
            sys::shm_open_existing(&self.path).map_err(|e| open_errno(&self.name, "opening", e))?;
        Segment::map_validated(&self.name, &self.path, file, fingerprint)
    }

    /// Opens a segment from a descriptor inherited from the parent process
    /// (see `Sender::pass_to`), checked against the object named `name`.
    pub(crate) fn open_inherited(
        name: &str,
        raw: i32,
        lock_byte: u64,
        fingerprint: u64,
    ) -> Result<Segment, OpenError> {
        let path = shm_path(name)?;
        let named = sys::shm_open_existing(&path).map_err(|e| open_errno(name, "opening", e))?;
        let file = sys::adopt_inherited(raw, &named, lock_byte)
            .map_err(|e| io_err(name, "adopting the sender passed by the parent", e))?;
        let seg = Segment::map_validated(name, &path, file, fingerprint)?;
        seg.reserve()?;
        Ok(seg)
    }

    /// Maps an existing segment for inspection, whatever its message type.
    pub(crate) fn inspect(name: &str) -> Result<Segment, OpenError> {
        let path = shm_path(name)?;
        let file = sys::shm_open_existing(&path).map_err(|e| open_errno(name, "opening", e))?;
        Segment::map_validated(name, &path, file, None)
    }

    /// Removes the name `name` if no live process uses it.
    pub(crate) fn remove_unused(name: &str) -> Result<(), OpenError> {
        let path = shm_path(name)?;
        let file = sys::shm_open_existing(&path).map_err(|e| open_errno(name, "opening", e))?;
        // Lock the whole endpoint range ourselves while unlinking, so that
        // no endpoint can attach between the check and the unlink. A segment
        // whose header cannot be read gets the largest range.
        let range = 1 + crate::layout::MAX_SENDERS as u64;
        if !sys::ofd_try_lock_range(&file, RECEIVER_LOCK_BYTE, range)
            .map_err(|e| io_err(name, "locking", e))?
        {
            return Err(OpenError::InUse {
                name: name.to_owned(),
            });
        }
        // A creator makes the object, then takes the receiver lock: in
        // between, the object is unlocked but not abandoned. Leave a segment
        // that is not ready yet alone while it is young (its creator is
        // setting it up); an old one was abandoned by a creator that died.
        if !Segment::is_ready(&file) {
            let age = sys::file_age(&file).map_err(|e| io_err(name, "inspecting", e))?;
            if age < ABANDONED_AFTER {
                return Err(OpenError::NotReady {
                    name: name.to_owned(),
                });
            }
        }
        sys::shm_remove(&path).map_err(|e| open_errno(name, "removing", e))
    }

    /// Whether the object holds a ready header (read without mapping more
    /// than the header).
    fn is_ready(file: &File) -> bool {
        let Ok((_, size)) = sys::file_identity(file) else {
            return false;
        };
        if size < std::mem::size_of::<Header>() as u64 {
            return false;
        }
        let Ok(file) = file.try_clone() else {
            return false;
        };
        Segment::map("", "", file, std::mem::size_of::<Header>() as u64)
            .map(|seg| seg.header().config.state.load(Ordering::Acquire) == STATE_READY)
            .unwrap_or(false)
    }

    /// Reserves the segment's pages (see `sys::shm_reserve`): a segment
    /// that another process created sparse, on a `/dev/shm` that is now
    /// full, is refused here instead of killing this process with SIGBUS.
    fn reserve(&self) -> Result<(), OpenError> {
        sys::shm_reserve(&self.file, self.geo.len as u64).map_err(|e| {
            io_err(
                &self.name,
                "reserving memory (is /dev/shm full? free space, or remove unused channels with \
                 shmpsc::remove_unused)",
                e,
            )
        })
    }

    /// Removes the name if it still refers to this segment.
    pub(crate) fn unlink(&self) {
        if let Ok(true) = still_named(&self.name, &self.path, &self.file) {
            let _ = sys::shm_remove(&self.path);
        }
    }

    /// The channel name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// This endpoint's open file description (its locks).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The validated geometry.
    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The header.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is at least `size_of::<Header>()` bytes (checked
        // in `map`) and page-aligned; `Header` is made only of atomics, for
        // which every bit pattern is valid and shared mutation is allowed.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    /// The slot table.
    pub(crate) fn slots(&self) -> &[Slot] {
        // SAFETY: `geo` was validated against the mapping's length, so
        // `max_senders` slots fit at `slots_offset`, which is 128-aligned;
        // `Slot` is made only of atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(self.geo.slots_offset) as *const Slot,
                self.geo.max_senders as usize,
            )
        }
    }

    /// Start of the data area (`geo.capacity` bytes, 128-aligned).
    pub(crate) fn data(&self) -> *mut u8 {
        // SAFETY: `data_offset + capacity == len` of the mapping (validated).
        unsafe { self.map.as_mut_ptr().add(self.geo.data_offset) }
    }
}

/// Whether `path` still names the object open as `file` (same device and
/// inode): `false` once another process removed the name, or removed it and
/// created a new object under it.
fn still_named(name: &str, path: &str, file: &File) -> Result<bool, OpenError> {
    let named = match sys::shm_open_existing(path) {
        Ok(named) => named,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(open_errno(name, "opening", e)),
    };
    let (now, _) = sys::file_identity(&named).map_err(|e| io_err(name, "inspecting", e))?;
    let (ours, _) = sys::file_identity(file).map_err(|e| io_err(name, "inspecting", e))?;
    Ok(now == ours)
}

/// Whether some open file description holds the receiver lock.
pub(crate) fn receiver_locked(file: &File) -> bool {
    sys::ofd_is_locked(file, RECEIVER_LOCK_BYTE).unwrap_or(false)
}
