//! A small CRI client for integration tests: runs pods and containers in the
//! local containerd that `scripts/runtime.sh up` starts, shaped the way
//! kubelet shapes them (labels, cgroup parents, log paths, oom_score_adj).
//!
//! Every call blocks (a private current-thread tokio runtime drives the gRPC
//! channel), so tests stay plain `#[test]` functions. Standalone: include it
//! with `#[path = "support/cri.rs"] mod cri;`.
#![allow(dead_code)]

use std::{
    collections::{HashMap, hash_map::RandomState},
    future::Future,
    hash::{BuildHasher as _, Hasher as _},
    path::{Path, PathBuf},
    sync::Arc,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use hyper_util::rt::TokioIo;
pub use k8s_cri::v1::ContainerState;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerStatusRequest, CreateContainerRequest, ImageSpec,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest, VersionRequest,
    runtime_service_client::RuntimeServiceClient,
};
use tokio::{net::UnixStream, runtime::Runtime};
use tonic::transport::{Channel, Endpoint, Uri};

/// Where `scripts/runtime.sh up` puts containerd's socket.
pub const DEFAULT_SOCKET: &str = "/run/oomtrace-test/containerd/containerd.sock";
/// Environment variable naming another socket.
pub const SOCKET_ENV: &str = "OOMTRACE_TEST_CRI_SOCKET";
/// The image `scripts/runtime.sh` builds: busybox applets plus `hog MIB [DELAY]`.
pub const TEST_IMAGE: &str = "localhost/oomtrace-test:latest";
/// Pod log directories go below this (kubelet uses /var/log/pods).
pub const POD_LOG_ROOT: &str = "/run/oomtrace-test/logs/pods";

/// kubelet's labels and annotations.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
pub const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The CRI socket the tests use: `$OOMTRACE_TEST_CRI_SOCKET` or [`DEFAULT_SOCKET`].
pub fn default_socket() -> String {
    std::env::var(SOCKET_ENV).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_SOCKET.to_owned())
}

/// The socket when containerd answers CRI on it, else why not.
pub fn available() -> Result<String, String> {
    let socket = default_socket();
    let hint = "start it with scripts/runtime.sh up";
    if !Path::new(&socket).exists() {
        return Err(format!("containerd is not running on {socket}: {hint}"));
    }
    CriClient::connect(&socket)
        .and_then(|client| client.version())
        .map_err(|e| format!("containerd is not running on {socket} ({e}): {hint}"))?;
    Ok(socket)
}

/// A fresh random pod uid in the usual UUID form.
pub fn new_uid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let word = || {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        h.finish()
    };
    let (a, b) = (word(), word());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// An error with its causes ("transport error: No such file or directory").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Kubernetes quality-of-service class of a pod: decides its cgroup parent
/// and its containers' oom_score_adj.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn parse(qos: &str) -> Result<Qos, String> {
        match qos.to_ascii_lowercase().as_str() {
            "guaranteed" => Ok(Qos::Guaranteed),
            "burstable" => Ok(Qos::Burstable),
            "besteffort" => Ok(Qos::BestEffort),
            other => Err(format!("unknown QoS class {other:?} (guaranteed, burstable or besteffort)")),
        }
    }

    /// kubelet's cgroupfs pod cgroup: guaranteed pods sit right below /kubepods.
    pub fn cgroup_parent(self, uid: &str) -> String {
        match self {
            Qos::Guaranteed => format!("/kubepods/pod{uid}"),
            Qos::Burstable => format!("/kubepods/burstable/pod{uid}"),
            Qos::BestEffort => format!("/kubepods/besteffort/pod{uid}"),
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
                let capacity = mem_total_bytes().max(1);
                let request = memory_request.unwrap_or(0).min(capacity);
                let adj = 1000 - (1000 * request / capacity) as i64;
                adj.clamp(3, 999)
            }
        }
    }
}

fn mem_total_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(1 << 30, |kb| kb * 1024)
}

/// What ContainerStatus says about a container.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    pub state: ContainerState,
    pub exit_code: i32,
    /// "OOMKilled", "Completed", "Error", ... (empty while running).
    pub reason: String,
    /// Host pid of the main process (0 once it has exited).
    pub pid: u32,
    /// The OCI spec's cgroupsPath, e.g. /kubepods/burstable/pod<uid>/<id>.
    pub cgroups_path: String,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
}

/// A blocking CRI client. Cheap to clone (the channel and runtime are shared).
#[derive(Clone)]
pub struct CriClient {
    socket: String,
    rt: Arc<Runtime>,
    channel: Channel,
}

