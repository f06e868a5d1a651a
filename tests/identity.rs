//! Message identity (issue 15): a daemon crate and a worker crate that
//! each define the same message share a channel, compared by serde format;
//! a changed message (a field added, renamed or retyped) is refused at
//! open, naming both formats; an explicit `Builder::schema` id stands for
//! the format on both sides, and a new id is refused at open; a sender of
//! a type without `Deserialize` is compared by name.

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

/// The worker's next version: a field added.
mod worker_v2 {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Rec {
        pub level: u8,
        pub msg: String,
        pub pid: u32,
    }
}

/// Changes that each make another format.
mod changed {
    /// A field renamed.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Rec {
        pub level: u8,
        pub text: String,
    }
    /// A field's type changed.
    pub mod retyped {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Rec {
            pub level: u16,
            pub msg: String,
        }
    }
    /// The struct renamed (serde passes its name: part of the format).
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Record {
        pub level: u8,
        pub msg: String,
    }
}

fn run_role(role: &str) {
    let name = channel_name();
    match role {
        // The daemon, in its own process, with no schema id: receives one
        // record and reports it.
        "daemon" => {
            let (_keep, rx) = Builder::new(&name).create::<daemon::Rec>().expect("create");
            emit("ready");
            let r = rx.recv().expect("recv");
            emit(format!("got {} {}", r.level, r.msg));
            wait_for_stdin_eof();
        }
        // The same with schema "rec-v1".
        "schema_daemon" => {
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
fn the_same_message_in_two_crates_shares_a_channel() {
    run_child_role(run_role);
    let name = unique_name("identity-shape");
    let mut d = Spawn::new(
        "the_same_message_in_two_crates_shares_a_channel",
        "daemon",
        &name,
    )
    .spawn();
    d.expect_event("ready");

    // Version 2 of the worker added a field: refused at open, naming both
    // formats (and the types they were traced from).
    let err = Sender::<worker_v2::Rec>::open(&name).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err.kind(), OpenErrorKind::TypeMismatch { .. }),
        "{err:?}"
    );
    assert!(
        text.contains(
            "carries `Rec { level: u8, msg: str }` (`identity::daemon::Rec`, postcard-1)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "this endpoint has `Rec { level: u8, msg: str, pid: u32 }` \
             (`identity::worker_v2::Rec`, postcard-1)"
        ),
        "{text}"
    );

    // The worker crate's copy of the message: accepted, and it arrives.
    let tx = Sender::<worker::Rec>::open(&name).unwrap();
    tx.send(worker::Rec {
        level: 2,
        msg: "same format".into(),
    })
    .unwrap();
    assert_eq!(d.expect_event("got"), "2 same format");
}

#[test]
fn a_renamed_or_retyped_field_or_struct_is_refused() {
    let name = unique_name("identity-changed");
    let _rx = Builder::new(&name).receiver::<daemon::Rec>().unwrap();
    let texts = [
        Sender::<changed::Rec>::open(&name).map(|_| ()),
        Sender::<changed::retyped::Rec>::open(&name).map(|_| ()),
        Sender::<changed::Record>::open(&name).map(|_| ()),
    ]
    .map(|r| r.unwrap_err().to_string());
    assert!(
        texts[0].contains("has `Rec { level: u8, text: str }`"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].contains("has `Rec { level: u16, msg: str }`"),
        "{}",
        texts[1]
    );
    assert!(
        texts[2].contains("has `Record { level: u8, msg: str }`"),
        "{}",
        texts[2]
    );
}

#[test]
fn senders_by_name_compare_names() {
    // A sender by name (a type without `Deserialize`, here one that
    // borrows) reaches a receiver whose format was traced, when the names
    // agree; the daemon's type under another name does not.
    #[derive(serde::Serialize)]
    struct Borrowed<'a> {
        level: u8,
        msg: &'a str,
    }
    let name = unique_name("identity-by-name");
    let rx = Builder::new(&name).receiver::<daemon::Rec>().unwrap();
    let by_name = Builder::new(&name)
        .open_sender_by_name::<daemon::Rec>()
        .unwrap();
    by_name
        .send(daemon::Rec {
            level: 1,
            msg: "by name".into(),
        })
        .unwrap();
    assert_eq!(rx.recv().unwrap().msg, "by name");
    let e = Builder::new(&name)
        .open_sender_by_name::<Borrowed<'_>>()
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("Borrowed"), "{e}");
}

