//! Prometheus metrics (prometheus-client): kills per container (or systemd
//! unit) with bounded label cardinality, the limit and usage at each one's last
//! kill, and self-metrics (lost, unattributed, exporter failures, attached
//! probes).
//!
//! Cardinality: the workload labels (namespace, pod, container, unit) take at
//! most `max_series` distinct sets, counted past that under `_overflow_` (and
//! in `oomtrace_label_overflow_total`); `scope` and `cause` are enums.

use std::{
    collections::HashSet,
    sync::{Mutex, atomic::AtomicU64},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::labels;
use crate::pipeline::PipelineStats;
use oomtrace_event::{EventSource, OomEvent, Warning, WarningState, WorkloadInfo};

/// Label value used once the series bound is reached.
const OVERFLOW: &str = "_overflow_";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KillLabels {
    #[prometheus(flatten)]
    workload: WorkloadLabels,
    /// `Scope::as_str`, `unknown` when not known.
    scope: String,
    /// `Cause::as_str`.
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    namespace: String,
    pod: String,
    container: String,
    /// The systemd unit of a kill outside pods (`export::labels::unit`).
    unit: String,
}

impl WorkloadLabels {
    fn of(event: &OomEvent) -> Self {
        Self::named(event.workload.as_ref(), labels::unit(event))
    }

    /// A warning's cgroup: its pod names, else its unit, else (a cgroup made
    /// by hand) its path as the unit; the node's are all empty.
    fn of_warning(warning: &Warning) -> Self {
        let unit = labels::unit_of(warning.workload.as_ref(), warning.cgroup.as_deref());
        let named = Self::named(warning.workload.as_ref(), unit);
        if named.pod.is_empty() && named.unit.is_empty() {
            return Self { unit: warning.cgroup.clone().unwrap_or_default(), ..named };
        }
        named
    }

    fn named(workload: Option<&WorkloadInfo>, unit: String) -> Self {
        let identity = workload.map(|w| &w.identity);
        let name = |v: Option<&String>| v.cloned().unwrap_or_default();
        Self {
            namespace: name(identity.and_then(|i| i.namespace.as_ref())),
            pod: name(identity.and_then(|i| i.pod.as_ref())),
            container: name(identity.and_then(|i| i.container.as_ref())),
            unit,
        }
    }

    fn overflow() -> Self {
        let overflow = || OVERFLOW.to_owned();
        Self { namespace: overflow(), pod: overflow(), container: overflow(), unit: overflow() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WarningLabels {
    #[prometheus(flatten)]
    workload: WorkloadLabels,
    /// `LimitLevel::as_str`.
    limit_level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WarningStateLabels {
    #[prometheus(flatten)]
    warned: WarningLabels,
    /// `WarningState::as_str`.
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExporterLabels {
    exporter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    role: String,
    program: String,
}

/// Totals reported by an exporter (absolute values).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExporterTotals {
    pub failures: u64,
    pub dropped: u64,
}

pub struct Metrics {
    registry: Registry,
    kills: Family<KillLabels, Counter>,
    log_kills: Family<KillLabels, Counter>,
    kernel_kills: Gauge,
    unreported: Gauge,
    last_limit: Family<WorkloadLabels, Gauge>,
    last_usage: Family<WorkloadLabels, Gauge>,
    lost: Family<ReasonLabels, Counter>,
    unattributed: Counter,
    log_unparsed: Counter,
    exporter_failures: Family<ExporterLabels, Counter>,
    exporter_dropped: Family<ExporterLabels, Counter>,
    probes: Family<ProbeLabels, Gauge>,
    label_overflow: Counter,
    warnings: Family<WarningStateLabels, Counter>,
    seconds_to_oom: Family<WarningLabels, Gauge<f64, AtomicU64>>,
    headroom: Family<WarningLabels, Gauge>,
    /// Label sets in use, bounded by `max_series`.
    series: Mutex<HashSet<WorkloadLabels>>,
    max_series: usize,
    /// Last absolute values folded into the counters above.
    seen: Mutex<PipelineStats>,
    seen_exporters: Mutex<Vec<(String, ExporterTotals)>>,
}

impl Metrics {
    pub fn new(max_series: usize) -> Self {
        let mut registry = Registry::with_prefix("oomtrace");
        let kills = Family::<KillLabels, Counter>::default();
        registry.register(
            "oom_kills",
            "OOM kills seen as they happened, by namespace, pod, container (or systemd unit), scope and cause",
            kills.clone(),
        );
        let log_kills = Family::<KillLabels, Counter>::default();
        registry.register(
            "kernel_log_oom_kills",
            "OOM kills found only in the kernel log: before the agent started (since boot) or missed by the probes",
            log_kills.clone(),
        );
        let kernel_kills = Gauge::default();
        registry.register(
            "kernel_oom_kills",
            "OOM kills the kernel counted since boot (oom_kill in /proc/vmstat)",
            kernel_kills.clone(),
        );
        let unreported = Gauge::default();
        registry.register(
            "kernel_oom_kills_unreported",
            "OOM kills the kernel counted since boot that no event reported (live or from the kernel log)",
            unreported.clone(),
        );
        let last_limit = Family::<WorkloadLabels, Gauge>::default();
        registry.register(
            "last_kill_limit_bytes",
            "Memory limit of the OOMing memcg at the container's (or unit's) last OOM kill",
            last_limit.clone(),
        );
        let last_usage = Family::<WorkloadLabels, Gauge>::default();
        registry.register(
            "last_kill_usage_bytes",
            "Memory usage of the OOMing memcg at the container's (or unit's) last OOM kill",
            last_usage.clone(),
        );
        let lost = Family::<ReasonLabels, Counter>::default();
        registry.register("events_lost", "OOM events lost, by reason", lost.clone());
        let unattributed = Counter::default();
        registry.register(
            "events_unattributed",
            "OOM events attributed from the cgroup path only (container runtime unreachable or unaware)",
            unattributed.clone(),
        );
        let log_unparsed = Counter::default();
        registry.register(
            "kernel_log_unparsed",
            "Kernel log lines that looked like part of an OOM report but were not understood",
            log_unparsed.clone(),
        );
        let exporter_failures = Family::<ExporterLabels, Counter>::default();
        registry.register("exporter_failures", "Failed export attempts, by exporter", exporter_failures.clone());
        let exporter_dropped = Family::<ExporterLabels, Counter>::default();
        registry.register(
            "exporter_dropped",
            "Events an exporter dropped because its queue was full",
            exporter_dropped.clone(),
        );
        let probes = Family::<ProbeLabels, Gauge>::default();
        registry.register("probe_attached", "eBPF programs attached (1), by role", probes.clone());
        let label_overflow = Counter::default();
        registry.register(
            "label_overflow",
            "Kills counted under the _overflow_ labels because the series bound was reached",
            label_overflow.clone(),
        );
        let warnings = Family::<WarningStateLabels, Counter>::default();
        registry.register(
            "oom_warnings",
            "Warnings before OOM kills (docs/warnings.md), by workload, limit level and state (warning, imminent, recovered)",
            warnings.clone(),
        );
        let seconds_to_oom = Family::<WarningLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "seconds_to_oom",
            "Time left before the limit is hit if the trend holds, for each cgroup warned now (removed when it recovers)",
            seconds_to_oom.clone(),
        );
        let headroom = Family::<WarningLabels, Gauge>::default();
        registry.register(
            "oom_headroom_bytes",
            "Limit minus the memory reclaim cannot give back, for each cgroup warned now (removed when it recovers)",
            headroom.clone(),
        );
        Self {
            registry,
            warnings,
            seconds_to_oom,
            headroom,
            kills,
            log_kills,
            kernel_kills,
            unreported,
            last_limit,
            last_usage,
            lost,
            unattributed,
            log_unparsed,
            exporter_failures,
            exporter_dropped,
            probes,
            label_overflow,
            series: Mutex::new(HashSet::new()),
            max_series: max_series.max(1),
            seen: Mutex::new(PipelineStats::default()),
            seen_exporters: Mutex::new(Vec::new()),
        }
    }

    /// Marks a program as attached in `role` (victim, context, kill_confirmation).
    pub fn probe_attached(&self, role: &str, program: &str) {
        self.probes.get_or_create(&ProbeLabels { role: role.to_owned(), program: program.to_owned() }).set(1);
    }

    /// Counts one kill.
    pub fn record(&self, event: &OomEvent) {
        let labels = self.bounded(WorkloadLabels::of(event));
        let kills = match event.source {
            EventSource::Ebpf => &self.kills,
            EventSource::KernelLog => &self.log_kills,
        };
        kills
            .get_or_create(&KillLabels {
                workload: labels.clone(),
                scope: event.scope.map_or("unknown", |s| s.as_str()).to_owned(),
                cause: labels::cause(event).to_owned(),
            })
            .inc();
        if let Some(oom) = &event.oom_cgroup {
            if let Some(limit) = oom.limit_bytes {
                self.last_limit.get_or_create(&labels).set(i64::try_from(limit).unwrap_or(i64::MAX));
            }
            if let Some(usage) = oom.usage_bytes {
                self.last_usage.get_or_create(&labels).set(i64::try_from(usage).unwrap_or(i64::MAX));
            }
        }
    }

    /// Counts one warning; while a cgroup is warned, its time to OOM and
    /// headroom are gauges (removed when it recovers).
    pub fn record_warning(&self, warning: &Warning) {
        let labels = WarningLabels {
            workload: self.bounded(WorkloadLabels::of_warning(warning)),
            limit_level: warning.limit_level.as_str().to_owned(),
        };
        self.warnings
            .get_or_create(&WarningStateLabels { warned: labels.clone(), state: warning.state.as_str().to_owned() })
            .inc();
        match warning.state {
            WarningState::Recovered => {
                self.seconds_to_oom.remove(&labels);
                self.headroom.remove(&labels);
            }
            WarningState::Warning | WarningState::Imminent => {
                self.seconds_to_oom.get_or_create(&labels).set(warning.seconds_left.unwrap_or(0.0));
                let headroom = warning.limit_bytes.saturating_sub(warning.unreclaimable_bytes);
                self.headroom.get_or_create(&labels).set(i64::try_from(headroom).unwrap_or(i64::MAX));
            }
        }
    }

    /// `labels` if it is in use or the bound leaves room for it, else the
    /// `_overflow_` set (counted).
    fn bounded(&self, labels: WorkloadLabels) -> WorkloadLabels {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if series.contains(&labels) {
            return labels;
        }
        if series.len() >= self.max_series {
            self.label_overflow.inc();
            return WorkloadLabels::overflow();
        }
        series.insert(labels.clone());
        labels
    }

    /// The kernel's count of kills since boot.
    pub fn update_kernel_count(&self, counted: u64) {
        self.kernel_kills.set(i64::try_from(counted).unwrap_or(i64::MAX));
    }

    /// How many of the kernel's kills since boot no event reported.
    pub fn update_unreported(&self, unreported: u64) {
        self.unreported.set(i64::try_from(unreported).unwrap_or(i64::MAX));
    }

    /// Folds the pipeline's absolute counters into the Prometheus counters.
    pub fn update_pipeline(&self, now: PipelineStats) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let delta = |new: u64, old: u64| new.saturating_sub(old);
        self.lost
            .get_or_create(&ReasonLabels { reason: "ringbuf_full".to_owned() })
            .inc_by(delta(now.lost_ringbuf_full, seen.lost_ringbuf_full));
        self.lost
            .get_or_create(&ReasonLabels { reason: "undecodable".to_owned() })
            .inc_by(delta(now.undecodable, seen.undecodable));
        self.unattributed.inc_by(delta(now.partially_attributed, seen.partially_attributed));
        self.log_unparsed.inc_by(delta(now.kernel_log_unparsed, seen.kernel_log_unparsed));
        *seen = now;
    }

    /// Folds an exporter's absolute failure/drop totals in.
    pub fn update_exporter(&self, exporter: &str, now: ExporterTotals) {
        let mut seen = self.seen_exporters.lock().unwrap_or_else(|p| p.into_inner());
        let index = match seen.iter().position(|(name, _)| name == exporter) {
            Some(i) => i,
            None => {
                seen.push((exporter.to_owned(), ExporterTotals::default()));
                seen.len() - 1
            }
        };
        let old = seen[index].1;
        let labels = ExporterLabels { exporter: exporter.to_owned() };
        self.exporter_failures.get_or_create(&labels).inc_by(now.failures.saturating_sub(old.failures));
        self.exporter_dropped.get_or_create(&labels).inc_by(now.dropped.saturating_sub(old.dropped));
        seen[index].1 = now;
    }

    /// The text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis;
    use oomtrace_event::{Attribution, Cgroup, OomCgroup, Scope, Trigger, Victim, WorkloadInfo, WorkloadKind};

    /// A container kill at its own limit, diagnosed.
    fn event(pod: &str) -> OomEvent {
        let path = format!("/kubepods/burstable/pod4eef3118-9623-43e2-a006-c34d3a41d2fc/{:064x}", pod.len());
        let mut workload = WorkloadInfo::new(WorkloadKind::Container, Attribution::Full);
        workload.identity.namespace = Some("ns".into());
        workload.identity.pod = Some(pod.into());
        workload.identity.container = Some("c".into());
        let cgroup = Cgroup { path: Some(path), ..Cgroup::default() };
        diagnosed(OomEvent {
            killed: Some(true),
            scope: Some(Scope::Memcg),
            victim_cgroup: Some(cgroup.clone()),
            oom_cgroup: Some(OomCgroup { cgroup, usage_bytes: Some(10), limit_bytes: Some(64 << 20) }),
            trigger: Some(Trigger::default()),
            workload: Some(workload),
            ..OomEvent::of_victim(Victim::default())
        })
    }

    /// A kill of a system service at its unit's limit.
    fn service_event(unit: &str) -> OomEvent {
        let mut workload = WorkloadInfo::new(WorkloadKind::SystemService, Attribution::Host);
        workload.unit = Some(unit.to_owned());
        let cgroup = Cgroup { path: Some(format!("/system.slice/{unit}")), ..Cgroup::default() };
        diagnosed(OomEvent {
            scope: Some(Scope::Memcg),
            victim_cgroup: Some(cgroup.clone()),
            oom_cgroup: Some(OomCgroup { cgroup, usage_bytes: Some(10), limit_bytes: Some(1 << 30) }),
            workload: Some(workload),
            ..OomEvent::of_victim(Victim::default())
        })
    }

    fn diagnosed(mut event: OomEvent) -> OomEvent {
        event.diagnosis = Some(diagnosis::diagnose(&event));
        event
    }

    #[test]
    fn kills_are_counted_per_container_and_cardinality_is_bounded() {
        let metrics = Metrics::new(2);
        metrics.record(&event("a"));
        metrics.record(&event("a"));
        metrics.record(&event("b"));
        metrics.record(&event("c"));
        let text = metrics.encode().expect("encode");
        assert!(
            text.contains(
                r#"oomtrace_oom_kills_total{namespace="ns",pod="a",container="c",unit="",scope="memcg",cause="container_limit"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"pod="b""#));
        assert!(!text.contains(r#"pod="c""#), "third series must overflow: {text}");
        assert!(text.contains(r#"pod="_overflow_",container="_overflow_",unit="_overflow_""#), "{text}");
        assert!(text.contains("oomtrace_label_overflow_total 1"));
        assert!(
            text.contains(r#"oomtrace_last_kill_limit_bytes{namespace="ns",pod="a",container="c",unit=""} 67108864"#),
            "{text}"
        );
    }

    /// Host kills are told apart by unit, and units share the pods' bound.
    #[test]
    fn host_kills_are_counted_per_unit_within_the_same_bound() {
        let metrics = Metrics::new(2);
        metrics.record(&service_event("kubelet.service"));
        metrics.record(&service_event("containerd.service"));
        metrics.record(&service_event("containerd.service"));
        metrics.record(&event("a"));
        let text = metrics.encode().expect("encode");
        let series = |unit: &str| {
            format!(
                r#"oomtrace_oom_kills_total{{namespace="",pod="",container="",unit="{unit}",scope="memcg",cause="cgroup_limit"}}"#
            )
        };
        assert!(text.contains(&format!("{} 1", series("kubelet.service"))), "{text}");
        assert!(text.contains(&format!("{} 2", series("containerd.service"))), "{text}");
        assert!(!text.contains(r#"pod="a""#), "the pod is past the bound of 2: {text}");
        assert!(text.contains("oomtrace_label_overflow_total 1"), "{text}");
    }

    /// An event without a diagnosis (or without a scope) still counts, as
    /// `unknown`.
    #[test]
    fn missing_facts_are_labelled_unknown() {
        let metrics = Metrics::new(10);
        let mut event = event("a");
        event.diagnosis = None;
        event.scope = None;
        metrics.record(&event);
        let text = metrics.encode().expect("encode");
        assert!(text.contains(r#"scope="unknown",cause="unknown"} 1"#), "{text}");
    }

    #[test]
    fn absolute_totals_become_monotonic_counters() {
        let metrics = Metrics::new(10);
        metrics.update_pipeline(PipelineStats { lost_ringbuf_full: 3, ..PipelineStats::default() });
        metrics.update_pipeline(PipelineStats { lost_ringbuf_full: 5, ..PipelineStats::default() });
        metrics.update_exporter("otlp", ExporterTotals { failures: 2, dropped: 0 });
        metrics.update_exporter("otlp", ExporterTotals { failures: 7, dropped: 1 });
        let text = metrics.encode().expect("encode");
        assert!(text.contains(r#"oomtrace_events_lost_total{reason="ringbuf_full"} 5"#), "{text}");
        assert!(text.contains(r#"oomtrace_exporter_failures_total{exporter="otlp"} 7"#), "{text}");
        assert!(text.contains(r#"oomtrace_exporter_dropped_total{exporter="otlp"} 1"#), "{text}");
    }
}