impl CriClient {
    pub fn connect(socket: &str) -> Result<CriClient, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
        let path = socket.to_owned();
        let endpoint = Endpoint::try_from("http://[::]:0").map_err(|e| e.to_string())?.connect_timeout(CONNECT_TIMEOUT);
        let channel = rt
            .block_on(async {
                tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
                    })),
                )
                .await
            })
            .map_err(|_| format!("no connection to {socket} within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot connect to {socket}: {}", error_chain(&e)))?;
        Ok(CriClient { socket: socket.to_owned(), rt: Arc::new(rt), channel })
    }

    pub fn socket(&self) -> &str {
        &self.socket
    }

    fn service(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    /// Runs one gRPC call to completion, bounded by [`CALL_TIMEOUT`].
    fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        self.call_within(what, CALL_TIMEOUT, call)
    }

    fn call_within<T>(
        &self,
        what: &str,
        timeout: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        // The timer must be made inside the runtime.
        match self.rt.block_on(async { tokio::time::timeout(timeout, call).await }) {
            Err(_) => Err(format!("CRI {what}: no answer within {timeout:?}")),
            Ok(Err(status)) => Err(format!("CRI {what}: {:?}: {}", status.code(), status.message())),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// "runtime_name runtime_version (CRI api version)".
    pub fn version(&self) -> Result<String, String> {
        let mut svc = self.service();
        let v = self.call_within("Version", CONNECT_TIMEOUT, svc.version(VersionRequest { version: "v1".into() }))?;
        Ok(format!("{} {} (CRI {})", v.runtime_name, v.runtime_version, v.runtime_api_version))
    }

    /// Runs a pod sandbox as kubelet would for a host-network pod with the
    /// given QoS class ("guaranteed", "burstable" or "besteffort").
    pub fn run_pod(&self, name: &str, namespace: &str, uid: &str, qos: &str) -> Result<PodHandle, String> {
        let qos = Qos::parse(qos)?;
        let cgroup_parent = qos.cgroup_parent(uid);
        let log_dir = PathBuf::from(POD_LOG_ROOT).join(format!("{namespace}_{name}_{uid}"));
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("mkdir {}: {e}", log_dir.display()))?;
        let labels = HashMap::from([
            (POD_NAME_LABEL.to_owned(), name.to_owned()),
            (POD_NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
            (POD_UID_LABEL.to_owned(), uid.to_owned()),
        ]);
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
                    // Host network, own PID namespace per container, shared IPC.
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut svc = self.service();
        let request = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
        let id = self.call("RunPodSandbox", svc.run_pod_sandbox(request))?.pod_sandbox_id;
        Ok(PodHandle {
            id,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uid: uid.to_owned(),
            qos,
            cgroup_parent,
            log_dir,
            config,
            client: self.clone(),
            removed: false,
        })
    }

    /// Creates (does not start) a container of [`TEST_IMAGE`] in `pod`.
    /// `command` replaces the image's entrypoint, e.g. `["hog", "256"]`.
    pub fn create_container(
        &self,
        pod: &PodHandle,
        name: &str,
        command: &[&str],
        memory_limit_bytes: Option<u64>,
    ) -> Result<String, String> {
        let mut labels = pod.config.labels.clone();
        labels.insert(CONTAINER_NAME_LABEL.to_owned(), name.to_owned());
        let annotations = HashMap::from([
            (RESTART_COUNT_ANNOTATION.to_owned(), "0".to_owned()),
            ("io.kubernetes.container.terminationMessagePath".to_owned(), "/dev/termination-log".to_owned()),
        ]);
        let limit = memory_limit_bytes.map_or(0, |b| b as i64);
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.to_owned(), attempt: 0 }),
            image: Some(ImageSpec { image: TEST_IMAGE.to_owned(), ..Default::default() }),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            labels,
            annotations,
            log_path: format!("{name}/0.log"),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    memory_limit_in_bytes: limit,
                    // kubelet without swap: swap limit = memory limit.
                    memory_swap_limit_in_bytes: limit,
                    oom_score_adj: pod.qos.oom_score_adj(memory_limit_bytes),
                    ..Default::default()
                }),
                // kubelet repeats the pod's namespace modes here; containerd
                // takes the container's (all POD when left out: the pause
                // container's PID namespace would be shared).
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: pod_namespaces(&pod.config),
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
        let mut svc = self.service();
        Ok(self.call("CreateContainer", svc.create_container(request))?.container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<(), String> {
        let mut svc = self.service();
        self.call("StartContainer", svc.start_container(StartContainerRequest { container_id: id.to_owned() }))?;
        Ok(())
    }

    /// [`create_container`](Self::create_container), then start it.
    pub fn run_container(
        &self,
        pod: &PodHandle,
        name: &str,
        command: &[&str],
        memory_limit_bytes: Option<u64>,
    ) -> Result<String, String> {
        let id = self.create_container(pod, name, command, memory_limit_bytes)?;
        self.start_container(&id)?;
        Ok(id)
    }

    /// ContainerStatus with the verbose info (pid, OCI spec).
    pub fn container_status(&self, id: &str) -> Result<ContainerInfo, String> {
        let mut svc = self.service();
        let request = ContainerStatusRequest { container_id: id.to_owned(), verbose: true };
        let response = self.call("ContainerStatus", svc.container_status(request))?;
        let status = response.status.ok_or_else(|| format!("ContainerStatus of {id}: no status"))?;
        let info: serde_json::Value = response
            .info
            .get("info")
            .map(|s| serde_json::from_str(s).map_err(|e| format!("ContainerStatus of {id}: bad info JSON: {e}")))
            .transpose()?
            .unwrap_or_default();
        Ok(ContainerInfo {
            state: ContainerState::try_from(status.state)
                .map_err(|_| format!("ContainerStatus of {id}: unknown state {}", status.state))?,
            exit_code: status.exit_code,
            reason: status.reason,
            pid: info["pid"].as_u64().unwrap_or(0) as u32,
            cgroups_path: info["runtimeSpec"]["linux"]["cgroupsPath"].as_str().unwrap_or_default().to_owned(),
            labels: status.labels,
            annotations: status.annotations,
        })
    }

    /// Polls until the container has exited: (exit code, reason).
    pub fn wait_exited(&self, id: &str, timeout: Duration) -> Result<(i32, String), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.container_status(id)?;
            if status.state == ContainerState::ContainerExited {
                return Ok((status.exit_code, status.reason));
            }
            if Instant::now() >= deadline {
                return Err(format!("container {id} still {} after {timeout:?}", status.state.as_str_name()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the pod's sandbox (killing its containers), removes it and its
    /// containers, then removes the pod cgroup left behind (kubelet's job).
    pub fn remove_pod(&self, mut pod: PodHandle) -> Result<(), String> {
        pod.removed = true;
        self.remove_pod_by_id(&pod.id, &pod.cgroup_parent)
    }

    fn remove_pod_by_id(&self, id: &str, cgroup_parent: &str) -> Result<(), String> {
        let mut svc = self.service();
        self.call("StopPodSandbox", svc.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.to_owned() }))?;
        self.call(
            "RemovePodSandbox",
            svc.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id.to_owned() }),
        )?;
        remove_cgroup_everywhere(cgroup_parent);
        Ok(())
    }
}

