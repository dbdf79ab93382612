//! The victim's workload as events and `oomtrace whois` show it: what kind of
//! cgroup it was in, how completely it was attributed, and its identity
//! (runtime, container, pod). `enrich` fills these types; it does not define
//! them.

use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::Serialize;
use strum::{EnumString, IntoStaticStr, VariantArray};

use crate::WallTime;

/// Container runtime, as far as the cgroup path (or the CRI runtime) tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Runtime {
    Containerd,
    Crio,
    Docker,
    Podman,
    /// LXC (and LXD/Incus, which run containers through liblxc); the
    /// container id is the container's name.
    Lxc,
    /// systemd-nspawn; the container id is the machine name.
    Nspawn,
    /// The path names a container but not its runtime (cgroupfs driver).
    Unknown,
}

/// Kubernetes pod QoS class, from the pod's place under `kubepods`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Qos {
    Guaranteed,
    Burstable,
    /// Serialized as `"besteffort"`, the spelling in cgroup paths.
    BestEffort,
}

/// How completely a victim was attributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Attribution {
    /// Path and runtime agree: names are known.
    Full,
    /// Only what the cgroup path gives (runtime unreachable, slow, or unaware).
    Partial,
    /// Not in a container: a host process or system service.
    Host,
    /// The cgroup is unknown or its layout is not recognised.
    Unknown,
}

/// What kind of cgroup the victim was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WorkloadKind {
    Container,
    /// A container runtime's monitor process for one container (conmon of
    /// CRI-O or podman, LXC's monitor, nspawn's supervisor): the victim is
    /// *not* in the container; [`WorkloadInfo::monitored`] names it.
    ContainerMonitor,
    Pod,
    /// A HashiCorp Nomad task (exec/raw_exec/java drivers; Nomad's docker
    /// tasks are containers).
    NomadTask,
    SystemService,
    Host,
    Unknown,
}

/// The container a [`WorkloadKind::ContainerMonitor`] watches. The victim is
/// the monitor, not this container: its kill is not the container's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MonitoredContainer {
    /// Absent when the path does not name it (podman's shared cgroupfs
    /// `conmon` cgroup, the `runtime` cgroup of `--cgroups=split`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The container's name, from the runtime over CRI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The monitored container is the pod's sandbox (pause) container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
}

/// How a [`WorkloadIdentity`] writes a key it does not know: events leave it
/// out ([`OmitUnknown`]); `oomtrace whois` writes `null` ([`NullUnknown`]) so
/// scripts can rely on every key being there.
pub trait UnknownKeys {
    fn omit<T>(value: &Option<T>) -> bool;
}

/// Unknown identity keys are left out of the JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OmitUnknown;

impl UnknownKeys for OmitUnknown {
    fn omit<T>(value: &Option<T>) -> bool {
        value.is_none()
    }
}

/// Unknown identity keys are written as `null`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NullUnknown;

impl UnknownKeys for NullUnknown {
    fn omit<T>(_: &Option<T>) -> bool {
        false
    }
}

/// Who the workload is: the container and pod names and ids, as far as the
/// cgroup path and the container runtime tell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(bound = "")]
#[schemars(rename = "WorkloadIdentity", bound = "U: UnknownKeys")]
pub struct WorkloadIdentity<U: UnknownKeys = OmitUnknown> {
    #[serde(skip_serializing_if = "U::omit")]
    pub runtime: Option<Runtime>,
    #[serde(skip_serializing_if = "U::omit")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "U::omit")]
    pub pod_uid: Option<String>,
    #[serde(skip_serializing_if = "U::omit")]
    pub qos: Option<Qos>,
    #[serde(skip_serializing_if = "U::omit")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "U::omit")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "U::omit")]
    pub container: Option<String>,
    #[serde(skip)]
    unknown: PhantomData<U>,
}

impl WorkloadIdentity {
    /// The same identity, written with `null` for what is unknown.
    pub fn with_null_unknowns(&self) -> WorkloadIdentity<NullUnknown> {
        WorkloadIdentity {
            runtime: self.runtime,
            container_id: self.container_id.clone(),
            pod_uid: self.pod_uid.clone(),
            qos: self.qos,
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            container: self.container.clone(),
            unknown: PhantomData,
        }
    }
}

/// The controller a pod belongs to, as far as the node can tell (from the
/// pod's labels that kubelet hands the runtime, and the pod name's shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Owner {
    pub kind: OwnerKind,
    pub name: String,
    /// Derived from the name's shape alone: no label said so.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub guessed: bool,
}

