//! Review 8 (removal and stale-channel replacement): a sender that
//! attaches while a new receiver replaces a dead receiver's channel loses
//! no acknowledged message; leftovers that were never ready are removable;
//! another layout version's leftover is kept with a way out; a wider mode
//! than the dead receiver's is not silently kept narrow.

mod common;
mod raw;

use std::os::unix::fs::PermissionsExt;

use common::{
    channel_name, emit, read_line, run_child_role, unique_name, wait_for_stdin_eof, Spawn,
};
use serde::{Deserialize, Serialize};
use shmpsc::{Builder, Sender};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct RecV1 {
    level: u8,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct RecV2 {
    level: u8,
    pid: u32,
}

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        "idle_receiver" => {
            let _rx = Builder::new(&name).receiver::<RecV1>().expect("create");
            emit("ready");
            wait_for_stdin_eof();
        }
        // A receiver of the new type: reports whether it took over, then
        // on "go" reports what is in its channel (it has no sender of its
        // own, so `Disconnected` when nothing is).
        "v2_receiver" => {
            let rx = Builder::new(&name).receiver::<RecV2>().expect("create v2");
            emit(format!("ready {}", rx.was_taken_over()));
            assert_eq!(read_line(), "go");
            match rx.try_recv() {
                Ok(m) => emit(format!("got {}", m.level)),
                Err(e) => emit(format!("got none: {e:?}")),
            }
            wait_for_stdin_eof();
        }
        "v1_sender" => {
            let tx = match Sender::<RecV1>::open(&name) {
                Ok(tx) => {
                    emit("opened ok");
                    tx
                }
                Err(e) => {
                    emit(format!("opened err: {:?}", e.kind()));
                    return;
                }
            };
            match tx.send(RecV1 { level: 42 }) {
                Ok(()) => emit("sent ok"),
                Err(e) => emit(format!("sent err: {e:?}")),
            }
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// A new receiver of another type holds the dead receiver's lock (stopped
/// before it reads the header), a sender sees "receiver alive" and stops
/// before taking a slot; the receiver then replaces the empty channel
/// (removes its name, creates it anew), and the sender goes on. The sender
/// must not get `Ok` for a message nobody will read.
#[test]
fn a_sender_attaching_while_a_stale_channel_is_replaced_loses_nothing_acknowledged() {
    run_child_role(run_role);
    const TEST: &str =
        "a_sender_attaching_while_a_stale_channel_is_replaced_loses_nothing_acknowledged";
    let name = unique_name("review8-race");
    let mut old = Spawn::new(TEST, "idle_receiver", &name).spawn();
    old.expect_event("ready");
    old.kill();

    let mut r2 = Spawn::new(TEST, "v2_receiver", &name);
    r2.command().env("SHMPSC_TEST_HOOK", "header-read:1:stop");
    let mut r2 = r2.spawn();
    r2.wait_until_stopped();
    let mut s = Spawn::new(TEST, "v1_sender", &name);
    s.command().env("SHMPSC_TEST_HOOK", "sender-checked:1:stop");
    let mut s = s.spawn();
    s.wait_until_stopped();

    r2.signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(
        r2.expect_event("ready"),
        "false",
        "created anew, not taken over"
    );
    s.signal(nix::sys::signal::Signal::SIGCONT);
    let opened = s.expect_event("opened");
    let sent = if opened == "ok" {
        s.expect_event("sent")
    } else {
        String::new()
    };
    s.wait_success();
    r2.send_line("go");
    let got = r2.expect_event("got");
    assert!(
        !(sent == "ok" && got.starts_with("none")),
        "the sender got Ok for a message nobody will read: opened {opened:?}, sent {sent:?}, \
         receiver got {got:?}"
    );
    assert_eq!(opened, "err: ReceiverGone");
}

/// A leftover whose creator died before it was ready holds nothing:
/// `remove` and the sweep remove it without `--force`.
#[test]
fn a_leftover_that_was_never_ready_is_removable() {
    run_child_role(run_role);
    let name =
        common::dead_receiver_channel("a_leftover_that_was_never_ready_is_removable", "r8-nr");
    raw::Raw::open(&name).set_u32(raw::STATE, 0);
    shmpsc::remove(&name).unwrap();
    let name =
        common::dead_receiver_channel("a_leftover_that_was_never_ready_is_removable", "r8-nr2");
    raw::Raw::open(&name).set_u32(raw::STATE, 0);
    assert_eq!(
        shmpsc::sweep(&name).unwrap().removed,
        std::slice::from_ref(&name)
    );
}

/// Another layout version's leftover: this version cannot count its
/// messages, so it keeps it and says how to remove it.
#[test]
fn another_layout_versions_leftover_is_kept_with_a_way_out() {
    run_child_role(run_role);
    let name = common::dead_receiver_channel(
        "another_layout_versions_leftover_is_kept_with_a_way_out",
        "r8-ver",
    );
    raw::Raw::open(&name).set_u32(raw::VERSION, 1);
    let err = shmpsc::remove(&name).unwrap_err();
    assert!(err.to_string().contains("shmpsc rm --force"), "{err}");
    shmpsc::remove_forced(&name).unwrap();
}

/// A dead receiver's empty 0o600 channel and a new receiver asking for
/// 0o666: the channel is created anew with the mode asked for, not taken
/// over with the old one.
#[test]
fn a_wider_mode_than_the_dead_receivers_is_applied() {
    run_child_role(run_role);
    let name =
        common::dead_receiver_channel("a_wider_mode_than_the_dead_receivers_is_applied", "r8-mode");
    let rx = Builder::new(&name).mode(0o666).receiver::<RecV1>().unwrap();
    assert!(!rx.was_taken_over());
    let perms = std::fs::metadata(raw::shm_path(&name))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(perms, 0o666);
}
