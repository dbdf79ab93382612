//! cgroup path -> workload: the container, runtime monitor, pod, Nomad task
//! or systemd unit a cgroup path belongs to, from the path alone (no I/O,
//! never an error).
//!
//! Each component is classified on its own (with its parent, see
//! [`component`]); the path is then named by its **innermost** container,
//! monitor or task, so nested runtimes (docker-in-docker, kind nodes, a
//! kubelet or podman inside a container) name the container the victim is
//! really in, and whatever follows it (CRI-O's `crio-<id>.scope/container`,
//! docker-in-docker's `init`, a systemd inside the container) is that
//! container's own sub-cgroup. Its pod is the pod cgroup right above it. A
//! pod cgroup below every container is a pod-level cgroup. Without any of
//! these, the innermost systemd unit names the path (any unit type that owns
//! a cgroup, also inside a user manager), unless the path is kubelet's
//! (QoS levels): then, like any unrecognised layout, it is
//! [`Workload::Unknown`] and the event keeps the raw path.
//!
//! A runtime's monitor (conmon, LXC's monitor, nspawn's supervisor) is never
//! the container it watches: it is a [`Workload::ContainerMonitor`].

mod component;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use self::component::{Step, classify, is_unit_name, qos_level};
use oomtrace_event::{Qos, Runtime};

/// What a cgroup path belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// A container (runtime, id), inside a Kubernetes pod when `pod_uid` is
    /// `Some`. `qos` is `None` outside pods and when the path doesn't show the
    /// QoS level; `unit` is the systemd service the container runs in
    /// (podman `--cgroups=split`, as quadlet uses). The id is 64-hex for OCI
    /// runtimes, the container's name for LXC and nspawn.
    Container {
        runtime: Runtime,
        container_id: String,
        pod_uid: Option<String>,
        qos: Option<Qos>,
        unit: Option<String>,
    },
    /// The runtime's monitor process of a container (CRI-O/podman conmon,
    /// LXC monitor, nspawn supervisor), not the container itself: the fields
    /// describe the monitored container and where the monitor lives.
    /// `container_id` is `None` where the path doesn't name it.
    ContainerMonitor {
        runtime: Runtime,
        container_id: Option<String>,
        pod_uid: Option<String>,
        qos: Option<Qos>,
        unit: Option<String>,
    },
    /// A pod-level cgroup with no container (e.g. the pod's own limit).
    Pod { pod_uid: String, qos: Qos },
    /// A HashiCorp Nomad task (allocation uuid, task name).
    NomadTask { alloc_id: String, task: String },
    /// A systemd unit outside containers, named by the innermost unit, e.g.
    /// `system.slice/ssh.service` -> `ssh.service`.
    SystemService { unit: String },
    /// The root cgroup (`/` or empty).
    HostRoot,
    /// Anything else; the caller keeps the raw path.
    Unknown,
}

impl Workload {
    /// The container id, for containers (not for monitors: the victim is
    /// not in the container they watch).
    pub fn container_id(&self) -> Option<&str> {
        match self {
            Self::Container { container_id, .. } => Some(container_id),
            _ => None,
        }
    }

    /// The pod uid (dashed form), for pods and containers or monitors in pods.
    pub fn pod_uid(&self) -> Option<&str> {
        match self {
            Self::Container { pod_uid, .. } | Self::ContainerMonitor { pod_uid, .. } => pod_uid.as_deref(),
            Self::Pod { pod_uid, .. } => Some(pod_uid),
            _ => None,
        }
    }

    /// The pod's QoS class, when the path shows it.
    pub fn qos(&self) -> Option<Qos> {
        match self {
            Self::Container { qos, .. } | Self::ContainerMonitor { qos, .. } => *qos,
            Self::Pod { qos, .. } => Some(*qos),
            _ => None,
        }
    }

    /// The container runtime (of a container or a monitor); `Runtime::Unknown`
    /// for anything else.
    pub fn runtime(&self) -> Runtime {
        match self {
            Self::Container { runtime, .. } | Self::ContainerMonitor { runtime, .. } => *runtime,
            _ => Runtime::Unknown,
        }
    }
}

