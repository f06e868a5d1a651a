//! Test hooks of the log sink (cargo feature `test-hooks`, for shmpsc's own
//! tests only): hold a sink's connection attempts for one channel name at
//! the point where they are about to open the channel, and see which
//! threads arrived there.
//!
//! A connection attempt is the part of a sink that may wait (the opening of
//! the channel); a test holds it to prove that a log call returns while an
//! attempt is still pending, and on which thread the attempt is made.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

struct Gate {
    name: String,
    held: bool,
    /// The threads that arrived at the gate, in order (each arrival once).
    arrivals: Vec<ThreadId>,
}

static GATES: Mutex<Vec<Gate>> = Mutex::new(Vec::new());
static CHANGED: Condvar = Condvar::new();

fn gates() -> MutexGuard<'static, Vec<Gate>> {
    GATES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Called by a sink just before a connection attempt opens the channel
/// `name`: records the calling thread and waits while a
/// [`ReconnectGate`] holds that name.
pub(crate) fn at_attempt(name: &str) {
    let mut g = gates();
    let Some(i) = g.iter().position(|gate| gate.name == name) else {
        return;
    };
    g[i].arrivals.push(std::thread::current().id());
    CHANGED.notify_all();
    while g.iter().any(|gate| gate.name == name && gate.held) {
        g = CHANGED.wait(g).unwrap_or_else(PoisonError::into_inner);
    }
}

/// Holds every connection attempt of the log sinks of one channel name
/// (see the module docs); dropping it lets them go.
#[derive(Debug)]
pub struct ReconnectGate {
    name: String,
}

impl ReconnectGate {
    /// Holds the attempts for channel `name` from now on.
    pub fn hold(name: &str) -> ReconnectGate {
        let mut g = gates();
        g.retain(|gate| gate.name != name);
        g.push(Gate {
            name: name.to_owned(),
            held: true,
            arrivals: Vec::new(),
        });
        ReconnectGate {
            name: name.to_owned(),
        }
    }

    /// The threads that arrived at the gate so far (whether still held or
    /// already let go).
    pub fn arrivals(&self) -> Vec<ThreadId> {
        gates()
            .iter()
            .find(|gate| gate.name == self.name)
            .map_or_else(Vec::new, |gate| gate.arrivals.clone())
    }

    /// Waits until `n` attempts arrived, at most `timeout` (a guard against
    /// hangs); returns the arrivals, or `None` on timeout.
    pub fn wait_arrivals(&self, n: usize, timeout: Duration) -> Option<Vec<ThreadId>> {
        let deadline = Instant::now() + timeout;
        let mut g = gates();
        loop {
            let arrivals = g
                .iter()
                .find(|gate| gate.name == self.name)
                .map_or_else(Vec::new, |gate| gate.arrivals.clone());
            if arrivals.len() >= n {
                return Some(arrivals);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            g = CHANGED
                .wait_timeout(g, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Lets the held attempts (and later ones) go; arrivals are still
    /// recorded until the gate is dropped.
    pub fn release(&self) {
        let mut g = gates();
        for gate in g.iter_mut().filter(|gate| gate.name == self.name) {
            gate.held = false;
        }
        CHANGED.notify_all();
    }
}

impl Drop for ReconnectGate {
    fn drop(&mut self) {
        gates().retain(|gate| gate.name != self.name);
        CHANGED.notify_all();
    }
}
