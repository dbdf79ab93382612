//! `-o table`: the report in a 100-column terminal, for the person who just
//! logged in at 3 a.m.: the headline, one line per workload, then each
//! workload's details, then the node's memory.

use std::fmt::Write as _;

use super::{causes, finding, kill_span, left_out, limit, memory_rows, short_time, victims, window};
use crate::diagnose::{evictions::NoKillNote, group::KillGroup, report::Report};

/// The width every line fits in.
pub const WIDTH: usize = 100;
/// Where a detail's value starts ("    findings      …"; "MemAvailable" fits).
const LABEL_WIDTH: usize = 18;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    line(&mut out, &format!("OOM REPORT  node {}  at {} UTC", report.node, short_time(&report.generated_at)));
    let kernel_log = &report.kernel_log;
    wrap_into(&mut out, &format!("Kernel log ({}): {}", kernel_log.source, kernel_log.reconciliation), 0);
    let workloads = report.groups.len() as u64 + report.groups_left_out.workloads;
    line(
        &mut out,
        &format!(
            "{} OOM kill{} {}, {workloads} workload{}",
            report.kills,
            if report.kills == 1 { "" } else { "s" },
            window(report),
            if workloads == 1 { "" } else { "s" }
        ),
    );
    if !report.groups.is_empty() {
        out.push('\n');
        overview(&mut out, &report.groups);
        if let Some(left_out) = left_out(report) {
            wrap_into(&mut out, &left_out, 0);
        }
        for (index, group) in report.groups.iter().enumerate() {
            out.push('\n');
            details(&mut out, index + 1, group);
        }
    }
    if let Some(note) = &report.no_kill {
        out.push('\n');
        no_kill(&mut out, note);
    }
    out.push('\n');
    line(&mut out, "NODE MEMORY NOW");
    for (label, value) in memory_rows(&report.node_memory) {
        detail(&mut out, label, &value);
    }
    out
}

fn overview(out: &mut String, groups: &[KillGroup]) {
    const WORKLOAD: usize = WIDTH - 52;
    line(out, &format!("{:>3}  {:>5}  {:<19}  {:<16}  WORKLOAD", "#", "KILLS", "LAST KILL (UTC)", "CAUSE"));
    for (index, group) in groups.iter().enumerate() {
        let last = group.last_kill.as_deref().map_or_else(|| "?".to_owned(), short_time);
        line(
            out,
            &format!(
                "{:>3}  {:>5}  {last:<19}  {:<16}  {}",
                index + 1,
                group.kills,
                clip_end(&causes(group), 16),
                clip_start(&group.key, WORKLOAD)
            ),
        );
    }
}

fn details(out: &mut String, number: usize, group: &KillGroup) {
    let number = format!("[{number}] ");
    line(out, &format!("{number}{}", clip_start(&group.key, WIDTH - number.len())));
    detail(out, "kills", &format!("{}, {}", group.kills, kill_span(group)));
    detail(out, "cause", &causes(group));
    if let Some(unit) = &group.unit {
        detail(out, "unit", unit);
    }
    if let Some(cgroup) = group.cgroup.as_ref().filter(|c| **c != group.key) {
        detail(out, "cgroup", cgroup);
    }
    detail(out, "victims", &victims(group));
    if let Some(limit) = limit(group) {
        detail(out, "limit", &limit);
    }
    match group.findings.as_slice() {
        [] => detail(out, "findings", "none"),
        findings => {
            for (index, found) in findings.iter().enumerate() {
                detail(out, if index == 0 { "findings" } else { "" }, &finding(found, group.kills));
            }
        }
    }
    if !group.summary.is_empty() {
        detail(out, "summary", &group.summary);
    }
    match group.advice.as_slice() {
        [] => detail(out, "advice", "none for this kill"),
        advice => {
            for (index, step) in advice.iter().enumerate() {
                let label = if index == 0 { "advice" } else { "" };
                numbered(out, label, index + 1, &step.text);
                if let Some(command) = &step.command {
                    // Never wrapped: it is copied and pasted.
                    line(out, &format!("{}   $ {command}", " ".repeat(LABEL_WIDTH)));
                }
            }
        }
    }
}

fn no_kill(out: &mut String, note: &NoKillNote) {
    line(out, "NO KERNEL OOM KILL");
    wrap_into(out, &note.note, 4);
    for step in &note.commands {
        wrap_into(out, &format!("- {}:", step.text), 4);
        if let Some(command) = &step.command {
            line(out, &format!("      $ {command}"));
        }
    }
    let log = &note.kubelet_log;
    wrap_into(out, &format!("kubelet journal ({}): {}", log.status, log.detail), 4);
    if !log.evicted_pods.is_empty() {
        wrap_into(out, &format!("evicted pods: {}", log.evicted_pods.join(", ")), 4);
    }
    for kubelet_line in &log.lines {
        line(out, &format!("    | {}", clip_end(kubelet_line, WIDTH - 6)));
    }
}

/// "    label      value", the value wrapped under itself.
fn detail(out: &mut String, label: &str, value: &str) {
    let first = format!("    {label:<width$} ", width = LABEL_WIDTH - 5);
    let lines = wrap(value, WIDTH - LABEL_WIDTH);
    for (index, text) in lines.iter().enumerate() {
        let lead = if index == 0 { first.clone() } else { " ".repeat(LABEL_WIDTH) };
        line(out, &format!("{lead}{text}"));
    }
}

