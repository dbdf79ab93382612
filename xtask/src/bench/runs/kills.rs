//! Killing hogs in memory cgroups and matching the kills to a tracer's
//! events, by victim pid.

use std::{
    collections::{HashMap, HashSet},
    fs,
    process::Child,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use crate::bench::{
    figures::KillRun,
    settings::{EVENT_DEADLINE, HOLD_DEADLINE},
};
use oomtrace_testkit::{
    cgroup::{HOG_ALLOC, Hog, MemCgroup, wait_hog},
    tracer::{Observed, Tracer},
};

/// Every event a tracer printed during one run, by victim pid.
#[derive(Default)]
pub struct Seen {
    by_pid: HashMap<u32, Vec<Observed>>,
}

impl Seen {
    pub fn record(&mut self, event: Observed) {
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

    /// The kernel timestamp of the first event of each of `pids` that has one.
    pub fn ktimes(&self, pids: &[u32]) -> Vec<u64> {
        pids.iter().filter_map(|pid| self.by_pid.get(pid)?.first().map(|event| event.ktime_ns)).collect()
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

/// One hog per cgroup, all held stopped until every one is in its cgroup
/// and stopped, then released together (SIGCONT to each in a tight loop), so
/// that their kills overlap; waits for them all.
pub fn kill_at_once(cgroups: &[MemCgroup]) -> Result<Vec<Hog>> {
    // The shell joins the cgroup, stops itself, and on SIGCONT becomes dd
    // (same pid throughout: `exec`).
    let command = format!("sh -c 'kill -STOP $$ && exec dd if=/dev/zero of=/dev/null bs={HOG_ALLOC} count=1'");
    let children = cgroups.iter().map(|cgroup| cgroup.spawn(&command)).collect::<Result<Vec<Child>>>()?;
    let deadline = Instant::now() + HOLD_DEADLINE;
    while let Some(child) = children.iter().find(|child| !stopped(child.id())) {
        if Instant::now() >= deadline {
            bail!("hog {} did not stop itself within {HOLD_DEADLINE:?}", child.id());
        }
        thread::sleep(Duration::from_millis(5));
    }
    for child in &children {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // own child, not reaped yet (only wait_hog below reaps it).
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
    }
    children.into_iter().map(wait_hog).collect()
}

/// Whether `pid` is stopped (state `T` in /proc/<pid>/stat).
fn stopped(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()))
        == Some('T')
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
        assert_eq!(seen.ktimes(&[2, 3, 1]), [1_000, 1_000]);
    }

    #[test]
    fn a_child_that_is_stopped_reads_as_stopped() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        assert!(!stopped(child.id()));
        // SAFETY: our own child, not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stopped(child.id()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let was_stopped = stopped(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(was_stopped);
    }
}
