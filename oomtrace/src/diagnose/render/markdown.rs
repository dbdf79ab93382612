//! `-o markdown`: what one pastes into an incident ticket — a heading, a
//! table of the workloads, a section per workload with its advice commands
//! in code blocks, and the node's memory.

use std::fmt::Write as _;

use super::{causes, finding, kill_span, left_out, limit, memory_rows, short_time, victims, window};
use crate::diagnose::{evictions::NoKillNote, group::KillGroup, report::Report};

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# OOM report: node `{}`\n", report.node);
    let _ = writeln!(
        out,
        "Made by `oomtrace diagnose` at {} UTC: {} OOM kill{} {}.\n",
        short_time(&report.generated_at),
        report.kills,
        if report.kills == 1 { "" } else { "s" },
        window(report)
    );
    let _ = writeln!(out, "Kernel log (`{}`): {}.\n", report.kernel_log.source, report.kernel_log.reconciliation);
    if !report.groups.is_empty() {
        overview(&mut out, &report.groups);
        if let Some(left_out) = left_out(report) {
            let _ = writeln!(out, "And {}.\n", left_out.trim_start_matches("and "));
        }
        for (index, group) in report.groups.iter().enumerate() {
            details(&mut out, index + 1, group);
        }
    }
    if let Some(note) = &report.no_kill {
        no_kill(&mut out, note);
    }
    let _ = writeln!(out, "## Node memory now\n\n| | |\n|---|---|");
    for (label, value) in memory_rows(&report.node_memory) {
        let _ = writeln!(out, "| {label} | {} |", cell(&value));
    }
    out
}

fn overview(out: &mut String, groups: &[KillGroup]) {
    let _ = writeln!(out, "## Kills by workload\n");
    let _ = writeln!(out, "| # | Workload | Kills | First kill (UTC) | Last kill (UTC) | Cause | Findings |");
    let _ = writeln!(out, "|--:|---|--:|---|---|---|---|");
    for (index, group) in groups.iter().enumerate() {
        let time = |t: &Option<String>| t.as_deref().map_or_else(|| "?".to_owned(), short_time);
        let kinds: Vec<&str> = group.findings.iter().map(|f| f.finding.kind().as_str()).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            index + 1,
            code(&group.key),
            group.kills,
            time(&group.first_kill),
            time(&group.last_kill),
            code(&causes(group)),
            if kinds.is_empty() { "—".to_owned() } else { kinds.join(", ") }
        );
    }
    out.push('\n');
}

fn details(out: &mut String, number: usize, group: &KillGroup) {
    let _ = writeln!(out, "### {number}. {}\n", code(&group.key));
    let _ = writeln!(out, "- **Kills:** {}, {}", group.kills, kill_span(group));
    let _ = writeln!(out, "- **Cause:** {}", code(&causes(group)));
    if let Some(unit) = &group.unit {
        let _ = writeln!(out, "- **Unit:** {}", code(unit));
    }
    if let Some(cgroup) = group.cgroup.as_ref().filter(|c| **c != group.key) {
        let _ = writeln!(out, "- **Cgroup:** {}", code(cgroup));
    }
    let _ = writeln!(out, "- **Victims:** {}", victims(group));
    if let Some(limit) = limit(group) {
        let _ = writeln!(out, "- **Limit:** {limit}");
    }
    match group.findings.as_slice() {
        [] => {
            let _ = writeln!(out, "- **Findings:** none");
        }
        findings => {
            let _ = writeln!(out, "- **Findings:**");
            for found in findings {
                let _ = writeln!(out, "  - {}", finding(found, group.kills));
            }
        }
    }
    if !group.summary.is_empty() {
        let _ = writeln!(out, "- **Summary:** {}", group.summary);
    }
    out.push('\n');
    if group.advice.is_empty() {
        let _ = writeln!(out, "No advice for this kill.\n");
        return;
    }
    let _ = writeln!(out, "**Advice**\n");
    for (index, step) in group.advice.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", index + 1, step.text);
        if let Some(command) = &step.command {
            let _ = writeln!(out, "\n   ```sh\n   {command}\n   ```");
        }
        out.push('\n');
    }
}

fn no_kill(out: &mut String, note: &NoKillNote) {
    let _ = writeln!(out, "## No kernel OOM kill\n\n{}\n", note.note);
    for step in &note.commands {
        let _ = writeln!(out, "- {}:\n", step.text);
        if let Some(command) = &step.command {
            let _ = writeln!(out, "  ```sh\n  {command}\n  ```\n");
        }
    }
    let log = &note.kubelet_log;
    let _ = writeln!(out, "Kubelet journal (`{}`): {}\n", log.status, log.detail);
    if !log.evicted_pods.is_empty() {
        let pods: Vec<String> = log.evicted_pods.iter().map(|p| code(p)).collect();
        let _ = writeln!(out, "Evicted pods: {}\n", pods.join(", "));
    }
    if !log.lines.is_empty() {
        let _ = writeln!(out, "```text\n{}\n```\n", log.lines.join("\n"));
    }
}

/// `text` as inline code, safe in a table cell.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('|', "\\|"))
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::report::sample;

    #[test]
    fn a_ticket_has_headings_a_table_and_command_blocks() {
        let text = render(&sample::with_kills());
        assert!(text.starts_with("# OOM report: node `node-1`\n\n"), "{text}");
        assert!(text.contains("\n## Kills by workload\n\n| # | Workload | Kills |"), "{text}");
        assert!(
            text.contains(
                "\n| 1 | `/test/a` | 3 | 2026-11-29 10:00:00 | 2026-11-29 10:01:30 | `cgroup_limit` | repeated |\n"
            ),
            "{text}"
        );
        assert!(text.contains("\n### 1. `/test/a`\n\n- **Kills:** 3, "), "{text}");
        assert!(text.contains("\n  - repeated: kills 3, over 1m 30s, mean interval 45s (in 2 of 3 kills)\n"), "{text}");
        assert!(
            text.contains(
                "\n   ```sh\n   kubectl set resources deployment/api -n shop -c api --limits=memory=164Mi\n   ```\n"
            ),
            "{text}"
        );
        assert!(text.contains("\n### 2. `shop/api-1/api`\n"), "{text}");
        assert!(text.contains("\n## Node memory now\n\n| | |\n|---|---|\n| MemTotal | 24.0G |\n"), "{text}");
        assert!(!text.contains("## No kernel OOM kill"));
    }

    #[test]
    fn a_quiet_window_has_the_eviction_section() {
        let text = render(&sample::without_kills());
        assert!(!text.contains("## Kills by workload"), "{text}");
        assert!(text.contains("\n## No kernel OOM kill\n\nNo kernel OOM kill in this window."), "{text}");
        assert!(text.contains("  ```sh\n  kubectl get events -A --field-selector=reason=Evicted\n  ```\n"), "{text}");
        assert!(text.contains("Evicted pods: `shop/web-1`"), "{text}");
        assert!(text.contains("| note | no kubepods cgroup: not a Kubernetes node |"), "{text}");
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(code("a|b`c"), "`a\\|b'c`");
    }
}
