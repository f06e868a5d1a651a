//! Multi-process tests: the test binary re-executes itself for each child
//! process (see `common`). Each test begins with the child-role dispatch.

mod common;

use common::msg::{drain_until_disconnected, recv_guarded, Msg, Tracker};
use common::{
    channel_name, current_tid, emit, param, read_line, run_child_role, unique_name,
    wait_for_stdin_eof, Child, Spawn,
};
use serde::{Deserialize, Serialize};
use shmpsc::{Builder, OpenError, OpenErrorKind, SendError, Sender, TrySendError};

/// What the hello-first senders send.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
enum Wire {
    /// First message of each sender: it has attached.
    Hello {
        sender: u32,
    },
    Data(Msg),
}

// ------------------------------------------------------------ child roles

fn run_role(role: &str) {
    match role {
        "hello_sender" => role_hello_sender(),
        "send_then_idle" => role_send_then_idle(),
        "plain_sender" => role_plain_sender(),
        "fill_then_block" => role_fill_then_block(),
        "idle_receiver" => role_idle_receiver(),
        "partial_receiver" => role_partial_receiver(),
        other => panic!("unknown role {other:?}"),
    }
}

/// Opens a sender, says hello, waits for "go" on stdin, sends `count`
/// messages, exits.
fn role_hello_sender() {
    let id: u32 = param("id");
    let count: u64 = param("count");
    let tx = Sender::<Wire>::open(&channel_name()).expect("open");
    tx.send(Wire::Hello { sender: id }).expect("send hello");
    assert_eq!(read_line(), "go");
    for seq in 0..count {
        tx.send(Wire::Data(Msg::new(id, seq))).expect("send");
    }
}

/// Opens a sender, says hello, sends `count` messages, reports `sent`, and
/// stays alive until killed.
fn role_send_then_idle() {
    let id: u32 = param("id");
    let count: u64 = param("count");
    let tx = Sender::<Wire>::open(&channel_name()).expect("open");
    tx.send(Wire::Hello { sender: id }).expect("send hello");
    for seq in 0..count {
        tx.send(Wire::Data(Msg::new(id, seq))).expect("send");
    }
    emit("sent");
    wait_for_stdin_eof();
    drop(tx);
}

/// If `open` is 1: opens a sender (the one passed by the parent, if any)
/// and sends `count` messages. If `open` is 0: exits without opening.
fn role_plain_sender() {
    let id: u32 = param("id");
    let count: u64 = param("count");
    let open: u8 = param("open");
    if open == 0 {
        return;
    }
    let tx = Sender::<Msg>::open(&channel_name()).expect("open");
    for seq in 0..count {
        tx.send(Msg::new(id, seq)).expect("send");
    }
}

/// Fills the ring with `try_send` until it is full, reports `blocked <tid>
/// <count>`, then blocks in `send`. `expect` says how that send must end:
/// `ok` (room was made), or `disconnected` (the receiver went away; the
/// message must come back, and later sends must fail too).
fn role_fill_then_block() {
    let id: u32 = param("id");
    let expect: String = param("expect");
    let tx = Sender::<Msg>::open(&channel_name()).expect("open");
    let mut n = 0u64;
    loop {
        match tx.try_send(Msg::new(id, n)) {
            Ok(()) => n += 1,
            Err(TrySendError::Full(_)) => break,
            Err(e) => panic!("try_send while filling: {e:?}"),
        }
        assert!(n < 1_000_000, "the ring never reported Full");
    }
    emit(format!("blocked {} {n}", current_tid()));
    let m = Msg::new(id, n);
    match (tx.send(m.clone()), expect.as_str()) {
        (Ok(()), "ok") => {}
        (Err(SendError::Disconnected(back)), "disconnected") => {
            assert_eq!(back, m, "the message did not come back intact");
            let next = Msg::new(id, n + 1);
            match tx.try_send(next.clone()) {
                Err(TrySendError::Disconnected(back)) => assert_eq!(back, next),
                other => panic!("try_send after disconnection: {other:?}"),
            }
            match tx.send(next.clone()) {
                Err(SendError::Disconnected(back)) => assert_eq!(back, next),
                other => panic!("send after disconnection: {other:?}"),
            }
        }
        (r, expect) => panic!("blocked send ended with {r:?}, expected {expect}"),
    }
}

