//! Named shared memory: create, open, map, validate, unlink. A [`Segment`]
//! owns one open file description of the shared-memory object (its locks say
//! "this endpoint is alive") and one mapping of it.
//!
//! Under `--cfg loom` the crate is built for model checking, and
//! `segment_heap.rs` stands in for this module.

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;

use crate::error::{OpenError, OpenErrorKind};
use crate::layout::{
    Geometry, Header, MessageType, Slot, LAYOUT_VERSION, MAGIC, RECEIVER_LOCK_BYTE,
    REMOVER_LOCK_BYTE, RX_ALIVE, STATE_READY,
};
use crate::sys;

/// Prefix of every shmpsc object in `/dev/shm`, so they can be listed.
pub(crate) const PREFIX: &str = "shmpsc.";
/// How many times `Segment::create` starts again after finding that the
/// name it opened was removed under it.
const CREATE_ATTEMPTS: u32 = 8;

/// How long a creator or a remover that finds the remover byte of an
/// object locked polls for it to be released before it reports the holder.
/// A removal holds it for a few system calls; another program may hold it
/// for ever (anyone who can open the object can lock any byte of it), so
/// this is never waited for without a bound.
const REMOVER_WAIT: Duration = Duration::from_secs(1);
/// Longest pause between two looks at a held remover byte.
const REMOVER_POLL_MAX: Duration = Duration::from_millis(50);
/// How many private names a removal tries for moving a name aside.
const ASIDE_ATTEMPTS: u32 = 16;

/// Longest channel name accepted (NAME_MAX is 255, minus the prefix).
pub(crate) const MAX_NAME: usize = 255 - PREFIX.len();

/// Checks a channel name and returns the shared-memory path for it.
pub(crate) fn shm_path(name: &str) -> Result<String, OpenError> {
    let bad = |reason: &str| {
        Err(OpenError::new(
            name,
            OpenErrorKind::InvalidName {
                reason: reason.to_owned(),
            },
        ))
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

/// What a removal does with a channel that holds undelivered messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Refuse to remove it (`OpenErrorKind::HasPending`).
    Keep,
    /// Remove it anyway: its messages are lost.
    Discard,
}

/// A mapped shmpsc segment.
#[derive(Debug)]
pub(crate) struct Segment {
    name: String,
    path: String,
    /// This endpoint's open file description, registered so that a child
    /// made by `fork` lets go of it and of `map` (see `sys::EndpointFile`).
    /// Declared before `map`: it is unregistered before `map` is unmapped.
    file: sys::EndpointFile,
    map: MmapRaw,
    geo: Geometry,
    /// A private copy of the header and slots (see [`Segment::inspect`]).
    snapshot: bool,
}

fn open_errno(name: &str, op: &'static str, e: Errno) -> OpenError {
    match e {
        Errno::ENOENT => OpenError::new(name, OpenErrorKind::NotFound),
        Errno::EACCES | Errno::EPERM => OpenError::new(name, OpenErrorKind::PermissionDenied),
        Errno::EEXIST => OpenError::new(name, OpenErrorKind::AlreadyExists),
        // Every open is `O_NOFOLLOW` and a valid name has no `/`: the entry
        // under the name is a symbolic link.
        Errno::ELOOP => OpenError::io(
            name,
            op,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "/dev/shm/{PREFIX}{name} is a symbolic link, not a channel, and shmpsc never \
                     follows one; remove it by hand (`rm /dev/shm/{PREFIX}{name}`) if nobody \
                     keeps it there on purpose"
                ),
            ),
        ),
        Errno::ENAMETOOLONG | Errno::EINVAL => OpenError::new(
            name,
            OpenErrorKind::InvalidName {
                reason: format!("the system refused it ({e})"),
            },
        ),
        e => OpenError::io(name, op, e),
    }
}

impl Segment {
    /// Creates the named segment for a receiver, or takes over an existing
    /// one whose receiver died. The returned segment's file holds the
    /// receiver lock.
    ///
    /// A new segment is published atomically: it is created without a name
    /// (`O_TMPFILE`), locked and initialised, and only then linked under
    /// its name, which fails if the name is taken. So every object that a
    /// shmpsc process finds under a name is ready and was locked by its
    /// receiver before it got the name: a sender never sees a half-made
    /// channel, and `remove` never takes one from its creator. Where
    /// `O_TMPFILE` or `/proc` is missing, the segment is created under its
    /// name (`O_EXCL`) and locked right after; see [`Segment::try_create_named`].
    pub(crate) fn create(
        name: &str,
        geo: Geometry,
        mode: u32,
        ty: MessageType,
    ) -> Result<(Segment, Created), OpenError> {
        let path = shm_path(name)?;
        check_mode(name, mode)?;
        // Each attempt that finds the name taken, or gone, since it looked
        // (another creator published first, or `shmpsc::remove_unused` removed a
        // dead receiver's segment) starts again. A removal needs an unused
        // segment, so a second attempt almost always succeeds; the bound
        // only keeps a pathological remover from spinning us forever.
        for _ in 0..CREATE_ATTEMPTS {
            if let Some(done) = Segment::try_create(name, &path, geo, mode, ty)? {
                return Ok(done);
            }
        }
        Err(OpenError::io(
            name,
            "creating the channel (another process, such as `shmpsc gc` or shmpsc::remove, \
             removed its name each time this receiver had just opened it; stop that process \
             and create the channel again)",
            io::Error::other(format!(
                "the name was removed under the receiver {CREATE_ATTEMPTS} times in a row"
            )),
        ))
    }

    /// One attempt of [`Segment::create`]. `Ok(None)`: the name changed
    /// under this attempt; the caller tries again.
    fn try_create(
        name: &str,
        path: &str,
        geo: Geometry,
        mode: u32,
        ty: MessageType,
    ) -> Result<Option<(Segment, Created)>, OpenError> {
        match sys::shm_open_existing(path) {
            Ok(file) => {
                let file = sys::EndpointFile::new(file);
                return Segment::try_take_over(name, path, file, geo, mode, ty);
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(open_errno(name, "opening", e)),
        }
        let file = match sys::shm_create_unnamed(mode) {
            Ok(file) => sys::EndpointFile::new(file),
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
                return Segment::try_create_named(name, path, geo, mode, ty)
            }
            Err(e) => return Err(open_errno(name, "creating", e)),
        };
        crate::hooks::at(crate::hooks::Point::Created);
        // Nobody else can reach the object before it has a name: the lock
        // is ours.
        if !sys::ofd_try_lock(&file, RECEIVER_LOCK_BYTE)
            .map_err(|e| OpenError::io(name, "locking the segment", e))?
        {
            return Err(OpenError::io(
                name,
                "locking the new, unnamed segment",
                io::Error::other("another open file description holds its receiver lock"),
            ));
        }
        let seg = Segment::initialise(name, path, file, geo, ty)?;
        match sys::shm_link(seg.file(), path) {
            Ok(()) => Ok(Some((seg, Created::Fresh))),
            // Another receiver published its segment first: look again
            // (it is alive, or it died and may be taken over).
            Err(Errno::EEXIST) => Ok(None),
            // No /proc to link through: create it under its name instead.
            Err(Errno::ENOENT) => {
                drop(seg);
                Segment::try_create_named(name, path, geo, mode, ty)
            }
            Err(e) => Err(open_errno(name, "publishing", e)),
        }
    }

