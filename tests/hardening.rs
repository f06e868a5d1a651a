//! Hardening at the edges of a channel: permissions and names, resource
//! limits, damaged headers, and the text of every error (each must say what
//! happened, name the channel where it has one, and say what to do).

mod common;
mod raw;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use common::{
    channel_name, emit, other_user, run_child_role, unique_name, wait_for_stdin_eof, Spawn,
};
use raw::{shm_path, Raw};
use serde::{Serialize, Serializer};
use shmpsc::{
    Builder, Codec, CodecErrorKind, OpenError, OpenErrorKind, RecvError, RecvTimeoutError,
    Rejection, SendError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};

const GUARD: Duration = Duration::from_secs(10);

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        // Tries to attach and send; reports how it went.
        "open_and_send" => match Sender::<u64>::open(&name) {
            Ok(tx) => {
                tx.send(42).expect("send");
                emit("sent");
            }
            Err(e) if matches!(e.kind(), OpenErrorKind::PermissionDenied) => {
                emit(format!("denied {e}"))
            }
            Err(e) => emit(format!("failed {e:?}")),
        },
        // Receives hostile encodings, then a valid message.
        "hostile_lengths" => {
            for (i, (codec, bytes)) in hostile_length_prefixes().iter().enumerate() {
                let (tx, rx) = Builder::new(&format!("{name}-{i}"))
                    .codec(*codec)
                    .create::<String>()
                    .expect("create");
                tx.send_encoded_bytes(bytes).expect("send");
                match rx.recv() {
                    Err(RecvError::Invalid(e)) => {
                        assert!(e.to_string().contains("could not be decoded"), "{e}");
                        assert_eq!(e.codec_error().map(|e| e.codec()), Some(*codec));
                    }
                    other => panic!("case {i}: expected Invalid, got {other:?}"),
                }
                tx.send("fine".to_owned()).expect("send");
                assert_eq!(rx.recv().as_deref(), Ok("fine"));
                emit(format!("survived {i}"));
            }
            emit("done");
        }
        // In a /dev/shm of its own, 256 KiB: creations that do not fit fail
        // cleanly, and what fits works.
        "small_dev_shm" => {
            if let Err(why) = common::private_dev_shm("256k") {
                emit(format!("outcome skip {why}"));
                return;
            }
            let e = Builder::new(&name)
                .capacity(1 << 20)
                .create::<u64>()
                .unwrap_err();
            assert!(matches!(e.kind(), OpenErrorKind::Io { .. }), "{e:?}");
            assert!(!Path::new(&shm_path(&name)).exists(), "left behind");
            emit(format!("outcome refused {e}"));
            // Fill it with small channels: each one either fits or is
            // refused the same way, and those that fit all work.
            let mut channels = Vec::new();
            for i in 0.. {
                let n = format!("{name}-{i}");
                match Builder::new(&n).capacity(1 << 14).create::<u64>() {
                    Ok(pair) => channels.push(pair),
                    Err(e) if matches!(e.kind(), OpenErrorKind::Io { .. }) => {
                        assert!(e.to_string().contains("/dev/shm"), "{e}");
                        break;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
            assert!(!channels.is_empty() && channels.len() < 16);
            for (i, (tx, rx)) in channels.iter().enumerate() {
                for _ in 0..2000 {
                    tx.send(i as u64).unwrap();
                    assert_eq!(rx.recv(), Ok(i as u64));
                }
            }
            emit(format!("filled {}", channels.len()));
        }
        // In a /dev/shm of its own, 256 KiB: a receiver takes over a sparse
        // segment (its pages never reserved) larger than the file system.
        "sparse_takeover" => {
            if let Err(why) = common::private_dev_shm("256k") {
                emit(format!("outcome skip {why}"));
                return;
            }
            // A real header for this message type, from a real channel.
            let header = {
                let (_tx, _rx) = Builder::new(&name)
                    .capacity(4096)
                    .max_message_size(1024)
                    .create::<u64>()
                    .unwrap();
                let raw = Raw::open(&name);
                let words = |at: usize, lines: usize| {
                    (0..lines * raw::LINE / 8)
                        .map(|i| (at + 8 * i, raw.u64(at + 8 * i)))
                        .collect::<Vec<_>>()
                };
                // The configuration, and what the channel carries.
                let mut header = words(0, 1);
                header.extend(words(raw::IDENTITY, 2));
                header
            };
            const CAP: u64 = 1 << 20;
            let len = raw::segment_len(CAP, raw::DEFAULT_SENDERS);
            let file = fs::File::create(shm_path(&name)).unwrap();
            file.set_len(len as u64).unwrap(); // sparse: nothing reserved
                                               // The receiver takes over only segments of its own user with no
                                               // wider mode than it asks for.
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .unwrap();
            drop(file);
            let raw = Raw::try_open(&name, Some((CAP, raw::DEFAULT_SENDERS))).unwrap();
            for &(at, w) in &header {
                raw.set_u64(at, w);
            }
            raw.set_u64(raw::CAPACITY, CAP);
            raw.set_u64(raw::SEGMENT_LEN, len as u64);
            // Claims up to a whole ring whose owner is gone: the receiver
            // will look for where they end.
            raw.set_u64(raw::TAIL, CAP);
            drop(raw);
            // The forged channel's own settings: a takeover, not a
            // replacement (which a differing receiver would be refused, for
            // the claims it holds).
            match Builder::new(&name).max_message_size(1024).receiver::<u64>() {
                Ok(rx) => {
                    emit("outcome taken");
                    let r = rx.recv_timeout(Duration::from_millis(200));
                    emit(format!("survived {r:?}"));
                }
                // Refusing it, because its pages cannot be reserved, is the
                // other way not to die of SIGBUS.
                Err(e) => emit(format!("outcome refused {e}")),
            }
        }
        // Creates the channel as its receiver and stays until killed.
        "idle_receiver" => {
            let _rx = Builder::new(&name).receiver::<u64>().expect("create");
            emit("ready");
            wait_for_stdin_eof();
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Asserts that an error's text names the channel and contains at least one
/// of `hints` (what to do, or the fact that matters).
fn assert_helpful(err: &dyn std::fmt::Display, name: &str, hints: &[&str]) {
    let text = err.to_string();
    assert!(
        text.contains(name),
        "{text:?} does not name the channel {name:?}"
    );
    assert!(
        hints.iter().any(|h| text.contains(h)),
        "{text:?} says none of {hints:?}"
    );
}

fn assert_says(err: &dyn std::fmt::Display, parts: &[&str]) {
    let text = err.to_string();
    for p in parts {
        assert!(text.contains(p), "{text:?} does not say {p:?}");
    }
}

/// A channel whose receiver ran in a child process that was then killed:
/// its segment stays, with no live endpoint.
/// Removes `name`, waiting (at most the hang guard) while a process still
/// holds one of its locks.
fn remove_when_unused(name: &str) {
    let deadline = std::time::Instant::now() + common::HANG_GUARD;
    loop {
        match shmpsc::remove(name) {
            Ok(()) => return,
            Err(e)
                if matches!(e.kind(), OpenErrorKind::InUse { .. })
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::yield_now()
            }
            Err(e) => panic!("removing {name}: {e}"),
        }
    }
}

// -------------------------------------------------- permissions and names

#[test]
fn other_users_are_refused_a_0600_channel_and_admitted_to_a_widened_one() {
    run_child_role(run_role);
    let test = "other_users_are_refused_a_0600_channel_and_admitted_to_a_widened_one";
    let (uid, gid) = match other_user() {
        Ok(ids) => ids,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };

    // Default: owner only.
    let name = unique_name("perm");
    let (_tx, _rx) = shmpsc::channel::<u64>(&name).unwrap();
    let meta = fs::metadata(shm_path(&name)).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    let mut spawn = Spawn::new(test, "open_and_send", &name);
    spawn.command().uid(uid).gid(gid);
    let mut child = spawn.spawn();
    let denied = child.expect_event("denied");
    assert_helpful(&denied, &name, &["Builder::mode"]);
    assert_says(&denied, &["permission denied"]);
    child.wait_success();

    // Widened with Builder::mode: others may send.
    let name = unique_name("perm-wide");
    let (_tx, rx) = Builder::new(&name).mode(0o666).create::<u64>().unwrap();
    let meta = fs::metadata(shm_path(&name)).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o666, "the umask must not narrow it");
    let mut spawn = Spawn::new(test, "open_and_send", &name);
    spawn.command().uid(uid).gid(gid);
    let mut child = spawn.spawn();
    child.expect_event("sent");
    child.wait_success();
    assert_eq!(rx.recv_timeout(GUARD), Ok(42));
}

#[test]
fn mode_is_exactly_what_was_asked() {
    for mode in [0o600, 0o660, 0o606, 0o666] {
        let name = unique_name("mode");
        let (_tx, _rx) = Builder::new(&name).mode(mode).create::<u64>().unwrap();
        let meta = fs::metadata(shm_path(&name)).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "mode {mode:o}");
    }
}

/// Read access without write serves no endpoint (each maps the object read
/// and write) and would let a reader take read locks that block endpoints'
/// write locks: such modes are refused, saying what to use instead.
#[test]
fn modes_with_read_without_write_are_refused() {
    for mode in [0o640, 0o604, 0o644, 0o620, 0o602, 0o664] {
        let name = unique_name("mode-ro");
        match Builder::new(&name).mode(mode).create::<u64>() {
            Err(e) if matches!(e.kind(), OpenErrorKind::InvalidConfig { .. }) => {
                let text = e.to_string();
                assert!(text.contains("without"), "mode {mode:o}: {text}");
            }
            other => panic!("mode {mode:o}: {other:?}"),
        }
        assert!(!Path::new(&shm_path(&name)).exists(), "mode {mode:o}");
    }
}

#[test]
fn receiver_refuses_a_segment_planted_by_another_user() {
    let Ok((uid, gid)) = other_user() else {
        println!("skipped: cannot hand a file to another user here");
        return;
    };
    // Another user got the name first, with a world-writable object.
    let name = unique_name("planted");
    let path = shm_path(&name);
    fs::write(&path, b"").unwrap();
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();

    let result = Builder::new(&name).receiver::<u64>();
    let meta = fs::metadata(&path).unwrap();
    let _ = fs::remove_file(&path);
    match result {
        Err(e) => assert_helpful(&e, &name, &["another user", "owner", "remove"]),
        Ok(_rx) => panic!(
            "the receiver took over a segment owned by uid {} with mode {:o}: anyone can \
             write it, although the channel was created with mode 0600",
            meta.uid(),
            meta.mode() & 0o777
        ),
    }
}

#[test]
fn a_symlink_in_place_of_the_segment_is_never_followed() {
    let name = unique_name("symlink");
    let target = std::env::temp_dir().join(format!("shmpsc-test-{name}"));
    fs::write(&target, b"precious").unwrap();
    std::os::unix::fs::symlink(&target, shm_path(&name)).unwrap();

    let created = Builder::new(&name).capacity(4096).create::<u64>();
    let opened = Sender::<u64>::open(&name);
    let inspected = shmpsc::inspect(&name);
    let _ = fs::remove_file(shm_path(&name));
    assert_eq!(
        fs::read(&target).unwrap(),
        b"precious",
        "the link was followed"
    );
    let _ = fs::remove_file(&target);
    let err = created.expect_err("created a channel through a symlink");
    println!("create through a symlink: {err}");
    assert_helpful(&err, &name, &["link"]);
    assert!(opened.is_err(), "opened a channel through a symlink");
    assert!(inspected.is_err(), "inspected a channel through a symlink");
}

#[test]
fn bad_names_are_refused_with_the_reason() {
    let too_long = "x".repeat(249);
    let cases: [(&str, &str); 8] = [
        ("", "empty"),
        ("a/b", "/"),
        ("/", "/"),
        ("..", ".."),
        (".", "."),
        ("a\0b", "\\0"),
        ("line\nbreak", "\\n"),
        (&too_long, "248"),
    ];
    for (name, why) in cases {
        let check = |e: OpenError| match e.kind() {
            OpenErrorKind::InvalidName { .. } => {
                assert_says(&e, &["invalid channel name", why]);
            }
            _ => panic!("name {name:?}: expected InvalidName, got {e:?}"),
        };
        check(shmpsc::channel::<u64>(name).unwrap_err());
        check(Builder::new(name).receiver::<u64>().unwrap_err());
        check(Sender::<u64>::open(name).unwrap_err());
        check(shmpsc::inspect(name).unwrap_err());
        check(shmpsc::remove(name).unwrap_err());
    }
    // The longest name that fits the system's limit works.
    let longest = format!("{}-{}", std::process::id(), "y".repeat(248))[..248].to_owned();
    let (tx, rx) = shmpsc::channel::<u64>(&longest).unwrap();
    tx.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(1));
}

