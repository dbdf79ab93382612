//! The Results section: oomtrace's figures beside bpftrace's, with ratios.

use std::fmt::Write as _;

use crate::bench::{
    figures::{Alternating, Latency, Peer, Report, Section, ToolFigures},
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
    alternating(out, &report.alternating);
}

/// One figure of a latency distribution, ms.
type LatencyStat = fn(&Latency) -> f64;

/// The sequential kills in alternating turns: the ratio to bpftrace that a
/// change in the host's speed between the two tools' blocks above cannot move.
fn alternating(out: &mut String, section: &Section<Alternating>) {
    writeln!(out, "### Sequential kills in alternating turns").ok();
    writeln!(out).ok();
    let Some(figures) = section.measured() else {
        writeln!(out, "Not measured: {}.", section.why_not()).ok();
        writeln!(out).ok();
        return;
    };
    writeln!(
        out,
        "oomtrace and bpftrace took turns of {} sequential kills each, {} turns each, in the order oomtrace, \
         bpftrace, bpftrace, oomtrace, …, each tool started for its turn and alone while it ran. The two \
         blocks of kills above run minutes apart; here a change in the host's speed during the run weighs on \
         both alike, so this is the ratio to read for one kill at a time.",
        figures.kills_per_turn, figures.turns
    )
    .ok();
    writeln!(out).ok();
    writeln!(out, "| metric | oomtrace | bpftrace | oomtrace / bpftrace |\n|---|---|---|---|").ok();
    let (ours, theirs) = (figures.oomtrace.latency(), figures.peer.latency());
    let stats: [(&str, LatencyStat); 3] = [("p50", |l| l.p50_ms), ("p99", |l| l.p99_ms), ("max", |l| l.max_ms)];
    for (name, stat) in stats {
        let (a, b) = (ours.as_ref().map(stat), theirs.as_ref().map(stat));
        writeln!(out, "| latency {name} | {} | {} | {} |", cell(a, "ms", 3), cell(b, "ms", 3), ratio(a, b)).ok();
    }
    writeln!(out, "| events | {} | {} | |", events_cell(&figures.oomtrace), events_cell(&figures.peer)).ok();
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