    /// The fallback of [`Segment::try_create`] where there is no `O_TMPFILE`
    /// (or no `/proc`): create the object under its name, then lock it. In
    /// between, the object is named, empty and unlocked: a sender that
    /// opens it waits (up to a second) for it to become ready, and
    /// `shmpsc::remove_unused` may unlink it (it cannot tell it from a leftover),
    /// which this attempt notices after locking and starts again.
    fn try_create_named(
        name: &str,
        path: &str,
        geo: Geometry,
        mode: u32,
        ty: MessageType,
    ) -> Result<Option<(Segment, Created)>, OpenError> {
        let file = match sys::shm_create(path, mode) {
            Ok(file) => sys::EndpointFile::new(file),
            Err(Errno::EEXIST) => return Ok(None),
            Err(e) => return Err(open_errno(name, "creating", e)),
        };
        crate::hooks::at(crate::hooks::Point::Created);
        if !Segment::lock_as_receiver(name, path, &file)? {
            return Ok(None);
        }
        let r = Segment::initialise(name, path, file, geo, ty);
        if r.is_err() {
            let _ = sys::shm_remove(path);
        }
        r.map(|s| Some((s, Created::Fresh)))
    }

    /// Takes the receiver lock of `file`, opened by the name `path`, and
    /// checks that the name still refers to it. `Ok(true)`: go on as its
    /// receiver; `Ok(false)`: the caller tries again; `Err`: refused.
    ///
    /// `shmpsc::remove_unused` may have found the object unused and unlinked it
    /// between our open and our lock: a receiver on the nameless object
    /// would be one no sender can reach. Holding the lock, no remover can
    /// unlink it any more, so one check after locking settles it.
    fn lock_as_receiver(name: &str, path: &str, file: &File) -> Result<bool, OpenError> {
        let locked = sys::ofd_try_lock(file, RECEIVER_LOCK_BYTE)
            .map_err(|e| OpenError::io(name, "locking the segment", e))?;
        if !locked {
            Segment::lock_refused(name, file)?;
            return Ok(false);
        }
        still_named(name, path, file)
    }

