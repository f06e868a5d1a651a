//! A log daemon: receives structured log records from many processes over
//! one shmpsc channel and writes them to stdout or a file, with per-source
//! counts. It survives the crash of any logging process, and its own: a
//! restarted daemon takes the channel over with every record still in it.
//!
//! ```text
//! # the whole story in one command: a daemon, four logging workers (one
//! # crashes), the daemon killed and restarted mid-stream, per-source counts
//! cargo run --release --example log_daemon --features tracing,log -- --demo
//!
//! # or by hand: the daemon in one terminal (Ctrl-C prints the counts) ...
//! cargo run --release --example log_daemon --features tracing,log -- --channel logs
//! # ... or as JSON lines (one record per line: time, level, pid, process,
//! # target, message, fields), which Vector, Fluent Bit and the
//! # OpenTelemetry collector's file receiver read, to ship the stream off the host
//! cargo run --release --example log_daemon --features tracing,log -- --channel logs --json --out logs.jsonl
//! # ... and logging workers in others
//! cargo run --release --example log_daemon --features tracing,log -- --worker 1 --channel logs
//! ```
//!
//! The workers log through `tracing` (`shmpsc::logging::ShmLayer`) and `log`
//! (`shmpsc::logging::ShmLogger`), sharing one `LogSink`: a log call never
//! blocks on the daemon; a record that finds the ring full or no daemon is
//! dropped and counted.

use std::collections::BTreeMap;
use std::error::Error;
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;
use shmpsc::logging::{LogRecord, LogSink, ShmLayer, ShmLogger};
use shmpsc::{RecvTimeoutError, TryRecvError};
use tracing_subscriber::layer::SubscriberExt;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let channel = value("--channel").unwrap_or_else(|| "logs".to_owned());
    if args.iter().any(|a| a == "--demo") {
        demo()
    } else if let Some(id) = value("--worker") {
        let records = value("--records").map_or(Ok(2000), |v| v.parse())?;
        let crash = value("--crash-after").map(|v| v.parse()).transpose()?;
        worker(&channel, id.parse()?, records, crash)
    } else if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: log_daemon [--channel NAME] [--out FILE] [--json]  run the daemon (Ctrl-C stops it)\n       \
             log_daemon --worker ID [--channel NAME] [--records N] [--crash-after K]\n       \
             log_daemon --demo                                  daemon + workers + restart, end to end"
        );
        Ok(())
    } else {
        let json = args.iter().any(|a| a == "--json");
        daemon(&channel, value("--out").map(PathBuf::from).as_deref(), json)
    }
}

// ------------------------------------------------------------------ daemon

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Records of one logging process.
#[derive(Default)]
struct Source {
    process: String,
    by_level: [u64; 5],
}

fn daemon(channel: &str, out: Option<&Path>, json: bool) -> Result<()> {
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { signal::signal(sig, SigHandler::Handler(on_stop_signal)) }?;
    }
    // Keep the sender that `channel` returns: then the receive loop never
    // sees `Disconnected`, however many logging processes come and go. If a
    // previous daemon on this name died, this takes its channel over, with
    // every record it had not received.
    // Sized for bursts (16 MiB, about 100,000 records) while the daemon is
    // slow, stopped or restarting.
    let (_keep, rx) = shmpsc::logging::channel(channel)?;
    if rx.was_taken_over() {
        eprintln!(
            "log_daemon: took channel `{channel}` over from a daemon that died; {} records \
             were waiting",
            rx.len()
        );
    }
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        None => Box::new(io::stdout()),
    };
    eprintln!(
        "log_daemon: listening on channel `{channel}` (pid {}), writing to {}",
        std::process::id(),
        out.map_or("stdout".into(), |p| p.display().to_string())
    );

    let mut sources: BTreeMap<u32, Source> = BTreeMap::new();
    let mut invalid = 0u64;
    let mut line = String::new();
    let mut write = |record: LogRecord| -> io::Result<()> {
        use std::fmt::Write as _;
        line.clear();
        if json {
            line.push_str(&record.json_line());
            line.push('\n');
        } else {
            let _ = writeln!(line, "{record}");
        }
        // One write per record: a line is never split, even in a file
        // shared by two daemons in turn.
        sink.write_all(line.as_bytes())?;
        let source = sources.entry(record.pid).or_default();
        source.process = record.process;
        source.by_level[record.level as usize] += 1;
        Ok(())
    };
    while !STOP.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(record) => write(record)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Invalid(e)) => {
                invalid += 1;
                eprintln!("log_daemon: skipped a record: {e}");
            }
            Err(RecvTimeoutError::Disconnected) => unreachable!("the daemon holds a sender"),
        }
    }
    // Write what is in the ring now, then stop.
    loop {
        match rx.try_recv() {
            Ok(record) => write(record)?,
            Err(TryRecvError::Invalid(_)) => invalid += 1,
            Err(_) => break,
        }
    }

    let total: u64 = sources.values().flat_map(|s| s.by_level).sum();
    eprintln!(
        "log_daemon: stopping; {total} records from {} sources, {invalid} undecodable",
        sources.len()
    );
    eprintln!(
        "  {:>8}  {:<16}  {:>7}  ERROR   WARN   INFO  DEBUG  TRACE",
        "PID", "PROCESS", "RECORDS"
    );
    for (pid, s) in &sources {
        let l = s.by_level;
        eprintln!(
            "  {pid:>8}  {:<16}  {:>7}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}",
            s.process,
            l.iter().sum::<u64>(),
            l[0],
            l[1],
            l[2],
            l[3],
            l[4]
        );
    }
    Ok(())
}

