//! The progress line of a load run on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::load::{LoadOptions, PlannedBot};
use super::procfs;
use super::record::{LiveCounters, LiveSnapshot};

/// The one-line status on stderr: rewritten in place on a terminal, a new
/// line every few seconds otherwise.
pub(crate) struct Progress {
    enabled: bool,
    tty: bool,
    header: String,
    bots: usize,
    expecting: usize,
    started: Instant,
    last: Option<(Instant, LiveSnapshot, Option<f64>)>,
}

impl Progress {
    pub fn new(target: &str, opts: &LoadOptions, bots: &[PlannedBot], started: Instant) -> Self {
        Progress {
            enabled: opts.progress,
            tty: std::io::stderr().is_terminal(),
            header: format!("[{target} {:?}]", opts.scenario).to_lowercase(),
            bots: bots.len(),
            expecting: bots.iter().filter(|b| b.expected_streams > 0).count(),
            started,
            last: None,
        }
    }

    pub fn maybe_print(&mut self, live: &LiveCounters, label: &str, server_pid: Option<u32>) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let every = if self.tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(3)
        };
        let snapshot = live.snapshot();
        let cpu = server_pid
            .and_then(|pid| procfs::sample(pid).ok())
            .map(|s| s.cpu_seconds);
        let Some((at, before, cpu_before)) = self.last else {
            self.last = Some((now, snapshot, cpu));
            return;
        };
        if now < at + every {
            return;
        }
        let secs = now.duration_since(at).as_secs_f64();
        let pps = (snapshot.received_packets - before.received_packets) as f64 / secs;
        let mbps = (snapshot.received_bytes - before.received_bytes) as f64 * 8.0 / secs / 1e6;
        let server = match (cpu, cpu_before) {
            (Some(c), Some(b)) => format!(" | server {:.2} cores", (c - b) / secs),
            _ => String::new(),
        };
        let line = format!(
            "{} {:5.1}s {label:<9} | media {}/{} ready {}/{} failed {} | rx {:.1}k pkt/s {:.1} Mbit/s{server}",
            self.header,
            self.started.elapsed().as_secs_f64(),
            snapshot.first_media,
            self.bots,
            snapshot.ready,
            self.expecting,
            snapshot.failed,
            pps / 1000.0,
            mbps,
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        self.last = Some((now, snapshot, cpu));
    }

    pub fn finish(&self) {
        if self.enabled && self.tty {
            eprintln!();
        }
    }
}