    /// The receiver lock of `file` was refused. A remover (which holds
    /// every endpoint byte and the remover byte for the few system calls of
    /// a removal) is waited for, up to [`REMOVER_WAIT`], then the caller
    /// tries again; a live receiver means the channel exists.
    ///
    /// The remover byte of another user's object is not waited for: a
    /// receiver never takes such an object over anyway, and that user may
    /// hold the byte for ever.
    fn lock_refused(name: &str, file: &File) -> Result<(), OpenError> {
        let st = sys::file_stat(file).map_err(|e| OpenError::io(name, "inspecting", e))?;
        let me = sys::effective_uid();
        let removing = sys::ofd_lock_holder(file, REMOVER_LOCK_BYTE)
            .map_err(|e| OpenError::io(name, "looking at the segment's locks", e))?;
        if st.uid != me {
            if removing.is_none() && Segment::receiver_locked(file) {
                return Err(OpenError::new(name, OpenErrorKind::AlreadyExists));
            }
            return Err(OpenError::new(
                name,
                OpenErrorKind::Untrusted {
                    reason: format!(
                        "it belongs to user id {}, not to this user, and its locks are held (by \
                         that user's processes, or by a removal in progress); a receiver neither \
                         takes over nor waits for another user's segment, so try again later or \
                         pick another name",
                        st.uid
                    ),
                },
            ));
        }
        if removing.is_some() {
            return match wait_for_remover(file)
                .map_err(|e| OpenError::io(name, "looking at the segment's locks", e))?
            {
                None => Ok(()),
                Some(holder) => Err(remover_held(name, "creating the channel", holder)),
            };
        }
        if Segment::receiver_locked(file) {
            return Err(OpenError::new(name, OpenErrorKind::AlreadyExists));
        }
        if sys::ofd_range_locked(file, RECEIVER_LOCK_BYTE, 1).unwrap_or(false) {
            // Held, but not as a receiver holds it (a read lock): no
            // receiver lives, and none can take the channel over until that
            // program lets go.
            return Err(OpenError::io(
                name,
                "taking over the channel",
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "its receiver lock is read-locked by another program, which no shmpsc \
                         receiver does (receivers take write locks), so no receiver lives but \
                         none can take over until that program lets go; find it with \
                         `fuser -v /dev/shm/{PREFIX}{name}`"
                    ),
                ),
            ));
        }
        // Released since: look again.
        Ok(())
    }

    /// Takes over the existing object `file`, opened by the name `path`, if
    /// its receiver is gone and it can be trusted.
    fn try_take_over(
        name: &str,
        path: &str,
        file: sys::EndpointFile,
        geo: Geometry,
        mode: u32,
        ty: MessageType,
    ) -> Result<Option<(Segment, Created)>, OpenError> {
        crate::hooks::at(crate::hooks::Point::TakeoverOpened);
        if !Segment::lock_as_receiver(name, path, &file)? {
            return Ok(None);
        }
        // We hold the receiver lock: the previous receiver is gone. Take
        // over only a regular file with one name, that this user made, with
        // no wider access than asked for: anyone can plant a file in /dev/shm.
        let st = check_object(name, &file, Trust::Known)?;
        if st.uid != sys::effective_uid() {
            return Err(OpenError::new(
                name,
                OpenErrorKind::Untrusted {
                    reason: format!(
                        "it belongs to user id {}, not to this user, and a receiver does not take \
                         over another user's segment",
                        st.uid
                    ),
                },
            ));
        }
        if st.perms & !mode != 0 {
            return Err(OpenError::new(
                name,
                OpenErrorKind::Untrusted {
                    reason: format!(
                        "its mode {:#o} grants more than the {mode:#o} asked for, and a receiver \
                         does not take over a segment others may have written",
                        st.perms
                    ),
                },
            ));
        }
        // Read without mapping: a header that is not ready (or an object
        // too small for one) is set up anew.
        let ready = read_header(name, &file)
            .map(|h| h.config.state.load(Ordering::Acquire) == STATE_READY)
            .unwrap_or(false);
        if !ready {
            // Its creator died while setting it up (only possible without
            // O_TMPFILE): nobody else can use it (senders only use ready
            // segments), so set it up anew.
            return Segment::initialise(name, path, file, geo, ty)
                .map(|s| Some((s, Created::Fresh)));
        }
        let seg = Segment::open_checked(name, path, file, None, Trust::Known)?;
        if let Some(mismatch) = differences(&seg, geo, ty, st.perms, mode) {
            return Segment::replace_stale(name, path, seg, mismatch);
        }
        seg.reserve()?;
        let c = &seg.header().control;
        c.takeovers.fetch_add(1, Ordering::Relaxed);
        c.rx_pid.store(sys::current_pid(), Ordering::Relaxed);
        // The dead receiver may have announced a sleep; it is the
        // only process that waits on `data`.
        seg.header().data.waiting_at.store(0, Ordering::Relaxed);
        // This receiver's kernel decides whether senders may skip
        // their fence (see `wait::AsymmetricWake`).
        let features = crate::wait::AsymmetricWake::offered_features();
        seg.header()
            .config
            .features
            .store(features, Ordering::SeqCst);
        c.rx_state.store(RX_ALIVE, Ordering::Release);
        Ok(Some((seg, Created::TakenOver)))
    }

    /// A dead receiver's channel whose type or settings differ from the
    /// new receiver's (`mismatch` says how): with nothing to lose (no
    /// message pending, no sender attached) its name is removed, as
    /// [`Segment::remove_if_unused`] removes it, and `Ok(None)` sends the
    /// caller to create the channel anew; otherwise refused with
    /// [`OpenErrorKind::Stale`].
    fn replace_stale(
        name: &str,
        path: &str,
        seg: Segment,
        mismatch: String,
    ) -> Result<Option<(Segment, Created)>, OpenError> {
        let stale = |seg: &Segment| {
            // (The receiver lock is this receiver's: only senders show.)
            let live_senders = Segment::users(name, path, seg.file());
            let pending = seg.committed_records(seg.file()).0;
            let mut mismatch = mismatch.clone();
            if pending == 0 && live_senders.is_empty() {
                // Refused for a lock that no sender of the channel holds.
                mismatch.push_str(&format!(
                    "; a process that is no live sender holds some of its locks (find it \
                     with `fuser -v /dev/shm/{PREFIX}{name}`)"
                ));
            }
            OpenError::new(
                name,
                OpenErrorKind::Stale {
                    receiver_pid: seg.header().control.rx_pid.load(Ordering::Relaxed),
                    pending,
                    live_senders,
                    mismatch,
                },
            )
        };
        // Every endpoint byte (this receiver holds its own already): none
        // is free while a sender is attached, and no sender can attach
        // while they are held.
        let all = REMOVER_LOCK_BYTE + 1;
        if !sys::ofd_try_lock_range(seg.file(), RECEIVER_LOCK_BYTE, all)
            .map_err(|e| OpenError::io(name, "locking", e))?
        {
            return Err(stale(&seg));
        }
        if seg.committed_records(seg.file()).0 > 0 {
            return Err(stale(&seg));
        }
        // A sender that found this receiver alive (its lock is held) may be
        // about to take a slot of this object, after the locks are gone:
        // it must find the channel closed, not send into a nameless object.
        seg.header()
            .control
            .rx_state
            .store(crate::layout::RX_DROPPED, Ordering::Release);
        crate::wait::wake(&seg.header().control.space_seq, true);
        unlink_exact(name, path, seg.file())?;
        // Dropping `seg` closes the file and releases its locks.
        Ok(None)
    }

    fn initialise(
        name: &str,
        path: &str,
        file: sys::EndpointFile,
        geo: Geometry,
        ty: MessageType,
    ) -> Result<Segment, OpenError> {
        file.set_len(0)
            .map_err(|e| OpenError::io(name, "resetting the segment", e))?;
        sys::shm_allocate(&file, geo.len as u64).map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ENOSPC) {
                OpenError::io(
                    name,
                    "reserving memory (is /dev/shm full? free space or choose a smaller Builder::capacity)",
                    e,
                )
            } else {
                OpenError::io(name, "reserving memory", e)
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
        c.fingerprint.store(ty.fingerprint(), Ordering::Relaxed);
        let id = &h.identity;
        id.kind.store(ty.kind(), Ordering::Relaxed);
        id.name_fingerprint
            .store(ty.name_fingerprint(), Ordering::Relaxed);
        id.set_label(&ty.label());
        c.segment_len.store(geo.len as u64, Ordering::Relaxed);
        for slot in seg.slots() {
            slot.intent
                .store(crate::layout::NO_INTENT, Ordering::Relaxed);
        }
        h.control
            .rx_pid
            .store(sys::current_pid(), Ordering::Relaxed);
        h.control.rx_state.store(RX_ALIVE, Ordering::Relaxed);
        c.features.store(
            crate::wait::AsymmetricWake::offered_features(),
            Ordering::Relaxed,
        );
        // SYNC POINT: creator. Pairs with the Acquire load of `state` in
        // `validate_header` (of a copy read after this store, and, without
        // O_TMPFILE, possibly concurrently with it): a reader that sees
        // READY sees every field above. With O_TMPFILE no other process can
        // reach the object before `shm_link`, which comes after this store.
        c.state.store(STATE_READY, Ordering::Release);
        Ok(Segment { geo, ..seg })
    }

    /// Maps `size` bytes of the file. The geometry is a placeholder until
    /// validated.
    fn map(
        name: &str,
        path: &str,
        file: sys::EndpointFile,
        size: u64,
    ) -> Result<Segment, OpenError> {
        if size < std::mem::size_of::<Header>() as u64 || size > isize::MAX as u64 {
            return Err(OpenError::new(
                name,
                OpenErrorKind::Corrupt {
                    reason: format!("its size of {size} bytes cannot hold a header"),
                },
            ));
        }
        let map = MmapOptions::new()
            .len(size as usize)
            .map_raw(&*file)
            .map_err(|e| OpenError::io(name, "mapping", e))?;
        file.mapped_at(map.as_mut_ptr(), size as usize);
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
            snapshot: false,
        })
    }

    /// Checks an existing object and its header, read with `pread`, before
    /// mapping anything of it: a regular file with at most one name, an
    /// owner that `trust` accepts, a valid ready header of this layout
    /// version (and message type, if `ty` is given) that describes
    /// exactly the object's size. Then maps it.
    fn open_checked(
        name: &str,
        path: &str,
        file: sys::EndpointFile,
        ty: impl Into<Option<MessageType>>,
        trust: Trust<'_>,
    ) -> Result<Segment, OpenError> {
        let st = check_object(name, &file, trust)?;
        crate::hooks::at(crate::hooks::Point::HeaderRead);
        let header = read_header(name, &file)?;
        let geo = validate_header(name, &header, st.size, ty.into())?;
        let mut seg = Segment::map(name, path, file, geo.len as u64)?;
        // The object may have been truncated between the check and the
        // mapping (by a process with write access); then touching the
        // mapping would raise SIGBUS. Checked once more now that it is
        // mapped; what a process with write access does afterwards is
        // beyond any check (see README.md, "Security").
        let now = sys::file_stat(seg.file()).map_err(|e| OpenError::io(name, "inspecting", e))?;
        if now.size != st.size {
            return Err(OpenError::new(
                name,
                OpenErrorKind::Corrupt {
                    reason: format!(
                        "its size changed from {} to {} bytes while it was opened",
                        st.size, now.size
                    ),
                },
            ));
        }
        seg.geo = geo;
        Ok(seg)
    }

    /// Opens an existing, ready segment (for a sender) whose owner is this
    /// user, root, or one of `trusted`. Waits up to one second for a
    /// segment that is still being created (without O_TMPFILE only).
    pub(crate) fn open(name: &str, ty: MessageType, trusted: &[u32]) -> Result<Segment, OpenError> {
        let path = shm_path(name)?;
        let file = sys::shm_open_existing(&path).map_err(|e| open_errno(name, "opening", e))?;
        let file = sys::EndpointFile::new(file);
        let give_up = Instant::now() + Duration::from_secs(1);
        loop {
            let attempt = file
                .try_clone()
                .map(sys::EndpointFile::new)
                .map_err(|e| OpenError::io(name, "duplicating", e))?;
            match Segment::open_checked(name, &path, attempt, ty, Trust::Owners(trusted)) {
                Err(e)
                    if matches!(
                        e.kind(),
                        OpenErrorKind::NotReady | OpenErrorKind::Corrupt { .. }
                    ) && Instant::now() < give_up
                        && Segment::receiver_locked(&file) => {}
                Ok(seg) => {
                    seg.reserve()?;
                    return Ok(seg);
                }
                r => return r,
            }
            // A creator without O_TMPFILE holds the receiver lock and is
            // still initialising: its set-up takes microseconds, so poll
            // briefly.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Reopens this segment's object as a new open file description (a new
    /// lock owner), mapped again. The object is reached through this
    /// endpoint's own descriptor, never by name: the name may have been
    /// removed and given to another channel since this endpoint attached.
    pub(crate) fn reopen(&self, ty: MessageType) -> Result<Segment, OpenError> {
        let file = match sys::reopen_same(&self.file) {
            Ok(file) => sys::EndpointFile::new(file),
            // No /proc: by name, if the name still refers to our object.
            Err(Errno::ENOENT) => {
                let file = sys::shm_open_existing(&self.path)
                    .map_err(|e| open_errno(&self.name, "opening", e))?;
                if !same_object(&self.name, &file, &self.file)? {
                    return Err(OpenError::io(
                        &self.name,
                        "opening this endpoint's channel again",
                        io::Error::other(
                            "its name was removed and now refers to another channel, and \
                             without /proc the endpoint's own object cannot be reopened; \
                             create the channel again",
                        ),
                    ));
                }
                sys::EndpointFile::new(file)
            }
            Err(e) => return Err(open_errno(&self.name, "opening", e)),
        };
        Segment::open_checked(&self.name, &self.path, file, ty, Trust::Known)
    }

    /// Opens a segment from a descriptor inherited from the parent process
    /// (see `Sender::pass_to`) whose object is `id` (device and inode, as
    /// the parent's variable says and the caller checked). The object is
    /// reached through the descriptor, never by name: the name may have
    /// been removed, or given to another channel, since the parent passed
    /// it. Only without `/proc` is the name used, and only if it still
    /// refers to that object.
    ///
    /// An `Io` error of kind `InvalidInput` means the descriptor is the
    /// channel's object but not the open file description that holds the
    /// passed slot; any other error is a failure to adopt the passed sender.
    pub(crate) fn open_inherited(
        name: &str,
        raw: i32,
        id: sys::FileId,
        lock_byte: u64,
        ty: MessageType,
    ) -> Result<Segment, OpenError> {
        const OP: &str = "adopting the sender passed by the parent";
        let path = shm_path(name)?;
        let expect = match sys::reopen_borrowed(raw) {
            Ok(file) => file,
            // No /proc: by name, if the name still refers to the object.
            Err(Errno::ENOENT) => match sys::shm_open_existing(&path) {
                Ok(named) if sys::file_stat(&named).is_ok_and(|st| st.id == id) => named,
                Ok(_) | Err(Errno::ENOENT) => {
                    return Err(OpenError::io(
                        name,
                        OP,
                        io::Error::other(
                            "the channel's name was removed or now refers to another channel,                              and without /proc the passed object cannot be checked; mount                              /proc, or pass the sender again after the channel is created again",
                        ),
                    ))
                }
                Err(e) => return Err(open_errno(name, OP, e)),
            },
            Err(e) => return Err(open_errno(name, OP, e)),
        };
        if sys::file_stat(&expect)
            .map_err(|e| OpenError::io(name, OP, e))?
            .id
            != id
        {
            return Err(OpenError::io(
                name,
                OP,
                io::Error::other(
                    "the inherited descriptor was closed and reused while it was adopted;                      call Sender::open again",
                ),
            ));
        }
        let file = sys::adopt_inherited(raw, &expect, lock_byte)
            .map_err(|e| OpenError::io(name, OP, e))?;
        let file = sys::EndpointFile::new(file);
        let seg = Segment::open_checked(name, &path, file, ty, Trust::Known)?;
        seg.reserve()?;
        Ok(seg)
    }

    /// Whether some open file description holds the receiver lock of the
    /// segment `file`: the one answer to "is a receiver alive" (with
    /// `rx_state`, in `peers::receiver_state`). The query cannot fail on an
    /// open descriptor; if it does, the answer is "held": in doubt a
    /// receiver is alive, so nothing is taken over, removed or reported
    /// dead on an error (a create then fails with `AlreadyExists`).
    pub(crate) fn receiver_locked(file: &File) -> bool {
        sys::ofd_is_locked(file, RECEIVER_LOCK_BYTE).unwrap_or(true)
    }

    /// Device and inode of this segment's object.
    pub(crate) fn identity(&self) -> Result<sys::FileId, OpenError> {
        sys::file_stat(&self.file)
            .map(|st| st.id)
            .map_err(|e| OpenError::io(&self.name, "inspecting", e))
    }

    /// A snapshot of an existing segment's header and slot table, whatever
    /// its message type and owner, for `inspect`: read with `pread` into
    /// private memory, never mapped, so another user's object truncated
    /// meanwhile cannot raise SIGBUS here. Its data area is not read:
    /// its [`Segment::data`] is empty.
    pub(crate) fn inspect(name: &str) -> Result<Segment, OpenError> {
        let path = shm_path(name)?;
        let file = sys::shm_open_existing(&path).map_err(|e| open_errno(name, "opening", e))?;
        Segment::snapshot_of(name, path, file)
    }

    /// [`Segment::inspect`] of an object already open as `file`.
    fn snapshot_of(name: &str, path: String, file: File) -> Result<Segment, OpenError> {
        let st = check_object(name, &file, Trust::Known)?;
        crate::hooks::at(crate::hooks::Point::HeaderRead);
        let header = read_header(name, &file)?;
        let geo = validate_header(name, &header, st.size, None)?;
        let mut copy = MmapOptions::new()
            .len(geo.data_offset)
            .map_anon()
            .map_err(|e| OpenError::io(name, "allocating a snapshot", e))?;
        file.read_exact_at(&mut copy[..], 0).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                OpenError::new(
                    name,
                    OpenErrorKind::Corrupt {
                        reason: "it shrank while it was read".to_owned(),
                    },
                )
            } else {
                OpenError::io(name, "reading", e)
            }
        })?;
        Ok(Segment {
            name: name.to_owned(),
            path,
            // A snapshot holds no lock: forked children may keep it.
            file: sys::EndpointFile::unregistered(file),
            map: copy.into(),
            geo,
            snapshot: true,
        })
    }

    /// Removes the name `name` if no live process uses the object it
    /// refers to, and only that object.
    ///
    /// The remover locks every endpoint byte and the remover byte of the
    /// object it opened, then checks that the name still refers to it
    /// (device and inode), then removes the name with [`unlink_exact`],
    /// which moves it aside and unlinks it only if it is still that
    /// object. While it holds those locks no shmpsc process can give the
    /// name to another object (a creator links a new object only under a
    /// free name, a takeover or another removal needs the locks); a process
    /// outside shmpsc's protocol can (it unlinks the name, and a creator
    /// then takes the free name), and the exact unlink keeps this removal
    /// from taking that new object's name.
    ///
    /// Another remover is waited for, up to [`REMOVER_WAIT`]; a remover
    /// byte held longer (by a program that is no remover) is reported.
    pub(crate) fn remove_if_unused(name: &str, pending: Pending) -> Result<(), OpenError> {
        Segment::remove_if_unused_within(name, &mut WaitBudget::new(), pending)
    }

    /// [`Segment::remove_if_unused`], waiting for another remover only as
    /// long as `budget` allows, and taking the time waited from it: a
    /// sweep shares one budget over all its entries, so that many objects
    /// whose remover byte is held for ever (anyone may plant them) cost it
    /// [`REMOVER_WAIT`] in all, not each.
    pub(crate) fn remove_if_unused_within(
        name: &str,
        budget: &mut WaitBudget,
        pending: Pending,
    ) -> Result<(), OpenError> {
        let path = shm_path(name)?;
        let file = sys::shm_open_existing(&path).map_err(|e| open_errno(name, "opening", e))?;
        // It takes every endpoint byte for a moment: a child forked
        // meanwhile must not keep them.
        let file = sys::EndpointFile::new(file);
        crate::hooks::at(crate::hooks::Point::RemoveOpened);
        let st = sys::file_stat(&file).map_err(|e| OpenError::io(name, "inspecting", e))?;
        if !st.regular {
            return Err(not_regular(name));
        }
        let range = REMOVER_LOCK_BYTE + 1;
        let mut poll = budget.poll();
        while !sys::ofd_try_lock_range(&file, RECEIVER_LOCK_BYTE, range)
            .map_err(|e| OpenError::io(name, "locking", e))?
        {
            // A live endpoint: in use. Another remover: wait for it (its
            // removal takes a few system calls), then look again.
            let Some(holder) = sys::ofd_lock_holder(&file, REMOVER_LOCK_BYTE)
                .map_err(|e| OpenError::io(name, "looking at the channel's locks", e))?
            else {
                let pids = Segment::users(name, &path, &file);
                return Err(OpenError::new(name, OpenErrorKind::InUse { pids }));
            };
            if !poll.pause() {
                budget.spent(poll);
                return Err(remover_held(name, "removing the channel", holder));
            }
        }
        budget.spent(poll);
        // Since we opened it, the name may have been removed (by its
        // receiver's drop, or another remover) and given to a new channel:
        // that one is not ours to judge.
        if !still_named(name, &path, &file)? {
            return Err(OpenError::new(name, OpenErrorKind::NotFound));
        }
        if pending == Pending::Keep {
            // Exact: while the locks are held, nobody can send or receive.
            let (messages, bytes) = Segment::undelivered(name, &path, &file)?;
            if messages > 0 {
                return Err(OpenError::new(
                    name,
                    OpenErrorKind::HasPending { messages, bytes },
                ));
            }
        }
        crate::hooks::at(crate::hooks::Point::RemoveChecked);
        match unlink_exact(name, &path, &file)? {
            true => Ok(()),
            false => Err(OpenError::new(name, OpenErrorKind::NotFound)),
        }
    }

    /// A snapshot (see [`Segment::inspect`]) of the object open as `file`,
    /// read through a second descriptor (closing it leaves `file`'s locks).
    fn snapshot_of_open(name: &str, path: &str, file: &File) -> Result<Segment, OpenError> {
        let dup = file
            .try_clone()
            .map_err(|e| OpenError::io(name, "duplicating a descriptor", e))?;
        Segment::snapshot_of(name, path.to_owned(), dup)
    }

    /// Messages (and their payload bytes) sent on the object open as `file`
    /// and not received, from its statistics. A segment whose header is corrupt holds nothing any receiver can
    /// get (none can open it): nothing to lose, `(0, 0)`.
    fn undelivered(name: &str, path: &str, file: &File) -> Result<(u64, u64), OpenError> {
        let snap = match Segment::snapshot_of_open(name, path, file) {
            Ok(snap) => snap,
            // Never ready (its creator died setting it up): senders only use
            // ready segments.
            Err(e)
                if matches!(
                    e.kind(),
                    OpenErrorKind::Corrupt { .. } | OpenErrorKind::NotReady
                ) =>
            {
                return Ok((0, 0))
            }
            Err(e) if matches!(e.kind(), OpenErrorKind::IncompatibleVersion { .. }) => {
                return Err(OpenError::io(
                    name,
                    "counting its undelivered messages",
                    io::Error::other(format!(
                        "{e}; this version cannot tell whether it holds messages, so it keeps \
                         it: remove it with that version, or with `shmpsc rm --force {name}` \
                         if its messages may be lost"
                    )),
                ))
            }
            Err(e) => return Err(e),
        };
        Ok(snap.committed_records(file))
    }

    /// The committed records (count, payload bytes) between the delivered
    /// cursor and the claim cursor of this snapshot's object, open as
    /// `file`: what a receiver taking it over would deliver. Read from the
    /// ring itself (one header at a time, with `pread`), not from the
    /// statistics, which lag a sender killed between its commit and its
    /// count and which anyone may overwrite. A dead sender's claim is
    /// stepped over (it is never delivered); where a header cannot be read
    /// or parsed the walk stops, and what is left counts as one message (a
    /// receiver's resync might find records there). Cursors that no
    /// receiver would accept mean nothing can be delivered.
    fn committed_records(&self, file: &File) -> (u64, u64) {
        let geo = self.geometry();
        let cap = geo.capacity;
        let rx = &self.header().rx;
        let head = rx.head.load(Ordering::Relaxed);
        let delivered = rx.delivered.load(Ordering::Relaxed).max(head);
        let tail = self.header().tail.load(Ordering::Relaxed);
        if !head.is_multiple_of(8)
            || !delivered.is_multiple_of(8)
            || tail < delivered
            || tail - head > cap
        {
            return (0, 0);
        }
        // At most this many headers are read (a ring of tiny records, or
        // one crafted so, would otherwise cost a read per 8 bytes): beyond,
        // what is left counts as one message more.
        const MAX_HEADERS: u32 = 1 << 20;
        let (mut messages, mut bytes, mut pos) = (0u64, 0u64, delivered);
        for _ in 0..MAX_HEADERS {
            if pos >= tail {
                return (messages, bytes);
            }
            let off = pos & (cap - 1);
            let mut w = [0u8; 8];
            if file
                .read_exact_at(&mut w, geo.data_offset as u64 + off)
                .is_err()
            {
                return (messages + 1, bytes);
            }
            let word = u64::from_ne_bytes(w);
            let next = match crate::layout::parse_record(word, pos) {
                Ok(crate::layout::Record::Committed(len)) => {
                    messages += 1;
                    bytes += u64::from(len);
                    pos + crate::layout::record_size(u64::from(len))
                }
                Ok(crate::layout::Record::Claimed(len)) => {
                    pos + crate::layout::record_size(u64::from(len))
                }
                Ok(crate::layout::Record::Padding(_)) => pos + (cap - off),
                Ok(crate::layout::Record::Empty) | Err(_) => return (messages + 1, bytes),
            };
            if next <= pos || next > tail || next - head > cap {
                return (messages + 1, bytes);
            }
            pos = next;
        }
        (messages + u64::from(pos < tail), bytes)
    }

    /// The processes that use the object open as `file`, as they recorded
    /// themselves: its receiver (if its lock is held) and its live
    /// senders. Empty if the snapshot cannot be read.
    fn users(name: &str, path: &str, file: &File) -> Vec<u32> {
        let Ok(snap) = Segment::snapshot_of_open(name, path, file) else {
            return Vec::new();
        };
        let h = snap.header();
        let mut pids = Vec::new();
        if Segment::receiver_locked(snap.file()) {
            pids.push(h.control.rx_pid.load(Ordering::Relaxed));
        }
        for i in crate::peers::active_slots(&snap) {
            if crate::peers::sender_alive(&snap, i) {
                pids.push(snap.slots()[i].pid.load(Ordering::Relaxed));
            }
        }
        pids.retain(|&p| p != 0);
        pids.dedup();
        pids
    }

    /// Reserves the segment's pages (see `sys::shm_reserve`): a segment
    /// that another process created sparse, on a `/dev/shm` that is now
    /// full, is refused here instead of killing this process with SIGBUS.
    fn reserve(&self) -> Result<(), OpenError> {
        sys::shm_reserve(&self.file, self.geo.len as u64).map_err(|e| {
            OpenError::io(
                &self.name,
                "reserving memory (is /dev/shm full? free space, or remove unused channels with \
                 shmpsc::remove_unused)",
                e,
            )
        })
    }

    /// Removes the name if it still refers to this segment, and only then
    /// (see [`unlink_exact`]). A failure leaves the name (to `shmpsc gc`).
    pub(crate) fn unlink(&self) {
        let _ = unlink_exact(&self.name, &self.path, &self.file);
    }

    /// The channel name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// This endpoint's open file description (its locks).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Lets children forked from this process from now on keep this
    /// segment's open file description, and its locks (see
    /// `sys::EndpointFile`): for the sender that `Sender::pass_to` hands to
    /// a child through `fork` and `exec`.
    pub(crate) fn keep_in_forks(&mut self) {
        self.file.keep_in_forks();
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

    /// A segment in private anonymous memory, for the ring's unit tests:
    /// no object, no name, no locks; zeroed, with no sender's intent.
    #[cfg(test)]
    pub(crate) fn anonymous(geo: Geometry) -> Segment {
        let map = MmapOptions::new()
            .len(geo.len)
            .map_anon()
            .expect("anonymous memory");
        let seg = Segment {
            name: "anonymous".to_owned(),
            path: String::new(),
            file: sys::EndpointFile::unregistered(File::open("/dev/null").expect("/dev/null")),
            map: map.into(),
            geo,
            snapshot: false,
        };
        for slot in seg.slots() {
            slot.intent
                .store(crate::layout::NO_INTENT, Ordering::Relaxed);
        }
        seg
    }

    /// The data area (`geo.capacity` bytes, 128-aligned).
    #[inline]
    pub(crate) fn data(&self) -> DataArea<'_> {
        // A snapshot maps no data area: it gets an empty one.
        let len = if self.snapshot {
            0
        } else {
            self.geo.capacity as usize
        };
        DataArea {
            // SAFETY: the mapping is `data_offset` bytes long at least (a
            // snapshot's is exactly that, a segment's `data_offset +
            // capacity`, validated), so the offset stays inside it or one
            // past its end.
            base: unsafe { self.map.as_mut_ptr().add(self.geo.data_offset) },
            len,
            _segment: PhantomData,
        }
    }
}

