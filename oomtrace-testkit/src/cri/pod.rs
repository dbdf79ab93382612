//! Pods and containers made the way kubelet makes them, and what CRI says
//! about them afterwards.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest, CreateContainerRequest, ImageSpec,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
};

use super::{
    CALL_TIMEOUT, CONTAINER_NAME_LABEL, CgroupDriver, CriClient, POD_LOG_ROOT, POD_NAME_LABEL, POD_NAMESPACE_LABEL,
    POD_UID_LABEL, RESTART_COUNT_ANNOTATION, TEST_IMAGE,
};
use crate::{cgroup::remove_cgroup_everywhere, procfs};

/// Kubernetes quality-of-service class of a pod: decides its cgroup parent
/// and its containers' oom_score_adj.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    /// kubelet's cgroupfs pod cgroup: guaranteed pods sit right below /kubepods.
    pub fn cgroup_parent(self, uid: &str) -> String {
        self.cgroup_parent_with(CgroupDriver::Cgroupfs, uid)
    }

    /// The pod cgroup kubelet passes as CRI `cgroup_parent` with `driver`.
    /// systemd: kubelet's `CgroupName.ToSystemd()`, the slice name with the
    /// uid's dashes escaped to `_`, expanded to its path
    /// (`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice`).
    pub fn cgroup_parent_with(self, driver: CgroupDriver, uid: &str) -> String {
        match (driver, self) {
            (CgroupDriver::Cgroupfs, Qos::Guaranteed) => format!("/kubepods/pod{uid}"),
            (CgroupDriver::Cgroupfs, Qos::Burstable) => format!("/kubepods/burstable/pod{uid}"),
            (CgroupDriver::Cgroupfs, Qos::BestEffort) => format!("/kubepods/besteffort/pod{uid}"),
            (CgroupDriver::Systemd, qos) => {
                let uid = uid.replace('-', "_");
                match qos {
                    Qos::Guaranteed => format!("/kubepods.slice/kubepods-pod{uid}.slice"),
                    Qos::Burstable => {
                        format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice")
                    }
                    Qos::BestEffort => {
                        format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice")
                    }
                }
            }
        }
    }

    /// kubelet's oom_score_adj (pkg/kubelet/qos/policy.go), taking the
    /// memory limit as the request. containerd clamps it to its own value
    /// from below (`restrict_oom_score_adj`), so -997 becomes containerd's.
    pub fn oom_score_adj(self, memory_request: Option<u64>) -> i64 {
        match self {
            Qos::Guaranteed => -997,
            Qos::BestEffort => 1000,
            Qos::Burstable => {
                let capacity = procfs::mem_total_kb().map_or(1 << 30, |kb| kb * 1024).max(1);
                let request = memory_request.unwrap_or(0).min(capacity);
                let adj = 1000 - (1000 * request / capacity) as i64;
                adj.clamp(3, 999)
            }
        }
    }
}

/// A pod sandbox (host network: no CNI here).
#[derive(Clone, Debug)]
pub struct Pod {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub qos: Qos,
    /// e.g. `/kubepods/burstable/pod<uid>`: containers get `<cgroup_parent>/<id>`.
    pub cgroup_parent: String,
    pub log_dir: PathBuf,
    pub(crate) config: PodSandboxConfig,
}

impl Pod {
    /// Where the runtime writes container `name`'s log (`<log_dir>/<name>/0.log`).
    pub fn container_log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(name).join("0.log")
    }

    /// The CRI log of container `name` (kubelet's `<name>/0.log` format).
    pub fn container_log(&self, name: &str) -> String {
        let path = self.container_log_path(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
    }
}

/// What ContainerStatus says about a container.
#[derive(Clone, Debug)]
pub struct Status {
    pub state: ContainerState,
    pub exit_code: i32,
    /// "OOMKilled", "Completed", "Error", ... (empty while running).
    pub reason: String,
    /// Host pid of the main process (0 once it has exited).
    pub pid: u32,
    /// The OCI spec's cgroupsPath, e.g. /kubepods/burstable/pod<uid>/<id>.
    pub cgroups_path: String,
    /// When the container started, unix nanoseconds (0: not started).
    pub started_at_ns: i64,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
}

