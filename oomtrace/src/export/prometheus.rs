//! Prometheus metrics (prometheus-client): kills per container (or systemd
//! unit) with bounded label cardinality, the limit and usage at each one's last
//! kill, warnings, the headroom and time to OOM of every watched cgroup, and
//! self-metrics (lost, unattributed, exporter failures, attached probes, the
//! watcher's counters).
//!
//! Cardinality: the workload labels (namespace, pod, container, unit) of
//! kills and warnings take at most `max_series` distinct sets, counted past
//! that under `_overflow_` (and in `oomtrace_label_overflow_total`); `scope`
//! and `cause` are enums. The gauges of watched cgroups hold at most
//! `max_series` series at a time: those closest to OOM, the others counted in
//! `oomtrace_watch_cgroups_unexported`.

use std::{
    cmp::Ordering,
    collections::HashSet,
    sync::{Mutex, atomic::AtomicU64},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Metric, Registry},
};

use super::labels;
use crate::{forecast::Outlook, pipeline::PipelineStats, watch::WatchStats};
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

    fn of_warning(warning: &Warning) -> Self {
        Self::of_cgroup(warning.workload.as_ref(), warning.cgroup.as_deref())
    }

    /// A watched cgroup (a warning's, a gauge's) with its `workload`: its pod
    /// names, else its unit, else (a cgroup made by hand) its path as the
    /// unit; the node's (no path) are all empty.
    fn of_cgroup(workload: Option<&WorkloadInfo>, cgroup: Option<&str>) -> Self {
        let named = Self::named(workload, labels::unit_of(workload, cgroup));
        if named.pod.is_empty() && named.unit.is_empty() {
            return Self { unit: cgroup.unwrap_or_default().to_owned(), ..named };
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

/// A watched cgroup (or the node) as the gauges see it: the forecast's
/// outlook and the workload it is attributed to, as its warnings are.
#[derive(Clone, Debug)]
pub struct Gauged {
    pub outlook: Outlook,
    /// `None` for the node.
    pub workload: Option<WorkloadInfo>,
}

/// Totals reported by an exporter (absolute values).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExporterTotals {
    pub failures: u64,
    pub dropped: u64,
    /// Events waiting in the exporter's queue now (a level, not a total).
    pub queued: u64,
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
    exporter_queued: Family<ExporterLabels, Gauge>,
    probes: Family<ProbeLabels, Gauge>,
    label_overflow: Counter,
    warnings: Family<WarningStateLabels, Counter>,
    seconds_to_oom: Family<WarningLabels, Gauge<f64, AtomicU64>>,
    headroom: Family<WarningLabels, Gauge>,
    /// The label sets of the gauges above, at most `max_series`.
    gauged: Mutex<HashSet<WarningLabels>>,
    unexported: Gauge,
    watch_cgroups: Gauge,
    watch_scans: Counter,
    watch_usage_reads: Counter,
    watch_stat_reads: Counter,
    watch_read_errors: Counter,
    /// Label sets in use, bounded by `max_series`.
    series: Mutex<HashSet<WorkloadLabels>>,
    max_series: usize,
    /// Last absolute values folded into the counters above.
    seen: Mutex<PipelineStats>,
    seen_exporters: Mutex<Vec<(String, ExporterTotals)>>,
    seen_watch: Mutex<WatchStats>,
}

impl Metrics {
    pub fn new(max_series: usize) -> Self {
        let mut registry = Registry::with_prefix("oomtrace");
        let r = &mut registry;
        Self {
            kills: registered(
                r,
                "oom_kills",
                "OOM kills seen as they happened, by namespace, pod, container (or systemd unit), scope and cause",
            ),
            log_kills: registered(
                r,
                "kernel_log_oom_kills",
                "OOM kills found only in the kernel log: before the agent started (since boot) or missed by the probes",
            ),
            kernel_kills: registered(
                r,
                "kernel_oom_kills",
                "OOM kills the kernel counted since boot (oom_kill in /proc/vmstat)",
            ),
            unreported: registered(
                r,
                "kernel_oom_kills_unreported",
                "OOM kills the kernel counted since boot that no event reported (live or from the kernel log)",
            ),
            last_limit: registered(
                r,
                "last_kill_limit_bytes",
                "Memory limit of the OOMing memcg at the container's (or unit's) last OOM kill",
            ),
            last_usage: registered(
                r,
                "last_kill_usage_bytes",
                "Memory usage of the OOMing memcg at the container's (or unit's) last OOM kill",
            ),
            lost: registered(r, "events_lost", "OOM events lost, by reason"),
            unattributed: registered(
                r,
                "events_unattributed",
                "OOM events attributed from the cgroup path only (container runtime unreachable or unaware)",
            ),
            log_unparsed: registered(
                r,
                "kernel_log_unparsed",
                "Kernel log lines that looked like part of an OOM report but were not understood",
            ),
            exporter_failures: registered(r, "exporter_failures", "Failed export attempts, by exporter"),
            exporter_dropped: registered(
                r,
                "exporter_dropped",
                "Events an exporter dropped because its queue was full",
            ),
            exporter_queued: registered(
                r,
                "exporter_queued",
                "Events an exporter has not delivered yet (queued, or in a request not answered), by exporter",
            ),
            probes: registered(r, "probe_attached", "eBPF programs attached (1), by role"),
            label_overflow: registered(
                r,
                "label_overflow",
                "Kills counted under the _overflow_ labels because the series bound was reached",
            ),
            warnings: registered(
                r,
                "oom_warnings",
                "Warnings before OOM kills (docs/warnings.md), by workload, limit level and state (warning, imminent, recovered)",
            ),
            seconds_to_oom: registered(
                r,
                "seconds_to_oom",
                "Time left before the limit is hit if the climb holds, for each watched cgroup climbing now (absent without a climb)",
            ),
            headroom: registered(
                r,
                "oom_headroom_bytes",
                "Limit minus the memory reclaim cannot give back, for each watched cgroup and the node",
            ),
            unexported: registered(
                r,
                "watch_cgroups_unexported",
                "Watched cgroups without headroom and time-to-OOM series: beyond max_label_series, farther from OOM than those kept",
            ),
            watch_cgroups: registered(r, "watch_cgroups", "Memory cgroups with a limit under watch (the node apart)"),
            watch_scans: registered(r, "watch_scans", "Scans of the memory cgroup hierarchy for cgroups with a limit"),
            watch_usage_reads: registered(r, "watch_usage_reads", "Reads of a watched cgroup's usage"),
            watch_stat_reads: registered(r, "watch_stat_reads", "Reads of a watched cgroup's memory.stat"),
            watch_read_errors: registered(
                r,
                "watch_read_errors",
                "Reads of a watched cgroup's files that failed for another reason than the cgroup being removed (the cgroup is not predicted meanwhile)",
            ),
            gauged: Mutex::new(HashSet::new()),
            series: Mutex::new(HashSet::new()),
            max_series: max_series.max(1),
            seen: Mutex::new(PipelineStats::default()),
            seen_exporters: Mutex::new(Vec::new()),
            seen_watch: Mutex::new(WatchStats::default()),
            registry,
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

    /// Counts one warning. (The warned cgroup's gauges are those of every
    /// watched cgroup: [`Metrics::update_outlooks`].)
    pub fn record_warning(&self, warning: &Warning) {
        let labels = WarningLabels {
            workload: self.bounded(WorkloadLabels::of_warning(warning)),
            limit_level: warning.limit_level.as_str().to_owned(),
        };
        self.warnings
            .get_or_create(&WarningStateLabels { warned: labels, state: warning.state.as_str().to_owned() })
            .inc();
    }

    /// The gauges of every watched cgroup (and the node), labelled as their
    /// warnings are: the headroom of each, the time to OOM of each with a
    /// climb (none without). At most `max_series` series: the cgroups closest
    /// to OOM ([`closer_to_oom`]) are kept, the others counted as unexported.
    /// Two cgroups with the same labels share a series: the closer one's.
    /// Series of cgroups no longer watched, or no longer kept, are removed.
    pub fn update_outlooks(&self, watched: &[Gauged]) {
        let mut ranked: Vec<&Gauged> = watched.iter().collect();
        ranked.sort_by(|a, b| closer_to_oom(&a.outlook, &b.outlook));
        let mut kept = HashSet::new();
        let mut unexported = 0_i64;
        for gauged in ranked {
            let outlook = &gauged.outlook;
            let labels = WarningLabels {
                workload: WorkloadLabels::of_cgroup(gauged.workload.as_ref(), outlook.watched.cgroup()),
                limit_level: outlook.level.as_str().to_owned(),
            };
            if kept.contains(&labels) {
                continue;
            }
            if kept.len() >= self.max_series {
                unexported += 1;
                continue;
            }
            self.headroom.get_or_create(&labels).set(i64::try_from(outlook.headroom_bytes()).unwrap_or(i64::MAX));
            match outlook.seconds_left {
                Some(seconds) => {
                    self.seconds_to_oom.get_or_create(&labels).set(seconds);
                }
                None => {
                    self.seconds_to_oom.remove(&labels);
                }
            }
            kept.insert(labels);
        }
        let mut gauged = self.gauged.lock().unwrap_or_else(|p| p.into_inner());
        for gone in gauged.difference(&kept) {
            self.headroom.remove(gone);
            self.seconds_to_oom.remove(gone);
        }
        *gauged = kept;
        self.unexported.set(unexported);
    }

    /// Folds the watcher's absolute counters into the Prometheus metrics.
    pub fn update_watch(&self, now: WatchStats) {
        let mut seen = self.seen_watch.lock().unwrap_or_else(|p| p.into_inner());
        self.watch_cgroups.set(i64::try_from(now.watched).unwrap_or(i64::MAX));
        self.watch_scans.inc_by(now.scans.saturating_sub(seen.scans));
        self.watch_usage_reads.inc_by(now.usage_reads.saturating_sub(seen.usage_reads));
        self.watch_stat_reads.inc_by(now.stat_reads.saturating_sub(seen.stat_reads));
        self.watch_read_errors.inc_by(now.read_errors.saturating_sub(seen.read_errors));
        *seen = now;
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
        self.exporter_queued.get_or_create(&labels).set(i64::try_from(now.queued).unwrap_or(i64::MAX));
        seen[index].1 = now;
    }

    /// The text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// A new metric, registered in `registry` as `oomtrace_<name>` with `help`.
fn registered<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

/// The order in which the gauges' bound keeps cgroups: those warned now
/// first (imminent, then warning), then the least time left (none last), then
/// the least headroom.
fn closer_to_oom(a: &Outlook, b: &Outlook) -> Ordering {
    let episode = |o: &Outlook| match o.state {
        Some(WarningState::Imminent) => 0,
        Some(WarningState::Warning) => 1,
        Some(WarningState::Recovered) | None => 2,
    };
    let left = |o: &Outlook| o.seconds_left.unwrap_or(f64::INFINITY);
    episode(a)
        .cmp(&episode(b))
        .then_with(|| left(a).total_cmp(&left(b)))
        .then_with(|| a.headroom_bytes().cmp(&b.headroom_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{diagnosis, watch::Watched};
    use oomtrace_event::{
        Attribution, Cgroup, LimitLevel, OomCgroup, Scope, Trigger, Unreclaimable, Victim, WorkloadInfo, WorkloadKind,
    };

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
        metrics.update_exporter("otlp", ExporterTotals { failures: 2, dropped: 0, queued: 3 });
        metrics.update_exporter("otlp", ExporterTotals { failures: 7, dropped: 1, queued: 0 });
        let text = metrics.encode().expect("encode");
        assert!(text.contains(r#"oomtrace_events_lost_total{reason="ringbuf_full"} 5"#), "{text}");
        assert!(text.contains(r#"oomtrace_exporter_failures_total{exporter="otlp"} 7"#), "{text}");
        assert!(text.contains(r#"oomtrace_exporter_dropped_total{exporter="otlp"} 1"#), "{text}");
        assert!(text.contains(r#"oomtrace_exporter_queued{exporter="otlp"} 0"#), "{text}");
    }

    const MIB: u64 = 1 << 20;

    /// A hand-made cgroup `/<name>.slice/<name>.service` (so labelled
    /// `unit="<name>.service"`) holding `unreclaimable` of `limit`, with
    /// `seconds_left` if climbing.
    fn watched(name: &str, limit: u64, unreclaimable: u64, seconds_left: Option<f64>) -> Gauged {
        let path = format!("/{name}.slice/{name}.service");
        let mut workload = WorkloadInfo::new(WorkloadKind::SystemService, Attribution::Host);
        workload.unit = Some(format!("{name}.service"));
        Gauged {
            outlook: Outlook {
                watched: Watched::Cgroup(path),
                level: LimitLevel::Cgroup,
                at_ns: 0,
                usage_bytes: unreclaimable,
                unreclaimable_bytes: unreclaimable,
                parts: Unreclaimable { anon_bytes: unreclaimable, ..Unreclaimable::default() },
                limit_bytes: limit,
                slope_bytes_per_second: if seconds_left.is_some() { MIB as f64 } else { 0.0 },
                seconds_left,
                limit_hits: 0,
                reclaim: None,
                growth: None,
                state: None,
                episode_seconds: 0.0,
            },
            workload: Some(workload),
        }
    }

    /// The units with a headroom series, and whether each has a time to OOM.
    fn gauged_units(metrics: &Metrics) -> Vec<(String, bool)> {
        let text = metrics.encode().expect("encode");
        let unit_of = |line: &str| line.split(r#"unit=""#).nth(1).and_then(|r| r.split('"').next()).map(str::to_owned);
        let climbing: Vec<String> =
            text.lines().filter(|l| l.starts_with("oomtrace_seconds_to_oom{")).filter_map(unit_of).collect();
        let mut units: Vec<(String, bool)> = text
            .lines()
            .filter(|l| l.starts_with("oomtrace_oom_headroom_bytes{"))
            .filter_map(unit_of)
            .map(|unit| {
                let climbs = climbing.contains(&unit);
                (unit, climbs)
            })
            .collect();
        units.sort();
        units
    }

    fn unexported(metrics: &Metrics) -> String {
        let text = metrics.encode().expect("encode");
        text.lines().find(|l| l.starts_with("oomtrace_watch_cgroups_unexported ")).unwrap_or_default().to_owned()
    }

    /// Every watched cgroup has its headroom (limit − unreclaimable); only
    /// climbing ones a time to OOM; the node's labels are empty.
    #[test]
    fn every_watched_cgroup_has_its_headroom_and_climbing_ones_their_time_left() {
        let metrics = Metrics::new(10);
        let mut node = watched("node", 8192 * MIB, 1024 * MIB, None);
        node.outlook.watched = Watched::Node;
        node.outlook.level = LimitLevel::NodeEviction;
        node.workload = None;
        metrics.update_outlooks(&[
            watched("calm", 100 * MIB, 40 * MIB, None),
            watched("leak", 100 * MIB, 70 * MIB, Some(30.0)),
            node,
        ]);
        let text = metrics.encode().expect("encode");
        let series = |unit: &str| format!(r#"{{namespace="",pod="",container="",unit="{unit}",limit_level="cgroup"}}"#);
        assert!(
            text.contains(&format!("oomtrace_oom_headroom_bytes{} {}", series("calm.service"), 60 * MIB)),
            "{text}"
        );
        assert!(
            text.contains(&format!("oomtrace_oom_headroom_bytes{} {}", series("leak.service"), 30 * MIB)),
            "{text}"
        );
        assert!(text.contains(&format!("oomtrace_seconds_to_oom{} 30.0", series("leak.service"))), "{text}");
        assert!(!text.contains(&format!("oomtrace_seconds_to_oom{}", series("calm.service"))), "no climb: {text}");
        let node =
            r#"oomtrace_oom_headroom_bytes{namespace="",pod="",container="",unit="",limit_level="node_eviction"}"#;
        assert!(text.contains(&format!("{node} {}", 7168 * MIB)), "{text}");
        assert_eq!(unexported(&metrics), "oomtrace_watch_cgroups_unexported 0");
    }

    /// Past the bound, the cgroups closest to OOM keep their series: warned
    /// first, then the least time left, then the least headroom; the others
    /// are counted, and a cgroup no longer watched loses its series.
    #[test]
    fn the_bound_keeps_the_cgroups_closest_to_oom_and_counts_the_rest() {
        let metrics = Metrics::new(3);
        let mut warned = watched("warned", 100 * MIB, 50 * MIB, Some(200.0));
        warned.outlook.state = Some(WarningState::Warning);
        let all = [
            watched("roomy", 100 * MIB, 10 * MIB, None),
            watched("slow", 100 * MIB, 50 * MIB, Some(100.0)),
            watched("tight", 100 * MIB, 95 * MIB, None),
            warned,
            watched("fast", 100 * MIB, 20 * MIB, Some(10.0)),
        ];
        metrics.update_outlooks(&all);
        let kept = |units: &[(&str, bool)]| units.iter().map(|(u, c)| (format!("{u}.service"), *c)).collect::<Vec<_>>();
        assert_eq!(gauged_units(&metrics), kept(&[("fast", true), ("slow", true), ("warned", true)]));
        assert_eq!(unexported(&metrics), "oomtrace_watch_cgroups_unexported 2");

        // `fast` and `slow` are gone (killed, removed): the tightest calm
        // cgroup comes in, the roomy one stays out.
        metrics.update_outlooks(&[all[0].clone(), all[2].clone(), all[3].clone()]);
        assert_eq!(gauged_units(&metrics), kept(&[("roomy", false), ("tight", false), ("warned", true)]));
        assert_eq!(unexported(&metrics), "oomtrace_watch_cgroups_unexported 0");
        metrics.update_outlooks(&[all[2].clone(), all[0].clone(), all[1].clone(), all[4].clone()]);
        assert_eq!(gauged_units(&metrics), kept(&[("fast", true), ("slow", true), ("tight", false)]));
        assert_eq!(unexported(&metrics), "oomtrace_watch_cgroups_unexported 1");
        metrics.update_outlooks(&[]);
        assert_eq!(gauged_units(&metrics), Vec::new());
    }

    /// Cgroups that share labels share a series (the closer one's), without
    /// taking a place in the bound or counting as left out.
    #[test]
    fn cgroups_with_the_same_labels_share_the_closer_ones_series() {
        let metrics = Metrics::new(2);
        let mut inner = watched("svc", 100 * MIB, 90 * MIB, None);
        inner.outlook.watched = Watched::Cgroup("/svc.slice/svc.service/worker".to_owned());
        metrics.update_outlooks(&[
            watched("svc", 100 * MIB, 10 * MIB, None),
            inner,
            watched("other", 100 * MIB, 0, None),
        ]);
        let text = metrics.encode().expect("encode");
        assert!(text.contains(&format!(r#"unit="svc.service",limit_level="cgroup"}} {}"#, 10 * MIB)), "{text}");
        assert_eq!(gauged_units(&metrics).len(), 2, "{text}");
        assert_eq!(unexported(&metrics), "oomtrace_watch_cgroups_unexported 0");
    }

    #[test]
    fn the_watchers_counters_are_exported() {
        let metrics = Metrics::new(10);
        metrics.update_watch(WatchStats { watched: 4, scans: 2, usage_reads: 10, stat_reads: 3, read_errors: 1 });
        metrics.update_watch(WatchStats { watched: 3, scans: 5, usage_reads: 30, stat_reads: 4, read_errors: 2 });
        let text = metrics.encode().expect("encode");
        for line in [
            "oomtrace_watch_cgroups 3",
            "oomtrace_watch_scans_total 5",
            "oomtrace_watch_usage_reads_total 30",
            "oomtrace_watch_stat_reads_total 4",
            "oomtrace_watch_read_errors_total 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
