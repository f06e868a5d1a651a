//! What another process, or another local user, can do to a channel by
//! racing or planting objects in /dev/shm (issue 11): removal that only
//! ever removes the object it checked, endpoints reopened by identity,
//! headers read without mapping, senders that trust only their own user's
//! segments, creation that is published atomically, and a gc that skips
//! what it must leave alone. README.md, "Security", cites these tests.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    channel_name, emit, other_user, param, run_child_role, unique_name, wait_for_stdin_eof, Spawn,
};
use nix::sys::signal::Signal;
use shmpsc::{Builder, OpenError, OpenErrorKind, Sender};

const GUARD: Duration = common::HANG_GUARD;

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        // Creates the channel as its receiver, stays until stdin closes.
        "idle_receiver" => {
            let _rx = Builder::new(&name).receiver::<u64>().expect("create");
            emit("ready");
            wait_for_stdin_eof();
        }
        // Creates the channel (mode 0666); on "go", reports the first
        // message (a receiver with no sender yet is disconnected before).
        "squatter" => {
            let rx = Builder::new(&name)
                .mode(0o666)
                .receiver::<u64>()
                .expect("create");
            emit("ready");
            assert_eq!(common::read_line(), "go");
            match rx.recv_timeout(GUARD) {
                Ok(v) => emit(format!("got {v}")),
                Err(e) => emit(format!("nothing {e}")),
            }
        }
        // Creates (with a hook that may stop it inside `create`), reports,
        // then on "go" receives one message and reports it.
        "creator" => match Builder::new(&name).receiver::<u64>() {
            Ok(rx) => {
                emit(format!("ready {}", rx.was_taken_over()));
                assert_eq!(common::read_line(), "go");
                match rx.recv_timeout(GUARD) {
                    Ok(v) => emit(format!("got {v}")),
                    Err(e) => emit(format!("nothing {e}")),
                }
            }
            Err(e) => emit(format!("ready failed {e}")),
        },
        // Runs `shmpsc::remove` (with the hook the parent set) and reports.
        "remove" => emit(format!("result {:?}", shmpsc::remove(&name))),
        // Runs one operation on a planted object (with the hook the parent
        // set) and reports the outcome.
        "victim" => {
            let op: String = param("op");
            let outcome = match op.as_str() {
                "inspect" => format!("{:?}", shmpsc::inspect(&name).map(|_| ())),
                "remove" => format!("{:?}", shmpsc::remove(&name)),
                "open" => format!("{:?}", Sender::<u64>::open(&name).map(|_| ())),
                other => panic!("unknown op {other}"),
            };
            emit(format!("result {outcome}"));
        }
        "private_gc" => private_gc(&name),
        other => panic!("unknown role {other:?}"),
    }
}

fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmpsc.{name}")
}

// ------------------------------------------------------------ item 1

/// `remove` opens the object of a live channel, and stops; the receiver is
/// dropped (which removes the name) and a new receiver creates the channel
/// again; then `remove` goes on. It must not remove the new channel: the
/// object it locks and finds unused is no longer the one the name refers to.
#[test]
fn remove_never_unlinks_a_channel_created_after_it_looked() {
    run_child_role(run_role);
    let test = "remove_never_unlinks_a_channel_created_after_it_looked";
    let name = unique_name("rm-new");
    let old = Builder::new(&name).receiver::<u64>().unwrap();
    let mut remover = Spawn::new(test, "remove", &name);
    remover
        .command()
        .env("SHMPSC_TEST_HOOK", "remove-opened:1:stop");
    let mut remover = remover.spawn();
    remover.wait_until_stopped();
    drop(old);
    let new = Builder::new(&name).receiver::<u64>().unwrap();
    remover.signal(Signal::SIGCONT);
    let result = remover.expect_event("result");
    remover.wait_success();
    assert!(
        !result.starts_with("Ok"),
        "remove reported removing a channel whose receiver is alive: {result}"
    );
    match Builder::new(&name).receiver::<u64>() {
        Err(e) if matches!(e.kind(), OpenErrorKind::AlreadyExists) => {}
        other => panic!("a second receiver on {name} (remove said {result}): {other:?}"),
    }
    let tx = Sender::<u64>::open(&name).expect("the live receiver is reachable by name");
    tx.send(7).unwrap();
    assert_eq!(new.recv_timeout(GUARD), Ok(7));
}