/// kubelet's pod log directory (made here) and the pod's identity labels.
pub(crate) fn pod_log_dir_and_labels(
    name: &str,
    namespace: &str,
    uid: &str,
) -> Result<(PathBuf, HashMap<String, String>)> {
    let log_dir = PathBuf::from(POD_LOG_ROOT).join(format!("{namespace}_{name}_{uid}"));
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let labels = HashMap::from([
        (POD_NAME_LABEL.to_owned(), name.to_owned()),
        (POD_NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
        (POD_UID_LABEL.to_owned(), uid.to_owned()),
    ]);
    Ok((log_dir, labels))
}

/// What kubelet >= 1.28 puts in every container's unified resources on
/// cgroup v2 (pkg/kubelet/kuberuntime, `singleProcessOOMKill` false): the
/// whole container is OOM-killed as one. Nothing on cgroup v1.
pub(crate) fn kubelet_unified() -> HashMap<String, String> {
    match crate::cgroup::Hierarchy::detect() {
        Ok(hierarchy) if hierarchy.is_v2() => HashMap::from([("memory.oom.group".to_owned(), "1".to_owned())]),
        _ => HashMap::new(),
    }
}

/// Host network, a PID namespace per container, the pod's IPC namespace.
fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

impl CriClient {
    /// Runs a burstable pod sandbox as kubelet would.
    pub async fn run_pod(&self, name: &str, namespace: &str, uid: &str) -> Result<Pod> {
        self.run_pod_with_qos(name, namespace, uid, Qos::Burstable).await
    }

    /// Runs a pod sandbox as kubelet would for a host-network pod of `qos`.
    pub async fn run_pod_with_qos(&self, name: &str, namespace: &str, uid: &str, qos: Qos) -> Result<Pod> {
        self.run_labelled_pod(name, namespace, uid, qos, &[]).await
    }

    /// The same with the pod's own labels (kubelet passes the pod's
    /// metadata.labels to the sandbox, e.g. `pod-template-hash`).
    pub async fn run_labelled_pod(
        &self,
        name: &str,
        namespace: &str,
        uid: &str,
        qos: Qos,
        pod_labels: &[(&str, &str)],
    ) -> Result<Pod> {
        let cgroup_parent = qos.cgroup_parent_with(self.driver, uid);
        let (log_dir, mut labels) = pod_log_dir_and_labels(name, namespace, uid)?;
        labels.extend(pod_labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: uid.to_owned(),
                namespace: namespace.to_owned(),
                attempt: 0,
            }),
            // Host network (no CNI here): kubelet leaves the hostname empty.
            hostname: String::new(),
            log_directory: log_dir.display().to_string(),
            labels,
            annotations: HashMap::from([("kubernetes.io/config.source".to_owned(), "api".to_owned())]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut service = self.service();
        let request = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
        let id = Self::call("RunPodSandbox", CALL_TIMEOUT, service.run_pod_sandbox(request)).await?.pod_sandbox_id;
        Ok(Pod {
            id,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uid: uid.to_owned(),
            qos,
            cgroup_parent,
            log_dir,
            config,
        })
    }

    pub(crate) async fn start_container(&self, id: &str) -> Result<()> {
        let mut service = self.service();
        let request = StartContainerRequest { container_id: id.to_owned() };
        Self::call("StartContainer", CALL_TIMEOUT, service.start_container(request)).await?;
        Ok(())
    }

    /// Creates and starts a container of the test image running `command`, without a memory limit.
    pub async fn run_container(&self, pod: &Pod, name: &str, command: &[&str]) -> Result<String> {
        self.run_limited_container(pod, name, command, None).await
    }

    /// Creates and starts a container of [`TEST_IMAGE`] in `pod`, limited to
    /// `memory_limit_bytes`. `command` replaces the image's entrypoint, e.g.
    /// `["hog", "256"]`.
    pub async fn run_limited_container(
        &self,
        pod: &Pod,
        name: &str,
        command: &[&str],
        memory_limit_bytes: Option<u64>,
    ) -> Result<String> {
        self.run_container_attempt(pod, name, command, memory_limit_bytes, 0).await
    }

    /// The same as the `attempt`-th restart of container `name`, as kubelet
    /// restarts one: a new container with the next attempt number and the
    /// restart count in its annotations.
    pub async fn run_container_attempt(
        &self,
        pod: &Pod,
        name: &str,
        command: &[&str],
        memory_limit_bytes: Option<u64>,
        attempt: u32,
    ) -> Result<String> {
        // kubelet's container labels are its own (newContainerLabels): the
        // pod's identity and the container's name, never the pod's labels.
        let mut labels: HashMap<String, String> = pod
            .config
            .labels
            .iter()
            .filter(|(k, _)| k.starts_with("io.kubernetes."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(CONTAINER_NAME_LABEL.to_owned(), name.to_owned());
        let annotations = HashMap::from([
            (RESTART_COUNT_ANNOTATION.to_owned(), attempt.to_string()),
            ("io.kubernetes.container.terminationMessagePath".to_owned(), "/dev/termination-log".to_owned()),
        ]);
        let limit = memory_limit_bytes.map_or(0, |b| b as i64);
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.to_owned(), attempt }),
            image: Some(ImageSpec { image: TEST_IMAGE.to_owned(), ..Default::default() }),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            labels,
            annotations,
            log_path: format!("{name}/{attempt}.log"),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    memory_limit_in_bytes: limit,
                    // kubelet without swap: swap limit = memory limit.
                    memory_swap_limit_in_bytes: limit,
                    oom_score_adj: pod.qos.oom_score_adj(memory_limit_bytes),
                    unified: kubelet_unified(),
                    ..Default::default()
                }),
                // kubelet repeats the pod's namespace modes here; containerd
                // takes the container's (all POD when left out: the pause
                // container's PID namespace would be shared).
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let mut service = self.service();
        let id = Self::call("CreateContainer", CALL_TIMEOUT, service.create_container(request)).await?.container_id;
        self.start_container(&id).await?;
        Ok(id)
    }

    /// ContainerStatus with the verbose info (pid, OCI spec).
    pub async fn status(&self, id: &str) -> Result<Status> {
        let mut service = self.service();
        let request = ContainerStatusRequest { container_id: id.to_owned(), verbose: true };
        let response = Self::call("ContainerStatus", CALL_TIMEOUT, service.container_status(request)).await?;
        let status = response.status.with_context(|| format!("ContainerStatus of {id}: no status"))?;
        let info: serde_json::Value = response
            .info
            .get("info")
            .map(|s| serde_json::from_str(s).with_context(|| format!("ContainerStatus of {id}: bad info JSON")))
            .transpose()?
            .unwrap_or_default();
        Ok(Status {
            state: ContainerState::try_from(status.state)
                .map_err(|_| anyhow::anyhow!("ContainerStatus of {id}: unknown state {}", status.state))?,
            exit_code: status.exit_code,
            reason: status.reason,
            pid: info["pid"].as_u64().and_then(|pid| u32::try_from(pid).ok()).unwrap_or(0),
            cgroups_path: info["runtimeSpec"]["linux"]["cgroupsPath"].as_str().unwrap_or_default().to_owned(),
            started_at_ns: status.started_at,
            labels: status.labels,
            annotations: status.annotations,
        })
    }

    /// Polls until `accept` takes the container's status.
    pub async fn wait_status(&self, id: &str, accept: impl Fn(&Status) -> bool, timeout: Duration) -> Result<Status> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(id).await?;
            if accept(&status) {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("container {id} still {} after {timeout:?}", status.state.as_str_name());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the container has exited: (exit code, reason).
    pub async fn wait_exited(&self, id: &str, timeout: Duration) -> Result<(i32, String)> {
        let status = self.wait_status(id, |s| s.state == ContainerState::ContainerExited, timeout).await?;
        Ok((status.exit_code, status.reason))
    }

    /// Stops the pod's sandbox (killing its containers), removes it and its
    /// containers, then removes the pod cgroup left behind (kubelet's job).
    pub async fn remove_pod(&self, pod: &Pod) -> Result<()> {
        let mut service = self.service();
        let id = pod.id.clone();
        let stop = StopPodSandboxRequest { pod_sandbox_id: id.clone() };
        Self::call("StopPodSandbox", CALL_TIMEOUT, service.stop_pod_sandbox(stop)).await?;
        let remove = RemovePodSandboxRequest { pod_sandbox_id: id };
        Self::call("RemovePodSandbox", CALL_TIMEOUT, service.remove_pod_sandbox(remove)).await?;
        match self.driver {
            CgroupDriver::Cgroupfs => remove_cgroup_everywhere(&pod.cgroup_parent),
            CgroupDriver::Systemd => crate::systemd::stop_unit(&pod.cgroup_parent),
        }
        Ok(())
    }
}
