//! Independent review 2: reproducers of defects in creation, takeover,
//! removal, the CLI, `pass_to` and the log sinks. Each test states the
//! promise it checks and the interleaving it forces. Every wait is bounded
//! (a guard, never a timing assertion about speed).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{channel_name, emit, param, run_child_role, unique_name, wait_for_stdin_eof, Spawn};
use nix::sys::signal::Signal;
use shmpsc::{Builder, OpenErrorKind, Sender};

const GUARD: Duration = common::HANG_GUARD;
/// How long a command that should return at once may take before it
/// counts as hung (a guard against hangs only).
const HUNG_AFTER: Duration = Duration::from_secs(10);

/// `REMOVER_LOCK_BYTE` of src/layout.rs (`1 + MAX_SENDERS`).
const REMOVER_BYTE: i64 = 1 + 4096;

fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmpsc.{name}")
}

/// The uid and gid of `nobody`, if this process may switch to them and the
/// test binary can be run by them.
fn other_user() -> Result<(u32, u32), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not running as root".into());
    }
    let user = nix::unistd::User::from_name("nobody")
        .map_err(|e| e.to_string())?
        .ok_or("no user nobody")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut path: Option<&Path> = Some(&exe);
    while let Some(p) = path {
        use std::os::unix::fs::MetadataExt;
        let mode = fs::metadata(p).map_err(|e| e.to_string())?.mode();
        if mode & 0o001 == 0 {
            return Err(format!("{} is not searchable by others", p.display()));
        }
        path = p.parent();
    }
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

/// Runs `cmd` with its output captured; kills it if it has not exited
/// after [`HUNG_AFTER`]. Returns `None` if it hung, else (exit code, output).
#[cfg(feature = "cli")]
fn run_bounded(cmd: &mut Command) -> Option<(i32, String)> {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning");
    let deadline = Instant::now() + HUNG_AFTER;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}|{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .replace('\n', "\\n");
            return Some((status.code().unwrap_or(-1), text));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        // Another user: opens its own object and holds locks on bytes of
        // it (any bytes it likes) until its stdin closes.
        "locker" => {
            let path: String = param("path");
            let bytes: String = param("bytes");
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .expect("the locker opens its own object");
            for b in bytes.split(',') {
                common::ofd_lock(&file, libc::F_WRLCK, b.parse().unwrap(), 1).expect("locking");
            }
            emit("locked");
            wait_for_stdin_eof();
        }
        "private_gc_locked" => private_gc_locked(),
        "remove" => emit(format!("result {:?}", shmpsc::remove(&name))),
        // Opens the sender the parent passed, sends 42, reports.
        "send_passed" => match Sender::<u64>::open(&name) {
            Ok(tx) => emit(format!(
                "result sent {:?}",
                tx.send(42).map_err(|e| e.to_string())
            )),
            Err(e) => emit(format!("result open failed: {e}")),
        },
        other => panic!("unknown role {other:?}"),
    }
}

// ---------------------------------------------------------------- defect 1

