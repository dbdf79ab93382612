//! The advice for each cause and finding, with its exact commands.

use super::*;
use oomtrace_event::{Attribution, Cgroup, OomCgroup, Qos, Scope, Victim, WorkloadInfo, WorkloadKind};
use oomtrace_event::{OwnerKind, Repeat};

#[test]
fn vpa_bumps_by_100_mib_or_20_percent() {
    // 64 MiB limit: 64 + 100 > 64 × 1.2.
    assert_eq!(recommended_limit_mib(Some(64 * MIB), Some(64 * MIB)), Some(164));
    // 1 GiB: 1024 × 1.2 = 1228.8 -> 1229 > 1124.
    assert_eq!(recommended_limit_mib(Some(1024 * MIB), None), Some(1229));
    assert_eq!(recommended_limit_mib(None, Some(10 * MIB)), Some(110));
    assert_eq!(recommended_limit_mib(None, None), None);
}

const POD_PATH: &str = "/kubepods/burstable/pod0b8c1a9e-1111-4222-8333-944455556666";

/// A kill of container `container` of pod `namespace/pod` at its `limit_mib` limit.
fn container_kill(namespace: &str, pod: &str, container: &str, owner: Option<Owner>, limit_mib: u64) -> OomEvent {
    let mut workload = WorkloadInfo::new(WorkloadKind::Container, Attribution::Full);
    workload.identity.namespace = Some(namespace.to_owned());
    workload.identity.pod = Some(pod.to_owned());
    workload.identity.container = Some(container.to_owned());
    workload.identity.qos = Some(Qos::Burstable);
    workload.owner = owner;
    OomEvent {
        scope: Some(Scope::Memcg),
        node: Some("aks-nodepool1-12345678-vmss000000".to_owned()),
        oom_cgroup: Some(OomCgroup {
            cgroup: Cgroup { path: Some(format!("{POD_PATH}/{}", "a".repeat(64))), ..Cgroup::default() },
            usage_bytes: Some(limit_mib * MIB - 4096),
            limit_bytes: Some(limit_mib * MIB),
        }),
        workload: Some(workload),
        ..OomEvent::of_victim(Victim { pid: 4242, comm: Some("app".to_owned()), ..Victim::default() })
    }
}

fn actions(advice: &[Advice]) -> Vec<&'static str> {
    advice.iter().map(|a| a.action.as_str()).collect()
}

fn command<'a>(advice: &'a [Advice], action: &str) -> &'a str {
    advice.iter().find(|a| a.action.as_str() == action).and_then(|a| a.command.as_deref()).unwrap_or("")
}

fn deployment(name: &str) -> Option<Owner> {
    Some(Owner { kind: OwnerKind::Deployment, name: name.to_owned(), guessed: false })
}

#[test]
fn a_user_container_at_its_limit_gets_the_vpa_limit_for_its_owner() {
    let event = container_kill("shop", "api-7d9f8c6b5d-x2x4q", "api", deployment("api"), 512);
    let advice = advise(&event, Cause::ContainerLimit, &[]);
    assert_eq!(actions(&advice), ["raise_limit", "investigate_spike"]);
    assert_eq!(
        command(&advice, "raise_limit"),
        "kubectl set resources deployment/api -n shop -c api --limits=memory=615Mi --requests=memory=615Mi"
    );
    assert!(advice[0].text.contains("615 MiB") && !advice[0].text.contains("guessed"), "{}", advice[0].text);
}

#[test]
fn each_owner_kind_has_its_command() {
    let cases = [
        (
            OwnerKind::StatefulSet,
            "db",
            "kubectl set resources statefulset/db -n shop -c app --limits=memory=1229Mi --requests=memory=1229Mi",
        ),
        (
            OwnerKind::DaemonSet,
            "agent",
            "kubectl set resources daemonset/agent -n shop -c app --limits=memory=1229Mi --requests=memory=1229Mi",
        ),
        (
            OwnerKind::CronJob,
            "backup",
            "kubectl set resources cronjob/backup -n shop -c app --limits=memory=1229Mi --requests=memory=1229Mi",
        ),
        (
            OwnerKind::Pod,
            "debug",
            "kubectl get pod/debug -n shop -o yaml | kubectl set resources --local -f - -c app \
             --limits=memory=1229Mi --requests=memory=1229Mi -o yaml | kubectl replace --force -f -",
        ),
        (
            OwnerKind::Job,
            "migrate",
            "kubectl get job/migrate -n shop -o yaml | kubectl set resources --local -f - -c app \
             --limits=memory=1229Mi --requests=memory=1229Mi -o yaml > migrate-1229Mi.yaml",
        ),
    ];
    for (kind, name, expected) in cases {
        let owner = Owner { kind, name: name.to_owned(), guessed: false };
        let event = container_kill("shop", "p", "app", Some(owner), 1024);
        assert_eq!(command(&advise(&event, Cause::ContainerLimit, &[]), "raise_limit"), expected, "{kind:?}");
    }
}

