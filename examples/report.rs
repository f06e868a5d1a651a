//! The comparison report: shmpsc against ipmpsc, ipc-channel, a Unix
//! stream socket, a pipe, and crossbeam-channel (threads of one process,
//! for reference), every endpoint in its own process.
//!
//! ```text
//! cargo run --release --example report              # full run, about 2 minutes on 2 cores
//! cargo run --release --example report -- --quick   # a rough run in well under a minute
//! ```
//!
//! Options: `--out DIR` (default `docs/bench`), `--peers shmpsc,unix-socket,...`
//! (default: all), `--quick`, `--no-throughput`, `--no-latency`. Writes `DIR/report.md` (tables, targets,
//! machine and load), `DIR/throughput.svg` and `DIR/latency.svg`, and prints
//! the tables. The harness is shared with the criterion benchmarks: see
//! `benches/common/mod.rs`.

#[path = "../benches/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{
    idle_receiver_cpu, load_average, LatencyRig, Path, Peer, Percentiles, ThroughputRig, Wait,
    LATENCY_ROWS, LATENCY_SIZE, SENDERS, SIZES,
};

/// Measured rounds per throughput configuration (the median is reported).
const ROUNDS: usize = 3;

struct Opts {
    out: PathBuf,
    peers: Vec<Peer>,
    quick: bool,
    throughput: bool,
    latency: bool,
}

impl Opts {
    /// The peers of the throughput runs (the floor is a latency row only).
    fn throughput_peers(&self) -> Vec<Peer> {
        self.peers
            .iter()
            .copied()
            .filter(|p| !Peer::LATENCY_ONLY.contains(p))
            .collect()
    }

    /// Target length of one throughput round.
    fn round(&self) -> Duration {
        Duration::from_millis(if self.quick { 25 } else { 100 })
    }
    /// Time budget and sample cap of one latency configuration.
    fn latency_budget(&self) -> (Duration, u64) {
        if self.quick {
            (Duration::from_millis(300), 20_000)
        } else {
            (Duration::from_millis(1500), 200_000)
        }
    }
    /// Independent sets of processes per throughput configuration.
    fn rigs(&self) -> usize {
        if self.quick {
            1
        } else {
            2
        }
    }
    fn idle_window(&self) -> Duration {
        Duration::from_secs(if self.quick { 1 } else { 3 })
    }
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        out: PathBuf::from("docs/bench"),
        peers: Peer::ALL.into_iter().chain(Peer::LATENCY_ONLY).collect(),
        quick: false,
        throughput: true,
        latency: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--no-throughput" => opts.throughput = false,
            "--no-latency" => opts.latency = false,
            "--out" => match args.next() {
                Some(dir) => opts.out = PathBuf::from(dir),
                None => usage_error("--out needs a directory"),
            },
            "--peers" => {
                let Some(list) = args.next() else {
                    usage_error("--peers needs a list, such as shmpsc,unix-socket")
                };
                opts.peers = list
                    .split(',')
                    .map(|p| {
                        Peer::parse(p.trim()).unwrap_or_else(|| {
                            let names: Vec<_> = Peer::ALL.iter().map(|p| p.name()).collect();
                            usage_error(&format!("unknown peer {p:?}; peers: {}", names.join(", ")))
                        })
                    })
                    .collect();
            }
            "-h" | "--help" => {
                println!(
                    "usage: report [--quick] [--out DIR] [--peers shmpsc,ipmpsc,...] \
                     [--no-throughput] [--no-latency]"
                );
                std::process::exit(0);
            }
            other => usage_error(&format!("unknown argument {other:?}")),
        }
    }
    opts
}

/// Says what is wrong with the command line and exits with status 2.
fn usage_error(what: &str) -> ! {
    eprintln!("report: {what} (try --help)");
    std::process::exit(2)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Messages per second of `senders` processes into one: the best of
/// `rigs` independent sets of processes (where the scheduler places them
/// moves small-message results by ±20 % on a small VM), each measured as the
/// median of [`ROUNDS`] rounds sized to last about `round`.
fn throughput(
    peer: Peer,
    path: Path,
    size: usize,
    senders: usize,
    round: Duration,
    rigs: usize,
) -> f64 {
    (0..rigs.max(1))
        .map(|_| throughput_rig(peer, path, size, senders, round))
        .fold(0.0, f64::max)
}

fn throughput_rig(peer: Peer, path: Path, size: usize, senders: usize, round: Duration) -> f64 {
    let mut rig = ThroughputRig::new(peer, path, size, senders);
    let n = senders as u64;
    let quarter = round / 4;
    let mut per = 64u64;
    let mut d = rig.round(per);
    while d < quarter && per < 1 << 26 {
        let grow = (quarter.as_secs_f64() / d.as_secs_f64().max(1e-7)).clamp(2.0, 64.0);
        per = (per as f64 * grow) as u64;
        d = rig.round(per);
    }
    per = ((per as f64 * round.as_secs_f64() / d.as_secs_f64()) as u64).max(1);
    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| (per * n) as f64 / rig.round(per).as_secs_f64())
        .collect();
    median(&mut rates)
}