fn pod_namespaces(config: &PodSandboxConfig) -> Option<NamespaceOption> {
    config.linux.as_ref()?.security_context.as_ref()?.namespace_options.clone()
}

/// A running pod sandbox; removed (with its containers) when dropped.
pub struct PodHandle {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub qos: Qos,
    /// e.g. /kubepods/burstable/pod<uid>; containers get <cgroup_parent>/<id>.
    pub cgroup_parent: String,
    pub log_dir: PathBuf,
    config: PodSandboxConfig,
    client: CriClient,
    removed: bool,
}

impl PodHandle {
    /// The CRI log of container `name` (kubelet's `<name>/0.log` format).
    pub fn container_log(&self, name: &str) -> String {
        let path = self.log_dir.join(name).join("0.log");
        std::fs::read_to_string(&path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
    }
}

impl Drop for PodHandle {
    fn drop(&mut self) {
        if !self.removed {
            self.removed = true;
            if let Err(e) = self.client.remove_pod_by_id(&self.id, &self.cgroup_parent) {
                eprintln!("warning: could not remove pod sandbox {} ({}): {e}", self.id, self.name);
            }
        }
    }
}

/// The cgroup of `pid` that holds its memory controller: the `memory` line
/// on cgroup v1, the unified one on v2. None once the process is gone.
pub fn memory_cgroup_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    oomtrace::enrich::cgroup_path::parse_proc_cgroup(&text)
}

/// Directory of cgroup `path` in the memory hierarchy (v1 or v2).
pub fn memory_cgroup_dir(path: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup/memory");
    let root = if v1.join("memory.limit_in_bytes").exists() { v1 } else { Path::new("/sys/fs/cgroup") };
    root.join(path.trim_start_matches('/'))
}

/// rmdir `path` in every cgroup hierarchy where it exists (only succeeds on
/// empty cgroups; the killed tasks may take a moment to leave).
fn remove_cgroup_everywhere(path: &str) {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return;
    }
    let mut dirs = vec![Path::new("/sys/fs/cgroup").join(relative)];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(entries.flatten().map(|e| e.path().join(relative)));
    }
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        for _ in 0..20 {
            if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A connected client, or None after printing why the test is skipped (root
/// and a running runtime are needed). With OOMTRACE_TEST_REQUIRE_CRI set (CI)
/// a skip is a failure instead.
pub fn connect_or_skip(test: &str) -> Option<CriClient> {
    let required = std::env::var_os("OOMTRACE_TEST_REQUIRE_CRI").is_some_and(|v| !v.is_empty() && v != "0");
    let skip = |reason: String| {
        assert!(!required, "{test}: {reason} (and OOMTRACE_TEST_REQUIRE_CRI is set)");
        println!("SKIPPED {test}: {reason}");
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        skip(format!("needs root to run containers (euid {euid})"));
        return None;
    }
    match available().and_then(|socket| CriClient::connect(&socket)) {
        Ok(client) => Some(client),
        Err(reason) => {
            skip(reason);
            None
        }
    }
}
