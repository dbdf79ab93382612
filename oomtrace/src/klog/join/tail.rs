//! The kernel log while tracing, parsed into kills: first everything in the
//! ring buffer (the daemon's past kills), then the lines as they are printed.
//! Through /dev/kmsg where it opens (root on a host: records with sequence
//! numbers, read and parsed as they are printed on a thread of their own,
//! taken from it at most every [`KMSG_READ_INTERVAL`]), else through
//! syslog(2) (an unprivileged container with CAP_SYSLOG), which is read and
//! parsed again whenever asked, keeping only the lines newer than those
//! already returned. Live events never wait for either: their reports
//! follow them (see [`super`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use oomtrace_klog::{LogLine, source::kmsg::KmsgRecord};

use crate::{
    kernel::syslog,
    klog::{
        collect::Collector,
        convert::LogClock,
        kmsg::{Digest, KmsgError, KmsgFollower, KmsgReader},
    },
};
use oomtrace_event::{LogOrigin, OomEvent};

/// The shortest time between two takes of the kills parsed from /dev/kmsg:
/// a wave of kills prints thousands of records, and a wake-up of the event
/// thread for each batch would compete with the eBPF events. A live event's
/// report may follow it this much later; a kill only the log reports waits
/// [`super::side::GRACE`] for an eBPF event anyway.
pub const KMSG_READ_INTERVAL: Duration = Duration::from_millis(250);
/// How often syslog(2) is read while a kill read from the log waits for a live event.
pub const SYSLOG_POLL_FAST: Duration = Duration::from_millis(20);
/// How often otherwise (kills the probes missed still show up).
pub const SYSLOG_POLL_IDLE: Duration = Duration::from_secs(5);

pub enum LogTail {
    Kmsg(Box<KmsgTail>),
    Syslog(Box<SyslogTail>),
}

/// /dev/kmsg followed, and when it may be waited for again.
pub struct KmsgTail {
    follower: KmsgFollower<ParseReports>,
    /// The parser's counters, as of the thread's last batch.
    counts: Arc<ParseCounts>,
    /// Kept here, not in the wait, for the reason [`SyslogTail::next_read`] is.
    next_wait: tokio::time::Instant,
}

/// syslog(2) has no sequence numbers: the kernel timestamp of the newest line
/// returned, and how many lines carried exactly that timestamp.
pub struct SyslogTail {
    collector: Collector,
    newest_us: u64,
    at_newest: usize,
    /// When to read next. Kept here, not in the wait: the pipeline's select
    /// drops and recreates the wait on every other wake-up (every second at
    /// least), which would otherwise restart an idle wait forever.
    next_read: tokio::time::Instant,
}

/// Why the kernel log cannot be read while tracing.
#[derive(Debug, thiserror::Error)]
#[error(
    "the kernel log is not readable ({kmsg}; {syslog}): events carry no kernel report and past kills are not reported"
)]
pub struct TailError {
    kmsg: KmsgError,
    syslog: syslog::SyslogError,
}

/// Kernel lines that are parts of OOM reports but were not understood, and
/// kill lines that repeated a group kill's first victim: the parser's
/// counters, kept where the event thread reads them without a lock.
#[derive(Debug, Default)]
struct ParseCounts {
    unparsed: AtomicU64,
    repeated: AtomicU64,
}

impl ParseCounts {
    fn set(&self, collector: &Collector) {
        self.unparsed.store(collector.unparsed(), Ordering::Relaxed);
        self.repeated.store(collector.repeated(), Ordering::Relaxed);
    }
}

/// The follower's work on its thread: the kernel's records parsed into kills.
struct ParseReports {
    collector: Collector,
    counts: Arc<ParseCounts>,
}

impl Digest for ParseReports {
    type Item = OomEvent;

    fn digest(&mut self, records: Vec<KmsgRecord>, out: &mut Vec<OomEvent>) {
        for line in kernel_lines_of(records) {
            self.collector.line(&line, out);
        }
        self.counts.set(&self.collector);
    }
}

impl LogTail {
    /// Opens the log and returns the kills the ring buffer holds now, oldest
    /// first; `clock` dates its lines.
    pub fn open(clock: LogClock) -> Result<(Self, Vec<OomEvent>), TailError> {
        match KmsgReader::open() {
            Ok(reader) => {
                let counts = Arc::new(ParseCounts::default());
                let parse =
                    ParseReports { collector: Collector::new(LogOrigin::Kmsg, clock), counts: Arc::clone(&counts) };
                match reader.follow(parse) {
                    Ok(follower) => {
                        let mut tail = KmsgTail { follower, counts, next_wait: tokio::time::Instant::now() };
                        let kills = tail.kills_now();
                        Ok((Self::Kmsg(Box::new(tail)), kills))
                    }
                    Err(kmsg) => Self::open_syslog(kmsg, clock),
                }
            }
            Err(kmsg) => Self::open_syslog(kmsg, clock),
        }
    }