/// The data area of a mapped segment: `len` bytes of shared memory that
/// the ring reads and writes as 8-byte header words (atomically) and as
/// payload bytes (copied in by the sender that claimed them, lent out to
/// the receiver once committed, zeroed by the receiver once consumed).
///
/// Every method takes an offset it cannot check against the protocol (who
/// owns the bytes), so each is an `unsafe fn`: the ring's tokens
/// (`ring::Claimed`, `ring::Message`) and masks are the proofs. Under
/// `--cfg loom` the same type is made of loom's atomics (segment_heap.rs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataArea<'a> {
    base: *mut u8,
    len: usize,
    _segment: PhantomData<&'a Segment>,
}

impl<'a> DataArea<'a> {
    /// The header word at `off`.
    ///
    /// # Safety
    ///
    /// `off` is 8-aligned and `off + 8 <= len` (the area is 128-aligned, so
    /// the word is aligned).
    #[inline]
    pub(crate) unsafe fn word(self, off: usize) -> &'a AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: in bounds and aligned (the caller's contract); the mapping
        // lives as long as `'a`; shared words are only accessed atomically,
        // and every bit pattern is a valid `AtomicU64`.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    /// Copies `bytes` to `off`.
    ///
    /// # Safety
    ///
    /// `off + bytes.len() <= len`, and the range belongs to the caller: a
    /// record it claimed and has not committed, which no endpoint that
    /// follows the protocol reads or writes meanwhile.
    #[inline]
    pub(crate) unsafe fn write(self, off: usize, bytes: &[u8]) {
        debug_assert!(off + bytes.len() <= self.len);
        // SAFETY: in bounds and owned by the caller (its contract); `bytes`
        // is private memory, so the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(off), bytes.len()) }
    }

    /// Lends the `len` bytes at `off` to `f`.
    ///
    /// # Safety
    ///
    /// `off + len <= len` of the area, and the range is a committed record
    /// that no endpoint following the protocol writes until `f` returns.
    #[inline]
    pub(crate) unsafe fn read<R>(self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        debug_assert!(off + len <= self.len);
        // SAFETY: in bounds (the caller's contract), in a mapping that lives
        // as long as `'a`, and not written while `f` holds the slice.
        f(unsafe { std::slice::from_raw_parts(self.base.add(off), len) })
    }

    /// The `len` bytes at `off`, borrowed for as long as the segment.
    ///
    /// # Safety
    ///
    /// `off + len <= len` of the area, and the range is a committed record
    /// that no endpoint following the protocol writes while the slice is
    /// used.
    #[inline]
    pub(crate) unsafe fn bytes(self, off: usize, len: usize) -> &'a [u8] {
        debug_assert!(off + len <= self.len);
        // SAFETY: in bounds (the caller's contract), in a mapping that lives
        // as long as `'a`, and not written while the slice is used.
        unsafe { std::slice::from_raw_parts(self.base.add(off), len) }
    }

    /// Zeroes the `len` bytes at `off`.
    ///
    /// # Safety
    ///
    /// `off + len <= len` of the area, and the range was consumed by the
    /// receiver (the caller), which owns it until it publishes a consumer
    /// cursor past it.
    #[inline]
    pub(crate) unsafe fn zero(self, off: usize, len: usize) {
        debug_assert!(off + len <= self.len);
        // SAFETY: in bounds and owned by the caller (its contract).
        unsafe { std::ptr::write_bytes(self.base.add(off), 0, len) }
    }
}

