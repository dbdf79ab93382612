//! Killing hogs in memory cgroups and matching the kills to a tracer's
//! events, by victim pid.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::bench::{figures::KillRun, settings::EVENT_DEADLINE};
use oomtrace_testkit::{
    cgroup::{Hog, MemCgroup, wait_hog},
    tracer::{Observed, Tracer},
};

/// Every event a tracer printed during one run, by victim pid.
#[derive(Default)]
pub struct Seen {
    by_pid: HashMap<u32, Vec<Observed>>,
}

impl Seen {
    fn record(&mut self, event: Observed) {
        self.by_pid.entry(event.victim_pid).or_default().push(event);
    }

    fn has(&self, pid: u32) -> bool {
        self.by_pid.contains_key(&pid)
    }

    /// Receives events until every pid in `pids` has one, or `timeout` passes.
    pub fn wait_for(&mut self, tracer: &Tracer, pids: &[u32], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while pids.iter().any(|pid| !self.has(*pid)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            if let Some(event) = tracer.next_event(left) {
                self.record(event);
            }
        }
    }

    /// Receives events until none has come for `quiet`.
    pub fn drain(&mut self, tracer: &Tracer, quiet: Duration) {
        while let Some(event) = tracer.next_event(quiet) {
            self.record(event);
        }
    }

    pub fn tally(&self, hogs: &[Hog], kernel_oom_kills: u64) -> KillRun {
        let mut run = KillRun { hogs: hogs.len(), kernel_oom_kills, ..KillRun::default() };
        for hog in hogs {
            let events = self.by_pid.get(&hog.pid).map_or(&[][..], Vec::as_slice);
            if !hog.oom_killed {
                run.not_killed += 1;
                run.events_for_survivors += events.len();
                continue;
            }
            match events.split_first() {
                None => run.missing.push(hog.pid),
                Some((first, rest)) => {
                    run.latencies_ns.push(first.latency_ns());
                    run.duplicates += rest.len();
                }
            }
        }
        run
    }

    /// Events for victims that were none of the bench's hogs.
    pub fn foreign(&self, ours: &HashSet<u32>) -> usize {
        self.by_pid.iter().filter(|(pid, _)| !ours.contains(pid)).map(|(_, events)| events.len()).sum()
    }
}

/// One hog at a time; each kill's event is awaited before the next hog
/// starts, and `after_kill` runs in between.
pub fn kill_sequentially(
    tracer: &Tracer,
    cgroup: &MemCgroup,
    kills: usize,
    seen: &mut Seen,
    mut after_kill: impl FnMut(),
) -> Result<Vec<Hog>> {
    let mut hogs = Vec::with_capacity(kills);
    for _ in 0..kills {
        let hog = wait_hog(cgroup.spawn_hog()?)?;
        if hog.oom_killed {
            seen.wait_for(tracer, &[hog.pid], EVENT_DEADLINE);
        }
        hogs.push(hog);
        after_kill();
    }
    Ok(hogs)
}

/// One hog per storm cgroup, all started at once.
pub fn kill_storm(tracer: &Tracer, cgroups: &[MemCgroup], seen: &mut Seen) -> Result<Vec<Hog>> {
    let children = cgroups.iter().map(MemCgroup::spawn_hog).collect::<Result<Vec<_>>>()?;
    let hogs = children.into_iter().map(wait_hog).collect::<Result<Vec<_>>>()?;
    let killed: Vec<u32> = hogs.iter().filter(|hog| hog.oom_killed).map(|hog| hog.pid).collect();
    seen.wait_for(tracer, &killed, EVENT_DEADLINE);
    Ok(hogs)
}

/// The sum of the kernel's oom_kill counters of `cgroups`.
pub fn kernel_oom_kills(cgroups: &[MemCgroup]) -> Result<u64> {
    cgroups.iter().map(MemCgroup::oom_kills).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_missing_and_duplicate_events() {
        let event = |victim_pid, received_ns| Observed { victim_pid, ktime_ns: 1_000, received_ns };
        let mut seen = Seen::default();
        seen.record(event(1, 2_000));
        seen.record(event(2, 4_000));
        seen.record(event(2, 5_000));
        seen.record(event(9, 5_000));
        let hogs = [
            Hog { pid: 1, oom_killed: true },
            Hog { pid: 2, oom_killed: true },
            Hog { pid: 3, oom_killed: true },
            Hog { pid: 4, oom_killed: false },
        ];
        let run = seen.tally(&hogs, 3);
        assert_eq!(run.latencies_ns, [1_000, 3_000]);
        assert_eq!((run.missing.as_slice(), run.duplicates, run.not_killed), (&[3][..], 1, 1));
        assert_eq!(seen.foreign(&[1, 2, 3, 4].into()), 1);
    }
}
