//! A typed view of what oomtrace prints: the NDJSON event of `live -o json`
//! (and of the daemon's stdout) and the JSON of `whois -o json`. An oracle
//! written from the documented output, not oomtrace's own types: a field the
//! output leaves out is `None` here.

use std::{fmt, sync::OnceLock};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Deserialize;

/// The JSON Schema every event line must meet, as committed (`cargo xtask
/// schema` writes it from oomtrace-event's types).
const EVENT_SCHEMA: &str = include_str!("../../docs/event.schema.json");

/// The schema's definition of each record `kind` (its root is any of them).
const KIND_DEFINITIONS: [(&str, &str); 3] =
    [("oom_kill", "OomEvent"), ("warning", "Warning"), ("oom_kernel_report", "KernelReportRecord")];

/// Checks `record` against [`EVENT_SCHEMA`]'s definition for its `kind` (so
/// that a violation is named, not lost in "none of anyOf"); the error lists
/// every violation with where in the record it is.
pub fn conforms(record: &serde_json::Value) -> Result<()> {
    type Validators = Result<Vec<(&'static str, jsonschema::Validator)>, String>;
    static VALIDATORS: OnceLock<Validators> = OnceLock::new();
    let validators = VALIDATORS
        .get_or_init(|| {
            let schema: serde_json::Value = serde_json::from_str(EVENT_SCHEMA).map_err(|e| e.to_string())?;
            KIND_DEFINITIONS
                .iter()
                .map(|(kind, definition)| {
                    let mut one = schema.clone();
                    if let Some(object) = one.as_object_mut() {
                        object.remove("anyOf");
                        object.insert("$ref".to_owned(), format!("#/$defs/{definition}").into());
                    }
                    let validator = jsonschema::options().should_validate_formats(true).build(&one);
                    validator.map(|v| (*kind, v)).map_err(|e| e.to_string())
                })
                .collect()
        })
        .as_ref()
        .map_err(|error| anyhow!("docs/event.schema.json is not a valid schema: {error}"))?;
    let kind = record.get("kind").and_then(serde_json::Value::as_str).unwrap_or_default();
    let Some((_, validator)) = validators.iter().find(|(k, _)| *k == kind) else {
        bail!("at \"/kind\": {kind:?} is not a record kind of docs/event.schema.json");
    };
    let violations: Vec<String> = validator
        .iter_errors(record)
        .map(|error| format!("at {:?}: {error}", error.instance_path().to_string()))
        .collect();
    if violations.is_empty() { Ok(()) } else { bail!("{}", violations.join("; ")) }
}

/// One NDJSON line as a record of type `T` (`what`, e.g. "a warning", names
/// it in errors), once it is JSON that meets [`EVENT_SCHEMA`] ([`conforms`]).
pub(crate) fn parse_checked<T: serde::de::DeserializeOwned>(line: &str, what: &str) -> Result<T> {
    let value: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("{what} that is not JSON: {line}"))?;
    conforms(&value).with_context(|| format!("{what} that breaks docs/event.schema.json: {line}"))?;
    serde_json::from_value(value).with_context(|| format!("not {what}: {line}"))
}

/// Why a kill was not warned (`not_warned`).
#[derive(Clone, Debug, Deserialize)]
pub struct NotWarned {
    pub reason: String,
    pub rise_seconds: Option<f64>,
}

/// One OOM event.
#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    /// RFC 3339; absent only for a kernel-log event from a log without wall-clock times.
    pub time: Option<String>,
    /// `ebpf` or `kernel_log`.
    pub source: String,
    pub kernel_log: Option<KernelLog>,
    /// Absent (0 here) only for a kernel-log event whose log kept no kernel timestamps.
    #[serde(default)]
    pub ktime_ns: u64,
    pub oom_id: Option<u64>,
    pub killed: Option<bool>,
    pub group_kill: Option<bool>,
    /// `memcg`, `global`, ...
    pub scope: Option<String>,
    /// `oom_control` or `inferred`.
    pub scope_source: Option<String>,
    /// With scope `unknown`: `walk_depth_limit` or `memcg_unreadable`.
    pub scope_unknown_reason: Option<String>,
    pub victim: Victim,
    pub victim_cgroup: Option<Cgroup>,
    pub oom_cgroup: Option<OomCgroup>,
    pub oom_totalpages: Option<u64>,
    pub chosen_points: Option<i64>,
    pub gfp_mask: Option<String>,
    pub order: Option<i64>,
    /// Absent only for a kernel-log event whose report header was not logged.
    pub trigger: Option<Trigger>,
    pub kernel_report: Option<KernelReport>,
    pub diagnosis: Option<Diagnosis>,
    /// Seconds from the first warning of the OOMing cgroup to this kill.
    pub warned_seconds_before: Option<f64>,
    /// Why it was not warned.
    pub not_warned: Option<NotWarned>,
    pub node: Option<String>,
    pub workload: Option<Workload>,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub unavailable: Vec<String>,
    /// The line as printed, for messages.
    #[serde(skip)]
    pub line: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Victim {
    pub pid: u32,
    pub tgid: Option<u32>,
    pub comm: Option<String>,
    pub uid: Option<u32>,
    pub oom_score_adj: Option<i64>,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Trigger {
    /// Absent for a kernel-log event whose report lost its `CPU:` line.
    pub pid: Option<u32>,
    /// Absent for a kernel-log event.
    pub tgid: Option<u32>,
    pub comm: String,
}

/// Why the kill happened.
#[derive(Clone, Debug, Deserialize)]
pub struct Diagnosis {
    pub cause: String,
    #[serde(default)]
    pub missing: Vec<String>,
    /// Each finding: `kind` and its evidence.
    #[serde(default)]
    pub findings: Vec<serde_json::Value>,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub advice: Vec<Advice>,
}

impl Diagnosis {
    /// The finding of `kind`, with its evidence.
    pub fn finding(&self, kind: &str) -> Option<&serde_json::Value> {
        self.findings.iter().find(|f| f["kind"] == kind)
    }
}

/// One step of a diagnosis' advice.
#[derive(Clone, Debug, Deserialize)]
pub struct Advice {
    pub action: String,
    pub text: String,
    pub command: Option<String>,
}

/// The controller owning a pod, as the event names it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Owner {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub guessed: bool,
}

