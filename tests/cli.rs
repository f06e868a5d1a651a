//! End-to-end tests of the `shmpsc` command-line tool: real sender and
//! receiver processes, the real binary, its output checked.
//!
//! Needs the `cli` feature (the binary only exists with it, and
//! `CARGO_BIN_EXE_shmpsc` with the binary):
//!
//! ```text
//! cargo test --release --features cli,log,tracing --test cli
//! ```
//!
//! The log-sink tests at the end also need `log` (for `shmpsc::logging`).
#![cfg(feature = "cli")]

mod common;

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use common::{Child, Spawn, HANG_GUARD};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

// ----------------------------------------------------------- child roles

/// Roles the child processes of these tests play.
fn run_role(role: &str) {
    let name = common::channel_name();
    match role {
        // Attach a sender, send `count` messages, stay until stdin closes.
        "sender" => {
            let tx = shmpsc::Sender::<u64>::open(&name).expect("open sender");
            let n: u64 = common::param("count");
            for i in 0..n {
                tx.send(i).expect("send");
            }
            common::emit("sent");
            common::wait_for_stdin_eof();
        }
        // Create the channel (receiver only), stay until killed.
        "receiver" => {
            let _rx = shmpsc::Builder::new(&name)
                .receiver::<u64>()
                .expect("create channel");
            common::emit("ready");
            common::wait_for_stdin_eof();
        }
        other => panic!("unknown role {other}"),
    }
}

// ---------------------------------------------------------------- helpers

