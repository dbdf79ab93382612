//! The bench's figures and their markdown report (docs/benchmarks.md).

use std::{fmt::Write as _, time::Duration};

use crate::{
    bench::{ATTACH_RUNS, EVENT_DEADLINE, IDLE_SETTLE, IDLE_WINDOW, LIMIT_BYTES},
    cgroup::HOG_ALLOC,
    procfs::{Clock, Machine, Memory},
};

/// Targets from the issue.
const TARGET_P99_MS: f64 = 5.0;
const TARGET_RSS_MIB: f64 = 20.0;
const TARGET_ATTACH_MS: f64 = 500.0;

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
        "Produced by `cargo xtask bench --kills {} --storm {}` on {} (workspace commit {}), {}. The run took {} s.",
        report.kills,
        report.storm,
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
    fn median_of_even_and_odd_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median_ms(&[ms(30), ms(10), ms(20)]), Some(20.0));
        assert_eq!(median_ms(&[ms(10), ms(20)]), Some(15.0));
        assert_eq!(median_ms(&[]), None);
    }
}