/// Whom an opener accepts as the owner of an object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trust<'a> {
    /// This user, root, and these users (a sender opening by name).
    Owners(&'a [u32]),
    /// Any owner: an object this endpoint already uses, one passed by the
    /// parent, one only read (`inspect`), or one whose owner the caller
    /// checks itself (a takeover).
    Known,
}

fn not_regular(name: &str) -> OpenError {
    OpenError::new(
        name,
        OpenErrorKind::Untrusted {
            reason: "it is not a regular file (shmpsc did not make it); if you know what it is, \
                 remove it by hand from /dev/shm"
                .to_owned(),
        },
    )
}

/// Checks what an object is before anything of it is read: a regular file
/// with at most one name, owned by someone `trust` accepts.
fn check_object(name: &str, file: &File, trust: Trust<'_>) -> Result<sys::Stat, OpenError> {
    let st = sys::file_stat(file).map_err(|e| OpenError::io(name, "inspecting", e))?;
    if !st.regular {
        return Err(not_regular(name));
    }
    if st.nlink > 1 {
        return Err(OpenError::new(
            name,
            OpenErrorKind::Untrusted {
                reason: format!(
                    "it has {} names (hard links), and a channel has one; if you know where it \
                     comes from, remove it with shmpsc::remove(\"{name}\") and create it again",
                    st.nlink
                ),
            },
        ));
    }
    if let Trust::Owners(extra) = trust {
        let me = sys::effective_uid();
        if st.uid != me && st.uid != 0 && !extra.contains(&st.uid) {
            return Err(OpenError::new(
                name,
                OpenErrorKind::Untrusted {
                    reason: format!(
                        "it belongs to user id {}, not to this user (id {me}) or root, so its \
                         messages would go to that user; if that user's receiver is meant to get \
                         them, open the sender with Builder::trust_owner({})",
                        st.uid, st.uid
                    ),
                },
            ));
        }
    }
    Ok(st)
}

