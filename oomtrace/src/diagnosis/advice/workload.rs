//! Advice for a user workload: its new limit with the command for its owner,
//! what the pattern of its kills says (leak, spike, too small to start), and
//! what each memory finding means for the fix.

use super::{
    Facts,
    words::{duration, shell_word, size},
};
use oomtrace_event::{Advice, AdviceAction, Cause, Finding};

use crate::diagnosis::findings::running_seconds;
use oomtrace_event::{FindingKind, Owner, OwnerKind};

/// `kubectl` resource names of the owners whose pod template
/// `kubectl set resources` changes in place.
fn settable(kind: OwnerKind) -> bool {
    matches!(kind, OwnerKind::Deployment | OwnerKind::StatefulSet | OwnerKind::DaemonSet | OwnerKind::CronJob)
}

/// The command that gives `container` of `owner` (in `namespace`) a memory
/// limit and request of `n_mib`: `kubectl set resources` on the owner, or for
/// a bare pod and a Job (whose pod templates cannot change) the new manifest
/// made from the old with `--local`.
pub fn set_resources_command(owner: &Owner, namespace: &str, container: &str, n_mib: u64) -> String {
    let (ns, c, name) = (shell_word(namespace), shell_word(container), shell_word(&owner.name));
    let resources = format!("-c {c} --limits=memory={n_mib}Mi --requests=memory={n_mib}Mi");
    match owner.kind {
        kind if settable(kind) => format!("kubectl set resources {}/{name} -n {ns} {resources}", kind.as_str()),
        // Guide, "Cause 2": `kubectl set resources deployment …`; a pod's
        // resources cannot be set in place: replace it with the changed copy.
        OwnerKind::Pod => format!(
            "kubectl get pod/{name} -n {ns} -o yaml | kubectl set resources --local -f - {resources} -o yaml \
             | kubectl replace --force -f -"
        ),
        // A Job's template is immutable: write the changed manifest for a new Job.
        kind => format!(
            "kubectl get {}/{name} -n {ns} -o yaml | kubectl set resources --local -f - {resources} -o yaml \
             > {}",
            kind.as_str(),
            shell_word(&format!("{}-{n_mib}Mi.yaml", owner.name))
        ),
    }
}

/// What the command does for this owner, and whether the owner is a guess.
fn owner_note(owner: &Owner, namespace: &str, pod: &str) -> String {
    let what = match owner.kind {
        OwnerKind::Pod => {
            "The pod has no controller: its resources cannot change in place, so the command replaces it \
                  (delete and create) with the new limit; better, move it under a Deployment."
                .to_owned()
        }
        OwnerKind::Job => format!(
            "A Job's pod template cannot change: the command writes the Job with the new limit to a file; give it a \
             new name, remove `spec.selector` and the `controller-uid` labels, and `kubectl create -f` it (or change \
             whatever created Job `{}`).",
            owner.name
        ),
        OwnerKind::CronJob => {
            "The CronJob's next Jobs get the new limit; a Job already running keeps the old one.".to_owned()
        }
        _ => format!("The {} rolls its pods out with the new limit.", owner.kind.as_str()),
    };
    if owner.guessed {
        format!(
            "{what} The owner, {} `{}`, is guessed from the pod's name (its labels were not available): check it with \
             `kubectl get pod {} -n {} -o jsonpath='{{.metadata.ownerReferences}}'`.",
            owner.kind.as_str(),
            owner.name,
            shell_word(pod),
            shell_word(namespace)
        )
    } else {
        what
    }
}

/// `raise_limit`: the container's new limit (guide, "Handling OOMKilled for
/// User pods", Cause 2 and Cause 3: increase the memory limit).
pub fn raise_limit(facts: &Facts, cause: Cause) -> Option<Advice> {
    let (Some(namespace), Some(pod), Some(container), Some(owner)) =
        (facts.namespace, facts.pod, facts.container, facts.owner.as_ref())
    else {
        return unnamed_raise_limit(facts);
    };
    let Some(n) = facts.recommended_mib() else {
        let text = format!(
            "Raise the memory limit of container `{container}` (the limit at the kill is not known, so no value is \
             proposed: VPA's rule is the larger of the limit + 100 MiB and the limit × 1.2)."
        );
        return Some(Advice::new(AdviceAction::RaiseLimit, text, None));
    };
    if let Some(manifest) = static_pod_manifest(owner, pod, facts.node()) {
        let text = format!(
            "Raise the memory limit and request of container `{container}` to {n} MiB, what VPA sets after an OOM \
             kill. `{pod}` is a static pod (its name is `{manifest}-` and the node's name): kubectl cannot change \
             it. Edit `resources` of container `{container}` in its manifest (`metadata.name: {manifest}`) in the \
             kubelet's staticPodPath (/etc/kubernetes/manifests on kubeadm nodes); the kubelet restarts it."
        );
        return Some(Advice::new(AdviceAction::RaiseLimit, text, None));
    }
    let used = facts.limit_bytes.max(facts.usage_bytes).map(size).unwrap_or_default();
    let whose = match cause {
        Cause::PodLimit => format!(
            "The pod's limit ({used}) is the sum of its containers' limits (or its pod-level `spec.resources`, then \
             raise that instead): container `{container}` at {n} MiB brings the pod to at least that."
        ),
        _ if facts.ahead => format!("Container `{container}` heads for its limit of {used}."),
        _ => format!("Container `{container}` was killed at {used}."),
    };
    let text = format!(
        "Raise the memory limit and request of container `{container}` to {n} MiB, what VPA sets after an OOM kill \
         (the larger of +100 MiB and +20 %). {whose} {}",
        owner_note(owner, namespace, pod)
    );
    Some(Advice::new(AdviceAction::RaiseLimit, text, Some(set_resources_command(owner, namespace, container, n))))
}

