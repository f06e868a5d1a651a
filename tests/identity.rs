//! Message identity (issue 15): a daemon crate and a worker crate that
//! each define the same message share a channel by giving both sides the
//! same `Builder::schema` id; a changed schema (a new id) is refused at
//! open; and a refusal names what the channel carries and what the
//! endpoint has.

mod common;

use common::{channel_name, emit, run_child_role, unique_name, wait_for_stdin_eof, Spawn};
use shmpsc::{Builder, OpenErrorKind, Sender};

/// The daemon's crate.
mod daemon {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Rec {
        pub level: u8,
        pub msg: String,
    }
}

/// The worker's crate: the same message, defined again.
mod worker {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Rec {
        pub level: u8,
        pub msg: String,
    }
}

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        // The daemon, in its own process: schema "rec-v1"; receives one
        // record and reports it.
        "daemon" => {
            // Its own sender keeps the receive from ending while no
            // worker is attached yet.
            let (_keep, rx) = Builder::new(&name)
                .schema("rec-v1")
                .create::<daemon::Rec>()
                .expect("create");
            emit("ready");
            let r = rx.recv().expect("recv");
            emit(format!("got {} {}", r.level, r.msg));
            wait_for_stdin_eof();
        }
        other => panic!("unknown role {other:?}"),
    }
}

#[test]
fn the_same_message_in_two_crates_shares_a_channel_by_schema_id() {
    run_child_role(run_role);
    let name = unique_name("identity");
    let mut d = Spawn::new(
        "the_same_message_in_two_crates_shares_a_channel_by_schema_id",
        "daemon",
        &name,
    )
    .spawn();
    d.expect_event("ready");

    // Without the id: refused, and the error shows both sides.
    let err = Sender::<worker::Rec>::open(&name).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err.kind(), OpenErrorKind::TypeMismatch { .. }),
        "{err:?}"
    );
    assert!(
        text.contains("carries schema `rec-v1` (postcard-1)"),
        "{text}"
    );
    assert!(
        text.contains("this endpoint has `identity::worker::Rec` (postcard-1)"),
        "{text}"
    );
    assert!(text.contains("Builder::schema"), "{text}");
    // Another id (a changed schema): refused at open, not at decode.
    let err = Builder::new(&name)
        .schema("rec-v2")
        .open_sender::<worker::Rec>()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("this endpoint has schema `rec-v2`"),
        "{err}"
    );

    // The same id: the worker's type reaches the daemon's.
    let tx = Builder::new(&name)
        .schema("rec-v1")
        .open_sender::<worker::Rec>()
        .unwrap();
    tx.send(worker::Rec {
        level: 3,
        msg: "from the worker crate".into(),
    })
    .unwrap();
    assert_eq!(d.expect_event("got"), "3 from the worker crate");
}

#[test]
fn without_ids_a_mismatch_names_both_types() {
    let name = unique_name("identity-names");
    let _rx = Builder::new(&name).receiver::<daemon::Rec>().unwrap();
    let err = Sender::<worker::Rec>::open(&name).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("carries `identity::daemon::Rec` (postcard-1)"),
        "{text}"
    );
    assert!(
        text.contains("has `identity::worker::Rec` (postcard-1)"),
        "{text}"
    );
    match err.kind() {
        OpenErrorKind::TypeMismatch { this, channel, .. } => {
            assert_eq!(this, "`identity::worker::Rec` (postcard-1)");
            assert_eq!(
                channel.as_deref(),
                Some("`identity::daemon::Rec` (postcard-1)")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn endpoints_made_from_a_schema_endpoint_keep_its_id() {
    let name = unique_name("identity-derived");
    let rx = Builder::new(&name)
        .schema("rec-v1")
        .receiver::<daemon::Rec>()
        .unwrap();
    let tx = rx.sender().unwrap();
    let tx2 = tx.clone();
    tx2.send(daemon::Rec {
        level: 1,
        msg: "derived".into(),
    })
    .unwrap();
    assert_eq!(rx.recv().unwrap().msg, "derived");
}