#[test]
fn a_guessed_owner_is_said_to_be_guessed_and_how_to_check() {
    // No owner on the workload: derived from the pod's name.
    let event = container_kill("shop", "api-7d9f8c6b5d-x2x4q", "api", None, 512);
    let advice = advise(&event, Cause::PodLimit, &[]);
    assert!(command(&advice, "raise_limit").starts_with("kubectl set resources deployment/api -n shop -c api "));
    let text = &advice[0].text;
    assert!(text.contains("guessed from the pod's name"), "{text}");
    assert!(text.contains("kubectl get pod api-7d9f8c6b5d-x2x4q -n shop -o jsonpath='{.metadata.ownerReferences}'"));
    assert!(text.contains("sum of its containers' limits"), "{text}");
}

#[test]
fn the_kill_pattern_tells_too_small_a_leak_or_a_spike() {
    let event = container_kill("shop", "api-7d9f8c6b5d-x2x4q", "api", deployment("api"), 512);
    let mut restarted = event.clone();
    if let Some(w) = restarted.workload.as_mut() {
        w.restart_count = Some(2);
    }
    let spike = advise(&restarted, Cause::ContainerLimit, &[]);
    assert_eq!(actions(&spike), ["raise_limit", "investigate_spike"]);
    assert!(spike[1].text.starts_with("No earlier kill of it is known (the runtime counts 2 earlier restarts"));
    let early = advise(&event, Cause::ContainerLimit, &[Finding::Early { running_seconds: 12 }]);
    assert_eq!(actions(&early), ["raise_limit", "limit_below_startup"]);
    assert!(early[1].text.contains("12 s after it started"), "{}", early[1].text);
    let repeated = Finding::Repeated {
        repeat: Repeat { kills: 4, over_seconds: 3 * 3600, mean_interval_seconds: 3600 },
        restart_count: Some(3),
    };
    let mut java = event.clone();
    if let Some(w) = java.workload.as_mut() {
        w.image = Some("mcr.microsoft.com/openjdk/jdk:11-ubuntu".to_owned());
    }
    let leak = advise(&java, Cause::ContainerLimit, std::slice::from_ref(&repeated));
    assert_eq!(actions(&leak), ["raise_limit", "investigate_leak"]);
    assert!(leak[1].text.contains("Killed 4 times in 3 h, every 1 h on average"), "{}", leak[1].text);
    assert!(leak[1].text.contains("8u372 / 11.0.16 / 15"), "{}", leak[1].text);
}

#[test]
fn kube_system_pods_follow_the_guides_system_section() {
    let metrics = container_kill(
        "kube-system",
        "metrics-server-5dfc656944-lqxqz",
        "metrics-server",
        deployment("metrics-server"),
        200,
    );
    let advice = advise(&metrics, Cause::ContainerLimit, &[]);
    assert_eq!(actions(&advice), ["metrics_server_vpa"]);
    assert!(command(&advice, "metrics_server_vpa").contains("    baseMemory: 300Mi\n"));
    let coredns = container_kill("kube-system", "coredns-5d78c9869d-q2x7w", "coredns", deployment("coredns"), 500);
    let advice = advise(&coredns, Cause::ContainerLimit, &[]);
    assert_eq!(actions(&advice), ["coredns_autoscaling"]);
    assert_eq!(
        command(&advice, "coredns_autoscaling"),
        "kubectl -n kube-system get configmap coredns-autoscaler -o yaml"
    );
    let ds = Some(Owner { kind: OwnerKind::DaemonSet, name: "kube-proxy".to_owned(), guessed: false });
    let proxy = container_kill("kube-system", "kube-proxy-8kq2m", "kube-proxy", ds, 256);
    let advice = advise(&proxy, Cause::ContainerLimit, &[]);
    assert_eq!(actions(&advice), ["system_node_pool"]);
    assert_eq!(
        command(&advice, "system_node_pool"),
        "az aks nodepool add --resource-group <resource-group> --cluster-name <cluster> --name <systempool> \
         --node-count 3 --node-taints CriticalAddonsOnly=true:NoSchedule --mode System"
    );
}

#[test]
fn a_node_level_kill_lists_the_pods_without_limits_and_limits_the_victim() {
    let mut event = container_kill("shop", "batch-7d9f8c6b5d-x2x4q", "worker", deployment("batch"), 14 * 1024);
    event.victim.anon_rss_kb = Some(900 * 1024);
    event.victim.file_rss_kb = Some(0);
    event.victim.shmem_rss_kb = Some(0);
    let advice = advise(&event, Cause::NodeAllocatable, &[Finding::NoLimit]);
    assert_eq!(
        actions(&advice),
        ["set_limit", "list_pods_without_limits", "match_requests_to_usage", "system_node_pool"]
    );
    assert_eq!(
        command(&advice, "set_limit"),
        "kubectl set resources deployment/batch -n shop -c worker --limits=memory=1080Mi --requests=memory=1080Mi"
    );
    assert_eq!(
        command(&advice, "list_pods_without_limits"),
        "kubectl get pods -A --field-selector spec.nodeName=aks-nodepool1-12345678-vmss000000 -o \
         custom-columns=NAMESPACE:.metadata.namespace,POD:.metadata.name,QOS:.status.qosClass,\
         MEMORY_REQUEST:.spec.containers[*].resources.requests.memory,\
         MEMORY_LIMIT:.spec.containers[*].resources.limits.memory"
    );
    assert_eq!(command(&advice, "match_requests_to_usage"), "kubectl describe node aks-nodepool1-12345678-vmss000000");
    assert!(advice[1].text.starts_with("The node's pods together reached 14 GiB"), "{}", advice[1].text);
}