/// A receiver whose name was taken from it (removed, and a new channel
/// created under it) makes senders for itself, not for the name's new
/// owner: `Receiver::sender` and `Sender::pass_to` reopen the endpoint's
/// own object.
#[test]
fn a_receivers_senders_reach_that_receiver_even_after_its_name_was_taken() {
    let name = unique_name("own-sender");
    let (tx1, rx1) = shmpsc::channel::<u64>(&name).unwrap();
    let own_ino = fs::metadata(shm_path(&name)).unwrap().ino();
    // Another process removed the name (as an `rm` racing a restart did).
    fs::remove_file(shm_path(&name)).unwrap();
    let rx2 = Builder::new(&name).receiver::<u64>().unwrap();
    let from_rx = rx1.sender().expect("rx1.sender()");
    from_rx.send(1).unwrap();
    assert_eq!(rx1.try_recv(), Ok(1), "rx1.sender() did not reach rx1");
    assert!(rx2.try_recv().is_err(), "rx1.sender() delivered to rx2");
    // pass_to passes a descriptor of the sender's own object (its
    // variable names the object's inode).
    let mut cmd = std::process::Command::new("/bin/true");
    tx1.pass_to(&mut cmd).unwrap();
    let var = cmd
        .get_envs()
        .find_map(|(k, v)| {
            k.to_str()
                .filter(|k| k.starts_with("SHMPSC_SENDER_"))
                .and(v)
        })
        .expect("pass_to sets its variable")
        .to_str()
        .unwrap()
        .to_owned();
    let ino: u64 = var.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        ino, own_ino,
        "pass_to passes another object than tx1's: {var}"
    );
}

// ------------------------------------------------------------ item 2

/// Another user's world-writable object is truncated to nothing at the
/// moment a root process reads its header (stopped there by a hook,
/// standing in for a truncating loop that wins the race): `inspect`,
/// `remove` and `Sender::open` report an error, none dies of SIGBUS.
#[test]
fn truncating_another_users_object_cannot_kill_inspect_remove_or_open() {
    run_child_role(run_role);
    let test = "truncating_another_users_object_cannot_kill_inspect_remove_or_open";
    let Ok((uid, gid)) = other_user() else {
        println!("skipped: cannot hand a file to another user here");
        return;
    };
    for op in ["inspect", "remove", "open"] {
        let name = unique_name(&format!("trunc-{op}"));
        let path = shm_path(&name);
        let file = fs::File::create(&path).unwrap();
        file.set_len(1 << 16).unwrap();
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let mut victim = Spawn::new(test, "victim", &name).param("op", op);
        victim
            .command()
            .env("SHMPSC_TEST_HOOK", "header-read:1:stop");
        let mut victim = victim.spawn();
        if victim.wait_until_stopped_or_exited() {
            // What the other user's loop does: truncate under the reader.
            file.set_len(0).unwrap();
            victim.signal(Signal::SIGCONT);
        }
        let status = victim.wait();
        let _ = fs::remove_file(&path);
        assert_ne!(
            status.signal(),
            Some(nix::libc::SIGBUS),
            "{op} died of SIGBUS on another user's truncated object"
        );
        let result = victim.expect_event("result");
        println!("{op}: {result}");
        assert!(status.success(), "{op}: {status}");
        // `remove` needs no header: it may remove the unused object.
        if op != "remove" {
            assert!(result.starts_with("Err"), "{op}: {result}");
        }
    }
}

// ------------------------------------------------------------ item 3

/// Another user creates a world-writable channel under the name of a
/// channel whose receiver is down; this user's sender refuses it by
/// default (it would hand its messages to that user).
#[test]
fn a_sender_refuses_a_channel_squatted_by_another_user() {
    run_child_role(run_role);
    let test = "a_sender_refuses_a_channel_squatted_by_another_user";
    let (uid, gid) = match other_user() {
        Ok(ids) => ids,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let name = unique_name("squat");
    let mut spawn = Spawn::new(test, "squatter", &name);
    spawn.command().uid(uid).gid(gid);
    let mut squatter = spawn.spawn();
    squatter.expect_event("ready");
    match Sender::<u64>::open(&name) {
        Err(e) if matches!(e.kind(), OpenErrorKind::Untrusted { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&name), "{text}");
            assert!(text.contains(&uid.to_string()), "{text}");
            assert!(text.contains("trust_owner"), "{text}");
        }
        Ok(tx) => {
            let _ = tx.send(666);
            panic!("a sender attached to user {uid}'s channel");
        }
        Err(e) => panic!("expected Untrusted, got {e:?}"),
    }
    // Trusting that owner explicitly is allowed.
    let tx = Builder::new(&name)
        .trust_owner(uid)
        .open_sender::<u64>()
        .expect("open with trust_owner");
    tx.send(5).unwrap();
    squatter.send_line("go");
    assert_eq!(squatter.expect_event("got"), "5");
    squatter.wait_success();
}

