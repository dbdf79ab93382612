//! Kills grouped by workload: namespace/pod/container for a Kubernetes
//! container (the same across its restarts), the victim's cgroup path
//! otherwise — the key the diagnosis counts repeated kills by
//! ([`repeat::workload_key`]).

use std::{
    collections::{HashMap, HashSet},
    hash::{Hash as _, Hasher as _},
};

use serde::Serialize;

use oomtrace_event::{Advice, Cause, Finding};

use crate::diagnosis::repeat::workload_key;
use oomtrace_event::{OomEvent, WorkloadKind};

/// The key of kills whose workload is unknown (no cgroup path in the log).
pub const UNKNOWN_KEY: &str = "(unknown cgroup)";

/// One workload's kills in the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KillGroup {
    /// namespace/pod/container, or the victim's cgroup path, or [`UNKNOWN_KEY`].
    pub key: String,
    /// The workload's kind (`container`, `system_service`, `host`, ...;
    /// `unknown` without one).
    pub kind: WorkloadKind,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    /// The systemd unit of a system service.
    pub unit: Option<String>,
    /// The latest victim's cgroup path.
    pub cgroup: Option<String>,
    pub kills: u32,
    /// RFC 3339 times of the first and the latest kill (absent when the log
    /// had no wall-clock times).
    pub first_kill: Option<String>,
    pub last_kill: Option<String>,
    /// Every cause among the kills, in the order first seen.
    pub causes: Vec<Cause>,
    /// The first [`FIRST_VICTIMS`] kills and the latest, oldest first: at most
    /// [`VICTIMS_KEPT`].
    pub victims: Vec<VictimKill>,
    /// The kills between the first victims and the latest, not kept.
    pub victims_left_out: u32,
    /// Each finding kind seen, with the latest kill's evidence for it.
    pub findings: Vec<GroupFinding>,
    /// The latest kill's diagnosis.
    pub summary: String,
    pub advice: Vec<Advice>,
}

/// One kill of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VictimKill {
    pub time: Option<String>,
    pub pid: u32,
    pub comm: Option<String>,
    pub cause: Option<Cause>,
    /// The memory cgroup that hit its limit, and its usage and limit then.
    pub oom_cgroup: Option<String>,
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// anon + file + shmem RSS of the victim.
    pub rss_kb: Option<u64>,
}

/// A finding of a group: its latest evidence (the JSON of the event's
/// finding), and in how many of the group's kills it was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub in_kills: u32,
}

/// Workloads grouped; the kills of any other are counted in [`LeftOut`]. A node rarely has
/// this many workloads killed in one boot, and a report of more is not read to its end.
pub const GROUPS_KEPT: usize = 500;
/// Victims a group keeps: its first [`FIRST_VICTIMS`] and its latest; the kills between them
/// are counted in [`KillGroup::victims_left_out`].
pub const VICTIMS_KEPT: usize = 16;
/// The first victims a group keeps (what the renderers show first).
pub const FIRST_VICTIMS: usize = 3;
/// Workloads beyond [`GROUPS_KEPT`] told apart (by a hash of their key) for
/// [`LeftOut::workloads`]; past this, it says "at least".
const LEFT_OUT_WORKLOADS_COUNTED: usize = 65_536;

/// The kills of workloads beyond the first [`GROUPS_KEPT`]: counted, not grouped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    /// Those workloads (at least this many when `workloads_exact` is false).
    pub workloads: u64,
    pub workloads_exact: bool,
    /// Their kills.
    pub kills: u64,
}

/// Kills grouped by workload as they come (in log order), in memory bounded by [`GROUPS_KEPT`]
/// groups of at most [`VICTIMS_KEPT`] victims each.
pub struct Grouper {
    groups: Vec<(KillGroup, u64)>,
    index: HashMap<String, usize>,
    position: u64,
    left_out: LeftOut,
    left_out_keys: HashSet<u64>,
}

impl Default for Grouper {
    fn default() -> Self {
        Self {
            groups: Vec::new(),
            index: HashMap::new(),
            position: 0,
            left_out: LeftOut { workloads_exact: true, ..LeftOut::default() },
            left_out_keys: HashSet::new(),
        }
    }
}

impl Grouper {
    /// The next kill in log order.
    pub fn add(&mut self, event: &OomEvent) {
        self.position += 1;
        let key = workload_key(event).unwrap_or_else(|| UNKNOWN_KEY.to_owned());
        let slot = match self.index.get(&key) {
            Some(&slot) => slot,
            None if self.groups.len() < GROUPS_KEPT => {
                self.groups.push((empty_group(key.clone()), self.position));
                self.index.insert(key, self.groups.len() - 1);
                self.groups.len() - 1
            }
            None => return self.leave_out(&key),
        };
        let (group, last) = &mut self.groups[slot];
        add(group, event);
        *last = self.position;
    }

