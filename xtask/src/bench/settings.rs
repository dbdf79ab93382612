//! The bench's settings: every constant the runs obey and the report quotes,
//! in one place. Nothing here depends on another bench module.

use std::time::Duration;

// --- The tracers on their own (oomtrace live, bpftrace) ---

/// Memory limit of every cgroup a hog runs in.
pub const LIMIT_BYTES: u64 = 64 << 20;
/// Starts measured per tool for start-to-attached.
pub const ATTACH_RUNS: usize = 5;
/// How long a tracer may take to attach before the bench gives up on it.
pub const ATTACH_DEADLINE: Duration = Duration::from_secs(60);
/// How long to wait for a tracer's later "probes attached" line.
pub const PROBES_ATTACHED_DEADLINE: Duration = Duration::from_secs(10);
/// Settling time after attach before the idle footprint is sampled.
pub const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// Window over which idle CPU is measured.
pub const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// How long to wait for a kill's event before counting it missing.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(3);
/// Quiet period after the last kill, to catch late or duplicate events.
pub const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// Turns of each tool in the alternating sequential kills (`--kills` split
/// between them).
pub const ALTERNATING_TURNS: usize = 4;

// --- The daemon with both exporters on ---

/// Settling time after the first successful scrape before idle RSS is read.
pub const DAEMON_SETTLE: Duration = Duration::from_secs(3);
/// Window over which the daemon's idle CPU is measured.
pub const DAEMON_IDLE_WINDOW: Duration = Duration::from_secs(10);
/// OTEL_METRIC_EXPORT_INTERVAL for the measurement (ms); Prometheus scrapes
/// every second too (scripts/observability.sh).
pub const OTLP_METRIC_INTERVAL_MS: u64 = 1000;
/// How long the daemon may take to attach.
pub const DAEMON_READY_DEADLINE: Duration = Duration::from_secs(60);
/// How long /readyz may take to answer 200 once the daemon has attached.
pub const READYZ_DEADLINE: Duration = Duration::from_secs(10);
/// New file_sd targets take 2-7 s to be scraped (refresh + discovery throttle).
pub const FIRST_SCRAPE_DEADLINE: Duration = Duration::from_secs(30);
/// How long Prometheus and the OTLP receiver may take to show the burst.
pub const EXPORT_DEADLINE: Duration = Duration::from_secs(20);

// --- Pod attribution (oomtrace/examples/enrichment_bench.rs) ---

/// The example of the `oomtrace` crate that times `PodResolver::attribute`.
pub const ENRICHMENT_EXAMPLE: &str = "enrichment_bench";
/// Cached attribute() calls timed.
pub const CACHED_CALLS: usize = 1000;
/// Fresh resolvers timed for the cold lookups.
pub const COLD_RUNS: usize = 20;
/// attribute() calls of a container that has exited.
pub const EXITED_CALLS: usize = 20;
/// Lookups against the socket that never answers (the example uses
/// oomtrace's default --cri-timeout).
pub const HUNG_CALLS: usize = 5;
/// The Kubernetes namespace of the bench's pod.
pub const POD_NAMESPACE: &str = "oomtrace-bench";
/// How long a container may take to reach the state the bench waits for.
pub const CONTAINER_DEADLINE: Duration = Duration::from_secs(30);

// --- Targets from the issues, and how the report judges them ---

pub const TARGET_P99_MS: f64 = 5.0;
pub const TARGET_RSS_MIB: f64 = 20.0;
pub const TARGET_ATTACH_MS: f64 = 500.0;
pub const TARGET_DAEMON_RSS_MIB: f64 = 25.0;
/// Issue 22: the peak resident size since start (VmHWM, the startup's) of
/// `live` and of the daemon.
pub const TARGET_PEAK_MIB: f64 = 16.0;
pub const TARGET_DAEMON_IDLE_CPU_PERCENT: f64 = 1.0;
pub const TARGET_CACHED_ENRICHMENT_US: f64 = 100.0;
/// A lookup "bounded by its timeout" may overrun it by timer slack and
/// scheduling: at most this fraction of the timeout.
pub const TIMEOUT_SLACK: f64 = 0.1;
/// No attribute() call that reaches the runtime over its unix socket took
/// less than this on the development host (a cache hit takes under 1 µs).
pub const RUNTIME_CALL_FLOOR: Duration = Duration::from_micros(50);