// ------------------------------------------------------------ item 5

/// A receiver taking over a dead channel while `remove` holds its lock
/// waits for the removal (a bounded retry budget, never for ever: another
/// program could hold the lock) instead of reporting `AlreadyExists`. If
/// the budget runs out first (a slow machine), the error says a removal
/// holds the channel and to try again, and trying again succeeds.
#[test]
fn create_waits_for_a_remover_instead_of_reporting_already_exists() {
    run_child_role(run_role);
    let test = "create_waits_for_a_remover_instead_of_reporting_already_exists";
    let name = common::dead_receiver_channel(test, "rm-wait");
    let mut remover = Spawn::new(test, "remove", &name);
    remover
        .command()
        .env("SHMPSC_TEST_HOOK", "remove-checked:1:stop");
    let mut remover = remover.spawn();
    remover.wait_until_stopped();
    let done = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let creator = {
        let (name, done) = (name.clone(), done.clone());
        std::thread::spawn(move || {
            tid_tx.send(common::current_tid()).unwrap();
            let r = Builder::new(&name).receiver::<u64>();
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    let tid = tid_rx.recv().unwrap();
    // Until the creator has either returned or gone to sleep in the kernel
    // (waiting for the remover's lock).
    let stat = format!("/proc/self/task/{tid}/stat");
    let deadline = std::time::Instant::now() + GUARD;
    while !done.load(Ordering::SeqCst) {
        let s = fs::read_to_string(&stat).unwrap_or_default();
        if s.rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next())
            == Some('S')
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "hang guard");
        std::thread::yield_now();
    }
    remover.signal(Signal::SIGCONT);
    let removed = remover.expect_event("result");
    remover.wait_success();
    let rx = match creator.join().unwrap() {
        Ok(rx) => rx,
        Err(e)
            if matches!(e.kind(), OpenErrorKind::Io { .. })
                && e.to_string().contains("try again") =>
        {
            // The removal is over now: trying again must work.
            Builder::new(&name)
                .receiver::<u64>()
                .unwrap_or_else(|e| panic!("create after remove ran ({removed}): {e:?}"))
        }
        Err(e) => panic!("create failed while remove ran ({removed}): {e:?}"),
    };
    let tx = Sender::<u64>::open(&name).expect("reachable by name");
    tx.send(3).unwrap();
    assert_eq!(rx.recv_timeout(GUARD), Ok(3));
}

/// A program (here, this test) holds the receiver byte and the remover byte
/// of an unused channel of this user, as a remover does, but for as long as
/// it likes. `remove` and a receiver's creation must not wait for it
/// without a bound: each returns an error that says a removal or another
/// program holds the lock and to try again; once the lock is released,
/// `remove` removes the channel.
#[test]
fn a_remover_lock_held_for_ever_is_reported_not_waited_for() {
    run_child_role(run_role);
    let test = "a_remover_lock_held_for_ever_is_reported_not_waited_for";
    let name = common::dead_receiver_channel(test, "rm-held");
    let holder = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    // `REMOVER_LOCK_BYTE` of src/layout.rs: `1 + MAX_SENDERS`.
    for byte in [0, 1 + 4096] {
        common::ofd_lock(&holder, libc::F_WRLCK, byte, 1).unwrap();
    }
    let bounded = |what: &'static str, f: Box<dyn FnOnce() -> String + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || tx.send(f()).unwrap());
        let r = rx
            .recv_timeout(GUARD)
            .unwrap_or_else(|_| panic!("hang guard: {what} waited for the held lock"));
        t.join().unwrap();
        r
    };
    let removed = {
        let name = name.clone();
        bounded(
            "remove",
            Box::new(move || match shmpsc::remove(&name) {
                Err(e) if matches!(e.kind(), OpenErrorKind::Io { .. }) => e.to_string(),
                other => format!("unexpected: {other:?}"),
            }),
        )
    };
    assert!(
        removed.contains("remover lock is held") && removed.contains("try again"),
        "remove: {removed}"
    );
    let created = {
        let name = name.clone();
        bounded(
            "create",
            Box::new(move || match Builder::new(&name).receiver::<u64>() {
                Err(e) if matches!(e.kind(), OpenErrorKind::Io { .. }) => e.to_string(),
                other => format!("unexpected: {:?}", other.map(|_| ())),
            }),
        )
    };
    assert!(
        created.contains("being removed") && created.contains("try again"),
        "create: {created}"
    );
    drop(holder);
    shmpsc::remove(&name).expect("removed once the lock is released");
    assert!(!std::path::Path::new(&shm_path(&name)).exists());
}

// ------------------------------------------------------------ item 7