    fn leave_out(&mut self, key: &str) {
        self.left_out.kills += 1;
        let hash = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut hasher);
            hasher.finish()
        };
        if self.left_out_keys.len() < LEFT_OUT_WORKLOADS_COUNTED {
            if self.left_out_keys.insert(hash) {
                self.left_out.workloads += 1;
            }
        } else if !self.left_out_keys.contains(&hash) {
            self.left_out.workloads_exact = false;
        }
    }

    /// Kills added.
    pub fn kills(&self) -> u64 {
        self.position
    }

    /// The groups, most kills first, then the most recent; and the kills left out of them.
    pub fn finish(self) -> (Vec<KillGroup>, LeftOut) {
        let mut groups = self.groups;
        groups.sort_by(|(a, a_last), (b, b_last)| b.kills.cmp(&a.kills).then(b_last.cmp(a_last)));
        (groups.into_iter().map(|(group, _)| group).collect(), self.left_out)
    }
}

/// Groups `events` (in log order), most kills first, then the most recent.
#[cfg(test)]
pub fn group(events: &[&OomEvent]) -> Vec<KillGroup> {
    let mut grouper = Grouper::default();
    events.iter().for_each(|event| grouper.add(event));
    grouper.finish().0
}

fn empty_group(key: String) -> KillGroup {
    KillGroup {
        key,
        kind: WorkloadKind::Unknown,
        namespace: None,
        pod: None,
        container: None,
        unit: None,
        cgroup: None,
        kills: 0,
        first_kill: None,
        last_kill: None,
        causes: Vec::new(),
        victims: Vec::new(),
        victims_left_out: 0,
        findings: Vec::new(),
        summary: String::new(),
        advice: Vec::new(),
    }
}

