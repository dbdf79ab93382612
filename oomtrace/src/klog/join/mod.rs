//! Joins the eBPF events with the kernel's OOM reports in its log.
//!
//! Every kill reaches the log as a report (its kill line is never
//! rate-limited; the header and tables are, 10 per 5 s). While tracing, the
//! log is read too, and each kill line is matched to the live event of the
//! same victim (same pid, kernel timestamps within [`MATCH_WINDOW`]):
//! - a live event waits at most `live_wait` for its report, then goes out
//!   without it (`unavailable` says `kernel_report`);
//! - a report that matches a live event adds its memory.stat and task table
//!   to it (or, if the event already went out, only moves the log position);
//! - a report no live event claims within `grace` is a kill the probes did not
//!   see (before they attached: a past kill; or lost) and goes out as an event
//!   of its own, `source: kernel_log`.
//!
//! The log position of the last kill accounted for is what the daemon keeps
//! in its state file, so that a restart reports each kill once.

pub mod side;
pub mod tail;

use std::{collections::VecDeque, time::Duration};

use oomtrace_event::{KernelReport, OomEvent};

/// How far apart the eBPF timestamp (CLOCK_MONOTONIC) and the log's
/// (`local_clock`, the scheduler clock) of one kill may be. They drift apart
/// slowly (9 ms after 6 h of uptime on this project's CI machine); pids are
/// not reused within seconds.
pub const MATCH_WINDOW: Duration = Duration::from_secs(10);

/// Where the log has been read up to, in the log's own terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    /// Kernel timestamp of the kill line, µs since boot.
    pub since_boot_us: u64,
    /// Its /dev/kmsg sequence number, when read from there.
    pub seq: Option<u64>,
}

/// A kill read from the log, as an event, with where its kill line is.
#[derive(Clone, Debug)]
pub struct LogKill {
    pub event: OomEvent,
    pub position: LogPosition,
}

/// The matching state. Time is passed in (`now`, any monotonic clock) so the
/// logic is tested without sleeping.
#[derive(Debug)]
pub struct Joiner {
    live_wait: Duration,
    grace: Duration,
    /// Live events waiting for their report, with their deadline.
    waiting: VecDeque<(OomEvent, Duration)>,
    /// Live events that went out without their report: (pid, ktime_ns, when).
    sent_without_report: VecDeque<(u32, u64, Duration)>,
    /// Log kills no live event has claimed yet, with when they were read.
    unclaimed: VecDeque<(LogKill, Duration)>,
    /// Everything up to here is accounted for.
    position: LogPosition,
    /// Events ready to go out, in order.
    ready: Vec<OomEvent>,
}

impl Joiner {
    pub fn new(live_wait: Duration, grace: Duration, position: LogPosition) -> Self {
        Self {
            live_wait,
            grace,
            waiting: VecDeque::new(),
            sent_without_report: VecDeque::new(),
            unclaimed: VecDeque::new(),
            position,
            ready: Vec::new(),
        }
    }

    /// Kills an earlier run sent as live events before their report was read
    /// (victim pid, kernel ns): their reports, when read now, are no events.
    pub fn sent_earlier(&mut self, sent: &[(u32, u64)], now: Duration) {
        self.sent_without_report.extend(sent.iter().map(|&(pid, ktime)| (pid, ktime, now)));
    }

    /// A live event: joined at once if its report was read already, else it
    /// waits for it (at most `live_wait`).
    pub fn live(&mut self, mut event: OomEvent, now: Duration) {
        if let Some(i) = self.unclaimed.iter().position(|(kill, _)| same_kill(&event, &kill.event)) {
            if let Some((kill, _)) = self.unclaimed.remove(i) {
                attach_report(&mut event, &kill.event);
                self.advance(kill.position);
            }
            self.ready.push(event);
            return;
        }
        self.waiting.push_back((event, now + self.live_wait));
    }

    /// A kill read from the log. Kills at or before the accounted position
    /// were reported before (by an earlier run) and are dropped.
    pub fn logged(&mut self, kill: LogKill, now: Duration) {
        if kill.position <= self.position && self.position != LogPosition::default() {
            return;
        }
        if let Some(i) = self.waiting.iter().position(|(event, _)| same_kill(event, &kill.event)) {
            if let Some((mut event, _)) = self.waiting.remove(i) {
                attach_report(&mut event, &kill.event);
                self.ready.push(event);
            }
            self.advance(kill.position);
            return;
        }
        if let Some(i) = self.sent_without_report.iter().position(|&(pid, ktime, _)| {
            pid == kill.event.victim.pid && kill.event.ktime_ns.is_some_and(|k| k.abs_diff(ktime) <= window_ns())
        }) {
            self.sent_without_report.remove(i);
            self.advance(kill.position);
            return;
        }
        self.unclaimed.push_back((kill, now));
    }

    /// Past deadlines: live events without their report, and log kills no
    /// live event claimed (`grace` after they were read).
    pub fn expire(&mut self, now: Duration) {
        while self.waiting.front().is_some_and(|(_, deadline)| *deadline <= now) {
            if let Some((mut event, _)) = self.waiting.pop_front() {
                event.unavailable.push("kernel_report");
                if let Some(ktime) = event.ktime_ns {
                    self.sent_without_report.push_back((event.victim.pid, ktime, now));
                }
                self.ready.push(event);
            }
        }
        while self.unclaimed.front().is_some_and(|(_, read)| *read + self.grace <= now) {
            if let Some((kill, _)) = self.unclaimed.pop_front() {
                self.advance(kill.position);
                self.ready.push(kill.event);
            }
        }
        let keep_after = now.saturating_sub(MATCH_WINDOW + self.grace);
        while self.sent_without_report.front().is_some_and(|&(_, _, sent)| sent < keep_after) {
            self.sent_without_report.pop_front();
        }
    }

    /// Stopping: live events go out without their report, and log kills no
    /// live event claimed go out as they are (a live event still in flight is
    /// not read any more).
    pub fn flush(&mut self) {
        self.expire(Duration::MAX);
    }

    /// The events ready to go out, oldest first.
    pub fn take_ready(&mut self) -> Vec<OomEvent> {
        std::mem::take(&mut self.ready)
    }

    /// The earliest deadline pending, for the caller's timer.
    pub fn next_deadline(&self) -> Option<Duration> {
        let live = self.waiting.front().map(|(_, d)| *d);
        let log = self.unclaimed.front().map(|(_, read)| *read + self.grace);
        live.into_iter().chain(log).min()
    }

    /// Everything up to here is accounted for: the daemon's state.
    pub fn position(&self) -> LogPosition {
        self.position
    }

    fn advance(&mut self, to: LogPosition) {
        self.position = self.position.max(to);
    }
}

fn window_ns() -> u64 {
    u64::try_from(MATCH_WINDOW.as_nanos()).unwrap_or(u64::MAX)
}

/// The same victim at (nearly) the same kernel time.
fn same_kill(live: &OomEvent, logged: &OomEvent) -> bool {
    live.victim.pid == logged.victim.pid
        && match (live.ktime_ns, logged.ktime_ns) {
            (Some(a), Some(b)) => a.abs_diff(b) <= window_ns(),
            _ => false,
        }
}

/// What only the report has, added to the live event.
fn attach_report(event: &mut OomEvent, logged: &OomEvent) {
    let report = logged.kernel_report.clone().unwrap_or_default();
    if report == KernelReport::default() {
        // Rate-limited: only the kill line was logged.
        event.unavailable.push("kernel_report");
    } else {
        event.kernel_report = Some(report);
    }
}

#[cfg(test)]
mod tests;
