//! What to change after a kill, following the AKS guide "Troubleshoot
//! OOMKilled in AKS clusters" (MicrosoftDocs SupportArticles-docs,
//! `support/azure/azure-kubernetes/availability-performance/troubleshoot-oomkilled-aks-clusters.md`;
//! its sections are cited where each step is made), with each command filled
//! in from the event.
//!
//! Every step has a stable `action` name (docs/diagnosis.md):
//! - `raise_limit`: a user workload hit its container's (or pod's) limit:
//!   `kubectl set resources` on its owner, limit and request at the limit VPA
//!   would set ([`recommended_limit_mib`]); a bare pod is recreated, a Job's
//!   new manifest is written (their templates cannot change in place), a
//!   static pod's manifest is edited on the node (no command).
//! - `set_limit`: the victim's container had no limit (`no_limit`) in a node
//!   level OOM: give it one, from what its process held.
//! - `limit_below_startup` (`early`): killed soon after it started: the limit
//!   is below what it needs to start.
//! - `investigate_leak` (`repeated`): killed again and again after running a
//!   while: a leak, or a working set above the limit; the app's vendor and its
//!   runtime's version (Java/.NET after the cgroup v2 switch).
//! - `investigate_spike`: one kill after running a while: a spike under load.
//! - `metrics_server_vpa`: metrics-server in kube-system: its AKS
//!   addon-resizer ConfigMap (`metrics-server-config`).
//! - `coredns_autoscaling`: CoreDNS in kube-system: its `coredns-autoscaler`
//!   ConfigMap.
//! - `system_node_pool`: another kube-system pod, or a node out of memory: a
//!   system node pool of at least three nodes apart from the user pools.
//! - `list_pods_without_limits`: node-level OOM: the node's pods with their
//!   memory requests and limits, to find those without limits.
//! - `match_requests_to_usage`: node-level OOM: memory requests equal to
//!   limits and to real usage, and a node size that holds them.
//! - `reserve_system_memory`: a host process died in a node-level OOM.
//! - `systemd_memory_limit`: a systemd unit (kubelet.service,
//!   containerd.service, …) or slice hit its `MemoryMax`.
//! - `cgroup_memory_limit`: another memory cgroup outside Kubernetes hit its limit.
//! - `memory_policy`: a cpuset or mempolicy OOM.
//! - `find_missing_facts`: the cause is unknown.
//! - `limit_tmpfs` (`tmpfs`), `page_cache` (`page_cache`), `kernel_memory`
//!   (`kernel_memory`), `lost_worker` (`not_main_process`): what the finding
//!   means for the fix.

mod system;
#[cfg(test)]
mod tests;
pub mod words;
mod workload;

use oomtrace_event::{Advice, Cause, Finding, FindingKind};

use crate::enrich::owner::owner;
use oomtrace_event::{OomEvent, Owner};
use words::MIB;

/// VPA's rule after an OOM kill (kubernetes/autoscaler, vertical-pod-autoscaler
/// `pkg/recommender/model/container.go`: `OOMBumpUpRatio` 1.2 and
/// `OOMMinBumpUp` 100 MiB; today the recommender's `--oom-bump-up-ratio` and
/// `--oom-min-bump-up-bytes` defaults): the larger of `used + 100 MiB` and
/// `used × 1.2`, where `used` is
/// the larger of the limit at the kill and the peak usage seen. In MiB,
/// rounded up.
pub fn recommended_limit_mib(limit_bytes: Option<u64>, peak_usage_bytes: Option<u64>) -> Option<u64> {
    let used = limit_bytes.max(peak_usage_bytes)?;
    let bumped = used.saturating_add(100 * MIB).max(used.saturating_mul(6) / 5);
    Some(bumped.div_ceil(MIB))
}

/// What the advice is made from: the event's facts, read once.
pub(crate) struct Facts<'a> {
    pub event: &'a OomEvent,
    pub findings: &'a [Finding],
    pub namespace: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub container: Option<&'a str>,
    /// The pod's owner: the workload's, else derived from the pod's name.
    pub owner: Option<Owner>,
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// Advice before the kill (a warning): nothing was killed yet.
    pub ahead: bool,
}

impl<'a> Facts<'a> {
    fn of(event: &'a OomEvent, findings: &'a [Finding]) -> Self {
        let workload = event.workload.as_ref();
        let identity = workload.map(|w| &w.identity);
        let pod = identity.and_then(|i| i.pod.as_deref());
        let oom = event.oom_cgroup.as_ref();
        Self {
            event,
            findings,
            namespace: identity.and_then(|i| i.namespace.as_deref()),
            pod,
            container: identity.and_then(|i| i.container.as_deref()),
            owner: workload.and_then(|w| w.owner.clone()).or_else(|| pod.map(|p| owner(p, &[]))),
            limit_bytes: oom.and_then(|c| c.limit_bytes),
            usage_bytes: oom.and_then(|c| c.usage_bytes),
            ahead: false,
        }
    }

    pub fn has(&self, kind: FindingKind) -> bool {
        self.findings.iter().any(|f| f.kind() == kind)
    }

    pub fn system_pod(&self) -> bool {
        self.namespace == Some("kube-system")
    }

    /// The limit VPA would set after this kill, MiB.
    pub fn recommended_mib(&self) -> Option<u64> {
        recommended_limit_mib(self.limit_bytes, self.usage_bytes)
    }

    /// The node's name, when the event carries it.
    pub fn node(&self) -> Option<&'a str> {
        self.event.node.as_deref()
    }
}

/// What to change after this kill, following the AKS guide: the steps for
/// the cause first, then what each finding adds.
pub fn advise(event: &OomEvent, cause: Cause, findings: &[Finding]) -> Vec<Advice> {
    steps(&Facts::of(event, findings), cause)
}

/// What to change before a kill that has not happened yet (a warning): the
/// steps of `cause` alone, for `event` as the kill would be (the limit and
/// the memory reclaim could not give back as its OOMing memcg's figures).
pub fn advise_ahead(event: &OomEvent, cause: Cause) -> Vec<Advice> {
    steps(&Facts { ahead: true, ..Facts::of(event, &[]) }, cause)
}

/// The steps for `cause`; after a kill (not `ahead`) also what the kill
/// itself shows: its pattern, the pods without limits, the findings.
fn steps(facts: &Facts, cause: Cause) -> Vec<Advice> {
    let after = !facts.ahead;
    let mut out = Vec::new();
    match cause {
        Cause::ContainerLimit | Cause::PodLimit if facts.system_pod() => out.extend(system::system_pod(facts)),
        Cause::ContainerLimit | Cause::PodLimit => {
            out.extend(workload::raise_limit(facts, cause));
            if after {
                out.extend(workload::kill_pattern(facts));
            }
        }
        Cause::NodeAllocatable | Cause::NodeMemory => {
            if after {
                if facts.system_pod() {
                    out.extend(system::system_pod(facts));
                }
                out.extend(workload::set_missing_limit(facts));
            }
            out.extend(system::node_level(facts, cause));
        }
        Cause::CgroupLimit => out.push(system::cgroup_limit(facts)),
        Cause::Constrained if after => out.push(system::memory_policy(facts)),
        Cause::Unknown if after => out.push(system::find_missing_facts(facts)),
        Cause::Constrained | Cause::Unknown => {}
    }
    if after {
        out.extend(workload::finding_notes(facts));
    }
    out
}