/// Adds the group's next kill: the latest one names the workload and gives
/// the summary, the advice and the newest evidence.
fn add(group: &mut KillGroup, event: &OomEvent) {
    group.kills += 1;
    if let Some(workload) = &event.workload {
        group.kind = workload.kind;
        group.namespace.clone_from(&workload.identity.namespace);
        group.pod.clone_from(&workload.identity.pod);
        group.container.clone_from(&workload.identity.container);
        group.unit.clone_from(&workload.unit);
    }
    if let Some(path) = event.victim_cgroup.as_ref().and_then(|c| c.path.clone()) {
        group.cgroup = Some(path);
    }
    if let Some(time) = event.time {
        if group.first_kill.is_none() {
            group.first_kill = Some(time.to_string());
        }
        group.last_kill = Some(time.to_string());
    }
    let diagnosis = event.diagnosis.as_ref();
    let cause = diagnosis.map(|d| d.cause);
    if let Some(cause) = cause
        && !group.causes.contains(&cause)
    {
        group.causes.push(cause);
    }
    if group.victims.len() >= VICTIMS_KEPT {
        group.victims.remove(FIRST_VICTIMS);
        group.victims_left_out += 1;
    }
    group.victims.push(VictimKill {
        time: event.time.map(|t| t.to_string()),
        pid: event.victim.pid,
        comm: event.victim.comm.clone(),
        cause,
        oom_cgroup: event.oom_cgroup.as_ref().and_then(|o| o.cgroup.path.clone()),
        usage_bytes: event.oom_cgroup.as_ref().and_then(|o| o.usage_bytes),
        limit_bytes: event.oom_cgroup.as_ref().and_then(|o| o.limit_bytes),
        rss_kb: event.victim.rss_kb(),
    });
    let Some(diagnosis) = diagnosis else { return };
    for finding in &diagnosis.findings {
        match group.findings.iter_mut().find(|f| f.finding.kind() == finding.kind()) {
            Some(seen) => {
                seen.finding = finding.clone();
                seen.in_kills += 1;
            }
            None => group.findings.push(GroupFinding { finding: finding.clone(), in_kills: 1 }),
        }
    }
    group.summary.clone_from(&diagnosis.summary);
    group.advice.clone_from(&diagnosis.advice);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::Diagnoser;
    use oomtrace_event::{Attribution, Cgroup, OomCgroup, Scope, Victim, WorkloadInfo, WorkloadKind};

    fn kill(pid: u32, path: &str, time: &str) -> OomEvent {
        OomEvent {
            time: time.parse().ok(),
            scope: Some(Scope::Memcg),
            victim_cgroup: Some(Cgroup { path: Some(path.to_owned()), ..Cgroup::default() }),
            oom_cgroup: Some(OomCgroup {
                cgroup: Cgroup { path: Some(path.to_owned()), ..Cgroup::default() },
                usage_bytes: Some(64 << 20),
                limit_bytes: Some(64 << 20),
            }),
            ..OomEvent::of_victim(Victim { pid, comm: Some("dd".to_owned()), ..Victim::default() })
        }
    }

    fn diagnosed(mut events: Vec<OomEvent>) -> Vec<OomEvent> {
        let mut diagnoser = Diagnoser::default();
        for event in &mut events {
            event.diagnosis = Some(diagnoser.diagnose(event));
        }
        events
    }

    #[test]
    fn kills_group_by_workload_with_counts_times_and_the_latest_evidence() {
        let events = diagnosed(vec![
            kill(10, "/a", "2026-11-29T10:00:00Z"),
            kill(20, "/b", "2026-11-29T10:00:05Z"),
            kill(11, "/a", "2026-11-29T10:00:10Z"),
            kill(12, "/a", "2026-11-29T10:00:30Z"),
        ]);
        let groups = group(&events.iter().collect::<Vec<_>>());
        assert_eq!(groups.iter().map(|g| (g.key.as_str(), g.kills)).collect::<Vec<_>>(), [("/a", 3), ("/b", 1)]);
        let a = &groups[0];
        assert_eq!(a.victims.iter().map(|v| v.pid).collect::<Vec<_>>(), [10, 11, 12]);
        assert_eq!(
            (a.first_kill.as_deref(), a.last_kill.as_deref()),
            (Some("2026-11-29T10:00:00.000000Z"), Some("2026-11-29T10:00:30.000000Z"))
        );
        assert_eq!(a.causes, [Cause::CgroupLimit]);
        assert_eq!(a.cgroup.as_deref(), Some("/a"));
        // The second and third kill were repeats; the evidence is the third's.
        assert_eq!(a.findings.len(), 1, "{:?}", a.findings);
        assert_eq!(a.findings[0].in_kills, 2);
        let json = serde_json::to_value(&a.findings[0]).expect("serializes");
        assert_eq!(json["kind"], "repeated");
        assert_eq!((json["kills"].as_u64(), json["over_seconds"].as_u64()), (Some(3), Some(30)));
        assert_eq!(a.summary, events[3].diagnosis.as_ref().map(|d| d.summary.clone()).unwrap_or_default());
        assert!(groups[1].findings.is_empty());
    }

    #[test]
    fn equal_counts_put_the_most_recent_first_and_pods_are_named() {
        let mut pod_kill = kill(30, "/kubepods/burstable/podx/abc", "2026-11-29T10:00:00Z");
        let mut workload = WorkloadInfo::new(WorkloadKind::Container, Attribution::Full);
        workload.identity.namespace = Some("shop".to_owned());
        workload.identity.pod = Some("api-1".to_owned());
        workload.identity.container = Some("api".to_owned());
        pod_kill.workload = Some(workload);
        let mut untimed = kill(40, "/x", "");
        untimed.time = None;
        untimed.victim_cgroup = None;
        let events = diagnosed(vec![pod_kill, kill(31, "/b", "2026-11-29T10:00:01Z"), untimed]);
        let groups = group(&events.iter().collect::<Vec<_>>());
        assert_eq!(groups.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(), [UNKNOWN_KEY, "/b", "shop/api-1/api"]);
        let pod = &groups[2];
        assert_eq!(
            (pod.kind, pod.namespace.as_deref(), pod.container.as_deref()),
            (WorkloadKind::Container, Some("shop"), Some("api"))
        );
        assert_eq!((groups[0].first_kill.as_deref(), groups[0].kind), (None, WorkloadKind::Unknown));
    }

    /// A workload killed thousands of times keeps its first victims and its latest, and counts
    /// the others; workloads beyond the cap are counted, not grouped: no kill goes uncounted.
    #[test]
    fn groups_and_their_victims_are_bounded_and_count_what_they_leave_out() {
        let mut grouper = Grouper::default();
        for n in 0..1000u32 {
            grouper.add(&kill(n, "/a", "2026-11-29T10:00:00Z"));
        }
        for n in 0..GROUPS_KEPT as u32 + 10 {
            let path = format!("/w/{n}");
            grouper.add(&kill(5000 + n, &path, "2026-11-29T11:00:00Z"));
            grouper.add(&kill(9000 + n, &path, "2026-11-29T11:00:01Z"));
        }
        assert_eq!(grouper.kills(), 1000 + 2 * (GROUPS_KEPT as u64 + 10));
        let (groups, left_out) = grouper.finish();
        assert_eq!(groups.len(), GROUPS_KEPT);
        // "/a" and the first GROUPS_KEPT - 1 of the others; 11 workloads left out, 2 kills each.
        assert_eq!(left_out, LeftOut { workloads: 11, workloads_exact: true, kills: 22 });
        let a = &groups[0];
        assert_eq!((a.key.as_str(), a.kills, a.victims.len()), ("/a", 1000, VICTIMS_KEPT));
        assert_eq!(a.victims_left_out as usize, 1000 - VICTIMS_KEPT);
        let pids: Vec<u32> = a.victims.iter().map(|v| v.pid).collect();
        assert_eq!(pids[..FIRST_VICTIMS], [0, 1, 2]);
        assert_eq!(pids[FIRST_VICTIMS..], (1000 - (VICTIMS_KEPT - FIRST_VICTIMS) as u32..1000).collect::<Vec<_>>());
        let grouped: u64 = groups.iter().map(|g| u64::from(g.kills)).sum();
        assert_eq!(grouped + left_out.kills, 1000 + 2 * (GROUPS_KEPT as u64 + 10));
    }
}
