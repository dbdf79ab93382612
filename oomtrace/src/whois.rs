//! `oomtrace whois PID|CGROUP_PATH...`: which container and pod is this
//! process or cgroup in? The same resolution live events get; a cgroup path
//! resolves offline whether or not it (still) exists.

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use serde::Serialize;

use crate::{
    enrich::{
        cgroup_path::{Qos, Runtime, parse_proc_cgroup},
        pod::{PodResolver, WorkloadInfo},
    },
    sink::OutputFormat,
};

/// Prefixes stripped from a cgroup path given as a filesystem path.
const CGROUP_MOUNTS: [&str; 3] = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"];

/// One answer. The four identity keys are always present in the JSON (null
/// when unknown), so scripts can rely on them.
#[derive(Clone, Debug, Serialize)]
pub struct WhoisResult {
    pub target: String,
    pub pid: Option<u32>,
    pub cgroup: Option<String>,
    pub runtime: Option<Runtime>,
    pub container_id: Option<String>,
    pub pod_uid: Option<String>,
    pub qos: Option<Qos>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl WhoisResult {
    fn new(target: &str) -> Self {
        Self {
            target: target.to_owned(),
            pid: None,
            cgroup: None,
            runtime: None,
            container_id: None,
            pod_uid: None,
            qos: None,
            namespace: None,
            pod: None,
            container: None,
            workload: None,
            error: None,
        }
    }
}

/// A target's cgroup path: from /proc/<pid>/cgroup, or the path itself.
fn cgroup_of(target: &str) -> Result<(Option<u32>, String), String> {
    if let Ok(pid) = target.parse::<u32>() {
        let file = format!("/proc/{pid}/cgroup");
        let contents = std::fs::read_to_string(&file).map_err(|e| format!("no process {pid} ({file}: {e})"))?;
        let path = parse_proc_cgroup(&contents).ok_or_else(|| format!("{file} names no memory or v2 cgroup"))?;
        return Ok((Some(pid), path));
    }
    if target.is_empty() {
        return Err("empty cgroup path".to_owned());
    }
    let path = CGROUP_MOUNTS
        .iter()
        .find_map(|mount| target.strip_prefix(mount).filter(|rest| rest.is_empty() || rest.starts_with('/')))
        .unwrap_or(target);
    let path = if path.is_empty() { "/" } else { path };
    Ok((None, path.to_owned()))
}

pub async fn run(targets: &[String], socket: Option<PathBuf>, timeout: Duration) -> Vec<WhoisResult> {
    let mut pods = PodResolver::new(socket, timeout);
    pods.warm().await;
    let mut results = Vec::with_capacity(targets.len());
    for target in targets {
        let mut result = WhoisResult::new(target);
        match cgroup_of(target) {
            Ok((pid, path)) => {
                let workload = pods.attribute(Some(&path), pid).await;
                result.pid = pid;
                result.cgroup = Some(path);
                result.runtime = workload.runtime;
                result.container_id = workload.container_id.clone();
                result.pod_uid = workload.pod_uid.clone();
                result.qos = workload.qos;
                result.namespace = workload.namespace.clone();
                result.pod = workload.pod.clone();
                result.container = workload.container.clone();
                result.workload = Some(workload);
            }
            Err(error) => result.error = Some(error),
        }
        results.push(result);
    }
    results
}

pub fn render(results: &[WhoisResult], format: OutputFormat) -> serde_json::Result<String> {
    let mut out = String::new();
    match format {
        OutputFormat::Json => {
            for result in results {
                out.push_str(&serde_json::to_string(result)?);
                out.push('\n');
            }
        }
        OutputFormat::Table => {
            for r in results {
                let _ = writeln!(out, "{}:", r.target);
                if let Some(error) = &r.error {
                    let _ = writeln!(out, "  error: {error}");
                    continue;
                }
                let show = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
                let w = r.workload.as_ref();
                let _ = writeln!(out, "  cgroup:       {}", show(r.cgroup.clone()));
                let _ = writeln!(out, "  kind:         {}", show(w.map(|w| format!("{:?}", w.kind).to_lowercase())));
                let _ =
                    writeln!(out, "  attribution:  {}", show(w.map(|w| format!("{:?}", w.attribution).to_lowercase())));
                let _ = writeln!(out, "  runtime:      {}", show(r.runtime.map(|v| format!("{v:?}").to_lowercase())));
                let _ = writeln!(out, "  container_id: {}", show(r.container_id.clone()));
                let _ = writeln!(out, "  pod_uid:      {}", show(r.pod_uid.clone()));
                let _ = writeln!(out, "  qos:          {}", show(r.qos.map(|v| format!("{v:?}").to_lowercase())));
                let _ = writeln!(out, "  namespace:    {}", show(r.namespace.clone()));
                let _ = writeln!(out, "  pod:          {}", show(r.pod.clone()));
                let _ = writeln!(out, "  container:    {}", show(r.container.clone()));
                if let Some(reason) = w.and_then(|w| w.partial_reason.clone()) {
                    let _ = writeln!(out, "  note:         {reason}");
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem_paths_lose_their_mount_prefix() {
        assert_eq!(cgroup_of("/sys/fs/cgroup/memory/kubepods/pod1").map(|r| r.1), Ok("/kubepods/pod1".to_owned()));
        assert_eq!(cgroup_of("/sys/fs/cgroup/kubepods.slice").map(|r| r.1), Ok("/kubepods.slice".to_owned()));
        assert_eq!(cgroup_of("/sys/fs/cgroup").map(|r| r.1), Ok("/".to_owned()));
        assert_eq!(cgroup_of("/kubepods/x").map(|r| r.1), Ok("/kubepods/x".to_owned()));
        assert!(cgroup_of("4294967295").is_err());
    }
}
