//! Why a kill happened, from the event's facts alone: which limit the OOMing
//! memory cgroup is, relative to the victim's container and pod (the causes
//! of docs/diagnosis.md; their names are `oomtrace_event::Cause`).

use crate::enrich::cgroup_path::{self, Workload};
use oomtrace_event::{Cause, MissingFact, OomEvent, Scope};

/// The cause, and the facts that were missing when it is `Unknown`.
pub fn cause(event: &OomEvent) -> (Cause, Vec<MissingFact>) {
    match event.scope {
        Some(Scope::Global) => (Cause::NodeMemory, Vec::new()),
        Some(Scope::Cpuset | Scope::Mempolicy) => (Cause::Constrained, Vec::new()),
        Some(Scope::Memcg) => match event.oom_cgroup.as_ref().and_then(|c| c.cgroup.path.as_deref()) {
            Some(oom_path) => (memcg_cause(oom_path, event), Vec::new()),
            None => (Cause::Unknown, vec![MissingFact::OomCgroupPath]),
        },
        Some(Scope::Unknown) | None => (Cause::Unknown, vec![MissingFact::Scope]),
    }
}

/// Which limit the OOMing memcg at `oom_path` is.
fn memcg_cause(oom_path: &str, event: &OomEvent) -> Cause {
    if is_node_allocatable(oom_path) {
        return Cause::NodeAllocatable;
    }
    let victim_path = event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref());
    match cgroup_path::parse(oom_path) {
        Workload::Container { pod_uid: Some(_), .. } => Cause::ContainerLimit,
        Workload::Pod { .. } => Cause::PodLimit,
        // The victim's own memcg is a container of a pod: its limit.
        _ if victim_path == Some(oom_path) && is_in_pod(oom_path) => Cause::ContainerLimit,
        _ => Cause::CgroupLimit,
    }
}

fn is_in_pod(path: &str) -> bool {
    matches!(cgroup_path::parse(path), Workload::Container { pod_uid: Some(_), .. } | Workload::Pod { .. })
}

/// `kubepods` and its QoS classes, in both cgroup drivers' spellings (also
/// kind's `kubelet.slice/kubelet-kubepods.slice` and kubelet ≤ 1.6's names).
pub fn is_node_allocatable(path: &str) -> bool {
    let Some(last) = path.trim_end_matches('/').rsplit('/').next() else { return false };
    let last = last.strip_suffix(".slice").unwrap_or(last);
    let under_kubepods = path.split('/').any(|c| c.starts_with("kubepods") || c.starts_with("kubelet-kubepods"));
    matches!(last, "kubepods" | "kubelet-kubepods" | "Burstable" | "BestEffort")
        || (under_kubepods
            && (matches!(last, "burstable" | "besteffort")
                || last.ends_with("kubepods-burstable")
                || last.ends_with("kubepods-besteffort")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_event::{Cgroup, OomCgroup, Victim};

    const POD_SLICE: &str =
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4eef3118_9623_43e2_a006_c34d3a41d2fc.slice";

    fn memcg_event(victim: &str, oom: &str) -> OomEvent {
        OomEvent {
            scope: Some(Scope::Memcg),
            victim_cgroup: Some(Cgroup { path: Some(victim.to_owned()), ..Cgroup::default() }),
            oom_cgroup: Some(OomCgroup {
                cgroup: Cgroup { path: Some(oom.to_owned()), ..Cgroup::default() },
                ..OomCgroup::default()
            }),
            ..OomEvent::of_victim(Victim::default())
        }
    }

    fn container() -> String {
        format!("{POD_SLICE}/cri-containerd-6ff7483e10cdc490cbd3ff5a3389ca2424e1b6840871b27b9c740bc749f54bb9.scope")
    }

    /// Paths from the node VM's runs (systemd driver) and the cgroupfs driver.
    #[test]
    fn the_ooming_memcg_names_the_limit() {
        let c = container();
        assert_eq!(cause(&memcg_event(&c, &c)).0, Cause::ContainerLimit);
        assert_eq!(cause(&memcg_event(&c, POD_SLICE)).0, Cause::PodLimit);
        assert_eq!(cause(&memcg_event(&c, "/kubepods.slice")).0, Cause::NodeAllocatable);
        assert_eq!(cause(&memcg_event(&c, "/kubepods.slice/kubepods-burstable.slice")).0, Cause::NodeAllocatable);
        assert_eq!(
            cause(&memcg_event("/kubepods/besteffort/podx/abc", "/kubepods/besteffort")).0,
            Cause::NodeAllocatable
        );
        assert_eq!(cause(&memcg_event("/system.slice/x.service", "/system.slice/x.service")).0, Cause::CgroupLimit);
    }

    #[test]
    fn the_scope_decides_first_and_missing_facts_are_named() {
        let mut event = memcg_event(&container(), POD_SLICE);
        event.scope = Some(Scope::Global);
        assert_eq!(cause(&event), (Cause::NodeMemory, vec![]));
        event.scope = Some(Scope::Cpuset);
        assert_eq!(cause(&event).0, Cause::Constrained);
        event.scope = None;
        assert_eq!(cause(&event), (Cause::Unknown, vec![MissingFact::Scope]));
        event.scope = Some(Scope::Memcg);
        event.oom_cgroup = None;
        assert_eq!(cause(&event), (Cause::Unknown, vec![MissingFact::OomCgroupPath]));
    }
}