// ---------------------------------------------------------- resource limits

/// The largest capacity accepted, which no test machine can reserve.
const HUGE: u64 = 1 << 40;

/// Whether /dev/shm is known to be smaller than [`HUGE`]: on an unlimited
/// tmpfs, reserving it would eat real memory before failing.
fn dev_shm_is_smaller_than_huge() -> bool {
    let fs = nix::sys::statvfs::statvfs("/dev/shm").unwrap();
    let total = fs.blocks() as u64 * fs.fragment_size() as u64;
    if total == 0 || total >= HUGE {
        println!("skipped: /dev/shm has no limit below 1 TiB (size {total})");
        return false;
    }
    true
}

#[test]
fn unreservable_capacity_fails_at_creation_naming_dev_shm() {
    if !dev_shm_is_smaller_than_huge() {
        return;
    }
    let name = unique_name("huge");
    let created = Builder::new(&name)
        .capacity(HUGE)
        .max_message_size(1 << 20)
        .create::<u64>();
    match created {
        Err(e) if matches!(e.kind(), OpenErrorKind::Io { .. }) => {
            assert_helpful(&e, &name, &["/dev/shm"]);
            assert_says(&e, &["Builder::capacity"]);
            let source = std::error::Error::source(&e).expect("the OS error");
            println!("{e} (source: {source})");
        }
        Err(other) => panic!("expected OpenError::Io, got {other:?}"),
        Ok(_pair) => {
            // Do not touch the memory: dropping only writes the header.
            println!("skipped: 1 TiB could be reserved in /dev/shm here");
            return;
        }
    }
    assert!(
        !Path::new(&shm_path(&name)).exists(),
        "the failed segment was left behind"
    );
}

