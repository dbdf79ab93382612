//! Container metadata from the container runtime over CRI (containerd,
//! CRI-O): pod name, namespace and uid, container name, image, restart count,
//! start time, the container's main process, and the pod's labels (from its
//! sandbox: kubelet hands the runtime every pod label there). Every call is
//! bounded by a timeout.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ContainerStatusRequest, ListContainersRequest, ListPodSandboxRequest, PodSandbox, PodSandboxFilter,
    PodSandboxStatusRequest, VersionRequest, runtime_service_client::RuntimeServiceClient,
};
use oomtrace_event::WallTime;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where runtimes put their CRI socket, tried in order when none is given.
pub const DEFAULT_SOCKETS: [&str; 3] =
    ["/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/run/crio/crio.sock"];

// kubelet's labels and annotations on containers and sandboxes.
use oomtrace_common::kubelet::{
    CONTAINER_NAME_LABEL as CONTAINER_NAME, POD_NAME_LABEL as POD_NAME, POD_NAMESPACE_LABEL as POD_NAMESPACE,
    POD_UID_LABEL as POD_UID, RESTART_COUNT_ANNOTATION as RESTART_COUNT,
};

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("no CRI socket at {0} (is containerd or CRI-O running? set --cri-socket)")]
    NoSocket(String),
    #[error("no CRI socket found (looked for containerd and CRI-O); set --cri-socket")]
    NoDefaultSocket,
    #[error("CRI call {call} timed out after {timeout:?}")]
    Timeout { call: &'static str, timeout: Duration },
    #[error("CRI call {call} failed: {status}")]
    Call { call: &'static str, status: Box<tonic::Status> },
    #[error("cannot build the CRI endpoint: {0}")]
    Endpoint(String),
}

/// What the runtime knows about one container (or pod sandbox).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// The container's name in the pod spec (None for a sandbox).
    pub name: Option<String>,
    pub pod_name: Option<String>,
    pub namespace: Option<String>,
    pub pod_uid: Option<String>,
    pub image: Option<String>,
    pub restart_count: Option<u32>,
    /// Host pid of the container's main process, when the runtime says.
    pub main_pid: Option<u32>,
    /// When this instance of the container started (RFC 3339, UTC); `None`
    /// before it started or when the runtime does not say.
    pub started_at: Option<WallTime>,
    /// The pod's labels, from its sandbox; `None` when not looked up or not found.
    pub pod_labels: Option<PodLabels>,
    /// The pod sandbox ("pause") container rather than a workload container.
    pub sandbox: bool,
}

/// A pod's labels as its sandbox carries them (kubelet's `io.kubernetes.*`
/// and the pod's own, e.g. `pod-template-hash`), sorted by key.
pub type PodLabels = Vec<(String, String)>;

/// A CRI timestamp (nanoseconds since the epoch; 0 = not set) as RFC 3339, UTC.
pub fn timestamp(unix_ns: i64) -> Option<WallTime> {
    let ns = u64::try_from(unix_ns).ok().filter(|ns| *ns > 0)?;
    WallTime::from_system_time(std::time::UNIX_EPOCH + Duration::from_nanos(ns))
}

fn sorted_labels(labels: HashMap<String, String>) -> PodLabels {
    let mut labels: PodLabels = labels.into_iter().collect();
    labels.sort();
    labels
}

/// A CRI client on a unix socket.
#[derive(Clone)]
pub struct CriClient {
    socket: PathBuf,
    client: RuntimeServiceClient<Channel>,
    timeout: Duration,
}