/// One-way latency percentiles by ping-pong.
fn latency(peer: Peer, path: Path, wait: Wait, budget: Duration, cap: u64) -> Percentiles {
    let mut rig = LatencyRig::new(peer, path, LATENCY_SIZE, wait);
    let warm = 2000;
    let one_way = rig.ping(warm).as_secs_f64() / warm as f64;
    let n = ((budget.as_secs_f64() / (2.0 * one_way)) as u64).clamp(5000, cap);
    rig.reset();
    rig.ping(n);
    rig.percentiles()
}

fn quietly<R>(what: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            eprintln!("  {what}: FAILED (see the message above); left out");
            None
        }
    }
}

type TputKey = (Path, usize, usize, Peer);
type LatKey = (Wait, Peer, Path);

struct Results {
    opts: Opts,
    tput: BTreeMap<TputKey, Option<f64>>,
    lat: BTreeMap<LatKey, Option<Percentiles>>,
    /// Every run of the cells that decide a goal (the first run included).
    spread_tput: BTreeMap<TputKey, Vec<f64>>,
    spread_lat: BTreeMap<LatKey, Vec<u64>>,
    idle: Option<f64>,
    load_before: String,
    load_after: String,
    /// Share of the machine busy before the run (a 1 s sample).
    busy_before: f64,
    /// Share of the machine that other processes used during the run, and
    /// the share stolen by the hypervisor.
    others: f64,
    steal: f64,
    elapsed: Duration,
}

/// Machine-wide CPU time (all cores) from `/proc/stat`: (busy, steal).
fn machine_cpu() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    let secs = |j: u64| Duration::from_secs_f64(j as f64 / hz);
    (secs(busy), secs(at(7)))
}

/// CPU time of this process and of its children that were waited for.
fn own_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN]
        .into_iter()
        .filter_map(|w| getrusage(w).ok())
        .map(|u| tv(u.user_time()) + tv(u.system_time()))
        .sum()
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