#[test]
fn largest_capacity_is_accepted_with_the_default_message_size() {
    if !dev_shm_is_smaller_than_huge() {
        return;
    }
    let name = unique_name("huge-default");
    match Builder::new(&name).capacity(HUGE).create::<u64>() {
        // Accepted, then refused for want of memory.
        Err(e) if matches!(e.kind(), OpenErrorKind::Io { .. }) => {}
        Err(other) => panic!("capacity {HUGE} is documented as accepted, but: {other}"),
        Ok(_pair) => println!("1 TiB could be reserved in /dev/shm here"),
    }
}

#[test]
fn full_dev_shm_fails_creation_cleanly() {
    run_child_role(run_role);
    let name = unique_name("full");
    let mut child = Spawn::new(
        "full_dev_shm_fails_creation_cleanly",
        "small_dev_shm",
        &name,
    )
    .spawn();
    let outcome = child.expect_event("outcome");
    if let Some(why) = outcome.strip_prefix("skip ") {
        println!("skipped: no private /dev/shm: {why}");
        return;
    }
    let data = outcome.strip_prefix("refused ").expect(&outcome);
    println!("{data}");
    assert_helpful(&data, &name, &["/dev/shm"]);
    assert_says(&data, &["Builder::capacity", "No space left"]);
    child.expect_event("filled");
    child.wait_success();
}