/// The manifest name of a static pod: kubelet names the pods of its
/// manifests `<metadata.name>-<node name>` (pkg/kubelet/config/common.go,
/// `generatePodName`), and they have no controller (kubelet's mirror pods).
fn static_pod_manifest<'a>(owner: &Owner, pod: &'a str, node: Option<&str>) -> Option<&'a str> {
    let node = node.filter(|n| !n.is_empty())?.to_ascii_lowercase();
    let manifest = pod.strip_suffix(node.as_str())?.strip_suffix('-')?;
    // A guessed owner (no labels) yields to the name: `etcd-cp-1` is no StatefulSet's pod on node `cp-1`.
    ((owner.kind == OwnerKind::Pod || owner.guessed) && !manifest.is_empty()).then_some(manifest)
}

/// `raise_limit` for a container the runtime did not name (CRI unreachable):
/// the new limit, and how to find the container on the node.
fn unnamed_raise_limit(facts: &Facts) -> Option<Advice> {
    let n = facts.recommended_mib()?;
    let identity = &facts.event.workload.as_ref()?.identity;
    let id = identity.container_id.as_deref()?;
    let text = format!(
        "Raise the memory limit and request of the container to {n} MiB, what VPA sets after an OOM kill. The \
         container runtime did not name it: `crictl inspect {}` on the node gives its pod and name{}.",
        shell_word(id),
        identity.pod_uid.as_deref().map(|uid| format!(" (pod uid {uid})")).unwrap_or_default()
    );
    Some(Advice::new(AdviceAction::RaiseLimit, text, None))
}

/// `set_limit`: a container without a limit (`no_limit`) in a node-level OOM
/// gets one, from what its killed process held (guide, "Avoiding OOMKill in
/// the future": requests and limits for all application pods).
pub fn set_missing_limit(facts: &Facts) -> Option<Advice> {
    if !facts.has(FindingKind::NoLimit) || facts.system_pod() {
        return None;
    }
    let (namespace, pod, container) = (facts.namespace?, facts.pod?, facts.container?);
    let owner = facts.owner.as_ref()?;
    let rss_bytes = facts.event.victim.rss_kb()? * 1024;
    let n = super::recommended_limit_mib(None, Some(rss_bytes))?;
    let text = format!(
        "Container `{container}` had no memory limit (BestEffort): the node's memory was its only bound. Its killed \
         process held {}; give the container a limit and an equal request of {n} MiB (VPA's rule on that), then \
         adjust to what it really needs. {}",
        size(rss_bytes),
        owner_note(owner, namespace, pod)
    );
    Some(Advice::new(AdviceAction::SetLimit, text, Some(set_resources_command(owner, namespace, container, n))))
}

