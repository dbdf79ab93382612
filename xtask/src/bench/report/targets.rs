//! The Targets section: each target of the issues, the figure, PASS or FAIL.

use std::fmt::Write as _;

use crate::bench::{
    figures::{Found, KlogFigures, Report, Section, duration_stats},
    report::format::{cell, mib, pass, short_duration, short_why},
    settings::{
        ATTACH_RUNS, CACHED_CALLS, DAEMON_IDLE_WINDOW, KLOG_RUNS, OTLP_METRIC_INTERVAL_MS, TARGET_ATTACH_MS,
        TARGET_CACHED_ENRICHMENT_US, TARGET_DAEMON_IDLE_CPU_PERCENT, TARGET_DAEMON_RSS_MIB, TARGET_HISTORY_MB_PER_S,
        TARGET_KLOG_PEAK_MIB, TARGET_KLOG_SECONDS, TARGET_P99_MS, TARGET_PEAK_MIB, TARGET_RSS_MIB, TIMEOUT_SLACK,
    },
};

/// `## Targets`.
pub fn targets(out: &mut String, report: &Report) {
    writeln!(out, "## Targets").ok();
    writeln!(out).ok();
    writeln!(out, "| target | oomtrace | result |\n|---|---|---|").ok();
    tracer_rows(out, report);
    daemon_rows(out, report);
    enrichment_rows(out, report);
    klog_rows(out, &report.klog);
    writeln!(out).ok();
    writeln!(out, "The latency target also requires every sequential kill to have produced its event.").ok();
    writeln!(out).ok();
}

fn tracer_rows(out: &mut String, report: &Report) {
    let o = &report.oomtrace;
    let p99 = o.seq.latency().map(|l| l.p99_ms);
    let rss_mib = mib(o.after_kills.rss_kb);
    let hwm_mib = mib(o.after_kills.hwm_kb);
    let attach_max = o.attach_max_ms();
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
        "| peak RSS since start ≤ {TARGET_PEAK_MIB} MiB (VmHWM after all kills: the startup's; issue 22) | \
         {hwm_mib:.1} MiB | {} |",
        pass(hwm_mib <= TARGET_PEAK_MIB)
    )
    .ok();
    writeln!(
        out,
        "| start to attached ≤ {TARGET_ATTACH_MS} ms (slowest of {ATTACH_RUNS} starts) | {} | {} |",
        cell(attach_max, "ms", 1),
        pass(attach_max.is_some_and(|v| v <= TARGET_ATTACH_MS))
    )
    .ok();
}

fn daemon_rows(out: &mut String, report: &Report) {
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
    let Some(d) = report.daemon.measured() else {
        return not_measured_rows(out, &report.daemon, "Daemon footprint", &[&rss_target, &cpu_target]);
    };
    let rss = mib(d.steady_rss_kb());
    writeln!(out, "| {rss_target} | {rss:.1} MiB | {} |", pass(rss <= TARGET_DAEMON_RSS_MIB)).ok();
    let cpu = d.idle_cpu_percent();
    writeln!(out, "| {cpu_target} | {cpu:.2} % | {} |", pass(cpu < TARGET_DAEMON_IDLE_CPU_PERCENT)).ok();
    let hwm = mib(d.idle_after.memory_end.hwm_kb);
    writeln!(
        out,
        "| (not a target) daemon peak RSS since start (VmHWM after the burst and idle: its working set then; the \
         startup's own peak is under \"Peak RSS at start\") | {hwm:.1} MiB | {} |",
        if hwm <= TARGET_PEAK_MIB { "within 16 MiB" } else { "above 16 MiB" }
    )
    .ok();
}

