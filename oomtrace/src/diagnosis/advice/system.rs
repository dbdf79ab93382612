//! Advice beyond one user workload: kube-system pods (the guide's "Handling
//! OOMKilled for system pods"), a node out of memory, systemd units and other
//! cgroups outside Kubernetes, and what to do when the cause is unknown.

use super::{
    Facts,
    words::{process, shell_word, size},
};
use oomtrace_event::{Advice, AdviceAction, Cause};

use crate::diagnosis::cause;
use oomtrace_event::WorkloadKind;

/// The guide's system node pool ("Other pods in the kube-system namespace",
/// "Setting up system and user node pools"); the command is AKS's "Add a
/// dedicated system node pool to an existing AKS cluster"
/// (azure-aks-docs `articles/aks/use-system-pools.md`). `<…>` are what the
/// node cannot know.
pub const SYSTEM_POOL_COMMAND: &str = "az aks nodepool add --resource-group <resource-group> --cluster-name <cluster> \
     --name <systempool> --node-count 3 --node-taints CriticalAddonsOnly=true:NoSchedule --mode System";

/// AKS's metrics-server sizes itself from this ConfigMap (azure-aks-docs
/// `articles/aks/use-metrics-server-vertical-pod-autoscaler.md`):
/// memory = baseMemory + memoryPerNode × nodes. With `baseMemory` at the
/// limit VPA would set, the new limit is at least that on any cluster size.
fn metrics_server_command(base_memory_mib: u64) -> String {
    format!(
        "kubectl apply -f - <<'EOF'\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n  \
           name: metrics-server-config\n  \
           namespace: kube-system\n  \
           labels:\n    \
             kubernetes.io/cluster-service: \"true\"\n    \
             addonmanager.kubernetes.io/mode: EnsureExists\n\
         data:\n  \
           NannyConfiguration: |-\n    \
             apiVersion: nannyconfig/v1alpha1\n    \
             kind: NannyConfiguration\n    \
             baseCPU: 100m\n    \
             cpuPerNode: 1m\n    \
             baseMemory: {base_memory_mib}Mi\n    \
             memoryPerNode: 8Mi\n\
         EOF\n\
         kubectl -n kube-system delete pod -l k8s-app=metrics-server"
    )
}

/// CoreDNS's replica count comes from this ConfigMap (azure-aks-docs
/// `articles/aks/coredns-custom.md`, "Configure CoreDNS horizontal pod scaling").
pub const COREDNS_AUTOSCALER_COMMAND: &str = "kubectl -n kube-system get configmap coredns-autoscaler -o yaml";

/// The advice for a kube-system pod (guide, "Handling OOMKilled for system pods").
pub fn system_pod(facts: &Facts) -> Vec<Advice> {
    let name = facts.owner.as_ref().map(|o| o.name.as_str()).or(facts.pod).unwrap_or("");
    let container = facts.container.unwrap_or("");
    let is = |app: &str| name == app || container == app;
    if is("metrics-server") {
        let n = facts.recommended_mib();
        let limit = facts.limit_bytes.map(size).unwrap_or_else(|| "its limit".to_owned());
        let text = format!(
            "metrics-server was killed at {limit}. On AKS its resources follow the `metrics-server-config` ConfigMap \
             (memory = baseMemory + memoryPerNode × nodes; guide, \"metrics-server\": configure the Metrics Server \
             VPA): the command sets baseMemory to {} so the limit becomes at least that, and restarts its pods. \
             Where you run metrics-server yourself, raise its Deployment's limit instead.",
            n.map(|n| format!("{n} MiB, what VPA sets after an OOM kill,")).unwrap_or_else(|| "a higher value".into())
        );
        return vec![Advice::new(AdviceAction::MetricsServerVpa, text, n.map(metrics_server_command))];
    }
    if is("coredns") {
        let text = "CoreDNS is killed by traffic spikes (guide, \"CoreDNS\"). AKS scales its replicas from the \
                    `coredns-autoscaler` ConfigMap (cluster-proportional-autoscaler, `linear` or `ladder`): edit it \
                    (`kubectl -n kube-system edit configmap coredns-autoscaler`) so more replicas share the queries, \
                    keeping at least 2. More replicas do not help if the nodes they run on lack memory; custom \
                    zones and forwarders go in `coredns-custom`."
            .to_owned();
        return vec![Advice::new(AdviceAction::CorednsAutoscaling, text, Some(COREDNS_AUTOSCALER_COMMAND.to_owned()))];
    }
    let text = format!(
        "A kube-system pod{} was killed. Keep system pods on a system node pool of at least three nodes, with user \
         workloads on user node pools, so an application's memory cannot starve them (guide, \"Other pods in the \
         kube-system namespace\"). The command adds such a pool; fill in the `<…>` values.",
        facts.pod.map(|p| format!(" (`{p}`)")).unwrap_or_default()
    );
    vec![Advice::new(AdviceAction::SystemNodePool, text, Some(SYSTEM_POOL_COMMAND.to_owned()))]
}