#[test]
fn sparse_segment_taken_over_does_not_sigbus() {
    run_child_role(run_role);
    let name = unique_name("sparse");
    let mut spawn = Spawn::new(
        "sparse_segment_taken_over_does_not_sigbus",
        "sparse_takeover",
        &name,
    );
    spawn.command().arg("--include-ignored");
    let mut child = spawn.spawn();
    let outcome = child.expect_event("outcome");
    if let Some(why) = outcome.strip_prefix("skip ") {
        println!("skipped: no private /dev/shm: {why}");
        return;
    }
    if let Some(e) = outcome.strip_prefix("refused ") {
        assert_says(&e, &["/dev/shm", "reserving memory"]);
        println!("the receiver refused the segment: {e}");
    } else {
        assert_eq!(outcome, "taken");
        let r = child.expect_event("survived");
        println!("the receiver survived with {r}");
    }
    child.wait_success();
}

#[test]
fn out_of_range_settings_are_refused_up_front() {
    type Setting = fn(Builder) -> Builder;
    let cases: [(Setting, &[&str]); 9] = [
        (|b| b.capacity(1 << 41), &["capacity", "1099511627776"]),
        (|b| b.capacity(u64::MAX), &["capacity"]),
        (|b| b.capacity(0), &["capacity"]),
        (|b| b.capacity(2048), &["capacity", "4096"]),
        (|b| b.capacity(5000), &["capacity", "power of two"]),
        (|b| b.max_message_size(0), &["maximum message size"]),
        (
            |b| b.capacity(4096).max_message_size(4096),
            &["maximum message size", "4088"],
        ),
        (|b| b.max_senders(0), &["number of senders"]),
        (|b| b.max_senders(4097), &["number of senders", "4096"]),
    ];
    for (i, (setting, parts)) in cases.into_iter().enumerate() {
        let name = unique_name("settings");
        let e = setting(Builder::new(&name)).create::<u64>().unwrap_err();
        assert!(
            matches!(e.kind(), OpenErrorKind::InvalidConfig { .. }),
            "case {i}: expected InvalidConfig, got {e:?}"
        );
        assert_helpful(&e, &name, parts);
        assert_says(&e, &["invalid settings"]);
        assert_says(&e, parts);
        // Refused before anything was created.
        assert!(!Path::new(&shm_path(&name)).exists(), "case {i}");
    }
}

