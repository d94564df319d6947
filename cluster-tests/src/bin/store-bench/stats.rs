//! Latency samples and the figures the benchmark reports.

use std::time::Duration;

/// What a reported figure measures; decides its unit, its formatting and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Completed operations per second.
    OpsPerSec,
    /// Watch events delivered per second, summed over all watchers.
    EventsPerSec,
    /// Median latency, milliseconds.
    P50Ms,
    /// 99th-percentile latency, milliseconds.
    P99Ms,
    /// Mean latency, milliseconds.
    MeanMs,
}

impl Metric {
    pub fn label(self) -> &'static str {
        match self {
            Metric::OpsPerSec => "ops/s ↑",
            Metric::EventsPerSec => "events/s ↑",
            Metric::P50Ms => "p50 ms ↓",
            Metric::P99Ms => "p99 ms ↓",
            Metric::MeanMs => "mean ms ↓",
        }
    }

    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::OpsPerSec | Metric::EventsPerSec)
    }

    /// A value of this metric, rounded to what the noise of the machine allows.
    pub fn format(self, value: f64) -> String {
        if self.higher_is_better() {
            if value >= 100.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.1}")
            }
        } else if value >= 100.0 {
            format!("{value:.0}")
        } else if value >= 10.0 {
            format!("{value:.1}")
        } else if value >= 1.0 {
            format!("{value:.2}")
        } else {
            format!("{value:.3}")
        }
    }
}

/// Latency samples in nanoseconds.
#[derive(Debug, Default)]
pub struct Latencies {
    nanos: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies::default()
    }

    pub fn record(&mut self, latency: Duration) {
        self.record_nanos(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn record_nanos(&mut self, nanos: u64) {
        self.nanos.push(nanos);
        self.sorted = false;
    }

    pub fn merge(&mut self, other: Latencies) {
        if self.nanos.is_empty() {
            *self = other;
        } else {
            self.nanos.extend(other.nanos);
            self.sorted = false;
        }
    }

    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.nanos.sort_unstable();
            self.sorted = true;
        }
    }

    /// The `q`-quantile (0 < q ≤ 1) by nearest rank, in milliseconds; 0 without samples.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.nanos.is_empty() {
            return 0.0;
        }
        self.sort();
        let n = self.nanos.len();
        // Nearest rank: the smallest sample with at least q·n samples at or below it.
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        nanos_to_ms(self.nanos[rank - 1])
    }

    pub fn mean_ms(&self) -> f64 {
        if self.nanos.is_empty() {
            return 0.0;
        }
        let sum: u128 = self.nanos.iter().map(|&n| u128::from(n)).sum();
        sum as f64 / self.nanos.len() as f64 / 1e6
    }
}

fn nanos_to_ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// Best and range of one figure over the rounds that produced it.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub best: f64,
    pub min: f64,
    pub max: f64,
    /// Rounds that produced the figure.
    pub ok: usize,
    /// Rounds that were run.
    pub runs: usize,
}

impl Summary {
    /// `None` when no round produced the figure.
    pub fn of(metric: Metric, values: &[Option<f64>]) -> Option<Summary> {
        let ok: Vec<f64> = values.iter().flatten().copied().collect();
        if ok.is_empty() {
            return None;
        }
        let min = ok.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ok.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Summary {
            best: if metric.higher_is_better() { max } else { min },
            min,
            max,
            ok: ok.len(),
            runs: values.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut l = Latencies::new();
        for ms in 1..=100u64 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.quantile_ms(0.5), 50.0);
        assert_eq!(l.quantile_ms(0.99), 99.0);
        assert_eq!(l.quantile_ms(1.0), 100.0);
        assert!((l.mean_ms() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn summary_picks_the_better_end() {
        let values = [Some(3.0), None, Some(1.0), Some(2.0)];
        let s = Summary::of(Metric::P99Ms, &values).unwrap();
        assert_eq!((s.best, s.min, s.max, s.ok, s.runs), (1.0, 1.0, 3.0, 3, 4));
        let s = Summary::of(Metric::OpsPerSec, &values).unwrap();
        assert_eq!(s.best, 3.0);
        assert!(Summary::of(Metric::OpsPerSec, &[None]).is_none());
    }
}