/// The node's pods with their QoS class and memory requests and limits.
fn pods_on_node_command(node: Option<&str>) -> String {
    let selector = node.map(|n| format!(" --field-selector spec.nodeName={}", shell_word(n))).unwrap_or_default();
    format!(
        "kubectl get pods -A{selector} -o custom-columns=NAMESPACE:.metadata.namespace,POD:.metadata.name,\
         QOS:.status.qosClass,MEMORY_REQUEST:.spec.containers[*].resources.requests.memory,\
         MEMORY_LIMIT:.spec.containers[*].resources.limits.memory"
    )
}

/// A node out of memory, or its pods together over allocatable (guide,
/// "Possible Causes": resource overcommitment, insufficient node resources;
/// "Avoiding OOMKill in the future").
pub fn node_level(facts: &Facts, cause: Cause) -> Vec<Advice> {
    let node = facts.node();
    let what = match cause {
        Cause::NodeAllocatable => format!(
            "The node's pods together reached {} (the `kubepods` limit: node allocatable) before the kubelet evicted \
             any",
            facts.limit_bytes.map(size).unwrap_or_else(|| "what the kubelet reserved for them".to_owned())
        ),
        _ if facts.ahead => "The node heads for the end of its memory (or the kubelet's eviction threshold)".to_owned(),
        _ => "The node itself ran out of memory".to_owned(),
    };
    let mut out = Vec::new();
    if !facts.ahead
        && matches!(
            facts.event.workload.as_ref().map(|w| w.kind),
            Some(WorkloadKind::Host | WorkloadKind::SystemService)
        )
    {
        out.push(Advice::new(
            AdviceAction::ReserveSystemMemory,
            format!(
                "{what}, and the kernel killed a host process, {}{}. The kubelet's `--system-reserved` and \
                 `--kube-reserved` keep memory back from pods for the host, and its hard eviction threshold evicts \
                 pods before the node runs out; on AKS they follow the VM size, so a larger VM size reserves more.",
                process(facts.event),
                facts
                    .event
                    .workload
                    .as_ref()
                    .and_then(|w| w.unit.as_deref())
                    .map(|u| format!(" of `{u}`"))
                    .unwrap_or_default()
            ),
            None,
        ));
    }
    out.push(Advice::new(
        AdviceAction::ListPodsWithoutLimits,
        format!(
            "{what}. List the node's pods with their memory requests and limits: those with `<none>` as limit \
             (BestEffort, or Burstable without a memory limit) and those whose limit is far above their request let \
             the pods together promise more memory than the node has."
        ),
        Some(pods_on_node_command(node)),
    ));
    out.push(Advice::new(
        AdviceAction::MatchRequestsToUsage,
        format!(
            "Set each container's memory request to what it really uses and its limit equal to the request (guide, \
             \"Validating and Setting resource limits\"; `kubectl top pod`), so the scheduler never places more on \
             a node than it holds; if the requests that match usage do not fit, use a larger node size. `kubectl \
             describe node {}` shows the requests and limits allocated against the node's allocatable memory.",
            node.map(shell_word).unwrap_or_else(|| "<node>".to_owned())
        ),
        node.map(|n| format!("kubectl describe node {}", shell_word(n))),
    ));
    if !facts.system_pod() {
        out.push(Advice::new(
            AdviceAction::SystemNodePool,
            "Keep user workloads off the system node pool (guide, \"Cause 1: User workloads may be running in a \
             system node pool\"): a system node pool of at least three nodes tainted CriticalAddonsOnly, and user \
             node pools for applications; fill in the `<…>` values."
                .to_owned(),
            Some(SYSTEM_POOL_COMMAND.to_owned()),
        ));
    }
    out
}

/// The systemd unit or slice a cgroup path ends in.
fn systemd_unit(path: &str) -> Option<&str> {
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    [".service", ".scope", ".slice"].iter().any(|s| last.ends_with(s)).then_some(last)
}

