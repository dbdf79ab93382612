//! What the runs measured: plain data the report renders, with the
//! statistics derived from it. Depends on nothing else of the bench.

mod daemon;
mod enrichment;
mod kernel;
mod klog;
mod stats;
mod storm;

use std::time::Duration;

pub use daemon::{CpuUse, DaemonFigures, IdleWindow};
pub use enrichment::EnrichmentFigures;
pub use kernel::{EventRecord, Hook, KernelCost, ObjectProgram, ProgramCost, Verifier};
pub use klog::{Found, KlogFigures, RingFigures, SyslogFigures, SyslogShape, Timed};
pub use stats::{Latency, duration_stats, median_ms};
pub use storm::{KnowFigures, SharedKills, StormFigures, ThreadCost};

use oomtrace_testkit::procfs::{Clock, Machine, Memory};

/// Everything one bench run measured, as the report renders it.
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
    /// The record size and the prebuilt object's programs.
    pub verifier: Verifier,
    /// (component, what the bench found or did).
    pub components: Vec<(&'static str, String)>,
    pub burst: usize,
    pub daemon: Section<DaemonFigures>,
    pub enrichment: Section<EnrichmentFigures>,
    /// `oomtrace history` on a big syslog file and on the ring buffer.
    pub klog: Section<KlogFigures>,
    /// Sequential kills in alternating turns, where bpftrace could be run.
    pub alternating: Section<Alternating>,
    pub bench_seconds: u64,
}

impl Report {
    /// oomtrace, then bpftrace when it was measured.
    pub fn measured_tools(&self) -> Vec<&ToolFigures> {
        match &self.bpftrace {
            Peer::Measured(peer) => vec![&self.oomtrace, peer.as_ref()],
            _ => vec![&self.oomtrace],
        }
    }
}

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

    pub fn latency(&self) -> Option<Latency> {
        Latency::of(&self.latencies_ns)
    }

    /// Adds another run of the same phase (a later turn) to this one.
    pub fn merge(&mut self, other: KillRun) {
        self.hogs += other.hogs;
        self.not_killed += other.not_killed;
        self.events_for_survivors += other.events_for_survivors;
        self.missing.extend(other.missing);
        self.duplicates += other.duplicates;
        self.latencies_ns.extend(other.latencies_ns);
        self.kernel_oom_kills += other.kernel_oom_kills;
    }
}

/// Sequential kills traced in alternating turns (A B B A …), oomtrace's and
/// bpftrace's turns merged.
#[derive(Clone, Debug)]
pub struct Alternating {
    /// Turns of each tool.
    pub turns: usize,
    pub kills_per_turn: usize,
    pub oomtrace: KillRun,
    pub peer: KillRun,
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
    /// Its BPF programs over the sequential kills and the storm, or why
    /// they could not be measured.
    pub kernel: Result<KernelCost, String>,
}

impl ToolFigures {
    pub fn attach_median_ms(&self) -> Option<f64> {
        median_ms(&self.attach)
    }

    pub fn attach_max_ms(&self) -> Option<f64> {
        self.attach.iter().max().map(|d| d.as_secs_f64() * 1e3)
    }
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
    pub fn measured(&self) -> Option<&T> {
        match self {
            Section::Measured(figures) => Some(figures),
            _ => None,
        }
    }

    pub fn why_not(&self) -> String {
        match self {
            Section::Skipped(flag) => format!("skipped ({flag})"),
            Section::Unavailable(reason) => format!("unavailable: {reason}"),
            Section::Measured(_) => "measured".to_owned(),
        }
    }
}
