//! Reads the chosen log to the end, through the report parser, into events.

use super::{
    LogSource,
    collect::{CollectStats, Collector},
    convert::LogClock,
};
use crate::{
    kernel::{self, syslog},
    klog::{
        boot::{self, BootClock},
        file::{FileInput, FileSource},
        journal::{JournalQuery, JournalReader},
        kmsg::{KmsgError, KmsgReader},
        source::{KernelLogSource, SourceSummary},
    },
};
use oomtrace_event::{LogOrigin, OomEvent};

/// What reading the log saw, besides its lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadSummary {
    pub origin: Option<LogOrigin>,
    /// Ring-buffer records gone before the first one read.
    pub rotated: u64,
    /// Records overwritten while reading.
    pub overwritten: u64,
    /// Lines of a saved log that were not understood.
    pub skipped: u64,
    /// Boots the log spans (a saved log or journal of several).
    pub boots: u32,
}

/// Every event in the log, in log order, with the counters.
pub async fn collect(source: &LogSource) -> anyhow::Result<(Vec<OomEvent>, ReadSummary, CollectStats)> {
    let page_size = kernel::page_size();
    let this_boot = LogClock { boot_wall: Some(BootClock::now().boot_time()), page_size };
    let (mut reader, origin, clock) = match source {
        LogSource::Kernel => match KmsgReader::open() {
            Ok(reader) => (KernelLogSource::kmsg(reader, boot::boot_id().ok()), LogOrigin::Kmsg, this_boot),
            Err(error @ (KmsgError::PermissionDenied { .. } | KmsgError::NotFound { .. })) => {
                // An unprivileged container: the device cgroup refuses /dev/kmsg,
                // syslog(2) needs only CAP_SYSLOG.
                tracing::info!(%error, "reading the ring buffer through syslog(2) instead");
                let text = syslog::read_all().map_err(|e| anyhow::anyhow!("{error}; and {e}"))?;
                return Ok(collect_syslog(&text, this_boot));
            }
            Err(error) => return Err(error.into()),
        },
        // This boot's messages: their kernel timestamps count from this boot.
        LogSource::Journal => {
            (KernelLogSource::journal(JournalReader::spawn(&JournalQuery::default())?), LogOrigin::Journal, this_boot)
        }
        // A saved log's boot is unknown: times only from its own lines.
        LogSource::File(path) => (
            KernelLogSource::file(FileSource::open(&FileInput::from_arg(path))?),
            LogOrigin::File,
            LogClock { boot_wall: None, page_size },
        ),
    };
    let mut collector = Collector::new(origin, clock);
    let mut events = Vec::new();
    let mut boot = 0;
    while let Some(kernel_line) = reader.next_line()? {
        if kernel_line.boot != boot {
            // A report in progress cannot continue across a reboot.
            collector.boundary(&mut events);
            boot = kernel_line.boot;
        }
        collector.line(&kernel_line.line, &mut events);
    }
    let stats = collector.finish(&mut events);
    let mut summary = ReadSummary { origin: Some(origin), boots: boot + 1, ..ReadSummary::default() };
    match reader.summary() {
        SourceSummary::Kmsg(kmsg) => {
            summary.rotated = kmsg.rotated_out;
            summary.overwritten = kmsg.overwritten;
        }
        SourceSummary::File(counts) => summary.skipped = counts.unrecognised,
        SourceSummary::Journal(_) => {}
    }
    Ok((events, summary, stats))
}

/// The ring buffer as syslog(2) gives it: `<level>[seconds] message` lines.
fn collect_syslog(text: &str, clock: LogClock) -> (Vec<OomEvent>, ReadSummary, CollectStats) {
    let mut collector = Collector::new(LogOrigin::Klogctl, clock);
    let mut events = Vec::new();
    for line in syslog::log_lines(text) {
        collector.line(&line, &mut events);
    }
    let stats = collector.finish(&mut events);
    (events, ReadSummary { origin: Some(LogOrigin::Klogctl), boots: 1, ..ReadSummary::default() }, stats)
}
