//! The kernel-log side of the pipeline: the tail of the log (which parses
//! it), and the joiner that pairs reports with live events.

use std::time::{Duration, Instant};

use super::{
    Joined, Joiner, LogKill, LogPosition,
    tail::{LogTail, SYSLOG_POLL_FAST, SYSLOG_POLL_IDLE},
};
use crate::{
    kernel,
    klog::{boot::BootClock, convert::LogClock},
};
use oomtrace_event::{KernelReportRecord, OomEvent};

/// How long a kill read from the log waits for a live event to claim it.
pub const GRACE: Duration = Duration::from_secs(2);

/// What the pipeline does with the kernel log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelLogMode {
    /// Not read (`live` without permission to read it, tests).
    Off,
    /// Joined to live events; kills already in the log at start are not
    /// reported (`live`).
    Join,
    /// Joined, and every kill in the log after `from` that no live event
    /// claims is reported as a `kernel_log` event (the daemon: past kills).
    JoinAndReport {
        from: LogPosition,
        /// Live events an earlier run sent before their report was read
        /// (pid, kernel ns): their reports are not kills of their own.
        sent: Vec<(u32, u64)>,
    },
}

pub struct LogSide {
    tail: LogTail,
    joiner: Joiner,
    epoch: Instant,
}

impl LogSide {
    /// Opens the log; `None` (said once, at warn level) where it cannot be read.
    pub fn open(mode: &KernelLogMode) -> Option<Self> {
        if *mode == KernelLogMode::Off {
            return None;
        }
        let clock = LogClock { boot_wall: Some(BootClock::now().boot_time()), page_size: kernel::page_size() };
        let (tail, snapshot) = match LogTail::open(clock) {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(%error);
                return None;
            }
        };
        let mut side = Self { tail, joiner: Joiner::new(GRACE, LogPosition::default()), epoch: Instant::now() };
        let existing = log_kills(snapshot);
        match mode {
            KernelLogMode::JoinAndReport { from, sent } => {
                side.joiner = Joiner::new(GRACE, *from);
                let now = side.now();
                side.joiner.sent_earlier(sent, now);
                for kill in existing {
                    side.joiner.logged(kill, now);
                }
            }
            _ => {
                let last = existing.iter().map(|k| k.position).max().unwrap_or_default();
                side.joiner = Joiner::new(GRACE, last);
            }
        }
        tracing::info!(origin = side.tail.origin().as_str(), "reading the kernel log for the kernel's OOM reports");
        Some(side)
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Waits for the next lines of the log and hands their kills to the joiner.
    pub async fn read(&mut self) {
        let waiting = self.joiner.next_deadline().is_some() || self.awaits_reports();
        let poll = if waiting { SYSLOG_POLL_FAST } else { SYSLOG_POLL_IDLE };
        let kills = self.tail.next_kills(poll).await;
        self.take(kills);
    }

    fn take(&mut self, kills: Vec<OomEvent>) {
        let now = self.now();
        for kill in log_kills(kills) {
            self.joiner.logged(kill, now);
        }
    }

    /// A live event that has just gone out, for its report (see [`super`]).
    pub fn sent(&mut self, event: OomEvent) {
        let now = self.now();
        self.joiner.sent(event, now);
    }

    /// Reads what the log holds now, without waiting (stopping: the kill
    /// lines of the live events out are usually there already).
    pub fn read_now(&mut self) {
        let kills = self.tail.kills_now();
        self.take(kills);
    }

    /// Whether a live event still waits for its kill line (and so its report).
    pub fn awaits_reports(&self) -> bool {
        self.joiner.awaits_kill_line()
    }

    /// The time until the joiner's next deadline.
    pub fn until_deadline(&self) -> Option<Duration> {
        self.joiner.next_deadline().map(|d| d.saturating_sub(self.now()))
    }

    /// What is ready to go out: live events' reports, and log kills past their grace.
    pub fn ready(&mut self) -> Vec<Joined> {
        let now = self.now();
        self.joiner.expire(now);
        self.joiner.take_ready()
    }

    /// The live events' reports ready to go out (stopping: the kills read
    /// from the log alone stay for [`Self::ready`]).
    pub fn reports(&mut self) -> Vec<KernelReportRecord> {
        self.joiner.take_reports()
    }

    /// Stopping: log kills waiting for a live event become ready (see [`Joiner::flush`]).
    pub fn flush(&mut self) {
        self.joiner.flush();
    }

    /// Kill lines that repeated a group kill's first victim (the kernel counts them).
    pub fn repeated(&self) -> u64 {
        self.tail.repeated()
    }

    /// Kernel log lines that looked like part of an OOM report but were not understood.
    pub fn unparsed(&self) -> u64 {
        self.tail.unparsed()
    }

    pub fn position(&self) -> LogPosition {
        self.joiner.position()
    }
}

/// The kills read from the log, each with where it is in the log.
fn log_kills(events: Vec<OomEvent>) -> Vec<LogKill> {
    events
        .into_iter()
        .map(|event| {
            let position = LogPosition {
                since_boot_us: event.ktime_ns.map_or(0, |ns| ns / 1_000),
                seq: event.kernel_log.as_ref().and_then(|l| l.seq),
            };
            LogKill { event, position }
        })
        .collect()
}