// ------------------------------------------------------------------ worker

/// Logs `records` records, alternately through `tracing` and `log`, one per
/// millisecond; dies of SIGKILL after `crash_after` of them if asked.
fn worker(channel: &str, id: u32, records: u64, crash_after: Option<u64>) -> Result<()> {
    // One sink (one sender) shared by both front ends.
    let sink = LogSink::new(channel);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(ShmLayer::with_sink(sink.clone())),
    )?;
    ShmLogger::with_sink(sink.clone())
        .level(log::LevelFilter::Info)
        .install()?;

    let span = tracing::info_span!("worker", id);
    let _entered = span.enter();
    for i in 0..records {
        if crash_after == Some(i) {
            // Die as a crash would: no unwinding, no destructors, no goodbye.
            signal::raise(Signal::SIGKILL)?;
        }
        if i % 500 == 499 {
            tracing::warn!(item = i, queue = 500, "queue is getting long");
        } else if i % 2 == 0 {
            tracing::info!(item = i, "processed item");
        } else {
            log::info!(worker = id, item = i; "processed item");
        }
        thread::sleep(Duration::from_millis(1));
    }
    println!("sent={} dropped={}", sink.sent(), sink.dropped());
    Ok(())
}

// -------------------------------------------------------------------- demo

const WORKERS: u32 = 4;
const RECORDS: u64 = 2000;
const CRASHER: u32 = 3;
const CRASH_AFTER: u64 = 1000;
/// A guard against hangs while waiting for the daemon: not a timing claim.
const GUARD: Duration = Duration::from_secs(60);

/// A daemon process whose stderr we print, prefixed.
struct Daemon {
    child: Child,
    printer: thread::JoinHandle<()>,
}