/// "    advice        1. text", the text wrapped under itself (after the number).
fn numbered(out: &mut String, label: &str, number: usize, text: &str) {
    let number = format!("{number}. ");
    let lines = wrap(text, WIDTH - LABEL_WIDTH - number.len());
    for (index, wrapped) in lines.iter().enumerate() {
        let lead = match index {
            0 => format!("    {label:<width$} {number}", width = LABEL_WIDTH - 5),
            _ => " ".repeat(LABEL_WIDTH + number.len()),
        };
        line(out, &format!("{lead}{wrapped}"));
    }
}

fn line(out: &mut String, text: &str) {
    let _ = writeln!(out, "{}", text.trim_end());
}

/// `text` wrapped to the width, each line indented by `indent`.
fn wrap_into(out: &mut String, text: &str, indent: usize) {
    for wrapped in wrap(text, WIDTH - indent) {
        line(out, &format!("{}{wrapped}", " ".repeat(indent)));
    }
}

/// Words into lines of at most `width` characters; a longer word (a path, a
/// command) is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let needed = current.chars().count() + usize::from(!current.is_empty()) + word.chars().count();
        if needed > width && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        while current.chars().count() > width {
            let cut: String = current.chars().take(width).collect();
            lines.push(cut);
            current = current.chars().skip(width).collect();
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// The end of a long name (a cgroup path ends with what matters): "…/web".
fn clip_start(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - (width - 1)).collect();
    format!("…{tail}")
}

fn clip_end(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let head: String = text.chars().take(width - 1).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::report::sample;

    fn assert_fits(text: &str) {
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "{} columns: {line}", line.chars().count());
        }
    }

    #[test]
    fn a_report_with_kills_reads_in_100_columns() {
        let text = render(&sample::with_kills());
        assert_fits(&text);
        assert!(text.starts_with("OOM REPORT  node node-1  at 2026-11-29 10:05:00 UTC\n"), "{text}");
        assert!(text.contains("\n4 OOM kills since boot (the whole log), 2 workloads\n"), "{text}");
        assert!(text.contains("\n  1      3  2026-11-29 10:01:30  cgroup_limit      /test/a\n"), "{text}");
        assert!(text.contains("\n  2      1  2026-11-29 10:00:10  container_limit   shop/api-1/api\n"), "{text}");
        assert!(
            text.contains("\n    findings      repeated: kills 3, over 1m 30s, mean interval 45s (in 2 of 3 kills)\n")
        );
        assert!(
            text.contains("\n    advice        1. Raise the limit to what VPA would set after this kill\n"),
            "{text}"
        );
        assert!(text.contains(
            "\n                     $ kubectl set resources deployment/api -n shop -c api --limits=memory=164Mi\n"
        ));
        assert!(text.contains("\n    cgroup        /kubepods/burstable/podx/abc\n"), "{text}");
        assert!(text.contains("\n    advice        none for this kill\n"), "{text}");
        assert!(text.contains("\n    MemAvailable  12.0G (50% of MemTotal)\n"), "{text}");
        assert!(!text.contains("NO KERNEL OOM KILL"));
    }

    #[test]
    fn advice_wraps_under_its_text_not_its_number() {
        let mut report = sample::with_kills();
        report.groups[0].advice[0].text = "word ".repeat(40);
        let text = render(&report);
        assert_fits(&text);
        let first = format!("\n    advice        1. {}", "word ".repeat(16).trim_end());
        assert!(text.contains(&format!("{first}\n                     word word")), "{text}");
    }

    #[test]
    fn a_quiet_window_gives_the_eviction_answer() {
        let text = render(&sample::without_kills());
        assert_fits(&text);
        assert!(text.contains("\n0 OOM kills since 2026-11-29 11:00:00 UTC, 0 workloads\n"), "{text}");
        assert!(
            text.contains("NO KERNEL OOM KILL\n    No kernel OOM kill in this window. A pod reported `Evicted`"),
            "{text}"
        );
        assert!(text.contains("\n      $ kubectl get pods -A --field-selector=status.phase=Failed\n"), "{text}");
        assert!(text.contains("\n    evicted pods: shop/web-1\n"), "{text}");
        assert!(text.contains("\n    note          no kubepods cgroup: not a Kubernetes node\n"), "{text}");
        assert!(text.contains("PSI not available (kernel without CONFIG_PSI or psi=0)"), "{text}");
    }

    #[test]
    fn long_names_and_words_are_clipped_or_cut() {
        let long = format!("/kubepods.slice/{}", "x".repeat(120));
        assert_eq!(clip_start(&long, 10).chars().count(), 10);
        assert!(clip_start(&long, 10).starts_with('…'));
        assert_eq!(clip_start("/a", 10), "/a");
        let wrapped = wrap(&format!("short {long} end"), 40);
        assert!(wrapped.iter().all(|l| l.chars().count() <= 40), "{wrapped:?}");
        assert_eq!(wrapped.first().map(String::as_str), Some("short"));
        // 136 characters cut at 40: three full lines and 16 left, which "end" joins.
        assert_eq!(wrapped.len(), 5, "{wrapped:?}");
        assert_eq!(wrapped[4], format!("{} end", "x".repeat(16)));
        assert_eq!(wrap("", 10), [""]);
    }
}
