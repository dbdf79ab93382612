//! The Kubernetes identity of a victim: cgroup path -> runtime, container id,
//! pod uid and QoS (offline, from the path) -> namespace, pod, container,
//! image (from the runtime over CRI, cached). Never fails: what cannot be
//! learned is left out and the attribution says so.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

mod cache;
pub mod refresh;

use self::cache::SharedCache;
use super::{
    cgroup_path::{self, Workload},
    cri::{ContainerInfo, CriClient, CriError},
};
use crate::{enrich::owner::owner, escape::escape_controls};
use oomtrace_event::{
    Attribution, Runtime, WorkloadIdentity, WorkloadInfo, WorkloadKind, workload::MonitoredContainer,
};

/// Minimum time between two warnings about CRI failures.
const WARN_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed CRI call, calls are skipped (events get partial
/// attribution at once) for this long, doubling up to RETRY_MAX: a hung
/// runtime must not delay every event of an OOM storm by the timeout.
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How often the long-running commands list the runtime's containers
/// (kubelet relists every second): a container that has run this long is
/// named at its kill even if the runtime cannot answer then.
pub const LEARN_INTERVAL: Duration = Duration::from_secs(2);

/// Counters of attribution problems, reported by `live` and the daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttributionStats {
    /// Events attributed only from the cgroup path.
    pub partial: u64,
    /// CRI calls that failed or timed out.
    pub cri_failures: u64,
}

/// Why a container's pod could not be asked for; the event's
/// `partial_reason` is its message.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LookupError {
    /// No runtime to ask, or the call failed (shared: every lookup reports it).
    #[error(transparent)]
    Cri(Arc<CriError>),
    #[error("the CRI runtime failed recently; next attempt in {wait:?}")]
    Backoff { wait: Duration },
    /// lxc, nspawn: no CRI to ask.
    #[error("{} containers are named from the cgroup path only", .0.as_str())]
    NotCri(Runtime),
    #[error("the cgroup path does not name the monitored container")]
    MonitoredUnnamed,
}

pub struct PodResolver {
    cri: Result<CriClient, Arc<CriError>>,
    /// Which runtime answers on the CRI socket (cgroupfs paths do not say).
    runtime: Option<Runtime>,
    cache: SharedCache,
    last_warning: Option<Instant>,
    /// No CRI call before this instant (after a failure), and the next pause.
    retry_at: Option<Instant>,
    retry_pause: Duration,
    pub stats: AttributionStats,
}

impl PodResolver {
    /// `socket`: the CRI socket (None: the first default socket that exists).
    pub fn new(socket: Option<PathBuf>, timeout: Duration) -> Self {
        let explicit = socket.is_some();
        let cri = match socket.or_else(CriClient::default_socket) {
            Some(socket) => CriClient::new(&socket, timeout).map_err(Arc::new),
            None => Err(Arc::new(CriError::NoDefaultSocket)),
        };
        match &cri {
            // Asked for and not there: worth a warning.
            Err(reason) if explicit => {
                tracing::warn!(%reason, "pod names unavailable: events carry what cgroup paths give")
            }
            // A machine without a container runtime: nothing is wrong.
            Err(reason) => tracing::info!(%reason, "pod names off: events carry what cgroup paths give"),
            Ok(_) => {}
        }
        Self {
            cri,
            runtime: None,
            cache: SharedCache::new(),
            last_warning: None,
            retry_at: None,
            retry_pause: RETRY_MIN,
            stats: AttributionStats::default(),
        }
    }

    /// The CRI socket in use, or why there is none.
    pub fn cri_status(&self) -> Result<String, Arc<CriError>> {
        self.cri.as_ref().map(|c| c.socket().display().to_string()).map_err(Clone::clone)
    }

    /// Loads every container the runtime knows into the cache, so containers
    /// removed right after a kill still resolve.
    pub async fn warm(&mut self) {
        let Ok(cri) = &self.cri else { return };
        match cri.runtime_name().await {
            Ok(name) => self.runtime = runtime_from_name(&name),
            Err(error) => {
                let reason = error.to_string();
                self.note_failure(&reason);
                return;
            }
        }
        let Ok(cri) = self.cri.clone() else { return };
        match refresh::learn_new_containers(&cri, &self.cache).await {
            Ok(learned) => tracing::debug!(containers = learned, "CRI cache warmed"),
            Err(error) => self.note_failure(&error.to_string()),
        }
    }