/// Runs the `shmpsc` binary with `args` and returns its output. Bounded by
/// the hang guard: a CLI that hangs is killed and the test fails.
fn cli(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_shmpsc"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning shmpsc");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(HANG_GUARD) {
        Ok(r) => r.expect("waiting for shmpsc"),
        Err(_) => {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let _ = waiter.join();
            panic!("hang guard: `shmpsc {}` did not finish", args.join(" "));
        }
    };
    let _ = waiter.join();
    output
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `shmpsc args` and asserts that it succeeds; returns its stdout.
fn cli_ok(args: &[&str]) -> String {
    let o = cli(args);
    assert!(
        o.status.success(),
        "`shmpsc {}` failed ({}):\n{}\n{}",
        args.join(" "),
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Parses a table whose columns are separated by two or more spaces (cells
/// hold single spaces only) into rows of header -> cell.
fn table(text: &str) -> Vec<HashMap<String, String>> {
    let split = |line: &str| -> Vec<String> {
        line.trim()
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split(lines.next().expect("a header line"));
    lines
        .map(split)
        .filter(|cells| cells.len() == header.len())
        .map(|cells| header.iter().cloned().zip(cells).collect())
        .collect()
}

/// The `shmpsc ls` row of channel `name`.
fn ls_row(name: &str) -> Option<HashMap<String, String>> {
    table(&cli_ok(&["ls", "--prefix", name]))
        .into_iter()
        .find(|r| r["NAME"] == name)
}

/// The PIDs in an `ls` sender cell such as `2: 11,12`.
fn pids(cell: &str) -> Vec<u32> {
    match cell.split_once(": ") {
        Some((_, list)) => list.split(',').filter_map(|p| p.parse().ok()).collect(),
        None => Vec::new(),
    }
}

/// A child process holding the receiver of a new channel `name`, killed
/// with SIGKILL: the channel stays, with a dead receiver.
fn channel_with_dead_receiver(test: &str, name: &str) {
    let mut rx = Spawn::new(test, "receiver", name).spawn();
    rx.expect_event("ready");
    rx.kill();
}

fn sender(test: &str, name: &str, count: u64) -> Child {
    let mut c = Spawn::new(test, "sender", name)
        .param("count", count)
        .spawn();
    c.expect_event("sent");
    c
}

// ------------------------------------------------------------------ tests

#[test]
fn ls_shows_receiver_senders_counters_and_a_killed_sender_as_dead() {
    common::run_child_role(run_role);
    const TEST: &str = "ls_shows_receiver_senders_counters_and_a_killed_sender_as_dead";
    let name = common::unique_name("cli-ls");
    let rx = shmpsc::Builder::new(&name).receiver::<u64>().unwrap();

    let mut live = sender(TEST, &name, 3);
    let mut killed = sender(TEST, &name, 5);
    let killed_pid = killed.pid();
    killed.kill(); // SIGKILL, and reaped

    let row = ls_row(&name).expect("the channel is listed");
    assert_eq!(row["RECEIVER"], format!("alive {}", std::process::id()));
    assert_eq!(pids(&row["LIVE SENDERS"]), [live.pid()], "{row:?}");
    assert!(row["LIVE SENDERS"].starts_with("1: "), "{row:?}");
    assert_eq!(pids(&row["DEAD SENDERS"]), [killed_pid], "{row:?}");
    assert_eq!(row["SENT MSGS"], "8", "{row:?}");
    assert_eq!(row["RECV MSGS"], "0", "{row:?}");
    assert_eq!(row["CAPACITY"], "1.0 MiB");
    assert!(row["PENDING"].starts_with("8 ("), "{row:?}");

    // The same as JSON, for scripts and monitoring.
    let all: serde_json::Value =
        serde_json::from_str(&cli_ok(&["ls", "--json", "--prefix", &name])).unwrap();
    let ch = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name.as_str())
        .expect("listed in the JSON");
    assert_eq!(ch["receiver"]["state"], "alive");
    assert_eq!(ch["receiver"]["pid"], std::process::id());
    assert_eq!(ch["sent_messages"], 8);
    assert_eq!(ch["pending_messages"], 8);
    assert_eq!(ch["capacity"], 1 << 20);
    let senders = ch["senders"].as_array().unwrap();
    assert_eq!(senders.len(), 2, "{ch}");
    let dead: Vec<_> = senders.iter().filter(|s| s["alive"] == false).collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["pid"], killed_pid);
    // `stat --json`: one object; with --count, one per line.
    let one: serde_json::Value =
        serde_json::from_str(&cli_ok(&["stat", &name, "--json", "--interval", "0"])).unwrap();
    assert_eq!(one["name"], name.as_str());
    assert!(
        one.get("received_messages_per_s").is_none(),
        "no rates without an interval"
    );
    let lines = cli_ok(&[
        "stat",
        &name,
        "--json",
        "--count",
        "2",
        "--interval",
        "0.01",
    ]);
    let objects: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2, "{lines}");
    assert!(objects[1]["received_messages_per_s"].is_number(), "{lines}");

    // Receive everything: the counters follow.
    let got: Vec<u64> = (0..8).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(
        got.iter().sum::<u64>(),
        (0..3).sum::<u64>() + (0..5).sum::<u64>()
    );
    let row = ls_row(&name).expect("the channel is listed");
    assert_eq!(row["RECV MSGS"], "8", "{row:?}");
    assert_eq!(row["FILL"], "0.0%", "{row:?}");

    // The receiver's first look at an empty ring reaps the dead sender's
    // slot: it is no longer listed as dead, but counted as a death.
    assert!(rx.try_recv().is_err());
    let row = ls_row(&name).expect("the channel is listed");
    assert_eq!(row["DEAD SENDERS"], "0 (+1 reaped)", "{row:?}");
    assert_eq!(shmpsc::inspect(&name).unwrap().sender_deaths, 1);

    live.close_stdin();
    live.wait_success();
    drop(rx);
    assert!(
        ls_row(&name).is_none(),
        "a dropped receiver removes the name"
    );
}

#[test]
fn stat_shows_one_channel_and_watch_stops_after_count() {
    common::run_child_role(run_role);
    const TEST: &str = "stat_shows_one_channel_and_watch_stops_after_count";
    let name = common::unique_name("cli-stat");
    let rx = shmpsc::Builder::new(&name).receiver::<u64>().unwrap();
    let mut s = sender(TEST, &name, 10);
    assert_eq!(rx.recv(), Ok(0));

    let out = cli_ok(&["stat", &name, "--interval", "0"]);
    assert!(out.contains(&format!("channel      {name}")), "{out}");
    assert!(
        out.contains(&format!("alive, pid {}", std::process::id())),
        "{out}"
    );
    assert!(out.contains("received     1 messages"), "{out}");
    assert!(out.contains("senders      1 (1 live, 0 dead)"), "{out}");
    let senders: String = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("SLOT"))
        .map(|l| format!("{l}\n"))
        .collect();
    let rows = table(&senders);
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["PID"], s.pid().to_string());
    assert_eq!(rows[0]["STATE"], "live");
    assert_eq!(rows[0]["SENT MSGS"], "10");

    // Rates measured over one (short) interval.
    let out = cli_ok(&["stat", &name, "--interval", "0.01"]);
    assert!(out.contains("rate: ") && out.contains("msg/s"), "{out}");

    // --watch --count N: N refreshes, then exit.
    let out = cli_ok(&[
        "stat",
        &name,
        "--watch",
        "--count",
        "3",
        "--interval",
        "0.01",
    ]);
    for i in 1..=3 {
        assert!(out.contains(&format!("refresh {i}/3")), "{out}");
    }
    assert!(!out.contains("refresh 4"), "{out}");
    assert_eq!(out.matches("channel      ").count(), 3, "{out}");
    assert!(out.contains("pending      "), "{out}");

    // --count alone implies --watch.
    let out = cli_ok(&["stat", &name, "--count", "2", "--interval", "0.01"]);
    assert!(
        out.contains("refresh 2/2") && !out.contains("refresh 3"),
        "{out}"
    );

    // Comma-separated flags show comma-separated defaults.
    let help = cli_ok(&["bench", "--help"]);
    assert!(help.contains("[default: 64,1024]"), "{help}");
    assert!(help.contains("[default: shmpsc,unix,pipe]"), "{help}");

    let o = cli(&["stat", "cli-no-such-channel-anywhere"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));

    s.close_stdin();
    s.wait_success();
}

