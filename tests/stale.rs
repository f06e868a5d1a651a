//! Channels left by a receiver that died (issue 15): the everyday loop of
//! a daemon killed, its message type changed, and run again. A new
//! receiver of another type or other settings creates the channel anew
//! when nothing would be lost, and otherwise is refused with an error that
//! says who left it, what it holds and what to do.

mod common;

use common::{channel_name, emit, run_child_role, unique_name, wait_for_stdin_eof, Spawn};
use serde::{Deserialize, Serialize};
use shmpsc::{Builder, OpenErrorKind, Sender};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct RecV1 {
    level: u8,
    msg: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct RecV2 {
    level: u8,
    msg: String,
    pid: u32,
}

fn run_role(role: &str) {
    match role {
        // The old daemon: a receiver of `RecV1`, killed while it waits.
        "v1_receiver" => {
            let _rx = Builder::new(&channel_name())
                .receiver::<RecV1>()
                .expect("create");
            emit("ready");
            wait_for_stdin_eof();
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// A `RecV1` channel whose receiver process was killed.
fn dead_v1_channel(test: &str, name: &str) -> u32 {
    let mut rx = Spawn::new(test, "v1_receiver", name).spawn();
    rx.expect_event("ready");
    let pid = rx.pid();
    rx.kill();
    pid
}

#[test]
fn another_type_on_an_empty_stale_channel_creates_it_anew() {
    run_child_role(run_role);
    let name = unique_name("stale-empty");
    dead_v1_channel(
        "another_type_on_an_empty_stale_channel_creates_it_anew",
        &name,
    );
    let rx = Builder::new(&name).receiver::<RecV2>().unwrap();
    assert!(!rx.was_taken_over(), "nothing to take over: created anew");
    let tx = Sender::<RecV2>::open(&name).unwrap();
    let r = RecV2 {
        level: 1,
        msg: "v2".into(),
        pid: 7,
    };
    tx.send(RecV2 { ..r }).unwrap();
    assert_eq!(rx.recv().unwrap().msg, "v2");
}

#[test]
fn another_type_on_a_stale_channel_with_messages_is_refused_with_what_to_do() {
    run_child_role(run_role);
    let test = "another_type_on_a_stale_channel_with_messages_is_refused_with_what_to_do";
    let name = unique_name("stale-pending");
    let mut rx = Spawn::new(test, "v1_receiver", &name).spawn();
    rx.expect_event("ready");
    let old_pid = rx.pid();
    let tx = Sender::<RecV1>::open(&name).unwrap();
    for i in 0..3 {
        tx.send(RecV1 {
            level: i,
            msg: "kept".into(),
        })
        .unwrap();
    }
    drop(tx);
    rx.kill();

    let err = Builder::new(&name).receiver::<RecV2>().unwrap_err();
    let text = err.to_string();
    match err.kind() {
        OpenErrorKind::Stale {
            receiver_pid,
            pending,
            live_senders,
            ..
        } => {
            assert_eq!((*receiver_pid, *pending), (old_pid, 3));
            assert!(live_senders.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        text.contains(&format!("died (pid {old_pid}) with 3 undelivered messages")),
        "{text}"
    );
    assert!(
        text.contains(
            "it carries `RecV1 { level: u8, msg: str }` (`stale::RecV1`, postcard-1), \
             not `RecV2 { level: u8, msg: str, pid: u32 }` (`stale::RecV2`, postcard-1)"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("shmpsc rm --force {name}")),
        "{text}"
    );
    // Nothing was lost: the old type's receiver takes it over and gets them.
    let rx = Builder::new(&name).receiver::<RecV1>().unwrap();
    assert!(rx.was_taken_over());
    let got: Vec<u8> = (0..3).map(|_| rx.recv().unwrap().level).collect();
    assert_eq!(got, [0, 1, 2]);
}

#[test]
fn other_settings_on_a_stale_channel_with_a_live_sender_are_refused() {
    run_child_role(run_role);
    let name = unique_name("stale-sender");
    let mut rx = Spawn::new(
        "other_settings_on_a_stale_channel_with_a_live_sender_are_refused",
        "v1_receiver",
        &name,
    )
    .spawn();
    rx.expect_event("ready");
    // A sender of the old channel (in this process) outlives its receiver.
    let tx = Sender::<RecV1>::open(&name).unwrap();
    rx.kill();
    let err = Builder::new(&name)
        .capacity(64 * 1024)
        .receiver::<RecV1>()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err.kind(), OpenErrorKind::Stale { pending: 0, live_senders, .. }
            if live_senders == &[std::process::id()]),
        "{err:?}"
    );
    assert!(
        text.contains("its capacity is 1048576 bytes, not the 65536 asked for"),
        "{text}"
    );
    assert!(
        text.contains(&format!("live senders (pid {})", std::process::id())),
        "{text}"
    );
    drop(tx);
    // Its sender gone, nothing is lost: created anew with the new capacity.
    let rx = Builder::new(&name)
        .capacity(64 * 1024)
        .receiver::<RecV1>()
        .unwrap();
    assert!(!rx.was_taken_over());
    assert_eq!(rx.capacity(), 64 * 1024);
}
