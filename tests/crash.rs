//! Crash safety at exact protocol steps: a sender stopped or killed between
//! claim and commit (made deterministic with the `test-hooks` feature), slot
//! reclamation across many dead senders, and stale-segment clean-up.

mod common;

use std::time::Duration;

use common::msg::{drain_until_disconnected, recv_guarded, Msg, Tracker};
use common::{channel_name, emit, param, run_child_role, unique_name, wait_for_stdin_eof, Spawn};
use nix::sys::signal::Signal;
use shmpsc::{Builder, OpenError, OpenErrorKind, ReceiverState, RecvTimeoutError, Sender};

/// A short liveness tick, so a test sees many liveness checks quickly.
const TICK: Duration = Duration::from_millis(5);
/// The protocol steps between claim and commit (see src/hooks.rs).
const STEPS: [&str; 3] = ["claimed", "header", "payload"];

fn run_role(role: &str) {
    match role {
        // Sends seq 0..count as sender `id` on the passed (or opened) sender.
        "seq_sender" => {
            let tx = Sender::<Msg>::open(&channel_name()).expect("open");
            let id: u32 = param("id");
            for seq in 0..param::<u64>("count") {
                tx.send(Msg::new(id, seq)).expect("send");
            }
        }
        // Opens a sender of its own, sends one message, stays until killed.
        "send_one_and_idle" => {
            let tx = Sender::<Msg>::open(&channel_name()).expect("open");
            tx.send(Msg::new(param("id"), 0)).expect("send");
            emit("sent");
            wait_for_stdin_eof();
        }
        // Creates the channel as its receiver and stays until killed.
        "idle_receiver" => {
            let _rx = Builder::new(&channel_name())
                .receiver::<Msg>()
                .expect("create");
            emit("ready");
            wait_for_stdin_eof();
        }
        // Creates (or takes over) the channel as its receiver, with the
        // hook that stops it inside `create`; reports the outcome, then on
        // "go" receives until the parent's probe (sender 99) arrives.
        "racing_receiver" => match Builder::new(&channel_name()).receiver::<Msg>() {
            Ok(rx) => {
                emit(format!("ready {}", rx.was_taken_over()));
                assert_eq!(common::read_line(), "go");
                loop {
                    let m = recv_guarded(&rx).expect("a message before the probe");
                    emit(format!("got {}", m.sender));
                    if m.sender == PROBE {
                        break;
                    }
                }
            }
            Err(e) => emit(format!("failed {e}")),
        },
        other => panic!("unknown role {other:?}"),
    }
}

/// The sender id of the message the parent sends to check that a channel is
/// reachable by name.
const PROBE: u32 = 99;

/// Spawns sender `id` sending `count` messages, with its sender passed by
/// `tx` and the test hook `hook` (if any).
fn spawn_sender(
    test: &str,
    name: &str,
    tx: &Sender<Msg>,
    id: u32,
    count: u64,
    hook: Option<String>,
) -> common::Child {
    let mut spawn = Spawn::new(test, "seq_sender", name)
        .param("id", id)
        .param("count", count);
    if let Some(hook) = hook {
        spawn.command().env("SHMPSC_TEST_HOOK", hook);
    }
    tx.pass_to(spawn.command()).expect("pass_to");
    spawn.spawn()
}

#[test]
fn stopped_sender_mid_claim_is_waited_for() {
    run_child_role(run_role);
    let test = "stopped_sender_mid_claim_is_waited_for";
    for step in STEPS {
        let name = unique_name(&format!("stop-{step}"));
        let (tx, rx) = Builder::new(&name).tick(TICK).create::<Msg>().unwrap();
        // A stops itself with SIGSTOP inside its third send.
        let mut a = spawn_sender(test, &name, &tx, 0, 5, Some(format!("{step}:3:stop")));
        let mut tracker = Tracker::new(2);
        for _ in 0..2 {
            tracker.accept(&recv_guarded(&rx).expect("message from A"));
        }
        a.wait_until_stopped();
        // B's whole stream lands behind A's unfinished claim.
        let mut b = spawn_sender(test, &name, &tx, 1, 5, None);
        b.wait_success();
        drop(tx);
        // Many liveness checks pass while A is stopped: a slow sender is
        // not a dead one, so nothing is skipped and nothing overtakes A.
        assert_eq!(
            rx.recv_timeout(TICK * 40),
            Err(RecvTimeoutError::Timeout),
            "step {step}: a message was delivered past a stopped sender's claim"
        );
        let info = shmpsc::inspect(&name).unwrap();
        assert_eq!(
            info.recovered_bytes, 0,
            "step {step}: a live claim was skipped"
        );
        a.signal(Signal::SIGCONT);
        let first = recv_guarded(&rx).expect("A's resumed message");
        assert_eq!(
            first,
            Msg::new(0, 2),
            "step {step}: A's claim must come first"
        );
        tracker.accept(&first);
        drain_until_disconnected(&rx, &mut tracker);
        assert_eq!(tracker.next, [5, 5], "step {step}");
        a.wait_success();
    }
}