#[test]
fn too_many_senders_is_a_clear_error_and_a_slot_frees_on_drop() {
    let name = unique_name("slots");
    let (tx1, rx) = Builder::new(&name).max_senders(2).create::<u64>().unwrap();
    let tx2 = Sender::<u64>::open(&name).unwrap();
    match Sender::<u64>::open(&name) {
        Err(e) if matches!(e.kind(), OpenErrorKind::TooManySenders { max: 2, .. }) => {
            assert_helpful(&e, &name, &["Builder::max_senders"]);
            assert_says(&e, &["2"]);
        }
        other => panic!("expected TooManySenders, got {other:?}"),
    }
    assert!(matches!(
        rx.sender().map_err(OpenError::into_kind),
        Err(OpenErrorKind::TooManySenders { max: 2, .. })
    ));
    drop(tx2);
    let tx3 = Sender::<u64>::open(&name).expect("the dropped sender's slot");
    tx3.send(3).unwrap();
    tx1.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(3));
    assert_eq!(rx.recv(), Ok(1));
}

#[test]
fn oversized_message_is_rejected_before_anything_is_written() {
    let name = unique_name("too-large");
    let (tx, rx) = Builder::new(&name)
        .max_message_size(64)
        .create::<Vec<u8>>()
        .unwrap();
    let big = vec![9u8; 100];
    let check = |r: Rejection| {
        match &r {
            Rejection::TooLarge { size, max } => {
                assert!(*size > 100, "{r:?}");
                assert_eq!(*max, 64);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_says(&r, &["64", "Builder::max_message_size"]);
    };
    match tx.send(big.clone()) {
        Err(SendError::Rejected(back, r)) => {
            assert_eq!(back, big, "the message comes back");
            check(r);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    match tx.try_send(big.clone()) {
        Err(e @ TrySendError::Rejected(..)) => check(e.rejection().unwrap().clone()),
        other => panic!("expected Rejected, got {other:?}"),
    }
    match tx.send_timeout(big.clone(), GUARD) {
        Err(e @ SendTimeoutError::Rejected(..)) => {
            assert_says(&e, &["Builder::max_message_size"]);
            check(e.rejection().unwrap().clone());
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    match tx.send_bytes(&[0; 65]) {
        Err(SendError::Rejected(_, Rejection::TooLarge { size: 65, max: 64 })) => {}
        other => panic!("expected Rejected, got {other:?}"),
    }
    // Nothing was written.
    let info = shmpsc::inspect(&name).unwrap();
    assert_eq!((info.used, info.sent_messages), (0, 0));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    // The channel works on, up to the exact maximum.
    tx.send_bytes(&[7; 64]).unwrap();
    assert_eq!(rx.recv_bytes_with(|b| b.len()), Ok(64));
    tx.send(vec![1, 2, 3]).unwrap();
    assert_eq!(rx.recv(), Ok(vec![1, 2, 3]));
}

/// A message type whose encoding always fails.
#[derive(Debug, PartialEq)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

impl<'de> serde::Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| Unencodable)
    }
}

#[test]
fn unencodable_message_is_rejected_and_the_channel_works_on() {
    let name = unique_name("encode");
    let (tx, rx) = shmpsc::channel::<Unencodable>(&name).unwrap();
    match tx.send(Unencodable) {
        Err(SendError::Rejected(Unencodable, r @ Rejection::Encode(_))) => {
            // postcard drops the words of a custom error; its kind stays.
            assert_says(&r, &["could not be encoded", "postcard"]);
            let Rejection::Encode(e) = r else {
                unreachable!()
            };
            assert_eq!(e.kind(), CodecErrorKind::Custom);
        }
        other => panic!("expected Rejected(Encode), got {other:?}"),
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send_encoded_bytes(&[]).unwrap(); // `()` encodes to nothing
    assert_eq!(rx.recv(), Ok(Unencodable));
}

/// Encodings of a `String`, in every codec of this build, whose length
/// prefix promises far more bytes than the record holds: any sender can
/// send them.
fn hostile_length_prefixes() -> Vec<(Codec, Vec<u8>)> {
    let codecs = [
        Codec::Postcard,
        #[cfg(feature = "bincode")]
        Codec::Bincode,
    ];
    let mut cases = Vec::new();
    for codec in codecs {
        for len in [1u64 << 40, 1 << 62, u64::MAX] {
            let mut b = Vec::new();
            match codec {
                #[cfg(feature = "bincode")]
                Codec::Bincode => {
                    b.push(0xFD); // a u64 follows
                    b.extend_from_slice(&len.to_le_bytes());
                }
                // postcard: a varint, 7 bits a byte, low bits first.
                _ => {
                    let mut v = len;
                    while v >= 0x80 {
                        b.push(v as u8 | 0x80);
                        v >>= 7;
                    }
                    b.push(v as u8);
                }
            }
            b.extend_from_slice(b"abc");
            cases.push((codec, b));
        }
    }
    cases
}

#[test]
fn hostile_length_prefix_is_invalid_not_an_abort() {
    run_child_role(run_role);
    // The receiver runs in a child: an abort is an exit status here.
    let name = unique_name("hostile");
    let mut spawn = Spawn::new(
        "hostile_length_prefix_is_invalid_not_an_abort",
        "hostile_lengths",
        &name,
    );
    // This test is ignored while the bug stands: the child must run it too.
    spawn.command().arg("--include-ignored");
    let mut child = spawn.spawn();
    for i in 0..hostile_length_prefixes().len() {
        assert_eq!(child.expect_event("survived"), i.to_string());
    }
    child.expect_event("done");
    child.wait_success();
}

// ---------------------------------------------------------- damaged header

/// Damages one header word of a channel whose receiver is alive, checks
/// what `Sender::open` (and `inspect`) say, then restores the word and
/// checks that the channel opens again.
fn damaged_live_header(
    label: &str,
    off: usize,
    value: impl Fn(u64) -> u64,
    check: impl Fn(&str, OpenError),
) {
    let name = unique_name(label);
    let (tx, rx) = shmpsc::channel::<u64>(&name).unwrap();
    let raw = Raw::open(&name);
    let before = raw.u64(off);
    raw.set_u64(off, value(before));
    check(&name, Sender::<u64>::open(&name).unwrap_err());
    raw.set_u64(off, before);
    let tx2 = Sender::<u64>::open(&name).expect("open after the header was restored");
    tx2.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.recv(), Ok(2));
}

#[test]
fn overwritten_magic_is_refused_as_corrupt() {
    damaged_live_header(
        "magic",
        raw::MAGIC,
        |_| u64::from_le_bytes(*b"NOTSHMPS"),
        |name, e| {
            assert!(matches!(e.kind(), OpenErrorKind::Corrupt { .. }), "{e:?}");
            assert_helpful(&e, name, &["shmpsc::remove"]);
            assert_says(&e, &["magic"]);
            let inspected = shmpsc::inspect(name).unwrap_err();
            assert!(
                matches!(inspected.kind(), OpenErrorKind::Corrupt { .. }),
                "{inspected:?}"
            );
        },
    );
}

#[test]
fn other_layout_version_is_refused_as_incompatible() {
    // The version is the 32 bits after the magic; the state word follows.
    damaged_live_header(
        "version",
        raw::VERSION,
        |word| (word & !0xFFFF_FFFF) | 99,
        |name, e| {
            match e.kind() {
                OpenErrorKind::IncompatibleVersion {
                    found: 99,
                    supported: 4,
                } => {}
                other => panic!("expected IncompatibleVersion, got {other:?}"),
            }
            assert_helpful(&e, name, &["same shmpsc version"]);
            assert_says(&e, &["99", "4"]);
        },
    );
}

#[test]
fn other_fingerprint_is_refused_as_another_type() {
    damaged_live_header(
        "fingerprint",
        raw::FINGERPRINT,
        |f| f ^ 1,
        |name, e| {
            match e.kind() {
                // Both sides' fingerprints: the segment's is this one's, flipped.
                OpenErrorKind::TypeMismatch {
                    type_name: "u64",
                    expected,
                    found,
                    ..
                } => assert_eq!(*found, expected ^ 1, "{e:?}"),
                _ => panic!("expected TypeMismatch, got {e:?}"),
            }
            assert_helpful(&e, name, &["u64"]);
            assert_says(&e, &["type"]);
        },
    );
}

#[test]
fn unready_header_is_refused_as_not_ready() {
    // With the receiver alive, open waits up to a second for its creator.
    damaged_live_header(
        "state",
        raw::VERSION,
        |word| word & 0xFFFF_FFFF,
        |name, e| {
            assert!(matches!(e.kind(), OpenErrorKind::NotReady), "{e:?}");
            assert_helpful(&e, name, &["retry", "create it again"]);
        },
    );
}

#[test]
fn damaged_geometry_of_a_dead_receivers_channel_is_corrupt_and_removable() {
    run_child_role(run_role);
    let test = "damaged_geometry_of_a_dead_receivers_channel_is_corrupt_and_removable";
    /// What is damaged, where, how, and what the error must say.
    type Case = (&'static str, usize, fn(u64) -> u64, &'static str);
    let cases: [Case; 8] = [
        ("capacity", raw::CAPACITY, |c| c + 1, "capacity"),
        ("huge-capacity", raw::CAPACITY, |_| u64::MAX, "capacity"),
        (
            "max-message",
            raw::MAX_MESSAGE,
            |_| 0,
            "maximum message size",
        ),
        // max_senders shares its word with the creator's pid.
        (
            "max-senders",
            raw::MAX_SENDERS,
            |w| w & !0xFFFF_FFFF,
            "senders",
        ),
        ("segment-len", raw::SEGMENT_LEN, |l| l + 8, "bytes"),
        ("head", raw::HEAD, |_| 3, "consumer cursor"),
        // Aligned, but where no channel gets: arithmetic on it would wrap.
        (
            "head-at-the-end",
            raw::HEAD,
            |_| u64::MAX - 7,
            "consumer cursor",
        ),
        (
            "delivered-at-the-end",
            raw::DELIVERED,
            |_| u64::MAX - 7,
            "delivered cursor",
        ),
    ];
    for (label, off, damage, what) in cases {
        let name = common::dead_receiver_channel(test, label);
        let raw = Raw::open(&name);
        raw.set_u64(off, damage(raw.u64(off)));
        drop(raw);
        // A new receiver (taking the channel over) is refused, and says how
        // to get out of it.
        let e = Builder::new(&name).receiver::<u64>().unwrap_err();
        assert!(
            matches!(e.kind(), OpenErrorKind::Corrupt { .. }),
            "{label}: {e:?}"
        );
        assert_helpful(&e, &name, &["shmpsc::remove"]);
        assert_says(&e, &[what]);
        if off != raw::HEAD && off != raw::DELIVERED {
            // Senders and inspection read the same header.
            let e = Sender::<u64>::open(&name).unwrap_err();
            assert!(
                matches!(e.kind(), OpenErrorKind::Corrupt { .. }),
                "{label}: {e:?}"
            );
            let e = shmpsc::inspect(&name).unwrap_err();
            assert!(
                matches!(e.kind(), OpenErrorKind::Corrupt { .. }),
                "{label}: {e:?}"
            );
        }
        // Following the advice works. (Our failed receiver's descriptor may
        // live on for a moment in a child that another test thread is
        // forking: until it execs, the child holds the lock too.)
        remove_when_unused(&name);
        let (tx, rx) = shmpsc::channel::<u64>(&name).unwrap();
        assert!(!rx.was_taken_over());
        tx.send(5).unwrap();
        assert_eq!(rx.recv(), Ok(5));
    }
}

#[test]
fn truncated_segment_is_corrupt() {
    run_child_role(run_role);
    let name = common::dead_receiver_channel("truncated_segment_is_corrupt", "truncated");
    let file = fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    file.set_len(100).unwrap();
    let e = Sender::<u64>::open(&name).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            OpenErrorKind::Corrupt { .. } | OpenErrorKind::NotReady
        ),
        "{e:?}"
    );
    assert_helpful(&e, &name, &["remove", "create it again"]);
    // Creating the channel again sets it up anew.
    let (tx, rx) = shmpsc::channel::<u64>(&name).unwrap();
    tx.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(1));
    drop((tx, rx));
    // Or `remove` takes it: unused, and a corrupt segment holds nothing a
    // receiver could get (a channel being created has no name until it is
    // ready, so this cannot be one).
    let name = common::dead_receiver_channel("truncated_segment_is_corrupt", "truncated-rm");
    fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap()
        .set_len(100)
        .unwrap();
    shmpsc::remove(&name).unwrap();
    assert!(!Path::new(&shm_path(&name)).exists());
}

// --------------------------------------------- every error's message

#[test]
fn not_found_says_to_start_the_receiver() {
    let name = unique_name("missing");
    let e = Sender::<u64>::open(&name).unwrap_err();
    assert!(matches!(e.kind(), OpenErrorKind::NotFound), "{e:?}");
    assert_helpful(&e, &name, &["receiver running"]);
    let e = shmpsc::inspect(&name).unwrap_err();
    assert!(matches!(e.kind(), OpenErrorKind::NotFound), "{e:?}");
}

#[test]
fn already_exists_says_to_pick_another_name() {
    let name = unique_name("twice");
    let (_tx, _rx) = shmpsc::channel::<u64>(&name).unwrap();
    let e = shmpsc::channel::<u64>(&name).unwrap_err();
    assert!(matches!(e.kind(), OpenErrorKind::AlreadyExists), "{e:?}");
    assert_helpful(&e, &name, &["another name"]);
}

#[test]
fn type_mismatch_names_the_type() {
    let name = unique_name("types");
    let (_tx, _rx) = shmpsc::channel::<u64>(&name).unwrap();
    let e = Sender::<String>::open(&name).unwrap_err();
    assert!(
        matches!(e.kind(), OpenErrorKind::TypeMismatch { .. }),
        "{e:?}"
    );
    assert_helpful(&e, &name, &["String"]);
    assert_says(
        &e,
        &[
            "carries `u64`",
            "open it with the receiver's message type",
            "Builder::codec",
            "Builder::schema",
        ],
    );
}

#[test]
fn receiver_gone_says_to_start_it_again() {
    run_child_role(run_role);
    let name = common::dead_receiver_channel("receiver_gone_says_to_start_it_again", "gone");
    let e = Sender::<u64>::open(&name).unwrap_err();
    assert!(matches!(e.kind(), OpenErrorKind::ReceiverGone), "{e:?}");
    assert_helpful(&e, &name, &["start the receiver"]);
    // A new receiver takes the channel over.
    let rx = Builder::new(&name).receiver::<u64>().unwrap();
    assert!(rx.was_taken_over());
    let tx = Sender::<u64>::open(&name).unwrap();
    tx.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(1));
}

