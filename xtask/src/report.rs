//! The bench's figures and their markdown report (docs/benchmarks.md).

use std::{fmt::Write as _, time::Duration};

use crate::{
    bench::{ATTACH_RUNS, EVENT_DEADLINE, IDLE_SETTLE, IDLE_WINDOW, LIMIT_BYTES},
    cgroup::HOG_ALLOC,
    daemon::{DAEMON_IDLE_WINDOW, DAEMON_SETTLE, OTLP_METRIC_INTERVAL_MS},
    enrichment::{CACHED_CALLS, COLD_RUNS, EXITED_CALLS, HUNG_CALLS},
    observability::OtlpCounts,
    procfs::{Clock, Machine, Memory},
};

/// Targets from the issues.
const TARGET_P99_MS: f64 = 5.0;
const TARGET_RSS_MIB: f64 = 20.0;
const TARGET_ATTACH_MS: f64 = 500.0;
const TARGET_DAEMON_RSS_MIB: f64 = 25.0;
const TARGET_DAEMON_IDLE_CPU_PERCENT: f64 = 1.0;
const TARGET_CACHED_ENRICHMENT_US: f64 = 100.0;
/// A lookup "bounded by its timeout" may overrun it by timer slack and
/// scheduling: at most this fraction of the timeout.
const TIMEOUT_SLACK: f64 = 0.1;
/// No attribute() call that reaches the runtime over its unix socket took
/// less than this on the development host (a cache hit takes under 1 µs).
const RUNTIME_CALL_FLOOR: Duration = Duration::from_micros(50);

/// The kills of one phase (sequential or storm) as one tracer saw them.
#[derive(Clone, Debug, Default)]
pub struct KillRun {
    pub hogs: usize,
    /// Hogs that exited without SIGKILL (no OOM kill expected).
    pub not_killed: usize,
    /// Events for hogs that were not killed (the kernel marked a victim it did not kill).
    pub events_for_survivors: usize,
    /// Killed hogs without an event.
    pub missing: Vec<u32>,
    /// Events beyond the first for a victim.
    pub duplicates: usize,
    /// Line received minus kernel timestamp, first event of each killed hog.
    pub latencies_ns: Vec<i64>,
    /// The kernel's oom_kill counters of the phase's cgroups.
    pub kernel_oom_kills: u64,
}

impl KillRun {
    pub fn oom_killed(&self) -> usize {
        self.hogs - self.not_killed
    }

    pub fn events_matched(&self) -> usize {
        self.latencies_ns.len()
    }

    fn latency(&self) -> Option<Latency> {
        Latency::of(&self.latencies_ns)
    }
}

/// Nearest-rank percentiles of latencies, in ms.
#[derive(Clone, Copy, Debug)]
struct Latency {
    min_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Latency {
    fn of(latencies_ns: &[i64]) -> Option<Latency> {
        let mut sorted = latencies_ns.to_vec();
        sorted.sort_unstable();
        let ms = |ns: i64| ns as f64 / 1e6;
        Some(Latency {
            min_ms: ms(*sorted.first()?),
            p50_ms: ms(percentile(&sorted, 50.0)?),
            p99_ms: ms(percentile(&sorted, 99.0)?),
            max_ms: ms(*sorted.last()?),
        })
    }
}

/// Nearest rank: the smallest value with at least p% of the values at or below it.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()).checked_sub(1)?).copied()
}

/// Everything measured for one tracer.
#[derive(Clone, Debug)]
pub struct ToolFigures {
    pub name: &'static str,
    pub version: String,
    /// Spawn to "attached" line, one per start.
    pub attach: Vec<Duration>,
    /// Spawn to a later "probes attached" line, where the tool prints one.
    pub probes_attached: Vec<Duration>,
    /// Sampled after IDLE_SETTLE with the tracer attached and no kills yet.
    pub idle: Memory,
    pub idle_cpu_percent: f64,
    /// Sampled after the sequential kills and the storm.
    pub after_kills: Memory,
    pub seq: KillRun,
    pub storm: KillRun,
    /// Events for victims that were not the bench's hogs.
    pub foreign_events: usize,
}

impl ToolFigures {
    fn attach_median_ms(&self) -> Option<f64> {
        median_ms(&self.attach)
    }

    fn attach_max_ms(&self) -> Option<f64> {
        self.attach.iter().max().map(|d| d.as_secs_f64() * 1e3)
    }
}

fn median_ms(times: &[Duration]) -> Option<f64> {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let mid = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2 };
    Some(mid.as_secs_f64() * 1e3)
}

/// A peer tool's outcome.
#[derive(Clone, Debug)]
pub enum Peer {
    Skipped,
    Unavailable(String),
    /// Attached, but its output cannot be measured like the others'.
    AttachedOnly {
        attach: Duration,
        note: String,
    },
    Measured(Box<ToolFigures>),
}

impl Peer {
    pub fn summary(&self) -> String {
        match self {
            Peer::Skipped => "skipped (--no-peer)".to_owned(),
            Peer::Unavailable(reason) => format!("unavailable: {reason}"),
            Peer::AttachedOnly { attach, note } => format!("attached in {:.0} ms; {note}", attach.as_secs_f64() * 1e3),
            Peer::Measured(figures) => format!("measured ({})", figures.version),
        }
    }
}

/// Which clock bpftrace's `nsecs` reads, and a BEGIN probe's check of it.
#[derive(Clone, Debug)]
pub struct ClockCheck {
    pub clock: Clock,
    /// How the clock was determined.
    pub evidence: String,
    /// `clock` before bpftrace started, its BEGIN probe's `nsecs`, and
    /// `clock` when the line arrived.
    pub before_ns: u64,
    pub nsecs: u64,
    pub received_ns: u64,
    pub boottime_minus_monotonic_ns: u64,
}

