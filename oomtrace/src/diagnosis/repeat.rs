//! The kills of each workload seen so far (the daemon's and `live`'s memory,
//! `history`'s order of events): is this kill a repeat, and how often.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, SystemTime},
};

use oomtrace_event::{OomEvent, Repeat};

/// Kills further back than this are forgotten.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The newest kills kept per workload.
const KEPT_PER_WORKLOAD: usize = 64;
/// Workloads remembered; the least recently killed is forgotten first.
const KEPT_WORKLOADS: usize = 4096;
/// Two victims of one OOM-killer invocation (a group kill) without an
/// `oom_id` (kernel-log events) are this close in time.
const SAME_INVOCATION: Duration = Duration::from_millis(100);

#[derive(Clone, Copy)]
struct Kill {
    at: SystemTime,
    oom_id: Option<u64>,
}

/// Kill times per workload.
#[derive(Default)]
pub struct KillMemory {
    kills: HashMap<String, Remembered>,
    /// Bumped on every kill: the least recent workload goes first.
    tick: u64,
}

/// One workload's newest kills, and when it was last killed (a tick).
#[derive(Default)]
struct Remembered {
    kills: VecDeque<Kill>,
    last: u64,
}

impl KillMemory {
    /// Remembers `event`'s kill and says whether its workload was killed
    /// before within the window. An event without a wall-clock time or a
    /// workload to name is not remembered.
    pub fn note(&mut self, event: &OomEvent) -> Option<Repeat> {
        let key = workload_key(event)?;
        let at = event.time?.system_time();
        let kill = Kill { at, oom_id: event.oom_id };
        self.tick += 1;
        let remembered = self.kills.entry(key).or_default();
        remembered.last = self.tick;
        let kills = &mut remembered.kills;
        if kills.iter().any(|k| same_invocation(k, &kill)) {
            return repeat(kills, at);
        }
        kills.push_back(kill);
        if kills.len() > KEPT_PER_WORKLOAD {
            kills.pop_front();
        }
        let result = repeat(kills, at);
        self.forget_least_recent();
        result
    }

    fn forget_least_recent(&mut self) {
        if self.kills.len() <= KEPT_WORKLOADS {
            return;
        }
        if let Some(oldest) = self.kills.iter().min_by_key(|(_, r)| r.last).map(|(key, _)| key.clone()) {
            self.kills.remove(&oldest);
        }
    }
}

/// The kills within the window before `now` (kills from the future, e.g. a
/// saved log replayed out of order, count too: they are the same workload's).
fn repeat(kills: &VecDeque<Kill>, now: SystemTime) -> Option<Repeat> {
    let mut recent =
        kills.iter().map(|k| k.at).filter(|at| now.duration_since(*at).map_or(true, |age| age <= REPEAT_WINDOW));
    let first = recent.next()?;
    let (mut earliest, mut latest, mut count) = (first, first, 1u32);
    for at in recent {
        earliest = earliest.min(at);
        latest = latest.max(at);
        count = count.saturating_add(1);
    }
    if count < 2 {
        return None;
    }
    let over = latest.duration_since(earliest).unwrap_or_default().as_secs();
    Some(Repeat { kills: count, over_seconds: over, mean_interval_seconds: over / u64::from(count - 1) })
}

fn same_invocation(a: &Kill, b: &Kill) -> bool {
    match (a.oom_id, b.oom_id) {
        (Some(x), Some(y)) => x == y,
        _ => {
            let gap = a.at.duration_since(b.at).or_else(|e| Ok::<_, ()>(e.duration())).unwrap_or_default();
            gap < SAME_INVOCATION
        }
    }
}

/// A container is the same across restarts (the runtime gives each a new
/// id): namespace/pod/container. Other workloads: the victim's cgroup path.
pub fn workload_key(event: &OomEvent) -> Option<String> {
    if let Some(name) = event.workload.as_ref().and_then(|w| w.kubernetes_name()) {
        return Some(name);
    }
    event.victim_cgroup.as_ref().and_then(|c| c.path.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_event::{Cgroup, Victim};

    fn kill(path: &str, time: &str, oom_id: Option<u64>) -> OomEvent {
        OomEvent {
            time: time.parse().ok(),
            oom_id,
            victim_cgroup: Some(Cgroup { path: Some(path.to_owned()), ..Cgroup::default() }),
            ..OomEvent::of_victim(Victim::default())
        }
    }

    #[test]
    fn the_third_kill_of_a_workload_is_a_repeat_with_its_intervals() {
        let mut memory = KillMemory::default();
        assert_eq!(memory.note(&kill("/a", "2026-11-29T10:00:00Z", Some(1))), None);
        assert_eq!(memory.note(&kill("/b", "2026-11-29T10:00:10Z", Some(2))), None);
        assert_eq!(
            memory.note(&kill("/a", "2026-11-29T10:00:30Z", Some(3))),
            Some(Repeat { kills: 2, over_seconds: 30, mean_interval_seconds: 30 })
        );
        assert_eq!(
            memory.note(&kill("/a", "2026-11-29T10:01:30Z", Some(4))),
            Some(Repeat { kills: 3, over_seconds: 90, mean_interval_seconds: 45 })
        );
    }

    #[test]
    fn victims_of_one_invocation_are_one_kill() {
        let mut memory = KillMemory::default();
        assert_eq!(memory.note(&kill("/a", "2026-11-29T10:00:00Z", Some(7))), None);
        assert_eq!(memory.note(&kill("/a", "2026-11-29T10:00:00.2Z", Some(7))), None);
        // Kernel-log events have no oom_id: 10 ms apart is the same invocation.
        assert_eq!(memory.note(&kill("/c", "2026-11-29T10:00:00Z", None)), None);
        assert_eq!(memory.note(&kill("/c", "2026-11-29T10:00:00.010Z", None)), None);
    }

    #[test]
    fn kills_older_than_the_window_are_not_repeats() {
        let mut memory = KillMemory::default();
        memory.note(&kill("/a", "2026-11-27T10:00:00Z", Some(1)));
        assert_eq!(memory.note(&kill("/a", "2026-11-29T10:00:00Z", Some(2))), None);
    }

    #[test]
    fn events_without_time_or_workload_are_not_remembered() {
        let mut memory = KillMemory::default();
        let mut untimed = kill("/a", "", Some(1));
        untimed.time = None;
        assert_eq!(memory.note(&untimed), None);
        assert_eq!(memory.note(&OomEvent::of_victim(Victim::default())), None);
        assert!(memory.kills.is_empty());
    }
}