/// Creates the channel (receiver only, with capacity `capacity`), reports
/// `ready`, never receives, stays alive until killed.
fn role_idle_receiver() {
    let capacity: u64 = param("capacity");
    let rx = Builder::new(&channel_name())
        .capacity(capacity)
        .receiver::<Msg>()
        .expect("create");
    emit("ready");
    wait_for_stdin_eof();
    drop(rx);
}

/// Creates the channel (keeping a sender, so it never disconnects),
/// reports `ready`, receives exactly `take` messages (sender 0, seq 0..take),
/// reports `received`, stays alive until killed.
fn role_partial_receiver() {
    let take: u64 = param("take");
    let (tx, rx) = shmpsc::channel::<Msg>(&channel_name()).expect("create");
    emit("ready");
    let mut tracker = Tracker::new(1);
    for _ in 0..take {
        let m = recv_guarded(&rx).expect("disconnected while the receiver holds a sender");
        tracker.accept(&m);
    }
    emit("received");
    wait_for_stdin_eof();
    drop((tx, rx));
}

// ------------------------------------------------------------------ tests

/// 4 sender processes x 100_000 messages to one receiver: per-sender FIFO,
/// exactly once, intact, then `Disconnected` once every sender has exited.
#[test]
fn many_senders_fifo_exactly_once() {
    run_child_role(run_role);
    const SENDERS: u32 = 4;
    const COUNT: u64 = 100_000;
    let name = unique_name("fifo");
    let (tx, rx) = shmpsc::channel::<Wire>(&name).unwrap();
    let mut children: Vec<Child> = (0..SENDERS)
        .map(|id| {
            Spawn::new("many_senders_fifo_exactly_once", "hello_sender", &name)
                .param("id", id)
                .param("count", COUNT)
                .spawn()
        })
        .collect();
    // Keep our sender until every child has attached (said hello): without
    // it, `recv` could report `Disconnected` before a child opens.
    let mut hello = vec![false; SENDERS as usize];
    for _ in 0..SENDERS {
        match recv_guarded(&rx) {
            Some(Wire::Hello { sender }) => {
                assert!(!hello[sender as usize], "two hellos from {sender}");
                hello[sender as usize] = true;
            }
            other => panic!("expected a hello, got {other:?}"),
        }
    }
    drop(tx);
    for child in &mut children {
        child.send_line("go");
    }
    let mut tracker = Tracker::new(SENDERS as usize);
    while let Some(w) = recv_guarded(&rx) {
        match w {
            Wire::Data(m) => tracker.accept(&m),
            Wire::Hello { sender } => panic!("second hello from {sender}"),
        }
    }
    assert_eq!(tracker.next, vec![COUNT; SENDERS as usize]);
    for child in &mut children {
        child.wait_success();
    }
    assert_eq!(rx.try_recv(), Err(shmpsc::TryRecvError::Disconnected));
}

/// Senders passed to children with `Sender::pass_to` (one child exits
/// without even opening): the receiver gets every message, then
/// `Disconnected` once all have exited. A sender attaching afterwards
/// reconnects the channel.
#[test]
fn disconnect_after_all_sender_processes_exit() {
    run_child_role(run_role);
    const TEST: &str = "disconnect_after_all_sender_processes_exit";
    // (opens?, messages) per child.
    let plan: [(u8, u64); 4] = [(0, 0), (1, 0), (1, 1), (1, 5_000)];
    let name = unique_name("disc");
    let (tx, rx) = shmpsc::channel::<Msg>(&name).unwrap();
    let mut children = Vec::new();
    for (id, &(open, count)) in plan.iter().enumerate() {
        let mut spawn = Spawn::new(TEST, "plain_sender", &name)
            .param("id", id)
            .param("count", count)
            .param("open", open);
        tx.pass_to(spawn.command()).unwrap();
        children.push(spawn.spawn());
    }
    // Every child holds a sender from before it started: no start-up race.
    drop(tx);
    let mut tracker = Tracker::new(plan.len() + 1);
    drain_until_disconnected(&rx, &mut tracker);
    let expected: Vec<u64> = plan.iter().map(|&(_, c)| c).chain([0]).collect();
    assert_eq!(tracker.next, expected);
    for child in &mut children {
        child.wait_success();
    }
    // Still disconnected, and nothing more arrives.
    assert_eq!(rx.try_recv(), Err(shmpsc::TryRecvError::Disconnected));

    // "No sender attached" is a state: a late sender makes recv work again.
    let id = plan.len();
    let mut late = Spawn::new(TEST, "plain_sender", &name)
        .param("id", id)
        .param("count", 3)
        .param("open", 1)
        .spawn();
    late.wait_success();
    drain_until_disconnected(&rx, &mut tracker);
    assert_eq!(tracker.next[id], 3);
}