/// What the kills' pattern says: too small to start, a leak, or a spike
/// (guide, "Possible Causes of OOM Kills": memory leaks, high workload).
pub fn kill_pattern(facts: &Facts) -> Option<Advice> {
    let limit = facts.limit_bytes.map(size).unwrap_or_else(|| "its limit".to_owned());
    let early = facts.findings.iter().find_map(|f| match f {
        Finding::Early { running_seconds } => Some(*running_seconds),
        _ => None,
    });
    if let Some(seconds) = early {
        let text = format!(
            "It was killed {} after it started: it needs more than {limit} just to start (loading, caches, JIT), so \
             it will keep failing the same way. Raising the limit is the fix; a leak or a spike would take longer.",
            duration(seconds)
        );
        return Some(Advice::new(AdviceAction::LimitBelowStartup, text, None));
    }
    let repeat = facts.findings.iter().find_map(|f| match f {
        Finding::Repeated { repeat, .. } => Some(repeat),
        _ => None,
    });
    let running = running_seconds(facts.event).map(|s| format!(" after running {}", duration(s))).unwrap_or_default();
    let Some(repeat) = repeat else {
        let restarts = match facts.event.workload.as_ref().and_then(|w| w.restart_count) {
            Some(n) if n > 0 => format!(" (the runtime counts {n} earlier restarts, for reasons it does not keep)"),
            _ => String::new(),
        };
        let text = format!(
            "No earlier kill of it is known{restarts}; this one came{running} when memory rose past {limit}: a \
             spike under load rather than steady growth. Check what the app served at that time; raise the limit \
             to cover the peak, or spread the load (more replicas, smaller batches). If kills repeat at a steady \
             pace, it is a leak."
        );
        return Some(Advice::new(AdviceAction::InvestigateSpike, text, None));
    };
    let text = format!(
        "Killed {} times in {}, every {} on average{running}: memory grows after start until it reaches {limit} — a \
         leak, or a working set larger than the limit. A higher limit only buys time: take it to the app's vendor or \
         team (guide, Cause 3) with the kill times, and check the runtime: {}",
        repeat.kills,
        duration(repeat.over_seconds),
        duration(repeat.mean_interval_seconds),
        runtime_note(facts)
    );
    Some(Advice::new(AdviceAction::InvestigateLeak, text, None))
}

/// The guide's "Memory saturation occurs in pods after cluster upgrade to
/// Kubernetes 1.25": runtimes that do not read cgroup v2 limits.
fn runtime_note(facts: &Facts) -> String {
    let image = facts.event.workload.as_ref().and_then(|w| w.image.as_deref()).unwrap_or("").to_ascii_lowercase();
    let java = ["java", "jdk", "jre", "temurin", "corretto", "zulu", "semeru"].iter().any(|k| image.contains(k));
    let dotnet = ["dotnet", "aspnet", ".net"].iter().any(|k| image.contains(k));
    match (java, dotnet) {
        (true, _) => "a JVM older than 8u372 / 11.0.16 / 15 does not see cgroup v2 limits and sizes its heap from the \
                      node's memory; use a newer one, or set -XX:MaxRAMPercentage."
            .to_owned(),
        (_, true) => ".NET before 5.0 does not see cgroup v2 limits; use .NET 5.0 or later.".to_owned(),
        _ => "Java before 8u372 / 11.0.16 / 15, .NET before 5.0 and old Node.js size their heaps from the node's \
              memory, not the cgroup v2 limit."
            .to_owned(),
    }
}

/// What the memory findings and a lost worker mean for the fix.
pub fn finding_notes(facts: &Facts) -> Vec<Advice> {
    facts.findings.iter().filter_map(|finding| finding_note(facts, finding)).collect()
}

fn finding_note(facts: &Facts, finding: &Finding) -> Option<Advice> {
    Some(match finding {
        Finding::Tmpfs { shmem_bytes, share_percent } => Advice::new(
            AdviceAction::LimitTmpfs,
            format!(
                "{} ({share_percent} %) of the charged memory was tmpfs (an emptyDir with `medium: Memory`, \
                 /dev/shm): killing a process does not free it, so the kills go on until the files are removed. Set \
                 `sizeLimit` on the emptyDir (writes then fail at that size instead), count it in the limit, or move \
                 the data to a disk-backed volume.",
                size(*shmem_bytes)
            ),
            None,
        ),
        Finding::PageCache { file_bytes, share_percent } => Advice::new(
            AdviceAction::PageCache,
            format!(
                "{} ({share_percent} %) was page cache: file pages the kernel could not reclaim in time (dirty, or \
                 mapped). Look for heavy writes (logs, temp files in the container's writable layer or an emptyDir \
                 count against the limit); a limit with room above the app's own memory absorbs it.",
                size(*file_bytes)
            ),
            None,
        ),
        Finding::KernelMemory { kernel_bytes, share_percent } => Advice::new(
            AdviceAction::KernelMemory,
            format!(
                "{} ({share_percent} %) was kernel memory (slab, socket buffers, page tables): many connections or \
                 open files count against the limit too; tuning the app's heap does not reduce it.",
                size(*kernel_bytes)
            ),
            None,
        ),
        Finding::NotMainProcess => Advice::new(
            AdviceAction::LostWorker,
            format!(
                "The killed process, {}, was not the container's main process: the container runs on without it and \
                 Kubernetes reports no OOMKilled. Check that the app restarts its worker; or let the whole container \
                 restart on a kill: memory.oom.group, which kubelet 1.28+ on cgroup v2 sets unless \
                 `singleProcessOOMKill: true` is in its configuration.",
                super::words::process(facts.event)
            ),
            None,
        ),
        _ => return None,
    })
}
