//! The daemon's account of this boot's OOM kills, kept across restarts: where
//! in the kernel log it has reported up to (so a restart reports each past
//! kill once), how many kills it reported, and the kernel's own count beside
//! it (a kill no source reported is warned about and exported).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::{
    export::prometheus::Metrics,
    kernel::oom_count,
    klog::{
        boot,
        join::LogPosition,
        state::{DaemonState, StateFile},
    },
    pipeline::PipelineStats,
};

/// How long a count of unreported kills must stay before it is believed.
const SETTLE: Duration = Duration::from_secs(5);

pub struct Account {
    file: StateFile,
    boot_id: String,
    /// Kills reported by earlier runs in this boot.
    reported_before: u64,
    /// What was last saved.
    saved: DaemonState,
    /// The unreported count last warned about.
    warned_unreported: u64,
    /// An unreported count and since when it has been seen: a kill is counted
    /// by the kernel a moment before its event goes out (up to the joiner's
    /// grace for a kill read from the log), so only a count that stays
    /// [`SETTLE`] is exported and warned about.
    unsettled: Option<(u64, Instant)>,
    /// Saving failed (said once).
    save_failed: bool,
    /// See [`DaemonState::sent_unjoined`].
    sent_unjoined: Vec<(u32, u64)>,
}

/// The live events sent that are remembered (the newest; the kill lines of
/// older ones are read long before).
const MAX_SENT_UNJOINED: usize = 32;
/// Such an event is forgotten once the log has been read this far past it.
const SENT_UNJOINED_HORIZON_NS: u64 = 60_000_000_000;

impl Account {
    /// Loads the state of this boot from `dir`; `None` (said once) without a
    /// boot id, when nothing can be kept.
    pub fn load(dir: &Path) -> Option<Self> {
        let boot_id = match boot::boot_id() {
            Ok(id) => id,
            Err(error) => {
                tracing::warn!(%error, "no boot id: past kills may be reported again after a restart");
                return None;
            }
        };
        let file = StateFile::in_dir(dir);
        let saved = file.load_for_boot(&boot_id);
        tracing::info!(
            state = %file.path().display(),
            reported_before = saved.reported,
            since_boot_us = saved.since_boot_us,
            "kernel log position of earlier runs in this boot"
        );
        let sent_unjoined = saved.sent_unjoined.clone();
        Some(Self {
            file,
            boot_id,
            reported_before: saved.reported,
            saved,
            warned_unreported: 0,
            unsettled: None,
            save_failed: false,
            sent_unjoined,
        })
    }

    /// Live events earlier runs sent before their kill line was read.
    pub fn sent_unjoined(&self) -> Vec<(u32, u64)> {
        self.saved.sent_unjoined.clone()
    }

    /// A live event, which goes out before its kill line is read (the joiner
    /// never waits for the log): that line, when read later (by this run or
    /// the next), is no kill of its own.
    pub fn sent(&mut self, pid: u32, ktime_ns: u64) {
        self.sent_unjoined.push((pid, ktime_ns));
        if self.sent_unjoined.len() > MAX_SENT_UNJOINED {
            self.sent_unjoined.remove(0);
        }
    }

    /// Where earlier runs stopped reporting.
    pub fn position(&self) -> LogPosition {
        LogPosition { since_boot_us: self.saved.since_boot_us, seq: self.saved.last_seq }
    }

    /// Every second: saves a new position, exports the kernel's count.
    pub fn update(&mut self, stats: &PipelineStats, metrics: &Metrics) {
        let reported = self.keep_position(stats);
        self.reconcile(reported, metrics);
    }

    /// Saves the position and the count of kills reported, when they
    /// changed; returns that count.
    pub fn keep_position(&mut self, stats: &PipelineStats) -> u64 {
        // The kernel counts a group kill's first victim twice (it kills it
        // again with the group); so does this count, from the log's lines.
        let reported = self.reported_before + stats.events + stats.kernel_log_events + stats.kernel_log_repeated;
        let position = stats.log_position.unwrap_or_else(|| self.position());
        let read_up_to_ns = position.since_boot_us.saturating_mul(1_000);
        self.sent_unjoined.retain(|&(_, ktime)| ktime.saturating_add(SENT_UNJOINED_HORIZON_NS) >= read_up_to_ns);
        let state = DaemonState {
            boot_id: self.boot_id.clone(),
            last_seq: position.seq,
            since_boot_us: position.since_boot_us,
            reported,
            sent_unjoined: self.sent_unjoined.clone(),
        };
        if state != self.saved {
            match self.file.save(&state) {
                Ok(()) => self.saved = state,
                Err(error) if !self.save_failed => {
                    self.save_failed = true;
                    tracing::warn!(%error, "cannot keep the kernel log position: a restart may report past kills again");
                }
                Err(_) => {}
            }
        }
        reported
    }

    /// The kernel's count of kills beside the `reported` ones: exported, and
    /// warned about when some stay unreported.
    fn reconcile(&mut self, reported: u64, metrics: &Metrics) {
        match oom_count::oom_kills_since_boot() {
            Ok(counted) => {
                metrics.update_kernel_count(counted);
                let now = unreported_now(counted, reported, Instant::now(), &mut self.unsettled);
                let Some(unreported) = now else { return };
                metrics.update_unreported(unreported);
                if unreported > self.warned_unreported {
                    tracing::warn!(
                        kernel_counted = counted,
                        reported,
                        unreported,
                        "the kernel counted OOM kills that no event reported (before this boot's log was kept, \
                         rotated out of the ring buffer, or the kernel log is not readable)"
                    );
                }
                self.warned_unreported = unreported;
            }
            Err(error) => tracing::debug!(%error, "the kernel's kill count"),
        }
    }
}

/// The settled number of unreported kills: `Some` once the same (or a
/// smaller, positive) count has been seen for [`SETTLE`], or at once when 0.
fn unreported_now(counted: u64, reported: u64, now: Instant, unsettled: &mut Option<(u64, Instant)>) -> Option<u64> {
    let unreported = counted.saturating_sub(reported);
    if unreported == 0 {
        *unsettled = None;
        return Some(0);
    }
    match *unsettled {
        Some((value, since)) if value <= unreported => (now.duration_since(since) >= SETTLE).then_some(value),
        _ => {
            *unsettled = Some((unreported, now));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_believed_only_once_it_stays() {
        let start = Instant::now();
        let mut unsettled = None;
        assert_eq!(unreported_now(3, 3, start, &mut unsettled), Some(0));
        assert_eq!(unreported_now(4, 3, start, &mut unsettled), None, "the kill's event may be on its way");
        assert_eq!(unreported_now(4, 4, start + Duration::from_secs(1), &mut unsettled), Some(0), "it came");
        assert_eq!(unreported_now(5, 4, start + Duration::from_secs(2), &mut unsettled), None);
        assert_eq!(unreported_now(5, 4, start + Duration::from_secs(6), &mut unsettled), None);
        assert_eq!(unreported_now(5, 4, start + Duration::from_secs(7), &mut unsettled), Some(1));
    }
}
