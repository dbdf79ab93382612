//! `oomtrace whois PID|CGROUP_PATH...`: which container and pod is this
//! process or cgroup in? The same resolution live events get; a cgroup path
//! resolves offline whether or not it (still) exists.

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use serde::Serialize;

use crate::{
    enrich::{cgroup_path::parse_proc_cgroup, pod::PodResolver},
    escape::{escape, escape_controls},
    output::OutputFormat,
};
use oomtrace_event::{WorkloadIdentity, WorkloadInfo, workload::NullUnknown};

/// Prefixes stripped from a cgroup path given as a filesystem path.
const CGROUP_MOUNTS: [&str; 3] = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"];

/// One answer. The identity keys are always present in the JSON (null when
/// unknown), so scripts can rely on them; `workload` has the full picture.
#[derive(Clone, Debug, Serialize)]
pub struct WhoisResult {
    pub target: String,
    pub pid: Option<u32>,
    pub cgroup: Option<String>,
    #[serde(flatten)]
    pub identity: WorkloadIdentity<NullUnknown>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl WhoisResult {
    fn resolved(target: &str, pid: Option<u32>, cgroup: String, workload: WorkloadInfo) -> Self {
        Self {
            target: target.to_owned(),
            pid,
            cgroup: Some(cgroup),
            identity: workload.identity.with_null_unknowns(),
            workload: Some(workload),
            error: None,
        }
    }

    fn failed(target: &str, error: String) -> Self {
        Self {
            target: target.to_owned(),
            pid: None,
            cgroup: None,
            identity: WorkloadIdentity::default(),
            workload: None,
            error: Some(error),
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
        let result = match cgroup_of(target) {
            Ok((pid, path)) => {
                let workload = pods.attribute(Some(&path), pid).await;
                WhoisResult::resolved(target, pid, path, workload)
            }
            Err(error) => WhoisResult::failed(target, error),
        };
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
                let _ = writeln!(out, "{}:", escape(&r.target));
                if let Some(error) = &r.error {
                    let _ = writeln!(out, "  error: {}", escape_controls(error));
                    continue;
                }
                let w = r.workload.as_ref();
                let id = &r.identity;
                let lowercase = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
                let rows = [
                    ("cgroup", r.cgroup.clone()),
                    ("kind", w.map(|w| w.kind.as_str().to_owned())),
                    ("attribution", w.map(|w| lowercase(&w.attribution))),
                    ("runtime", id.runtime.map(|v| lowercase(&v))),
                    ("container_id", id.container_id.clone()),
                    ("pod_uid", id.pod_uid.clone()),
                    ("qos", id.qos.map(|v| lowercase(&v))),
                    ("namespace", id.namespace.clone()),
                    ("pod", id.pod.clone()),
                    ("container", id.container.clone()),
                ];
                for (label, value) in rows {
                    let _ = writeln!(out, "  {:<14}{}", format!("{label}:"), escape(value.as_deref().unwrap_or("-")));
                }
                if let Some(monitored) = w.and_then(|w| w.monitored.as_ref()) {
                    let name = monitored.container.as_deref().or(monitored.container_id.as_deref()).unwrap_or("?");
                    let _ = writeln!(
                        out,
                        "  monitor of:   {} (the victim is the runtime's monitor, not the container)",
                        escape(name)
                    );
                }
                if let Some(reason) = w.and_then(|w| w.partial_reason.as_deref()) {
                    let _ = writeln!(out, "  note:         {}", escape_controls(reason));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_event::{Attribution, Qos, Runtime, WorkloadKind};

    #[test]
    fn filesystem_paths_lose_their_mount_prefix() {
        assert_eq!(cgroup_of("/sys/fs/cgroup/memory/kubepods/pod1").map(|r| r.1), Ok("/kubepods/pod1".to_owned()));
        assert_eq!(cgroup_of("/sys/fs/cgroup/kubepods.slice").map(|r| r.1), Ok("/kubepods.slice".to_owned()));
        assert_eq!(cgroup_of("/sys/fs/cgroup").map(|r| r.1), Ok("/".to_owned()));
        assert_eq!(cgroup_of("/kubepods/x").map(|r| r.1), Ok("/kubepods/x".to_owned()));
        assert!(cgroup_of("4294967295").is_err());
    }

    /// The JSON scripts read: every identity key present (null when unknown),
    /// in this order, then the full workload object.
    #[tokio::test(flavor = "current_thread")]
    async fn json_keeps_every_identity_key() {
        let id = "a".repeat(64);
        let container = format!("/kubepods/burstable/pod0b8c1a9e-1111-4222-8333-944455556666/{id}");
        let targets = [container, "/system.slice/ssh.service".to_owned(), "4294967295".to_owned()];
        let mut results = run(&targets, Some(PathBuf::from("/nonexistent/cri.sock")), Duration::from_millis(50)).await;
        let mut named = WorkloadInfo::new(WorkloadKind::Container, Attribution::Full);
        named.identity.runtime = Some(Runtime::Containerd);
        named.identity.container_id = Some("b".repeat(64));
        named.identity.pod_uid = Some("uid-1".to_owned());
        named.identity.qos = Some(Qos::Guaranteed);
        named.identity.namespace = Some("ns".to_owned());
        named.identity.pod = Some("web".to_owned());
        named.identity.container = Some("app".to_owned());
        named.image = Some("img:1".to_owned());
        named.restart_count = Some(2);
        named.kube_system = Some(false);
        named.sandbox = Some(false);
        named.main_process = Some(true);
        results.push(WhoisResult::resolved("42", Some(42), "/kubepods/podx/y".to_owned(), named));
        let json = render(&results, OutputFormat::Json).expect("renders");
        let expected = [
            format!(
                r#"{{"target":"/kubepods/burstable/pod0b8c1a9e-1111-4222-8333-944455556666/{id}","pid":null,"cgroup":"/kubepods/burstable/pod0b8c1a9e-1111-4222-8333-944455556666/{id}","runtime":null,"container_id":"{id}","pod_uid":"0b8c1a9e-1111-4222-8333-944455556666","qos":"burstable","namespace":null,"pod":null,"container":null,"workload":{{"kind":"container","attribution":"partial","container_id":"{id}","pod_uid":"0b8c1a9e-1111-4222-8333-944455556666","qos":"burstable","partial_reason":"no CRI socket at /nonexistent/cri.sock (is containerd or CRI-O running? set --cri-socket)"}}}}"#
            ),
            r#"{"target":"/system.slice/ssh.service","pid":null,"cgroup":"/system.slice/ssh.service","runtime":null,"container_id":null,"pod_uid":null,"qos":null,"namespace":null,"pod":null,"container":null,"workload":{"kind":"system_service","attribution":"host","unit":"ssh.service"}}"#.to_owned(),
            r#"{"target":"4294967295","pid":null,"cgroup":null,"runtime":null,"container_id":null,"pod_uid":null,"qos":null,"namespace":null,"pod":null,"container":null,"error":"no process 4294967295 (/proc/4294967295/cgroup: No such file or directory (os error 2))"}"#.to_owned(),
            format!(
                r#"{{"target":"42","pid":42,"cgroup":"/kubepods/podx/y","runtime":"containerd","container_id":"{b}","pod_uid":"uid-1","qos":"guaranteed","namespace":"ns","pod":"web","container":"app","workload":{{"kind":"container","attribution":"full","runtime":"containerd","container_id":"{b}","pod_uid":"uid-1","qos":"guaranteed","namespace":"ns","pod":"web","container":"app","image":"img:1","restart_count":2,"kube_system":false,"sandbox":false,"main_process":true}}}}"#,
                b = "b".repeat(64)
            ),
        ];
        assert_eq!(json.lines().collect::<Vec<_>>(), expected);
    }

    /// A cgroup named to attack the terminal is shown escaped in the table,
    /// raw (JSON-escaped) in the JSON.
    #[tokio::test(flavor = "current_thread")]
    async fn the_table_escapes_names_the_json_keeps_them() {
        let targets = ["/system.slice/a\u{1b}]0;pwn\u{7}.service".to_owned()];
        let results = run(&targets, Some(PathBuf::from("/nonexistent/cri.sock")), Duration::from_millis(50)).await;
        let table = render(&results, OutputFormat::Table).expect("renders");
        assert!(!table.contains(['\u{1b}', '\u{7}']), "{table:?}");
        assert!(table.starts_with("/system.slice/a\\x1b]0;pwn\\x07.service:\n"), "{table}");
        assert!(table.contains("\n  cgroup:       /system.slice/a\\x1b]0;pwn\\x07.service\n"), "{table}");
        let json = render(&results, OutputFormat::Json).expect("renders");
        assert!(json.contains(r#""cgroup":"/system.slice/a\u001b]0;pwn\u0007.service""#), "{json}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_table_shows_every_identity_row() {
        let id = "a".repeat(64);
        let container = format!("/kubepods/burstable/pod0b8c1a9e-1111-4222-8333-944455556666/{id}");
        let targets = [container.clone(), "/".to_owned(), "4294967295".to_owned()];
        let results = run(&targets, Some(PathBuf::from("/nonexistent/cri.sock")), Duration::from_millis(50)).await;
        let table = render(&results, OutputFormat::Table).expect("renders");
        let expected = format!(
            "{container}:
  cgroup:       {container}
  kind:         container
  attribution:  partial
  runtime:      -
  container_id: {id}
  pod_uid:      0b8c1a9e-1111-4222-8333-944455556666
  qos:          burstable
  namespace:    -
  pod:          -
  container:    -
  note:         no CRI socket at /nonexistent/cri.sock (is containerd or CRI-O running? set --cri-socket)
/:
  cgroup:       /
  kind:         host
  attribution:  host
  runtime:      -
  container_id: -
  pod_uid:      -
  qos:          -
  namespace:    -
  pod:          -
  container:    -
4294967295:
  error: no process 4294967295 (/proc/4294967295/cgroup: No such file or directory (os error 2))
"
        );
        assert_eq!(table, expected);
    }
}