/// The kind of controller that owns a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum OwnerKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    /// A bare pod (no controller).
    Pod,
}

/// The victim's workload, as it appears in events and `oomtrace whois`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WorkloadInfo {
    pub kind: WorkloadKind,
    pub attribution: Attribution,
    #[serde(flatten)]
    pub identity: WorkloadIdentity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
    /// When the container (this instance of it) started: RFC 3339, UTC,
    /// from the runtime over CRI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<WallTime>,
    /// The controller that owns the pod, as far as the node can tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The pod is in kube-system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_system: Option<bool>,
    /// The pod's sandbox ("pause") container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
    /// The victim is the container's main process. `false`: Kubernetes will
    /// not report this kill as OOMKilled (the container keeps running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_process: Option<bool>,
    /// The systemd unit of a system service, or the service a container
    /// (or its monitor) runs in (podman quadlet, `--cgroups=split`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// For a `container_monitor`: the container it watches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitored: Option<MonitoredContainer>,
    /// For a `nomad_task`: the allocation id and the task name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alloc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Why the attribution is partial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_reason: Option<String>,
}

impl WorkloadInfo {
    /// A workload of `kind` about which nothing else is known yet.
    pub fn new(kind: WorkloadKind, attribution: Attribution) -> Self {
        Self {
            kind,
            attribution,
            identity: WorkloadIdentity::default(),
            image: None,
            restart_count: None,
            started_at: None,
            owner: None,
            kube_system: None,
            sandbox: None,
            main_process: None,
            unit: None,
            monitored: None,
            alloc_id: None,
            task: None,
            partial_reason: None,
        }
    }

    /// "namespace/pod/container" when known; a monitor reads
    /// "namespace/pod/(monitor of container)", never as the container itself.
    pub fn kubernetes_name(&self) -> Option<String> {
        let id = &self.identity;
        let pod = id.pod.as_deref()?;
        let namespace = id.namespace.as_deref().unwrap_or("?");
        if let Some(monitored) = &self.monitored {
            return Some(match (&monitored.container, monitored.sandbox) {
                (Some(container), _) => format!("{namespace}/{pod}/(monitor of {container})"),
                (None, Some(true)) => format!("{namespace}/{pod}/(monitor of sandbox)"),
                (None, _) => format!("{namespace}/{pod}/(monitor)"),
            });
        }
        Some(match &id.container {
            Some(container) => format!("{namespace}/{pod}/{container}"),
            None if self.sandbox == Some(true) => format!("{namespace}/{pod}/(sandbox)"),
            None => format!("{namespace}/{pod}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial_container() -> WorkloadInfo {
        let mut workload = WorkloadInfo::new(WorkloadKind::Container, Attribution::Partial);
        workload.identity.container_id = Some("abc".to_owned());
        workload.identity.qos = Some(Qos::BestEffort);
        workload.main_process = Some(false);
        workload
    }

    #[test]
    fn monitors_are_named_as_monitors() {
        let mut monitor = WorkloadInfo::new(WorkloadKind::ContainerMonitor, Attribution::Full);
        monitor.identity.namespace = Some("ns".to_owned());
        monitor.identity.pod = Some("web".to_owned());
        monitor.monitored = Some(MonitoredContainer::default());
        assert_eq!(monitor.kubernetes_name().as_deref(), Some("ns/web/(monitor)"));
        monitor.monitored = Some(MonitoredContainer { sandbox: Some(true), ..MonitoredContainer::default() });
        assert_eq!(monitor.kubernetes_name().as_deref(), Some("ns/web/(monitor of sandbox)"));
        monitor.monitored = Some(MonitoredContainer { container: Some("app".to_owned()), ..Default::default() });
        assert_eq!(monitor.kubernetes_name().as_deref(), Some("ns/web/(monitor of app)"));
    }

    #[test]
    fn events_leave_unknown_keys_out() {
        let json = serde_json::to_string(&partial_container()).expect("serializes");
        assert_eq!(
            json,
            r#"{"kind":"container","attribution":"partial","container_id":"abc","qos":"besteffort","main_process":false}"#
        );
    }

    #[test]
    fn the_null_form_writes_every_identity_key() {
        let json = serde_json::to_string(&partial_container().identity.with_null_unknowns()).expect("serializes");
        assert_eq!(
            json,
            r#"{"runtime":null,"container_id":"abc","pod_uid":null,"qos":"besteffort","namespace":null,"pod":null,"container":null}"#
        );
    }
}
