//! `shmpsc`: see what the shmpsc channels on this machine are doing, clean
//! up the ones no process uses, and measure shmpsc against a Unix socket
//! and a pipe.
//!
//! ```text
//! shmpsc ls [--json]             every channel: receiver, senders, fill, counters
//! shmpsc stat NAME [--watch] [--json]  one channel in detail, with rates
//! shmpsc rm [--force] NAME...    remove channels that no live process uses
//! shmpsc gc [--dry-run] [--force] remove every channel that no live process uses
//! shmpsc bench                   shmpsc vs a Unix socket vs a pipe, across processes
//! ```
//!
//! Built with the cargo feature `cli`:
//! `cargo install shmpsc --features cli`, or
//! `cargo run --release --features cli --bin shmpsc -- ls`.

// The stream peer of the benchmarks: shmpsc bench measures the same
// sockets and pipes as `cargo bench` and the comparison report.
#[allow(dead_code)]
#[path = "../../benches/common/stream.rs"]
mod stream;

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use shmpsc::{ChannelInfo, OpenErrorKind, ReceiverState, RecvError};

#[derive(Parser)]
#[command(
    name = "shmpsc",
    version,
    about = "Inspect, clean up and benchmark shmpsc channels (named shared-memory MPSC channels)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List every channel: receiver, live and dead senders with PIDs,
    /// capacity, fill, messages and bytes sent and received.
    Ls {
        /// Only channels whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Print a JSON array (one object per channel) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one channel in detail, with rates measured over one interval.
    Stat {
        /// The channel name.
        name: String,
        /// Refresh every interval until interrupted (Ctrl-C).
        #[arg(long, short)]
        watch: bool,
        /// Refresh this many times, then stop (implies --watch).
        #[arg(long)]
        count: Option<u64>,
        /// Seconds between samples (rates are measured over one interval);
        /// 0 prints at once, without rates.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Print JSON (one object per line with --watch) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove channels that no live process uses (refused for a channel in
    /// use, naming its processes, and for one holding undelivered messages
    /// unless --force).
    Rm {
        /// Channel names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Also remove channels that hold undelivered messages (they are lost).
        #[arg(long)]
        force: bool,
    },
    /// Remove every channel that no live process uses: receiver dropped or
    /// dead, and no live sender.
    Gc {
        /// Only channels whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only list what would be removed, and what each would lose.
        #[arg(long)]
        dry_run: bool,
        /// Also remove channels that hold undelivered messages (they are lost).
        #[arg(long)]
        force: bool,
    },
    /// Measure shmpsc against a Unix socket and a pipe: one sender process
    /// streams N messages to this process, for each message size.
    Bench {
        /// Messages per run.
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Message sizes in bytes, comma-separated (1 to 1048576).
        #[arg(long, value_delimiter = ',', default_value = "64,1024")]
        sizes: Vec<usize>,
        /// Transports to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "shmpsc,unix,pipe")]
        transports: Vec<Transport>,
    },
    /// (internal) The sender process of `shmpsc bench`.
    #[command(hide = true)]
    BenchSender {
        #[arg(long)]
        transport: Transport,
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        messages: u64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// A shmpsc channel, raw bytes (`send_bytes` / `recv_bytes_with`).
    Shmpsc,
    /// A Unix stream socket, length-prefixed frames through a `BufWriter`.
    Unix,
    /// A pipe, length-prefixed frames through a `BufWriter`.
    Pipe,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Shmpsc => "shmpsc",
            Transport::Unix => "unix",
            Transport::Pipe => "pipe",
        })
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Cmd::Ls { prefix, json } => ls(prefix.as_deref(), json),
        Cmd::Stat {
            name,
            watch,
            count,
            interval,
            json,
        } => stat(&name, watch || count.is_some(), count, interval, json),
        Cmd::Rm { names, force } => rm(&names, force),
        Cmd::Gc {
            prefix,
            dry_run,
            force,
        } => gc(prefix.as_deref(), dry_run, force),
        Cmd::Bench {
            messages,
            sizes,
            transports,
        } => bench(messages, &sizes, &transports),
        Cmd::BenchSender {
            transport,
            channel,
            size,
            messages,
        } => bench_sender(transport, channel.as_deref(), size, messages),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("shmpsc: error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------------- formatting

/// `1536` -> `1.5 KiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `12345678.0` -> `12.3 M`.
fn count(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} K", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Prints a table: columns separated by two spaces, numbers right-aligned.
fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>], right: &[bool]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i > 0 {
                s.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if i + 1 < cells.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
        }
        s
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

fn receiver_cell(info: &ChannelInfo) -> String {
    match info.receiver {
        ReceiverState::Alive => format!("alive {}", info.receiver_pid),
        ReceiverState::Dead => format!("dead {}", info.receiver_pid),
        ReceiverState::Dropped => "dropped".to_owned(),
    }
}

/// `3: 11,12,13`, at most 8 PIDs shown.
fn pids_cell(pids: &[u32]) -> String {
    if pids.is_empty() {
        return "0".to_owned();
    }
    let mut s = format!("{}: ", pids.len());
    let shown: Vec<String> = pids.iter().take(8).map(u32::to_string).collect();
    s.push_str(&shown.join(","));
    if pids.len() > 8 {
        s.push_str(&format!(",+{}", pids.len() - 8));
    }
    s
}

fn fill(info: &ChannelInfo) -> String {
    if info.capacity == 0 {
        return "?".to_owned();
    }
    format!("{:.1}%", info.used as f64 * 100.0 / info.capacity as f64)
}

/// Dead senders not reaped yet, and how many died and were reaped:
/// `1: 4242 (+3 reaped)`.
fn deaths_cell(unreaped: &[u32], reaped: u32) -> String {
    let cell = pids_cell(unreaped);
    if reaped == 0 {
        cell
    } else {
        format!("{cell} (+{reaped} reaped)")
    }
}

/// Messages sent and not received, and their bytes: `41 (656 B)`.
fn pending_cell(info: &ChannelInfo) -> String {
    format!(
        "{} ({})",
        info.pending_messages(),
        bytes(info.pending_bytes())
    )
}

fn filtered(prefix: Option<&str>) -> io::Result<Vec<String>> {
    let mut names = shmpsc::list()?;
    if let Some(p) = prefix {
        names.retain(|n| n.starts_with(p));
    }
    Ok(names)
}

// --------------------------------------------------------------------- ls

fn ls(prefix: Option<&str>, json: bool) -> Result<bool> {
    let names = filtered(prefix)?;
    if json {
        let all: Vec<serde_json::Value> = names
            .iter()
            .filter_map(|name| match shmpsc::inspect(name) {
                Ok(info) => Some(info_json(&info, None)),
                Err(e) if matches!(e.kind(), OpenErrorKind::NotFound) => None,
                Err(e) => Some(serde_json::json!({ "name": name, "error": e.to_string() })),
            })
            .collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(true);
    }
    if names.is_empty() {
        println!("no shmpsc channels (in /dev/shm)");
        return Ok(true);
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match shmpsc::inspect(&name) {
            Ok(info) => {
                let pids = |alive: bool| -> Vec<u32> {
                    info.senders
                        .iter()
                        .filter(|s| s.alive == alive)
                        .map(|s| s.pid)
                        .collect()
                };
                rows.push(vec![
                    shown(&name),
                    receiver_cell(&info),
                    pids_cell(&pids(true)),
                    deaths_cell(&pids(false), info.sender_deaths),
                    bytes(info.capacity),
                    fill(&info),
                    pending_cell(&info),
                    info.dropped_messages.to_string(),
                    info.sent_messages.to_string(),
                    bytes(info.sent_bytes),
                    info.received_messages.to_string(),
                    bytes(info.received_bytes),
                ]);
            }
            // Removed between listing and inspecting.
            Err(e) if matches!(e.kind(), OpenErrorKind::NotFound) => {}
            Err(e) => {
                let mut row = vec![shown(&name), "?".to_owned()];
                row.resize(12, "?".to_owned());
                rows.push(row);
                errors.push(e.to_string());
            }
        }
    }
    let mut out = io::stdout().lock();
    print_table(
        &mut out,
        &[
            "NAME",
            "RECEIVER",
            "LIVE SENDERS",
            "DEAD SENDERS",
            "CAPACITY",
            "FILL",
            "PENDING",
            "DROPPED",
            "SENT MSGS",
            "SENT BYTES",
            "RECV MSGS",
            "RECV BYTES",
        ],
        &rows,
        &[
            false, false, false, false, true, true, true, true, true, true, true, true,
        ],
    );
    for e in errors {
        let _ = writeln!(out, "note: {e}");
    }
    Ok(true)
}

// ------------------------------------------------------------------- stat

fn stat(name: &str, watch: bool, limit: Option<u64>, interval: f64, json: bool) -> Result<bool> {
    if !interval.is_finite() || interval < 0.0 {
        return Err("--interval must be a number of seconds, 0 or more".into());
    }
    let interval = Duration::try_from_secs_f64(interval).map_err(|_| {
        format!(
            "--interval {interval:e} is too long (the longest is {:e} seconds); give a number \
             of seconds such as 1 or 0.5",
            Duration::MAX.as_secs_f64()
        )
    })?;
    let tty = io::stdout().is_terminal() && !json;
    let show = |info: &ChannelInfo, before: Option<(&ChannelInfo, Duration)>| {
        if json {
            println!("{}", info_json(info, before));
        } else {
            print_stat(info, before);
        }
    };
    let mut prev = (shmpsc::inspect(name)?, Instant::now());
    if !watch {
        if interval.is_zero() {
            show(&prev.0, None);
        } else {
            std::thread::sleep(interval);
            let now = (shmpsc::inspect(name)?, Instant::now());
            show(&now.0, Some((&prev.0, now.1 - prev.1)));
        }
        return Ok(true);
    }
    let mut refresh = 0u64;
    loop {
        refresh += 1;
        if refresh > 1 {
            std::thread::sleep(interval);
        }
        let now = if refresh == 1 {
            prev.clone()
        } else {
            (shmpsc::inspect(name)?, Instant::now())
        };
        let rates = (refresh > 1).then(|| (&prev.0, now.1 - prev.1));
        if json {
            // JSON lines: one object per refresh.
            show(&now.0, rates);
        } else {
            if tty {
                // Clear the screen and go home, as `watch` does.
                print!("\x1b[2J\x1b[H");
            }
            match limit {
                Some(n) => println!("-- {name}: refresh {refresh}/{n}"),
                None => println!("-- {name}: refresh {refresh} (Ctrl-C to stop)"),
            }
            show(&now.0, rates);
            if !tty {
                println!();
            }
        }
        let _ = io::stdout().flush();
        if limit.is_some_and(|n| refresh >= n) {
            return Ok(true);
        }
        prev = now;
    }
}

/// A channel as JSON, for scripts and monitoring: every field of
/// [`ChannelInfo`], the pending counts, and (given an earlier snapshot and
/// the time between) the receive rates.
fn info_json(info: &ChannelInfo, before: Option<(&ChannelInfo, Duration)>) -> serde_json::Value {
    let senders: Vec<serde_json::Value> = info
        .senders
        .iter()
        .map(|s| {
            serde_json::json!({
                "slot": s.slot,
                "pid": s.pid,
                "alive": s.alive,
                "sent_messages": s.sent_messages,
                "sent_bytes": s.sent_bytes,
            })
        })
        .collect();
    let mut v = serde_json::json!({
        "name": info.name,
        "receiver": {
            "state": match info.receiver {
                ReceiverState::Alive => "alive",
                ReceiverState::Dead => "dead",
                ReceiverState::Dropped => "dropped",
            },
            "pid": info.receiver_pid,
        },
        "senders": senders,
        "capacity": info.capacity,
        "used": info.used,
        "max_message": info.max_message,
        "max_senders": info.max_senders,
        "pending_messages": info.pending_messages(),
        "pending_bytes": info.pending_bytes(),
        "sent_messages": info.sent_messages,
        "sent_bytes": info.sent_bytes,
        "received_messages": info.received_messages,
        "received_bytes": info.received_bytes,
        "invalid_messages": info.invalid_messages,
        "dropped_messages": info.dropped_messages,
        "recovered_bytes": info.recovered_bytes,
        "takeovers": info.takeovers,
        "sender_deaths": info.sender_deaths,
    });
    if let Some((b, dt)) = before {
        v["received_messages_per_s"] = rate(info.received_messages, b.received_messages, dt).into();
        v["received_bytes_per_s"] = rate(info.received_bytes, b.received_bytes, dt).into();
    }
    v
}

fn rate(now: u64, before: u64, dt: Duration) -> f64 {
    now.saturating_sub(before) as f64 / dt.as_secs_f64().max(1e-9)
}

fn print_stat(info: &ChannelInfo, before: Option<(&ChannelInfo, Duration)>) {
    let mut out = io::stdout().lock();
    let live = info.senders.iter().filter(|s| s.alive).count();
    let _ = writeln!(out, "channel      {}", info.name);
    let _ = writeln!(
        out,
        "receiver     {}{}",
        match info.receiver {
            ReceiverState::Alive => format!("alive, pid {}", info.receiver_pid),
            ReceiverState::Dead => format!(
                "dead (pid {} died; a new receiver on this name takes the channel over)",
                info.receiver_pid
            ),
            ReceiverState::Dropped => "dropped".to_owned(),
        },
        if info.takeovers > 0 {
            format!(", taken over {} time(s)", info.takeovers)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "ring         {} capacity, {} used ({}), max message {}, max senders {}",
        bytes(info.capacity),
        bytes(info.used),
        fill(info),
        bytes(info.max_message),
        info.max_senders
    );
    let _ = writeln!(
        out,
        "pending      {} messages, {} (sent and not received)",
        info.pending_messages(),
        bytes(info.pending_bytes())
    );
    let rates = match before {
        Some((b, dt)) => format!(
            "   rate: {} msg/s, {}/s",
            count(rate(info.received_messages, b.received_messages, dt)),
            bytes(rate(info.received_bytes, b.received_bytes, dt) as u64)
        ),
        None => "   rate: - (measured over one --interval)".to_owned(),
    };
    let _ = writeln!(
        out,
        "received     {} messages, {}{rates}",
        info.received_messages,
        bytes(info.received_bytes)
    );
    let _ = writeln!(
        out,
        "sent         {} messages, {}",
        info.sent_messages,
        bytes(info.sent_bytes)
    );
    let _ = writeln!(
        out,
        "problems     {} undecodable records, {} skipped from dead senders' unfinished claims, \
         {} messages dropped by senders on a full ring",
        info.invalid_messages,
        bytes(info.recovered_bytes),
        info.dropped_messages
    );
    let _ = writeln!(
        out,
        "senders      {} ({} live, {} dead); {} died and were reaped so far",
        info.senders.len(),
        live,
        info.senders.len() - live,
        info.sender_deaths
    );
    if info.senders.is_empty() {
        return;
    }
    let prev: HashMap<(usize, u32), (u64, u64)> = before
        .map(|(b, _)| {
            b.senders
                .iter()
                .map(|s| ((s.slot, s.pid), (s.sent_messages, s.sent_bytes)))
                .collect()
        })
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = info
        .senders
        .iter()
        .map(|s| {
            let (mr, br) = match (before, prev.get(&(s.slot, s.pid))) {
                (Some((_, dt)), Some(&(m, b))) => (
                    count(rate(s.sent_messages, m, dt)),
                    format!("{}/s", bytes(rate(s.sent_bytes, b, dt) as u64)),
                ),
                _ => ("-".to_owned(), "-".to_owned()),
            };
            vec![
                s.slot.to_string(),
                s.pid.to_string(),
                if s.alive { "live" } else { "dead" }.to_owned(),
                s.sent_messages.to_string(),
                bytes(s.sent_bytes),
                mr,
                br,
            ]
        })
        .collect();
    let mut indented = Vec::new();
    print_table(
        &mut indented,
        &[
            "SLOT",
            "PID",
            "STATE",
            "SENT MSGS",
            "SENT BYTES",
            "MSG/S",
            "BYTES/S",
        ],
        &rows,
        &[true, true, false, true, true, true, true],
    );
    for line in String::from_utf8_lossy(&indented).lines() {
        let _ = writeln!(out, "  {line}");
    }
}

// -------------------------------------------------------------- rm and gc

fn rm(names: &[String], force: bool) -> Result<bool> {
    let mut ok = true;
    for name in names {
        let removed = if force {
            shmpsc::remove_forced(name)
        } else {
            shmpsc::remove(name)
        };
        match removed {
            Ok(()) => println!("removed {}", shown(name)),
            Err(e) => {
                eprintln!("shmpsc: cannot remove {}: {e}", shown(name));
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// A name as it can be printed safely (control characters escaped).
fn shown(name: &str) -> String {
    name.escape_debug().to_string()
}

/// Removes what no live process uses and holds no undelivered message
/// (with `force`, also what does). What gc leaves alone (a channel in use
/// or being created, one with undelivered messages, another user's
/// channel, a symlink or anything else that is not a channel) is
/// reported, with why, and is no failure: the exit status is 0 unless
/// /dev/shm cannot be listed.
fn gc(prefix: Option<&str>, dry_run: bool, force: bool) -> Result<bool> {
    if dry_run {
        let mut n = 0;
        for name in filtered(prefix)? {
            match shmpsc::inspect(&name) {
                Ok(info) if info.is_unused() && info.pending_messages() == 0 => {
                    println!("would remove {}", shown(&name));
                    n += 1;
                }
                Ok(info) if info.is_unused() => {
                    let what = format!(
                        "{} undelivered messages ({})",
                        info.pending_messages(),
                        bytes(info.pending_bytes())
                    );
                    if force {
                        println!("would remove {}, losing {what}", shown(&name));
                        n += 1;
                    } else {
                        println!(
                            "would keep {}: it holds {what} (--force to remove)",
                            shown(&name)
                        );
                    }
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), OpenErrorKind::NotFound) => {}
                // Unreadable (e.g. a leftover that is not a channel, or
                // another version's): the removal decides, by the locks and,
                // where it can, by what the ring holds.
                Err(e) => println!("would try {} ({e})", shown(&name)),
            }
        }
        if n == 0 {
            println!("no unused channels");
        }
        return Ok(true);
    }
    let prefix = prefix.unwrap_or("");
    let sweep = if force {
        shmpsc::sweep_forced(prefix)?
    } else {
        shmpsc::sweep(prefix)?
    };
    for name in &sweep.removed {
        println!("removed {}", shown(name));
    }
    for why in &sweep.skipped {
        println!("skipped {}: {why}", shown(why.name()));
    }
    if sweep.removed.is_empty() {
        println!("no unused channels");
    }
    Ok(true)
}

// ------------------------------------------------------------------ bench

/// Fills the first bytes of a message with its sequence number.
fn stamp(payload: &mut [u8], seq: u64) {
    let k = payload.len().min(8);
    payload[..k].copy_from_slice(&seq.to_le_bytes()[..k]);
}

/// Whether `payload` is message `seq` of `size` bytes.
fn check(payload: &[u8], size: usize, seq: u64) -> bool {
    let k = size.min(8);
    payload.len() == size && payload[..k] == seq.to_le_bytes()[..k]
}

fn bench_sender(
    transport: Transport,
    channel: Option<&str>,
    size: usize,
    messages: u64,
) -> Result<bool> {
    let mut payload = vec![0xA5u8; size];
    match transport {
        Transport::Shmpsc => {
            let channel = channel.ok_or("--channel is required for shmpsc")?;
            let tx = shmpsc::Sender::<Vec<u8>>::open(channel)?;
            for seq in 0..messages {
                stamp(&mut payload, seq);
                tx.send_bytes(&payload)
                    .map_err(|e| format!("sending: {e}"))?;
            }
        }
        Transport::Unix | Transport::Pipe => {
            // Our stdout is the socket or the pipe: write to it directly,
            // not through std's line-buffered stdout.
            let out = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
            let mut w = stream::StreamOut::new(out);
            for seq in 0..messages {
                stamp(&mut payload, seq);
                w.frame(&payload)?;
            }
            w.flush()?;
        }
    }
    Ok(true)
}

struct Run {
    transport: Transport,
    size: usize,
    messages: u64,
    elapsed: Duration,
}

impl Run {
    fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Counts received messages and times the first to the last.
struct Meter {
    pb: ProgressBar,
    size: usize,
    messages: u64,
    received: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Meter {
    fn got(&mut self, ok: bool) -> Result<()> {
        if !ok {
            return Err(format!(
                "message {} is corrupt or out of order (expected {} bytes stamped {})",
                self.received, self.size, self.received
            )
            .into());
        }
        // Read the clock at the first and the last message only.
        if self.received == 0 {
            self.first = Some(Instant::now());
        }
        self.received += 1;
        if self.received == self.messages {
            self.last = Some(Instant::now());
        }
        if self.received.is_multiple_of(4096) {
            self.pb.set_position(self.received);
        }
        Ok(())
    }
}

/// Receives the frames on `fd` (a socket or a pipe) until the sender closes it.
fn frames(fd: OwnedFd, socket: bool, m: &mut Meter) -> Result<()> {
    let mut r = stream::StreamIn::new(vec![fd], socket, false, m.size);
    loop {
        match r.next() {
            Ok(frame) => {
                let ok = check(frame, m.size, m.received);
                m.got(ok)?;
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return m.got(false),
            Err(e) => return Err(e.into()),
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match status.signal() {
        Some(sig) => format!("killed by signal {sig}"),
        None => status.to_string(),
    }
}

fn bench_run(transport: Transport, size: usize, messages: u64, pb: ProgressBar) -> Result<Run> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "bench-sender",
        "--transport",
        &transport.to_string(),
        "--size",
        &size.to_string(),
        "--messages",
        &messages.to_string(),
    ])
    .stdin(Stdio::null());
    let mut m = Meter {
        pb,
        size,
        messages,
        received: 0,
        first: None,
        last: None,
    };
    let mut child;
    match transport {
        Transport::Shmpsc => {
            let name = format!("shmpsc-bench-{}-{size}", std::process::id());
            let (tx, rx) = shmpsc::Builder::new(&name)
                .capacity(1 << 22)
                .create::<Vec<u8>>()?;
            cmd.args(["--channel", &name]).stdout(Stdio::null());
            // The child is a sender from the start: no start-up race, and
            // the loop below ends when it exits, however it exits.
            tx.pass_to(&mut cmd)?;
            child = cmd.spawn()?;
            drop(cmd);
            drop(tx);
            loop {
                let expect = m.received;
                match rx.recv_bytes_with(|b| check(b, size, expect)) {
                    Ok(ok) => m.got(ok)?,
                    Err(RecvError::Disconnected) => break,
                    Err(RecvError::Invalid(e)) => return Err(e.into()),
                }
            }
        }
        Transport::Unix => {
            let (ours, theirs) = UnixStream::pair()?;
            cmd.stdout(Stdio::from(OwnedFd::from(theirs)));
            child = cmd.spawn()?;
            drop(cmd); // closes our copy of the child's end
            frames(ours.into(), true, &mut m)?;
        }
        Transport::Pipe => {
            cmd.stdout(Stdio::piped());
            child = cmd.spawn()?;
            drop(cmd);
            let out = child.stdout.take().ok_or("no pipe")?;
            frames(out.into(), false, &mut m)?;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!(
            "the {transport} sender process failed: {}",
            describe(status)
        )
        .into());
    }
    if m.received != messages {
        return Err(format!(
            "{transport}: received {} of {messages} messages",
            m.received
        )
        .into());
    }
    m.pb.set_position(m.received);
    m.pb.finish();
    let elapsed = match (m.first, m.last) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::ZERO,
    };
    Ok(Run {
        transport,
        size,
        messages,
        elapsed,
    })
}

fn bench(messages: u64, sizes: &[usize], transports: &[Transport]) -> Result<bool> {
    if messages < 2 {
        return Err("--messages must be at least 2".into());
    }
    if let Some(bad) = sizes.iter().find(|&&s| s == 0 || s > 1 << 20) {
        return Err(format!("message size {bad} is out of range (1 to 1048576 bytes)").into());
    }
    println!(
        "shmpsc bench: 1 sender process -> this process, {messages} messages per run, {} CPUs",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let style = ProgressStyle::with_template(
        "{prefix:>16} [{bar:30}] {human_pos:>10}/{human_len} {elapsed:>4}",
    )?
    .progress_chars("=> ");
    let mut runs = Vec::new();
    for &size in sizes {
        for &t in transports {
            let pb = ProgressBar::new(messages)
                .with_style(style.clone())
                .with_prefix(format!("{t} {}", bytes(size as u64)));
            runs.push(bench_run(t, size, messages, pb)?);
        }
    }
    println!();
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let base = runs
                .iter()
                .find(|b| b.transport == Transport::Shmpsc && b.size == r.size);
            let secs = r.elapsed.as_secs_f64().max(1e-9);
            vec![
                r.transport.to_string(),
                bytes(r.size as u64),
                r.messages.to_string(),
                format!("{:.3} s", r.elapsed.as_secs_f64()),
                count(r.msgs_per_sec()),
                format!("{:.1}", (r.messages * r.size as u64) as f64 / secs / 1e6),
                match base {
                    Some(b) => format!("{:.2}x", b.msgs_per_sec() / r.msgs_per_sec()),
                    None => "-".to_owned(),
                },
            ]
        })
        .collect();
    print_table(
        &mut io::stdout().lock(),
        &[
            "TRANSPORT",
            "SIZE",
            "MESSAGES",
            "TIME",
            "MSG/S",
            "MB/S",
            "SHMPSC SPEEDUP",
        ],
        &rows,
        &[false, true, true, true, true, true, true],
    );
    println!(
        "\nTIME runs from the first message received to the last; MB/s counts payload bytes \
         (10^6); SHMPSC SPEEDUP is shmpsc's msg/s over this row's. unix and pipe send \
         length-prefixed frames through a 64 KiB BufWriter (a frame waits until the buffer \
         fills); shmpsc delivers each message as soon as it is sent."
    );
    Ok(true)
}