#[test]
fn in_use_says_to_stop_the_users() {
    let name = unique_name("in-use");
    let (_tx, _rx) = shmpsc::channel::<u64>(&name).unwrap();
    let e = shmpsc::remove(&name).unwrap_err();
    assert!(matches!(e.kind(), OpenErrorKind::InUse { .. }), "{e:?}");
    assert_helpful(&e, &name, &["stop"]);
}

#[test]
fn send_and_receive_errors_say_what_happened() {
    let name = unique_name("texts");
    let (tx, rx) = Builder::new(&name)
        .capacity(4096)
        .create::<Vec<u8>>()
        .unwrap();
    // Empty and timed out.
    let e = rx.try_recv().unwrap_err();
    assert_eq!(e, TryRecvError::Empty);
    assert_says(&e, &["empty"]);
    let e = rx.recv_timeout(Duration::from_millis(1)).unwrap_err();
    assert_eq!(e, RecvTimeoutError::Timeout);
    assert_says(&e, &["timed out"]);
    // Full and timed out.
    while tx.try_send(vec![0; 900]).is_ok() {}
    let e = tx.try_send(vec![0; 900]).unwrap_err();
    assert!(e.is_full(), "{e:?}");
    assert_says(&e, &["full"]);
    let e = tx
        .send_timeout(vec![0; 900], Duration::from_millis(1))
        .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert_says(&e, &["timed out", "room"]);
    // Disconnected, both ways.
    drop(tx);
    while rx.try_recv().is_ok() {}
    let e = rx.recv().unwrap_err();
    assert_eq!(e, RecvError::Disconnected);
    assert_says(&e, &["disconnected", "sender"]);
    let e = rx.try_recv().unwrap_err();
    assert_says(&e, &["disconnected", "sender"]);
    let e = rx.recv_timeout(GUARD).unwrap_err();
    assert_says(&e, &["disconnected", "sender"]);
    let tx = rx.sender().unwrap();
    drop(rx);
    let e = tx.send(vec![1]).unwrap_err();
    assert!(e.is_disconnected());
    assert_says(&e, &["disconnected", "receiver"]);
    assert_eq!(e.into_inner(), vec![1], "the message comes back");
    let e = tx.try_send(vec![2]).unwrap_err();
    assert_says(&e, &["disconnected", "receiver"]);
    let e = tx.send_timeout(vec![3], GUARD).unwrap_err();
    assert_says(&e, &["disconnected", "receiver"]);
}
