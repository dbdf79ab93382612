//! The report `oomtrace diagnose` prints: one structure every format renders,
//! and that `-o json` writes as it is. Its field names are stable and
//! documented (docs/diagnose.md); every key is always present (`null` when
//! unknown), so a pipeline can rely on them.

use serde::Serialize;

use super::{
    evictions::NoKillNote,
    group::{KillGroup, LeftOut},
    node_memory::NodeMemory,
};

/// Bumped when a field changes meaning or goes away (new fields keep it).
pub const REPORT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub version: u32,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// This machine's name (`NODE_NAME`, else the hostname).
    pub node: String,
    /// The window's start (RFC 3339); `null`: the whole log (this boot).
    pub since: Option<String>,
    pub kernel_log: KernelLogSummary,
    /// Kills in the window (one per victim).
    pub kills: u64,
    /// The window's kills by workload, most kills first (at most
    /// [`GROUPS_KEPT`](super::group::GROUPS_KEPT)).
    pub groups: Vec<KillGroup>,
    /// The kills of the workloads beyond those, counted.
    pub groups_left_out: LeftOut,
    pub node_memory: NodeMemory,
    /// Only when the window has no kill: where to look instead.
    pub no_kill: Option<NoKillNote>,
}

/// What was read, against what the kernel counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelLogSummary {
    /// `kmsg`, `klogctl`, `journal` or `file`.
    pub source: &'static str,
    /// Kill lines in the whole log (what the kernel's `oom_kill` counts).
    pub kills_in_log: u64,
    /// `oom_kill` of /proc/vmstat when the log is this boot's; `null` for a saved log.
    pub kernel_count: Option<u64>,
    /// The sentence `oomtrace history` ends with: found against counted, and
    /// what was lost (rotated out, rate-limited).
    pub reconciliation: String,
}

#[cfg(test)]
pub mod sample {
    //! Reports the renderers' tests share.

    use super::*;
    use crate::diagnose::{
        evictions,
        group::{GroupFinding, VictimKill},
        node_memory::{Kubepods, Psi, PsiLine},
    };
    use oomtrace_event::{Advice, AdviceAction, Cause, Finding, Repeat, WorkloadKind};

    fn victim(pid: u32, time: &str) -> VictimKill {
        VictimKill {
            time: Some(time.to_owned()),
            pid,
            comm: Some("dd".to_owned()),
            cause: Some(Cause::CgroupLimit),
            oom_cgroup: Some("/test/a".to_owned()),
            usage_bytes: Some(64 << 20),
            limit_bytes: Some(64 << 20),
            rss_kb: Some(65_000),
        }
    }

    fn node_memory() -> NodeMemory {
        let line = |avg10| PsiLine { avg10, avg60: 0.5, avg300: 0.0, total_us: 1 };
        NodeMemory {
            mem_total_bytes: Some(24 << 30),
            mem_available_bytes: Some(12 << 30),
            kubepods: Some(Kubepods {
                cgroup: "/kubepods".to_owned(),
                cgroup_version: 1,
                usage_bytes: Some(512 << 20),
                limit_bytes: None,
            }),
            psi: Some(Psi { some: line(1.25), full: Some(line(0.75)) }),
            kernel_oom_kills: Some(42),
            notes: Vec::new(),
        }
    }

    /// Two workloads: `/test/a` killed 3 times (repeated, advice with a
    /// command), `shop/api-1/api` once.
    pub fn with_kills() -> Report {
        let repeated = Finding::Repeated {
            repeat: Repeat { kills: 3, over_seconds: 90, mean_interval_seconds: 45 },
            restart_count: None,
        };
        let a = KillGroup {
            key: "/test/a".to_owned(),
            kind: WorkloadKind::Unknown,
            namespace: None,
            pod: None,
            container: None,
            unit: None,
            cgroup: Some("/test/a".to_owned()),
            kills: 3,
            first_kill: Some("2026-11-29T10:00:00.123456Z".to_owned()),
            last_kill: Some("2026-11-29T10:01:30.5Z".to_owned()),
            causes: vec![Cause::CgroupLimit],
            victims: vec![
                victim(10, "2026-11-29T10:00:00.123456Z"),
                victim(11, "2026-11-29T10:00:45Z"),
                victim(12, "2026-11-29T10:01:30.5Z"),
            ],
            victims_left_out: 0,
            findings: vec![GroupFinding { finding: repeated, in_kills: 2 }],
            summary: "dd (pid 12) was killed: cgroup_limit".to_owned(),
            advice: vec![Advice {
                action: AdviceAction::RaiseLimit,
                text: "Raise the limit to what VPA would set after this kill".to_owned(),
                command: Some("kubectl set resources deployment/api -n shop -c api --limits=memory=164Mi".to_owned()),
            }],
        };
        let api = KillGroup {
            key: "shop/api-1/api".to_owned(),
            kind: WorkloadKind::Container,
            namespace: Some("shop".to_owned()),
            pod: Some("api-1".to_owned()),
            container: Some("api".to_owned()),
            cgroup: Some("/kubepods/burstable/podx/abc".to_owned()),
            kills: 1,
            first_kill: Some("2026-11-29T10:00:10Z".to_owned()),
            last_kill: Some("2026-11-29T10:00:10Z".to_owned()),
            causes: vec![Cause::ContainerLimit],
            victims: vec![victim(20, "2026-11-29T10:00:10Z")],
            findings: vec![GroupFinding {
                finding: Finding::Tmpfs { shmem_bytes: 40 << 20, share_percent: 62 },
                in_kills: 1,
            }],
            summary: "api (pid 20) was killed: container_limit".to_owned(),
            advice: Vec::new(),
            ..a.clone()
        };
        Report {
            version: REPORT_VERSION,
            generated_at: "2026-11-29T10:05:00Z".to_owned(),
            node: "node-1".to_owned(),
            since: None,
            kernel_log: KernelLogSummary {
                source: "kmsg",
                kills_in_log: 4,
                kernel_count: Some(42),
                reconciliation: "kernel counted 42 OOM kills since boot; 4 found in the log".to_owned(),
            },
            kills: 4,
            groups: vec![a, api],
            groups_left_out: LeftOut { workloads_exact: true, ..LeftOut::default() },
            node_memory: node_memory(),
            no_kill: None,
        }
    }

    /// A window without kills, a node without kubepods and PSI.
    pub fn without_kills() -> Report {
        let mut report = with_kills();
        report.since = Some("2026-11-29T11:00:00Z".to_owned());
        report.kills = 0;
        report.groups.clear();
        report.node_memory.kubepods = None;
        report.node_memory.psi = None;
        report.node_memory.notes =
            vec![crate::diagnose::node_memory::NO_KUBEPODS.to_owned(), crate::diagnose::node_memory::NO_PSI.to_owned()];
        let mut note = evictions::note(None, false);
        note.kubelet_log.status = "found";
        note.kubelet_log.evicted_pods = vec!["shop/web-1".to_owned()];
        note.kubelet_log.lines =
            vec!["kubelet: \"Eviction manager: pod is evicted successfully\" pod=\"shop/web-1\"".to_owned()];
        report.no_kill = Some(note);
        report
    }
}