fn main() {
    if common::child_main() {
        return;
    }
    let opts = parse_args();
    let load_before = load_average();
    let (b0, _) = machine_cpu();
    std::thread::sleep(Duration::from_secs(1)); // a sample of the machine at rest
    let (b1, s1) = machine_cpu();
    let busy_before = (b1 - b0).as_secs_f64() / cores();
    eprintln!(
        "load average before: {load_before}; CPU busy before: {:.1} %",
        busy_before * 100.0
    );
    let own0 = own_cpu();
    let t0 = Instant::now();

    let mut tput = BTreeMap::new();
    for path in Path::ALL.into_iter().filter(|_| opts.throughput) {
        for &n in &SENDERS {
            for &size in &SIZES {
                // The floor is a latency row only.
                for peer in opts.throughput_peers() {
                    let what = format!(
                        "throughput {} {} {n}->1 {}",
                        path.name(),
                        size_name(size),
                        peer.name()
                    );
                    let r = quietly(&what, || {
                        throughput(peer, path, size, n, opts.round(), opts.rigs())
                    });
                    if let Some(r) = r {
                        eprintln!("{what}: {} msg/s", rate(r));
                    }
                    tput.insert((path, n, size, peer), r);
                }
            }
        }
    }

    let mut lat = BTreeMap::new();
    let (budget, cap) = opts.latency_budget();
    for wait in Wait::ALL.into_iter().filter(|_| opts.latency) {
        for (peer, path) in LATENCY_ROWS {
            if !opts.peers.contains(&peer) {
                continue;
            }
            let what = format!("latency {} {} {}", wait.name(), peer.name(), path.name());
            let r = quietly(&what, || latency(peer, path, wait, budget, cap));
            if let Some(p) = &r {
                eprintln!(
                    "{what}: p50 {} p99 {} p99.9 {} max {} ({} samples)",
                    ns(p.p50),
                    ns(p.p99),
                    ns(p.p999),
                    ns(p.max),
                    p.count
                );
            }
            lat.insert((wait, peer, path), r);
        }
    }

    // The cells that decide issue 13's goals, measured twice more (full
    // runs only), so that the report shows their spread over three runs.
    let mut spread_tput: BTreeMap<TputKey, Vec<f64>> = BTreeMap::new();
    let mut spread_lat: BTreeMap<LatKey, Vec<u64>> = BTreeMap::new();
    let deciding_tput: Vec<TputKey> = Path::ALL
        .into_iter()
        .flat_map(|path| {
            [16, 64].into_iter().flat_map(move |size| {
                [Peer::Shmpsc, Peer::ShmpscBatch, Peer::UnixSocket]
                    .into_iter()
                    .map(move |peer| (path, 1, size, peer))
            })
        })
        .chain([(Path::Serde, 1, 64, Peer::ShmpscBorrowed)])
        .filter(|k| opts.throughput && opts.peers.contains(&k.3))
        .collect();
    let deciding_lat: Vec<LatKey> = [
        (Wait::Spin, Peer::Shmpsc, Path::Serde),
        (Wait::Spin, Peer::Ipmpsc, Path::Serde),
        (Wait::Spin, Peer::Floor, Path::Bytes),
        (Wait::Block, Peer::Shmpsc, Path::Serde),
    ]
    .into_iter()
    .filter(|k| opts.latency && opts.peers.contains(&k.1))
    .collect();
    for k in &deciding_tput {
        if let Some(Some(v)) = tput.get(k) {
            spread_tput.entry(*k).or_default().push(*v);
        }
    }
    for k in &deciding_lat {
        if let Some(Some(p)) = lat.get(k) {
            spread_lat.entry(*k).or_default().push(p.p50);
        }
    }
    for run in 2..=(if opts.quick { 1 } else { 3 }) {
        for &(path, n, size, peer) in &deciding_tput {
            let what = format!(
                "run {run}: throughput {} {} {n}->1 {}",
                path.name(),
                size_name(size),
                peer.name()
            );
            if let Some(v) = quietly(&what, || {
                throughput(peer, path, size, n, opts.round(), opts.rigs())
            }) {
                eprintln!("{what}: {} msg/s", rate(v));
                spread_tput
                    .entry((path, n, size, peer))
                    .or_default()
                    .push(v);
            }
        }
        for &(wait, peer, path) in &deciding_lat {
            let what = format!(
                "run {run}: latency {} {} {}",
                wait.name(),
                peer.name(),
                path.name()
            );
            if let Some(p) = quietly(&what, || latency(peer, path, wait, budget, cap)) {
                eprintln!("{what}: p50 {}", ns(p.p50));
                spread_lat
                    .entry((wait, peer, path))
                    .or_default()
                    .push(p.p50);
            }
        }
    }

    let idle = if opts.peers.contains(&Peer::Shmpsc) {
        let r = quietly("idle receiver", || idle_receiver_cpu(opts.idle_window()));
        if let Some(f) = r {
            eprintln!("idle receiver: {:.3} % of a core", f * 100.0);
        }
        r
    } else {
        None
    };

    let elapsed = t0.elapsed();
    let (b2, s2) = machine_cpu();
    let capacity = elapsed.as_secs_f64() * cores();
    let own = (own_cpu() - own0).as_secs_f64();
    let results = Results {
        tput,
        lat,
        spread_tput,
        spread_lat,
        idle,
        load_before,
        load_after: load_average(),
        busy_before,
        others: ((b2 - b1).as_secs_f64() - own).max(0.0) / capacity,
        steal: (s2 - s1).as_secs_f64() / capacity,
        elapsed,
        opts,
    };
    let md = markdown(&results);
    println!("{md}");
    let out = &results.opts.out;
    std::fs::create_dir_all(out).expect("creating the output directory");
    std::fs::write(out.join("report.md"), &md).expect("writing report.md");
    std::fs::write(out.join("throughput.svg"), throughput_svg(&results))
        .expect("writing throughput.svg");
    std::fs::write(out.join("latency.svg"), latency_svg(&results)).expect("writing latency.svg");
    eprintln!(
        "wrote {0}/report.md, {0}/throughput.svg, {0}/latency.svg in {1:.0?}",
        out.display(),
        results.elapsed
    );
}