#[test]
fn the_same_message_in_two_crates_shares_a_channel_by_schema_id() {
    run_child_role(run_role);
    let name = unique_name("identity");
    let mut d = Spawn::new(
        "the_same_message_in_two_crates_shares_a_channel_by_schema_id",
        "schema_daemon",
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
        text.contains(
            "this endpoint has `Rec { level: u8, msg: str }` (`identity::worker::Rec`, postcard-1)"
        ),
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
fn a_mismatch_names_both_sides() {
    let name = unique_name("identity-names");
    let _rx = Builder::new(&name).receiver::<daemon::Rec>().unwrap();
    let err = Sender::<worker_v2::Rec>::open(&name).unwrap_err();
    match err.kind() {
        OpenErrorKind::TypeMismatch {
            this,
            channel,
            type_name,
            ..
        } => {
            assert_eq!(
                this,
                "`Rec { level: u8, msg: str, pid: u32 }` (`identity::worker_v2::Rec`, postcard-1)"
            );
            assert_eq!(
                channel.as_deref(),
                Some("`Rec { level: u8, msg: str }` (`identity::daemon::Rec`, postcard-1)")
            );
            assert_eq!(*type_name, "identity::worker_v2::Rec");
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

// ------------------------------------------------ raw and encoded records

/// Raw bytes (`send_bytes`) on a typed channel: a typed receive reports
/// them instead of decoding them (eight zero bytes used to arrive as a
/// string of seven NULs), counts them, and goes on with the next record;
/// the bytes API receives both kinds.
#[test]
fn a_typed_receive_reports_raw_records_instead_of_decoding_them() {
    let name = unique_name("raw-typed");
    let (tx, rx) = shmpsc::channel::<String>(&name).unwrap();
    tx.send_bytes(&[0; 8]).unwrap();
    tx.send("encoded".to_string()).unwrap();
    match rx.recv() {
        Err(shmpsc::RecvError::Invalid(i)) => {
            assert!(i.was_sent_raw(), "{i}");
            assert_eq!(i.len(), 8);
            let text = i.to_string();
            assert!(text.contains("sent raw (send_bytes)"), "{text}");
            assert!(text.contains("recv_bytes_with"), "{text}");
        }
        other => panic!("a raw record on a typed receive: {other:?}"),
    }
    assert_eq!(rx.recv().as_deref(), Ok("encoded"));
    let info = shmpsc::inspect(&name).unwrap();
    assert_eq!(info.invalid_messages, 1);
    assert_eq!(info.pending_messages(), 0);

    // try_recv and recv_timeout report it too; iteration skips it.
    tx.send_bytes(b"raw").unwrap();
    assert!(matches!(
        rx.try_recv(),
        Err(shmpsc::TryRecvError::Invalid(i)) if i.was_sent_raw()
    ));
    tx.send_bytes(b"raw").unwrap();
    assert!(matches!(
        rx.recv_timeout(std::time::Duration::from_secs(60)),
        Err(shmpsc::RecvTimeoutError::Invalid(i)) if i.was_sent_raw()
    ));
    tx.send_bytes(b"raw").unwrap();
    tx.send("after".to_string()).unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["after"]);

    // The bytes API takes both.
    tx.send_bytes(b"raw").unwrap();
    tx.send("enc".to_string()).unwrap();
    assert_eq!(rx.recv_bytes_with(|b| b.to_vec()).unwrap(), b"raw");
    let encoded = rx.recv_bytes_with(|b| b.to_vec()).unwrap();
    assert_eq!(encoded, [3, b'e', b'n', b'c']);
}

/// A batch that mixes encoded and raw records keeps each one's kind, in
/// one block and on its own (a raw record too large for a block).
#[test]
fn a_batch_keeps_each_records_kind() {
    let name = unique_name("raw-batch");
    let (tx, mut rx) = Builder::new(&name)
        .capacity(1 << 17)
        .max_message_size(60_000)
        .create::<String>()
        .unwrap();
    let big = vec![7u8; 40_000];
    let mut batch = tx.batch();
    batch.send("a".to_string()).unwrap();
    batch.send_bytes(b"x").unwrap();
    batch.send("b".to_string()).unwrap();
    batch.send_bytes(&big).unwrap();
    batch.send("c".to_string()).unwrap();
    drop(batch);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(match rx.recv() {
            Ok(s) => s,
            Err(shmpsc::RecvError::Invalid(i)) if i.was_sent_raw() => format!("raw {}", i.len()),
            Err(e) => panic!("{e:?}"),
        });
    }
    assert_eq!(got, ["a", "raw 1", "b", "raw 40000", "c"]);

    // Encoded bytes staged by the caller are decoded, in a block and alone.
    let mut batch = tx.batch();
    batch
        .send_encoded_bytes(&postcard::to_allocvec("pre-encoded").unwrap())
        .unwrap();
    let long = "l".repeat(40_000);
    batch
        .send_encoded_bytes(&postcard::to_allocvec(&long).unwrap())
        .unwrap();
    drop(batch);
    assert_eq!(rx.recv().as_deref(), Ok("pre-encoded"));
    assert_eq!(rx.recv().as_deref(), Ok(long.as_str()));

    // Zero-copy receives report it as well.
    tx.send_bytes(b"raw").unwrap();
    tx.send("borrowed".to_string()).unwrap();
    let mut view = rx.zero_copy();
    assert!(matches!(
        view.recv::<&str>(),
        Err(shmpsc::RecvError::Invalid(i)) if i.was_sent_raw()
    ));
    assert_eq!(view.recv::<&str>(), Ok("borrowed"));
}

/// Two formats that differ only inside a nested type read alike: the
/// refusal says so instead of showing two equal texts.
#[test]
fn a_difference_inside_a_nested_type_is_pointed_at() {
    mod old {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Inner {
            pub a: u8,
        }
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Outer {
            pub inner: Inner,
        }
    }
    mod new {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Inner {
            pub a: u16,
        }
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Outer {
            pub inner: Inner,
        }
    }
    let name = unique_name("identity-nested");
    let _rx = Builder::new(&name).receiver::<old::Outer>().unwrap();
    let text = Sender::<new::Outer>::open(&name)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(text.contains("carries `Outer { inner: Inner }`"), "{text}");
    assert!(text.contains("has `Outer { inner: Inner }`"), "{text}");
    assert!(text.contains("differ inside a type they contain"), "{text}");
}

/// A message with a serde alias cannot be traced (serde lists aliases among
/// the names): it is compared by name, never by a format that would pair
/// names with the wrong fields.
#[test]
fn a_message_with_aliases_is_compared_by_name() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Aliased {
        #[serde(alias = "lvl")]
        level: u8,
    }
    let name = unique_name("identity-alias");
    let rx = Builder::new(&name).receiver::<Aliased>().unwrap();
    let tx = Sender::<Aliased>::open(&name).unwrap();
    tx.send(Aliased { level: 4 }).unwrap();
    assert_eq!(rx.recv().unwrap(), Aliased { level: 4 });
    let e = Sender::<worker::Rec>::open(&name).map(|_| ()).unwrap_err();
    assert!(
        e.to_string().contains(
            "carries `identity::a_message_with_aliases_is_compared_by_name::Aliased` (postcard-1)"
        ),
        "{e}"
    );
}
