//! The agent's pod run over CRI the way kubelet runs the DaemonSet's pod:
//! every field comes from [`DaemonSetSpec`] (deploy/kubernetes), turned into
//! the CRI calls kubelet makes for it.
//!
//! Where this differs from a real kubelet: the ConfigMap is a plain read-only
//! directory of its files (kubelet projects it with `..data` symlinks on a
//! tmpfs); kubelet's /etc/hosts, /etc/resolv.conf and termination-log mounts
//! are left out; probes are not run (tests read /readyz themselves);
//! `recursiveReadOnly: IfPossible` is not requested because the runtime does
//! not announce the feature (containerd < 2.0), which is what kubelet does
//! then too.

use std::{collections::HashMap, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use k8s_cri::v1::{
    Capability, ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecSyncRequest, ImageSpec, Int64Value,
    KeyValue, LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, Mount, MountPropagation, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxStatusRequest, RunPodSandboxRequest, SecurityProfile, security_profile::ProfileType,
};

use super::{
    CALL_TIMEOUT, CONTAINER_NAME_LABEL, CgroupDriver, CriClient, RESTART_COUNT_ANNOTATION, new_uid,
    pod::{Pod, Qos, kubelet_unified, pod_log_dir_and_labels},
};
use crate::manifest::{DaemonSetSpec, NODE_NAME_FIELD};

/// kubelet's default masked and read-only paths (pkg/securitycontext/util.go),
/// sent with every non-privileged container.
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Where the ConfigMaps' files are put on the host for the pod.
const CONFIG_ROOT: &str = "/run/oomtrace-test/configmaps";

/// The agent's running pod.
#[derive(Clone, Debug)]
pub struct DaemonSetPod {
    pub pod: Pod,
    pub container_id: String,
    pub container_name: String,
    /// The pod's IP (pod network) and the container's port.
    pub address: String,
}

impl DaemonSetPod {
    /// The lines the container wrote to stdout, in order (`kubectl logs`).
    pub fn stdout_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.pod.container_log_path(&self.container_name))
            .map(|log| stdout_of_cri_log(&log))
            .unwrap_or_default()
    }
}