// ------------------------------------------------------------- formatting

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn rate(r: f64) -> String {
    if r >= 1e9 {
        format!("{:.2} G", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn bandwidth(bytes_per_s: f64) -> String {
    if bytes_per_s >= 1e9 {
        format!("{:.2} GB/s", bytes_per_s / 1e9)
    } else {
        format!("{:.0} MB/s", bytes_per_s / 1e6)
    }
}

fn ns(v: u64) -> String {
    let v = v as f64;
    if v < 1e3 {
        format!("{v:.0} ns")
    } else if v < 1e6 {
        format!("{:.1} µs", v / 1e3)
    } else {
        format!("{:.2} ms", v / 1e6)
    }
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The version of `name` in Cargo.lock, as built.
fn locked_version(name: &str) -> String {
    let lock = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"));
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == format!("name = \"{name}\"") {
            if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = ")) {
                return v.trim_matches('"').to_owned();
            }
        }
    }
    "?".into()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = command_output("uname", &["-r"]).unwrap_or_default();
    format!("{cpu}, {cores} cores available, Linux {kernel}")
}

impl Results {
    fn tput(&self, path: Path, n: usize, size: usize, peer: Peer) -> Option<f64> {
        self.tput.get(&(path, n, size, peer)).copied().flatten()
    }
    fn lat(&self, wait: Wait, peer: Peer, path: Path) -> Option<Percentiles> {
        self.lat.get(&(wait, peer, path)).copied().flatten()
    }
}

fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let _ = writeln!(s, "# shmpsc: comparison report\n");
    let _ = writeln!(
        s,
        "Generated by `cargo run --release --example report{}` on {date}, in {:.0?}.\n",
        if r.opts.quick { " -- --quick" } else { "" },
        r.elapsed
    );
    let _ = writeln!(s, "- Machine: {}.", machine());
    let commit = command_output("git", &["describe", "--always", "--dirty"]).unwrap_or_default();
    let _ = writeln!(
        s,
        "- shmpsc {} (git {}); peers: ipmpsc {}, ipc-channel {}, crossbeam-channel {}.",
        env!("CARGO_PKG_VERSION"),
        if commit.is_empty() { "?" } else { &commit },
        locked_version("ipmpsc"),
        locked_version("ipc-channel"),
        locked_version("crossbeam-channel"),
    );
    let noisy = r.busy_before > 0.1 || r.others > 0.05 || r.steal > 0.05;
    let _ = writeln!(
        s,
        "- Other load: {:.1} % of the machine busy in a 1 s sample before the run; \
         during the run, other processes used {:.1} % of the machine's CPU time and \
         the hypervisor stole {:.1} %. Load average (1, 5, 15 min) before: {}; \
         after: {}.{}",
        r.busy_before * 100.0,
        r.others * 100.0,
        r.steal * 100.0,
        r.load_before,
        r.load_after,
        if noisy {
            " **The machine was not idle: numbers are noisy.**"
        } else {
            " The machine was otherwise idle."
        }
    );
    let _ = writeln!(
        s,
        "- Every endpoint is its own process (re-executions of the report binary), \
         except crossbeam-channel, the in-process reference: threads of one process.\n\
         - A serde message of size S is a struct of integers (16 bytes) and a byte \
         payload of S - 16 bytes; the bytes path sends S raw bytes. Each peer uses its \
         own codec: postcard (shmpsc's default) for shmpsc and the streams, bincode 1 \
         inside ipmpsc and ipc-channel.\n\
         - Shared-memory rings hold 8 MiB. The Unix socket and the pipe carry \
         length-prefixed frames through a 64 KiB `BufWriter`, read in large chunks; \
         with several senders the receiver `poll`s one socket (or FIFO) per sender.\n"
    );

    targets(r, &mut s);
    spread(r, &mut s);

    let _ = writeln!(s, "## Throughput\n");
    let _ = writeln!(
        s,
        "Messages per second received in all (and payload bandwidth), timed from the \
         parent's \"go\" to the receiver's last message: the median of {ROUNDS} rounds of \
         about {:?}, best of {} independent sets of processes. Higher is better.\n",
        r.opts.round(),
        r.opts.rigs()
    );
    for path in Path::ALL {
        for &n in &SENDERS {
            let _ = writeln!(
                s,
                "### {} path, {n} sender{} → 1 receiver\n",
                path.name(),
                if n > 1 { "s" } else { "" }
            );
            let _ = write!(s, "| peer |");
            for &size in &SIZES {
                let _ = write!(s, " {} |", size_name(size));
            }
            let _ = write!(s, "\n|---|");
            for _ in SIZES {
                let _ = write!(s, "---:|");
            }
            s.push('\n');
            for peer in r.opts.throughput_peers() {
                let _ = write!(s, "| {} |", peer_label(peer));
                for &size in &SIZES {
                    match r.tput(path, n, size, peer) {
                        Some(v) => {
                            let _ = write!(s, " {} ({}) |", rate(v), bandwidth(v * size as f64));
                        }
                        None => s.push_str(" — |"),
                    }
                }
                s.push('\n');
            }
            s.push('\n');
        }
    }

    let _ = writeln!(s, "## One-way latency\n");
    let _ = writeln!(
        s,
        "Ping-pong of {} messages between two processes, half of each round trip, \
         recorded in an HDR histogram. Spinning: both ends poll with `try_recv` \
         (non-blocking reads for the streams); blocking: `recv` (blocking reads).\n",
        size_name(LATENCY_SIZE)
    );
    for wait in Wait::ALL {
        let _ = writeln!(
            s,
            "### {} receiver\n\n| peer | path | p50 | p99 | p99.9 | max | samples |\n|---|---|---:|---:|---:|---:|---:|",
            if wait == Wait::Spin { "Spinning" } else { "Blocking" }
        );
        for (peer, path) in LATENCY_ROWS {
            if !r.opts.peers.contains(&peer) {
                continue;
            }
            match r.lat(wait, peer, path) {
                Some(p) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {} |",
                        peer_label(peer),
                        path.name(),
                        ns(p.p50),
                        ns(p.p99),
                        ns(p.p999),
                        ns(p.max),
                        p.count
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | — | — | — | — | — |",
                        peer_label(peer),
                        path.name()
                    );
                }
            }
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## Idle receiver\n");
    match r.idle {
        Some(f) => {
            let _ = writeln!(
                s,
                "A shmpsc receiver blocked in `recv` for {:?} with an idle live sender used \
                 {:.3} % of a core (its own user + system CPU time over its wall time; it \
                 wakes once per liveness tick, {:?}).\n",
                r.opts.idle_window(),
                f * 100.0,
                shmpsc::DEFAULT_TICK
            );
        }
        None => s.push_str("Not measured.\n\n"),
    }
    let _ = writeln!(
        s,
        "Charts: [throughput.svg](throughput.svg), [latency.svg](latency.svg)."
    );
    s
}

fn peer_label(p: Peer) -> &'static str {
    match p {
        Peer::Shmpsc => "**shmpsc** (`send`)",
        Peer::ShmpscBatch => "**shmpsc** (`batch`)",
        Peer::ShmpscBorrowed => "**shmpsc** (`zero_copy` receive)",
        Peer::Ipmpsc => "ipmpsc 0.5",
        Peer::IpcChannel => "ipc-channel",
        Peer::UnixSocket => "Unix socket (buffered)",
        Peer::Pipe => "pipe (buffered)",
        Peer::Crossbeam => "crossbeam (in-process)",
        Peer::Floor => "floor: raw atomic ping-pong (always spins)",
        Peer::ShmpscAsync => "**shmpsc** (`recv_async`, tokio; always waits)",
        Peer::TokioUnix => "tokio `UnixStream` (always waits)",
    }
}