    /// Keeps learning the containers the runtime starts, every `every`, on a
    /// task of its own, so a container is known before its kill even when
    /// the runtime cannot answer then (a node out of memory). No event waits
    /// for a listing: each may take up to `every`, however short the bound
    /// on the calls an event waits for (a busy runtime may list in more than
    /// that, and would then never be learned from). For the long-running
    /// commands; stops when the resolver is dropped.
    pub fn keep_learning(&self, every: Duration) -> Option<refresh::Learner> {
        let cri = self.cri.as_ref().ok()?;
        let cri = cri.with_timeout(every.max(cri.timeout()));
        Some(refresh::Learner::spawn(cri, self.cache.clone(), every))
    }

    fn note_failure(&mut self, reason: &str) {
        self.stats.cri_failures += 1;
        self.retry_at = Some(Instant::now() + self.retry_pause);
        self.retry_pause = (self.retry_pause * 2).min(RETRY_MAX);
        if self.last_warning.is_none_or(|t| t.elapsed() >= WARN_INTERVAL) {
            self.last_warning = Some(Instant::now());
            tracing::warn!(
                reason = %escape_controls(reason),
                failures = self.stats.cri_failures,
                "CRI lookup failed: attributing from cgroup paths only"
            );
        }
    }

    /// Container `id` (of pod `pod_uid`, when its cgroup path says), with
    /// its pod's labels: remembered with another of its containers, else
    /// asked for alongside its status, so a slow runtime delays an event by
    /// one timeout at most.
    async fn container(&mut self, id: &str, pod_uid: Option<&str>) -> Result<Option<ContainerInfo>, LookupError> {
        if let Some(info) = self.cache.lock().checked(id).cloned() {
            return Ok(Some(info));
        }
        let cri = match &self.cri {
            Ok(cri) => cri.clone(),
            Err(reason) => return Err(LookupError::Cri(Arc::clone(reason))),
        };
        if let Some(at) = self.retry_at.filter(|at| Instant::now() < *at) {
            let wait = at.saturating_duration_since(Instant::now());
            return match self.cache.lock().get(id).cloned() {
                Some(info) => Ok(Some(info)),
                None => Err(LookupError::Backoff { wait }),
            };
        }
        let known_labels = pod_uid.and_then(|uid| self.cache.lock().pod_labels(uid).cloned());
        let ask_labels = pod_uid.filter(|_| known_labels.is_none());
        let (status, asked_labels) = tokio::join!(cri.lookup(id), async {
            match ask_labels {
                Some(uid) => Some(cri.pod_labels(uid).await),
                None => None,
            }
        });
        let labels = match asked_labels {
            Some(Ok(labels)) => labels,
            // Counted with the status when that failed too.
            Some(Err(error)) => {
                if status.is_ok() {
                    self.note_failure(&error.to_string());
                }
                None
            }
            None => known_labels,
        };
        match status {
            Ok(Some(mut info)) => {
                self.retry_at = None;
                self.retry_pause = RETRY_MIN;
                info.pod_labels = info.pod_labels.or(labels);
                self.cache.lock().replace_checked(info.clone());
                Ok(Some(info))
            }
            // Gone from the runtime: fall back to what the cache remembers.
            Ok(None) => Ok(self.cache.lock().get(id).cloned()),
            Err(error) => {
                self.note_failure(&error.to_string());
                match self.cache.lock().get(id).cloned() {
                    Some(info) => Ok(Some(info)),
                    None => Err(LookupError::Cri(Arc::new(error))),
                }
            }
        }
    }

    /// The workload of a watched memory cgroup at `path` (its warnings, its
    /// gauges, `oomtrace top`), attributed as a victim in it would be;
    /// `None` for the node (no path).
    pub async fn attribute_cgroup(&mut self, path: Option<&str>) -> Option<WorkloadInfo> {
        match path {
            Some(path) => Some(self.attribute(Some(path), None).await),
            None => None,
        }
    }

