//! One watched cgroup's recent readings and the climb they show: the points
//! since the memory last fell (by more than the noise), from where it last
//! stood at its floor. A leak is one long climb; a sawtooth is climbs cut
//! short by each free; a steady process has no climb at all.

use std::collections::VecDeque;

use oomtrace_event::{Growth, Reclaim, Unreclaimable};

use super::slope::theil_sen;

/// One reading as the forecast keeps it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Seconds, CLOCK_MONOTONIC.
    pub t: f64,
    pub parts: Unreclaimable,
    pub limit_hits: u64,
    /// The kernel's limit reclaim count, where it is counted.
    pub reclaim: Option<Reclaim>,
}

impl Point {
    /// What can only grow by allocation and shrink by freeing: anon, shmem,
    /// kernel. Dirty pages are left out of the trend: writeback turns them
    /// back into reclaimable cache within seconds (v2 throttles the writer
    /// at the cgroup's dirty limit, v1 reclaim waits for writeback), so they
    /// alone never bring the OOM killer.
    pub fn persistent(&self) -> f64 {
        (self.parts.anon_bytes + self.parts.shmem_bytes + self.parts.kernel_bytes) as f64
    }
}

/// Reclaim that frees less than this per run found little: one batch
/// (`SWAP_CLUSTER_MAX`, 32 pages of 4 KiB) is what a run asks for at least.
const RECLAIM_BATCH_BYTES: u64 = 32 * 4096;

/// The memory's climb toward the limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Climb {
    /// When it left its floor (seconds, CLOCK_MONOTONIC).
    pub start: f64,
    pub seconds: f64,
    /// Persistent memory gained since.
    pub rise_bytes: f64,
    /// Theil–Sen over the climb's points, bytes per second.
    pub slope: f64,
    pub points: usize,
    pub growth: Option<Growth>,
}

#[derive(Debug, Default)]
pub struct Series {
    points: VecDeque<Point>,
}

