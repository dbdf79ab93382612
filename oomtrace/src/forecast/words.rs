//! A warning for a person: one sentence and the advice, in the diagnosis'
//! words (the same sizes, names and commands as a kill's).

use oomtrace_event::{
    Cgroup, Growth, LimitLevel, OomCgroup, OomEvent, Scope, Victim, Warning, WarningState, WorkloadInfo,
};

use super::level;
use crate::diagnosis::advice::{
    advise_ahead,
    words::{duration, size},
};

/// Fills in `warning.summary` and `warning.advice` from its figures and workload.
pub fn describe(warning: &mut Warning) {
    warning.summary = summary(warning);
    warning.advice = match warning.state {
        WarningState::Recovered => Vec::new(),
        _ => advise_ahead(&as_kill(warning), level::cause(warning.limit_level)),
    };
}

/// The kill this warning foresees, as the diagnosis reads one: the limit and
/// the unreclaimable memory as its OOMing memcg's.
fn as_kill(warning: &Warning) -> OomEvent {
    let node = matches!(warning.limit_level, LimitLevel::NodeEviction | LimitLevel::NodeMemory);
    OomEvent {
        scope: Some(if node { Scope::Global } else { Scope::Memcg }),
        oom_cgroup: warning.cgroup.as_ref().map(|path| OomCgroup {
            cgroup: Cgroup { path: Some(path.clone()), ..Cgroup::default() },
            usage_bytes: Some(warning.unreclaimable_bytes),
            limit_bytes: Some(warning.limit_bytes),
        }),
        node: warning.node.clone(),
        workload: warning.workload.clone(),
        ..OomEvent::of_victim(Victim::default())
    }
}

fn summary(warning: &Warning) -> String {
    let who = subject(warning.workload.as_ref(), warning.cgroup.as_deref());
    let limit = match warning.limit_level {
        LimitLevel::NodeEviction => format!("the kubelet's eviction threshold ({} in use)", size(warning.limit_bytes)),
        LimitLevel::NodeMemory => format!("its {} of memory", size(warning.limit_bytes)),
        LimitLevel::Pod => format!("the pod's {} limit", size(warning.limit_bytes)),
        LimitLevel::NodeAllocatable => format!("the node's allocatable {}", size(warning.limit_bytes)),
        _ => format!("its {} limit", size(warning.limit_bytes)),
    };
    let held = format!("{} of it cannot be reclaimed", size(warning.unreclaimable_bytes));
    let growth = growth_words(warning.growth);
    let rate = size_rate(warning.slope_bytes_per_second);
    match warning.state {
        WarningState::Warning => format!(
            "{who} will reach {limit} in ~{}: {growth} grows {rate} ({held})",
            duration(warning.seconds_left.unwrap_or_default().round() as u64)
        ),
        WarningState::Imminent => format!(
            "{who} is hitting {limit} and reclaim cannot keep it under: {held}, {growth} grows {rate}; an OOM kill is imminent"
        ),
        WarningState::Recovered => format!(
            "{who} no longer heads for {limit} (warned {} ago); {} cannot be reclaimed now",
            duration(warning.episode_seconds.round() as u64),
            size(warning.unreclaimable_bytes)
        ),
    }
}

fn growth_words(growth: Option<Growth>) -> &'static str {
    match growth {
        Some(Growth::Anon) | None => "its anonymous memory",
        Some(Growth::Shmem) => "its shmem (tmpfs, emptyDir medium: Memory)",
        Some(Growth::Kernel) => "its kernel memory",
        Some(Growth::Dirty) => "its dirty page cache",
    }
}

/// `8.0 MiB/s`, `120 KiB/s`.
fn size_rate(bytes_per_second: f64) -> String {
    let mib = bytes_per_second / 1048576.0;
    if mib >= 0.1 { format!("{mib:.1} MiB/s") } else { format!("{:.0} KiB/s", bytes_per_second / 1024.0) }
}

/// Who the warning is about: the container and pod, the unit, the cgroup, or the node.
fn subject(workload: Option<&WorkloadInfo>, cgroup: Option<&str>) -> String {
    let Some(cgroup) = cgroup else { return "the node".to_owned() };
    let identity = workload.map(|w| &w.identity);
    let pod = identity.and_then(|i| {
        let pod = i.pod.as_deref()?;
        Some(match i.namespace.as_deref() {
            Some(namespace) => format!("pod `{namespace}/{pod}`"),
            None => format!("pod `{pod}`"),
        })
    });
    match (identity.and_then(|i| i.container.as_deref()), pod, workload.and_then(|w| w.unit.as_deref())) {
        (Some(container), Some(pod), _) => format!("container `{container}` of {pod}"),
        (None, Some(pod), _) => pod,
        (_, None, Some(unit)) => format!("`{unit}`"),
        _ => format!("cgroup `{cgroup}`"),
    }
}