/// Which kernel log a `kernel_log` event came from.
#[derive(Clone, Debug, Deserialize)]
pub struct KernelLog {
    /// `kmsg`, `journal` or `file`.
    pub from: String,
    pub seq: Option<u64>,
    pub full_report: bool,
}

/// The kernel OOM report's memory.stat and largest tasks.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct KernelReport {
    pub memory_stat_cgroup: Option<String>,
    #[serde(default)]
    pub memory_stat: std::collections::BTreeMap<String, u64>,
    #[serde(default)]
    pub largest_tasks: Vec<ReportTask>,
    pub tasks_listed: Option<usize>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ReportTask {
    pub pid: u32,
    pub comm: String,
    pub rss_kb: u64,
    pub oom_score_adj: Option<i64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Cgroup {
    /// 0 when unknown (kernel-log events name cgroups by path).
    #[serde(default)]
    pub id: u64,
    pub path: Option<String>,
    /// The kernel captured only the lower part of the path.
    pub path_truncated: Option<bool>,
}

/// The cgroup whose limit the OOM ran against.
#[derive(Clone, Debug, Deserialize)]
pub struct OomCgroup {
    #[serde(flatten)]
    pub cgroup: Cgroup,
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
}

/// What the event says about the workload the victim belongs to.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Workload {
    /// `container`, `system_service`, ...
    pub kind: Option<String>,
    /// `full`, `partial`, `host`, ...
    pub attribution: Option<String>,
    pub runtime: Option<String>,
    pub container_id: Option<String>,
    pub pod_uid: Option<String>,
    pub qos: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub image: Option<String>,
    pub restart_count: Option<u32>,
    pub started_at: Option<String>,
    pub owner: Option<Owner>,
    pub kube_system: Option<bool>,
    pub sandbox: Option<bool>,
    pub main_process: Option<bool>,
    pub unit: Option<String>,
    pub partial_reason: Option<String>,
    /// With kind `container_monitor`: the container the monitor watches.
    pub monitored: Option<Monitored>,
    /// With kind `nomad_task`.
    pub alloc_id: Option<String>,
    pub task: Option<String>,
}

/// The container a runtime monitor (conmon, ...) watches.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Monitored {
    pub container_id: Option<String>,
    pub container: Option<String>,
    pub sandbox: Option<bool>,
}

impl Event {
    /// The trigger of an event that must have one (every eBPF event has); panics otherwise.
    pub fn trigger(&self) -> &Trigger {
        self.trigger.as_ref().unwrap_or_else(|| panic!("the event has no trigger: {}", self.line))
    }

    /// The diagnosis' cause.
    pub fn cause(&self) -> Option<&str> {
        self.diagnosis.as_ref().map(|d| d.cause.as_str())
    }

    /// Whether the diagnosis has a finding of `kind`.
    pub fn has_finding(&self, kind: &str) -> bool {
        self.finding(kind).is_some()
    }

    /// The diagnosis' finding of `kind`, with its evidence.
    pub fn finding(&self, kind: &str) -> Option<&serde_json::Value> {
        self.diagnosis.as_ref()?.finding(kind)
    }

    /// The diagnosis' advice step `action`.
    pub fn advice(&self, action: &str) -> Option<&Advice> {
        self.diagnosis.as_ref()?.advice.iter().find(|a| a.action == action)
    }

    /// Parses one NDJSON line, after checking it against the committed JSON
    /// Schema (docs/event.schema.json): a real event that breaks it fails
    /// the test that read it.
    pub fn parse(line: &str) -> Result<Event> {
        let mut event: Event = parse_checked(line, "an oomtrace event")?;
        event.line = line.to_owned();
        Ok(event)
    }