#[test]
fn rm_refuses_a_channel_in_use_and_removes_an_unused_one() {
    common::run_child_role(run_role);
    const TEST: &str = "rm_refuses_a_channel_in_use_and_removes_an_unused_one";
    let live = common::unique_name("cli-rm-live");
    let dead = common::unique_name("cli-rm-dead");
    let _rx = shmpsc::Builder::new(&live).receiver::<u64>().unwrap();
    channel_with_dead_receiver(TEST, &dead);

    let row = ls_row(&dead).expect("a dead receiver's channel stays");
    assert!(row["RECEIVER"].starts_with("dead "), "{row:?}");

    let o = cli(&["rm", &live]);
    assert!(!o.status.success(), "removing a channel in use must fail");
    // It names who uses it: this test process holds the receiver.
    let me = format!("in use by process {}", std::process::id());
    assert!(stderr(&o).contains(&me), "{}", stderr(&o));
    assert!(ls_row(&live).is_some());

    let out = cli_ok(&["rm", &dead]);
    assert!(out.contains(&format!("removed {dead}")), "{out}");
    assert!(ls_row(&dead).is_none());
    assert!(matches!(
        shmpsc::inspect(&dead).map_err(shmpsc::OpenError::into_kind),
        Err(shmpsc::OpenErrorKind::NotFound)
    ));
}

#[test]
fn gc_removes_only_channels_no_live_process_uses() {
    common::run_child_role(run_role);
    const TEST: &str = "gc_removes_only_channels_no_live_process_uses";
    // A prefix of our own, so that gc leaves other tests' channels alone.
    let prefix = format!("t-{}-gc-", std::process::id());
    let live = format!("{prefix}live");
    let dead = format!("{prefix}dead");
    let dead_with_sender = format!("{prefix}dead-rx-live-tx");
    let _rx = shmpsc::Builder::new(&live).receiver::<u64>().unwrap();
    channel_with_dead_receiver(TEST, &dead);
    // A dead receiver, but a live sender still uses the channel.
    let mut rx = Spawn::new(TEST, "receiver", &dead_with_sender).spawn();
    rx.expect_event("ready");
    let mut s = sender(TEST, &dead_with_sender, 1);
    rx.kill();
    let row = ls_row(&dead_with_sender).expect("listed");
    assert!(row["RECEIVER"].starts_with("dead "), "{row:?}");
    assert_eq!(pids(&row["LIVE SENDERS"]), [s.pid()], "{row:?}");

    let out = cli_ok(&["gc", "--prefix", &prefix, "--dry-run"]);
    assert_eq!(out.trim(), format!("would remove {dead}"), "{out}");
    assert!(ls_row(&dead).is_some(), "--dry-run removes nothing");

    let out = cli_ok(&["gc", "--prefix", &prefix]);
    assert_eq!(out.trim(), format!("removed {dead}"), "{out}");
    assert!(ls_row(&dead).is_none());
    assert!(ls_row(&live).is_some());
    assert!(ls_row(&dead_with_sender).is_some());

    let out = cli_ok(&["gc", "--prefix", &prefix]);
    assert_eq!(out.trim(), "no unused channels");

    // Its last sender gone, the channel with the dead receiver is unused,
    // but holds the message its sender sent: gc keeps it and says so (in
    // the dry run too), `ls` shows it pending, and --force removes it.
    s.close_stdin();
    s.wait_success();
    let row = ls_row(&dead_with_sender).expect("listed");
    assert_eq!(row["PENDING"], "1 (1 B)", "{row:?}");
    let out = cli_ok(&["gc", "--prefix", &prefix, "--dry-run"]);
    assert_eq!(
        out.trim(),
        format!(
            "would keep {dead_with_sender}: it holds 1 undelivered messages (1 B) (--force to \
             remove)\nno unused channels"
        ),
        "{out}"
    );
    let out = cli_ok(&["gc", "--prefix", &prefix]);
    assert!(
        out.starts_with(&format!("skipped {dead_with_sender}: channel `{dead_with_sender}` holds 1 undelivered message (1 bytes)")),
        "{out}"
    );
    assert!(ls_row(&dead_with_sender).is_some());
    let o = cli(&["rm", &dead_with_sender]);
    assert!(
        !o.status.success(),
        "rm of a channel with pending messages must fail"
    );
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let out = cli_ok(&["gc", "--prefix", &prefix, "--dry-run", "--force"]);
    assert_eq!(
        out.trim(),
        format!("would remove {dead_with_sender}, losing 1 undelivered messages (1 B)"),
        "{out}"
    );
    let out = cli_ok(&["gc", "--prefix", &prefix, "--force"]);
    assert_eq!(out.trim(), format!("removed {dead_with_sender}"), "{out}");
    assert!(ls_row(&live).is_some());
}