/// Classifies a cgroup path (v1 or v2, relative to the hierarchy root).
pub fn parse(path: &str) -> Workload {
    let components = split_components(path);
    if components.is_empty() {
        return Workload::HostRoot;
    }
    let steps: Vec<Step> = components
        .iter()
        .enumerate()
        .map(|(i, component)| classify(component, i.checked_sub(1).map(|p| components[p].as_ref())))
        .collect();
    let innermost = steps.iter().rposition(|step| !matches!(step, Step::Pod { .. } | Step::Other));
    let innermost_pod = steps.iter().rposition(|step| matches!(step, Step::Pod { .. }));
    match (innermost, innermost_pod) {
        (Some(at), pod) if pod.is_none_or(|pod| pod < at) => named_at(&components, &steps, at),
        (_, Some(pod)) => pod_level(&steps, pod),
        _ => unit_or_unknown(&components),
    }
}

/// The workload named by the container, monitor or task at `at`, with the
/// pod right above it.
fn named_at(components: &[Cow<'_, str>], steps: &[Step], at: usize) -> Workload {
    let parent = at.checked_sub(1);
    let (pod_uid, qos) = match parent.map(|p| &steps[p]) {
        Some(Step::Pod { uid, qos }) => (Some(uid.clone()), *qos),
        _ => (None, None),
    };
    let unit_above = || parent.map(|p| components[p].as_ref()).filter(|c| is_unit_name(c)).map(str::to_owned);
    match &steps[at] {
        Step::Container { runtime, id, in_unit } => Workload::Container {
            runtime: *runtime,
            container_id: id.clone(),
            pod_uid,
            qos,
            unit: in_unit.then(unit_above).flatten(),
        },
        Step::Monitor { runtime, id, in_unit } => Workload::ContainerMonitor {
            runtime: *runtime,
            container_id: id.clone(),
            pod_uid,
            qos,
            unit: in_unit.then(unit_above).flatten(),
        },
        Step::NomadTask { alloc_id, task } => Workload::NomadTask { alloc_id: alloc_id.clone(), task: task.clone() },
        Step::Pod { .. } | Step::Other => Workload::Unknown,
    }
}

/// A pod cgroup with no container below it: the pod itself when it is the
/// last component and its QoS is known; a cgroup below it that is not a
/// container (a UUID-named scope, a runtime we don't know) is unknown.
fn pod_level(steps: &[Step], at: usize) -> Workload {
    match &steps[at] {
        Step::Pod { uid, qos: Some(qos) } if at + 1 == steps.len() => Workload::Pod { pod_uid: uid.clone(), qos: *qos },
        _ => Workload::Unknown,
    }
}

/// The innermost systemd unit, outside kubelet's hierarchy.
fn unit_or_unknown(components: &[Cow<'_, str>]) -> Workload {
    let kubelet = components.iter().any(|c| {
        let name = c.strip_suffix(".slice").unwrap_or(c);
        name.contains("kubepods") || qos_level(name).is_some()
    });
    match components.iter().rev().find(|c| is_unit_name(c)) {
        Some(unit) if !kubelet => Workload::SystemService { unit: unit.to_string() },
        _ => Workload::Unknown,
    }
}

/// The cgroup path to classify from the contents of `/proc/<pid>/cgroup`: the
/// memory controller's path on v1 (preferred on hybrid systems), else the v2
/// (`0::`) path. `None` when neither is present.
pub fn parse_proc_cgroup(contents: &str) -> Option<String> {
    let mut unified = None;
    for line in contents.lines() {
        // hierarchy-id:controller-list:path; the path itself may hold ':'.
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some(path.to_string());
        }
        if id == "0" && controllers.is_empty() && unified.is_none() {
            unified = Some(path.to_string());
        }
    }
    unified
}

/// Path components without empty, `.` and `..` (cgroup-namespace) parts; a
/// `<slice>:<prefix>:<name>` component (an unconverted systemd cgroupsPath)
/// becomes `<slice>`, `<prefix>-<name>`.
fn split_components(path: &str) -> Vec<Cow<'_, str>> {
    let mut components = Vec::new();
    for part in path.trim().split('/').filter(|p| !p.is_empty() && *p != "." && *p != "..") {
        let fields: Vec<&str> = part.split(':').collect();
        match fields.as_slice() {
            [slice, prefix, name] if !slice.is_empty() && !prefix.is_empty() && !name.is_empty() => {
                components.push(Cow::Borrowed(*slice));
                components.push(Cow::Owned(format!("{prefix}-{name}")));
            }
            _ => components.push(Cow::Borrowed(part)),
        }
    }
    components
}
