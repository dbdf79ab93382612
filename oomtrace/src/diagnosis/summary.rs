//! The diagnosis in one sentence, for a person at 3 a.m.: who was killed, at
//! which limit, how often and how soon, e.g. "container `api` of pod
//! `shop/api-7d9f8c6b5d-x2x4q` was killed at its 512 MiB limit for the 4th
//! time in 1 h; it had been running 40 s".

use oomtrace_event::{Cause, Finding};

use super::{
    advice::words::{duration, ordinal, process, size},
    cause,
};
use oomtrace_event::{OomEvent, Scope, WorkloadKind};

/// One sentence: who was killed, at which limit, how often, how soon.
pub fn summary(event: &OomEvent, cause: Cause, findings: &[Finding]) -> String {
    let who = subject(event);
    let limit = event.oom_cgroup.as_ref().and_then(|c| c.limit_bytes).map(size);
    let oom_path = event.oom_cgroup.as_ref().and_then(|c| c.cgroup.path.as_deref());
    let mut sentence = match cause {
        Cause::ContainerLimit => {
            // A child process is killed at its container's limit, not its own.
            let whose = if event.workload.as_ref().and_then(|w| w.main_process) == Some(false) {
                "the container's"
            } else {
                "its"
            };
            format!("{who} was killed at {whose} {} limit", limit.unwrap_or_else(|| "memory".to_owned()))
        }
        Cause::PodLimit => format!(
            "{who} was killed at the pod's {} limit{}",
            limit.unwrap_or_else(|| "memory".to_owned()),
            largest_task(event)
        ),
        Cause::NodeAllocatable => format!(
            "{who} was killed when the node's pods together reached {} (`{}`, node allocatable){}",
            limit.unwrap_or_else(|| "their limit".to_owned()),
            oom_path.unwrap_or("kubepods"),
            largest_task(event)
        ),
        Cause::NodeMemory => format!("the node ran out of memory and the kernel killed {who}{}", largest_task(event)),
        Cause::Constrained => {
            let policy = match event.scope {
                Some(Scope::Cpuset) => "cpuset",
                _ => "NUMA memory policy",
            };
            format!("{who} was killed when the memory nodes of its {policy} ran out")
        }
        Cause::CgroupLimit => format!(
            "{who} was killed at the {} limit of cgroup `{}`",
            limit.unwrap_or_else(|| "memory".to_owned()),
            oom_path.unwrap_or("?")
        ),
        Cause::Unknown => {
            let missing = cause::cause(event).1;
            if missing.is_empty() {
                format!("{who} was killed; the cause is unknown")
            } else {
                format!(
                    "{who} was killed; the cause is unknown (missing: {})",
                    missing.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
                )
            }
        }
    };
    for finding in findings {
        match finding {
            Finding::Repeated { repeat, .. } => {
                sentence += &format!(" for the {} time in {}", ordinal(repeat.kills), duration(repeat.over_seconds))
            }
            Finding::Early { running_seconds } => {
                sentence += &format!("; it had been running {}", duration(*running_seconds))
            }
            Finding::NoLimit => sentence += "; its container had no memory limit",
            Finding::NotMainProcess => sentence += "; the container runs on without it",
            Finding::Tmpfs { share_percent, .. } => {
                sentence += &format!("; {share_percent} % of the memory was tmpfs, which the kill does not free")
            }
            _ => {}
        }
    }
    sentence
}

/// Who was killed: the container and pod, the process within a container
/// when it was not the main one, the systemd unit, or the process.
fn subject(event: &OomEvent) -> String {
    let Some(workload) = event.workload.as_ref() else { return process(event) };
    let id = &workload.identity;
    let pod = id.pod.as_deref().map(|pod| match id.namespace.as_deref() {
        Some(namespace) => format!("pod `{namespace}/{pod}`"),
        None => format!("pod `{pod}`"),
    });
    let in_pod = match (id.container.as_deref(), pod) {
        (_, Some(pod)) if workload.kind == WorkloadKind::ContainerMonitor => Some(format!("the monitor of {pod}")),
        (Some(container), Some(pod)) => Some(format!("container `{container}` of {pod}")),
        (None, Some(pod)) => Some(pod),
        (_, None) => None,
    };
    match (in_pod, workload.unit.as_deref()) {
        (Some(in_pod), _) if workload.main_process == Some(false) => format!("{} in {in_pod}", process(event)),
        (Some(in_pod), _) => in_pod,
        (None, Some(unit)) => format!("{} of `{unit}`", process(event)),
        (None, None) => match &id.container_id {
            Some(container_id) if workload.kind == WorkloadKind::Container => {
                format!("{} in container {}", process(event), container_id.chars().take(12).collect::<String>())
            }
            _ => process(event),
        },
    }
}