impl CriClient {
    /// Prepares a client; the connection is made on first use (and remade
    /// after failures), so a runtime that starts later is picked up.
    pub fn new(socket: &Path, timeout: Duration) -> Result<Self, CriError> {
        if !socket.exists() {
            return Err(CriError::NoSocket(socket.display().to_string()));
        }
        let path = socket.to_path_buf();
        let channel = Endpoint::try_from("http://[::]:0")
            .map_err(|e| CriError::Endpoint(e.to_string()))?
            .connect_timeout(timeout)
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
            }));
        Ok(Self { socket: socket.to_path_buf(), client: RuntimeServiceClient::new(channel), timeout })
    }

    /// The same client (the same connection), each call bounded by
    /// `timeout` instead: for calls no event waits for.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self { timeout, ..self.clone() }
    }

    /// The first default socket that exists.
    pub fn default_socket() -> Option<PathBuf> {
        DEFAULT_SOCKETS.iter().map(PathBuf::from).find(|p| p.exists())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The bound on each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn bounded<T>(
        &self,
        call: &'static str,
        future: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CriError> {
        match tokio::time::timeout(self.timeout, future).await {
            Err(_) => Err(CriError::Timeout { call, timeout: self.timeout }),
            // A deadline the runtime itself gave up on surfaces as a cancelled call.
            Ok(Err(status)) if matches!(status.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded) => {
                Err(CriError::Timeout { call, timeout: self.timeout })
            }
            Ok(Err(status)) => Err(CriError::Call { call, status: Box::new(status) }),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// Looks a container up by id; a pod sandbox id gives a sandbox entry.
    /// `Ok(None)`: the runtime does not know this id.
    pub async fn lookup(&self, id: &str) -> Result<Option<ContainerInfo>, CriError> {
        let mut client = self.client.clone();
        let request = ContainerStatusRequest { container_id: id.to_owned(), verbose: true };
        match self.bounded("ContainerStatus", client.container_status(request)).await {
            Ok(response) => Ok(response.status.map(|status| {
                let main_pid = response
                    .info
                    .get("info")
                    .and_then(|info| serde_json::from_str::<serde_json::Value>(info).ok())
                    .and_then(|info| info["pid"].as_u64())
                    .filter(|pid| *pid > 0)
                    .map(|pid| pid as u32);
                let mut info = from_labels(
                    id,
                    &status.labels,
                    &status.annotations,
                    status.image.map(|i| i.image),
                    main_pid,
                    false,
                );
                info.started_at = timestamp(status.started_at);
                info
            })),
            Err(CriError::Call { status, .. }) if status.code() == tonic::Code::NotFound => {
                self.lookup_sandbox(id).await
            }
            Err(error) => Err(error),
        }
    }

    async fn lookup_sandbox(&self, id: &str) -> Result<Option<ContainerInfo>, CriError> {
        let mut client = self.client.clone();
        let request = PodSandboxStatusRequest { pod_sandbox_id: id.to_owned(), verbose: false };
        match self.bounded("PodSandboxStatus", client.pod_sandbox_status(request)).await {
            Ok(response) => Ok(response.status.map(|status| {
                let mut info = from_labels(id, &status.labels, &status.annotations, None, None, true);
                info.pod_labels = Some(sorted_labels(status.labels.clone()));
                if let Some(meta) = status.metadata {
                    info.pod_name = info.pod_name.or(Some(meta.name));
                    info.namespace = info.namespace.or(Some(meta.namespace));
                    info.pod_uid = info.pod_uid.or(Some(meta.uid));
                }
                info
            })),
            Err(CriError::Call { status, .. }) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The labels of the pod with uid `pod_uid`, from its newest sandbox (one
    /// ListPodSandbox call filtered on kubelet's `io.kubernetes.pod.uid`
    /// label). `Ok(None)`: the runtime has no sandbox of that pod.
    pub async fn pod_labels(&self, pod_uid: &str) -> Result<Option<PodLabels>, CriError> {
        let filter = PodSandboxFilter {
            label_selector: HashMap::from([(POD_UID.to_owned(), pod_uid.to_owned())]),
            ..PodSandboxFilter::default()
        };
        let sandboxes = self.sandboxes(Some(filter)).await?;
        Ok(sandboxes.into_iter().max_by_key(|s| s.created_at).map(|s| sorted_labels(s.labels)))
    }

    /// Every pod's labels by pod uid (its newest sandbox's), to warm a cache.
    pub async fn all_pod_labels(&self) -> Result<HashMap<String, PodLabels>, CriError> {
        let mut newest: HashMap<String, PodSandbox> = HashMap::new();
        for sandbox in self.sandboxes(None).await? {
            let Some(uid) = sandbox.labels.get(POD_UID).or(sandbox.metadata.as_ref().map(|m| &m.uid)).cloned() else {
                continue;
            };
            if newest.get(&uid).is_none_or(|known| known.created_at < sandbox.created_at) {
                newest.insert(uid, sandbox);
            }
        }
        Ok(newest.into_iter().map(|(uid, sandbox)| (uid, sorted_labels(sandbox.labels))).collect())
    }

    async fn sandboxes(&self, filter: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>, CriError> {
        let mut client = self.client.clone();
        let response =
            self.bounded("ListPodSandbox", client.list_pod_sandbox(ListPodSandboxRequest { filter })).await?;
        Ok(response.items)
    }

    /// The runtime's name as it reports it ("containerd", "cri-o").
    pub async fn runtime_name(&self) -> Result<String, CriError> {
        let mut client = self.client.clone();
        let response = self.bounded("Version", client.version(VersionRequest { version: "v1".to_owned() })).await?;
        Ok(response.runtime_name)
    }

    /// Every container the runtime knows, to warm a cache.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>, CriError> {
        let mut client = self.client.clone();
        let response =
            self.bounded("ListContainers", client.list_containers(ListContainersRequest { filter: None })).await?;
        Ok(response
            .containers
            .into_iter()
            .map(|c| from_labels(&c.id, &c.labels, &c.annotations, c.image.map(|i| i.image), None, false))
            .collect())
    }
}

fn from_labels(
    id: &str,
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
    image: Option<String>,
    main_pid: Option<u32>,
    sandbox: bool,
) -> ContainerInfo {
    let get = |key: &str| labels.get(key).or_else(|| annotations.get(key)).filter(|v| !v.is_empty()).cloned();
    ContainerInfo {
        id: id.to_owned(),
        name: get(CONTAINER_NAME),
        pod_name: get(POD_NAME),
        namespace: get(POD_NAMESPACE),
        pod_uid: get(POD_UID),
        image: image.filter(|i| !i.is_empty()),
        restart_count: get(RESTART_COUNT).and_then(|v| v.parse().ok()),
        main_pid,
        started_at: None,
        pod_labels: None,
        sandbox,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_timestamps_become_rfc3339_and_zero_is_absent() {
        // ContainerStatus.started_at of a container started 2026-11-29 14:44:04.5 UTC.
        assert_eq!(
            timestamp(1_795_963_444_500_000_000).map(|t| t.to_string()).as_deref(),
            Some("2026-11-29T14:44:04.500000Z")
        );
        assert_eq!(timestamp(0), None);
        assert_eq!(timestamp(-1), None);
    }
}
