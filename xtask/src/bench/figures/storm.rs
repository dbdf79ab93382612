//! What `--only storm` measured: kills in storms seen by oomtrace and
//! bpftrace at once, and the time to know through the daemon's OTLP export.

use super::{KillRun, Latency};
use oomtrace_testkit::live::LiveSummary;

/// One phase of kills (rounds or the wave), both tracers on the same kills.
#[derive(Clone, Debug)]
pub struct SharedKills {
    /// How the kills were made, for the report.
    pub cgroups: usize,
    pub rounds: usize,
    pub limit_bytes: u64,
    /// `oomtrace live`, filtered on the phase's cgroups.
    pub oomtrace: KillRun,
    /// oomtrace's own counters of what did not become an event.
    pub drops: Result<LiveSummary, String>,
    /// bpftrace, unfiltered, beside it; or why not.
    pub bpftrace: Result<KillRun, String>,
    /// First to last kill of one round, in kernel time (oomtrace's
    /// `ktime_ns`): how much the kills overlapped; the widest round.
    pub span_ms: Option<f64>,
    /// Each tracer's threads over the rounds (schedstat read before the
    /// first and after the last); or why they could not be read.
    pub threads: Result<Vec<ThreadCost>, String>,
}

/// What one tracer thread cost over a phase's kills, from its schedstat.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadCost {
    pub tracer: &'static str,
    pub thread: String,
    /// On a CPU.
    pub run_ms: f64,
    /// Runnable, waiting for a CPU.
    pub wait_ms: f64,
    /// Times it was put on a CPU.
    pub runs: u64,
}

impl SharedKills {
    pub fn bpftrace_latency(&self) -> Option<Latency> {
        self.bpftrace.as_ref().ok().and_then(KillRun::latency)
    }
}

/// The time to know: kill to the record in the OTLP receiver, beside
/// bpftrace's kill to stdout, in the same storm.
#[derive(Clone, Debug)]
pub struct KnowFigures {
    /// Environment and arguments the daemon ran with.
    pub command: String,
    /// Kills per storm, and storms.
    pub kills: usize,
    pub rounds: usize,
    pub limit_bytes: u64,
    /// Kill (`ktime_ns` on the wall clock) to the receiver's
    /// `received_unix_nano`, one per kill.
    pub otlp: KillRun,
    /// Kill to the same event's NDJSON line on the daemon's stdout.
    pub stdout: KillRun,
    /// The receiver's kill-to-record split at the record's
    /// `observed_time_unix_nano` (the daemon's clock when its event thread
    /// queued the record): kill to that emit, and that emit to the
    /// receiver (the export thread, gRPC, the receiver), one per record.
    pub emitted_ns: Vec<i64>,
    pub delivered_ns: Vec<i64>,
    pub bpftrace: Result<KillRun, String>,
    /// Log requests that carried the storm's records.
    pub log_requests: usize,
    /// Largest |the record's `time_unix_nano` − the bench's conversion of
    /// its `ktime_ns`|: how well both turn kernel time into wall time.
    pub clock_disagreement_ns: Option<u64>,
    /// The bench's CLOCK_REALTIME − CLOCK_MONOTONIC, and the width of the
    /// tightest pair of readings it came from.
    pub clock_offset_uncertainty_ns: u64,
    /// The daemon's counters of what it lost or could not export, from its
    /// /metrics after the storm: (series, value).
    pub drops: Result<Vec<(String, f64)>, String>,
    /// First to last kill of the widest storm, in ms.
    pub span_ms: Option<f64>,
    /// The daemon's and bpftrace's threads over the storms (as
    /// [`SharedKills::threads`]).
    pub threads: Result<Vec<ThreadCost>, String>,
}

/// Everything `--only storm` measured.
#[derive(Clone, Debug)]
pub struct StormFigures {
    /// The command line that measured them.
    pub invocation: String,
    pub generated: String,
    pub commit: String,
    /// The 1-minute load average when the run started, and the CPUs.
    pub load_average: Option<f64>,
    pub cpus: usize,
    pub oomtrace_version: String,
    pub bpftrace_version: Option<String>,
    pub rounds: Result<SharedKills, String>,
    pub wave: Result<SharedKills, String>,
    pub know: Result<KnowFigures, String>,
}