/// `; its largest process was `java` (pid 42, 800 MiB)`, from the kernel's
/// report, when it is not the victim.
fn largest_task(event: &OomEvent) -> String {
    let Some(task) = event.kernel_report.as_ref().and_then(|r| r.largest_tasks.first()) else { return String::new() };
    if task.pid == event.victim.pid {
        return format!("; it was the largest process ({})", size(task.rss_kb * 1024));
    }
    format!("; the largest process was `{}` (pid {}, {})", task.comm, task.pid, size(task.rss_kb * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_event::Repeat;
    use oomtrace_event::{Attribution, Cgroup, KernelReport, OomCgroup, ReportTask, Victim, WorkloadInfo};

    const MIB: u64 = 1024 * 1024;

    fn victim(comm: &str, pid: u32) -> Victim {
        Victim { pid, tgid: Some(pid), comm: Some(comm.to_owned()), ..Victim::default() }
    }

    fn pod_event(oom_path: &str, limit_mib: u64) -> OomEvent {
        let mut workload = WorkloadInfo::new(WorkloadKind::Container, Attribution::Full);
        workload.identity.namespace = Some("shop".to_owned());
        workload.identity.pod = Some("api-7d9f8c6b5d-x2x4q".to_owned());
        workload.identity.container = Some("api".to_owned());
        workload.main_process = Some(true);
        OomEvent {
            scope: Some(Scope::Memcg),
            oom_cgroup: Some(OomCgroup {
                cgroup: Cgroup { path: Some(oom_path.to_owned()), ..Cgroup::default() },
                usage_bytes: Some(limit_mib * MIB),
                limit_bytes: Some(limit_mib * MIB),
            }),
            workload: Some(workload),
            ..OomEvent::of_victim(victim("node", 4242))
        }
    }

    #[test]
    fn a_container_at_its_limit_again_and_early() {
        let event = pod_event("/kubepods/burstable/podx/abc", 512);
        let findings = [
            Finding::Repeated {
                repeat: Repeat { kills: 4, over_seconds: 3600, mean_interval_seconds: 1200 },
                restart_count: Some(3),
            },
            Finding::Early { running_seconds: 40 },
            Finding::GroupKill,
        ];
        assert_eq!(
            summary(&event, Cause::ContainerLimit, &findings),
            "container `api` of pod `shop/api-7d9f8c6b5d-x2x4q` was killed at its 512 MiB limit for the 4th time in \
             1 h; it had been running 40 s"
        );
    }

    #[test]
    fn a_child_process_dies_at_its_containers_limit() {
        let mut event = pod_event("/kubepods/burstable/podx/abc", 256);
        if let Some(w) = event.workload.as_mut() {
            w.main_process = Some(false);
        }
        assert_eq!(
            summary(&event, Cause::ContainerLimit, &[Finding::NotMainProcess]),
            "`node` (pid 4242) in container `api` of pod `shop/api-7d9f8c6b5d-x2x4q` was killed at the container's \
             256 MiB limit; the container runs on without it"
        );
        event.oom_cgroup = None;
        assert!(summary(&event, Cause::ContainerLimit, &[]).ends_with("at the container's memory limit"));
    }

    #[test]
    fn a_child_process_and_the_pod_limit_name_the_largest_process() {
        let mut event = pod_event("/kubepods/burstable/podx", 1024);
        if let Some(w) = event.workload.as_mut() {
            w.main_process = Some(false);
        }
        event.kernel_report = Some(KernelReport {
            largest_tasks: vec![ReportTask {
                pid: 42,
                comm: "java".to_owned(),
                rss_kb: 800 * 1024,
                oom_score_adj: None,
            }],
            ..KernelReport::default()
        });
        assert_eq!(
            summary(&event, Cause::PodLimit, &[Finding::NotMainProcess]),
            "`node` (pid 4242) in container `api` of pod `shop/api-7d9f8c6b5d-x2x4q` was killed at the pod's 1 GiB \
             limit; the largest process was `java` (pid 42, 800 MiB); the container runs on without it"
        );
    }

    #[test]
    fn node_level_kills() {
        let mut event = pod_event("/kubepods.slice", 14 * 1024);
        assert_eq!(
            summary(&event, Cause::NodeAllocatable, &[Finding::NoLimit]),
            "container `api` of pod `shop/api-7d9f8c6b5d-x2x4q` was killed when the node's pods together reached 14 \
             GiB (`/kubepods.slice`, node allocatable); its container had no memory limit"
        );
        event.scope = Some(Scope::Global);
        event.oom_cgroup = None;
        event.workload = Some(WorkloadInfo::new(WorkloadKind::SystemService, Attribution::Host));
        if let Some(w) = event.workload.as_mut() {
            w.unit = Some("kubelet.service".to_owned());
        }
        event.victim = victim("kubelet", 812);
        assert_eq!(
            summary(&event, Cause::NodeMemory, &[]),
            "the node ran out of memory and the kernel killed `kubelet` (pid 812) of `kubelet.service`"
        );
        event.scope = Some(Scope::Cpuset);
        assert_eq!(
            summary(&event, Cause::Constrained, &[]),
            "`kubelet` (pid 812) of `kubelet.service` was killed when the memory nodes of its cpuset ran out"
        );
    }

    #[test]
    fn host_cgroups_and_unknown_causes() {
        let mut event = pod_event("/system.slice/containerd.service", 512);
        event.workload = None;
        event.victim = victim("containerd", 700);
        assert_eq!(
            summary(&event, Cause::CgroupLimit, &[]),
            "`containerd` (pid 700) was killed at the 512 MiB limit of cgroup `/system.slice/containerd.service`"
        );
        event.scope = None;
        assert_eq!(
            summary(&event, Cause::Unknown, &[]),
            "`containerd` (pid 700) was killed; the cause is unknown (missing: scope)"
        );
        event.victim.comm = None;
        assert_eq!(summary(&event, Cause::Unknown, &[]), "pid 700 was killed; the cause is unknown (missing: scope)");
    }
}