fn start_daemon(label: &'static str, channel: &str, out: &Path) -> Result<Daemon> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["--channel", channel, "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (ready_tx, ready) = mpsc::channel();
    let printer = thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            println!("  [{label}] {line}");
            if line.contains("listening on") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready
        .recv_timeout(GUARD)
        .map_err(|_| format!("{label} did not start"))?;
    Ok(Daemon { child, printer })
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

fn demo() -> Result<()> {
    let exe = std::env::current_exe()?;
    let channel = format!("log-demo-{}", std::process::id());
    let out = std::env::temp_dir().join(format!("shmpsc-log-demo-{}.log", std::process::id()));
    println!(
        "== log_daemon demo: channel `{channel}`, log file {}",
        out.display()
    );

    println!("\n1. start daemon A");
    let a = start_daemon("daemon A", &channel, &out)?;

    println!(
        "\n2. start {WORKERS} workers, {RECORDS} records each through tracing and log; worker \
         {CRASHER} will crash (SIGKILL) after {CRASH_AFTER}"
    );
    let mut workers = Vec::new();
    for id in 0..WORKERS {
        let mut cmd = Command::new(&exe);
        cmd.args(["--worker", &id.to_string(), "--channel", &channel])
            .args(["--records", &RECORDS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if id == CRASHER {
            cmd.args(["--crash-after", &CRASH_AFTER.to_string()]);
        }
        workers.push((id, cmd.spawn()?));
    }

    // Let daemon A write a quarter of the records, then kill it.
    let start = Instant::now();
    while count_lines(&out) < (WORKERS as u64 * RECORDS / 4) as usize && start.elapsed() < GUARD {
        thread::sleep(Duration::from_millis(20));
    }
    let Daemon {
        child: mut a_child,
        printer: a_printer,
    } = a;
    signal::kill(Pid::from_raw(a_child.id() as i32), Signal::SIGKILL)?;
    a_child.wait()?;
    let _ = a_printer.join();
    println!(
        "\n3. killed daemon A (pid {}) with SIGKILL after {} records, while the workers log; \
         start daemon B on the same name",
        a_child.id(),
        count_lines(&out)
    );
    let b = start_daemon("daemon B", &channel, &out)?;

    println!("\n4. wait for the workers");
    let mut reports = BTreeMap::new();
    for (id, child) in workers {
        let pid = child.id();
        let output = child.wait_with_output()?;
        let report = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let status = match std::os::unix::process::ExitStatusExt::signal(&output.status) {
            Some(sig) => format!("crashed: killed by signal {sig}"),
            None => format!("exited with {}", output.status.code().unwrap_or(-1)),
        };
        println!("  worker {id} (pid {pid}): {status} {report}");
        reports.insert(pid, (id, report));
    }

    println!("\n5. stop daemon B (SIGTERM): it writes what is left and prints its counts");
    let Daemon {
        child: mut b_child,
        printer: b_printer,
    } = b;
    signal::kill(Pid::from_raw(b_child.id() as i32), Signal::SIGTERM)?;
    b_child.wait()?;
    let _ = b_printer.join();

    // Per-source counts over the whole log file, written by both daemons.
    let text = std::fs::read_to_string(&out)?;
    let mut in_file: BTreeMap<u32, u64> = BTreeMap::new();
    for line in text.lines() {
        let pid = line
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .and_then(|(source, _)| source.rsplit(' ').next())
            .and_then(|pid| pid.parse().ok());
        if let Some(pid) = pid {
            *in_file.entry(pid).or_default() += 1;
        }
    }
    println!(
        "\n6. per-source counts in the log file (written by daemon A, then B):\n\n  \
         SOURCE               PID     LOGGED  DROPPED  IN LOG FILE"
    );
    let (mut logged_total, mut file_total) = (0, 0);
    for (pid, (id, report)) in &reports {
        let field = |k: &str| {
            report
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse::<u64>().ok())
        };
        // The crashed worker could not report: it logged CRASH_AFTER records.
        let (source, logged, dropped) = match (field("sent"), field("dropped")) {
            (Some(s), Some(d)) => (format!("worker {id}"), s + d, d.to_string()),
            _ => (format!("worker {id} (crashed)"), CRASH_AFTER, "?".into()),
        };
        let got = in_file.get(pid).copied().unwrap_or(0);
        logged_total += logged;
        file_total += got;
        println!("  {source:<18}  {pid:>7}  {logged:>7}  {dropped:>7}  {got:>11}");
    }
    println!(
        "  {:<18}  {:>7}  {logged_total:>7}  {:>7}  {file_total:>11}",
        "total", "", ""
    );
    if file_total == logged_total {
        println!(
            "\nevery record logged reached the log file: none lost to the worker crash or to \
             the daemon's crash and restart"
        );
    } else {
        println!(
            "\n{} records missing: dropped by a full ring, or received by daemon A but not yet \
             written when it was killed",
            logged_total.saturating_sub(file_total)
        );
    }
    println!("\nfirst lines of {}:", out.display());
    for line in text.lines().take(3) {
        println!("  {line}");
    }
    if let Some(r) = text.lines().find(|l| l.contains(" WARN ")) {
        println!("  {r}");
    }
    Ok(())
}