/// The stdout lines of a CRI log (`<time> <stream> <P|F> <text>` per line;
/// `P` lines are parts of one longer line). A last line without its newline
/// is one containerd is still writing: it is left for the next read.
pub fn stdout_of_cri_log(log: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut partial = String::new();
    for line in log.split_inclusive('\n').filter_map(|line| line.strip_suffix('\n')) {
        let mut fields = line.splitn(4, ' ');
        let (Some(_time), Some(stream), Some(tag), text) = (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if stream != "stdout" {
            continue;
        }
        partial.push_str(text.unwrap_or_default());
        if tag == "F" {
            lines.push(std::mem::take(&mut partial));
        }
    }
    lines
}

fn quota(millis: u64) -> (i64, i64) {
    // kubelet: period 100 ms, quota = millicores * period / 1000.
    (100_000, (millis * 100) as i64)
}

fn shares(millis: u64) -> i64 {
    // kubelet's MilliCPUToShares: at least 2.
    ((millis * 1024) / 1000).max(2) as i64
}

impl CriClient {
    /// Runs the DaemonSet's pod on this node as kubelet would (pod network,
    /// the manifests' security context, mounts, resources and environment).
    pub async fn run_daemonset_pod(&self, spec: &DaemonSetSpec, node_name: &str) -> Result<DaemonSetPod> {
        let uid = new_uid();
        let name = format!("{}-{}", spec.name, &uid[..5]);
        // requests below limits: Burstable.
        let qos = Qos::Burstable;
        let cgroup_parent = qos.cgroup_parent_with(self.driver, &uid);
        let (log_dir, labels) = pod_log_dir_and_labels(&name, &spec.namespace, &uid)?;
        let namespaces = NamespaceOption {
            network: if spec.host_network { NamespaceMode::Node } else { NamespaceMode::Pod } as i32,
            pid: NamespaceMode::Container as i32,
            ipc: NamespaceMode::Pod as i32,
            ..Default::default()
        };
        let seccomp = spec.seccomp.as_deref().map(|kind| SecurityProfile {
            profile_type: match kind {
                "Unconfined" => ProfileType::Unconfined,
                "Localhost" => ProfileType::Localhost,
                _ => ProfileType::RuntimeDefault,
            } as i32,
            ..Default::default()
        });
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.clone(),
                uid: uid.clone(),
                namespace: spec.namespace.clone(),
                attempt: 0,
            }),
            // kubelet leaves it empty for host-network pods (the node's UTS namespace).
            hostname: if spec.host_network { String::new() } else { name.clone() },
            log_directory: log_dir.display().to_string(),
            labels: labels.clone(),
            annotations: HashMap::from([("kubernetes.io/config.source".to_owned(), "api".to_owned())]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces.clone()),
                    run_as_user: spec.run_as_user.map(|value| Int64Value { value }),
                    run_as_group: spec.run_as_group.map(|value| Int64Value { value }),
                    seccomp: seccomp.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut service = self.service();
        let request = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
        let pod_id = Self::call("RunPodSandbox", CALL_TIMEOUT, service.run_pod_sandbox(request)).await?.pod_sandbox_id;
        let pod = Pod {
            id: pod_id.clone(),
            name: name.clone(),
            namespace: spec.namespace.clone(),
            uid: uid.clone(),
            qos,
            cgroup_parent: cgroup_parent.clone(),
            log_dir,
            config: config.clone(),
        };
        // kubelet caps the pod cgroup at the sum of its containers' limits
        // (before the sandbox; here right after, before any container runs).
        if let (CgroupDriver::Systemd, Some(limit)) = (self.driver, spec.memory_limit) {
            crate::systemd::set_memory_max(&cgroup_parent, limit)?;
        }

        let mounts = self.daemonset_mounts(spec, &uid)?;
        let envs = spec
            .env
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: if value == NODE_NAME_FIELD { node_name.to_owned() } else { value.clone() },
            })
            .collect();
        let mut container_labels = labels;
        container_labels.insert(CONTAINER_NAME_LABEL.to_owned(), spec.container_name.clone());
        let limit = spec.memory_limit.map_or(0, |b| b as i64);
        let (cpu_period, cpu_quota) = spec.cpu_limit_millis.map_or((0, 0), quota);
        let container = ContainerConfig {
            metadata: Some(ContainerMetadata { name: spec.container_name.clone(), attempt: 0 }),
            image: Some(ImageSpec { image: spec.image.clone(), ..Default::default() }),
            args: spec.args.clone(),
            envs,
            mounts,
            labels: container_labels,
            annotations: HashMap::from([(RESTART_COUNT_ANNOTATION.to_owned(), "0".to_owned())]),
            log_path: format!("{}/0.log", spec.container_name),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    memory_limit_in_bytes: limit,
                    memory_swap_limit_in_bytes: limit,
                    cpu_period,
                    cpu_quota,
                    cpu_shares: spec.cpu_request_millis.map_or(2, shares),
                    oom_score_adj: qos.oom_score_adj(spec.memory_request),
                    unified: kubelet_unified(),
                    ..Default::default()
                }),
                security_context: Some(LinuxContainerSecurityContext {
                    capabilities: Some(Capability {
                        add_capabilities: spec.capabilities_add.clone(),
                        drop_capabilities: spec.capabilities_drop.clone(),
                        ..Default::default()
                    }),
                    privileged: spec.privileged,
                    namespace_options: Some(namespaces),
                    run_as_user: spec.run_as_user.map(|value| Int64Value { value }),
                    run_as_group: spec.run_as_group.map(|value| Int64Value { value }),
                    readonly_rootfs: spec.read_only_root_filesystem,
                    no_new_privs: !spec.allow_privilege_escalation,
                    masked_paths: MASKED_PATHS.iter().map(|p| (*p).to_owned()).collect(),
                    readonly_paths: READONLY_PATHS.iter().map(|p| (*p).to_owned()).collect(),
                    seccomp,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let request = CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(container),
            sandbox_config: Some(config),
        };
        let container_id =
            Self::call("CreateContainer", CALL_TIMEOUT, service.create_container(request)).await?.container_id;
        self.start_container(&container_id).await?;
        let status = PodSandboxStatusRequest { pod_sandbox_id: pod_id, verbose: false };
        let ip = Self::call("PodSandboxStatus", CALL_TIMEOUT, service.pod_sandbox_status(status))
            .await?
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        Ok(DaemonSetPod {
            pod,
            container_id,
            container_name: spec.container_name.clone(),
            address: format!("{ip}:{}", spec.port),
        })
    }

    /// The hostPath mounts as they are, and each ConfigMap's files in a
    /// directory of their own, mounted where the manifest says.
    fn daemonset_mounts(&self, spec: &DaemonSetSpec, uid: &str) -> Result<Vec<Mount>> {
        for mount in spec.host_mounts.iter().filter(|m| m.create_directory) {
            std::fs::create_dir_all(&mount.host_path).with_context(|| format!("creating {}", mount.host_path))?;
        }
        let mut mounts: Vec<Mount> = spec
            .host_mounts
            .iter()
            .map(|m| Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.clone(),
                readonly: m.read_only,
                propagation: if m.host_to_container {
                    MountPropagation::PropagationHostToContainer
                } else {
                    MountPropagation::PropagationPrivate
                } as i32,
                ..Default::default()
            })
            .collect();
        for (index, config) in spec.config_mounts.iter().enumerate() {
            let dir = Path::new(CONFIG_ROOT).join(uid).join(index.to_string());
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, content) in &config.files {
                std::fs::write(dir.join(file), content).with_context(|| format!("writing {file}"))?;
            }
            mounts.push(Mount {
                container_path: config.container_path.clone(),
                host_path: dir.display().to_string(),
                readonly: config.read_only,
                ..Default::default()
            });
        }
        Ok(mounts)
    }

    /// Runs `command` in the container (`kubectl exec`): exit code, stdout, stderr.
    pub async fn exec_sync(
        &self,
        container_id: &str,
        command: &[&str],
        timeout: Duration,
    ) -> Result<(i32, String, String)> {
        let mut service = self.service();
        let request = ExecSyncRequest {
            container_id: container_id.to_owned(),
            cmd: command.iter().map(|s| (*s).to_owned()).collect(),
            timeout: timeout.as_secs() as i64,
        };
        let response = Self::call("ExecSync", timeout + CALL_TIMEOUT, service.exec_sync(request)).await?;
        Ok((
            response.exit_code,
            String::from_utf8_lossy(&response.stdout).into_owned(),
            String::from_utf8_lossy(&response.stderr).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_log_lines_are_joined_and_filtered_to_stdout() {
        let log = "2026-11-29T10:00:00.1Z stdout F {\"a\":1}\n\
                   2026-11-29T10:00:00.2Z stderr F warning\n\
                   2026-11-29T10:00:00.3Z stdout P {\"b\":\n\
                   2026-11-29T10:00:00.4Z stdout F 2}\n";
        assert_eq!(stdout_of_cri_log(log), ["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn a_line_containerd_is_still_writing_waits_for_its_newline() {
        let log = "2026-11-29T10:00:00.1Z stdout F {\"a\":1}\n\
                   2026-11-29T10:00:00.2Z stdout F {\"b\":";
        assert_eq!(stdout_of_cri_log(log), ["{\"a\":1}"]);
    }

    #[test]
    fn cpu_as_kubelet_converts_it() {
        assert_eq!(quota(200), (100_000, 20_000));
        assert_eq!(shares(10), 10);
        assert_eq!(shares(1), 2);
    }
}