/// Children fill a 4 KiB ring and block in `send`; dropping the receiver
/// wakes them with `SendError::Disconnected` carrying their message.
#[test]
fn receiver_dropped_while_senders_block_on_full_ring() {
    run_child_role(run_role);
    let name = unique_name("rxdrop");
    let rx = Builder::new(&name)
        .capacity(4096)
        .receiver::<Msg>()
        .unwrap();
    let mut children = Vec::new();
    let mut filled = 0u64;
    for id in 0..3 {
        let mut child = Spawn::new(
            "receiver_dropped_while_senders_block_on_full_ring",
            "fill_then_block",
            &name,
        )
        .param("id", id)
        .param("expect", "disconnected")
        .spawn();
        let data = child.expect_event("blocked");
        let (tid, n) = data.split_once(' ').unwrap();
        child.wait_until_blocked_in_futex(tid.parse().unwrap());
        filled += n.parse::<u64>().unwrap();
        children.push(child);
    }
    assert!(filled > 0);
    // Every sender is blocked: nothing moves, so the count is exact.
    assert_eq!(rx.len() as u64, filled);
    drop(rx);
    for child in &mut children {
        child.wait_success();
    }
    // Dropping the receiver removed the name.
    assert!(matches!(
        Sender::<Msg>::open(&name).map_err(OpenError::into_kind),
        Err(OpenErrorKind::NotFound)
    ));
}

/// Open errors, in-process: not found, type mismatch, too many senders,
/// already exists.
#[test]
fn sender_open_errors() {
    run_child_role(run_role);
    let missing = unique_name("missing");
    match Sender::<Msg>::open(&missing) {
        Err(e) if matches!(e.kind(), OpenErrorKind::NotFound) => {
            let text = e.to_string();
            assert!(text.contains("is the receiver running?"), "{text}");
            assert!(text.contains(&missing), "{text}");
        }
        other => panic!("open of a missing channel: {other:?}"),
    }

    let name = unique_name("types");
    let (_tx, _rx) = shmpsc::channel::<Msg>(&name).unwrap();
    match Sender::<String>::open(&name) {
        Err(e) => match e.kind() {
            OpenErrorKind::TypeMismatch { type_name, .. } => {
                assert_eq!(e.name(), name);
                assert!(type_name.contains("String"), "{type_name}");
            }
            _ => panic!("open with another type: {e:?}"),
        },
        Ok(tx) => panic!("open with another type: {tx:?}"),
    }
    assert!(matches!(
        shmpsc::channel::<Msg>(&name).map_err(OpenError::into_kind),
        Err(OpenErrorKind::AlreadyExists)
    ));

    let name = unique_name("max");
    let (tx1, _rx) = Builder::new(&name).max_senders(2).create::<u64>().unwrap();
    let tx2 = Sender::<u64>::open(&name).unwrap();
    match Sender::<u64>::open(&name) {
        Err(e) => match e.kind() {
            OpenErrorKind::TooManySenders { max } => {
                assert_eq!(e.name(), name);
                assert_eq!(*max, 2);
            }
            _ => panic!("third sender with max_senders(2): {e:?}"),
        },
        Ok(tx) => panic!("third sender with max_senders(2): {tx:?}"),
    }
    // A dropped sender's slot is free again.
    drop(tx2);
    let tx3 = Sender::<u64>::open(&name).unwrap();
    drop((tx1, tx3));
}

