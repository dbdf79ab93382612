//! Reads a whole log (this boot's ring buffer, the journal, a saved file) to its end, through
//! the report parser, into events one at a time as their reports complete: what `history` and
//! `diagnose` start from, in memory bounded whatever the log's size.

use std::{collections::VecDeque, path::PathBuf, time::Duration};

use super::{
    attribute::Attributor,
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
use oomtrace_klog::LogLine;

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

/// What reading a whole log saw, besides its events: the counts the reconciliation is made of.
#[derive(Clone, Debug, Default)]
pub struct LogRead {
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

/// Where the lines come from: a source read as it goes, or the ring buffer as syslog(2) gave
/// it whole (bounded by the kernel's `log_buf_len`).
enum Lines {
    Source(Box<KernelLogSource>),
    Syslog(std::vec::IntoIter<LogLine>),
}

/// A log's kills, one at a time as their reports complete, each attributed and diagnosed in log
/// order ([`Attributor`]): what `history` prints as it goes and `diagnose` groups. Holds one
/// report in progress and the events of the last line read, never the log's events; [`finish`]
/// gives what reading saw.
///
/// [`finish`]: LogKills::finish
pub struct LogKills {
    lines: Lines,
    origin: LogOrigin,
    collector: Collector,
    boot: u32,
    /// Events of reports completed by the last line, not handed out yet.
    ready: VecDeque<OomEvent>,
    completed: Vec<OomEvent>,
    finished: bool,
    attribution: Attribution,
}

/// The attributor, made at the first kill: a log without kills never asks the runtime.
enum Attribution {
    Pending {
        this_boot: bool,
        cri_socket: Option<PathBuf>,
        cri_timeout: Duration,
    },
    Ready(Box<Attributor>),
    /// [`LogKills::raw`]: events as the log gives them.
    Off,
}

impl LogKills {
    /// Opens `source`; fails only when the log cannot be read at all (no CAP_SYSLOG, no
    /// /dev/kmsg, no journalctl, a missing file).
    pub fn open(source: &LogSource, cri_socket: Option<PathBuf>, cri_timeout: Duration) -> Result<Self, ReadError> {
        let mut kills = Self::raw(source)?;
        kills.attribution = Attribution::Pending { this_boot: source.is_this_boot(), cri_socket, cri_timeout };
        Ok(kills)
    }

    /// Opens `source` for its events as the log gives them: not attributed, not diagnosed.
    pub fn raw(source: &LogSource) -> Result<Self, ReadError> {
        let page_size = kernel::page_size();
        let this_boot_clock = LogClock { boot_wall: Some(BootClock::now().boot_time()), page_size };
        let (lines, origin, clock) = match source {
            LogSource::Kernel => match KmsgReader::open() {
                Ok(reader) => (
                    Lines::Source(Box::new(KernelLogSource::kmsg(reader, boot::boot_id().ok()))),
                    LogOrigin::Kmsg,
                    this_boot_clock,
                ),
                Err(error @ (KmsgError::PermissionDenied { .. } | KmsgError::NotFound { .. })) => {
                    // An unprivileged container: the device cgroup refuses /dev/kmsg,
                    // syslog(2) needs only CAP_SYSLOG.
                    tracing::info!(%error, "reading the ring buffer through syslog(2) instead");
                    let text = syslog::read_all().map_err(|syslog| ReadError::RingBuffer { kmsg: error, syslog })?;
                    let lines: Vec<LogLine> = syslog::log_lines(&text).collect();
                    (Lines::Syslog(lines.into_iter()), LogOrigin::Klogctl, this_boot_clock)
                }
                Err(error) => return Err(SourceError::from(error).into()),
            },
            // This boot's messages: their kernel timestamps count from this boot.
            LogSource::Journal => (
                Lines::Source(Box::new(KernelLogSource::journal(
                    JournalReader::spawn(&JournalQuery::default()).map_err(SourceError::from)?,
                ))),
                LogOrigin::Journal,
                this_boot_clock,
            ),
            // A saved log's boot is unknown: times only from its own lines.
            LogSource::File(path) => (
                Lines::Source(Box::new(KernelLogSource::file(
                    FileSource::open(&FileInput::from_arg(path)).map_err(SourceError::from)?,
                ))),
                LogOrigin::File,
                LogClock { boot_wall: None, page_size },
            ),
        };
        Ok(Self {
            lines,
            origin,
            collector: Collector::new(origin, clock),
            boot: 0,
            ready: VecDeque::new(),
            completed: Vec::new(),
            finished: false,
            attribution: Attribution::Off,
        })
    }

    /// The next kill in log order, attributed and diagnosed (unless [`raw`](Self::raw)); `None`
    /// at the end of the log.
    pub async fn next(&mut self) -> Result<Option<OomEvent>, ReadError> {
        let Some(mut event) = self.next_raw()? else { return Ok(None) };
        if let Attribution::Pending { this_boot, cri_socket, cri_timeout } = &mut self.attribution {
            let attributor = Attributor::new(*this_boot, cri_socket.take(), *cri_timeout).await;
            self.attribution = Attribution::Ready(Box::new(attributor));
        }
        if let Attribution::Ready(attributor) = &mut self.attribution {
            attributor.attribute(&mut event).await;
        }
        Ok(Some(event))
    }

    /// The next event as the log gives it.
    fn next_raw(&mut self) -> Result<Option<OomEvent>, ReadError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            if self.finished {
                return Ok(None);
            }
            let line = match &mut self.lines {
                Lines::Source(reader) => reader.next_line()?.map(|kernel_line| {
                    if kernel_line.boot != self.boot {
                        // A report in progress cannot continue across a reboot.
                        self.collector.boundary(&mut self.completed);
                        self.boot = kernel_line.boot;
                    }
                    kernel_line.line
                }),
                Lines::Syslog(lines) => lines.next(),
            };
            match line {
                Some(line) => self.collector.line(&line, &mut self.completed),
                None => {
                    self.collector.finish(&mut self.completed);
                    self.finished = true;
                }
            }
            self.ready.extend(self.completed.drain(..));
        }
    }

    /// What reading saw: call after [`next`](Self::next) gave `None` (before, the counts are
    /// those of the lines read so far).
    pub fn finish(mut self) -> LogRead {
        let collected = self.collector.finish(&mut self.completed);
        let mut read = ReadSummary { origin: Some(self.origin), boots: self.boot + 1, ..ReadSummary::default() };
        let unknown_format = match &self.lines {
            Lines::Source(reader) => {
                match reader.summary() {
                    SourceSummary::Kmsg(kmsg) => {
                        read.rotated = kmsg.rotated_out;
                        read.overwritten = kmsg.overwritten;
                    }
                    SourceSummary::File(counts) => read.skipped = counts.unrecognised,
                    SourceSummary::Journal(_) => {}
                }
                reader.unrecognised_examples()
            }
            Lines::Syslog(_) => &[],
        };
        let unplaced = unplaced(self.collector.unparsed_examples(), unknown_format);
        LogRead { read, collected, unplaced }
    }
}

fn unplaced(oom_lines: &[String], unknown_format: &[String]) -> Vec<Unplaced> {
    let oom_lines = oom_lines.iter().cloned().map(Unplaced::OomLine);
    oom_lines.chain(unknown_format.iter().cloned().map(Unplaced::UnknownFormat)).collect()
}
