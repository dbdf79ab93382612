//! Nearest-rank statistics of latencies and durations.

use std::time::Duration;

/// Nearest-rank percentiles of latencies, in ms.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(latencies_ns: &[i64]) -> Option<Latency> {
        let mut sorted = latencies_ns.to_vec();
        sorted.sort_unstable();
        let ms = |ns: i64| ns as f64 / 1e6;
        Some(Latency {
            min_ms: ms(*sorted.first()?),
            p50_ms: ms(percentile(&sorted, 50.0)?),
            p99_ms: ms(percentile(&sorted, 99.0)?),
            max_ms: ms(*sorted.last()?),
        })
    }
}

/// Nearest rank: the smallest value with at least p% of the values at or below it.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()).checked_sub(1)?).copied()
}

/// Nearest-rank min/p50/p99/max of durations.
pub fn duration_stats(times: &[Duration]) -> Option<[Duration; 4]> {
    let mut sorted: Vec<i64> = times.iter().map(|t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX)).collect();
    sorted.sort_unstable();
    let at = |ns: i64| Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    Some([at(*sorted.first()?), at(percentile(&sorted, 50.0)?), at(percentile(&sorted, 99.0)?), at(*sorted.last()?)])
}

/// The median in ms (the mean of the middle two for an even count).
pub fn median_ms(times: &[Duration]) -> Option<f64> {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let mid = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2 };
    Some(mid.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<i64> = (1..=60).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(30));
        assert_eq!(percentile(&sorted, 99.0), Some(60));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        let hundred: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 99.0), Some(99));
    }

    #[test]
    fn duration_stats_are_nearest_rank() {
        let us = Duration::from_micros;
        let times: Vec<Duration> = (1..=100).map(us).collect();
        assert_eq!(duration_stats(&times), Some([us(1), us(50), us(99), us(100)]));
        assert_eq!(duration_stats(&[]), None);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median_ms(&[ms(30), ms(10), ms(20)]), Some(20.0));
        assert_eq!(median_ms(&[ms(10), ms(20)]), Some(15.0));
        assert_eq!(median_ms(&[]), None);
    }
}
