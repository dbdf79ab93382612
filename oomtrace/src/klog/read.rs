//! Reads a whole log (this boot's ring buffer, the journal, a saved file) to its end, through
//! the report parser, into events: what `history` and `diagnose` start from.

use std::{path::PathBuf, time::Duration};

use super::{
    attribute::attribute_kills,
    boot::{self, BootClock},
    collect::{CollectStats, Collector},
    convert::LogClock,
    file::{FileInput, FileSource},
    journal::{JournalQuery, JournalReader},
    kmsg::{KmsgError, KmsgReader},
    source::{KernelLogSource, SourceError, SourceSummary},
};
use crate::kernel::{self, syslog};
use oomtrace_event::{LogOrigin, OomEvent};

/// Which log is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogSource {
    /// This boot's kernel ring buffer: /dev/kmsg, else syslog(2).
    Kernel,
    /// This boot's kernel messages in the systemd journal.
    Journal,
    /// A saved log; `-` is stdin.
    File(PathBuf),
}

impl LogSource {
    /// A log of this boot, which the kernel's counter covers and whose kills happened on
    /// this node.
    pub fn is_this_boot(&self) -> bool {
        !matches!(self, Self::File(_))
    }
}

/// Why a log cannot be read at all; each message says what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Neither /dev/kmsg nor syslog(2).
    #[error("{kmsg}; and {syslog}")]
    RingBuffer { kmsg: KmsgError, syslog: syslog::SyslogError },
    /// Opening or reading /dev/kmsg, the journal or a file.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Every kill of a log, and what reading it saw.
#[derive(Clone, Debug, Default)]
pub struct LogKills {
    /// In log order; each with its `diagnosis` once attributed.
    pub events: Vec<OomEvent>,
    pub read: ReadSummary,
    pub collected: CollectStats,
    /// The first lines that could not be placed, each with why: OOM-killer lines not understood
    /// ([`CollectStats::unparsed`]) and a saved log's lines of no known format
    /// ([`ReadSummary::skipped`]). Bounded; the counts have the rest.
    pub unplaced: Vec<Unplaced>,
}

/// A line that could not be placed, for `history -v`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unplaced {
    /// Looks like the OOM killer's but did not parse.
    OomLine(String),
    /// A saved log's line with a prefix or time stamp of no known form.
    UnknownFormat(String),
}

/// Reads `source` to its end and attributes and diagnoses every kill in log order
/// ([`attribute_kills`]). Fails only when the log cannot be read at all (no CAP_SYSLOG, no
/// /dev/kmsg, no journalctl, a missing file).
pub async fn read_kills(
    source: &LogSource,
    cri_socket: Option<PathBuf>,
    cri_timeout: Duration,
) -> Result<LogKills, ReadError> {
    let mut kills = read_log(source)?;
    attribute_kills(&mut kills.events, source.is_this_boot(), cri_socket, cri_timeout).await;
    Ok(kills)
}

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

/// Every event in the log, in log order, with the counters; not attributed.
pub fn read_log(source: &LogSource) -> Result<LogKills, ReadError> {
    let page_size = kernel::page_size();
    let this_boot_clock = LogClock { boot_wall: Some(BootClock::now().boot_time()), page_size };
    let (mut reader, origin, clock) = match source {
        LogSource::Kernel => match KmsgReader::open() {
            Ok(reader) => (KernelLogSource::kmsg(reader, boot::boot_id().ok()), LogOrigin::Kmsg, this_boot_clock),
            Err(error @ (KmsgError::PermissionDenied { .. } | KmsgError::NotFound { .. })) => {
                // An unprivileged container: the device cgroup refuses /dev/kmsg,
                // syslog(2) needs only CAP_SYSLOG.
                tracing::info!(%error, "reading the ring buffer through syslog(2) instead");
                let text = syslog::read_all().map_err(|syslog| ReadError::RingBuffer { kmsg: error, syslog })?;
                return Ok(collect_syslog(&text, this_boot_clock));
            }
            Err(error) => return Err(SourceError::from(error).into()),
        },
        // This boot's messages: their kernel timestamps count from this boot.
        LogSource::Journal => (
            KernelLogSource::journal(JournalReader::spawn(&JournalQuery::default()).map_err(SourceError::from)?),
            LogOrigin::Journal,
            this_boot_clock,
        ),
        // A saved log's boot is unknown: times only from its own lines.
        LogSource::File(path) => (
            KernelLogSource::file(FileSource::open(&FileInput::from_arg(path)).map_err(SourceError::from)?),
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
    let unplaced = unplaced(collector.unparsed_examples(), reader.unrecognised_examples());
    let mut summary = ReadSummary { origin: Some(origin), boots: boot + 1, ..ReadSummary::default() };
    match reader.summary() {
        SourceSummary::Kmsg(kmsg) => {
            summary.rotated = kmsg.rotated_out;
            summary.overwritten = kmsg.overwritten;
        }
        SourceSummary::File(counts) => summary.skipped = counts.unrecognised,
        SourceSummary::Journal(_) => {}
    }
    Ok(LogKills { events, read: summary, collected: stats, unplaced })
}

fn unplaced(oom_lines: &[String], unknown_format: &[String]) -> Vec<Unplaced> {
    let oom_lines = oom_lines.iter().cloned().map(Unplaced::OomLine);
    oom_lines.chain(unknown_format.iter().cloned().map(Unplaced::UnknownFormat)).collect()
}

/// The ring buffer as syslog(2) gives it: `<level>[seconds] message` lines.
fn collect_syslog(text: &str, clock: LogClock) -> LogKills {
    let mut collector = Collector::new(LogOrigin::Klogctl, clock);
    let mut events = Vec::new();
    for line in syslog::log_lines(text) {
        collector.line(&line, &mut events);
    }
    let stats = collector.finish(&mut events);
    let read = ReadSummary { origin: Some(LogOrigin::Klogctl), boots: 1, ..ReadSummary::default() };
    let unplaced = unplaced(collector.unparsed_examples(), &[]);
    LogKills { events, read, collected: stats, unplaced }
}