#[test]
fn sender_killed_at_each_protocol_step() {
    run_child_role(run_role);
    let test = "sender_killed_at_each_protocol_step";
    for step in STEPS {
        let name = unique_name(&format!("kill-{step}"));
        let (tx, rx) = Builder::new(&name).tick(TICK).create::<Msg>().unwrap();
        // A dies with SIGKILL inside its third send.
        let mut a = spawn_sender(test, &name, &tx, 0, 5, Some(format!("{step}:3:kill")));
        let status = a.wait();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(nix::libc::SIGKILL),
            "step {step}: A should have died inside its third send"
        );
        // B's stream lands behind A's dead claim.
        let mut b = spawn_sender(test, &name, &tx, 1, 5, None);
        b.wait_success();
        drop(tx);
        let mut tracker = Tracker::new(2);
        drain_until_disconnected(&rx, &mut tracker);
        assert_eq!(
            tracker.next,
            [2, 5],
            "step {step}: A's committed prefix and all of B, and nothing of A's dead claim"
        );
        let info = shmpsc::inspect(&name).unwrap();
        assert!(
            info.recovered_bytes > 0,
            "step {step}: the dead claim should have been skipped"
        );
        assert_eq!(info.invalid_messages, 0, "step {step}");
    }
}

#[test]
fn ten_times_max_senders_killed_in_turn() {
    run_child_role(run_role);
    const MAX: u32 = 4;
    const ROUNDS: u32 = 10 * MAX;
    let name = unique_name("slots");
    let (tx, rx) = Builder::new(&name)
        .max_senders(MAX)
        .tick(TICK)
        .create::<Msg>()
        .unwrap();
    for id in 0..ROUNDS {
        // Each child opens a sender of its own: with the parent's sender,
        // the slots are full after three, so every later child must reclaim
        // a dead sender's slot.
        let mut child = Spawn::new(
            "ten_times_max_senders_killed_in_turn",
            "send_one_and_idle",
            &name,
        )
        .param("id", id)
        .spawn();
        child.expect_event("sent");
        let info = shmpsc::inspect(&name).unwrap();
        assert!(info.senders.len() <= MAX as usize);
        assert!(info.senders.iter().filter(|s| s.alive).count() == 2);
        child.kill();
    }
    drop(tx);
    let mut got = Vec::new();
    while let Some(m) = recv_guarded(&rx) {
        assert_eq!(m, Msg::new(m.sender, 0));
        got.push(m.sender);
    }
    assert_eq!(got, (0..ROUNDS).collect::<Vec<_>>());
}

#[test]
fn stale_segments_are_listed_and_removed() {
    run_child_role(run_role);
    let test = "stale_segments_are_listed_and_removed";
    let stale = unique_name("stale");
    let mut receiver = Spawn::new(test, "idle_receiver", &stale).spawn();
    receiver.expect_event("ready");
    let mut sender = Spawn::new(test, "send_one_and_idle", &stale)
        .param("id", 7)
        .spawn();
    sender.expect_event("sent");

    let info = shmpsc::inspect(&stale).unwrap();
    assert_eq!(info.receiver, ReceiverState::Alive);
    assert_eq!(info.receiver_pid, receiver.pid());
    assert_eq!(info.senders.len(), 1);
    assert!(info.senders[0].alive);
    assert_eq!(info.senders[0].pid, sender.pid());
    assert_eq!(info.sent_messages, 1);
    assert!(info.used > 0);
    // In use: the error names the receiver's and the sender's processes.
    let err = shmpsc::remove(&stale).unwrap_err();
    assert!(
        err.to_string().contains(&receiver.pid().to_string()),
        "{err}"
    );
    match err.into_kind() {
        OpenErrorKind::InUse { pids } => assert_eq!(pids, [receiver.pid(), sender.pid()]),
        other => panic!("{other:?}"),
    }

    sender.kill();
    receiver.kill();
    let info = shmpsc::inspect(&stale).unwrap();
    assert_eq!(info.receiver, ReceiverState::Dead);
    assert_eq!(info.senders.len(), 1);
    assert!(!info.senders[0].alive);
    assert!(info.is_unused());
    assert!(shmpsc::list().unwrap().contains(&stale));

    assert_eq!(info.pending_messages(), 1);

    // The stale channel holds a message no receiver got: the sweep and
    // `remove` refuse it and say how much it holds; a receiver taking it
    // over would get it.
    let live = unique_name("live");
    let (_tx, _rx) = shmpsc::channel::<Msg>(&live).unwrap();
    let removed = shmpsc::remove_unused().unwrap();
    assert!(
        !removed.contains(&stale) && !removed.contains(&live),
        "{removed:?}"
    );
    let sweep = shmpsc::sweep(&stale).unwrap();
    assert!(sweep.removed.is_empty());
    assert!(
        matches!(
            sweep.skipped.as_slice(),
            [e] if e.name() == stale
                && matches!(e.kind(), OpenErrorKind::HasPending { messages: 1, bytes } if *bytes > 0)
        ),
        "{:?}",
        sweep.skipped
    );
    let err = shmpsc::remove(&stale).unwrap_err();
    assert!(err.to_string().contains("1 undelivered message"), "{err}");
    assert!(shmpsc::list().unwrap().contains(&stale));

    // Forced, it goes; a live channel survives a forced sweep. (Sweeps
    // limited to this test's names: other tests' stale channels are theirs.)
    assert_eq!(
        shmpsc::sweep_forced(&stale).unwrap().removed,
        std::slice::from_ref(&stale)
    );
    assert!(shmpsc::sweep_forced(&live).unwrap().removed.is_empty());
    let names = shmpsc::list().unwrap();
    assert!(!names.contains(&stale));
    assert!(names.contains(&live));
    assert!(matches!(
        shmpsc::inspect(&stale).map_err(OpenError::into_kind),
        Err(OpenErrorKind::NotFound)
    ));
}