// --- The kernel side, against the verifier's limits (the same on 5.10 as today) ---

/// Instructions a privileged program may have, and that the verifier may
/// process while exploring it (BPF_COMPLEXITY_LIMIT_INSNS, since 5.2).
pub const VERIFIER_INSNS_LIMIT: u32 = 1_000_000;
/// Instructions an unprivileged program may have (BPF_MAXINSNS).
pub const UNPRIVILEGED_INSNS_LIMIT: u32 = 4096;
/// Stack of a program's deepest call chain (MAX_BPF_STACK).
pub const STACK_LIMIT_BYTES: u32 = 512;
/// Each ring-buffer record carries this header and is padded to 8 bytes
/// (BPF_RINGBUF_HDR_SZ).
pub const RINGBUF_HEADER_BYTES: usize = 8;

// --- Kernel log parsing (`oomtrace history`) ---

/// The saved log the parser is timed on: issue 11's "100 MB syslog file".
pub const SYSLOG_BYTES: u64 = 100_000_000;
/// Where the bench writes it, under the workspace.
pub const SYSLOG_PATH: &str = "target/bench/syslog-100MB";
/// The time to know's own OTLP receiver writes here (its JSON lines and log).
pub const KNOW_RECEIVER_DIR: &str = "target/bench/know-receiver";
/// The real kernel log its kernel lines repeat: this host's own dmesg, 49
/// memcg kills (25 full reports, the rest rate-limited to the kill line).
pub const SYSLOG_FIXTURE: &str = "oomtrace-klog/fixtures/host-6.18-cgroup-v1-dmesg.txt";
/// One unrelated (non-kernel) line after every this many kernel lines, as
/// systemd, containerd, kubelet and cron write between them on a node.
pub const UNRELATED_EVERY: usize = 4;
/// Each repetition of the fixture (18 s of kernel time) starts this much
/// after the previous one, in both its wall-clock and its kernel timestamps.
pub const REPETITION_GAP_S: u64 = 60;
/// Timed runs of each command, interleaved; best and median are reported.
pub const KLOG_RUNS: usize = 5;
/// Issue 11: "the whole 1 MiB kmsg buffer or a 100 MB syslog file parses in ≤ 2 s".
pub const TARGET_KLOG_SECONDS: f64 = 2.0;
/// Issue 22: `history` and `diagnose` on the 100 MB file peak at no more than this, whatever
/// the log's size (the CI test `oomtrace/tests/klog_memory.rs` holds them to it too).
pub const TARGET_KLOG_PEAK_MIB: f64 = 24.0;
/// Issue 22: streaming must not cost throughput: `history` on the 100 MB file at least as fast
/// as before it streamed.
pub const TARGET_HISTORY_MB_PER_S: f64 = 77.0;

// --- Storms, the wave and the time to know (`--only storm`) ---

/// Memory limit of each of the wave's cgroups (200 of them at once: 4.7 GiB
/// at most, well inside the machine).
pub const WAVE_LIMIT_BYTES: u64 = 24 << 20;
/// How long the held hogs may take to stop themselves before the release.
pub const HOLD_DEADLINE: Duration = Duration::from_secs(60);
/// How long a wave's events may take to arrive (200 kills on a loaded host).
pub const WAVE_EVENT_DEADLINE: Duration = Duration::from_secs(30);
/// How long the OTLP receiver may take to hold a record of every kill.
pub const KNOW_DEADLINE: Duration = Duration::from_secs(20);
/// Issue 22: oomtrace's p50 and p99 within this factor of bpftrace's in the same run.
pub const TARGET_PEER_FACTOR: f64 = 1.1;
