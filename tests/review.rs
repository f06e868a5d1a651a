//! Reviewer's reproducers (branch `review`). Each test names the guarantee
//! it checks. Multi-process tests re-run this binary in a role (see
//! tests/common/mod.rs); every wait is bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{channel_name, emit, param, run_child_role, unique_name, Spawn};
use shmpsc::{Builder, RecvError, SendError, Sender, TryRecvError};

const TICK: Duration = Duration::from_millis(5);
const EVENT_MARK: &str = "@@shmpsc-test-event@@ ";

fn run_role(role: &str) {
    match role {
        "fork_receiver" => role_fork_receiver(),
        "fork_receiver_recv" => role_fork_receiver_recv(),
        "fork_while_sending" => role_fork_while_sending(),
        "takeover_rx" => role_takeover_rx(),
        "takeover_tx" => role_takeover_tx(),
        other => panic!("unknown role {other:?}"),
    }
}

// ------------------------------------------------ receiver copied by fork

/// Child role: creates the channel (receiver + a sender), forks; the forked
/// child drops its copy of the `Receiver` and leaves with `_exit`, as any
/// pre-fork worker that returns normally would. The parent, whose receiver
/// is alive and well, then tries to use the channel.
fn role_fork_receiver() {
    let name = channel_name();
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u32>().unwrap();
    // SAFETY: the forked child only drops its copy of the receiver and
    // leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            drop(rx);
            // SAFETY: leaves at once, without running the parent's exit code.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).expect("waitpid");
            let send = match tx.send(7) {
                Ok(()) => "ok".to_owned(),
                Err(SendError::Disconnected(_)) => "disconnected".to_owned(),
                Err(e) => format!("other:{e}"),
            };
            let open = match Sender::<u32>::open(&name) {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("err:{}", e.to_string().replace(' ', "_")),
            };
            let got = match rx.try_recv() {
                Ok(v) => format!("{v}"),
                Err(e) => format!("{e:?}"),
            };
            emit(format!("result send={send} open={open} recv={got}"));
        }
    }
}

/// A `Receiver` copied into a child by `fork` (no exec): when the child's
/// copy is dropped, the channel is closed for the parent, whose receiver is
/// still alive: `rx_state` becomes DROPPED in shared memory (every sender's
/// next `send` fails with `Disconnected`) and the name is unlinked (no
/// sender can attach any more). `Sender` got a fork guard
/// (`Rejection::Forked`, drop leaves the slot alone); `Receiver` has none.
#[test]
fn receiver_copy_dropped_in_forked_child_closes_parents_channel() {
    run_child_role(run_role);
    let name = unique_name("forkrx");
    let mut c = Spawn::new(
        "receiver_copy_dropped_in_forked_child_closes_parents_channel",
        "fork_receiver",
        &name,
    )
    .spawn();
    let r = c.expect_event("result");
    c.wait_success();
    assert_eq!(
        r, "send=ok open=ok recv=7",
        "the parent's live receiver lost its channel to the forked copy's drop"
    );
}

/// Child role: one message in the channel, then fork; the forked child
/// receives with its copy of the `Receiver` and leaves with `_exit` (no
/// drop); then the parent receives.
fn role_fork_receiver_recv() {
    let name = channel_name();
    let (tx, rx) = Builder::new(&name).tick(TICK).create::<u32>().unwrap();
    tx.send(42).unwrap();
    // SAFETY: the forked child receives once, writes one line with
    // `write(2)` and leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let line = match rx.try_recv() {
                Ok(v) => format!("\n{EVENT_MARK}child got={v}\n"),
                Err(_) => format!("\n{EVENT_MARK}child got=none\n"),
            };
            // SAFETY: writing a buffer we own to our stdout.
            unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
            // SAFETY: leaves at once, without running the parent's exit code.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).expect("waitpid");
            let got = match rx.try_recv() {
                Ok(v) => format!("{v}"),
                Err(_) => "none".to_owned(),
            };
            emit(format!("parent got={got}"));
        }
    }
}

/// Guarantee 1 (exactly once) with a `Receiver` copied by `fork`: the
/// forked child's copy receives the message and records it as delivered
/// in shared memory, and the parent's receiver, whose own cursor did not
/// move, delivers the same message again. `Sender` refuses to work in a
/// forked child; `Receiver` does not.
#[test]
fn receiver_copy_used_in_forked_child_delivers_a_message_twice() {
    run_child_role(run_role);
    let name = unique_name("forkrx2");
    let mut c = Spawn::new(
        "receiver_copy_used_in_forked_child_delivers_a_message_twice",
        "fork_receiver_recv",
        &name,
    )
    .spawn();
    let child = c.expect_event("child");
    let parent = c.expect_event("parent");
    c.wait_success();
    assert!(
        !(child == "got=42" && parent == "got=42"),
        "message 42 was received twice: by the forked copy ({child}) and by the parent ({parent})"
    );
}

