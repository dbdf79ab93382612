//! The Daemon footprint section.

use std::fmt::Write as _;

use crate::bench::{
    figures::{IdleWindow, Report},
    report::format::{cpu_use, events_cell, mib, not_measured},
    settings::{DAEMON_IDLE_WINDOW, OTLP_METRIC_INTERVAL_MS},
};
use oomtrace_testkit::{observability::OtlpCounts, procfs::Memory};

/// `## Daemon footprint`: the command, then one table of its figures.
pub fn daemon(out: &mut String, report: &Report) {
    writeln!(out, "## Daemon footprint").ok();
    writeln!(out).ok();
    let Some(d) = report.daemon.measured() else {
        return not_measured(out, &report.daemon);
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
            (format!("{when}: CPU, % of one core over {window} s"), cpu_use(&w.cpu)),
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
        ("burst: CPU from the first hog to 1 s after the last event".to_owned(), cpu_use(&d.burst_cpu)),
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

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn daemon_as_before() {
        assert_section(Some("Daemon footprint"), super::daemon);
    }
}