    /// Attributes a victim in cgroup `path` (relative to the hierarchy root).
    pub async fn attribute(&mut self, path: Option<&str>, victim_tgid: Option<u32>) -> WorkloadInfo {
        let Some(path) = path else {
            return WorkloadInfo::new(WorkloadKind::Unknown, Attribution::Unknown);
        };
        let workload = cgroup_path::parse(path);
        let mut out = match &workload {
            Workload::Container { unit, .. } => {
                let mut out = WorkloadInfo::new(WorkloadKind::Container, Attribution::Full);
                out.unit = unit.clone();
                out
            }
            Workload::ContainerMonitor { container_id, unit, .. } => {
                let mut out = WorkloadInfo::new(WorkloadKind::ContainerMonitor, Attribution::Full);
                out.unit = unit.clone();
                out.monitored = Some(MonitoredContainer { container_id: container_id.clone(), ..Default::default() });
                out
            }
            Workload::Pod { .. } => WorkloadInfo::new(WorkloadKind::Pod, Attribution::Full),
            Workload::NomadTask { alloc_id, task } => {
                let mut out = WorkloadInfo::new(WorkloadKind::NomadTask, Attribution::Partial);
                out.alloc_id = Some(alloc_id.clone());
                out.task = Some(task.clone());
                out.partial_reason = Some("Nomad tasks are named from the cgroup path only".to_owned());
                self.stats.partial += 1;
                return out;
            }
            Workload::SystemService { unit } => {
                let mut out = WorkloadInfo::new(WorkloadKind::SystemService, Attribution::Host);
                out.unit = Some(unit.clone());
                return out;
            }
            Workload::HostRoot => return WorkloadInfo::new(WorkloadKind::Host, Attribution::Host),
            Workload::Unknown => return WorkloadInfo::new(WorkloadKind::Unknown, Attribution::Unknown),
        };
        let id = &mut out.identity;
        id.runtime = Some(workload.runtime()).filter(|r| *r != Runtime::Unknown);
        id.container_id = workload.container_id().map(str::to_owned);
        id.pod_uid = workload.pod_uid().map(str::to_owned);
        id.qos = workload.qos();
        let lookup = match &workload {
            Workload::Container { runtime, .. } | Workload::ContainerMonitor { runtime, .. }
                if !speaks_cri(*runtime) =>
            {
                Err(LookupError::NotCri(*runtime))
            }
            Workload::Container { container_id, .. }
            | Workload::ContainerMonitor { container_id: Some(container_id), .. } => {
                self.container(container_id, workload.pod_uid()).await
            }
            Workload::ContainerMonitor { container_id: None, .. } => Err(LookupError::MonitoredUnnamed),
            Workload::Pod { pod_uid, .. } => Ok(self.cache.lock().pod(pod_uid).cloned().map(|mut pod| {
                // A pod-level cgroup: no container of its own.
                pod.name = None;
                pod.main_pid = None;
                pod.image = None;
                pod.restart_count = None;
                pod.started_at = None;
                pod
            })),
            _ => Ok(None),
        };
        match lookup {
            Ok(Some(info)) => {
                match out.monitored.as_mut() {
                    Some(monitored) => fill_monitored(&mut out.identity, monitored, &info),
                    None => fill_from_runtime(&mut out, &info, victim_tgid),
                }
                out.kube_system = info.namespace.as_deref().map(|ns| ns == "kube-system");
                out.identity.runtime = out.identity.runtime.or(self.runtime);
            }
            Ok(None) => {
                out.attribution = Attribution::Partial;
                out.partial_reason = Some("the container runtime does not know this container".to_owned());
                self.stats.partial += 1;
            }
            Err(reason) => {
                out.attribution = Attribution::Partial;
                out.partial_reason = Some(reason.to_string());
                self.stats.partial += 1;
            }
        }
        out
    }
}

/// Runtimes whose containers a CRI runtime may know (CRI-O and containerd
/// serve CRI; podman and docker share CRI-O's and dockershim's id spaces).
fn speaks_cri(runtime: Runtime) -> bool {
    !matches!(runtime, Runtime::Lxc | Runtime::Nspawn)
}

/// What the runtime knows about the container a monitor watches: its pod's
/// names and its own name, never its image, restarts or main process (the
/// victim is the monitor, not the container).
fn fill_monitored(id: &mut WorkloadIdentity, monitored: &mut MonitoredContainer, info: &ContainerInfo) {
    id.namespace = info.namespace.clone();
    id.pod = info.pod_name.clone();
    id.pod_uid = id.pod_uid.clone().or_else(|| info.pod_uid.clone());
    monitored.container = info.name.clone();
    monitored.sandbox = Some(info.sandbox);
}

/// What the runtime knows about the victim's container (or pod).
fn fill_from_runtime(out: &mut WorkloadInfo, info: &ContainerInfo, victim_tgid: Option<u32>) {
    let id = &mut out.identity;
    id.namespace = info.namespace.clone();
    id.pod = info.pod_name.clone();
    id.container = info.name.clone();
    id.pod_uid = id.pod_uid.clone().or_else(|| info.pod_uid.clone());
    out.image = info.image.clone();
    out.restart_count = info.restart_count;
    out.started_at = info.started_at;
    out.owner = info.pod_name.as_deref().map(|pod| {
        let labels: Vec<(&str, &str)> =
            info.pod_labels.iter().flatten().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        owner(pod, &labels)
    });
    out.sandbox = Some(info.sandbox);
    out.main_process = match (info.main_pid, victim_tgid) {
        (Some(main), Some(victim)) => Some(main == victim),
        _ => None,
    };
}