/// A message whose encoding takes a while (it tells the test when it
/// starts): any thread of a process can be inside `send` when another
/// thread forks; this makes the moment deterministic.
struct SlowToEncode(std::sync::mpsc::SyncSender<()>);

impl serde::Serialize for SlowToEncode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let _ = self.0.send(());
        std::thread::sleep(Duration::from_secs(3));
        s.serialize_unit()
    }
}

impl<'de> serde::Deserialize<'de> for SlowToEncode {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("not received in this test"))
    }
}

/// Child role: a thread is inside `send` (encoding) when the main thread
/// forks; the forked child tries `try_send_bytes` on its copy, which must
/// be refused at once (`Rejection::Forked`), and reports with `write(2)`.
fn role_fork_while_sending() {
    let name = channel_name();
    let tx = Sender::<SlowToEncode>::open(&name).expect("open");
    let (started_tx, started) = std::sync::mpsc::sync_channel(1);
    let t = {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(SlowToEncode(started_tx));
        })
    };
    started.recv().unwrap();
    // SAFETY: the forked child calls try_send_bytes (no allocation on the
    // refusal path before the lock), writes one line with `write(2)` and
    // leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let refused = format!("\n{EVENT_MARK}forked refused\n");
            let other = format!("\n{EVENT_MARK}forked other\n");
            let line = match tx.try_send_bytes(b"x") {
                Err(shmpsc::TrySendError::Rejected(..)) => &refused,
                _ => &other,
            };
            // SAFETY: writing a buffer we own to our stdout.
            unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
            // SAFETY: leaves at once.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            // Give the forked child a generous second, then stop it.
            let until = Instant::now() + Duration::from_secs(1);
            let mut done = false;
            while Instant::now() < until {
                match nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                emit("forked hung");
            }
            t.join().unwrap();
        }
    }
}

/// "A `Sender` used after `fork` in the child is refused": not when another
/// thread of the parent was inside `send` at the fork. The copied spin lock
/// is held forever in the child (its holder does not exist there), and
/// `send_raw` checks for the fork only after taking it: the child's
/// `try_send_bytes` (which must never block) spins and yields forever at
/// 100% CPU instead of returning `Rejected(Forked)`.
#[test]
fn sender_copy_forked_while_a_thread_sends_is_refused_not_hung() {
    run_child_role(run_role);
    let name = unique_name("forklock");
    let _rx = Builder::new(&name)
        .tick(TICK)
        .receiver::<SlowToEncode>()
        .unwrap();
    let mut c = Spawn::new(
        "sender_copy_forked_while_a_thread_sends_is_refused_not_hung",
        "fork_while_sending",
        &name,
    )
    .spawn();
    let r = c.expect_event("forked");
    c.wait_success();
    assert_eq!(
        r, "refused",
        "the forked copy's try_send_bytes did not return within 1 s"
    );
}

// ------------------------------------- receiver killed at random moments

type Wire = (u32, u64);

/// Child role: takes the channel over (or creates it) and reports every
/// message it receives, one line each, until disconnected.
fn role_takeover_rx() {
    let name = channel_name();
    // Keeps a sender of its own (the daemon pattern): it never sees
    // `Disconnected`; the test stops it once everything arrived.
    let (_own, rx) = Builder::new(&name)
        .capacity(4096)
        .tick(TICK)
        .create::<Wire>()
        .expect("receiver");
    emit(format!("rx taken_over={}", rx.was_taken_over()));
    loop {
        match rx.recv() {
            Ok((id, seq)) => emit(format!("m {id} {seq}")),
            Err(RecvError::Disconnected) => break,
            Err(RecvError::Invalid(i)) => {
                emit(format!("invalid {}", i.to_string().replace(' ', "_")))
            }
        }
    }
    emit("end");
}

/// Child role: sends `count` messages `(id, seq)`; on `Disconnected` (the
/// receiver died) reopens and sends the same `seq` again (it was not in
/// the ring: `send` hands it back).
fn role_takeover_tx() {
    let name = channel_name();
    let id: u32 = param("id");
    let count: u64 = param("count");
    let give_up = Instant::now() + Duration::from_secs(120);
    let open = || loop {
        match Builder::new(&name).tick(TICK).open_sender::<Wire>() {
            Ok(tx) => return tx,
            Err(_) if Instant::now() < give_up => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("sender {id}: cannot reopen: {e}"),
        }
    };
    let mut tx = open();
    emit("opened");
    let mut seq = 0;
    while seq < count {
        match tx.send((id, seq)) {
            Ok(()) => seq += 1,
            Err(SendError::Disconnected(_)) => tx = open(),
            Err(e) => panic!("sender {id}: {e}"),
        }
    }
    emit("done");
    drop(tx);
}

