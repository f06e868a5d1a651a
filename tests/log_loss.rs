//! Log records must not vanish silently (issue 15): a sink's drops are
//! counted in the channel's statistics (what `shmpsc stat` and `ls` show)
//! and reported to the daemon as a record as soon as there is room; a
//! bounded-wait policy loses nothing to a daemon that keeps up.
#![cfg(any(feature = "log", feature = "tracing"))]

mod common;

use common::HANG_GUARD;
use shmpsc::logging::{Level, LogRecord, LogSink, Policy, DROPPED_TARGET};
use shmpsc::Builder;

fn record(message: String) -> LogRecord {
    LogRecord::new(Level::Info, "test", message)
}

#[test]
fn drops_are_counted_in_the_channel_and_reported_to_the_daemon() {
    let name = common::unique_name("log-drops");
    let rx = Builder::new(&name)
        .capacity(4096)
        .receiver::<LogRecord>()
        .unwrap();
    let sink = LogSink::from_sender(rx.sender().unwrap());
    // Nobody receives: the ring fills, the rest is dropped.
    let sent = (0..1000)
        .filter(|i| sink.send(record(format!("burst {i}"))))
        .count() as u64;
    let dropped = 1000 - sent;
    assert!(dropped > 0 && sent > 0, "sent {sent}");
    assert_eq!((sink.sent(), sink.dropped()), (sent, dropped));
    let info = shmpsc::inspect(&name).unwrap();
    assert_eq!(
        info.dropped_messages, dropped,
        "the channel counts the drops"
    );

    // The daemon catches up: it gets the burst's records, then, with the
    // next record, a report of what was dropped, before that record.
    for i in 0..sent {
        assert_eq!(rx.recv().unwrap().message, format!("burst {i}"));
    }
    assert!(sink.send(record("after".into())));
    let report = rx.recv().unwrap();
    assert_eq!(report.target, DROPPED_TARGET);
    assert_eq!(report.level, Level::Warn);
    assert_eq!(report.field("dropped"), Some(dropped.to_string().as_str()));
    assert!(report
        .message
        .starts_with(&format!("{dropped} log records dropped")));
    assert_eq!(rx.recv().unwrap().message, "after");
    // Reported once.
    assert!(sink.send(record("again".into())));
    assert_eq!(rx.recv().unwrap().message, "again");
}

#[test]
fn a_bounded_wait_policy_loses_nothing_to_a_daemon_that_keeps_up() {
    const N: u64 = 20_000;
    let name = common::unique_name("log-wait");
    let rx = Builder::new(&name)
        .capacity(4096)
        .receiver::<LogRecord>()
        .unwrap();
    let sink = LogSink::from_sender(rx.sender().unwrap());
    // The bound is the hang guard: a daemon that keeps up makes room long
    // before it.
    sink.set_policy(Policy::WaitUpTo(HANG_GUARD));
    let daemon = std::thread::spawn(move || {
        (0..N)
            .map(|_| rx.recv_timeout(HANG_GUARD).unwrap().message)
            .collect::<Vec<_>>()
    });
    for i in 0..N {
        assert!(sink.send(record(format!("r{i}"))), "record {i} dropped");
    }
    let got = daemon.join().unwrap();
    assert_eq!(sink.dropped(), 0);
    assert!(got.iter().enumerate().all(|(i, m)| *m == format!("r{i}")));
    assert_eq!(sink.policy(), Policy::WaitUpTo(HANG_GUARD));
    sink.set_policy(Policy::Drop);
    assert_eq!(sink.policy(), Policy::Drop);
}

/// `LogRecord::json_line` is one line of valid JSON whatever the record
/// holds (quotes, backslashes, newlines, control characters, non-ASCII),
/// with every part of the record in it: what a log shipper reads.
#[test]
fn json_lines_are_valid_json_with_every_part_of_the_record() {
    let tricky = "a \"quoted\" \\ path\nnext line\ttab \u{1} bell \u{2028} é ✓";
    let r = LogRecord::new(Level::Error, "app::db", tricky)
        .with_field("query", tricky)
        .with_field("ms", 12);
    let line = r.json_line();
    assert!(!line.contains('\n'), "{line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["message"], tricky);
    assert_eq!(v["fields"]["query"], tricky);
    assert_eq!(v["fields"]["ms"], "12");
    assert_eq!(v["level"], "ERROR");
    assert_eq!(v["target"], "app::db");
    assert_eq!(v["pid"], std::process::id());
    assert_eq!(v["process"], r.process.as_str());
    assert_eq!(v["time"], r.utc_time().to_string());
}
