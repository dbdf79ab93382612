//! Which limit a watched cgroup's is, named as the kill's cause would be.

use oomtrace_event::{Cause, LimitLevel};

use crate::{
    diagnosis::cause::is_node_allocatable,
    enrich::cgroup_path::{self, Workload},
    watch::Watched,
};

/// The level of `watched`'s limit; the node's is the kubelet's eviction
/// threshold where one is set, else its memory.
pub fn of(watched: &Watched, eviction: bool) -> LimitLevel {
    match watched {
        Watched::Node if eviction => LimitLevel::NodeEviction,
        Watched::Node => LimitLevel::NodeMemory,
        Watched::Cgroup(path) if is_node_allocatable(path) => LimitLevel::NodeAllocatable,
        Watched::Cgroup(path) => match cgroup_path::parse(path) {
            Workload::Container { pod_uid: Some(_), .. } => LimitLevel::Container,
            Workload::Pod { .. } => LimitLevel::Pod,
            _ => LimitLevel::Cgroup,
        },
    }
}

/// The cause the kill would have (the diagnosis' names).
pub fn cause(level: LimitLevel) -> Cause {
    match level {
        LimitLevel::Container => Cause::ContainerLimit,
        LimitLevel::Pod => Cause::PodLimit,
        LimitLevel::NodeAllocatable => Cause::NodeAllocatable,
        LimitLevel::Cgroup => Cause::CgroupLimit,
        LimitLevel::NodeEviction | LimitLevel::NodeMemory => Cause::NodeMemory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_level() {
        let pod =
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4eef3118_9623_43e2_a006_c34d3a41d2fc.slice";
        let container = format!("{pod}/cri-containerd-{}.scope", "a".repeat(64));
        assert_eq!(of(&Watched::Cgroup(container), true), LimitLevel::Container);
        assert_eq!(of(&Watched::Cgroup(pod.to_owned()), true), LimitLevel::Pod);
        assert_eq!(of(&Watched::Cgroup("/kubepods.slice".to_owned()), true), LimitLevel::NodeAllocatable);
        assert_eq!(of(&Watched::Cgroup("/system.slice/kubelet.service".to_owned()), true), LimitLevel::Cgroup);
        assert_eq!(of(&Watched::Node, true), LimitLevel::NodeEviction);
        assert_eq!(of(&Watched::Node, false), LimitLevel::NodeMemory);
    }
}