/// A creator stopped inside `create`, before its segment is ready: senders
/// see no half-made channel (no `NotReady`), `remove` and `list` do not see
/// it at all, and once the creator goes on the channel works.
#[test]
fn a_channel_being_created_is_invisible_until_ready() {
    run_child_role(run_role);
    let test = "a_channel_being_created_is_invisible_until_ready";
    let name = unique_name("being-created");
    let mut creator = Spawn::new(test, "creator", &name);
    creator.command().env("SHMPSC_TEST_HOOK", "created:1:stop");
    let mut creator = creator.spawn();
    creator.wait_until_stopped();
    match Sender::<u64>::open(&name) {
        Err(e) if matches!(e.kind(), OpenErrorKind::NotFound) => {}
        Err(e) => panic!("a sender saw a channel being created: {e:?}"),
        Ok(_) => panic!("attached to a channel being created"),
    }
    assert!(
        !shmpsc::list().unwrap().contains(&name),
        "a half-made channel is listed"
    );
    assert!(matches!(
        shmpsc::remove(&name).map_err(OpenError::into_kind),
        Err(OpenErrorKind::NotFound)
    ));
    creator.signal(Signal::SIGCONT);
    assert_eq!(creator.expect_event("ready"), "false");
    let tx = Sender::<u64>::open(&name).unwrap();
    tx.send(11).unwrap();
    creator.send_line("go");
    assert_eq!(creator.expect_event("got"), "11");
    creator.wait_success();
}

// ------------------------------------------------------- items 6 and 10

/// An unused leftover (an empty object, as a creator that died leaves on a
/// system without O_TMPFILE), old enough for any rule.
fn plant_leftover(path: &str, owner: Option<(u32, u32)>) {
    let f = fs::File::create(path).unwrap();
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

fn private_gc(_name: &str) {
    if let Err(why) = common::private_dev_shm("16m") {
        emit(format!("a skip {why}"));
        return;
    }
    // Entries that sort before the leftover, each of which stopped the
    // sweep: a symlink, a directory, a name with a control character.
    std::os::unix::fs::symlink("/nonexistent", "/dev/shm/shmpsc.a-link").unwrap();
    fs::create_dir("/dev/shm/shmpsc.b-dir").unwrap();
    plant_leftover("/dev/shm/shmpsc.c\x01ctl", None);
    plant_leftover("/dev/shm/shmpsc.z-stale", None);
    match shmpsc::remove_unused() {
        Ok(removed) => emit(format!("a removed {}", removed.join(","))),
        Err(e) => emit(format!("a failed {e}")),
    }
    #[cfg(feature = "cli")]
    {
        let Ok((uid, gid)) = other_user() else {
            emit("b skip no other user");
            return;
        };
        // As a normal user: another user's channel (which it cannot even
        // open) is skipped, its own leftover is removed, and gc succeeds.
        plant_leftover("/dev/shm/shmpsc.d-root", None);
        plant_leftover("/dev/shm/shmpsc.y-nobody", Some((uid, gid)));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmpsc"))
            .arg("gc")
            .uid(uid)
            .gid(gid)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}|{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .replace('\n', "\\n");
        let gone = !std::path::Path::new("/dev/shm/shmpsc.y-nobody").exists();
        emit(format!(
            "b {} {gone} {text}",
            out.status.code().unwrap_or(-1)
        ));
    }
    #[cfg(not(feature = "cli"))]
    emit("b skip the cli feature is off");
}

#[test]
fn gc_skips_what_it_cannot_remove_and_collects_the_rest() {
    run_child_role(run_role);
    let test = "gc_skips_what_it_cannot_remove_and_collects_the_rest";
    let mut child = Spawn::new(test, "private_gc", "unused").spawn();
    let a = child.expect_event("a");
    if let Some(why) = a.strip_prefix("skip ") {
        println!("skipped: no private /dev/shm: {why}");
        child.wait_success();
        return;
    }
    assert_eq!(a, "removed z-stale", "remove_unused");
    let b = child.expect_event("b");
    child.wait_success();
    if let Some(why) = b.strip_prefix("skip ") {
        println!("gc as another user skipped: {why}");
        return;
    }
    let mut it = b.splitn(3, ' ');
    let (code, gone, text) = (
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap_or(""),
    );
    println!("gc as nobody: exit {code}: {text}");
    assert_eq!(code, "0", "gc as a normal user failed: {text}");
    assert_eq!(gone, "true", "gc left the user's own leftover: {text}");
    assert!(
        text.contains("d-root"),
        "the skipped entry is reported: {text}"
    );
    assert!(text.contains("skipped"), "{text}");
}