/// How a dead receiver's channel differs from what a new receiver asks
/// for (geometry `geo`, message type `ty`, permission bits `mode`; the
/// object has `perms`), in words; `None` if it does not.
fn differences(
    seg: &Segment,
    geo: Geometry,
    ty: MessageType,
    perms: u32,
    mode: u32,
) -> Option<String> {
    let mut what = Vec::new();
    // (Wider than asked is refused before: see `try_take_over`.)
    if perms != mode {
        what.push(format!(
            "its mode is {perms:#o}, not the {mode:#o} asked for"
        ));
    }
    let h = seg.header();
    if !accepts(&ty, h) {
        what.push(match h.identity.label() {
            Some(carried) => format!("it carries {carried}, not {}", ty.label()),
            None => format!(
                "it carries another message type or codec than {}",
                ty.label()
            ),
        });
    }
    let old = seg.geometry();
    if old.capacity != geo.capacity {
        what.push(format!(
            "its capacity is {} bytes, not the {} asked for",
            old.capacity, geo.capacity
        ));
    }
    if old.max_message != geo.max_message {
        what.push(format!(
            "its maximum message size is {} bytes, not the {} asked for",
            old.max_message, geo.max_message
        ));
    }
    if old.max_senders != geo.max_senders {
        what.push(format!(
            "it has {} sender slots, not the {} asked for",
            old.max_senders, geo.max_senders
        ));
    }
    (!what.is_empty()).then(|| what.join("; "))
}