/// `systemd_memory_limit` / `cgroup_memory_limit`: a cgroup outside
/// Kubernetes hit its limit (the guide covers pods only; systemd's own
/// `MemoryMax=` is what limits a unit).
pub fn cgroup_limit(facts: &Facts) -> Advice {
    let oom_path = facts.event.oom_cgroup.as_ref().and_then(|c| c.cgroup.path.as_deref()).unwrap_or("?");
    let limit = facts.limit_bytes.map(size).unwrap_or_else(|| "its limit".to_owned());
    let who = process(facts.event);
    let unit = systemd_unit(oom_path).or_else(|| facts.event.workload.as_ref().and_then(|w| w.unit.as_deref()));
    let Some(unit) = unit else {
        let what = match facts.ahead {
            true => format!("Memory cgroup `{oom_path}` heads for its limit of {limit}"),
            false => format!("{who} was killed at {limit} of memory cgroup `{oom_path}`"),
        };
        let text = format!(
            "{what}, outside Kubernetes and systemd units. Raise that cgroup's limit (`memory.max` on cgroup v2, \
             `memory.limit_in_bytes` on v1) where it is set, or find what grows in it."
        );
        return Advice::new(AdviceAction::CgroupMemoryLimit, text, None);
    };
    let n = facts.recommended_mib();
    let critical = match unit {
        "kubelet.service" | "containerd.service" | "crio.service" | "docker.service" => {
            " Without it the node cannot run or report its pods: a limit there should be generous, or none."
        }
        _ => "",
    };
    let what = match facts.ahead {
        true => format!("`{unit}` heads for {limit}"),
        false => format!("{who} was killed at {limit}"),
    };
    let text = format!(
        "{what}, the memory limit of `{unit}` (cgroup `{oom_path}`).{critical} See where it is \
         set (`systemctl show -p MemoryMax -p MemoryHigh -p MemoryCurrent {u}`; `systemctl cat {u}` shows the unit \
         files) and raise it{}.",
        n.map(|n| format!(" to {n} MiB (+100 MiB or +20 %, as VPA would)")).unwrap_or_default(),
        u = shell_word(unit)
    );
    let command = match n {
        Some(n) => format!(
            "systemctl show -p MemoryMax -p MemoryHigh -p MemoryCurrent {u} && systemctl set-property {u} MemoryMax={n}M",
            u = shell_word(unit)
        ),
        None => format!("systemctl show -p MemoryMax -p MemoryHigh -p MemoryCurrent {}", shell_word(unit)),
    };
    Advice::new(AdviceAction::SystemdMemoryLimit, text, Some(command))
}

/// `memory_policy`: a cpuset or mempolicy OOM.
pub fn memory_policy(facts: &Facts) -> Advice {
    let text = format!(
        "{} was killed because the memory nodes its cpuset or NUMA memory policy allows ran out, while the node may \
         still have memory elsewhere. Check the pod's or process's cpuset (`cpuset.mems`) and memory policy \
         (topology manager, `numactl`), or allow it more NUMA nodes.",
        process(facts.event)
    );
    Advice::new(AdviceAction::MemoryPolicy, text, None)
}

/// `find_missing_facts`: the cause is unknown.
pub fn find_missing_facts(facts: &Facts) -> Advice {
    let missing = cause::cause(facts.event).1.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
    let text = format!(
        "The cause cannot be told: {} missing. `oomtrace check` shows which probes attach on this kernel; the \
         kernel's own report (`oomtrace history`) names the cgroup that hit its limit when the log kept it.",
        if missing.is_empty() { "facts are".to_owned() } else { format!("{missing} is") }
    );
    Advice::new(AdviceAction::FindMissingFacts, text, Some("oomtrace check".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_read_from_the_cgroup_path() {
        assert_eq!(systemd_unit("/system.slice/kubelet.service"), Some("kubelet.service"));
        assert_eq!(systemd_unit("/user.slice/user-1000.slice/"), Some("user-1000.slice"));
        assert_eq!(systemd_unit("/oomtrace-test-x"), None);
    }

    #[test]
    fn the_metrics_server_manifest_carries_the_new_base() {
        let command = metrics_server_command(300);
        assert!(command.starts_with("kubectl apply -f - <<'EOF'\napiVersion: v1\nkind: ConfigMap\n"), "{command}");
        assert!(command.contains("\n    baseMemory: 300Mi\n"), "{command}");
        assert!(command.ends_with("EOF\nkubectl -n kube-system delete pod -l k8s-app=metrics-server"), "{command}");
    }
}
