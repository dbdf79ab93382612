//! The Results section: oomtrace's figures beside bpftrace's, with ratios.

use std::fmt::Write as _;

use crate::bench::{
    figures::{Peer, Report, ToolFigures},
    report::format::{cell, events_cell, mib, ratio},
    settings::{ATTACH_RUNS, IDLE_WINDOW},
};

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

fn rows(report: &Report) -> [Row; 14] {
    [
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
    ]
}

/// `## Results`: one column per measured tool, and their ratio when bpftrace ran.
pub fn results(out: &mut String, report: &Report) {
    let o = &report.oomtrace;
    writeln!(out, "## Results").ok();
    writeln!(out).ok();
    match &report.bpftrace {
        Peer::Measured(peer) => {
            writeln!(out, "| metric | oomtrace | bpftrace | oomtrace / bpftrace |\n|---|---|---|---|").ok();
            for r in &rows(report) {
                let (a, b) = ((r.value)(o), (r.value)(peer));
                writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    r.metric,
                    cell(a, r.unit, r.decimals),
                    cell(b, r.unit, r.decimals),
                    ratio(a, b)
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
        _ => {
            writeln!(out, "| metric | oomtrace |\n|---|---|").ok();
            for r in &rows(report) {
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
}

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn results_as_before() {
        assert_section(Some("Results"), super::results);
    }
}