    fn open_syslog(kmsg: KmsgError, clock: LogClock) -> Result<(Self, Vec<OomEvent>), TailError> {
        let mut tail = SyslogTail {
            collector: Collector::new(LogOrigin::Klogctl, clock),
            newest_us: 0,
            at_newest: 0,
            next_read: tokio::time::Instant::now(),
        };
        let kills = tail.read_new().map_err(|syslog| TailError { kmsg, syslog })?;
        Ok((Self::Syslog(Box::new(tail)), kills))
    }

    pub fn origin(&self) -> LogOrigin {
        match self {
            Self::Kmsg(_) => LogOrigin::Kmsg,
            Self::Syslog(_) => LogOrigin::Klogctl,
        }
    }

    /// The kills of the next lines: waits for the kernel (kmsg, no sooner
    /// than [`KMSG_READ_INTERVAL`] after the last wait, then every kill the
    /// thread parsed), or reads syslog(2) again at its next read time, `poll`
    /// from now at the latest. Cancellation safe (the kills are taken without
    /// waiting, after the waits).
    pub async fn next_kills(&mut self, poll: Duration) -> Vec<OomEvent> {
        match self {
            Self::Kmsg(tail) => {
                tokio::time::sleep_until(tail.next_wait).await;
                let kills = tail.follower.next_items().await;
                tail.next_wait = tokio::time::Instant::now() + KMSG_READ_INTERVAL;
                kills.unwrap_or_else(|error| {
                    tracing::warn!(%error, "reading /dev/kmsg");
                    tail.next_wait = tokio::time::Instant::now() + SYSLOG_POLL_IDLE;
                    Vec::new()
                })
            }
            Self::Syslog(tail) => {
                tail.next_read = tail.next_read.min(tokio::time::Instant::now() + poll);
                tokio::time::sleep_until(tail.next_read).await;
                tail.next_read = tokio::time::Instant::now() + SYSLOG_POLL_IDLE;
                tail.read_new().unwrap_or_else(|error| {
                    tracing::warn!(%error, "reading the kernel log");
                    Vec::new()
                })
            }
        }
    }

    /// The kills of the lines already in the log, at once (never waits):
    /// /dev/kmsg read until it has no more, or syslog(2) read again.
    pub fn kills_now(&mut self) -> Vec<OomEvent> {
        match self {
            Self::Kmsg(tail) => tail.kills_now(),
            Self::Syslog(tail) => tail.read_new().unwrap_or_else(|error| {
                tracing::warn!(%error, "reading the kernel log");
                Vec::new()
            }),
        }
    }

    /// Kill lines so far that repeated a group kill's first victim.
    pub fn repeated(&self) -> u64 {
        match self {
            Self::Kmsg(tail) => tail.counts.repeated.load(Ordering::Relaxed),
            Self::Syslog(tail) => tail.collector.repeated(),
        }
    }

    /// Lines so far that looked like part of an OOM report but were not understood.
    pub fn unparsed(&self) -> u64 {
        match self {
            Self::Kmsg(tail) => tail.counts.unparsed.load(Ordering::Relaxed),
            Self::Syslog(tail) => tail.collector.unparsed(),
        }
    }
}

/// The kernel's lines of `records` (a process writing to /dev/kmsg is not the kernel).
fn kernel_lines_of(records: Vec<KmsgRecord>) -> Vec<LogLine> {
    records.into_iter().filter(KmsgRecord::is_kernel).flat_map(|r| r.lines).collect()
}

impl KmsgTail {
    /// The kills of every kernel line already printed, at once (a read error
    /// is said at warn level, with the kills read before it returned).
    fn kills_now(&mut self) -> Vec<OomEvent> {
        self.follower.items_now().unwrap_or_else(|error| {
            tracing::warn!(%error, "reading /dev/kmsg");
            Vec::new()
        })
    }
}

impl SyslogTail {
    /// The kills of the lines newer than those read before.
    fn read_new(&mut self) -> Result<Vec<OomEvent>, syslog::SyslogError> {
        let text = syslog::read_all()?;
        let mut new = Vec::new();
        let mut at_newest_seen = 0;
        for line in syslog::log_lines(&text) {
            let us = line.since_boot.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            if us < self.newest_us {
                continue;
            }
            if us == self.newest_us {
                at_newest_seen += 1;
                if at_newest_seen <= self.at_newest {
                    continue;
                }
            }
            new.push((us, line));
        }
        if let Some(&(newest, _)) = new.last() {
            let at_newest = new.iter().rev().take_while(|(us, _)| *us == newest).count();
            self.at_newest = if newest == self.newest_us { self.at_newest + at_newest } else { at_newest };
            self.newest_us = newest;
        }
        let mut kills = Vec::new();
        for (_, line) in new {
            self.collector.line(&line, &mut kills);
        }
        Ok(kills)
    }
}