/// The cells that decide a goal, run by run (the first run is the one in
/// the tables).
fn spread(r: &Results, s: &mut String) {
    let runs = r
        .spread_tput
        .values()
        .map(Vec::len)
        .chain(r.spread_lat.values().map(Vec::len))
        .max()
        .unwrap_or(0);
    if runs < 2 {
        return;
    }
    let _ = writeln!(
        s,
        "## Spread of the deciding cells over {runs} runs\n\nThe cells the targets \
         above depend on, measured {runs} times in this report (run 1 is the one in the \
         tables); the VM's figures move between runs, ratios much less.\n\n\
         | cell | runs | lowest – highest |\n|---|---|---|"
    );
    for (&(path, n, size, peer), v) in &r.spread_tput {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let all: Vec<String> = v.iter().map(|&x| rate(x)).collect();
        let _ = writeln!(
            s,
            "| {} {} {n}→1 {} | {} | {} – {} |",
            peer_label(peer),
            path.name(),
            size_name(size),
            all.join(", "),
            rate(lo),
            rate(hi)
        );
    }
    for (&(wait, peer, path), v) in &r.spread_lat {
        let all: Vec<String> = v.iter().map(|&x| ns(x)).collect();
        let lo = v.iter().copied().min().unwrap_or(0);
        let hi = v.iter().copied().max().unwrap_or(0);
        let _ = writeln!(
            s,
            "| {} {} latency p50, {} | {} | {} – {} |",
            peer_label(peer),
            path.name(),
            wait.name(),
            all.join(", "),
            ns(lo),
            ns(hi)
        );
    }
    s.push('\n');
}