/// A sender process killed (SIGKILL) while idle, with its messages still in
/// the ring: the receiver gets them all, then `Disconnected`; the dead
/// sender's slot is reclaimed.
#[test]
fn sender_killed_while_idle() {
    run_child_role(run_role);
    const COUNT: u64 = 1_000;
    let name = unique_name("killidle");
    let (tx, rx) = Builder::new(&name).max_senders(2).create::<Wire>().unwrap();
    let mut child = Spawn::new("sender_killed_while_idle", "send_then_idle", &name)
        .param("id", 0)
        .param("count", COUNT)
        .spawn();
    assert_eq!(recv_guarded(&rx), Some(Wire::Hello { sender: 0 }));
    drop(tx);
    child.expect_event("sent");
    child.kill();
    let mut tracker = Tracker::new(1);
    while let Some(w) = recv_guarded(&rx) {
        match w {
            Wire::Data(m) => tracker.accept(&m),
            hello => panic!("unexpected {hello:?}"),
        }
    }
    assert_eq!(tracker.next, [COUNT]);
    // Both slots are free: the killed child's was reclaimed.
    let a = Sender::<Wire>::open(&name).unwrap();
    let b = Sender::<Wire>::open(&name).unwrap();
    drop((a, b));
}

/// Two senders block on a full 4 KiB ring; one is killed. The receiver
/// drains: the killed sender's committed messages (and nothing of its
/// blocked send), the survivor's including its blocked send, then
/// `Disconnected`.
#[test]
fn sender_killed_while_blocked_on_full_ring() {
    run_child_role(run_role);
    let name = unique_name("killblocked");
    let (tx, rx) = Builder::new(&name).capacity(4096).create::<Msg>().unwrap();
    let spawn_blocked = |id: u32, expect: &str| {
        let mut child = Spawn::new(
            "sender_killed_while_blocked_on_full_ring",
            "fill_then_block",
            &name,
        )
        .param("id", id)
        .param("expect", expect)
        .spawn();
        let data = child.expect_event("blocked");
        let (tid, n) = data.split_once(' ').unwrap();
        child.wait_until_blocked_in_futex(tid.parse().unwrap());
        (child, n.parse::<u64>().unwrap())
    };
    let (mut victim, n_victim) = spawn_blocked(0, "never");
    let (mut survivor, n_survivor) = spawn_blocked(1, "ok");
    assert!(n_victim > 0);
    drop(tx);
    victim.kill();
    let mut tracker = Tracker::new(2);
    drain_until_disconnected(&rx, &mut tracker);
    assert_eq!(tracker.next, [n_victim, n_survivor + 1]);
    survivor.wait_success();
}

/// The receiver process is killed while senders block on a full ring: the
/// senders get `SendError::Disconnected` (within a tick). Opening then
/// reports `ReceiverGone`, and a new receiver takes the channel over with
/// every committed message.
#[test]
fn receiver_killed_while_senders_block() {
    run_child_role(run_role);
    const TEST: &str = "receiver_killed_while_senders_block";
    let name = unique_name("killrx");
    let mut receiver = Spawn::new(TEST, "idle_receiver", &name)
        .param("capacity", 4096)
        .spawn();
    receiver.expect_event("ready");
    let mut senders = Vec::new();
    let mut counts = Vec::new();
    for id in 0..2 {
        let mut child = Spawn::new(TEST, "fill_then_block", &name)
            .param("id", id)
            .param("expect", "disconnected")
            .spawn();
        let data = child.expect_event("blocked");
        let (tid, n) = data.split_once(' ').unwrap();
        child.wait_until_blocked_in_futex(tid.parse().unwrap());
        counts.push(n.parse::<u64>().unwrap());
        senders.push(child);
    }
    receiver.kill();
    for child in &mut senders {
        child.wait_success();
    }
    assert!(matches!(
        Sender::<Msg>::open(&name).map_err(OpenError::into_kind),
        Err(OpenErrorKind::ReceiverGone)
    ));
    let rx = Builder::new(&name)
        .capacity(4096)
        .receiver::<Msg>()
        .unwrap();
    assert!(rx.was_taken_over());
    let mut tracker = Tracker::new(2);
    drain_until_disconnected(&rx, &mut tracker);
    assert_eq!(tracker.next, counts);
}