/// A receiver is stopped inside `Segment::create` at `hook` (before it
/// takes the receiver lock) while `shmpsc::remove` runs. Whatever the
/// removal did, the receiver that comes out must be reachable by name, and
/// be the only one.
fn receiver_races_remove(test: &str, name: &str, hook: &str, backdate: bool) {
    let mut rx = Spawn::new(test, "racing_receiver", name);
    rx.command()
        .env("SHMPSC_TEST_HOOK", format!("{hook}:1:stop"));
    let mut rx = rx.spawn();
    rx.wait_until_stopped();
    if backdate {
        // Where segments are created under their name (no O_TMPFILE), an
        // unready one used to be left alone while young: make it look
        // abandoned, as a clock step would. With O_TMPFILE there is no
        // name yet, so nothing to back-date.
        if let Ok(file) = std::fs::OpenOptions::new()
            .write(true)
            .open(raw_shm_path(name))
        {
            let past = std::time::SystemTime::now() - Duration::from_secs(3600);
            file.set_modified(past).unwrap();
        }
    }
    // Either outcome of the removal is allowed; what follows must hold
    // for both.
    let removed = shmpsc::remove(name);
    rx.signal(Signal::SIGCONT);
    let outcome = rx.expect_event("ready");
    let taken_over: bool = outcome.parse().unwrap();
    if removed.is_ok() {
        assert!(
            !taken_over,
            "the removed segment's contents cannot be taken over"
        );
    }
    // No second receiver: the name leads to the live one.
    match Builder::new(name).receiver::<Msg>() {
        Err(e) if matches!(e.kind(), OpenErrorKind::AlreadyExists) => {}
        other => panic!(
            "a second receiver on {name}: {other:?} (removal: {removed:?}); the first \
             receiver is not reachable by name"
        ),
    }
    let tx = Sender::<Msg>::open(name).unwrap_or_else(|e| {
        panic!("the receiver's channel is not reachable by name ({e}); removal: {removed:?}")
    });
    tx.send(Msg::new(PROBE, 0)).unwrap();
    rx.send_line("go");
    if taken_over {
        // The dead receiver's pending message comes first.
        assert_eq!(rx.expect_event("got"), "1");
    }
    assert_eq!(rx.expect_event("got"), PROBE.to_string());
    rx.wait_success();
    drop(tx);
}

fn raw_shm_path(name: &str) -> String {
    format!("/dev/shm/shmpsc.{name}")
}

#[test]
fn remove_racing_a_takeover_leaves_a_reachable_receiver() {
    run_child_role(run_role);
    let test = "remove_racing_a_takeover_leaves_a_reachable_receiver";
    let name = unique_name("race-takeover");
    // A channel whose receiver died with one message pending, and no live
    // sender: unused, so `remove` may take it.
    let mut dead = Spawn::new(test, "idle_receiver", &name).spawn();
    dead.expect_event("ready");
    let tx = Sender::<Msg>::open(&name).unwrap();
    tx.send(Msg::new(1, 0)).unwrap();
    drop(tx);
    dead.kill();
    receiver_races_remove(test, &name, "takeover-opened", false);
}

#[test]
fn remove_racing_a_fresh_create_leaves_a_reachable_receiver() {
    run_child_role(run_role);
    let test = "remove_racing_a_fresh_create_leaves_a_reachable_receiver";
    let name = unique_name("race-fresh");
    receiver_races_remove(test, &name, "created", true);
}
