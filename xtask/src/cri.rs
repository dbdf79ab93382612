//! Just enough of a CRI client to run the pod the enrichment bench
//! attributes, in the containerd `scripts/runtime.sh up` starts, shaped the
//! way kubelet shapes it (labels, cgroupfs cgroup parent) as in
//! oomtrace/tests/support/cri.rs.

use std::{collections::HashMap, path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest, CreateContainerRequest, ImageSpec,
    LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest, VersionRequest,
    runtime_service_client::RuntimeServiceClient,
};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where `scripts/runtime.sh up` puts containerd's socket
/// (`$OOMTRACE_TEST_CRI_SOCKET` overrides it, as for the tests).
pub fn test_socket() -> String {
    std::env::var("OOMTRACE_TEST_CRI_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/run/oomtrace-test/containerd/containerd.sock".to_owned())
}

/// The image `scripts/runtime.sh` builds: busybox applets plus `hog`.
const TEST_IMAGE: &str = "localhost/oomtrace-test:latest";
const POD_NAME: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const POD_UID: &str = "io.kubernetes.pod.uid";
const CONTAINER_NAME: &str = "io.kubernetes.container.name";
const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub struct CriClient {
    client: RuntimeServiceClient<Channel>,
}

/// A pod sandbox the bench runs (host network, burstable QoS).
pub struct Pod {
    pub id: String,
    pub name: String,
    pub namespace: String,
    /// `/kubepods/burstable/pod<uid>`: containers get `<cgroup_parent>/<id>`.
    pub cgroup_parent: String,
    config: PodSandboxConfig,
}

/// What ContainerStatus says about a container.
pub struct Status {
    pub state: ContainerState,
    /// Host pid of the main process (0 once it has exited).
    pub pid: u32,
}

impl CriClient {
    pub async fn connect(socket: &str) -> Result<Self> {
        let path = socket.to_owned();
        let endpoint = Endpoint::try_from("http://[::]:0")?.connect_timeout(CONNECT_TIMEOUT);
        let connect = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }));
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .with_context(|| format!("no connection to {socket} within {CONNECT_TIMEOUT:?}"))?
            .with_context(|| format!("connecting to {socket}"))?;
        Ok(CriClient { client: RuntimeServiceClient::new(channel) })
    }

    async fn call<T>(what: &str, call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>) -> Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Err(_) => bail!("CRI {what}: no answer within {CALL_TIMEOUT:?}"),
            Ok(Err(status)) => bail!("CRI {what}: {:?}: {}", status.code(), status.message()),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// "containerd v1.7.x".
    pub async fn version(&self) -> Result<String> {
        let mut client = self.client.clone();
        let v = Self::call("Version", client.version(VersionRequest { version: "v1".into() })).await?;
        Ok(format!("{} {}", v.runtime_name, v.runtime_version))
    }

    /// Runs a burstable pod sandbox as kubelet would (host network, own PID
    /// namespace per container).
    pub async fn run_pod(&self, name: &str, namespace: &str, uid: &str) -> Result<Pod> {
        let cgroup_parent = format!("/kubepods/burstable/pod{uid}");
        let labels = HashMap::from([
            (POD_NAME.to_owned(), name.to_owned()),
            (POD_NAMESPACE.to_owned(), namespace.to_owned()),
            (POD_UID.to_owned(), uid.to_owned()),
        ]);
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: uid.to_owned(),
                namespace: namespace.to_owned(),
                attempt: 0,
            }),
            labels,
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
        let mut client = self.client.clone();
        let request = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
        let id = Self::call("RunPodSandbox", client.run_pod_sandbox(request)).await?.pod_sandbox_id;
        Ok(Pod { id, name: name.to_owned(), namespace: namespace.to_owned(), cgroup_parent, config })
    }

    /// Creates and starts a container of the test image running `command`.
    pub async fn run_container(&self, pod: &Pod, name: &str, command: &[&str]) -> Result<String> {
        let mut labels = pod.config.labels.clone();
        labels.insert(CONTAINER_NAME.to_owned(), name.to_owned());
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.to_owned(), attempt: 0 }),
            image: Some(ImageSpec { image: TEST_IMAGE.to_owned(), ..Default::default() }),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            labels,
            annotations: HashMap::from([(RESTART_COUNT.to_owned(), "0".to_owned())]),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let mut client = self.client.clone();
        let id = Self::call("CreateContainer", client.create_container(request)).await?.container_id;
        let start = StartContainerRequest { container_id: id.clone() };
        Self::call("StartContainer", client.start_container(start)).await?;
        Ok(id)
    }

    pub async fn status(&self, id: &str) -> Result<Status> {
        let mut client = self.client.clone();
        let request = ContainerStatusRequest { container_id: id.to_owned(), verbose: true };
        let response = Self::call("ContainerStatus", client.container_status(request)).await?;
        let status = response.status.with_context(|| format!("ContainerStatus of {id}: no status"))?;
        let pid = response
            .info
            .get("info")
            .and_then(|info| serde_json::from_str::<serde_json::Value>(info).ok())
            .and_then(|info| info["pid"].as_u64())
            .unwrap_or(0);
        let state = ContainerState::try_from(status.state)
            .map_err(|_| anyhow::anyhow!("ContainerStatus of {id}: unknown state {}", status.state))?;
        Ok(Status { state, pid: u32::try_from(pid).unwrap_or(0) })
    }

    /// Polls until `accept` takes the container's status.
    pub async fn wait_status(&self, id: &str, accept: impl Fn(&Status) -> bool, timeout: Duration) -> Result<Status> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status(id).await?;
            if accept(&status) {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("container {id} still {} after {timeout:?}", status.state.as_str_name());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops and removes the pod sandbox (and its containers), then removes
    /// the pod cgroup left behind (kubelet's job).
    pub async fn remove_pod(&self, pod: &Pod) -> Result<()> {
        let mut client = self.client.clone();
        let id = pod.id.clone();
        Self::call("StopPodSandbox", client.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.clone() }))
            .await?;
        Self::call("RemovePodSandbox", client.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id }))
            .await?;
        remove_cgroup_everywhere(&pod.cgroup_parent).await;
        Ok(())
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

/// rmdir `path` in every cgroup hierarchy that has it (the pod's tasks may
/// take a moment to leave).
async fn remove_cgroup_everywhere(path: &str) {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(relative)];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|entry| entry.path().join(relative)));
    }
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        for _ in 0..40 {
            if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if dir.exists() {
            eprintln!("xtask: warning: could not remove the pod cgroup {}; remove it with rmdir", dir.display());
        }
    }
}

/// A random pod uid in the usual UUID form.
pub fn new_uid() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let word = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    let (a, b) = (word(1), word(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The cgroup of `pid` holding its memory controller (v1 `memory` line, or
/// the unified one), relative to the hierarchy root.
pub fn memory_cgroup_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    // Lines are `id:controllers:path` (the xtask no longer links oomtrace;
    // oomtrace-testkit replaces this file).
    let entries: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            Some((fields.nth(1)?, fields.next()?))
        })
        .collect();
    let v1 = entries.iter().find(|(controllers, _)| controllers.split(',').any(|c| c == "memory"));
    let unified = entries.iter().find(|(controllers, _)| controllers.is_empty());
    v1.or(unified).map(|(_, path)| (*path).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_uuids() {
        let uid = new_uid();
        let parts: Vec<usize> = uid.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{uid}");
        assert!(uid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{uid}");
    }
}
