//! The DaemonSet as deploy/kubernetes declares it, read from its YAML files,
//! so that a test runs the agent exactly as the manifests say (and the two
//! cannot drift). Only what a kubelet would turn into CRI calls is read.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_yaml_ng::Value;

/// A hostPath volume mounted into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostMount {
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
    /// `recursiveReadOnly: IfPossible|Enabled`.
    pub recursive_read_only: bool,
    /// `mountPropagation: HostToContainer`.
    pub host_to_container: bool,
    /// The volume's `type: DirectoryOrCreate`: the kubelet creates the host
    /// directory (0755, root) when it is missing.
    pub create_directory: bool,
}

/// A configMap volume: its files and where they are mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigMount {
    pub container_path: String,
    pub read_only: bool,
    /// (file name, content) from the ConfigMap's `data`.
    pub files: Vec<(String, String)>,
}

/// The agent's container and pod, as the manifests declare them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSetSpec {
    pub namespace: String,
    pub name: String,
    pub container_name: String,
    pub image: String,
    pub args: Vec<String>,
    /// Plain values; `valueFrom.fieldRef: spec.nodeName` gives [`NODE_NAME_FIELD`].
    pub env: Vec<(String, String)>,
    pub port: u16,
    pub memory_request: Option<u64>,
    pub memory_limit: Option<u64>,
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub privileged: bool,
    pub allow_privilege_escalation: bool,
    pub read_only_root_filesystem: bool,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    /// The container's, else the pod's `seccompProfile.type`.
    pub seccomp: Option<String>,
    pub host_network: bool,
    pub host_mounts: Vec<HostMount>,
    pub config_mounts: Vec<ConfigMount>,
}

/// Stands for the node's name where the manifest takes it from `spec.nodeName`.
pub const NODE_NAME_FIELD: &str = "$(spec.nodeName)";

/// Every YAML document of the `*.yaml` files directly in `dir`.
fn documents(dir: &Path) -> Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml") && !path.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(document)
                .with_context(|| format!("parsing {}", file.display()))?;
            out.push(value);
        }
    }
    Ok(out)
}

fn text(value: &Value, what: &str) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => bail!("{what} is not a scalar: {value:?}"),
    }
}

fn flag(value: &Value) -> bool {
    value.as_bool().unwrap_or(false)
}

fn list(value: &Value) -> &[Value] {
    value.as_sequence().map_or(&[], Vec::as_slice)
}

/// `64Mi` -> bytes (the binary and decimal suffixes kubectl accepts).
pub fn memory_quantity(text: &str) -> Result<u64> {
    const SUFFIXES: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (number, scale) =
        SUFFIXES.iter().find_map(|&(suffix, scale)| text.strip_suffix(suffix).map(|n| (n, scale))).unwrap_or((text, 1));
    let number: u64 = number.parse().with_context(|| format!("memory quantity {text:?}"))?;
    Ok(number * scale)
}

/// `200m` -> 200, `1` -> 1000 (millicores).
pub fn cpu_quantity(text: &str) -> Result<u64> {
    match text.strip_suffix('m') {
        Some(millis) => millis.parse().with_context(|| format!("cpu quantity {text:?}")),
        None => Ok(text
            .parse::<f64>()
            .map(|cores| (cores * 1000.0).round() as u64)
            .with_context(|| format!("cpu quantity {text:?}"))?),
    }
}