    /// `(victim pid, ktime_ns)` of an event line: a tracer's
    /// [`ParseLine`](crate::tracer::ParseLine) for oomtrace.
    pub fn victim_and_ktime(line: &str) -> Option<(u32, u64)> {
        #[derive(Deserialize)]
        struct Pid {
            pid: u32,
        }
        #[derive(Deserialize)]
        struct Minimal {
            victim: Pid,
            ktime_ns: u64,
        }
        let minimal: Minimal = serde_json::from_str(line).ok()?;
        Some((minimal.victim.pid, minimal.ktime_ns))
    }

    pub fn has_source(&self, source: &str) -> bool {
        self.sources.iter().any(|s| s == source)
    }

    pub fn is_unavailable(&self, field: &str) -> bool {
        self.unavailable.iter().any(|f| f == field)
    }

    pub fn victim_cgroup_path(&self) -> Option<&str> {
        self.victim_cgroup.as_ref()?.path.as_deref()
    }

    pub fn victim_cgroup_id(&self) -> Option<u64> {
        self.victim_cgroup.as_ref().map(|c| c.id)
    }

    pub fn oom_cgroup_id(&self) -> Option<u64> {
        self.oom_cgroup.as_ref().map(|c| c.cgroup.id)
    }

    pub fn oom_usage_bytes(&self) -> Option<u64> {
        self.oom_cgroup.as_ref()?.usage_bytes
    }

    pub fn oom_cgroup_path(&self) -> Option<&str> {
        self.oom_cgroup.as_ref()?.cgroup.path.as_deref()
    }

    pub fn oom_limit_bytes(&self) -> Option<u64> {
        self.oom_cgroup.as_ref()?.limit_bytes
    }

    /// The workload, or an empty one (every field `None`) when absent.
    pub fn workload(&self) -> Workload {
        self.workload.clone().unwrap_or_default()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// One result of `oomtrace whois -o json`: the names at the top level (the
/// fields an event's workload has), and the workload itself.
#[derive(Clone, Debug, Deserialize)]
pub struct Whois {
    #[serde(flatten)]
    pub names: Workload,
    pub workload: Option<Workload>,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"schema_version":3,"kind":"oom_kill","time":"2026-11-25T23:12:34.987994Z","source":"ebpf","ktime_ns":5000000000,"killed":true,"scope":"memcg","victim":{"pid":4242,"comm":"dd"},"victim_cgroup":{"id":7,"path":"/a/b"},"oom_cgroup":{"id":6,"path":"/a","limit_bytes":67108864},"trigger":{"pid":4242,"tgid":4242,"comm":"dd"},"sources":["tp_btf:mark_victim"]}"#;

    #[test]
    fn an_event_line_reads_as_typed_fields() {
        let event = Event::parse(LINE).expect("an event");
        assert_eq!((event.victim.pid, event.victim.comm.as_deref()), (4242, Some("dd")));
        assert_eq!(event.victim.tgid, None, "absent stays absent");
        assert_eq!((event.victim_cgroup_path(), event.oom_cgroup_path()), (Some("/a/b"), Some("/a")));
        assert_eq!(event.oom_limit_bytes(), Some(64 << 20));
        assert!(event.has_source("tp_btf:mark_victim") && event.unavailable.is_empty());
        assert_eq!(event.to_string(), LINE);
        assert_eq!(Event::victim_and_ktime(LINE), Some((4242, 5_000_000_000)));
    }

    #[test]
    fn an_event_that_breaks_the_schema_is_refused_with_the_reason() {
        for (from, to, reason) in [
            (r#""schema_version":3,"#, "", "schema_version"),
            (r#""kind":"oom_kill","#, "", "/kind"),
            (r#""scope":"memcg""#, r#""scope":"memory""#, "/scope"),
            ("34.987994Z", "34.98Z", "/time"),
        ] {
            let error = Event::parse(&LINE.replacen(from, to, 1)).expect_err("refused");
            assert!(format!("{error:#}").contains(reason), "{reason}: {error:#}");
        }
        assert_eq!(Event::victim_and_ktime("2025-01-01 INFO waiting for OOM kills"), None);
        assert_eq!(Event::victim_and_ktime(r#"{"ktime_ns":1}"#), None);
    }

    #[test]
    fn a_whois_result_has_its_names_at_the_top() {
        let json = r#"{"target":"42","pid":42,"cgroup":"/kubepods/x","runtime":"containerd","container_id":"abc","pod_uid":"u","qos":"burstable","namespace":"ns","pod":"p","container":"c","workload":{"kind":"container","attribution":"full","sandbox":false}}"#;
        let whois: Whois = serde_json::from_str(json).expect("a whois result");
        assert_eq!((whois.names.pod.as_deref(), whois.names.container.as_deref()), (Some("p"), Some("c")));
        assert_eq!(whois.names.kind, None, "the workload's kind is not at the top");
        assert_eq!(whois.workload.and_then(|w| w.sandbox), Some(false));
    }
}