/// Reads the header of `file` with `pread`, into private memory: nothing
/// is mapped, so a file truncated meanwhile gives a short read, not SIGBUS.
fn read_header(name: &str, file: &File) -> Result<Box<Header>, OpenError> {
    let layout = std::alloc::Layout::new::<Header>();
    // SAFETY: `Header` is made only of atomic integers (and padding), for
    // which all-zero bytes are a valid value; the allocation has the
    // layout of a `Header`, is checked for null, and is owned by the box.
    let mut header: Box<Header> = unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut Header;
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(p)
    };
    // SAFETY: the box is owned here and not shared; the slice covers
    // exactly its `size_of::<Header>()` bytes, and any bytes written into
    // them form a valid `Header` (atomic integers only).
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            (&mut *header as *mut Header).cast::<u8>(),
            std::mem::size_of::<Header>(),
        )
    };
    match file.read_exact_at(bytes, 0) {
        Ok(()) => Ok(header),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(OpenError::new(
            name,
            OpenErrorKind::Corrupt {
                reason: "it is too small to hold a header".to_owned(),
            },
        )),
        Err(e) => Err(OpenError::io(name, "reading the header", e)),
    }
}

/// Checks every configuration word of a header read with [`read_header`]
/// from an object of `size` bytes, and returns its geometry.
fn validate_header(
    name: &str,
    header: &Header,
    size: u64,
    ty: Option<MessageType>,
) -> Result<Geometry, OpenError> {
    let c = &header.config;
    let corrupt = |reason: String| OpenError::new(name, OpenErrorKind::Corrupt { reason });
    let magic = c.magic.load(Ordering::Relaxed);
    if magic != MAGIC {
        return Err(corrupt(format!(
            "magic number {magic:#018x} is not shmpsc's"
        )));
    }
    let version = c.version.load(Ordering::Relaxed);
    if version != LAYOUT_VERSION {
        return Err(OpenError::new(
            name,
            OpenErrorKind::IncompatibleVersion {
                found: version,
                supported: LAYOUT_VERSION,
            },
        ));
    }
    // SYNC POINT: opener. A private copy read with pread after the
    // creator's Release store of READY in `initialise` (the kernel's copy
    // is ordered after it); every field is checked below anyway.
    if c.state.load(Ordering::Acquire) != STATE_READY {
        return Err(OpenError::new(name, OpenErrorKind::NotReady));
    }
    let geo = Geometry::from_config(c).map_err(corrupt)?;
    if geo.len as u64 != size {
        return Err(corrupt(format!(
            "the header describes {} bytes but the object has {size}",
            geo.len
        )));
    }
    if let Some(ty) = ty {
        let (expected, found) = (ty.fingerprint(), c.fingerprint.load(Ordering::Relaxed));
        if !accepts(&ty, header) {
            return Err(OpenError::new(
                name,
                OpenErrorKind::TypeMismatch {
                    type_name: ty.name,
                    codec: ty.codec,
                    expected,
                    found,
                    this: ty.label(),
                    channel: header.identity.label(),
                },
            ));
        }
    }
    Ok(geo)
}

/// Whether an endpoint of type `ty` may use the channel of `header`.
fn accepts(ty: &MessageType, header: &Header) -> bool {
    let id = &header.identity;
    ty.accepts(
        id.kind.load(Ordering::Relaxed),
        header.config.fingerprint.load(Ordering::Relaxed),
        id.name_fingerprint.load(Ordering::Relaxed),
    )
}

/// Whether two open files are the same object (device and inode).
fn same_object(name: &str, a: &File, b: &File) -> Result<bool, OpenError> {
    let a = sys::file_stat(a).map_err(|e| OpenError::io(name, "inspecting", e))?;
    let b = sys::file_stat(b).map_err(|e| OpenError::io(name, "inspecting", e))?;
    Ok(a.id == b.id)
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
    same_object(name, &named, file)
}

/// Refuses a mode that lets group or others read the object without
/// writing it. Opening a channel needs both (every endpoint maps it read
/// and write), so read access alone serves no endpoint; it would only let
/// a process take read locks, which block the write locks endpoints take
/// (a receiver taking over, a slot being reclaimed).
fn check_mode(name: &str, mode: u32) -> Result<(), OpenError> {
    for (who, shift) in [("its group", 3), ("other users", 0)] {
        let rw = (mode >> shift) & 0o6;
        if rw != 0 && rw != 0o6 {
            return Err(OpenError::new(name, OpenErrorKind::InvalidConfig {
                reason: format!(
                    "mode {mode:#o} gives {who} {} access without {}; an endpoint needs both, so give both (0o660 for the group, 0o666 for everyone) or neither (0o600)",
                    if rw == 0o4 { "read" } else { "write" },
                    if rw == 0o4 { "write" } else { "read" },
                ),
            }));
        }
    }
    Ok(())
}

/// How long removals may still wait for remover bytes held by others.
#[derive(Debug)]
pub(crate) struct WaitBudget {
    left: Duration,
}

impl WaitBudget {
    /// [`REMOVER_WAIT`] in all.
    pub(crate) fn new() -> WaitBudget {
        WaitBudget { left: REMOVER_WAIT }
    }

    /// A poll that lasts at most what is left.
    fn poll(&self) -> Poll {
        let start = Instant::now();
        Poll {
            start,
            deadline: start + self.left,
            pause: Duration::from_micros(100),
            paused: false,
        }
    }

    /// Takes the time that `poll` waited (if it waited) from what is left.
    fn spent(&mut self, poll: Poll) {
        if poll.paused {
            self.left = self.left.saturating_sub(poll.start.elapsed());
        }
    }
}

/// Polls, with growing pauses, until a deadline.
struct Poll {
    start: Instant,
    deadline: Instant,
    pause: Duration,
    paused: bool,
}

