//! Cascade's own view of the latency it adds, read from its `/metrics`:
//! the `cascade_worker_forward_delay_seconds` histogram (kernel receive
//! timestamp to the end of the send that carried the packet on), summed over
//! workers, as a delta between two scrapes.

use serde::Serialize;

/// The histogram the server keeps per worker.
const FORWARD_DELAY_BUCKET: &str = "cascade_worker_forward_delay_seconds_bucket{";

/// Cumulative bucket counts, `(upper bound in seconds, count)`, ascending,
/// `+Inf` last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(pub Vec<(f64, f64)>);

/// Quantiles of the server's forward delay over a window, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ForwardDelay {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// Datagrams measured.
    pub samples: u64,
}

impl Buckets {
    /// The forward-delay histogram of a Prometheus text exposition, summed
    /// over workers; `None` when the server does not export it.
    pub fn forward_delay(exposition: &str) -> Option<Buckets> {
        let mut sums: Vec<(f64, f64)> = Vec::new();
        for line in exposition.lines() {
            let Some(rest) = line.strip_prefix(FORWARD_DELAY_BUCKET) else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once('}') else {
                continue;
            };
            let le = labels
                .split(',')
                .find_map(|l| l.strip_prefix("le=\""))
                .and_then(|v| v.strip_suffix('"'));
            let le = match le {
                Some("+Inf") => f64::INFINITY,
                Some(v) => match v.parse() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
                None => continue,
            };
            let Ok(count) = value.trim().parse::<f64>() else {
                continue;
            };
            match sums.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += count,
                None => sums.push((le, count)),
            }
        }
        if sums.is_empty() {
            return None;
        }
        sums.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(Buckets(sums))
    }

    /// What was observed after `earlier` (same buckets) up to `self`.
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|&(le, c)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(b, _)| *b == le)
                        .map_or(0.0, |(_, c)| *c);
                    (le, (c - before).max(0.0))
                })
                .collect(),
        )
    }

    /// The `q` quantile in seconds, interpolated linearly inside its bucket
    /// as Prometheus' `histogram_quantile` does; `None` without samples.
    /// A quantile in the `+Inf` bucket reports the highest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.0.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, count) in &self.0 {
            if count >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let in_bucket = count - lower.1;
                let fraction = if in_bucket > 0.0 {
                    (rank - lower.1) / in_bucket
                } else {
                    1.0
                };
                return Some(lower.0 + (le - lower.0) * fraction);
            }
            lower = (le, count);
        }
        Some(lower.0)
    }

    /// p50/p90/p99 in milliseconds.
    pub fn summary(&self) -> Option<ForwardDelay> {
        let ms = |q| self.quantile(q).map(|s| s * 1e3);
        Some(ForwardDelay {
            p50: ms(0.5)?,
            p90: ms(0.9)?,
            p99: ms(0.99)?,
            samples: self.0.last()?.1 as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE cascade_worker_forward_delay_seconds histogram
cascade_worker_forward_delay_seconds_bucket{worker=\"0\",le=\"0.001\"} 50
cascade_worker_forward_delay_seconds_bucket{worker=\"0\",le=\"0.002\"} 90
cascade_worker_forward_delay_seconds_bucket{worker=\"0\",le=\"+Inf\"} 100
cascade_worker_forward_delay_seconds_bucket{worker=\"1\",le=\"0.001\"} 50
cascade_worker_forward_delay_seconds_bucket{worker=\"1\",le=\"0.002\"} 50
cascade_worker_forward_delay_seconds_bucket{worker=\"1\",le=\"+Inf\"} 100
cascade_worker_forward_delay_seconds_sum{worker=\"0\"} 0.2
cascade_worker_timer_lag_seconds_bucket{worker=\"0\",le=\"0.001\"} 7
";

    #[test]
    fn sums_workers_and_ignores_other_series() {
        let b = Buckets::forward_delay(TEXT).unwrap();
        assert_eq!(
            b.0,
            vec![(0.001, 100.0), (0.002, 140.0), (f64::INFINITY, 200.0)]
        );
        assert_eq!(Buckets::forward_delay("up 1\n"), None);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let b = Buckets::forward_delay(TEXT).unwrap();
        // rank 100 of 200 is the top of the first bucket.
        assert!((b.quantile(0.5).unwrap() - 0.001).abs() < 1e-12);
        // rank 120: half way through the 40 samples of (1 ms, 2 ms].
        assert!((b.quantile(0.6).unwrap() - 0.0015).abs() < 1e-12);
        // rank 198 lies in +Inf: reported as the highest finite bound.
        assert_eq!(b.quantile(0.99), Some(0.002));
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn a_window_is_the_difference_of_two_scrapes() {
        let start = Buckets(vec![(0.001, 10.0), (f64::INFINITY, 10.0)]);
        let end = Buckets(vec![(0.001, 30.0), (f64::INFINITY, 40.0)]);
        let window = end.since(&start);
        assert_eq!(window.0, vec![(0.001, 20.0), (f64::INFINITY, 30.0)]);
        let s = window.summary().unwrap();
        assert_eq!(s.samples, 30);
        assert!((s.p50 - 0.75).abs() < 1e-9, "{s:?}");
    }
}