/// In a private /dev/shm: another user (nobody) owns `shmpsc.a-squat`
/// (mode 0666, so root's gc opens it as for any other entry) and holds
/// locks on its byte 0 and its remover byte (4097). An unused leftover
/// `shmpsc.z-stale` sorts after it. Runs `shmpsc gc`, `shmpsc rm a-squat`
/// and a receiver creation on `a-squat`, each bounded, and reports.
fn private_gc_locked() {
    if let Err(why) = common::private_dev_shm("16m") {
        emit(format!("gc skip {why}"));
        return;
    }
    let Ok((uid, gid)) = other_user() else {
        emit("gc skip no other user");
        return;
    };
    let squat = "/dev/shm/shmpsc.a-squat";
    let f = fs::File::create(squat).unwrap();
    f.set_len(4096 * 2).unwrap();
    std::os::unix::fs::chown(squat, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(squat, fs::Permissions::from_mode(0o666)).unwrap();
    drop(f);
    let stale = "/dev/shm/shmpsc.z-stale";
    fs::File::create(stale).unwrap();

    let test = "gc_and_create_are_not_hung_by_a_lock_another_user_holds";
    let mut locker = Spawn::new(test, "locker", "a-squat")
        .param("path", squat)
        .param("bytes", format!("0,{REMOVER_BYTE}"));
    locker.command().uid(uid).gid(gid);
    let mut locker = locker.spawn();
    locker.expect_event("locked");

    #[cfg(feature = "cli")]
    {
        let exe = env!("CARGO_BIN_EXE_shmpsc");
        match run_bounded(Command::new(exe).arg("gc")) {
            Some((code, text)) => emit(format!(
                "gc exited {code} stale-removed={} {text}",
                !Path::new(stale).exists()
            )),
            None => emit(format!(
                "gc hung stale-removed={}",
                !Path::new(stale).exists()
            )),
        }
        match run_bounded(Command::new(exe).args(["rm", "a-squat"])) {
            Some((code, text)) => emit(format!("rm exited {code} {text}")),
            None => emit("rm hung"),
        }
    }
    #[cfg(not(feature = "cli"))]
    {
        emit("gc skip the cli feature is off");
        emit("rm skip the cli feature is off");
    }
    // A receiver creating its channel under the squatted name.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = Builder::new("a-squat").receiver::<u64>().map(|_| ());
        let _ = done_tx.send(format!("{r:?}"));
    });
    match done_rx.recv_timeout(HUNG_AFTER) {
        Ok(r) => emit(format!("create returned {r}")),
        Err(_) => emit("create hung"),
    }
    drop(locker);
}

/// Promise: another local user cannot make gc/rm fail for other entries
/// (and error messages say what happened). Another user plants an object
/// of its own under a shmpsc name and holds an open-file-description lock
/// on its remover byte (and on byte 0). `remove_unused`, on failing to
/// lock the range, sees the remover byte locked and waits for it with
/// `F_OFD_SETLKW`, unbounded: `shmpsc gc` (root's included) hangs on that
/// entry and never collects the rest; `shmpsc rm` of it hangs; a receiver
/// created under that name (`lock_refused`) hangs too instead of failing.
#[test]
fn gc_and_create_are_not_hung_by_a_lock_another_user_holds() {
    run_child_role(run_role);
    let test = "gc_and_create_are_not_hung_by_a_lock_another_user_holds";
    let mut child = Spawn::new(test, "private_gc_locked", "unused").spawn();
    let gc = child.expect_event("gc");
    if let Some(why) = gc.strip_prefix("skip ") {
        println!("skipped: {why}");
        child.wait_success();
        return;
    }
    let rm = child.expect_event("rm");
    let create = child.expect_event("create");
    child.wait_success();
    println!("gc: {gc}\nrm: {rm}\ncreate: {create}");
    assert!(
        gc.starts_with("exited 0 stale-removed=true"),
        "shmpsc gc did not collect the other entries: {gc}"
    );
    assert!(!rm.starts_with("hung"), "shmpsc rm hung: {rm}");
    assert!(
        create.starts_with("returned Err"),
        "creating a receiver on the squatted name: {create}"
    );
}

// ---------------------------------------------------------------- defect 2