fn targets(r: &Results, s: &mut String) {
    let _ = writeln!(
        s,
        "## Targets\n\n| target | measured | met |\n|---|---|:-:|"
    );
    let mut row = |what: &str, measured: Option<(String, bool)>| {
        let (m, ok) = measured.unwrap_or_else(|| ("not measured".into(), false));
        let _ = writeln!(
            s,
            "| {what} | {m} | {} |",
            if ok { "yes" } else { "**no**" }
        );
    };
    let shm = |path, n, size| r.tput(path, n, size, Peer::Shmpsc);
    let ratio = |peer: Peer, min: f64| {
        let a = shm(Path::Serde, 1, 64)?;
        let b = r.tput(Path::Serde, 1, 64, peer)?;
        Some((
            format!("{:.1}x ({} vs {} msg/s)", a / b, rate(a), rate(b)),
            a / b >= min,
        ))
    };
    row("1→1, 64 B serde: ≥ 10x ipmpsc", ratio(Peer::Ipmpsc, 10.0));
    row(
        "1→1, 64 B serde: ≥ 5x buffered Unix socket",
        ratio(Peer::UnixSocket, 5.0),
    );
    row(
        "1→1, 64 B bytes path: ≥ 30 M msg/s",
        shm(Path::Bytes, 1, 64).map(|v| (format!("{} msg/s", rate(v)), v >= 30e6)),
    );
    for path in Path::ALL {
        row(
            &format!(
                "one-way latency, spinning receiver, {} path: p50 < 1 µs",
                path.name()
            ),
            r.lat(Wait::Spin, Peer::Shmpsc, path)
                .map(|p| (ns(p.p50), p.p50 < 1000)),
        );
    }
    for path in Path::ALL {
        let worst = SIZES
            .iter()
            .filter_map(|&size| Some((size, shm(path, 4, size)? / shm(path, 1, size)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let at64 = shm(path, 4, 64).zip(shm(path, 1, 64)).map(|(a, b)| a / b);
        row(
            &format!("4→1 total ≥ half of 1→1, {} path", path.name()),
            at64.zip(worst).map(|(r64, (ws, w))| {
                (
                    format!("{r64:.2} at 64 B; lowest {w:.2} at {}", size_name(ws)),
                    w >= 0.5,
                )
            }),
        );
    }
    row(
        "idle receiver < 1 % of a core",
        r.idle.map(|f| (format!("{:.3} %", f * 100.0), f < 0.01)),
    );
    // Issue 13's goals: `send` ahead of every inter-process peer from 64 B
    // up (at 16 B, at least 0.75x the buffered socket); `batch` at least
    // 1.5x every peer in every cell. The worst cell decides.
    let others = [Peer::Ipmpsc, Peer::IpcChannel, Peer::UnixSocket, Peer::Pipe];
    let worst = |mine: Peer, sizes: &[usize], need: f64| {
        let mut worst: Option<(f64, String)> = None;
        for path in Path::ALL {
            for n in SENDERS {
                for &size in sizes {
                    for peer in others {
                        let (Some(a), Some(b)) =
                            (r.tput(path, n, size, mine), r.tput(path, n, size, peer))
                        else {
                            continue;
                        };
                        let cell = format!(
                            "{:.2}x {} ({} {n}→1 {})",
                            a / b,
                            peer.name(),
                            path.name(),
                            size_name(size)
                        );
                        if worst.as_ref().is_none_or(|(w, _)| a / b < *w) {
                            worst = Some((a / b, cell));
                        }
                    }
                }
            }
        }
        worst.map(|(w, cell)| (format!("lowest {cell}"), w >= need))
    };
    let from_64: Vec<usize> = SIZES.iter().copied().filter(|&s| s >= 64).collect();
    row(
        "`send` ahead of every inter-process peer from 64 B up",
        worst(Peer::Shmpsc, &from_64, 1.0),
    );
    let at_16 = |path| {
        let a = shm(path, 1, 16)?;
        let b = r.tput(path, 1, 16, Peer::UnixSocket)?;
        Some((format!("{:.2}x", a / b), a / b >= 0.75))
    };
    for path in Path::ALL {
        row(
            &format!(
                "`send`, 16 B {} 1→1: ≥ 0.75x buffered Unix socket",
                path.name()
            ),
            at_16(path),
        );
    }
    row(
        "`batch` ≥ 1.5x every inter-process peer in every cell",
        worst(Peer::ShmpscBatch, &SIZES, 1.5),
    );
    let borrowed = r.tput(Path::Serde, 1, 64, Peer::ShmpscBorrowed).zip(r.tput(
        Path::Serde,
        1,
        64,
        Peer::UnixSocket,
    ));
    row(
        "serde, borrowed (`zero_copy`), 64 B 1→1: ≥ 2x buffered Unix socket",
        borrowed.map(|(a, b)| (format!("{:.2}x", a / b), a / b >= 2.0)),
    );
    let spin = |p: Peer| r.lat(Wait::Spin, p, Path::Serde).map(|l| l.p50);
    row(
        "spinning latency p50 below ipmpsc's",
        spin(Peer::Shmpsc)
            .zip(spin(Peer::Ipmpsc))
            .map(|(a, b)| (format!("{} vs {}", ns(a), ns(b)), a < b)),
    );
    row(
        "spinning latency p50 within 2x the floor (raw atomic ping-pong)",
        spin(Peer::Shmpsc)
            .zip(r.lat(Wait::Spin, Peer::Floor, Path::Bytes).map(|l| l.p50))
            .map(|(a, f)| {
                (
                    format!("{:.1}x ({} vs {})", a as f64 / f as f64, ns(a), ns(f)),
                    a <= 2 * f,
                )
            }),
    );
    row(
        "blocking latency p50 < 500 ns",
        r.lat(Wait::Block, Peer::Shmpsc, Path::Serde)
            .map(|l| (ns(l.p50), l.p50 < 500)),
    );
    s.push('\n');
}

// ------------------------------------------------------------------- SVG

fn color(p: Peer) -> &'static str {
    match p {
        Peer::Shmpsc => "#d62728",
        Peer::ShmpscBatch => "#8c1a1b",
        Peer::ShmpscBorrowed => "#e377c2",
        Peer::Ipmpsc => "#1f77b4",
        Peer::IpcChannel => "#ff7f0e",
        Peer::UnixSocket => "#2ca02c",
        Peer::Pipe => "#9467bd",
        Peer::Crossbeam => "#7f7f7f",
        Peer::Floor => "#000000",
        Peer::ShmpscAsync => "#ff9896",
        Peer::TokioUnix => "#98df8a",
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

struct Svg(String);

impl Svg {
    fn new(w: u32, h: u32) -> Svg {
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        Svg(s)
    }
    fn text(&mut self, x: f64, y: f64, anchor: &str, extra: &str, t: &str) {
        let _ = writeln!(
            self.0,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" {extra}>{}</text>"#,
            esc(t)
        );
    }
    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, style: &str) {
        let _ = writeln!(
            self.0,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {style}/>"#
        );
    }
    fn raw(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push('\n');
    }
    fn finish(mut self) -> String {
        self.0.push_str("</svg>\n");
        self.0
    }
}

/// A log10 axis over the data's decades.
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn new(values: impl Iterator<Item = f64>) -> LogAxis {
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for v in values.filter(|v| *v > 0.0) {
            lo = lo.min(v.log10());
            hi = hi.max(v.log10());
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        LogAxis {
            lo: lo.floor(),
            hi: hi.ceil().max(lo.floor() + 1.0),
        }
    }
    /// Position of `v` in [0, 1].
    fn at(&self, v: f64) -> f64 {
        (v.log10() - self.lo) / (self.hi - self.lo)
    }
    fn decades(&self) -> impl Iterator<Item = f64> {
        (self.lo as i32..=self.hi as i32).map(|e| 10f64.powi(e))
    }
}

fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.0}G", v / 1e9),
        v if v >= 1e6 => format!("{:.0}M", v / 1e6),
        v if v >= 1e3 => format!("{:.0}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn legend(svg: &mut Svg, x: f64, y: f64, peers: &[Peer]) {
    let mut x = x;
    for &p in peers {
        svg.line(
            x,
            y - 4.0,
            x + 18.0,
            y - 4.0,
            &format!(r#"stroke="{}" stroke-width="3""#, color(p)),
        );
        svg.text(x + 22.0, y, "start", "", p.name());
        x += 30.0 + 7.5 * p.name().len() as f64;
    }
}

/// A panel of lines: categories along x, log values along y.
#[allow(clippy::too_many_arguments)]
fn line_panel(
    svg: &mut Svg,
    (x0, y0, w, h): (f64, f64, f64, f64),
    title: &str,
    xs: &[String],
    series: &[(Peer, Vec<Option<f64>>)],
    axis: &LogAxis,
    y_label: &str,
) {
    svg.text(
        x0 + w / 2.0,
        y0 - 10.0,
        "middle",
        r#"font-weight="bold""#,
        title,
    );
    let y_of = |v: f64| y0 + h - axis.at(v) * h;
    for d in axis.decades() {
        let y = y_of(d);
        svg.line(x0, y, x0 + w, y, r##"stroke="#ddd""##);
        svg.text(x0 - 6.0, y + 4.0, "end", "", &si(d));
    }
    svg.line(x0, y0, x0, y0 + h, r#"stroke="black""#);
    svg.line(x0, y0 + h, x0 + w, y0 + h, r#"stroke="black""#);
    let x_of = |i: usize| x0 + w * (i as f64 + 0.5) / xs.len() as f64;
    for (i, label) in xs.iter().enumerate() {
        svg.text(x_of(i), y0 + h + 16.0, "middle", "", label);
    }
    svg.text(
        x0 - 44.0,
        y0 + h / 2.0,
        "middle",
        &format!(
            r#"transform="rotate(-90 {:.1} {:.1})""#,
            x0 - 44.0,
            y0 + h / 2.0
        ),
        y_label,
    );
    for (peer, values) in series {
        let dash = if *peer == Peer::Crossbeam {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        let width = if *peer == Peer::Shmpsc { 3 } else { 2 };
        let mut pts = String::new();
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(pts, "{:.1},{:.1} ", x_of(i), y_of(*v));
                    svg.raw(&format!(
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"#,
                        x_of(i),
                        y_of(*v),
                        color(*peer)
                    ));
                }
                None => {
                    flush_polyline(svg, &mut pts, *peer, width, dash);
                }
            }
        }
        flush_polyline(svg, &mut pts, *peer, width, dash);
    }
}

fn flush_polyline(svg: &mut Svg, pts: &mut String, peer: Peer, width: u32, dash: &str) {
    if !pts.is_empty() {
        svg.raw(&format!(
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{width}"{dash}/>"#,
            pts.trim_end(),
            color(peer)
        ));
        pts.clear();
    }
}

fn throughput_svg(r: &Results) -> String {
    let (w, h) = (1000.0, 760.0);
    let mut svg = Svg::new(w as u32, h as u32);
    svg.text(
        w / 2.0,
        24.0,
        "middle",
        r#"font-size="16" font-weight="bold""#,
        "Throughput, messages per second (log scale; higher is better)",
    );
    legend(&mut svg, 80.0, 50.0, &r.opts.throughput_peers());
    let all = r.tput.values().flatten().copied();
    let axis = LogAxis::new(all);
    let sizes: Vec<String> = SIZES.iter().map(|&s| size_name(s)).collect();
    let senders: Vec<String> = SENDERS.iter().map(|n| format!("{n} → 1")).collect();
    let (pw, ph) = (380.0, 240.0);
    let cells = [(90.0, 100.0), (590.0, 100.0), (90.0, 440.0), (590.0, 440.0)];
    for (k, path) in Path::ALL.into_iter().enumerate() {
        let by_size: Vec<(Peer, Vec<Option<f64>>)> = r
            .opts
            .throughput_peers()
            .iter()
            .map(|&p| (p, SIZES.iter().map(|&s| r.tput(path, 1, s, p)).collect()))
            .collect();
        let (x, y) = cells[k];
        line_panel(
            &mut svg,
            (x, y, pw, ph),
            &format!("{} path, 1 → 1, by message size", path.name()),
            &sizes,
            &by_size,
            &axis,
            "messages/s",
        );
        let by_n: Vec<(Peer, Vec<Option<f64>>)> = r
            .opts
            .throughput_peers()
            .iter()
            .map(|&p| (p, SENDERS.iter().map(|&n| r.tput(path, n, 64, p)).collect()))
            .collect();
        let (x, y) = cells[k + 2];
        line_panel(
            &mut svg,
            (x, y, pw, ph),
            &format!("{} path, 64 B, by number of sender processes", path.name()),
            &senders,
            &by_n,
            &axis,
            "messages/s in all",
        );
    }
    svg.finish()
}

fn latency_svg(r: &Results) -> String {
    let rows: Vec<(Peer, Path)> = LATENCY_ROWS
        .into_iter()
        .filter(|(p, _)| r.opts.peers.contains(p))
        .collect();
    let row_h = 30.0;
    let (w, top) = (1000.0, 110.0);
    let ph = row_h * rows.len().max(1) as f64;
    let h = top + ph + 60.0;
    let mut svg = Svg::new(w as u32, h as u32);
    svg.text(
        w / 2.0,
        24.0,
        "middle",
        r#"font-size="16" font-weight="bold""#,
        &format!(
            "One-way latency, {} ping-pong (log scale; lower is better)",
            size_name(LATENCY_SIZE)
        ),
    );
    // Marker legend.
    let marks = [("p50", 0), ("p99", 1), ("p99.9", 2), ("max", 3)];
    let mut lx = 330.0;
    for (name, kind) in marks {
        marker(&mut svg, kind, lx, 48.0, "#333");
        svg.text(lx + 10.0, 52.0, "start", "", name);
        lx += 80.0;
    }
    let all = r
        .lat
        .values()
        .flatten()
        .flat_map(|p| [p.p50 as f64, p.max as f64]);
    let axis = LogAxis::new(all);
    let (label_w, pw) = (150.0, 300.0);
    for (k, wait) in Wait::ALL.into_iter().enumerate() {
        let x0 = 20.0 + k as f64 * 490.0 + label_w;
        let y0 = top;
        svg.text(
            x0 + pw / 2.0,
            y0 - 14.0,
            "middle",
            r#"font-weight="bold""#,
            if wait == Wait::Spin {
                "spinning receiver (try_recv loop)"
            } else {
                "blocking receiver (recv)"
            },
        );
        let x_of = |v: f64| x0 + axis.at(v) * pw;
        for d in axis.decades() {
            let x = x_of(d);
            svg.line(x, y0, x, y0 + ph, r##"stroke="#ddd""##);
            svg.text(x, y0 + ph + 16.0, "middle", "", &decade_ns(d));
        }
        svg.line(x0, y0 + ph, x0 + pw, y0 + ph, r#"stroke="black""#);
        for (i, &(peer, path)) in rows.iter().enumerate() {
            let y = y0 + row_h * (i as f64 + 0.5);
            let label = if peer == Peer::Shmpsc {
                format!("{} ({})", peer.name(), path.name())
            } else {
                peer.name().to_owned()
            };
            svg.text(x0 - 8.0, y + 4.0, "end", "", &label);
            let Some(p) = r.lat(wait, peer, path) else {
                svg.text(
                    x0 + 4.0,
                    y + 4.0,
                    "start",
                    r##"fill="#999""##,
                    "not measured",
                );
                continue;
            };
            let c = color(peer);
            svg.line(
                x_of(p.p50 as f64),
                y,
                x_of(p.max as f64),
                y,
                &format!(r#"stroke="{c}" stroke-width="2""#),
            );
            for (v, kind) in [(p.p50, 0), (p.p99, 1), (p.p999, 2), (p.max, 3)] {
                marker(&mut svg, kind, x_of(v as f64), y, c);
            }
        }
    }
    svg.finish()
}

fn decade_ns(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.0} s", v / 1e9),
        v if v >= 1e6 => format!("{:.0} ms", v / 1e6),
        v if v >= 1e3 => format!("{:.0} µs", v / 1e3),
        v => format!("{v:.0} ns"),
    }
}

/// Percentile markers: filled circle, square, diamond, cross.
fn marker(svg: &mut Svg, kind: u8, x: f64, y: f64, c: &str) {
    let s = match kind {
        0 => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="{c}"/>"#),
        1 => format!(
            r#"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="white" stroke="{c}" stroke-width="2"/>"#,
            x - 4.5,
            y - 4.5
        ),
        2 => format!(
            r#"<polygon points="{:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1}" fill="white" stroke="{c}" stroke-width="2"/>"#,
            x - 6.0,
            y - 6.0,
            x + 6.0,
            y + 6.0
        ),
        _ => format!(
            r#"<path d="M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}" stroke="{c}" stroke-width="2"/>"#,
            x - 5.0,
            y - 5.0,
            x + 5.0,
            y + 5.0,
            x - 5.0,
            y + 5.0,
            x + 5.0,
            y - 5.0
        ),
    };
    svg.raw(&s);
}
