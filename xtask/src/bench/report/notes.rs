//! The Notes section: anything unexpected a reader must know to trust the figures.

use std::fmt::Write as _;

use crate::bench::figures::{DaemonFigures, Report, ToolFigures};

/// `## Notes`, only when there is something to say.
pub fn notes(out: &mut String, report: &Report) {
    let mut notes = Vec::new();
    for tool in report.measured_tools() {
        tool_notes(&mut notes, tool);
    }
    if let Some(d) = report.daemon.measured() {
        daemon_notes(&mut notes, d);
    }
    if notes.is_empty() {
        return;
    }
    writeln!(out, "## Notes").ok();
    writeln!(out).ok();
    for note in notes {
        writeln!(out, "- {note}").ok();
    }
    writeln!(out).ok();
}

fn tool_notes(notes: &mut Vec<String>, tool: &ToolFigures) {
    for (phase, run) in [("sequential", &tool.seq), ("storm", &tool.storm)] {
        if !run.missing.is_empty() {
            notes.push(format!(
                "{}: no event for {} killed {phase} hogs (pids {:?}).",
                tool.name,
                run.missing.len(),
                run.missing
            ));
        }
        if run.duplicates > 0 {
            notes.push(format!("{}: {} duplicate events in the {phase} kills.", tool.name, run.duplicates));
        }
        if run.not_killed > 0 {
            notes.push(format!(
                "{}: {} of {} {phase} hogs exited without SIGKILL ({} events for them).",
                tool.name, run.not_killed, run.hogs, run.events_for_survivors
            ));
        }
        if run.kernel_oom_kills != run.oom_killed() as u64 {
            notes.push(format!(
                "{}: the kernel counted {} OOM kills in the {phase} cgroups, the bench saw {} hogs killed.",
                tool.name,
                run.kernel_oom_kills,
                run.oom_killed()
            ));
        }
        if let Some(latency) = run.latency().filter(|l| l.min_ms < 0.0) {
            notes.push(format!(
                "{}: negative {phase} latency ({:.3} ms): the line arrived before its kernel timestamp, so the clocks differ.",
                tool.name, latency.min_ms
            ));
        }
    }
    if tool.foreign_events > 0 {
        notes.push(format!(
            "{}: {} events for victims outside the bench (other OOM kills on the host during the run); ignored.",
            tool.name, tool.foreign_events
        ));
    }
}

fn daemon_notes(notes: &mut Vec<String>, d: &DaemonFigures) {
    let run = &d.burst;
    if !run.missing.is_empty() {
        notes.push(format!("daemon: no event for {} killed burst hogs (pids {:?}).", run.missing.len(), run.missing));
    }
    if run.duplicates > 0 {
        notes.push(format!("daemon: {} duplicate events in the burst.", run.duplicates));
    }
    if run.not_killed > 0 {
        notes.push(format!("daemon: {} of {} burst hogs exited without SIGKILL.", run.not_killed, run.hogs));
    }
    if d.foreign_events > 0 {
        notes.push(format!(
            "daemon: {} events for victims outside the bench (other OOM kills on the host during the run); they are \
             in its Prometheus and OTLP counts too.",
            d.foreign_events
        ));
    }
    if d.otlp_burst.log_records < run.oom_killed() {
        notes.push(format!(
            "daemon: the OTLP receiver got {} log records for {} kills within 20 s.",
            d.otlp_burst.log_records,
            run.oom_killed()
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn notes_as_before() {
        assert_section(Some("Notes"), super::notes);
    }
}
