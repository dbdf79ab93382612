//! Reads the chosen log to the end, through the report parser, into events.

use anyhow::Context as _;
use oomtrace_klog::{
    LogLine,
    source::file::{FileContext, FileEvent, FileParser},
};

use super::{
    LogSource,
    collect::{CollectStats, Collector},
    convert::LogClock,
};
use crate::{
    event::{LogOrigin, OomEvent},
    kernel::{self, syslog},
    klog::{
        boot::BootClock,
        file::{FileInput, FileSource},
        journal::{JournalQuery, JournalReader},
        kmsg::{KmsgError, KmsgReader},
    },
};

/// What reading the log saw, besides its lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadSummary {
    pub origin: Option<LogOrigin>,
    /// Ring-buffer records gone before the first one read.
    pub rotated: u64,
    /// Records overwritten while reading.
    pub overwritten: u64,
    /// Lines of a saved log that were not kernel messages or not understood.
    pub skipped: u64,
    /// journalctl `-- Boot --` markers: the file holds several boots.
    pub boots: u64,
}

/// Every event in the log, in log order, with the counters.
pub async fn collect(source: &LogSource) -> anyhow::Result<(Vec<OomEvent>, ReadSummary, CollectStats)> {
    let page_size = kernel::page_size();
    let this_boot = LogClock { boot_wall: Some(BootClock::now().boot_time()), page_size };
    let mut events = Vec::new();
    match source {
        LogSource::Kernel => match KmsgReader::open() {
            Ok(mut reader) => {
                let mut collector = Collector::new(LogOrigin::Kmsg, this_boot);
                while let Some(record) = reader.next_record().context("reading /dev/kmsg")? {
                    if record.is_kernel() {
                        feed(&mut collector, &record.lines, &mut events);
                    }
                }
                let kmsg = reader.summary();
                let summary = ReadSummary {
                    origin: Some(LogOrigin::Kmsg),
                    rotated: kmsg.rotated_out,
                    overwritten: kmsg.overwritten,
                    ..ReadSummary::default()
                };
                let stats = collector.finish(&mut events);
                Ok((events, summary, stats))
            }
            Err(error @ (KmsgError::PermissionDenied { .. } | KmsgError::NotFound { .. })) => {
                // An unprivileged container: the device cgroup refuses /dev/kmsg,
                // syslog(2) needs only CAP_SYSLOG.
                tracing::info!(%error, "reading the ring buffer through syslog(2) instead");
                let text = syslog::read_all().map_err(|e| anyhow::anyhow!("{error}; and {e}"))?;
                let mut collector = Collector::new(LogOrigin::Klogctl, this_boot);
                let mut parser = FileParser::new(FileContext::for_year(i16::MAX));
                for line in text.lines() {
                    if let FileEvent::Line(line) = parser.parse_line(syslog::strip_level(line)) {
                        feed(&mut collector, std::slice::from_ref(&line), &mut events);
                    }
                }
                let stats = collector.finish(&mut events);
                Ok((events, ReadSummary { origin: Some(LogOrigin::Klogctl), ..ReadSummary::default() }, stats))
            }
            Err(error) => Err(error.into()),
        },
        LogSource::Journal => {
            let mut reader = JournalReader::spawn(&JournalQuery::default())?;
            let mut collector = Collector::new(LogOrigin::Journal, this_boot);
            while let Some(entry) = reader.next_entry()? {
                if entry.is_kernel() {
                    feed(&mut collector, &entry.lines, &mut events);
                }
            }
            let stats = collector.finish(&mut events);
            Ok((events, ReadSummary { origin: Some(LogOrigin::Journal), ..ReadSummary::default() }, stats))
        }
        LogSource::File(path) => {
            let mut file = FileSource::open(&FileInput::from_arg(path))?;
            // A saved log's boot is unknown: times only from its own lines.
            let mut collector = Collector::new(LogOrigin::File, LogClock { boot_wall: None, page_size });
            while let Some(event) = file.next_event()? {
                match event {
                    FileEvent::Line(line) => feed(&mut collector, std::slice::from_ref(&line), &mut events),
                    // A new boot: a report in progress cannot continue across it.
                    FileEvent::Boot { .. } => collector.boundary(&mut events),
                    FileEvent::Marker | FileEvent::Skipped(_) => {}
                }
            }
            let counts = file.counts();
            let stats = collector.finish(&mut events);
            let summary = ReadSummary {
                origin: Some(LogOrigin::File),
                skipped: counts.unrecognised,
                boots: counts.boots,
                ..ReadSummary::default()
            };
            Ok((events, summary, stats))
        }
    }
}

fn feed(collector: &mut Collector, lines: &[LogLine], events: &mut Vec<OomEvent>) {
    for line in lines {
        collector.line(line, events);
    }
}
