//! `oomtrace history`: every OOM kill since boot, from the kernel log (or a
//! saved log), as the same events `live` prints, attributed the same way, and
//! reconciled with the kernel's own count of kills.

use std::{
    io::Write as _,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;

use crate::{
    filter::{EventFilter, since},
    kernel::oom_count,
    klog::{
        read::{LogKills, LogSource, Unplaced},
        reconcile::LogCount,
    },
    output::{self, OutputFormat},
};

#[derive(Clone, Debug)]
pub struct HistoryOptions {
    pub source: LogSource,
    pub since: Option<SystemTime>,
    pub output: OutputFormat,
    pub filter: EventFilter,
    pub cri_socket: Option<PathBuf>,
    pub cri_timeout: Duration,
    /// `-v`: after the closing line, the lines that could not be placed.
    pub verbose: bool,
}

/// What a run found; the last line says it.
#[derive(Clone, Debug, Default)]
pub struct HistorySummary {
    pub shown: u64,
    pub filtered_out: u64,
    pub log: LogCount,
    /// The first lines that could not be placed (their counts are in `log`).
    pub unplaced: Vec<Unplaced>,
}

/// Prints the kills, then the closing line: after a table, for the person
/// reading it; after NDJSON, on stderr, so that stdout stays one event per line.
pub async fn run(options: HistoryOptions) -> anyhow::Result<HistorySummary> {
    let summary = show(&options).await?;
    let mut closing = reconciliation(&summary);
    if options.verbose {
        closing.extend(unplaced_lines(&summary).into_iter().map(|line| format!("\n{line}")));
    }
    match options.output {
        // Under the table; a reader gone (`| head`) has had what it wanted.
        OutputFormat::Table => match writeln!(std::io::stdout(), "{closing}") {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(error).context("writing the closing line to stdout");
            }
            _ => {}
        },
        OutputFormat::Json => eprintln!("{closing}"),
    }
    Ok(summary)
}

/// Reads, attributes and prints the kills of the window that pass the filter, each as soon as
/// its report is complete: nothing is kept but the report in progress and the counts (the
/// table's columns have fixed widths, and the log is in time order already).
async fn show(options: &HistoryOptions) -> anyhow::Result<HistorySummary> {
    let kernel_count = if options.source.is_this_boot() {
        match oom_count::oom_kills_since_boot() {
            Ok(count) => Some(count),
            Err(error) => {
                tracing::warn!(%error, "the kernel's count of OOM kills is unavailable");
                None
            }
        }
    } else {
        None
    };
    let mut kills = LogKills::open(&options.source, options.cri_socket.clone(), options.cri_timeout)?;
    let mut summary = HistorySummary::default();
    let mut writer = output::for_format(options.output);
    let mut out = std::io::stdout().lock();
    writer.start(&mut out).context("writing to stdout")?;
    // A reader gone (`| head`) stops the printing, not the reading: the closing line counts the
    // whole log.
    let mut reader_gone = false;
    while let Some(event) = kills.next().await? {
        if !since::in_window(&event, options.since) || !options.filter.matches(&event) {
            summary.filtered_out += 1;
            continue;
        }
        if reader_gone {
            continue;
        }
        match writer.event(&mut out, &event) {
            Ok(()) => summary.shown += 1,
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => reader_gone = true,
            Err(error) => return Err(error).context("writing an event to stdout"),
        }
    }
    let _ = out.flush();
    let read = kills.finish();
    summary.log = LogCount { collected: read.collected, read: read.read, kernel_count };
    summary.unplaced = read.unplaced;
    Ok(summary)
}

/// The closing line: what was found against what the kernel counted, and
/// what the filters left out.
pub fn reconciliation(summary: &HistorySummary) -> String {
    let mut line = summary.log.reconciliation();
    if summary.filtered_out > 0 {
        line.push_str(&format!("; {} shown, {} filtered out", summary.shown, summary.filtered_out));
    }
    line
}

/// `-v`: each line that could not be placed, with why, and how many more the counts have.
/// Their text is the log's, escaped: a comm or a path can hold terminal control bytes.
pub fn unplaced_lines(summary: &HistorySummary) -> Vec<String> {
    let mut lines: Vec<String> = summary
        .unplaced
        .iter()
        .map(|unplaced| match unplaced {
            Unplaced::OomLine(text) => format!("OOM line not understood: {}", escaped(text)),
            Unplaced::UnknownFormat(text) => format!("line of no known format: {}", escaped(text)),
        })
        .collect();
    let shown = |oom: bool| summary.unplaced.iter().filter(|u| matches!(u, Unplaced::OomLine(_)) == oom).count() as u64;
    let more_oom = summary.log.collected.unparsed.saturating_sub(shown(true));
    let more_unknown = summary.log.read.skipped.saturating_sub(shown(false));
    if more_oom + more_unknown > 0 {
        lines.push(format!(
            "({more_oom} more OOM lines not understood, {more_unknown} more of no known format, not shown)"
        ));
    }
    lines
}

/// Control characters as `\xNN`, the rest as it is.
fn escaped(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { format!("\\x{:02x}", u32::from(c)) } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::klog::{collect::CollectStats, read::ReadSummary};

    #[test]
    fn unplaced_lines_are_shown_escaped_with_what_was_left_out() {
        let summary = HistorySummary {
            log: LogCount {
                collected: CollectStats { unparsed: 3, ..CollectStats::default() },
                read: ReadSummary { skipped: 1, ..ReadSummary::default() },
                kernel_count: None,
            },
            unplaced: vec![
                Unplaced::OomLine("Out of memory: Killed process x (\u{1b}[2J) total-vm:1kB".into()),
                Unplaced::UnknownFormat("2026/11/29 11:14:00 something".into()),
            ],
            ..HistorySummary::default()
        };
        assert_eq!(
            unplaced_lines(&summary),
            [
                "OOM line not understood: Out of memory: Killed process x (\\x1b[2J) total-vm:1kB",
                "line of no known format: 2026/11/29 11:14:00 something",
                "(2 more OOM lines not understood, 0 more of no known format, not shown)",
            ]
        );
        let nothing = HistorySummary::default();
        assert!(unplaced_lines(&nothing).is_empty());
    }
}