/// Promise: `Sender::open` of a live channel fails only for the reasons
/// its docs give; errors say what happened. `slot_reset_byte(0)` was
/// `1 + MAX_SENDERS + 0`, the same byte as `REMOVER_LOCK_BYTE` (now the
/// reset bytes start one byte later, layout version 2): a sender
/// taking slot 0 (`peers::acquire`) holds the remover byte for a moment,
/// and `Sender::attach` reads that as "being removed" and returns
/// `ReceiverGone` although the receiver is alive. With `max_senders(1)`
/// every sender takes slot 0; two threads opening and dropping senders
/// hit the window within seconds. (`TooManySenders` is expected here;
/// `ReceiverGone` is not.)
#[test]
fn a_live_channel_is_never_reported_receiver_gone_while_a_sender_takes_slot_0() {
    // Opens per thread (the defect showed within about 17,000 in all).
    const OPENS: u64 = 40_000;
    let name = unique_name("slot0");
    let rx = Builder::new(&name)
        .max_senders(1)
        .receiver::<u64>()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = |stop: Arc<AtomicBool>, name: String| {
        std::thread::spawn(move || {
            let mut gone = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < OPENS {
                n += 1;
                match Sender::<u64>::open(&name) {
                    Ok(tx) => drop(tx),
                    Err(e) if matches!(e.kind(), OpenErrorKind::TooManySenders { .. }) => {}
                    Err(e) if matches!(e.kind(), OpenErrorKind::ReceiverGone) => {
                        gone += 1;
                        stop.store(true, Ordering::Relaxed);
                    }
                    Err(e) => panic!("unexpected: {e}"),
                }
            }
            (gone, n)
        })
    };
    let a = churn(stop.clone(), name.clone());
    let b = churn(stop.clone(), name.clone());
    let (ga, na) = a.join().unwrap();
    let (gb, nb) = b.join().unwrap();
    println!("ReceiverGone {} times in {} opens", ga + gb, na + nb);
    assert_eq!(
        ga + gb,
        0,
        "Sender::open said ReceiverGone on a channel whose receiver is alive"
    );
    drop(rx);
}

// ---------------------------------------------------------------- defect 3

/// Promise (README, "To a sender"): `Sender::pass_to` passes the
/// endpoint's own object, "so they reach their own receiver even after
/// the name was given to another channel". The name is removed (an `rm`
/// racing a restart, as in security.rs) and a new channel created under
/// it before the child opens its passed sender. `open_inherited` checks
/// the descriptor against the object the *name* now refers to, finds
/// another object (`InvalidInput`), and `open_sender` then silently
/// attaches a new sender by name: the child's message goes to the new
/// channel, and the passed slot of the old one stays held by the child.
#[test]
fn a_passed_sender_reaches_its_own_receiver_after_the_name_was_taken() {
    run_child_role(run_role);
    let test = "a_passed_sender_reaches_its_own_receiver_after_the_name_was_taken";
    let name = unique_name("pass-taken");
    let (tx, rx1) = shmpsc::channel::<u64>(&name).unwrap();
    let mut spawn = Spawn::new(test, "send_passed", &name);
    tx.pass_to(spawn.command()).unwrap();
    fs::remove_file(shm_path(&name)).unwrap();
    let rx2 = Builder::new(&name).receiver::<u64>().unwrap();
    let mut child = spawn.spawn();
    let result = child.expect_event("result");
    child.wait_success();
    println!("child: {result}");
    let to_rx1 = rx1.recv_timeout(Duration::from_secs(2));
    let to_rx2 = rx2.try_recv();
    drop(tx);
    assert!(
        to_rx2.is_err(),
        "the passed sender delivered {to_rx2:?} to the channel that took the name \
         (rx1 got {to_rx1:?}; child: {result})"
    );
    assert_eq!(to_rx1, Ok(42), "child: {result}");
}

// ---------------------------------------------------------------- defect 4

/// Promise: rm/gc never take the name of a live channel or of one created
/// after they looked. Another user (nobody) owns an unused object under a
/// name. `remove` locks it and checks the name (stopped there by the
/// `remove-checked` hook, standing in for losing the race); the other
/// user unlinks its own object (sticky /dev/shm lets the owner), which
/// frees the name, and this user's receiver creates its channel under it
/// (`linkat` succeeds, the name is free). Then `remove` unlinks by name:
/// the new, live channel loses its name; its senders get `NotFound`. The
/// README's argument ("no shmpsc process can give the name to another
/// object") misses that a non-shmpsc process only has to *free* the name.
#[test]
fn remove_never_takes_the_name_of_a_channel_created_after_its_check() {
    run_child_role(run_role);
    let test = "remove_never_takes_the_name_of_a_channel_created_after_its_check";
    let Ok((uid, gid)) = other_user() else {
        println!("skipped: no other user");
        return;
    };
    let name = unique_name("rm-swap");
    let path = shm_path(&name);
    let f = fs::File::create(&path).unwrap();
    drop(f);
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    let mut remover = Spawn::new(test, "remove", &name);
    remover
        .command()
        .env("SHMPSC_TEST_HOOK", "remove-checked:1:stop");
    let mut remover = remover.spawn();
    remover.wait_until_stopped();
    // The other user removes its own object.
    let st = Command::new("rm")
        .arg("-f")
        .arg(&path)
        .uid(uid)
        .gid(gid)
        .status()
        .unwrap();
    assert!(st.success(), "the owner could not unlink its own object");
    // This user's receiver creates its channel under the free name.
    let rx = Builder::new(&name).receiver::<u64>().unwrap();
    remover.signal(Signal::SIGCONT);
    let removed = remover.expect_event("result");
    remover.wait_success();
    let opened = Sender::<u64>::open(&name);
    let ok = opened.is_ok();
    if let Ok(tx) = opened {
        tx.send(5).unwrap();
        assert_eq!(rx.recv_timeout(GUARD), Ok(5));
    }
    assert!(
        ok,
        "remove ({removed}) took the name of a live channel created after its check: \
         senders now get {:?}",
        Sender::<u64>::open(&name).err()
    );
}

