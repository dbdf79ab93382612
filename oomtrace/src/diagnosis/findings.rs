//! What else the facts of one kill say: each finding with its evidence
//! numbers. Thresholds are named constants so the docs (docs/diagnosis.md)
//! can cite them.

use std::collections::BTreeMap;

use oomtrace_event::{Finding, Repeat};
use oomtrace_event::{OomEvent, Qos};

/// shmem (tmpfs, emptyDir medium Memory, /dev/shm) at or above this share of
/// the charged memory: killing a process does not free it.
pub const TMPFS_SHARE_PERCENT: u64 = 25;
/// Page cache at or above this share: the kernel could not reclaim it fast
/// enough, or it is dirty/locked.
pub const PAGE_CACHE_SHARE_PERCENT: u64 = 50;
/// Kernel memory (slab, stacks, page tables) plus socket buffers at or above
/// this share.
pub const KERNEL_SHARE_PERCENT: u64 = 30;
/// Killed within this long of the container's start: it needs more than its
/// limit just to start.
pub const EARLY_SECONDS: u64 = 60;

/// The findings of one event, in a stable order; `repeat` is what the kill
/// memory says of its workload.
pub fn findings(event: &OomEvent, repeat: Option<Repeat>) -> Vec<Finding> {
    let mut out = Vec::new();
    let workload = event.workload.as_ref();
    if let Some(repeat) = repeat {
        out.push(Finding::Repeated { repeat, restart_count: workload.and_then(|w| w.restart_count) });
    }
    if let Some(running_seconds) = running_seconds(event).filter(|s| *s < EARLY_SECONDS) {
        out.push(Finding::Early { running_seconds });
    }
    if event.group_kill == Some(true) {
        out.push(Finding::GroupKill);
    }
    if workload.and_then(|w| w.main_process) == Some(false) {
        out.push(Finding::NotMainProcess);
    }
    if workload.and_then(|w| w.identity.qos) == Some(Qos::BestEffort) {
        out.push(Finding::NoLimit);
    }
    if let Some(namespace) = workload.and_then(|w| w.identity.namespace.as_deref()).filter(|ns| *ns == "kube-system") {
        out.push(Finding::SystemPod { namespace: namespace.to_owned() });
    }
    if let Some(stat) = event.kernel_report.as_ref().map(|r| &r.memory_stat).filter(|s| !s.is_empty()) {
        out.extend(memory_findings(&Breakdown::of(stat)));
    }
    out
}

/// How long the container had been running at the kill; `None` when either
/// time is unknown or the start is after the kill (a later instance's).
pub fn running_seconds(event: &OomEvent) -> Option<u64> {
    let started = event.workload.as_ref()?.started_at?.system_time();
    let killed = event.time?.system_time();
    killed.duration_since(started).ok().map(|d| d.as_secs())
}

/// The charged memory by kind, bytes, from cgroup v2's memory.stat names or
/// v1's hierarchical `total_*` ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
    pub kernel: u64,
}

impl Breakdown {
    pub fn of(stat: &BTreeMap<String, u64>) -> Self {
        let get = |name: &str| stat.get(name).copied().unwrap_or(0);
        if stat.contains_key("anon") {
            // v2: `file` includes shmem; `kernel` (5.18+) includes slab and
            // stacks, else their sum; sockets are charged apart.
            let kernel = if stat.contains_key("kernel") {
                get("kernel")
            } else {
                get("slab") + get("kernel_stack") + get("pagetables")
            };
            Self {
                anon: get("anon"),
                file: get("file").saturating_sub(get("shmem")),
                shmem: get("shmem"),
                kernel: kernel + get("sock"),
            }
        } else {
            // v1: `total_cache` includes shmem; kernel memory is not in memory.stat.
            Self {
                anon: get("total_rss"),
                file: get("total_cache").saturating_sub(get("total_shmem")),
                shmem: get("total_shmem"),
                kernel: 0,
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.anon + self.file + self.shmem + self.kernel
    }
}

fn memory_findings(breakdown: &Breakdown) -> Vec<Finding> {
    let total = breakdown.total();
    if total == 0 {
        return Vec::new();
    }
    let share = |part: u64| part.saturating_mul(100) / total;
    let mut out = Vec::new();
    if share(breakdown.shmem) >= TMPFS_SHARE_PERCENT {
        out.push(Finding::Tmpfs { shmem_bytes: breakdown.shmem, share_percent: share(breakdown.shmem) });
    }
    if share(breakdown.file) >= PAGE_CACHE_SHARE_PERCENT {
        out.push(Finding::PageCache { file_bytes: breakdown.file, share_percent: share(breakdown.file) });
    }
    if share(breakdown.kernel) >= KERNEL_SHARE_PERCENT {
        out.push(Finding::KernelMemory { kernel_bytes: breakdown.kernel, share_percent: share(breakdown.kernel) });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_event::{Attribution, KernelReport, Victim, WorkloadInfo, WorkloadKind};

    fn stat(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    /// memory.stat of the node VM's kill (6.12, cgroup v2): almost all anon.
    #[test]
    fn an_anon_kill_has_no_memory_finding() {
        let s = stat(&[("anon", 33_329_152), ("file", 0), ("shmem", 0), ("kernel", 225_280), ("sock", 0)]);
        let b = Breakdown::of(&s);
        assert_eq!(b, Breakdown { anon: 33_329_152, file: 0, shmem: 0, kernel: 225_280 });
        assert!(memory_findings(&b).is_empty());
    }

    #[test]
    fn tmpfs_page_cache_and_kernel_memory_are_found_with_their_share() {
        let tmpfs = Breakdown::of(&stat(&[("anon", 40), ("file", 60), ("shmem", 50), ("kernel", 0)]));
        assert_eq!(memory_findings(&tmpfs), vec![Finding::Tmpfs { shmem_bytes: 50, share_percent: 50 }]);
        let cache = Breakdown::of(&stat(&[("anon", 30), ("file", 70), ("shmem", 0), ("kernel", 0)]));
        assert_eq!(memory_findings(&cache), vec![Finding::PageCache { file_bytes: 70, share_percent: 70 }]);
        let kernel = Breakdown::of(&stat(&[("anon", 50), ("file", 0), ("shmem", 0), ("kernel", 30), ("sock", 20)]));
        assert_eq!(memory_findings(&kernel), vec![Finding::KernelMemory { kernel_bytes: 50, share_percent: 50 }]);
    }

    /// This host's v1 report (`total_*` are the hierarchy's).
    #[test]
    fn cgroup_v1_uses_the_hierarchical_totals() {
        let b = Breakdown::of(&stat(&[("rss", 0), ("total_rss", 66_891_776), ("total_cache", 0), ("total_shmem", 0)]));
        assert_eq!(b.anon, 66_891_776);
    }

    #[test]
    fn workload_facts_become_findings() {
        let mut workload = WorkloadInfo::new(WorkloadKind::Container, Attribution::Full);
        workload.identity.namespace = Some("kube-system".to_owned());
        workload.identity.qos = Some(Qos::BestEffort);
        workload.main_process = Some(false);
        let event = OomEvent {
            group_kill: Some(true),
            workload: Some(workload),
            kernel_report: Some(KernelReport::default()),
            ..OomEvent::of_victim(Victim::default())
        };
        assert_eq!(
            findings(&event, None),
            vec![
                Finding::GroupKill,
                Finding::NotMainProcess,
                Finding::NoLimit,
                Finding::SystemPod { namespace: "kube-system".to_owned() }
            ]
        );
    }
}
