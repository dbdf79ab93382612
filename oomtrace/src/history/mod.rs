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
        read::{LogSource, read_kills},
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
}

/// What a run found; the last line says it.
#[derive(Clone, Debug, Default)]
pub struct HistorySummary {
    pub shown: u64,
    pub filtered_out: u64,
    pub log: LogCount,
}

/// Prints the kills, then the closing line: after a table, for the person
/// reading it; after NDJSON, on stderr, so that stdout stays one event per line.
pub async fn run(options: HistoryOptions) -> anyhow::Result<HistorySummary> {
    let summary = show(&options).await?;
    let closing = reconciliation(&summary);
    match options.output {
        OutputFormat::Table => println!("{closing}"),
        OutputFormat::Json => eprintln!("{closing}"),
    }
    Ok(summary)
}

/// Reads, attributes and prints the kills of the window that pass the filter.
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
    let kills = read_kills(&options.source, options.cri_socket.clone(), options.cri_timeout).await?;
    let log = LogCount { collected: kills.collected, read: kills.read, kernel_count };
    let mut summary = HistorySummary { log, ..HistorySummary::default() };
    let mut writer = output::for_format(options.output);
    let mut out = std::io::stdout().lock();
    writer.start(&mut out).context("writing to stdout")?;
    for event in &kills.events {
        if !since::in_window(event, options.since) || !options.filter.matches(event) {
            summary.filtered_out += 1;
            continue;
        }
        match writer.event(&mut out, event) {
            Ok(()) => summary.shown += 1,
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(summary),
            Err(error) => return Err(error).context("writing an event to stdout"),
        }
    }
    let _ = out.flush();
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