// ---------------------------------------------------------------- defect 5

/// Promise: no panic on bad input; errors say what to do. `shmpsc stat`
/// accepts any finite `--interval`, then converts it with
/// `Duration::from_secs_f64`, which panics for values too large for a
/// `Duration` (before the channel is even looked up).
#[cfg(feature = "cli")]
#[test]
fn stat_with_a_huge_interval_is_an_error_not_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmpsc"))
        .args(["stat", "review2-no-such-channel", "--interval", "1e300"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("exit {:?}: {stderr}", out.status);
    assert!(
        !stderr.contains("panicked") && out.status.code() == Some(1),
        "shmpsc stat --interval 1e300: {:?} {stderr}",
        out.status
    );
}

// ---------------------------------------------------------------- defect 6

/// Promise: a log sink never blocks the application thread; README/module
/// docs: "A child made by fork (without exec) that inherits a sink gets a
/// reconnecting thread of its own, and its own sender, when it logs".
/// The sink's state is a `std::sync::Mutex`; if another thread of the
/// parent holds it at the moment of `fork` (every `send` takes it to clone
/// the sender), the child's copy stays locked forever and the child's
/// first log call blocks for good. A thread logs in a loop while the main
/// thread forks; each child logs once under an `alarm` guard. A child
/// killed by SIGALRM is a child whose log call never returned.
#[cfg(any(feature = "log", feature = "tracing"))]
#[test]
fn a_forked_childs_log_call_never_blocks() {
    use shmpsc::logging::{Level, LogRecord, LogSink};
    let name = unique_name("sink-fork");
    let (_keep, rx) = shmpsc::channel::<LogRecord>(&name).unwrap();
    let sink = LogSink::new(&name);
    assert!(sink.is_connected());
    let stop = Arc::new(AtomicBool::new(false));
    let logger = {
        let (sink, stop) = (sink.clone(), stop.clone());
        std::thread::spawn(move || {
            let rec = LogRecord::new(Level::Info, "t", "m");
            while !stop.load(Ordering::Relaxed) {
                sink.send(rec.clone());
            }
        })
    };
    let drainer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = rx.recv_timeout(Duration::from_millis(10));
            }
        })
    };
    let rec = LogRecord::new(Level::Info, "t", "from the child");
    let mut hung = 0;
    let mut forks = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while hung == 0 && forks < 500 && Instant::now() < deadline {
        forks += 1;
        let r = rec.clone();
        // SAFETY: the child makes a log call (what is tested) and exits
        // with _exit; an alarm ends it if the call never returns.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                libc::alarm(3);
                sink.send(r);
                libc::_exit(0);
            },
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                match status {
                    nix::sys::wait::WaitStatus::Exited(_, 0) => {}
                    nix::sys::wait::WaitStatus::Signaled(_, Signal::SIGALRM, _) => hung += 1,
                    other => panic!("child: {other:?}"),
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    logger.join().unwrap();
    drainer.join().unwrap();
    println!("{hung} of {forks} forked children blocked in their first log call");
    assert_eq!(hung, 0, "a forked child's log call blocked forever");
}