/// Spawns a receiver role and forwards its event lines; the returned
/// thread ends at the end of the child's output (after its death, once
/// every line it wrote was forwarded).
fn spawn_rx(
    name: &str,
    events: mpsc::Sender<String>,
) -> (std::process::Child, std::thread::JoinHandle<()>) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "receiver_killed_at_random_moments_never_duplicates_or_reorders",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(common::ROLE_VAR, "takeover_rx")
        .env(common::CHANNEL_VAR, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let forward = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find(EVENT_MARK) {
                let _ = events.send(line[i + EVENT_MARK.len()..].to_owned());
            }
        }
    });
    (child, forward)
}

/// Guarantees 1 and 2 across takeovers: the receiver process is killed
/// (SIGKILL) at random moments and a new one takes the channel over, while
/// two senders stream. Per sender, what the receivers report must be
/// strictly increasing (never a duplicate, never out of order); a message
/// can be missing only where a receiver was killed between `recv`
/// returning it and reporting it (at most one per kill).
#[test]
fn receiver_killed_at_random_moments_never_duplicates_or_reorders() {
    run_child_role(run_role);
    const SENDERS: u32 = 2;
    const COUNT: u64 = 300_000;
    const KILLS: u32 = 40;
    let seed: u64 = std::env::var("SHMPSC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("SHMPSC_TEST_SEED={seed}");
    let mut state = seed | 1;
    let mut rand = move |below: u64| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    };
    let name = unique_name("rxkill");
    let (ev_tx, events) = mpsc::channel::<String>();
    let (mut rx, mut forward) = spawn_rx(&name, ev_tx.clone());
    // Wait for the first receiver to create the channel.
    let mut first = events.recv_timeout(common::HANG_GUARD).unwrap();
    if first == "started" {
        first = events.recv_timeout(common::HANG_GUARD).unwrap();
    }
    assert!(first.starts_with("rx"), "{first}");
    let mut senders: Vec<common::Child> = (0..SENDERS)
        .map(|id| {
            let mut c = Spawn::new(
                "receiver_killed_at_random_moments_never_duplicates_or_reorders",
                "takeover_tx",
                &name,
            )
            .param("id", id)
            .param("count", COUNT)
            .spawn();
            c.expect_event("opened");
            c
        })
        .collect();
    let mut next = vec![0u64; SENDERS as usize];
    let mut missing = 0u64;
    let mut problems = Vec::new();
    let mut invalid = 0;
    let mut take = |ev: String, next: &mut Vec<u64>, missing: &mut u64| {
        let parts: Vec<&str> = ev.split(' ').collect();
        match parts[0] {
            "m" => {
                let id: usize = parts[1].parse().unwrap();
                let seq: u64 = parts[2].parse().unwrap();
                if seq < next[id] {
                    problems.push(format!(
                        "sender {id}: seq {seq} after {} (dup/reorder)",
                        next[id] - 1
                    ));
                } else {
                    *missing += seq - next[id];
                    next[id] = seq + 1;
                }
            }
            "invalid" => invalid += 1,
            _ => {}
        }
    };
    for _ in 0..KILLS {
        let until = Instant::now() + Duration::from_millis(5 + rand(60));
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match events.recv_timeout(left) {
                Ok(ev) => take(ev, &mut next, &mut missing),
                Err(_) => break,
            }
        }
        rx.kill().unwrap();
        rx.wait().unwrap();
        // Every line the dead receiver wrote is forwarded once its output
        // ends: take them all before the next receiver writes any.
        forward.join().unwrap();
        while let Ok(ev) = events.try_recv() {
            take(ev, &mut next, &mut missing);
        }
        (rx, forward) = spawn_rx(&name, ev_tx.clone());
    }
    let deadline = Instant::now() + common::HANG_GUARD;
    loop {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(ev) => {
                take(ev, &mut next, &mut missing);
                if next.iter().all(|&n| n >= COUNT) {
                    break;
                }
            }
            Err(_) => panic!("hang guard: the last receiver did not end; next={next:?}"),
        }
    }
    for s in &mut senders {
        s.wait_success();
    }
    let _ = rx.kill();
    let _ = rx.wait();
    let _ = forward.join();
    println!(
        "missing {missing} invalid {invalid} problems {}",
        problems.len()
    );
    assert!(problems.is_empty(), "seed {seed}: {problems:?}");
    assert_eq!(invalid, 0, "seed {seed}: invalid records reported");
    assert_eq!(
        next,
        vec![COUNT; SENDERS as usize],
        "seed {seed}: tails missing"
    );
    assert!(
        missing <= u64::from(KILLS),
        "seed {seed}: {missing} messages missing for {KILLS} kills"
    );
}

// ------------------------------------------------------ sanity: try_recv
#[test]
fn try_recv_on_fresh_channel_is_empty() {
    let name = unique_name("sanity");
    let (_tx, rx) = Builder::new(&name).create::<u8>().unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}