impl Series {
    /// Adds a point, forgetting those older than `window` seconds.
    pub fn push(&mut self, point: Point, window: f64) {
        while self.points.front().is_some_and(|p| p.t < point.t - window) {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// Limit hits during the window.
    pub fn hits_in_window(&self) -> u64 {
        match (self.points.front(), self.points.back()) {
            (Some(first), Some(last)) => last.limit_hits.saturating_sub(first.limit_hits),
            _ => 0,
        }
    }

    /// Limit reclaim during the window, where it is counted.
    pub fn reclaim_in_window(&self) -> Option<Reclaim> {
        let last = self.points.back()?.reclaim?;
        let first = self.points.iter().find_map(|p| p.reclaim).unwrap_or(last);
        Some(last.since(&first))
    }

    /// Whether reclaim is failing to hold the limit off, as of the last
    /// reading: where the kernel counts limit reclaim and it ran since the
    /// reading before, it freed little (less than a batch per run) — a
    /// cgroup at its limit whose page cache reclaim frees is not failing;
    /// otherwise, the limit was hit again (`memory.events` max, failcnt).
    pub fn failing_just_now(&self) -> bool {
        let n = self.points.len();
        if n < 2 {
            return false;
        }
        let (before, last) = (&self.points[n - 2], &self.points[n - 1]);
        if let (Some(before), Some(last)) = (before.reclaim, last.reclaim) {
            let ran = last.since(&before);
            if ran.runs > 0 {
                return ran.reclaimed_bytes < ran.runs.saturating_mul(RECLAIM_BATCH_BYTES);
            }
        }
        last.limit_hits > before.limit_hits
    }

    /// The current climb: after the last fall of more than `noise` bytes, from
    /// the last point within `noise` of the lowest since. `None` when there
    /// are fewer than two points in it.
    pub fn climb(&self, noise: f64) -> Option<Climb> {
        let values: Vec<f64> = self.points.iter().map(Point::persistent).collect();
        let n = values.len();
        // The segment since the last fall: walking back, a point more than
        // `noise` above the lowest after it is where the memory fell.
        let mut lowest_after = f64::INFINITY;
        let mut segment_start = 0;
        for i in (0..n).rev() {
            if values[i] > lowest_after + noise {
                segment_start = i + 1;
                break;
            }
            lowest_after = lowest_after.min(values[i]);
        }
        let floor = values[segment_start..].iter().copied().fold(f64::INFINITY, f64::min);
        let start = (segment_start..n).rev().find(|&i| values[i] <= floor + noise)?;
        let climb: Vec<(f64, f64)> = (start..n).map(|i| (self.points[i].t, values[i])).collect();
        if climb.len() < 2 {
            return None;
        }
        // The slope of its later two thirds (at least 5 points): how a process
        // starts (loading, warming caches) says little about how it goes on.
        let recent = &climb[(climb.len() / 3).min(climb.len().saturating_sub(5))..];
        let first = &self.points[start];
        let last = &self.points[n - 1];
        Some(Climb {
            start: first.t,
            seconds: last.t - first.t,
            rise_bytes: values[n - 1] - values[start],
            slope: theil_sen(recent)?,
            points: climb.len(),
            growth: growth(&first.parts, &last.parts),
        })
    }
}

/// The part that rose most from `from` to `to`, if any rose.
fn growth(from: &Unreclaimable, to: &Unreclaimable) -> Option<Growth> {
    let rise = |a: u64, b: u64| b.saturating_sub(a);
    [
        (Growth::Anon, rise(from.anon_bytes, to.anon_bytes)),
        (Growth::Shmem, rise(from.shmem_bytes, to.shmem_bytes)),
        (Growth::Kernel, rise(from.kernel_bytes, to.kernel_bytes)),
        (Growth::Dirty, rise(from.dirty_bytes, to.dirty_bytes)),
    ]
    .into_iter()
    .filter(|(_, bytes)| *bytes > 0)
    .max_by_key(|(_, bytes)| *bytes)
    .map(|(kind, _)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1048576.0;

    fn series(values_mib: &[(f64, f64)]) -> Series {
        let mut s = Series::default();
        for &(t, mib) in values_mib {
            let parts = Unreclaimable { anon_bytes: (mib * MIB) as u64, ..Unreclaimable::default() };
            s.push(Point { t, parts, limit_hits: 0, reclaim: None }, 30.0);
        }
        s
    }

    #[test]
    fn a_leak_after_a_flat_start_climbs_from_where_it_left_the_floor() {
        let mut points: Vec<(f64, f64)> = (0..20).map(|i| (i as f64 * 0.1, 10.0)).collect();
        points.extend((1..=30).map(|i| (2.0 + i as f64 * 0.1, 10.0 + 0.8 * i as f64)));
        let climb = series(&points).climb(MIB).expect("a climb");
        assert!((climb.slope / MIB - 8.0).abs() < 0.01, "{climb:?}");
        assert!((climb.start - 2.0).abs() < 0.15, "{climb:?}");
        assert_eq!(climb.growth, Some(Growth::Anon));
    }

    #[test]
    fn a_sawtooth_climbs_only_since_its_last_free() {
        let mut points = Vec::new();
        for tooth in 0..5 {
            for i in 0..10 {
                points.push((tooth as f64 + i as f64 * 0.1, 20.0 + 6.0 * i as f64));
            }
        }
        let climb = series(&points).climb(MIB).expect("a climb");
        assert!(climb.seconds < 1.0, "{climb:?}");
    }

    #[test]
    fn a_steady_cgroup_has_no_climb_to_speak_of() {
        let points: Vec<(f64, f64)> = (0..50).map(|i| (i as f64 * 0.1, 90.0 + 0.1 * (i % 3) as f64)).collect();
        let climb = series(&points).climb(MIB);
        assert!(climb.is_none_or(|c| c.seconds < 0.5), "{climb:?}");
    }

    #[test]
    fn reclaim_that_frees_little_is_failing_and_reclaim_that_frees_cache_is_not() {
        let point = |t: f64, hits: u64, runs: u64, freed: u64| Point {
            t,
            parts: Unreclaimable::default(),
            limit_hits: hits,
            reclaim: Some(Reclaim { runs, reclaimed_bytes: freed }),
        };
        let mut s = Series::default();
        s.push(point(0.0, 0, 10, 10 << 20), 30.0);
        // The limit is hit, but reclaim frees page cache: holding.
        s.push(point(0.1, 5, 15, 20 << 20), 30.0);
        assert!(!s.failing_just_now());
        // Five runs free 40 KiB: failing.
        s.push(point(0.2, 9, 20, (20 << 20) + 40 * 1024), 30.0);
        assert!(s.failing_just_now());
        assert_eq!(s.reclaim_in_window(), Some(Reclaim { runs: 10, reclaimed_bytes: (10 << 20) + 40 * 1024 }));
        // No reclaim ran: the limit hits decide.
        s.push(point(0.3, 10, 20, (20 << 20) + 40 * 1024), 30.0);
        assert!(s.failing_just_now());
        // Without the counter, limit hits alone.
        let mut plain = series(&[(0.0, 1.0)]);
        plain.push(Point { t: 0.1, parts: Unreclaimable::default(), limit_hits: 1, reclaim: None }, 30.0);
        assert!(plain.failing_just_now());
        assert_eq!(plain.reclaim_in_window(), None);
    }

    #[test]
    fn old_points_leave_the_window() {
        let s = series(&[(0.0, 1.0), (10.0, 2.0), (40.0, 3.0), (41.0, 4.0)]);
        assert_eq!(s.points.len(), 2);
    }
}
