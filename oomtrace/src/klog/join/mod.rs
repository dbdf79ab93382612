//! Joins the eBPF events with the kernel's OOM reports in its log, without
//! ever holding an event.
//!
//! The kernel prints a kill's report (`dump_header`: the header, the memcg's
//! counters and memory.stat, the task table and, since 5.0, the `oom-kill:…,
//! pid=N` summary line) *before* it sends SIGKILL and marks the victim
//! (`oom_kill_process` calls `dump_header`, then `__oom_kill_process`, in
//! mm/oom_kill.c from 4.x to 7.x); only the kill line (`Killed process N …`)
//! comes after. So when an eBPF event arrives the log is read at once, never
//! waited for ([`side::LogSide::live`]), and the event is joined with:
//! - its kill's report read whole (kill line included), if there is one;
//! - else the report the parser has in progress that names its victim (the
//!   summary line's pid; see [`Collector::report_in_progress`]);
//! - else nothing: the kernel printed no report (rate-limited to its kill
//!   line, 10 reports per 5 s), and `unavailable` says `kernel_report`.
//!
//! Either way the event goes out at once. Its kill line, read later, only
//! moves the log position (there is no second record); a kill line no live
//! event claims within `grace` is a kill the probes did not see (before they
//! attached: a past kill; or lost) and goes out as an event of its own,
//! `source: kernel_log`.
//!
//! The log position of the last kill accounted for is what the daemon keeps
//! in its state file, so that a restart reports each kill once.
//!
//! [`Collector::report_in_progress`]: crate::klog::collect::Collector::report_in_progress

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
    grace: Duration,
    /// Live events that went out before their kill line was read: (victim
    /// pid, ktime_ns, when). Kept [`MATCH_WINDOW`] + `grace`.
    sent: VecDeque<(u32, u64, Duration)>,
    /// Log kills no live event has claimed yet, with when they were read.
    unclaimed: VecDeque<(LogKill, Duration)>,
    /// Everything up to here is accounted for.
    position: LogPosition,
    /// Events ready to go out, in order.
    ready: Vec<OomEvent>,
}

impl Joiner {
    pub fn new(grace: Duration, position: LogPosition) -> Self {
        Self { grace, sent: VecDeque::new(), unclaimed: VecDeque::new(), position, ready: Vec::new() }
    }

    /// Kills an earlier run sent as live events before their kill line was
    /// read (victim pid, kernel ns): their kill lines, when read now, are no
    /// events.
    pub fn sent_earlier(&mut self, sent: &[(u32, u64)], now: Duration) {
        self.sent.extend(sent.iter().map(|&(pid, ktime)| (pid, ktime, now)));
    }

    /// A live event, ready at once: joined with its kill's report read whole
    /// if there is one, else with `in_progress` (its report as printed so
    /// far, all but the kill line), else without a report (`unavailable` says
    /// `kernel_report`). Never held for the log.
    pub fn live(&mut self, mut event: OomEvent, in_progress: Option<KernelReport>, now: Duration) {
        if let Some(i) = self.unclaimed.iter().position(|(kill, _)| same_kill(&event, &kill.event)) {
            if let Some((kill, _)) = self.unclaimed.remove(i) {
                attach_report(&mut event, kill.event.kernel_report);
                self.advance(kill.position);
            }
            self.ready.push(event);
            return;
        }
        attach_report(&mut event, in_progress);
        if let Some(ktime) = event.ktime_ns {
            self.sent.push_back((event.victim.pid, ktime, now));
        }
        self.ready.push(event);
    }

    /// A kill read from the log. Kills at or before the accounted position
    /// were reported before (by an earlier run) and are dropped; the kill
    /// line of a live event already sent only moves the position.
    pub fn logged(&mut self, kill: LogKill, now: Duration) {
        if kill.position <= self.position && self.position != LogPosition::default() {
            return;
        }
        if let Some(i) = self.sent.iter().position(|&(pid, ktime, _)| {
            pid == kill.event.victim.pid && kill.event.ktime_ns.is_some_and(|k| k.abs_diff(ktime) <= window_ns())
        }) {
            self.sent.remove(i);
            self.advance(kill.position);
            return;
        }
        self.unclaimed.push_back((kill, now));
    }

    /// Log kills no live event claimed go out (`grace` after they were
    /// read); live events sent long enough ago are forgotten.
    pub fn expire(&mut self, now: Duration) {
        while self.unclaimed.front().is_some_and(|(_, read)| *read + self.grace <= now) {
            if let Some((kill, _)) = self.unclaimed.pop_front() {
                self.advance(kill.position);
                self.ready.push(kill.event);
            }
        }
        let keep_after = now.saturating_sub(MATCH_WINDOW + self.grace);
        while self.sent.front().is_some_and(|&(_, _, sent)| sent < keep_after) {
            self.sent.pop_front();
        }
    }

    /// Stopping: log kills no live event claimed go out as they are (a live
    /// event still in flight is not read any more).
    pub fn flush(&mut self) {
        self.expire(Duration::MAX);
    }

    /// The events ready to go out, oldest first.
    pub fn take_ready(&mut self) -> Vec<OomEvent> {
        std::mem::take(&mut self.ready)
    }

    /// When the oldest unclaimed log kill goes out, for the caller's timer.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.unclaimed.front().map(|(_, read)| *read + self.grace)
    }

    /// Everything up to here is accounted for: the daemon's state.
    pub fn position(&self) -> LogPosition {
        self.position
    }

    fn advance(&mut self, to: LogPosition) {
        self.position = self.position.max(to);
    }
}

/// [`MATCH_WINDOW`] in ns.
pub(crate) fn window_ns() -> u64 {
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

/// What only the report has, added to the live event; a report that is only
/// its kill line (rate-limited), or none, is said in `unavailable`.
fn attach_report(event: &mut OomEvent, report: Option<KernelReport>) {
    match report.filter(|r| r != &KernelReport::default()) {
        Some(report) => event.kernel_report = Some(report),
        None => event.unavailable.push("kernel_report"),
    }
}

#[cfg(test)]
mod tests;