impl DaemonSetSpec {
    /// Reads the DaemonSet and the ConfigMaps it mounts from `dir` (deploy/kubernetes).
    pub fn read(dir: &Path) -> Result<DaemonSetSpec> {
        let documents = documents(dir)?;
        let daemonset = documents
            .iter()
            .find(|d| d["kind"].as_str() == Some("DaemonSet"))
            .with_context(|| format!("no DaemonSet in {}", dir.display()))?;
        let namespace = text(&daemonset["metadata"]["namespace"], "DaemonSet namespace")?;
        let name = text(&daemonset["metadata"]["name"], "DaemonSet name")?;
        let pod = &daemonset["spec"]["template"]["spec"];
        let container = list(&pod["containers"]).first().context("the DaemonSet has no container")?;
        let security = &container["securityContext"];
        let pod_security = &pod["securityContext"];
        let env = list(&container["env"])
            .iter()
            .map(|var| {
                let name = text(&var["name"], "env name")?;
                let value = if var["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("spec.nodeName") {
                    NODE_NAME_FIELD.to_owned()
                } else {
                    text(&var["value"], "env value")?
                };
                Ok((name, value))
            })
            .collect::<Result<Vec<_>>>()?;
        let resources = &container["resources"];
        let quantity = |section: &str, key: &str| resources[section][key].as_str().map(str::to_owned);
        let caps = |key: &str| {
            list(&security["capabilities"][key]).iter().map(|c| text(c, "capability")).collect::<Result<Vec<_>>>()
        };
        let volumes = list(&pod["volumes"]);
        let mut host_mounts = Vec::new();
        let mut config_mounts = Vec::new();
        for mount in list(&container["volumeMounts"]) {
            let volume_name = mount["name"].as_str().context("volumeMount without a name")?;
            let volume = volumes
                .iter()
                .find(|v| v["name"].as_str() == Some(volume_name))
                .with_context(|| format!("volumeMount {volume_name} has no volume"))?;
            let container_path = text(&mount["mountPath"], "mountPath")?;
            let read_only = flag(&mount["readOnly"]);
            if let Some(host_path) = volume["hostPath"]["path"].as_str() {
                host_mounts.push(HostMount {
                    host_path: host_path.to_owned(),
                    container_path,
                    read_only,
                    recursive_read_only: matches!(mount["recursiveReadOnly"].as_str(), Some("IfPossible" | "Enabled")),
                    host_to_container: mount["mountPropagation"].as_str() == Some("HostToContainer"),
                    create_directory: volume["hostPath"]["type"].as_str() == Some("DirectoryOrCreate"),
                });
            } else if let Some(config_map) = volume["configMap"]["name"].as_str() {
                let map = documents
                    .iter()
                    .find(|d| {
                        d["kind"].as_str() == Some("ConfigMap") && d["metadata"]["name"].as_str() == Some(config_map)
                    })
                    .with_context(|| format!("no ConfigMap {config_map} in {}", dir.display()))?;
                let mut files = Vec::new();
                for (key, value) in map["data"].as_mapping().into_iter().flatten() {
                    files.push((text(key, "ConfigMap key")?, text(value, "ConfigMap value")?));
                }
                config_mounts.push(ConfigMount { container_path, read_only, files });
            } else {
                bail!("volume {volume_name} is neither hostPath nor configMap: extend testkit::manifest");
            }
        }
        Ok(DaemonSetSpec {
            namespace,
            name,
            container_name: text(&container["name"], "container name")?,
            image: text(&container["image"], "image")?,
            args: list(&container["args"]).iter().map(|a| text(a, "arg")).collect::<Result<_>>()?,
            env,
            port: list(&container["ports"])
                .first()
                .and_then(|p| p["containerPort"].as_u64())
                .and_then(|p| u16::try_from(p).ok())
                .context("the container declares no port")?,
            memory_request: quantity("requests", "memory").map(|q| memory_quantity(&q)).transpose()?,
            memory_limit: quantity("limits", "memory").map(|q| memory_quantity(&q)).transpose()?,
            cpu_request_millis: quantity("requests", "cpu").map(|q| cpu_quantity(&q)).transpose()?,
            cpu_limit_millis: quantity("limits", "cpu").map(|q| cpu_quantity(&q)).transpose()?,
            privileged: flag(&security["privileged"]),
            // Kubernetes' default is true: only an explicit false turns it off.
            allow_privilege_escalation: security["allowPrivilegeEscalation"].as_bool().unwrap_or(true),
            read_only_root_filesystem: flag(&security["readOnlyRootFilesystem"]),
            run_as_user: security["runAsUser"].as_i64().or(pod_security["runAsUser"].as_i64()),
            run_as_group: security["runAsGroup"].as_i64().or(pod_security["runAsGroup"].as_i64()),
            capabilities_add: caps("add")?,
            capabilities_drop: caps("drop")?,
            seccomp: security["seccompProfile"]["type"]
                .as_str()
                .or(pod_security["seccompProfile"]["type"].as_str())
                .map(str::to_owned),
            host_network: flag(&pod["hostNetwork"]),
            host_mounts,
            config_mounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(memory_quantity("64Mi").expect("64Mi"), 64 << 20);
        assert_eq!(memory_quantity("1G").expect("1G"), 1_000_000_000);
        assert_eq!(memory_quantity("4096").expect("bytes"), 4096);
        assert!(memory_quantity("lots").is_err());
        assert_eq!(cpu_quantity("200m").expect("200m"), 200);
        assert_eq!(cpu_quantity("1.5").expect("1.5"), 1500);
    }

    #[test]
    fn the_repository_daemonset_is_read() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
        let spec = DaemonSetSpec::read(&dir).expect("reads deploy/kubernetes");
        assert_eq!(spec.namespace, "oomtrace");
        assert_eq!(spec.capabilities_drop, ["ALL"]);
        assert_eq!(spec.capabilities_add, ["BPF", "PERFMON", "SYSLOG"]);
        assert!(!spec.privileged && !spec.allow_privilege_escalation && spec.read_only_root_filesystem);
        assert_eq!(spec.run_as_user, Some(0));
        assert_eq!(spec.seccomp.as_deref(), Some("RuntimeDefault"));
        assert!(spec.env.contains(&("NODE_NAME".to_owned(), NODE_NAME_FIELD.to_owned())));
        assert!(spec.host_mounts.iter().any(|m| m.host_path == "/sys/fs/cgroup" && m.read_only));
        let config = spec.config_mounts.first().expect("the config map");
        assert!(
            config.files.iter().any(|(name, content)| name == "config.toml" && content.contains("metrics_address"))
        );
        assert_eq!((spec.memory_request, spec.memory_limit), (Some(20 << 20), Some(40 << 20)));
    }
}