impl Poll {
    /// Pauses before the next look; `false` (at once) once the time is up.
    fn pause(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        // A bounded retry budget for a lock held by another process, which
        // offers no wake-up to wait on without a bound.
        std::thread::sleep(self.pause.min(self.deadline - now));
        self.pause = (self.pause * 2).min(REMOVER_POLL_MAX);
        self.paused = true;
        true
    }
}

/// Waits, up to [`REMOVER_WAIT`], until no other open file description
/// holds the remover byte of `file`. `None` once it is free; the holder if
/// it is still held at the end.
fn wait_for_remover(file: &File) -> io::Result<Option<sys::LockHolder>> {
    let mut poll = WaitBudget::new().poll();
    loop {
        match sys::ofd_lock_holder(file, REMOVER_LOCK_BYTE)? {
            None => return Ok(None),
            Some(holder) if !poll.pause() => return Ok(Some(holder)),
            Some(_) => {}
        }
    }
}

/// The error for a remover byte held for longer than a removal takes.
fn remover_held(name: &str, op: &'static str, holder: sys::LockHolder) -> OpenError {
    let who = match holder.pid {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_owned(),
    };
    OpenError::io(
        name,
        op,
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the channel is being removed by {who}, or its remover lock is held by another \
                 program, and it stayed so while this process waited (at most {} s); try \
                 again, and if it stays so, see which processes have it open with \
                 `fuser -v /dev/shm/{PREFIX}{name}`",
                REMOVER_WAIT.as_secs_f64()
            ),
        ),
    )
}

/// Removes the name `path` (of channel `name`) only if it refers to the
/// object open as `file`, by a check that no other process can slip in
/// front of: the name is first moved aside, atomically, to a private name
/// (`renameat2` with `RENAME_NOREPLACE`); if the object moved is `file`'s,
/// the private name is unlinked; if it is another object (between the
/// caller's check and the move, a process outside shmpsc's protocol
/// unlinked the name and a creator took it), it is moved back.
///
/// `Ok(true)`: the name was removed. `Ok(false)`: the name is gone or
/// refers to another object, which keeps it. `Err`: that other object
/// could not be given its name back (a third object took the name in the
/// moment it was aside); the error says where it is.
///
/// The caller holds a lock on `file` that keeps every shmpsc process but
/// its own owner from removing or renaming it. Where `renameat2` cannot
/// rename so, the name is checked and then unlinked, as before.
fn unlink_exact(name: &str, path: &str, file: &File) -> Result<bool, OpenError> {
    let ours = sys::file_stat(file)
        .map_err(|e| OpenError::io(name, "inspecting", e))?
        .id;
    let aside = match move_aside(path) {
        Ok(aside) => aside,
        Err(Errno::ENOENT) => return Ok(false),
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            if !still_named(name, path, file)? {
                return Ok(false);
            }
            return match sys::shm_remove(path) {
                Ok(()) => Ok(true),
                Err(Errno::ENOENT) => Ok(false),
                Err(e) => Err(open_errno(name, "removing", e)),
            };
        }
        Err(Errno::EEXIST) => {
            return Err(OpenError::io(
                name,
                "removing the channel",
                io::Error::other(format!(
                    "{ASIDE_ATTEMPTS} private names in a row to move its name aside to were \
                     taken (leftovers named `~removing.{}.*` in `shmpsc ls`?); remove those \
                     with `shmpsc gc`, then try again",
                    sys::current_pid()
                )),
            ))
        }
        Err(e) => return Err(open_errno(name, "removing", e)),
    };
    match sys::shm_name_id(&aside) {
        Ok(id) if id == ours => {
            return match sys::shm_remove(&aside) {
                Ok(()) | Err(Errno::ENOENT) => Ok(true),
                Err(e) => Err(OpenError::io(
                    name,
                    "removing the channel",
                    io::Error::other(format!(
                        "its name was moved to /dev/shm{aside} to be removed, but unlinking \
                         that failed ({e}); remove it with `shmpsc rm {}`",
                        &aside[1 + PREFIX.len()..]
                    )),
                )),
            };
        }
        // Its owner removed it meanwhile: nothing is left to give back.
        Err(Errno::ENOENT) => return Ok(false),
        _ => {}
    }
    // Another object: give it its name back.
    match sys::shm_rename_noreplace(&aside, path) {
        Ok(()) | Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(OpenError::io(
            name,
            "removing the channel",
            io::Error::other(format!(
                "between this removal's check and its unlink, another program replaced the \
                 channel's object by a new one; this removal moved the new one aside to \
                 /dev/shm{aside} to check it, and could not give it its name back ({}): its \
                 processes keep working, but new senders reach it only as channel `{}`. Stop \
                 it and create it again",
                if e == Errno::EEXIST {
                    "yet another object took the name meanwhile".to_owned()
                } else {
                    e.to_string()
                },
                &aside[1 + PREFIX.len()..]
            )),
        )),
    }
}

/// Moves the name `path` aside to a new private name (as `/shmpsc.x`),
/// which it returns: `~removing.<pid>.<64 random bits>`, unlikely to be a
/// channel's, and impossible for another user to plant ahead of time (a
/// counter would be predictable: pids are public); a name taken is
/// skipped. Collected by `shmpsc gc` if this process dies before it
/// removes it.
fn move_aside(path: &str) -> Result<String, Errno> {
    let mut last = Errno::EEXIST;
    for _ in 0..ASIDE_ATTEMPTS {
        let n = sys::random_u64()?;
        let aside = format!("/{PREFIX}~removing.{}.{n:016x}", sys::current_pid());
        match sys::shm_rename_noreplace(path, &aside) {
            Ok(()) => return Ok(aside),
            Err(Errno::EEXIST) => last = Errno::EEXIST,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_type() -> MessageType {
        MessageType {
            shape: None,
            schema: None,
            name: "u64",
            codec: "test",
        }
    }

    fn geo() -> Geometry {
        Geometry::new(4096, 64, 2).unwrap()
    }

    /// This process's private names in /dev/shm that refer to `file`'s
    /// object (other tests' removals may have theirs there for a moment).
    fn asides(file: &File) -> Vec<String> {
        let mine = format!("~removing.{}.", sys::current_pid());
        let id = sys::file_stat(file).unwrap().id;
        sys::shm_names(PREFIX)
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with(&mine))
            .filter(|n| sys::shm_name_id(&format!("/{PREFIX}{n}")) == Ok(id))
            .collect()
    }

    /// The name refers to another object than the one checked (it was
    /// unlinked and created again in between): the exact unlink leaves
    /// the name to that object, and nothing behind.
    #[test]
    fn unlink_exact_leaves_another_objects_name() {
        let name = format!("seg-unit-other-{}", sys::current_pid());
        let path = shm_path(&name).unwrap();
        let (old, _) = Segment::create(&name, geo(), 0o600, any_type()).unwrap();
        sys::shm_remove(&path).unwrap();
        let (new, _) = Segment::create(&name, geo(), 0o600, any_type()).unwrap();
        assert!(!unlink_exact(&name, &path, old.file()).unwrap());
        assert!(still_named(&name, &path, new.file()).unwrap());
        // The old segment's drop path does the same.
        old.unlink();
        assert!(still_named(&name, &path, new.file()).unwrap());
        assert!(asides(new.file()).is_empty());
        assert!(unlink_exact(&name, &path, new.file()).unwrap());
        assert_eq!(
            sys::shm_open_existing(&path).err(),
            Some(Errno::ENOENT),
            "the name of the object checked is removed"
        );
        assert!(!unlink_exact(&name, &path, new.file()).unwrap());
        assert!(asides(new.file()).is_empty());
    }
}
