//! The host-counters thread: reads the host's TCP counters every `--counters-interval`
//! in each network namespace followed (it switches namespaces, so it is a thread of its
//! own), and runs the socket walk of `rtt_samples` there too.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::host_counters::CounterReader;
use crate::loader;

/// The host-counters thread and its channels.
pub(super) struct CountersThread {
    cmd: mpsc::Sender<CountersCmd>,
    rows: mpsc::Receiver<Vec<tcpfr_schema::host_counters::HostCounters>>,
    /// Failures of the socket walk, for `recorder_stats` notes (see [`walk_failure_note`]).
    notes: mpsc::Receiver<String>,
    thread: std::thread::JoinHandle<()>,
}

enum CountersCmd {
    /// Namespaces newly seen in events.
    Seen(Vec<u32>),
    /// Take a final reading and exit.
    Stop,
}

impl CountersThread {
    /// `walk`: the socket walk and how often to run it, in every namespace followed.
    pub(super) fn spawn(
        host: tcpfr_schema::Str,
        mode: crate::host_counters::NetnsMode,
        interval: Duration,
        walk: Option<(loader::Walk, Duration)>,
    ) -> Result<Self> {
        let (cmd_tx, cmd_rx) = mpsc::channel::<CountersCmd>();
        let (rows_tx, rows_rx) = mpsc::channel();
        let (notes_tx, notes_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let thread = std::thread::Builder::new().name("tcpfr-counters".into()).spawn(move || {
            crate::privileges::confine_thread(crate::privileges::Role::Counters);
            let mut reader = match CounterReader::new(mode) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = reader.sample(crate::clock::realtime_ns(), &host);
            let _ = ready_tx.send(Ok(()));
            let mut next = std::time::Instant::now() + interval;
            // The first walk at once: it samples every connection open now.
            let mut next_walk = walk.as_ref().map(|_| std::time::Instant::now());
            let mut walk_errors = 0u64;
            let mut walked_at = WalkedAt::new();
            loop {
                let due = next_walk.map_or(next, |w| w.min(next));
                let wait = due.saturating_duration_since(std::time::Instant::now());
                match cmd_rx.recv_timeout(wait) {
                    Ok(CountersCmd::Seen(ns)) => {
                        reader.discover(&ns);
                        continue;
                    }
                    Ok(CountersCmd::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                        let _ = rows_tx.send(reader.sample(crate::clock::realtime_ns(), &host));
                        return;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
                let now = std::time::Instant::now();
                if let (Some(at), Some((w, every))) = (next_walk.as_mut(), walk.as_ref()) {
                    if now >= *at {
                        walk_namespaces(&reader, w, &mut walked_at, &mut walk_errors, &notes_tx);
                        // A late walk does not make the next one come sooner.
                        *at = (*at + *every).max(std::time::Instant::now() + *every / 2);
                    }
                }
                if now >= next {
                    next += interval;
                    let _ = rows_tx.send(reader.sample(crate::clock::realtime_ns(), &host));
                    // Every tenth reading, look for new named namespaces.
                    reader.tick_discover();
                }
            }
        })?;
        ready_rx.recv().context("the host-counters thread died")??;
        Ok(CountersThread { cmd: cmd_tx, rows: rows_rx, notes: notes_rx, thread })
    }

    pub(super) fn seen(&self, ns: Vec<u32>) {
        let _ = self.cmd.send(CountersCmd::Seen(ns));
    }

    /// Rows read since the last call.
    pub(super) fn rows(&self) -> Vec<tcpfr_schema::host_counters::HostCounters> {
        let mut out = Vec::new();
        while let Ok(r) = self.rows.try_recv() {
            out.extend(r);
        }
        out
    }

    /// Notes on the socket walk since the last call.
    pub(super) fn notes(&self) -> Vec<String> {
        self.notes.try_iter().collect()
    }

    pub(super) fn stop(self) -> Vec<tcpfr_schema::host_counters::HostCounters> {
        let CountersThread { cmd, rows, thread, .. } = self;
        let _ = cmd.send(CountersCmd::Stop);
        let _ = thread.join();
        rows.try_iter().flatten().collect()
    }
}

/// Per namespace, its segment counters at its last walk: a namespace where no segment
/// moved since has nothing to sample, and is not walked (the walk costs per socket,
/// idle or not).
type WalkedAt = std::collections::HashMap<u32, [i64; 3]>;

/// Runs the socket walk in each namespace followed where a segment moved since its
/// last walk. `walk_errors`: the walks that failed so far; `notes`: what to say of them.
fn walk_namespaces(
    reader: &CounterReader,
    w: &loader::Walk,
    walked_at: &mut WalkedAt,
    walk_errors: &mut u64,
    notes: &mpsc::Sender<String>,
) {
    reader.in_each_namespace(|ns| {
        let segs = crate::host_counters::segment_counts();
        if segs.is_some() && walked_at.get(&ns) == segs.as_ref() {
            return;
        }
        match w.run() {
            Ok(()) => {
                if let Some(segs) = segs {
                    walked_at.insert(ns, segs);
                }
            }
            Err(e) => {
                *walk_errors += 1;
                if let Some(note) = walk_failure_note(*walk_errors, ns, &e) {
                    tracing::warn!("{note}");
                    let _ = notes.send(note);
                }
            }
        }
    });
}

/// What to say of the `n`th failed walk: the first, then the 10th, 100th, … (a walk
/// that fails keeps failing the same way; the count says it goes on).
fn walk_failure_note(n: u64, ns: u32, e: &std::io::Error) -> Option<String> {
    let mut p = n;
    while p % 10 == 0 {
        p /= 10;
    }
    (p == 1).then(|| {
        let times = if n == 1 { String::new() } else { format!(" ({n} walks so far)") };
        format!("the socket walk failed in netns {ns}{times}: {e}; rtt_samples has no rows from walks that failed")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_walks_are_said_at_powers_of_ten() {
        let e = std::io::Error::from_raw_os_error(libc::EAGAIN);
        let said: Vec<u64> = (1..=1000).filter(|&n| walk_failure_note(n, 7, &e).is_some()).collect();
        assert_eq!(said, [1, 10, 100, 1000]);
        let first = walk_failure_note(1, 7, &e).unwrap();
        assert!(first.contains("netns 7") && first.contains("rtt_samples") && !first.contains("walks so far"), "{first}");
        assert!(walk_failure_note(100, 7, &e).unwrap().contains("(100 walks so far)"));
    }
}