impl ClockCheck {
    pub fn holds(&self) -> bool {
        self.before_ns <= self.nsecs && self.nsecs <= self.received_ns
    }
}

/// A section of the report that needs a component or can be skipped.
#[derive(Clone, Debug)]
pub enum Section<T> {
    /// Left out with this flag.
    Skipped(&'static str),
    Unavailable(String),
    Measured(Box<T>),
}

impl<T> Section<T> {
    fn measured(&self) -> Option<&T> {
        match self {
            Section::Measured(figures) => Some(figures),
            _ => None,
        }
    }

    fn why_not(&self) -> String {
        match self {
            Section::Skipped(flag) => format!("skipped ({flag})"),
            Section::Unavailable(reason) => format!("unavailable: {reason}"),
            Section::Measured(_) => "measured".to_owned(),
        }
    }
}

/// CPU a process used over a window.
#[derive(Clone, Debug)]
pub struct CpuUse {
    /// The window, wall time.
    pub seconds: f64,
    /// utime + stime (/proc/<pid>/stat), in 10 ms clock ticks.
    pub ticks_ms: f64,
    /// The threads' run time (schedstat), ns-precise; None when threads came
    /// or went during the window.
    pub precise_ms: Option<f64>,
}

impl CpuUse {
    fn percent(&self) -> f64 {
        self.ticks_ms / (self.seconds * 1000.0) * 100.0
    }

    fn precise_percent(&self) -> Option<f64> {
        self.precise_ms.map(|ms| ms / (self.seconds * 1000.0) * 100.0)
    }

    /// The larger of both readings (each may round the other way).
    fn worst_percent(&self) -> f64 {
        self.precise_percent().map_or(self.percent(), |p| p.max(self.percent()))
    }