fn runtime_from_name(name: &str) -> Option<Runtime> {
    match name {
        "containerd" => Some(Runtime::Containerd),
        "cri-o" => Some(Runtime::Crio),
        "docker" => Some(Runtime::Docker),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_event::{Owner, OwnerKind, Qos};

    #[tokio::test(flavor = "current_thread")]
    async fn without_a_runtime_containers_are_partially_attributed() {
        let mut resolver = PodResolver::new(Some(PathBuf::from("/nonexistent/cri.sock")), Duration::from_millis(50));
        assert!(resolver.cri_status().is_err());
        let id = "a".repeat(64);
        let path = format!("/kubepods/burstable/pod0b8c1a9e-1111-4222-8333-944455556666/{id}");
        let out = resolver.attribute(Some(&path), Some(1)).await;
        assert_eq!(out.kind, WorkloadKind::Container);
        assert_eq!(out.attribution, Attribution::Partial);
        assert_eq!(out.identity.container_id.as_deref(), Some(id.as_str()));
        assert_eq!(out.identity.pod_uid.as_deref(), Some("0b8c1a9e-1111-4222-8333-944455556666"));
        assert_eq!(out.identity.qos, Some(Qos::Burstable));
        assert!(out.partial_reason.as_deref().is_some_and(|r| r.contains("no CRI socket")), "{out:?}");
        assert_eq!(resolver.stats.partial, 1);
        let host = resolver.attribute(Some("/system.slice/ssh.service"), Some(1)).await;
        assert_eq!((host.kind, host.attribution), (WorkloadKind::SystemService, Attribution::Host));
        let root = resolver.attribute(Some("/"), Some(1)).await;
        assert_eq!((root.kind, root.attribution), (WorkloadKind::Host, Attribution::Host));
    }

    fn offline() -> PodResolver {
        PodResolver::new(Some(PathBuf::from("/nonexistent/cri.sock")), Duration::from_millis(50))
    }

    const UID: &str = "0b8c1a9e-1111-4222-8333-944455556666";
    const UID_: &str = "0b8c1a9e_1111_4222_8333_944455556666";

    fn crio_conmon_path(id: &str) -> String {
        format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{id}.scope")
    }

    /// A conmon kill names the pod and the monitored container, and never
    /// claims the container's image, restarts or main process.
    #[tokio::test(flavor = "current_thread")]
    async fn a_monitor_is_never_its_container() {
        let mut resolver = offline();
        let id = "c".repeat(64);
        resolver.cache.lock().insert(
            ContainerInfo {
                id: id.clone(),
                name: Some("app".to_owned()),
                pod_name: Some("web".to_owned()),
                namespace: Some("shop".to_owned()),
                pod_uid: Some(UID.to_owned()),
                image: Some("app:1".to_owned()),
                restart_count: Some(3),
                main_pid: Some(4242),
                started_at: "2026-11-29T14:44:04.500000Z".parse().ok(),
                pod_labels: Some(vec![("pod-template-hash".to_owned(), "7d9f8c6b5d".to_owned())]),
                sandbox: false,
            },
            true,
        );
        let out = resolver.attribute(Some(&crio_conmon_path(&id)), Some(4242)).await;
        assert_eq!((out.kind, out.attribution), (WorkloadKind::ContainerMonitor, Attribution::Full), "{out:?}");
        assert_eq!(out.identity.runtime, Some(Runtime::Crio));
        assert_eq!((out.identity.container_id.as_deref(), out.identity.container.as_deref()), (None, None));
        assert_eq!((out.identity.namespace.as_deref(), out.identity.pod.as_deref()), (Some("shop"), Some("web")));
        assert_eq!((out.identity.pod_uid.as_deref(), out.identity.qos), (Some(UID), Some(Qos::Burstable)));
        let monitored = out.monitored.clone().unwrap_or_default();
        assert_eq!(monitored.container_id.as_deref(), Some(id.as_str()));
        assert_eq!((monitored.container.as_deref(), monitored.sandbox), (Some("app"), Some(false)));
        assert_eq!((out.main_process, out.image.as_deref(), out.restart_count), (None, None, None));
        assert_eq!(out.kubernetes_name().as_deref(), Some("shop/web/(monitor of app)"));
        let json = serde_json::to_string(&out).unwrap_or_default();
        assert!(
            json.starts_with(r#"{"kind":"container_monitor","attribution":"full","runtime":"crio","pod_uid":"#),
            "{json}"
        );
        assert!(
            json.contains(&format!(r#""monitored":{{"container_id":"{id}","container":"app","sandbox":false}}"#)),
            "{json}"
        );
        assert_eq!(resolver.stats.partial, 0);
    }

    /// The start time and the owner come with the container; the owner is
    /// certain from the sandbox's labels, guessed from the name without them.
    #[tokio::test(flavor = "current_thread")]
    async fn a_container_carries_its_start_and_its_pods_owner() {
        let mut resolver = offline();
        let id = "e".repeat(64);
        let labels = vec![
            ("io.kubernetes.pod.uid".to_owned(), UID.to_owned()),
            ("pod-template-hash".to_owned(), "7d9f8c6b5d".to_owned()),
        ];
        let container = ContainerInfo {
            id: id.clone(),
            name: Some("api".to_owned()),
            pod_name: Some("api-7d9f8c6b5d-x2x4q".to_owned()),
            namespace: Some("shop".to_owned()),
            pod_uid: Some(UID.to_owned()),
            started_at: "2026-11-29T14:44:04.500000Z".parse().ok(),
            pod_labels: Some(labels),
            ..ContainerInfo::default()
        };
        resolver.cache.lock().insert(container.clone(), true);
        let path = format!("/kubepods/burstable/pod{UID}/{id}");
        let out = resolver.attribute(Some(&path), Some(1)).await;
        assert_eq!(out.started_at.map(|t| t.to_string()).as_deref(), Some("2026-11-29T14:44:04.500000Z"));
        let expected = Owner { kind: OwnerKind::Deployment, name: "api".to_owned(), guessed: false };
        assert_eq!(out.owner.as_ref(), Some(&expected));
        // The pod's own cgroup: the owner, not a container's start.
        let pod = resolver.attribute(Some(&format!("/kubepods/burstable/pod{UID}")), None).await;
        assert_eq!((pod.started_at, pod.owner.as_ref()), (None, Some(&expected)));
        // Without the sandbox's labels the owner is guessed from the name.
        let mut unlabelled = offline();
        unlabelled.cache.lock().insert(ContainerInfo { pod_labels: None, ..container }, true);
        let out = unlabelled.attribute(Some(&path), Some(1)).await;
        assert_eq!(out.owner, Some(Owner { guessed: true, ..expected }));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn path_only_kinds_say_why_they_are_partial() {
        let mut resolver = offline();
        let split = resolver.attribute(Some("/system.slice/nginx.service/runtime"), None).await;
        assert_eq!((split.kind, split.attribution), (WorkloadKind::ContainerMonitor, Attribution::Partial));
        assert_eq!(split.unit.as_deref(), Some("nginx.service"));
        assert_eq!(split.monitored.as_ref().map(|m| m.container_id.is_none()), Some(true));
        assert!(split.partial_reason.as_deref().is_some_and(|r| r.contains("does not name")), "{split:?}");
        let lxc = resolver.attribute(Some("/lxc.payload.web1"), None).await;
        assert_eq!((lxc.kind, lxc.identity.runtime), (WorkloadKind::Container, Some(Runtime::Lxc)));
        assert_eq!(lxc.identity.container_id.as_deref(), Some("web1"));
        assert_eq!(lxc.partial_reason.as_deref(), Some("lxc containers are named from the cgroup path only"));
        let alloc = "8d5e3a1b-2c4f-4e6a-9b7c-0d1e2f3a4b5c";
        let task = resolver.attribute(Some(&format!("/nomad.slice/share.slice/{alloc}.web.scope")), None).await;
        assert_eq!((task.kind, task.attribution), (WorkloadKind::NomadTask, Attribution::Partial));
        assert_eq!((task.alloc_id.as_deref(), task.task.as_deref()), (Some(alloc), Some("web")));
        let quadlet = format!("/system.slice/nginx.service/libpod-payload-{}", "d".repeat(64));
        let payload = resolver.attribute(Some(&quadlet), None).await;
        assert_eq!((payload.kind, payload.unit.as_deref()), (WorkloadKind::Container, Some("nginx.service")));
        assert_eq!(resolver.stats.partial, 4);
        let unknown = resolver.attribute(Some(&format!("/kubepods/pod{UID}/{alloc}")), None).await;
        assert_eq!((unknown.kind, unknown.attribution), (WorkloadKind::Unknown, Attribution::Unknown));
    }
}