fn enrichment_rows(out: &mut String, report: &Report) {
    let cached_target = format!(
        "enrichment of a cached container ≤ {TARGET_CACHED_ENRICHMENT_US} µs per event (p99 of {CACHED_CALLS} \
         `PodResolver::attribute` calls)"
    );
    let bound_target = "cold CRI lookup bounded by its timeout (`--cri-timeout`, socket that never answers; slowest \
                        call, within 10% of the timeout)";
    let Some(e) = report.enrichment.measured() else {
        return not_measured_rows(out, &report.enrichment, "Enrichment cost", &[&cached_target, bound_target]);
    };
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

/// How the kernel log targets begin: `cargo xtask bench --only klog`
/// replaces the rows of the Targets table that begin so.
pub const KLOG_TARGET: &str = "kernel log:";

/// Issue 11's parsing speed, on the syslog file (where every kill must be
/// found too) and on the ring buffer.
pub fn klog_rows(out: &mut String, klog: &Section<KlogFigures>) {
    let file_target = format!(
        "{KLOG_TARGET} a 100 MB syslog file parsed in ≤ {TARGET_KLOG_SECONDS} s, every kill found (`oomtrace \
         history --file`, median of {KLOG_RUNS} runs)"
    );
    let ring_target = format!(
        "{KLOG_TARGET} the whole ring buffer parsed in ≤ {TARGET_KLOG_SECONDS} s (`oomtrace history`, /dev/kmsg; \
         median of {KLOG_RUNS} runs)"
    );
    let memory_target = format!(
        "{KLOG_TARGET} `oomtrace history --file` and `diagnose --file` on the 100 MB syslog file peak at ≤ \
         {TARGET_KLOG_PEAK_MIB} MiB, history at ≥ {TARGET_HISTORY_MB_PER_S} MB/s (issue 22)"
    );
    let Some(k) = klog.measured() else {
        return not_measured_rows(out, klog, "Kernel log parsing", &[&file_target, &memory_target, &ring_target]);
    };
    let within = |median: Option<f64>| median.is_some_and(|s| s <= TARGET_KLOG_SECONDS);
    match &k.syslog {
        Ok(s) => {
            let median = s.oomtrace.median_s();
            let events = s.found.as_ref().ok().map(|f| f.events);
            writeln!(
                out,
                "| {file_target} | {} ({} MB/s); {} of {} kills | {} |",
                cell(median, "s", 2),
                cell(s.oomtrace.mb_per_s(s.shape.bytes), "", 0),
                events.map_or_else(|| "?".to_owned(), |n| n.to_string()),
                s.shape.kill_lines,
                pass(within(median) && events == Some(s.shape.kill_lines))
            )
        }
        Err(_) => writeln!(out, "| {file_target} | not measured (see Kernel log parsing) | n/a |"),
    }
    .ok();
    match &k.syslog {
        Ok(s) => {
            let peak = |found: &Result<Found, String>| found.as_ref().ok().and_then(|f| f.peak_rss_kb).map(mib);
            let (history, diagnose) = (peak(&s.found), peak(&s.diagnose_found));
            let rate = s.oomtrace.mb_per_s(s.shape.bytes);
            let within = |peak: Option<f64>| peak.is_some_and(|p| p <= TARGET_KLOG_PEAK_MIB);
            writeln!(
                out,
                "| {memory_target} | history {} MiB, diagnose {} MiB; history {} MB/s | {} |",
                cell(history, "", 1),
                cell(diagnose, "", 1),
                cell(rate, "", 0),
                pass(within(history) && within(diagnose) && rate.is_some_and(|r| r >= TARGET_HISTORY_MB_PER_S))
            )
        }
        Err(_) => writeln!(out, "| {memory_target} | not measured (see Kernel log parsing) | n/a |"),
    }
    .ok();
    match &k.ring {
        Ok(r) => {
            let median = r.oomtrace.median_s();
            let size = r.capacity_bytes.map_or_else(String::new, |bytes| format!(" of a {} KiB buffer", bytes / 1024));
            let events = r.found.as_ref().map_or_else(|_| "?".to_owned(), |f| f.events.to_string());
            writeln!(
                out,
                "| {ring_target} | {} for {} records{size}; {events} events, {} kernel kill lines | {} |",
                cell(median, "s", 3),
                r.records,
                r.kernel_kill_lines,
                pass(within(median))
            )
        }
        Err(_) => writeln!(out, "| {ring_target} | not measured (see Kernel log parsing) | n/a |"),
    }
    .ok();
}

/// The rows of targets whose section was not measured: why, and no verdict.
fn not_measured_rows<T>(out: &mut String, section: &Section<T>, heading: &str, targets: &[&str]) {
    let why = short_why(section, heading);
    for target in targets {
        writeln!(out, "| {target} | {why} | n/a |").ok();
    }
}

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn targets_as_before() {
        assert_section(Some("Targets"), super::targets);
    }
}