#[test]
fn a_host_process_in_a_node_oom_and_a_systemd_unit_at_its_limit() {
    let mut event = container_kill("", "", "", None, 512);
    let mut workload = WorkloadInfo::new(WorkloadKind::SystemService, Attribution::Host);
    workload.unit = Some("kubelet.service".to_owned());
    event.workload = Some(workload);
    event.victim.comm = Some("kubelet".to_owned());
    event.scope = Some(Scope::Global);
    let node = advise(&event, Cause::NodeMemory, &[]);
    assert_eq!(
        actions(&node),
        ["reserve_system_memory", "list_pods_without_limits", "match_requests_to_usage", "system_node_pool"]
    );
    assert!(node[0].text.contains("`kubelet` (pid 4242) of `kubelet.service`"), "{}", node[0].text);
    event.scope = Some(Scope::Memcg);
    if let Some(c) = event.oom_cgroup.as_mut() {
        c.cgroup.path = Some("/system.slice/kubelet.service".to_owned());
    }
    let unit = advise(&event, Cause::CgroupLimit, &[]);
    assert_eq!(actions(&unit), ["systemd_memory_limit"]);
    assert_eq!(
        command(&unit, "systemd_memory_limit"),
        "systemctl show -p MemoryMax -p MemoryHigh -p MemoryCurrent kubelet.service && systemctl set-property \
         kubelet.service MemoryMax=615M"
    );
    if let Some(c) = event.oom_cgroup.as_mut() {
        c.cgroup.path = Some("/oomtrace-test-1".to_owned());
    }
    event.workload = None;
    assert_eq!(actions(&advise(&event, Cause::CgroupLimit, &[])), ["cgroup_memory_limit"]);
}

#[test]
fn findings_add_their_notes_and_unknown_causes_name_what_is_missing() {
    let event = container_kill("shop", "api-7d9f8c6b5d-x2x4q", "api", deployment("api"), 512);
    let findings = [
        Finding::NotMainProcess,
        Finding::Tmpfs { shmem_bytes: 300 * MIB, share_percent: 60 },
        Finding::PageCache { file_bytes: 300 * MIB, share_percent: 60 },
        Finding::KernelMemory { kernel_bytes: 200 * MIB, share_percent: 40 },
    ];
    let advice = advise(&event, Cause::ContainerLimit, &findings);
    assert_eq!(
        actions(&advice),
        ["raise_limit", "investigate_spike", "lost_worker", "limit_tmpfs", "page_cache", "kernel_memory"]
    );
    assert!(advice[2].text.contains("singleProcessOOMKill"), "{}", advice[2].text);
    assert!(advice[3].text.starts_with("300 MiB (60 %) of the charged memory was tmpfs"), "{}", advice[3].text);
    let mut unknown = event;
    unknown.scope = None;
    let advice = advise(&unknown, Cause::Unknown, &[]);
    assert_eq!(actions(&advice), ["find_missing_facts"]);
    assert!(advice[0].text.contains("scope is missing"), "{}", advice[0].text);
}

#[test]
fn an_unnamed_container_still_gets_its_new_limit() {
    let mut event = container_kill("shop", "p", "c", None, 512);
    if let Some(w) = event.workload.as_mut() {
        w.identity = Default::default();
        w.identity.container_id = Some("6ff7483e10cd".to_owned());
    }
    let advice = advise(&event, Cause::ContainerLimit, &[]);
    assert_eq!(actions(&advice), ["raise_limit", "investigate_spike"]);
    assert!(advice[0].text.contains("615 MiB") && advice[0].text.contains("crictl inspect 6ff7483e10cd"));
    assert_eq!(advice[0].command, None);
}

#[test]
fn a_static_pod_is_changed_in_its_manifest_on_the_node() {
    let owner = Some(Owner { kind: OwnerKind::Pod, name: "etcd-cp-1".to_owned(), guessed: false });
    let mut event = container_kill("infra", "etcd-cp-1", "etcd", owner, 512);
    event.node = Some("cp-1".to_owned());
    let advice = advise(&event, Cause::ContainerLimit, &[]);
    assert_eq!(actions(&advice), ["raise_limit", "investigate_spike"]);
    assert_eq!(advice[0].command, None);
    assert!(advice[0].text.contains("static pod") && advice[0].text.contains("`metadata.name: etcd`"));
    assert!(advice[0].text.contains("615 MiB"), "{}", advice[0].text);
    // Without labels the name looks like a StatefulSet's pod; the node's name says otherwise.
    if let Some(w) = event.workload.as_mut() {
        w.owner = None;
    }
    let advice = advise(&event, Cause::ContainerLimit, &[]);
    assert!(advice[0].command.is_none() && advice[0].text.contains("static pod"), "{}", advice[0].text);
}
