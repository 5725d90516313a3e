//! CPU time and memory of a local process from `/proc` (Linux), for
//! "server CPU seconds per forwarded packet" and "RSS per participant".

use std::time::Instant;

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`.
///
/// `USER_HZ` is 100 on every Linux architecture we run on (the kernel's
/// internal HZ does not leak into this interface), and reading it with
/// `sysconf` would need libc for one constant.
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Instant,
    /// User + system CPU time of all threads, in seconds.
    pub cpu_seconds: f64,
    /// The system (kernel) part of it.
    pub system_seconds: f64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// Why a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read /proc/{pid}: {source} (is the process running on this host?)")]
    Read { pid: u32, source: std::io::Error },
    #[error("unexpected format of /proc/{0}")]
    Format(u32),
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn sample(pid: u32) -> Result<ProcSample, ProcError> {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .map_err(|source| ProcError::Read { pid, source })
    };
    let at = Instant::now();
    let (user_seconds, system_seconds) =
        parse_cpu_times(&read("stat")?).ok_or(ProcError::Format(pid))?;
    let rss_bytes = parse_rss_bytes(&read("status")?).ok_or(ProcError::Format(pid))?;
    Ok(ProcSample {
        at,
        cpu_seconds: user_seconds + system_seconds,
        system_seconds,
        rss_bytes,
    })
}

/// The process's own id (for the load generator's own CPU use).
pub fn own_pid() -> u32 {
    std::process::id()
}

/// `(utime, stime)` in seconds from a `stat` line. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted after its
/// closing `)`.
fn parse_cpu_times(stat: &str) -> Option<(f64, f64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After the name: state(3) ppid(4) ... utime is field 14, stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((
        utime as f64 / TICKS_PER_SECOND,
        stime as f64 / TICKS_PER_SECOND,
    ))
}

fn parse_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Busy CPU seconds of the whole machine so far (all cores: user, nice,
/// system, irq, softirq, steal), from the first line of `/proc/stat`.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_busy(stat.lines().next()?)
}

fn parse_machine_busy(cpu_line: &str) -> Option<f64> {
    let mut fields = cpu_line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    Some(busy as f64 / TICKS_PER_SECOND)
}

/// Resource use between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcUsage {
    pub cpu_seconds: f64,
    /// The kernel's part of `cpu_seconds`.
    pub system_seconds: f64,
    pub wall_seconds: f64,
    /// Resident set size at the end.
    pub rss_bytes: u64,
}

impl ProcUsage {
    pub fn between(start: &ProcSample, end: &ProcSample) -> Self {
        ProcUsage {
            cpu_seconds: (end.cpu_seconds - start.cpu_seconds).max(0.0),
            system_seconds: (end.system_seconds - start.system_seconds).max(0.0),
            wall_seconds: end.at.duration_since(start.at).as_secs_f64(),
            rss_bytes: end.rss_bytes,
        }
    }

    /// Average number of cores busy.
    pub fn cores(&self) -> f64 {
        if self.wall_seconds > 0.0 {
            self.cpu_seconds / self.wall_seconds
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names_and_status() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_cpu_times(stat), Some((2.5, 0.5)));
        let status = "Name:\tcascade\nVmPeak:\t  9000 kB\nVmRSS:\t   2048 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(parse_rss_bytes("Name: x\n"), None);
    }

    #[test]
    fn machine_busy_sums_everything_but_idle() {
        let line = "cpu  100 10 20 5000 30 1 2 3 0 0";
        assert_eq!(parse_machine_busy(line), Some(1.36));
        assert_eq!(parse_machine_busy("cpu0 1 2 3"), None);
        assert!(machine_busy_seconds().is_some());
    }

    #[test]
    fn reads_this_process() {
        let s = sample(own_pid()).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
