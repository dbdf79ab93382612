//! The victim's workload as events and `oomtrace whois` show it: what kind of
//! cgroup it was in, how completely it was attributed, and its identity
//! (runtime, container, pod). `enrich` fills these types; it does not define
//! them.

use std::marker::PhantomData;

use serde::Serialize;

/// Container runtime, as far as the cgroup path (or the CRI runtime) tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Containerd,
    Crio,
    Docker,
    Podman,
    /// The path names a container but not its runtime (cgroupfs driver).
    Unknown,
}

/// Kubernetes pod QoS class, from the pod's place under `kubepods`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Qos {
    Guaranteed,
    Burstable,
    /// Serialized as `"besteffort"`, the spelling in cgroup paths.
    BestEffort,
}

/// How completely a victim was attributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    Container,
    Pod,
    SystemService,
    Host,
    Unknown,
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(bound = "")]
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

/// The victim's workload, as it appears in events and `oomtrace whois`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkloadInfo {
    pub kind: WorkloadKind,
    pub attribution: Attribution,
    #[serde(flatten)]
    pub identity: WorkloadIdentity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
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
    /// The systemd unit of a system service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
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
            kube_system: None,
            sandbox: None,
            main_process: None,
            unit: None,
            partial_reason: None,
        }
    }

    /// "namespace/pod/container" when known.
    pub fn kubernetes_name(&self) -> Option<String> {
        let id = &self.identity;
        let pod = id.pod.as_deref()?;
        let namespace = id.namespace.as_deref().unwrap_or("?");
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