/// The receiver process is killed after receiving part of the messages; a
/// new `shmpsc::channel` on the name takes over and receives exactly the
/// committed messages not yet received, then `Disconnected` (the dead
/// receiver's own sender counts as dropped).
#[test]
fn receiver_killed_new_receiver_takes_over() {
    run_child_role(run_role);
    const TEST: &str = "receiver_killed_new_receiver_takes_over";
    const SENT: u64 = 1_000;
    const TAKEN: u64 = 300;
    let name = unique_name("takeover");
    let mut receiver = Spawn::new(TEST, "partial_receiver", &name)
        .param("take", TAKEN)
        .spawn();
    receiver.expect_event("ready");
    let mut sender = Spawn::new(TEST, "plain_sender", &name)
        .param("id", 0)
        .param("count", SENT)
        .param("open", 1)
        .spawn();
    sender.wait_success();
    receiver.expect_event("received");
    receiver.kill();
    let (tx, rx) = shmpsc::channel::<Msg>(&name).unwrap();
    assert!(rx.was_taken_over());
    drop(tx);
    let mut tracker = Tracker::new(1);
    tracker.next[0] = TAKEN;
    drain_until_disconnected(&rx, &mut tracker);
    assert_eq!(tracker.next, [SENT]);
}

/// Senders streaming as fast as they can are killed (SIGKILL) at
/// pseudo-random points, possibly mid-claim or while blocked on a full
/// ring. Each sender's received messages are a gap-free, intact prefix
/// reaching at least the kill point, and the receiver ends with
/// `Disconnected`. Set SHMPSC_TEST_SEED to replay a run.
#[test]
fn senders_killed_at_random_moments() {
    run_child_role(run_role);
    const SENDERS: usize = 3;
    const ROUNDS: usize = 3;
    let seed: u64 = std::env::var("SHMPSC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        });
    println!("SHMPSC_TEST_SEED={seed}");
    let mut state = seed | 1;
    let mut rand = move |below: u64| {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    };
    for round in 0..ROUNDS {
        let name = unique_name(&format!("randkill{round}"));
        let (tx, rx) = shmpsc::channel::<Wire>(&name).unwrap();
        let mut children: Vec<Child> = (0..SENDERS)
            .map(|id| {
                Spawn::new("senders_killed_at_random_moments", "hello_sender", &name)
                    .param("id", id)
                    .param("count", u64::MAX)
                    .spawn()
            })
            .collect();
        for _ in 0..SENDERS {
            assert!(matches!(recv_guarded(&rx), Some(Wire::Hello { .. })));
        }
        drop(tx);
        let kill_at: Vec<u64> = (0..SENDERS).map(|_| 1 + rand(20_000)).collect();
        for child in &mut children {
            child.send_line("go");
        }
        let mut tracker = Tracker::new(SENDERS);
        let mut alive = SENDERS;
        while let Some(w) = recv_guarded(&rx) {
            let Wire::Data(m) = w else {
                panic!("unexpected {w:?}")
            };
            tracker.accept(&m);
            let i = m.sender as usize;
            if tracker.next[i] == kill_at[i] {
                children[i].kill();
                alive -= 1;
            }
        }
        assert_eq!(alive, 0, "disconnected while senders were alive");
        for (i, (&got, &at)) in tracker.next.iter().zip(&kill_at).enumerate() {
            assert!(got >= at, "round {round} sender {i}: got {got} < {at}");
        }
    }
}

/// A sender's queries against a receiver in another process: `len`,
/// `is_full`, `capacity`, `same_channel`, and `is_disconnected` once that
/// process is killed (without sending).
#[test]
fn sender_queries_and_a_killed_receiver() {
    run_child_role(run_role);
    let name = unique_name("queries");
    let mut child = Spawn::new(
        "sender_queries_and_a_killed_receiver",
        "idle_receiver",
        &name,
    )
    .param("capacity", 4096)
    .spawn();
    child.expect_event("ready");
    let tx = Sender::<Msg>::open(&name).unwrap();
    let other = Sender::<Msg>::open(&name).unwrap();
    assert!(tx.same_channel(&other) && tx.same_channel(&tx.clone()));
    assert_eq!(tx.capacity(), 4096);
    assert!(tx.is_empty() && !tx.is_full() && !tx.is_disconnected());
    let mut n = 0;
    while tx.try_send(Msg::new(0, n)).is_ok() {
        n += 1;
    }
    // Room may be left for smaller records: fill it with 1-byte ones.
    while tx.try_send_bytes(&[0]).is_ok() {
        n += 1;
    }
    assert!(tx.is_full());
    assert_eq!(tx.len() as u64, n);
    assert_eq!(other.len() as u64, n);
    child.kill();
    assert!(tx.is_disconnected());
    assert!(matches!(
        tx.try_send(Msg::new(0, n)),
        Err(TrySendError::Disconnected(_))
    ));
}
