//! [`Histogram`]: fixed buckets for jitter samples, so recording one costs no allocation.

use std::time::Duration;

use crate::stats::JitterSummary;

/// Width of one bucket.
pub(crate) const BUCKET: Duration = Duration::from_micros(100);

/// Buckets cover `0..RANGE`; larger samples go to one overflow count (their maximum is exact).
pub(crate) const RANGE: Duration = Duration::from_secs(1);

/// Counts of samples in 0.1 ms buckets up to 1 s, plus an overflow count and the exact maximum.
#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    buckets: Box<[u64]>,
    overflow: u64,
    count: u64,
    max: Duration,
}

impl Default for Histogram {
    fn default() -> Self {
        let buckets = (RANGE.as_nanos() / BUCKET.as_nanos()) as usize;
        Self {
            buckets: vec![0; buckets].into_boxed_slice(),
            overflow: 0,
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl Histogram {
    /// Adds one sample.
    pub(crate) fn record(&mut self, sample: Duration) {
        self.count += 1;
        self.max = self.max.max(sample);
        let index = usize::try_from(sample.as_nanos() / BUCKET.as_nanos()).unwrap_or(usize::MAX);
        match self.buckets.get_mut(index) {
            Some(bucket) => *bucket += 1,
            None => self.overflow += 1,
        }
    }

    /// Forgets every sample.
    pub(crate) fn clear(&mut self) {
        self.buckets.fill(0);
        self.overflow = 0;
        self.count = 0;
        self.max = Duration::ZERO;
    }

    /// The `q` quantile (0..=1): the upper edge of the bucket holding it, never above the
    /// maximum (so the resolution is one bucket, 0.1 ms). Zero without samples.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        // The rank of the sample, 1-based: ceil(q * count), at least 1.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, &bucket) in self.buckets.iter().enumerate() {
            seen += bucket;
            if seen >= rank {
                let edge = BUCKET.saturating_mul(index as u32 + 1);
                return edge.min(self.max);
            }
        }
        self.max
    }

    /// p50, p99 and max in milliseconds, as the validating server reports jitter.
    pub(crate) fn summary(&self) -> JitterSummary {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        JitterSummary {
            samples: self.count,
            p50_ms: ms(self.quantile(0.50)),
            p99_ms: ms(self.quantile(0.99)),
            max_ms: ms(self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_upper_edges_capped_at_the_maximum() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.quantile(0.5), Duration::ZERO);
        for micros in [50, 150, 150, 250, 5_000] {
            histogram.record(Duration::from_micros(micros));
        }
        // Ranks: p50 = 3rd sample (150 µs, bucket 0.1..0.2 ms), p99 = 5th (5 ms, exact max).
        assert_eq!(histogram.quantile(0.5), Duration::from_micros(200));
        assert_eq!(histogram.quantile(0.99), Duration::from_micros(5_000));
        assert_eq!(histogram.quantile(0.0), Duration::from_micros(100));
        let summary = histogram.summary();
        assert_eq!(summary.samples, 5);
        assert!((summary.max_ms - 5.0).abs() < 1e-9);
    }

    #[test]
    fn samples_beyond_the_range_overflow_with_an_exact_maximum() {
        let mut histogram = Histogram::default();
        histogram.record(Duration::from_millis(1));
        histogram.record(Duration::from_secs(3));
        assert_eq!(histogram.quantile(1.0), Duration::from_secs(3));
        assert_eq!(histogram.quantile(0.5), Duration::from_micros(1_100));
        histogram.clear();
        assert_eq!(histogram.summary().samples, 0);
        assert_eq!(histogram.quantile(1.0), Duration::ZERO);
    }
}