#[test]
fn bench_compares_shmpsc_a_unix_socket_and_a_pipe() {
    let out = cli_ok(&["bench", "--messages", "3000", "--sizes", "64,1024"]);
    let text: String = out
        .lines()
        .skip_while(|l| !l.starts_with("TRANSPORT"))
        .take_while(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let rows = table(&text);
    let seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["TRANSPORT"].clone(), r["SIZE"].clone()))
        .collect();
    let want: Vec<(String, String)> = ["64 B", "1.0 KiB"]
        .iter()
        .flat_map(|s| ["shmpsc", "unix", "pipe"].map(|t| (t.to_owned(), s.to_string())))
        .collect();
    assert_eq!(seen, want, "{out}");
    for r in &rows {
        assert_eq!(r["MESSAGES"], "3000", "{out}");
    }
}

#[test]
fn cli_errors_are_reported_with_a_failure_status() {
    let o = cli(&["rm", "cli-no-such-channel-anywhere"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let o = cli(&["bench", "--sizes", "0"]);
    assert!(!o.status.success());
    let o = cli(&["stat", "x", "--count", "2"]);
    assert!(!o.status.success(), "--count needs --watch");
}

// ------------------------------------------- the log sink, across processes

#[cfg(feature = "log")]
mod log_sink {
    use std::time::Instant;

    use shmpsc::logging::{Level, LogRecord, LogSink};

    use super::*;

    #[test]
    fn never_blocks_drops_and_counts_when_the_daemon_is_slow() {
        let name = common::unique_name("cli-sink-full");
        let (_keep, rx) = shmpsc::Builder::new(&name)
            .capacity(4096)
            .create::<LogRecord>()
            .unwrap();
        let sink = LogSink::new(&name);
        // Nobody receives: the ring fills, and send returns at once.
        let results: Vec<bool> = (0..500)
            .map(|i| sink.send(LogRecord::new(Level::Info, "t", format!("r{i}"))))
            .collect();
        let sent = results.iter().filter(|&&ok| ok).count() as u64;
        assert!(sent > 0 && sent < 500, "sent {sent}");
        assert_eq!((sink.sent(), sink.dropped()), (sent, 500 - sent));
        // What was sent arrives, in order.
        let got: Vec<String> = rx.try_iter().map(|r| r.message).collect();
        let want: Vec<String> = (0..sent).map(|i| format!("r{i}")).collect();
        assert_eq!(got, want);
        assert!(sink.is_connected(), "a full ring is not a disconnection");
    }

    #[test]
    fn reconnects_to_a_restarted_daemon() {
        let name = common::unique_name("cli-sink-restart");
        let (keep, rx) = shmpsc::channel::<LogRecord>(&name).unwrap();
        let sink = LogSink::new(&name);
        assert!(sink.send(LogRecord::new(Level::Info, "t", "one")));
        assert_eq!(rx.recv().unwrap().message, "one");

        // The daemon stops: records are dropped and counted, never waited for.
        drop((keep, rx));
        assert!(!sink.send(LogRecord::new(Level::Info, "t", "lost")));
        assert!(!sink.is_connected());
        assert_eq!(sink.dropped(), 1);

        // A new daemon on the same name: the sink reopens the channel within
        // one reconnect interval. Each attempt is one non-blocking send; the
        // loop is bounded by the hang guard, not a timing claim.
        let (_keep, rx) = shmpsc::channel::<LogRecord>(&name).unwrap();
        let start = Instant::now();
        let mut tries = 0u64;
        while !sink.send(LogRecord::new(Level::Warn, "t", "back")) {
            tries += 1;
            assert!(start.elapsed() < HANG_GUARD, "hang guard: no reconnect");
            std::thread::yield_now();
        }
        assert_eq!(sink.reconnects(), 1);
        assert_eq!(sink.dropped(), 1 + tries);
        // First the report of what was dropped while the daemon was away.
        let report = rx.recv().unwrap();
        assert_eq!(report.target, shmpsc::logging::DROPPED_TARGET);
        assert_eq!(
            report.field("dropped"),
            Some((1 + tries).to_string().as_str())
        );
        let r = rx.recv().unwrap();
        assert_eq!((r.level, r.message.as_str()), (Level::Warn, "back"));
    }
}
