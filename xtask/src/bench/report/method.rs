//! The Method section: how every figure was taken.

use std::fmt::Write as _;

use crate::bench::{
    figures::Report,
    settings::{
        ATTACH_RUNS, CACHED_CALLS, COLD_RUNS, DAEMON_IDLE_WINDOW, DAEMON_SETTLE, EVENT_DEADLINE, EXITED_CALLS,
        HUNG_CALLS, IDLE_SETTLE, IDLE_WINDOW, LIMIT_BYTES, OTLP_METRIC_INTERVAL_MS,
    },
};
use oomtrace_testkit::cgroup::HOG_ALLOC;

/// `## Method`: one bullet per kind of figure.
pub fn method(out: &mut String, report: &Report) {
    writeln!(out, "## Method").ok();
    writeln!(out).ok();
    writeln!(
        out,
        "- Start to attached: wall time from spawning `target/dist/oomtrace live -o json` (`OOMTRACE_LOG=info`) \
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
         (oomtrace `ktime_ns`, bpftrace `nsecs`, both taken in `mark_victim`). The reader thread (`out-<tracer>`) \
         does nothing else: the lines are parsed on another thread, so oomtrace's long JSON lines cost their reader \
         no more CPU than bpftrace's short ones (a reader that parsed them used 2.6× the CPU of bpftrace's in the \
         wave, and under a fair scheduler waited longer for it). It includes the tracer's wait for a CPU: \
         the kernel may wake the tracer on the CPU where the killed hog is still exiting. Percentiles are nearest-rank \
         (with fewer than 100 kills, p99 is the slowest kill). Missing = a hog the kernel killed with no event for its \
         pid; duplicate = more than one event for a pid."
    )
    .ok();
    writeln!(
        out,
        "- RSS target: VmRSS of the oomtrace process after all kills (what it holds while tracing). The \
         startup peak (VmHWM) is reported too: oomtrace reads the kernel's BTF once for its layout table; \
         aya (patched, third_party/aya) never parses it, and tp_btf/fentry programs load by their target's \
         kernel type id; oomtrace returns the freed heap to the system (`malloc_trim`) once attached. Its \
         breakdown by startup phase: \"Peak RSS at start\"."
    )
    .ok();
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
        "- Enrichment: xtask runs a burstable pod (kubelet's labels `io.kubernetes.pod.name/namespace/uid`, \
         `io.kubernetes.container.name`, cgroup parent `/kubepods/burstable/pod<uid>`) with two `sleep` containers and \
         one that exits at once, over CRI, then oomtrace's `enrichment_bench` example (`oomtrace/examples/`, built \
         with `--release`) against them. Each call is timed around the `attribute(Some(cgroup path), Some(pid))` await alone. Cold: {COLD_RUNS} fresh \
         `PodResolver::new` (without `warm()`), each timed on its first call (`app`, connecting) and its second \
         (`sidecar`, connected). After `warm()`: {COLD_RUNS} fresh resolvers, `warm()` (Version + ListContainers), \
         then the first call for `app`. Cached: {CACHED_CALLS} calls for `app` on one resolver after its cold lookup, each \
         checked to give the same attribution. Exited: {EXITED_CALLS} calls for the exited container. Unanswered: a \
         unix socket bound and listening that never accepts, {HUNG_CALLS} calls on one resolver. The pod is removed \
         afterwards."
    )
    .ok();
    writeln!(out).ok();
}

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn method_as_before() {
        assert_section(Some("Method"), super::method);
    }
}
