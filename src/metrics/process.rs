//! The standard `process_*` metrics, read from `/proc/self` at scrape time.

use prometheus::{Counter, Gauge, Opts, Registry};

use super::reg;

/// The standard `process_*` metrics, read from `/proc/self` at scrape time
/// (Linux only; elsewhere they stay at zero).
pub struct ProcessMetrics {
    cpu_seconds: Counter,
    resident_memory: Gauge,
    open_fds: Gauge,
    threads: Gauge,
    start_time: Gauge,
}

impl ProcessMetrics {
    pub fn new(r: &Registry) -> Self {
        let g = |name: &str, help: &str| reg(r, Gauge::with_opts(Opts::new(name, help)));
        let p = ProcessMetrics {
            cpu_seconds: reg(
                r,
                Counter::with_opts(Opts::new(
                    "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds",
                )),
            ),
            resident_memory: g(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
            ),
            open_fds: g("process_open_fds", "Number of open file descriptors"),
            threads: g("process_threads", "Number of OS threads in the process"),
            start_time: g(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
            ),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        p.start_time.set(now.as_secs_f64());
        p
    }

    pub fn refresh(&self) {
        let Some(stat) = proc_stat() else {
            return;
        };
        let grown = stat.cpu_seconds - self.cpu_seconds.get();
        if grown > 0.0 {
            self.cpu_seconds.inc_by(grown);
        }
        self.resident_memory.set(stat.resident_bytes);
        self.threads.set(stat.threads);
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as f64);
        }
    }
}

struct ProcStat {
    cpu_seconds: f64,
    resident_bytes: f64,
    threads: f64,
}

/// Parses `/proc/self/stat` (see proc(5)); `None` where there is none.
fn proc_stat() -> Option<ProcStat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces: split after its ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    // USER_HZ is 100 on every Linux platform Cascade targets; the page size
    // 4096 on x86_64 and most aarch64 kernels.
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_BYTES: f64 = 4096.0;
    Some(ProcStat {
        cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
        threads: field(20)?,
        resident_bytes: field(24)? * PAGE_BYTES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_read_proc_on_linux() {
        if cfg!(target_os = "linux") {
            let stat = proc_stat().expect("/proc/self/stat parses");
            assert!(stat.resident_bytes > 0.0 && stat.threads >= 1.0);
        }
    }
}