    fn describe(&self) -> String {
        let precise = match (self.precise_ms, self.precise_percent()) {
            (Some(ms), Some(percent)) => format!("; threads' run time {ms:.1} ms = {percent:.3} %"),
            _ => "; threads came and went, no ns figure".to_owned(),
        };
        format!("{:.2} % ({:.0} ms in ticks over {:.1} s{precise})", self.percent(), self.ticks_ms, self.seconds)
    }
}

/// The daemon between kills: memory at both ends, CPU, what it exported.
#[derive(Clone, Debug)]
pub struct IdleWindow {
    pub memory_start: Memory,
    pub memory_end: Memory,
    pub cpu: CpuUse,
    /// Prometheus' own count of its scrapes of the daemon in the window.
    pub scrapes: Result<f64, String>,
    /// What the OTLP receiver got from the daemon in the window.
    pub otlp: OtlpCounts,
}

/// `oomtrace daemon` with Prometheus scraping it and OTLP export on.
#[derive(Clone, Debug)]
pub struct DaemonFigures {
    /// Environment and arguments it ran with.
    pub command: String,
    /// The CRI socket it reported using (or why none).
    pub cri: String,
    /// Spawn to its "waiting for OOM kills" line.
    pub attach: Duration,
    /// Target written to Prometheus' file_sd until `up == 1`.
    pub first_scrape: Duration,
    /// DAEMON_SETTLE after the first scrape, before any kill.
    pub idle: IdleWindow,
    pub burst: KillRun,
    /// From the first hog's start to DRAIN_QUIET after the last event.
    pub burst_cpu: CpuUse,
    /// Right after the burst's events.
    pub after_burst: Memory,
    /// `sum(oomtrace_oom_kills_total)` Prometheus scraped after the burst.
    pub prometheus_kills: Result<f64, String>,
    /// What the OTLP receiver got from the burst on.
    pub otlp_burst: OtlpCounts,
    /// Once the burst was exported: the counter is now exported every interval.
    pub idle_after: IdleWindow,
    pub foreign_events: usize,
    pub exit: String,
}

impl DaemonFigures {
    /// The largest VmRSS after startup: the steady footprint.
    fn steady_rss_kb(&self) -> u64 {
        [
            self.idle.memory_start.rss_kb,
            self.idle.memory_end.rss_kb,
            self.after_burst.rss_kb,
            self.idle_after.memory_start.rss_kb,
            self.idle_after.memory_end.rss_kb,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// The idle CPU the target is judged on: the worse window.
    fn idle_cpu_percent(&self) -> f64 {
        self.idle.cpu.worst_percent().max(self.idle_after.cpu.worst_percent())
    }
}

/// `PodResolver::attribute` timed in process against a real pod (JSON
/// between the release-built probe and the bench).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EnrichmentFigures {
    /// The probe was built with optimizations (as oomtrace ships).
    pub optimized: bool,
    /// "containerd 1.7.24".
    pub runtime: String,
    /// The container's memory cgroup, as events carry it.
    pub container_path: String,
    /// What the cold lookup gave.
    pub attribution: String,
    /// First attribute() on a fresh resolver: connects, then ContainerStatus.
    pub cold_connect: Vec<Duration>,
    /// First lookup of another container on an already connected resolver.
    pub cold_connected: Vec<Duration>,
    /// First attribute() after `warm()` listed every container (as the
    /// daemon does at startup).
    pub after_warm: Vec<Duration>,
    /// Repeated attribute() of the container looked up before.
    pub cached: Vec<Duration>,
    /// Repeated attribute() of a container whose main process has exited.
    pub exited: Vec<Duration>,
    pub exited_attribution: String,
    /// attribute() against a socket that accepts nothing, one resolver.
    pub hung: Vec<Duration>,
    pub hung_attribution: String,
    /// The resolver's CRI timeout (--cri-timeout).
    pub timeout: Duration,
}

pub struct Report {
    pub generated: String,
    pub commit: String,
    pub machine: Machine,
    pub hierarchy: String,
    pub kills: usize,
    pub storm: usize,
    pub built: bool,
    pub oomtrace: ToolFigures,
    pub bpftrace: Peer,
    pub bcc: Peer,
    pub clock_check: Option<ClockCheck>,
    /// (component, what the bench found or did).
    pub components: Vec<(&'static str, String)>,
    pub burst: usize,
    pub daemon: Section<DaemonFigures>,
    pub enrichment: Section<EnrichmentFigures>,
    pub bench_seconds: u64,
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// One row of the comparison table: a value per tool.
struct Row {
    metric: String,
    value: fn(&ToolFigures) -> Option<f64>,
    unit: &'static str,
    decimals: usize,
}

fn row(metric: impl Into<String>, unit: &'static str, decimals: usize, value: fn(&ToolFigures) -> Option<f64>) -> Row {
    Row { metric: metric.into(), value, unit, decimals }
}

fn cell(value: Option<f64>, unit: &str, decimals: usize) -> String {
    match value {
        Some(v) => format!("{v:.decimals$} {unit}").trim_end().to_owned(),
        None => "n/a".to_owned(),
    }
}

fn events_cell(run: &KillRun) -> String {
    let mut text = format!(
        "{}/{} ({} missing, {} duplicate)",
        run.events_matched(),
        run.oom_killed(),
        run.missing.len(),
        run.duplicates
    );
    if run.not_killed > 0 {
        write!(text, "; {} of {} hogs not killed", run.not_killed, run.hogs).ok();
    }
    text
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; `.ok()` keeps that visible without unwrap.
    let o = &report.oomtrace;
    let m = &report.machine;
    writeln!(out, "# Benchmarks").ok();
    writeln!(out).ok();
    writeln!(
        out,
        "Produced by `cargo xtask bench --kills {} --storm {} --burst {}` on {} (workspace commit {}), {}. The run took {} s.",
        report.kills,
        report.storm,
        report.burst,
        report.generated,
        report.commit,
        if report.built { "release binary built by the bench" } else { "existing release binary (--no-build)" },
        report.bench_seconds
    )
    .ok();
    writeln!(out).ok();
    writeln!(out, "## Machine").ok();
    writeln!(out).ok();
    writeln!(out, "| | |\n|---|---|").ok();
    writeln!(out, "| kernel (`uname -r`) | {} |", m.kernel).ok();
    writeln!(out, "| CPUs (`nproc`) | {} |", m.cpus).ok();
    writeln!(out, "| CPU model | {} |", m.cpu_model).ok();
    writeln!(out, "| memory (MemTotal) | {:.1} GiB |", m.mem_total_kb as f64 / (1024.0 * 1024.0)).ok();
    writeln!(out, "| memory cgroups | {} |", report.hierarchy).ok();
    writeln!(out, "| oomtrace | {} |", o.version).ok();
    if let Peer::Measured(peer) = &report.bpftrace {
        writeln!(out, "| bpftrace | {} |", peer.version).ok();
    }
    if let Some(e) = report.enrichment.measured() {
        writeln!(out, "| container runtime (CRI) | {} |", e.runtime).ok();
    }
    for (component, state) in &report.components {
        writeln!(out, "| {component} | {state} |").ok();
    }
    writeln!(out).ok();

    let seq = o.seq.latency();
    let p99 = seq.map(|l| l.p99_ms);
    let rss_mib = mib(o.after_kills.rss_kb);
    let hwm_mib = mib(o.after_kills.hwm_kb);
    let attach_max = o.attach_max_ms();
    writeln!(out, "## Targets").ok();
    writeln!(out).ok();
    writeln!(out, "| target | oomtrace | result |\n|---|---|---|").ok();
    writeln!(
        out,
        "| kill-to-event latency p99 ≤ {TARGET_P99_MS} ms ({} sequential kills) | {} | {} |",
        report.kills,
        cell(p99, "ms", 3),
        pass(p99.is_some_and(|v| v <= TARGET_P99_MS) && o.seq.missing.is_empty())
    )
    .ok();
    writeln!(
        out,
        "| RSS ≤ {TARGET_RSS_MIB} MiB (VmRSS while tracing, read after all kills) | {rss_mib:.1} MiB | {} |",
        pass(rss_mib <= TARGET_RSS_MIB)
    )
    .ok();
    writeln!(
        out,
        "| (not a target) peak RSS since start (VmHWM; parsing the kernel BTF at startup) | {hwm_mib:.1} MiB | {} |",
        if hwm_mib <= TARGET_RSS_MIB { "within 20 MiB" } else { "above 20 MiB" }
    )
    .ok();
    writeln!(
        out,
        "| start to attached ≤ {TARGET_ATTACH_MS} ms (slowest of {ATTACH_RUNS} starts) | {} | {} |",
        cell(attach_max, "ms", 1),
        pass(attach_max.is_some_and(|v| v <= TARGET_ATTACH_MS))
    )
    .ok();
    target_rows_daemon(&mut out, report);
    target_rows_enrichment(&mut out, report);
    writeln!(out).ok();
    writeln!(out, "The latency target also requires every sequential kill to have produced its event.").ok();
    writeln!(out).ok();

    let rows = [
        row(format!("start to attached, median of {ATTACH_RUNS}"), "ms", 1, |t| t.attach_median_ms()),
        row(format!("start to attached, slowest of {ATTACH_RUNS}"), "ms", 1, |t| t.attach_max_ms()),
        row("idle RSS (VmRSS)", "MiB", 1, |t| Some(mib(t.idle.rss_kb))),
        row("idle RSS, anonymous part (RssAnon)", "MiB", 1, |t| Some(mib(t.idle.anon_kb))),
        row("idle RSS, file-backed part (RssFile)", "MiB", 1, |t| Some(mib(t.idle.file_kb))),
        row("peak RSS (VmHWM after all kills)", "MiB", 1, |t| Some(mib(t.after_kills.hwm_kb))),
        row("RSS after all kills (VmRSS)", "MiB", 1, |t| Some(mib(t.after_kills.rss_kb))),
        row(format!("idle CPU (% of one core over {} s)", IDLE_WINDOW.as_secs()), "%", 2, |t| Some(t.idle_cpu_percent)),
        row(format!("latency p50, {} sequential kills", report.kills), "ms", 3, |t| t.seq.latency().map(|l| l.p50_ms)),
        row(format!("latency p99, {} sequential kills", report.kills), "ms", 3, |t| t.seq.latency().map(|l| l.p99_ms)),
        row(format!("latency max, {} sequential kills", report.kills), "ms", 3, |t| t.seq.latency().map(|l| l.max_ms)),
        row(format!("latency p50, storm of {}", report.storm), "ms", 3, |t| t.storm.latency().map(|l| l.p50_ms)),
        row(format!("latency p99, storm of {}", report.storm), "ms", 3, |t| t.storm.latency().map(|l| l.p99_ms)),
        row(format!("latency max, storm of {}", report.storm), "ms", 3, |t| t.storm.latency().map(|l| l.max_ms)),
    ];
    let peer = match &report.bpftrace {
        Peer::Measured(peer) => Some(peer.as_ref()),
        _ => None,
    };
    writeln!(out, "## Results").ok();
    writeln!(out).ok();
    match peer {
        Some(peer) => {
            writeln!(out, "| metric | oomtrace | bpftrace | oomtrace / bpftrace |\n|---|---|---|---|").ok();
            for r in &rows {
                let (a, b) = ((r.value)(o), (r.value)(peer));
                let ratio = match (a, b) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                    _ => "n/a".to_owned(),
                };
                writeln!(
                    out,
                    "| {} | {} | {} | {ratio} |",
                    r.metric,
                    cell(a, r.unit, r.decimals),
                    cell(b, r.unit, r.decimals)
                )
                .ok();
            }
            writeln!(out, "| events, sequential | {} | {} | |", events_cell(&o.seq), events_cell(&peer.seq)).ok();
            writeln!(out, "| events, storm | {} | {} | |", events_cell(&o.storm), events_cell(&peer.storm)).ok();
            writeln!(
                out,
                "| kernel oom_kill counters (sequential + storm) | {} + {} | {} + {} | |",
                o.seq.kernel_oom_kills,
                o.storm.kernel_oom_kills,
                peer.seq.kernel_oom_kills,
                peer.storm.kernel_oom_kills
            )
            .ok();
        }
        None => {
            writeln!(out, "| metric | oomtrace |\n|---|---|").ok();
            for r in &rows {
                writeln!(out, "| {} | {} |", r.metric, cell((r.value)(o), r.unit, r.decimals)).ok();
            }
            writeln!(out, "| events, sequential | {} |", events_cell(&o.seq)).ok();
            writeln!(out, "| events, storm | {} |", events_cell(&o.storm)).ok();
            writeln!(
                out,
                "| kernel oom_kill counters (sequential + storm) | {} + {} |",
                o.seq.kernel_oom_kills, o.storm.kernel_oom_kills
            )
            .ok();
        }
    }
    writeln!(out).ok();

    writeln!(out, "## Peers").ok();
    writeln!(out).ok();
    match &report.bpftrace {
        Peer::Measured(peer) => {
            writeln!(out, "- **bpftrace** ({}): measured above, running", peer.version).ok();
            writeln!(
                out,
                "  `bpftrace -e 'tracepoint:oom:mark_victim {{ printf(\"%llu %d\\n\", nsecs, args->pid); }}'`."
            )
            .ok();
            writeln!(
                out,
                "  Its start-to-attached is timed to its `Attaching 1 probe...` line, which bpftrace prints *before* it attaches."
            )
            .ok();
            if let Some(median) = median_ms(&peer.probes_attached) {
                writeln!(
                    out,
                    "  Timed instead to its `__BPFTRACE_NOTIFY_PROBES_ATTACHED` line (printed once the probe is attached \
                     when that environment variable is set), the median of {} starts is {median:.1} ms.",
                    peer.probes_attached.len()
                )
                .ok();
            }
        }
        other => {
            writeln!(out, "- **bpftrace**: {}", other.summary()).ok();
        }
    }
    if let Some(check) = &report.clock_check {
        let apart_ms = check.boottime_minus_monotonic_ns as f64 / 1e6;
        writeln!(
            out,
            "- bpftrace's clock: `nsecs` is {} ({}), so its latencies are taken against {}; oomtrace's `ktime_ns` is \
             `bpf_ktime_get_ns()`, CLOCK_MONOTONIC. A `BEGIN` probe's `nsecs` ({}) fell {} the bench's {} readings \
             before bpftrace started ({}) and on receiving the line ({}). {}",
            check.clock.name(),
            check.evidence,
            check.clock.name(),
            check.nsecs,
            if check.holds() { "between" } else { "**outside**" },
            check.clock.name(),
            check.before_ns,
            check.received_ns,
            if apart_ms < 1.0 {
                format!(
                    "On this host CLOCK_BOOTTIME is {apart_ms:.3} ms ahead of CLOCK_MONOTONIC (no suspend since boot), \
                     so the two clocks agree here either way."
                )
            } else {
                format!("CLOCK_BOOTTIME is {apart_ms:.1} ms ahead of CLOCK_MONOTONIC on this host (time suspended).")
            }
        )
        .ok();
    }
    writeln!(out, "- **bcc oomkill** (`oomkill-bpfcc`, kprobe on `oom_kill_process`): {}", report.bcc.summary()).ok();
    writeln!(out).ok();

    render_daemon(&mut out, report);
    render_enrichment(&mut out, report);

    writeln!(out, "## Method").ok();
    writeln!(out).ok();
    writeln!(
        out,
        "- Start to attached: wall time from spawning `target/release/oomtrace live -o json` (`OOMTRACE_LOG=info`) \
         until its stderr shows `waiting for OOM kills`, {ATTACH_RUNS} starts, each stopped with SIGINT."
    )
    .ok();
    writeln!(
        out,
        "- Idle footprint: with the tracer attached, wait {} s, read VmRSS/VmHWM from `/proc/<pid>/status`; \
         CPU = utime+stime ticks (`/proc/<pid>/stat`) over {} s / (elapsed × CLK_TCK).",
        IDLE_SETTLE.as_secs(),
        IDLE_WINDOW.as_secs()
    )
    .ok();
    writeln!(
        out,
        "- Kills: memory cgroups `/oomtrace-bench-<pid>/seq` and `/oomtrace-bench-<pid>/storm-NN`, each limited to \
         {} MiB without swap (the parent to the sum plus slack, so it never OOMs). Each hog is \
         `sh -c 'echo $$ > <cgroup>/tasks && exec dd if=/dev/zero of=/dev/null bs={HOG_ALLOC} count=1'` \
         (`cgroup.procs` on cgroup v2) and dies by SIGKILL from the memcg OOM killer. Sequential kills run one at a time, each \
         waiting up to {} s for its event; the storm starts one hog per storm cgroup at once. Fresh cgroups per tool; \
         oomtrace runs with `--cgroup /oomtrace-bench-<pid>`, bpftrace unfiltered (events are matched by victim pid).",
        LIMIT_BYTES >> 20,
        EVENT_DEADLINE.as_secs()
    )
    .ok();
    writeln!(
        out,
        "- Latency: a reader thread reads the tracer's stdout line by line and, as soon as a line arrives, reads the \
         clock the tracer stamped it with (`clock_gettime`); latency = that time − the kernel timestamp in the line \
         (oomtrace `ktime_ns`, bpftrace `nsecs`, both taken in `mark_victim`). It includes the tracer's wait for a CPU: \
         the kernel may wake the tracer on the CPU where the killed hog is still exiting. Percentiles are nearest-rank \
         (with fewer than 100 kills, p99 is the slowest kill). Missing = a hog the kernel killed with no event for its \
         pid; duplicate = more than one event for a pid."
    )
    .ok();
    writeln!(
        out,
        "- RSS target: VmRSS of the oomtrace process after all kills (what it holds while tracing). The \
         startup peak (VmHWM) is reported too: aya parses the kernel's whole BTF (several MiB) to load \
         and attach tp_btf/fentry programs; oomtrace frees it and returns it to the system \
         (`malloc_trim`) once attached."
    )
    .ok();
    method_daemon_enrichment(&mut out, report);
    writeln!(out).ok();

    let notes = notes(report);
    if !notes.is_empty() {
        writeln!(out, "## Notes").ok();
        writeln!(out).ok();
        for note in notes {
            writeln!(out, "- {note}").ok();
        }
        writeln!(out).ok();
    }
    out
}

/// Nearest-rank min/p50/p99/max of durations.
fn duration_stats(times: &[Duration]) -> Option<[Duration; 4]> {
    let mut sorted: Vec<i64> = times.iter().map(|t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX)).collect();
    sorted.sort_unstable();
    let at = |ns: i64| Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    Some([at(*sorted.first()?), at(percentile(&sorted, 50.0)?), at(percentile(&sorted, 99.0)?), at(*sorted.last()?)])
}

/// µs below a millisecond, ms above.
fn short_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 { format!("{us:.1} µs") } else { format!("{:.2} ms", us / 1000.0) }
}

fn target_rows_daemon(out: &mut String, report: &Report) {
    let rss_target = format!(
        "daemon: RSS ≤ {TARGET_DAEMON_RSS_MIB} MiB steady, both exporters on (largest VmRSS read while idle, after a burst \
         of {} kills, and idle after it)",
        report.burst
    );
    let cpu_target = format!(
        "daemon: idle CPU < {TARGET_DAEMON_IDLE_CPU_PERCENT}% of one core (worse of two {} s windows, before any kill and \
         after the burst; scraped every 1 s, OTLP metric interval {} ms)",
        DAEMON_IDLE_WINDOW.as_secs(),
        OTLP_METRIC_INTERVAL_MS
    );
    match report.daemon.measured() {
        Some(d) => {
            let rss = mib(d.steady_rss_kb());
            writeln!(out, "| {rss_target} | {rss:.1} MiB | {} |", pass(rss <= TARGET_DAEMON_RSS_MIB)).ok();
            let cpu = d.idle_cpu_percent();
            writeln!(out, "| {cpu_target} | {cpu:.2} % | {} |", pass(cpu < TARGET_DAEMON_IDLE_CPU_PERCENT)).ok();
            let hwm = mib(d.idle_after.memory_end.hwm_kb);
            writeln!(
                out,
                "| (not a target) daemon peak RSS since start (VmHWM; the BTF parsed at startup) | {hwm:.1} MiB | {} |",
                if hwm <= TARGET_DAEMON_RSS_MIB { "within 25 MiB" } else { "above 25 MiB" }
            )
            .ok();
        }
        None => {
            let why = short_why(&report.daemon, "Daemon footprint");
            writeln!(out, "| {rss_target} | {why} | n/a |").ok();
            writeln!(out, "| {cpu_target} | {why} | n/a |").ok();
        }
    }
}

fn target_rows_enrichment(out: &mut String, report: &Report) {
    let cached_target = format!(
        "enrichment of a cached container ≤ {TARGET_CACHED_ENRICHMENT_US} µs per event (p99 of {CACHED_CALLS} \
         `PodResolver::attribute` calls)"
    );
    let bound_target = "cold CRI lookup bounded by its timeout (`--cri-timeout`, socket that never answers; slowest \
                        call, within 10% of the timeout)";
    match report.enrichment.measured() {
        Some(e) => {
            match duration_stats(&e.cached) {
                Some([_, _, p99, max]) => writeln!(
                    out,
                    "| {cached_target} | {} (max {}) | {} |",
                    short_duration(p99),
                    short_duration(max),
                    pass(p99.as_secs_f64() * 1e6 <= TARGET_CACHED_ENRICHMENT_US)
                ),
                None => writeln!(out, "| {cached_target} | no calls | FAIL |"),
            }
            .ok();
            let slowest = e.hung.iter().max().copied();
            let bound = e.timeout.as_secs_f64() * (1.0 + TIMEOUT_SLACK);
            writeln!(
                out,
                "| {bound_target} | {} for a {} ms timeout | {} |",
                slowest.map_or_else(|| "no calls".to_owned(), short_duration),
                e.timeout.as_millis(),
                pass(slowest.is_some_and(|s| s.as_secs_f64() <= bound))
            )
            .ok();
        }
        None => {
            let why = short_why(&report.enrichment, "Enrichment cost");
            writeln!(out, "| {cached_target} | {why} | n/a |").ok();
            writeln!(out, "| {bound_target} | {why} | n/a |").ok();
        }
    }
}

fn render_daemon(out: &mut String, report: &Report) {
    writeln!(out, "## Daemon footprint").ok();
    writeln!(out).ok();
    let Some(d) = report.daemon.measured() else {
        writeln!(out, "{}.", capitalized(&report.daemon.why_not())).ok();
        writeln!(out).ok();
        return;
    };
    writeln!(out, "`{}`", d.command).ok();
    writeln!(out).ok();
    writeln!(
        out,
        "CRI socket in use: {}. Prometheus scraped it every second (a file_sd target); OTLP went over gRPC to the \
         receiver with a {OTLP_METRIC_INTERVAL_MS} ms metric interval{}. No peer: bpftrace has no daemon mode and no \
         exporters, so this section has no ratio.",
        d.cri,
        if d.idle.otlp.metric_requests == 0 && d.idle_after.otlp.metric_requests > 0 {
            " (the SDK sends no metric request while the kill counter has no data point: before the first kill \
             OTLP is idle; after it, one request per interval)"
        } else {
            ""
        }
    )
    .ok();
    writeln!(out).ok();
    let memory =
        |m: &Memory| format!("{:.1} MiB (anon {:.1}, file {:.1})", mib(m.rss_kb), mib(m.anon_kb), mib(m.file_kb));
    let scrapes = |w: &IdleWindow| match &w.scrapes {
        Ok(n) => format!("{n:.0}"),
        Err(error) => format!("unknown: {error}"),
    };
    let otlp = |c: &OtlpCounts| format!("{} metrics, {} logs", c.metric_requests, c.log_requests);
    let latency = d.burst.latency();
    let window = DAEMON_IDLE_WINDOW.as_secs();
    let mut rows: Vec<(String, String)> = vec![
        ("start to attached (one start)".to_owned(), format!("{:.1} ms", d.attach.as_secs_f64() * 1e3)),
        (
            "file_sd target written to first successful scrape".to_owned(),
            format!("{:.1} s", d.first_scrape.as_secs_f64()),
        ),
    ];
    for (when, w) in [("idle, before any kill", &d.idle), ("idle, after the burst", &d.idle_after)] {
        rows.extend([
            (format!("{when}: VmRSS at the start of the window"), memory(&w.memory_start)),
            (format!("{when}: VmRSS at the end of the window"), memory(&w.memory_end)),
            (format!("{when}: CPU, % of one core over {window} s"), w.cpu.describe()),
            (format!("{when}: Prometheus scrapes of it (`count_over_time(up[{window}s])`)"), scrapes(w)),
            (format!("{when}: OTLP export requests received"), otlp(&w.otlp)),
        ]);
    }
    rows.extend([
        (format!("burst of {}: events on stdout", report.burst), events_cell(&d.burst)),
        (
            format!("burst of {}: kill-to-event latency p50 / p99 / max", report.burst),
            latency.map_or_else(
                || "n/a".to_owned(),
                |l| format!("{:.3} / {:.3} / {:.3} ms", l.p50_ms, l.p99_ms, l.max_ms),
            ),
        ),
        ("burst: CPU from the first hog to 1 s after the last event".to_owned(), d.burst_cpu.describe()),
        ("burst: VmRSS right after it".to_owned(), memory(&d.after_burst)),
        (
            "peak RSS since start (VmHWM, at the end)".to_owned(),
            format!("{:.1} MiB", mib(d.idle_after.memory_end.hwm_kb)),
        ),
        (
            "`sum(oomtrace_oom_kills_total)` in Prometheus after the burst".to_owned(),
            match &d.prometheus_kills {
                Ok(n) => format!("{n:.0}"),
                Err(error) => format!("not reached: {error}"),
            },
        ),
        (
            "OTLP log records received for the burst".to_owned(),
            format!("{} (in {} requests)", d.otlp_burst.log_records, d.otlp_burst.log_requests),
        ),
        ("exit after SIGINT".to_owned(), d.exit.clone()),
    ]);
    writeln!(out, "| metric | oomtrace daemon |\n|---|---|").ok();
    for (metric, value) in rows {
        writeln!(out, "| {metric} | {value} |").ok();
    }
    writeln!(out).ok();
}

fn render_enrichment(out: &mut String, report: &Report) {
    writeln!(out, "## Enrichment cost").ok();
    writeln!(out).ok();
    let Some(e) = report.enrichment.measured() else {
        writeln!(out, "{}.", capitalized(&report.enrichment.why_not())).ok();
        writeln!(out).ok();
        return;
    };
    writeln!(
        out,
        "`oomtrace::enrich::pod::PodResolver::attribute` called in process ({}), in a tokio current-thread runtime (the \
         daemon's pipeline awaits it once per event), with a {} ms CRI timeout, on a pod {} runs: container `app` in \
         `{}`, attributed as *{}*. No peer: bpftrace has no pod attribution, so this section has no ratio.",
        if e.optimized {
            "a release build of the xtask, optimized as oomtrace ships"
        } else {
            "**an unoptimized build**: the times overstate the shipped binary's"
        },
        e.timeout.as_millis(),
        e.runtime,
        e.container_path,
        e.attribution
    )
    .ok();
    writeln!(out).ok();
    writeln!(out, "| attribute() of | calls | min | p50 | p99 | max |\n|---|---|---|---|---|---|").ok();
    let rows: [(String, &[Duration]); 6] = [
        ("a cached container (looked up before)".to_owned(), &e.cached),
        (
            "a container listed by `warm()` but never looked up (first call after `warm()`, as in the daemon)"
                .to_owned(),
            &e.after_warm,
        ),
        (
            "a container never looked up, fresh resolver (connects to the socket, then ContainerStatus)".to_owned(),
            &e.cold_connect,
        ),
        ("another container never looked up, connected resolver (ContainerStatus)".to_owned(), &e.cold_connected),
        ("a container whose main process has exited, again and again".to_owned(), &e.exited),
        (
            format!("any container, CRI socket that accepts but never answers ({} ms timeout)", e.timeout.as_millis()),
            &e.hung,
        ),
    ];
    for (what, times) in rows {
        match duration_stats(times) {
            Some(stats) => {
                let [min, p50, p99, max] = stats.map(short_duration);
                writeln!(out, "| {what} | {} | {min} | {p50} | {p99} | {max} |", times.len()).ok();
            }
            None => {
                writeln!(out, "| {what} | 0 | n/a | n/a | n/a | n/a |").ok();
            }
        }
    }
    writeln!(out).ok();
    writeln!(out, "- The exited container was attributed as *{}*.", e.exited_attribution).ok();
    writeln!(out, "- Against the socket that never answers, attribution was *{}*.", e.hung_attribution).ok();
    // A call this much slower than a cache hit went to the runtime.
    let asked_runtime = |times: &[Duration]| match duration_stats(times) {
        Some([min, p50, ..]) if min >= RUNTIME_CALL_FLOOR => Some(short_duration(p50)),
        _ => None,
    };
    if let Some(p50) = asked_runtime(&e.after_warm) {
        writeln!(
            out,
            "- After `warm()` the first call for a container still went to the runtime (p50 {p50}): `warm()` fills \
             the cache from ListContainers, which carries no main pid, and `attribute` serves a cached entry only \
             when it has one (or is a sandbox); the listed entries are used when the runtime fails or has \
             forgotten the container."
        )
        .ok();
    }
    if let Some(p50) = asked_runtime(&e.exited) {
        writeln!(
            out,
            "- Every call for the exited container went to the runtime (p50 {p50}): once its main process is gone, \
             ContainerStatus reports no pid, and an entry without one is never served from the cache."
        )
        .ok();
    }
    if e.hung.len() > 1 && e.hung.iter().all(|t| *t >= e.timeout) {
        writeln!(
            out,
            "- Failures are not remembered: each of the {} calls on one resolver waited the full timeout. The \
             pipeline attributes events one after another, so while the runtime hangs each container kill delays \
             the events behind it by the timeout.",
            e.hung.len()
        )
        .ok();
    } else if let Some((first, rest)) = e.hung.split_first()
        && *first >= e.timeout
        && !rest.is_empty()
        && rest.iter().all(|t| *t < e.timeout / 10)
    {
        let slowest = rest.iter().max().copied().unwrap_or_default();
        writeln!(
            out,
            "- A failure is remembered: the first call waited the timeout ({}), the next {} returned at once \
             (slowest {}), each a partial attribution, while the resolver leaves the runtime alone (2 s after a \
             failure, doubling up to 60 s). A hung runtime costs one event the timeout, not every event of a storm.",
            short_duration(*first),
            rest.len(),
            short_duration(slowest)
        )
        .ok();
    }
    writeln!(out).ok();
}

fn method_daemon_enrichment(out: &mut String, report: &Report) {
    writeln!(
        out,
        "- Daemon footprint: `oomtrace daemon` on a free port with `--cri-socket` at the test containerd, OTLP to the \
         receiver of `scripts/observability.sh` (gRPC, `OTEL_METRIC_EXPORT_INTERVAL={OTLP_METRIC_INTERVAL_MS}`, its \
         own `OTEL_SERVICE_NAME`), and its address added to Prometheus' file_sd `targets.json` (restored afterwards; \
         Prometheus scrapes every 1 s). After `/readyz` answers 200 and Prometheus reports `up == 1`, wait {} s; then \
         an idle window of {} s (VmRSS at both ends, CPU over it). Then a burst of {} hogs at once, each in its own \
         {} MiB cgroup as above, CPU from the first hog until 1 s after the last event, VmRSS right after; then, once \
         Prometheus shows the kills and the receiver holds a log record per kill (up to 20 s), a second idle window: \
         the OTLP counter now has a data point and is exported every interval, as on a node after its first kill. \
         CPU is read two ways: utime+stime from `/proc/<pid>/stat` (10 ms ticks, each field truncated: ±0.2 % over \
         10 s) and the sum of the threads' run time from `/proc/<pid>/task/*/schedstat` (ns); the target takes the \
         larger. \
         Kills are matched to the NDJSON events on stdout by victim pid. The burst's cgroups are not pod cgroups, so \
         the daemon makes no CRI call for them.",
        DAEMON_SETTLE.as_secs(),
        DAEMON_IDLE_WINDOW.as_secs(),
        report.burst,
        LIMIT_BYTES >> 20
    )
    .ok();
    writeln!(
        out,
        "- Enrichment: xtask links the `oomtrace` library and runs a burstable pod (kubelet's labels \
         `io.kubernetes.pod.name/namespace/uid`, `io.kubernetes.container.name`, cgroup parent \
         `/kubepods/burstable/pod<uid>`) with two `sleep` containers and one that exits at once, over CRI. Each call is \
         timed around the `attribute(Some(cgroup path), Some(pid))` await alone. Cold: {COLD_RUNS} fresh \
         `PodResolver::new` (without `warm()`), each timed on its first call (`app`, connecting) and its second \
         (`sidecar`, connected). After `warm()`: {COLD_RUNS} fresh resolvers, `warm()` (Version + ListContainers), \
         then the first call for `app`. Cached: {CACHED_CALLS} calls for `app` on one resolver after its cold lookup, each \
         checked to give the same attribution. Exited: {EXITED_CALLS} calls for the exited container. Unanswered: a \
         unix socket bound and listening that never accepts, {HUNG_CALLS} calls on one resolver. The pod is removed \
         afterwards."
    )
    .ok();
}

/// A section's state for a table cell; the section itself says why.
fn short_why<T>(section: &Section<T>, heading: &str) -> String {
    match section {
        Section::Unavailable(_) => format!("unavailable (see {heading})"),
        other => other.why_not(),
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// Anything unexpected a reader must know to trust the figures.
fn notes(report: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    let tools: Vec<&ToolFigures> = match &report.bpftrace {
        Peer::Measured(peer) => vec![&report.oomtrace, peer.as_ref()],
        _ => vec![&report.oomtrace],
    };
    for tool in tools {
        for (phase, run) in [("sequential", &tool.seq), ("storm", &tool.storm)] {
            if !run.missing.is_empty() {
                notes.push(format!(
                    "{}: no event for {} killed {phase} hogs (pids {:?}).",
                    tool.name,
                    run.missing.len(),
                    run.missing
                ));
            }
            if run.duplicates > 0 {
                notes.push(format!("{}: {} duplicate events in the {phase} kills.", tool.name, run.duplicates));
            }
            if run.not_killed > 0 {
                notes.push(format!(
                    "{}: {} of {} {phase} hogs exited without SIGKILL ({} events for them).",
                    tool.name, run.not_killed, run.hogs, run.events_for_survivors
                ));
            }
            if run.kernel_oom_kills != run.oom_killed() as u64 {
                notes.push(format!(
                    "{}: the kernel counted {} OOM kills in the {phase} cgroups, the bench saw {} hogs killed.",
                    tool.name,
                    run.kernel_oom_kills,
                    run.oom_killed()
                ));
            }
            if let Some(latency) = run.latency().filter(|l| l.min_ms < 0.0) {
                notes.push(format!(
                    "{}: negative {phase} latency ({:.3} ms): the line arrived before its kernel timestamp, so the clocks differ.",
                    tool.name, latency.min_ms
                ));
            }
        }
        if tool.foreign_events > 0 {
            notes.push(format!(
                "{}: {} events for victims outside the bench (other OOM kills on the host during the run); ignored.",
                tool.name, tool.foreign_events
            ));
        }
    }
    if let Some(d) = report.daemon.measured() {
        let run = &d.burst;
        if !run.missing.is_empty() {
            notes.push(format!(
                "daemon: no event for {} killed burst hogs (pids {:?}).",
                run.missing.len(),
                run.missing
            ));
        }
        if run.duplicates > 0 {
            notes.push(format!("daemon: {} duplicate events in the burst.", run.duplicates));
        }
        if run.not_killed > 0 {
            notes.push(format!("daemon: {} of {} burst hogs exited without SIGKILL.", run.not_killed, run.hogs));
        }
        if d.foreign_events > 0 {
            notes.push(format!(
                "daemon: {} events for victims outside the bench (other OOM kills on the host during the run); they are \
                 in its Prometheus and OTLP counts too.",
                d.foreign_events
            ));
        }
        if d.otlp_burst.log_records < run.oom_killed() {
            notes.push(format!(
                "daemon: the OTLP receiver got {} log records for {} kills within 20 s.",
                d.otlp_burst.log_records,
                run.oom_killed()
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<i64> = (1..=60).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(30));
        assert_eq!(percentile(&sorted, 99.0), Some(60));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        let hundred: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 99.0), Some(99));
    }

    #[test]
    fn duration_stats_and_their_units() {
        let us = Duration::from_micros;
        let times: Vec<Duration> = (1..=100).map(us).collect();
        assert_eq!(duration_stats(&times), Some([us(1), us(50), us(99), us(100)]));
        assert_eq!(duration_stats(&[]), None);
        assert_eq!(short_duration(Duration::from_nanos(460)), "0.5 µs");
        assert_eq!(short_duration(Duration::from_micros(251_620)), "251.62 ms");
    }

    #[test]
    fn cpu_use_takes_the_larger_reading() {
        let cpu = CpuUse { seconds: 10.0, ticks_ms: 20.0, precise_ms: Some(6.8) };
        assert!((cpu.worst_percent() - 0.2).abs() < 1e-9);
        let cpu = CpuUse { seconds: 10.0, ticks_ms: 0.0, precise_ms: Some(3.5) };
        assert!((cpu.worst_percent() - 0.035).abs() < 1e-9);
        let cpu = CpuUse { seconds: 10.0, ticks_ms: 10.0, precise_ms: None };
        assert!((cpu.worst_percent() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median_ms(&[ms(30), ms(10), ms(20)]), Some(20.0));
        assert_eq!(median_ms(&[ms(10), ms(20)]), Some(15.0));
        assert_eq!(median_ms(&[]), None);
    }
}

#[cfg(test)]
mod golden;
